//! A re-backup of an unchanged tree reads nothing, yet reports every file
//! and byte as processed (taken from the parent), as restic does.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::Ordering;

use lifeboat_core::format::KdfParams;
use lifeboat_core::store::ObjectStoreBackend;
use lifeboat_core::{BackupOptions, BackupSource, InitOptions, Progress, Repository};

#[test]
fn unchanged_files_count_as_processed() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let src = work.path().join("src");
    std::fs::create_dir_all(&repo_dir).unwrap();
    std::fs::create_dir_all(src.join("sub")).unwrap();
    let sizes = [10_000usize, 70_000, 3];
    std::fs::write(src.join("a"), vec![1u8; sizes[0]]).unwrap();
    std::fs::write(src.join("sub/b"), vec![2u8; sizes[1]]).unwrap();
    std::fs::write(src.join("sub/c"), b"xyz").unwrap();
    let total: u64 = sizes.iter().map(|s| *s as u64).sum();

    let backend = Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, b"pw", &opts).unwrap();
    let backup = |progress: &Progress| {
        repo.backup(
            BackupSource::Paths(vec![src.clone()]),
            &BackupOptions::default(),
            progress,
        )
        .unwrap()
    };

    let first = backup(&Progress::default());
    assert_eq!(first.processed(), (3, total));

    let progress = Progress::default();
    let second = backup(&progress);
    let s = second.snapshot.summary.clone().unwrap();
    assert_eq!((s.files_new, s.files_changed, s.files_unchanged), (0, 0, 3));
    assert_eq!(s.bytes_read, 0, "unchanged files must not be read");
    assert_eq!(second.processed(), (3, total));
    assert_eq!(progress.files.load(Ordering::Relaxed), 3);
    assert_eq!(progress.bytes.load(Ordering::Relaxed), total);
}
