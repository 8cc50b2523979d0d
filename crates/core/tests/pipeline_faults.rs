//! Failure injection in every stage of the backup pipeline: the run must
//! end with that stage's error, without hanging, without writing a
//! snapshot, and without damaging the repository (a clean backup
//! afterwards restores byte-identical).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::noise;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use lifeboat_core::format::layout::Folder;
use lifeboat_core::format::{ChunkerParams, KdfParams};
use lifeboat_core::store::ObjectStoreBackend;
use lifeboat_core::{
    BackupOptions, BackupSource, FailPoints, InitOptions, Progress, Repository, RestoreOptions,
    Stage,
};

const PASSWORD: &[u8] = b"pipeline";

/// Small files read whole, a large streamed file, a nested directory.
fn make_source(dir: &Path) {
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    for i in 0..12u64 {
        std::fs::write(
            dir.join(format!("small-{i}")),
            noise(i, 20_000 + i as usize * 3000),
        )
        .unwrap();
    }
    std::fs::write(dir.join("sub/deeper/large"), noise(99, 6 << 20)).unwrap();
    std::fs::write(dir.join("sub/text"), "text ".repeat(50_000)).unwrap();
}

fn open(repo_dir: &Path) -> Repository {
    let backend = Arc::new(ObjectStoreBackend::local(repo_dir).unwrap());
    Repository::open(backend, PASSWORD).unwrap()
}

fn init(repo_dir: &Path) {
    std::fs::create_dir_all(repo_dir).unwrap();
    let backend = Arc::new(ObjectStoreBackend::local(repo_dir).unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        // Small chunks and packs: many blobs, packs and uploads.
        chunker: ChunkerParams {
            min_size: 4 << 10,
            avg_size: 16 << 10,
            max_size: 64 << 10,
        },
        pack_size: 1 << 20,
        ..InitOptions::default()
    };
    Repository::init(backend, PASSWORD, &opts).unwrap();
}

/// Run a backup on its own thread; `None` if it did not end in time.
fn backup_with(repo_dir: &Path, src: &Path, fail: FailPoints) -> Option<lifeboat_core::Result<()>> {
    let repo = open(repo_dir);
    let src = src.to_path_buf();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let opts = BackupOptions {
            fail,
            ..Default::default()
        };
        let res = repo
            .backup(BackupSource::Paths(vec![src]), &opts, &Progress::default())
            .map(|_| ());
        let _ = tx.send(res);
    });
    rx.recv_timeout(Duration::from_secs(120)).ok()
}

fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_failure_in_any_stage_fails_cleanly() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_source(&src);
    let stages = [
        (Stage::ReadDir, 1),
        (Stage::Read, 3),
        (Stage::Chunk, 3),
        (Stage::Hash, 5),
        (Stage::Dedup, 5),
        (Stage::Seal, 5),
        (Stage::Pack, 5),
        (Stage::Upload, 2),
        (Stage::Index, 0),
        (Stage::Snapshot, 0),
    ];
    for (stage, after) in stages {
        let repo_dir = work.path().join(format!("repo-{stage:?}"));
        init(&repo_dir);
        let outcome = backup_with(&repo_dir, &src, FailPoints::new(stage, after))
            .unwrap_or_else(|| panic!("backup with a failure in {stage:?} hung"));
        let err = match outcome {
            Ok(()) => panic!("backup with a failure in {stage:?} succeeded"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("injected failure in stage {stage:?}")),
            "{stage:?}: the error reported is not the stage's own: {err}"
        );
        let repo = open(&repo_dir);
        assert!(
            repo.snapshots().unwrap().items.is_empty(),
            "{stage:?}: a snapshot was written"
        );
        // Packs being filled are staged files; none outlives the run.
        let staged: Vec<_> = std::fs::read_dir(repo_dir.join(Folder::Staging.name()))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        assert!(staged.is_empty(), "{stage:?}: left behind {staged:?}");

        // The repository is still sound: a clean backup on top works and
        // restores byte-identical.
        let clean = backup_with(&repo_dir, &src, FailPoints::default())
            .unwrap_or_else(|| panic!("clean backup after {stage:?} hung"));
        clean.unwrap_or_else(|e| panic!("clean backup after {stage:?} failed: {e}"));
        let repo = open(&repo_dir);
        let (_, snap) = repo.find_snapshot("latest", &Default::default()).unwrap();
        let target = work.path().join(format!("restore-{stage:?}"));
        let report = repo
            .restore(
                &snap,
                &RestoreOptions {
                    target: target.clone(),
                    ..Default::default()
                },
                &Progress::default(),
            )
            .unwrap();
        assert!(report.errors.is_empty(), "{stage:?}: {:?}", report.errors);
        let restored = target.join(src.strip_prefix("/").unwrap());
        assert!(
            files_under(&src) == files_under(&restored),
            "{stage:?}: restore differs from the source"
        );
    }
}

#[test]
fn an_unfired_fail_point_changes_nothing() {
    // The stage is reached fewer times than `after`: the backup succeeds.
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_source(&src);
    let repo_dir = work.path().join("repo");
    init(&repo_dir);
    backup_with(&repo_dir, &src, FailPoints::new(Stage::Snapshot, 1))
        .expect("backup hung")
        .expect("backup failed");
    assert_eq!(open(&repo_dir).snapshots().unwrap().items.len(), 1);
}
