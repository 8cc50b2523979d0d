//! Which gear table a repository chunks with: new repositories the keyed
//! table, repositories written before it (the golden ones) their seeded
//! table, and a `copy --copy-params` target the table of its source.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::noise;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifeboat_chunker::{Chunker, GearTable};
use lifeboat_core::format::{ChunkerGear, ChunkerParams, KdfParams};
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_core::store::{Backend, ObjectStoreBackend};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, init_with_params_from,
};

fn cuts(c: &Chunker, d: &[u8]) -> Vec<(usize, usize)> {
    c.chunks(d).collect()
}

fn sizes(p: &ChunkerParams) -> (usize, usize, usize) {
    (
        p.min_size as usize,
        p.avg_size as usize,
        p.max_size as usize,
    )
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).unwrap();
        }
    }
}

fn local(dir: &Path) -> Arc<dyn Backend> {
    std::fs::create_dir_all(dir).unwrap();
    Arc::new(ObjectStoreBackend::local(dir).unwrap())
}

#[test]
fn golden_repository_keeps_its_seeded_chunker_and_dedups() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    copy_tree(&golden().join("valid"), &repo_dir);
    let password = std::fs::read_to_string(golden().join("password")).unwrap();
    let password = password.lines().next().unwrap();
    let repo = Repository::open(local(&repo_dir), password.as_bytes()).unwrap();
    assert_eq!(repo.config().chunker_gear, ChunkerGear::Seeded);

    // Its chunker is the seeded one of before, not the keyed one.
    let (min, avg, max) = sizes(&repo.config().chunker);
    let seed = repo.master_key().chunker_seed();
    let old = Chunker::new(min, avg, max, seed).unwrap();
    let bytes = repo.master_key().to_bytes();
    let keyed = Chunker::with_table(min, avg, max, GearTable::keyed(&bytes[32..])).unwrap();
    let d = noise(5, 12 << 20);
    let got = cuts(repo.chunker(), &d);
    assert!(got.len() > 4);
    assert_eq!(got, cuts(&old, &d));
    assert_ne!(got, cuts(&keyed, &d));

    // Backing up the source again stores no data blob: its chunks are there.
    let report = repo
        .backup(
            BackupSource::Paths(vec![golden().join("source")]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    let summary = report.snapshot.summary.unwrap();
    assert!(summary.files_new >= 6, "{summary:?}");
    assert_eq!(summary.data_blobs, 0, "{summary:?}");
}

#[test]
fn new_repository_is_keyed_and_a_copy_target_chunks_alike() {
    let work = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        chunker: ChunkerParams {
            min_size: 16 << 10,
            avg_size: 64 << 10,
            max_size: 256 << 10,
        },
        ..InitOptions::default()
    };
    assert_eq!(opts.chunker_gear, ChunkerGear::Keyed);
    let src = Repository::init(local(&work.path().join("src")), b"pw", &opts).unwrap();
    let src = {
        drop(src);
        Repository::open(local(&work.path().join("src")), b"pw").unwrap()
    };
    assert_eq!(src.config().chunker_gear, ChunkerGear::Keyed);

    let (min, avg, max) = sizes(&src.config().chunker);
    let bytes = src.master_key().to_bytes();
    let keyed = Chunker::with_table(min, avg, max, GearTable::keyed(&bytes[32..])).unwrap();
    let seeded = Chunker::new(min, avg, max, src.master_key().chunker_seed()).unwrap();
    let d = noise(9, 4 << 20);
    let got = cuts(src.chunker(), &d);
    assert!(got.len() > 20);
    assert_eq!(got, cuts(&keyed, &d));
    assert_ne!(got, cuts(&seeded, &d));

    // A copy target shares the id key and seed, not the data key: it must
    // cut where its source cuts.
    let dst = init_with_params_from(local(&work.path().join("dst")), b"pw2", &opts, &src).unwrap();
    assert_eq!(dst.config().chunker_gear, ChunkerGear::Keyed);
    assert_eq!(cuts(dst.chunker(), &d), got);

    // A repository asked for the seeded table (to chunk like an old one)
    // records it and cuts with it.
    let old_opts = InitOptions {
        chunker_gear: ChunkerGear::Seeded,
        ..opts.clone()
    };
    let old = Repository::init(local(&work.path().join("old")), b"pw", &old_opts).unwrap();
    assert_eq!(old.config().chunker_gear, ChunkerGear::Seeded);
    let want = Chunker::new(min, avg, max, old.master_key().chunker_seed()).unwrap();
    assert_eq!(cuts(old.chunker(), &d), cuts(&want, &d));
}
