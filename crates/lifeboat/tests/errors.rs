//! The kinds an embedding tool acts on come as variants of `lifeboat::Error`
//! of their own, whichever crate below found them.

#![allow(clippy::unwrap_used, clippy::panic)]

use lifeboat::{
    BackupOptions, BackupSource, CheckOptions, CheckProgress, Error, InitOptions, KdfParams,
    Progress, Repository,
};

fn cheap() -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    }
}

#[test]
fn a_missing_repository_and_a_wrong_password_are_variants() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("repo");
    let location = location.to_str().unwrap();

    let missing = lifeboat::open_location(location, false).unwrap_err();
    assert!(
        matches!(&missing, Error::RepositoryNotFound { location: l } if l == location),
        "{missing:?}"
    );

    let backend = lifeboat::open_location(location, true).unwrap();
    Repository::init(backend, b"right", &cheap()).unwrap();
    let backend = lifeboat::open_location(location, false).unwrap();
    let wrong = Repository::open(backend, b"wrong").unwrap_err();
    assert!(matches!(wrong, Error::WrongPassword), "{wrong:?}");
}

#[test]
fn a_cancelled_check_is_interrupted() {
    let work = tempfile::tempdir().unwrap();
    let location = work.path().join("repo");
    let backend = lifeboat::open_location(location.to_str().unwrap(), true).unwrap();
    let repo = Repository::init(backend, b"pw", &cheap()).unwrap();
    let source = work.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("file"), b"content").unwrap();
    let source = BackupSource::Paths(vec![source]);
    repo.backup(source, &BackupOptions::default(), &Progress::default())
        .unwrap();
    let progress = CheckProgress::default();
    progress
        .cancel
        .store(true, std::sync::atomic::Ordering::Relaxed);
    let read_all = CheckOptions {
        read_data: true,
        ..Default::default()
    };
    match repo.check(&read_all, &progress) {
        Err(Error::Interrupted) => {}
        other => panic!("expected Interrupted, got {other:?}"),
    }
}
