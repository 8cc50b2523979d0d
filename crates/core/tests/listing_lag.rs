//! A store whose listings lag its deletes (as a Garage cluster's can for a
//! moment: each replica filters its part of a listing before the replies
//! are merged). Objects listed but no longer there are treated as deleted:
//! opening the repository, listing keys and listing snapshots all work, and
//! a wrong password is still reported as one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::Range;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lifeboat_core::format::KdfParams;
use lifeboat_core::format::layout::Folder;
use lifeboat_core::store::{Backend, ObjectInfo, ObjectStoreBackend, Result};
use lifeboat_core::{BackupOptions, BackupSource, Error, InitOptions, Progress, Repository};

/// Lists every object it ever deleted as if it were still there.
#[derive(Debug)]
struct LaggingList {
    inner: Arc<dyn Backend>,
    deleted: Mutex<Vec<ObjectInfo>>,
}

impl Backend for LaggingList {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.put(path, data)
    }
    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.create(path, data)
    }
    fn get(&self, path: &str) -> Result<Bytes> {
        self.inner.get(path)
    }
    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(path, range)
    }
    fn head(&self, path: &str) -> Result<ObjectInfo> {
        self.inner.head(path)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut all = self.inner.list(prefix)?;
        let gone = self.deleted.lock().unwrap();
        all.extend(gone.iter().filter(|o| o.path.starts_with(prefix)).cloned());
        all.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(all)
    }
    fn delete(&self, path: &str) -> Result<()> {
        if let Ok(info) = self.inner.head(path) {
            self.deleted.lock().unwrap().push(info);
        }
        self.inner.delete(path)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

const KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn objects_listed_after_their_delete_are_treated_as_deleted() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a"), b"first version").unwrap();

    let backend: Arc<dyn Backend> = Arc::new(LaggingList {
        inner: Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap()),
        deleted: Mutex::new(Vec::new()),
    });
    let opts = InitOptions {
        kdf: KDF,
        ..InitOptions::default()
    };
    let repo = Repository::init(backend.clone(), b"one", &opts).unwrap();
    let backup = |repo: &Repository| {
        repo.backup(
            BackupSource::Paths(vec![src.clone()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap()
        .id
    };
    let first = backup(&repo);
    std::fs::write(src.join("a"), b"second version").unwrap();
    let second = backup(&repo);

    // A second key, then removed; the first snapshot, then forgotten.
    let other = repo.add_key(b"two", KDF).unwrap();
    assert_eq!(repo.keys().unwrap().items.len(), 2);
    repo.remove_key(&other.to_hex()).unwrap();
    repo.delete_snapshot(&first).unwrap();
    // The store still lists both.
    assert_eq!(backend.list(&Folder::Keys.prefix()).unwrap().len(), 2);
    assert_eq!(backend.list(&Folder::Snapshots.prefix()).unwrap().len(), 2);

    let keys = repo.keys().unwrap().items;
    assert_eq!(keys.len(), 1);
    assert!(keys[0].current);
    let snaps = repo.snapshots().unwrap().items;
    assert_eq!(
        snaps.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![second]
    );

    // Opening walks the key slots: the removed one is skipped, and its
    // password is wrong, not a store error.
    let again = Repository::open(backend.clone(), b"one").unwrap();
    assert_eq!(again.snapshots().unwrap().items.len(), 1);
    match Repository::open(backend.clone(), b"two") {
        Err(Error::WrongPassword) => {}
        Err(e) => panic!("the removed key's password: want WrongPassword, got {e}"),
        Ok(_) => panic!("the removed key's password still opens the repository"),
    }
}
