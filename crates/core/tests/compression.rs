//! Compression modes through the library: a repository made in each mode
//! stores it and round trips; backups written at different levels into one
//! repository are all read back by a fresh open (a reader needs no level).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifeboat_core::format::{Compression, KdfParams, Snapshot};
use lifeboat_core::store::{Backend, ObjectStoreBackend};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions,
};

const KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

const MODES: [Compression; 9] = [
    Compression::Auto,
    Compression::Fastest,
    Compression::Better,
    Compression::Max,
    Compression::Off,
    Compression::Level(1),
    Compression::Level(3),
    Compression::Level(-5),
    Compression::Level(12),
];

fn xorshift(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "pack ",
        "blob ",
        "tree ",
        "zstd ",
        "level ",
        "probe ",
        "chunk ",
        "index\n",
        "etcd ",
        "volume ",
        "restore ",
        "snapshot ",
    ];
    let r = xorshift(seed, len / 3);
    let mut out = Vec::with_capacity(len + 16);
    for b in r {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[b as usize % WORDS.len()].as_bytes());
    }
    out.truncate(len);
    out
}

/// Text files below and above the probe's threshold, random bytes, and a
/// file that is half random, half text.
fn make_source(dir: &Path, seed: u64) -> Vec<(PathBuf, Vec<u8>)> {
    fs::create_dir_all(dir).unwrap();
    let mut half = xorshift(seed + 3, 200_000);
    half.extend(text(seed + 4, 200_000));
    let files = vec![
        (dir.join("small.txt"), text(seed, 2_000)),
        (dir.join("big.txt"), text(seed + 1, 500_000)),
        (dir.join("random.bin"), xorshift(seed + 2, 300_000)),
        (dir.join("half.bin"), half),
    ];
    for (p, d) in &files {
        fs::write(p, d).unwrap();
    }
    files
}

fn init(dir: &Path, compression: Compression) -> Repository {
    fs::create_dir_all(dir).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(dir).unwrap());
    let opts = InitOptions {
        kdf: KDF,
        compression,
        ..InitOptions::default()
    };
    Repository::init(backend, b"pw", &opts).unwrap()
}

fn backup(repo: &Repository, src: &Path, compression: Option<Compression>) -> Snapshot {
    let opts = BackupOptions {
        compression,
        ..BackupOptions::default()
    };
    let r = repo
        .backup(
            BackupSource::Paths(vec![src.to_path_buf()]),
            &opts,
            &Progress::default(),
        )
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.snapshot
}

/// Restore `snap` into `target` and compare every file of `files`.
fn restore_and_compare(
    repo: &Repository,
    snap: &Snapshot,
    target: &Path,
    files: &[(PathBuf, Vec<u8>)],
) {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        ..RestoreOptions::default()
    };
    let r = repo.restore(snap, &opts, &Progress::default()).unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    for (p, want) in files {
        let got = fs::read(target.join(p.strip_prefix("/").unwrap())).unwrap();
        assert!(got == *want, "{} differs after restore", p.display());
    }
}

#[test]
fn a_repository_in_each_mode_stores_it_and_round_trips() {
    for (i, mode) in MODES.into_iter().enumerate() {
        let work = tempfile::tempdir().unwrap();
        let repo = init(&work.path().join("repo"), mode);
        assert_eq!(repo.config().compression, Some(mode));
        assert_eq!(repo.config().compression(), mode);
        assert_eq!(repo.config().compression_level, mode.level());
        let files = make_source(&work.path().join("src"), i as u64 * 10);
        let snap = backup(&repo, &work.path().join("src"), None);
        let s = snap.summary.clone().unwrap();
        if mode == Compression::Off {
            assert!(s.bytes_stored >= s.bytes_added, "{mode}: {s:?}");
        } else {
            assert!(s.bytes_stored < s.bytes_added * 3 / 4, "{mode}: {s:?}");
        }
        restore_and_compare(&repo, &snap, &work.path().join("restored"), &files);
    }
}

#[test]
fn backups_at_every_level_in_one_repository_are_read_by_a_fresh_open() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("repo");
    let repo = init(&dir, Compression::Fastest);
    let mut runs = Vec::new();
    for (i, mode) in MODES.into_iter().enumerate() {
        let src = work.path().join(format!("src-{i}"));
        let files = make_source(&src, 1000 + i as u64 * 10);
        let snap = backup(&repo, &src, Some(mode));
        runs.push((mode, snap, files));
    }
    let stored = |m: Compression| {
        let run = runs.iter().find(|r| r.0 == m).unwrap();
        run.1.summary.clone().unwrap().bytes_stored
    };
    // The override took effect: each run stored its data its own way.
    assert!(stored(Compression::Max) < stored(Compression::Fastest));
    assert!(stored(Compression::Off) > stored(Compression::Fastest) * 3 / 2);
    // The repository's own mode is unchanged by the overrides.
    drop(repo);
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&dir).unwrap());
    let fresh = Repository::open_with_cache(backend, b"pw", None).unwrap();
    assert_eq!(fresh.config().compression(), Compression::Fastest);
    for (i, (mode, snap, files)) in runs.iter().enumerate() {
        let target = work.path().join(format!("restored-{i}"));
        restore_and_compare(&fresh, snap, &target, files);
        assert!(snap.summary.is_some(), "{mode}");
    }
}
