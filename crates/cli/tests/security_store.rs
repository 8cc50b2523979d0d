//! Backups need no delete permission: init, backups (first, unchanged and
//! changed), restore and check all work against a store that refuses every
//! delete and every write over an existing object, as S3 does under a
//! put-only policy with Object Lock. The wrapper here is the test's own,
//! not `NoDeleteBackend`, and the repository is opened with a full key,
//! so the claim is about the backup path itself.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use lifeboat_core::format::KdfParams;
use lifeboat_core::store::{Backend, Error, ObjectInfo, ObjectStoreBackend};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions,
};

/// Refuses deletes and overwrites, and counts the attempts.
#[derive(Debug)]
struct PutOnly {
    inner: Arc<dyn Backend>,
    deletes: AtomicU64,
    overwrites: AtomicU64,
}

fn denied(path: &str) -> Error {
    Error::permission_denied(
        path,
        std::io::Error::other("the test store allows no deletes and no overwrites"),
    )
}

impl Backend for PutOnly {
    fn put(&self, path: &str, data: Bytes) -> Result<(), Error> {
        if self.inner.head(path).is_ok() {
            self.overwrites.fetch_add(1, Ordering::SeqCst);
            return Err(denied(path));
        }
        self.inner.put(path, data)
    }
    fn create(&self, path: &str, data: Bytes) -> Result<(), Error> {
        self.inner.create(path, data)
    }
    fn get(&self, path: &str) -> Result<Bytes, Error> {
        self.inner.get(path)
    }
    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes, Error> {
        self.inner.get_range(path, range)
    }
    fn head(&self, path: &str) -> Result<ObjectInfo, Error> {
        self.inner.head(path)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, Error> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> Result<(), Error> {
        self.deletes.fetch_add(1, Ordering::SeqCst);
        Err(denied(path))
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

#[test]
fn backup_needs_no_delete_permission() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(src.join("big"), &big).unwrap();
    std::fs::write(src.join("sub/small"), b"small").unwrap();

    std::fs::create_dir_all(work.path().join("repo")).unwrap();
    let store = Arc::new(PutOnly {
        inner: Arc::new(ObjectStoreBackend::local(&work.path().join("repo")).unwrap()),
        deletes: AtomicU64::new(0),
        overwrites: AtomicU64::new(0),
    });
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    let backend: Arc<dyn Backend> = store.clone();
    let repo = Repository::init(backend.clone(), b"pw", &opts).unwrap();
    assert!(repo.no_delete().is_none(), "a full key, no option");
    let backup = |r: &Repository| {
        r.backup(
            BackupSource::Paths(vec![src.clone()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap()
    };
    let first = backup(&repo);
    let unchanged = backup(&repo);
    std::fs::write(src.join("sub/small"), b"changed").unwrap();
    // A fresh handle: the index is loaded from the store, as a new process would.
    let repo = Repository::open_with_cache(backend, b"pw", None).unwrap();
    let changed = backup(&repo);
    assert_eq!(repo.snapshots().unwrap().items.len(), 3);
    assert_eq!(store.deletes.load(Ordering::SeqCst), 0, "a backup deleted");
    assert_eq!(
        store.overwrites.load(Ordering::SeqCst),
        0,
        "a backup overwrote"
    );

    for (report, small) in [
        (&first, &b"small"[..]),
        (&unchanged, b"small"),
        (&changed, b"changed"),
    ] {
        let target = work.path().join(format!("t-{}", report.id.short()));
        let opts = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        repo.restore(&report.snapshot, &opts, &Progress::default())
            .unwrap();
        let root = target.join(src.strip_prefix("/").unwrap());
        assert_eq!(std::fs::read(root.join("big")).unwrap(), big);
        assert_eq!(std::fs::read(root.join("sub/small")).unwrap(), small);
    }
}
