//! Shared fixtures of the gc tests: real local repositories in temporary
//! directories, random sources, a fake clock and a store that stops after
//! N operations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, dead_code)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use lifeboat_check::{CheckOptions, CheckProgress, CheckReport};
use lifeboat_core::format::layout::Folder;
use lifeboat_core::format::{ChunkerParams, Id, KdfParams, Snapshot};
use lifeboat_core::store::{Backend, Error, ObjectInfo, ObjectStoreBackend, Result};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions,
};
use lifeboat_prune::gc::Clock;

pub const PASSWORD: &[u8] = b"pw";

/// A fake clock in Unix seconds, moved by the test.
#[derive(Clone)]
pub struct FakeClock(pub Arc<AtomicU64>);

impl FakeClock {
    pub fn new() -> FakeClock {
        FakeClock(Arc::new(AtomicU64::new(1_800_000_000)))
    }
    pub fn advance(&self, secs: u64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
    pub fn clock(&self) -> Clock {
        let t = self.0.clone();
        Clock::from_fn(move || t.load(Ordering::SeqCst))
    }
}

pub fn init(dir: &Path) -> Repository {
    std::fs::create_dir_all(dir).unwrap();
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        pack_size: 1 << 20,
        chunker: ChunkerParams {
            min_size: 16 << 10,
            avg_size: 64 << 10,
            max_size: 256 << 10,
        },
        ..InitOptions::default()
    };
    Repository::init(local(dir), PASSWORD, &opts).unwrap()
}

pub fn local(dir: &Path) -> Arc<dyn Backend> {
    Arc::new(ObjectStoreBackend::local(dir).unwrap())
}

pub fn open(backend: Arc<dyn Backend>) -> Repository {
    Repository::open_with_cache(backend, PASSWORD, None).unwrap()
}

/// `len` bytes of xorshift from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    // Spread the seed so that neighbouring seeds give unrelated bytes.
    let mut s = seed.wrapping_add(1).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// Write `files` (name → seed, length) under `dir`, replacing what is there.
pub fn write_source(dir: &Path, files: &[(String, u64, usize)]) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, seed, len) in files {
        std::fs::write(dir.join(name), random_bytes(*seed, *len)).unwrap();
    }
}

/// Every file under `dir`, by path relative to it.
pub fn read_tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

pub fn backup(repo: &Repository, src: &Path) -> lifeboat_core::Result<(Id, Snapshot)> {
    let opts = BackupOptions {
        threads: Some(2),
        ..BackupOptions::default()
    };
    repo.backup(
        BackupSource::Paths(vec![src.to_path_buf()]),
        &opts,
        &Progress::default(),
    )
    .map(|r| (r.id, r.snapshot))
}

/// Restore `snap` (a backup of `src`) and return its files, as
/// [`read_tree`] gives them for the source.
pub fn restore(
    repo: &Repository,
    snap: &Snapshot,
    src: &Path,
    scratch: &Path,
) -> BTreeMap<PathBuf, Vec<u8>> {
    let _ = std::fs::remove_dir_all(scratch);
    let opts = RestoreOptions {
        target: scratch.to_path_buf(),
        ..RestoreOptions::default()
    };
    let r = repo.restore(snap, &opts, &Progress::default()).unwrap();
    assert!(r.errors.is_empty(), "restore errors: {:?}", r.errors);
    read_tree(&scratch.join(src.strip_prefix("/").unwrap()))
}

pub fn check(repo: &Repository, read_data: bool) -> CheckReport {
    let opts = CheckOptions {
        read_data,
        ..CheckOptions::default()
    };
    lifeboat_check::check(repo, &opts, &CheckProgress::default()).unwrap()
}

/// Assert a check finds no damage.
pub fn assert_no_damage(repo: &Repository, read_data: bool) {
    let r = check(repo, read_data);
    assert!(!r.has_damage(), "check found damage: {:#?}", r.problems);
    assert!(r.damaged_snapshots.is_empty(), "{:?}", r.damaged_snapshots);
}

/// Bytes in `data/` of the repository at `dir`.
pub fn data_bytes(dir: &Path) -> u64 {
    local(dir)
        .list(&Folder::Data.prefix())
        .unwrap()
        .iter()
        .map(|o| o.size)
        .sum()
}

/// Names of every object in the repository at `dir`.
pub fn all_objects(dir: &Path) -> Vec<String> {
    local(dir)
        .list("")
        .unwrap()
        .into_iter()
        .map(|o| o.path)
        .collect()
}

/// A store that carries out its first `budget` operations and fails every
/// later one, as if the process had been killed after the budget-th.
#[derive(Debug)]
pub struct StopAfter {
    pub inner: Arc<dyn Backend>,
    pub ops: AtomicU64,
    pub budget: AtomicU64,
}

impl StopAfter {
    pub fn new(inner: Arc<dyn Backend>) -> StopAfter {
        StopAfter {
            inner,
            ops: AtomicU64::new(0),
            budget: AtomicU64::new(u64::MAX),
        }
    }
    /// Carry out `n` more operations, then fail every one.
    pub fn stop_after(&self, n: u64) {
        self.budget
            .store(self.ops.load(Ordering::SeqCst) + n, Ordering::SeqCst);
    }
    /// Operations so far.
    pub fn count(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }
    fn step(&self, path: &str) -> Result<()> {
        if self.ops.fetch_add(1, Ordering::SeqCst) >= self.budget.load(Ordering::SeqCst) {
            return Err(Error::backend(path, std::io::Error::other("killed")));
        }
        Ok(())
    }
}

impl Backend for StopAfter {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.step(path)?;
        self.inner.put(path, data)
    }
    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        self.step(path)?;
        self.inner.create(path, data)
    }
    fn get(&self, path: &str) -> Result<Bytes> {
        self.step(path)?;
        self.inner.get(path)
    }
    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.step(path)?;
        self.inner.get_range(path, range)
    }
    fn head(&self, path: &str) -> Result<ObjectInfo> {
        self.step(path)?;
        self.inner.head(path)
    }
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.step(prefix)?;
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> Result<()> {
        self.step(path)?;
        self.inner.delete(path)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

/// Copy directory `from` to `to` (the repository of one crash trial).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
