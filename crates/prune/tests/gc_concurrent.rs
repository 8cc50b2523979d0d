//! Three backups in a loop (each forgetting its oldest snapshots) while
//! prune runs again and again with a grace period of a few seconds, and
//! repacks whatever is partly used. Afterwards `check --read-data` finds
//! nothing and every snapshot restores byte-identical (issue 16,
//! acceptance 2). A backup may fail with `PruneConflict`, never write a
//! snapshot that misses data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gc_common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gc_common::*;
use lifeboat_core::format::layout::Folder;
use lifeboat_core::format::{Id, Snapshot};
use lifeboat_core::store::Backend;
use lifeboat_prune::gc::{MaxUnused, PruneOptions, PruneProgress, prune};

const GRACE: Duration = Duration::from_secs(3);

/// A store whose index writes sometimes take 4 s: a backup's deduplication
/// decisions then age while it runs, as in a long backup.
#[derive(Debug)]
struct SlowIndexWrites {
    inner: Arc<dyn Backend>,
    calls: AtomicU64,
}

impl Backend for SlowIndexWrites {
    fn put(&self, path: &str, data: bytes::Bytes) -> lifeboat_core::store::Result<()> {
        if Folder::Index.holds(path) {
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            // Most writes are quick; about one in five takes longer than the
            // grace period.
            let b = u64::from(random_bytes(n + 7, 2)[1]);
            let ms = if b >= 200 { 4000 } else { b * 2 };
            std::thread::sleep(Duration::from_millis(ms));
        }
        self.inner.put(path, data)
    }
    fn stage(
        &self,
    ) -> lifeboat_core::store::Result<Option<Box<dyn lifeboat_core::store::StagedObject>>> {
        self.inner.stage()
    }
    fn create(&self, path: &str, data: bytes::Bytes) -> lifeboat_core::store::Result<()> {
        self.inner.create(path, data)
    }
    fn get(&self, path: &str) -> lifeboat_core::store::Result<bytes::Bytes> {
        self.inner.get(path)
    }
    fn get_range(
        &self,
        path: &str,
        range: std::ops::Range<u64>,
    ) -> lifeboat_core::store::Result<bytes::Bytes> {
        self.inner.get_range(path, range)
    }
    fn head(&self, path: &str) -> lifeboat_core::store::Result<lifeboat_core::store::ObjectInfo> {
        self.inner.head(path)
    }
    fn list(
        &self,
        prefix: &str,
    ) -> lifeboat_core::store::Result<Vec<lifeboat_core::store::ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> lifeboat_core::store::Result<()> {
        self.inner.delete(path)
    }
    fn location(&self) -> String {
        self.inner.location()
    }
}

type Kept = Vec<(Id, Snapshot, PathBuf, BTreeMap<PathBuf, Vec<u8>>)>;

#[test]
fn backups_running_while_prune_deletes_and_repacks_lose_nothing() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    drop(init(&repo_dir));
    let kept: Arc<Mutex<Kept>> = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    let (conflicts, backups) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + Duration::from_secs(20);
    let opts = PruneOptions {
        grace: GRACE,
        max_unused: MaxUnused::Bytes(0),
        ..PruneOptions::default()
    };

    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for t in 0..3u64 {
            let (repo_dir, kept) = (repo_dir.clone(), kept.clone());
            let (conflicts, backups) = (conflicts.clone(), backups.clone());
            let src = work.path().join(format!("src{t}"));
            workers.push(s.spawn(move || {
                let mut files: Vec<(String, u64, usize)> = (0..6)
                    .map(|f| {
                        (
                            format!("f{f}"),
                            t * 1000 + f + 1,
                            120_000 + (f as usize) * 11_000,
                        )
                    })
                    .collect();
                let mut mine: Vec<Id> = Vec::new();
                let mut round = 0u64;
                while Instant::now() < deadline {
                    round += 1;
                    // Two files change each round, to one of four versions, so
                    // content of forgotten snapshots comes back and is found
                    // in packs prune has marked.
                    for k in 0..2 {
                        let f = ((round * 2 + k) % 6) as usize;
                        files[f].1 = t * 1000 + f as u64 * 10 + (round / 3 + k) % 2 + 100;
                    }
                    write_source(&src, &files);
                    let repo = open(Arc::new(SlowIndexWrites {
                        inner: local(&repo_dir),
                        calls: AtomicU64::new(t * 1000 + round),
                    }));
                    match backup(&repo, &src) {
                        Ok((id, snap)) => {
                            backups.fetch_add(1, Ordering::Relaxed);
                            mine.push(id);
                            kept.lock()
                                .unwrap()
                                .push((id, snap, src.clone(), read_tree(&src)));
                        }
                        Err(lifeboat_core::Error::PruneConflict { .. }) => {
                            conflicts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("backup {t} failed: {e}"),
                    }
                    // Forget all but the newest two: garbage for prune.
                    while mine.len() > 2 {
                        let old = mine.remove(0);
                        repo.delete_snapshot(&old).unwrap();
                        kept.lock().unwrap().retain(|k| k.0 != old);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }));
        }
        let pruner = {
            let (repo_dir, done, opts) = (repo_dir.clone(), done.clone(), opts.clone());
            s.spawn(move || {
                let (mut runs, mut deleted, mut repacked) = (0, 0, 0);
                while !done.load(Ordering::Relaxed) {
                    let repo = open(local(&repo_dir));
                    let r = prune(&repo, &opts, &PruneProgress::default()).unwrap();
                    runs += 1;
                    deleted += r.plan.delete.len();
                    repacked += r.plan.repack.len();
                    std::thread::sleep(Duration::from_millis(300));
                }
                (runs, deleted, repacked)
            })
        };
        for w in workers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        let (runs, deleted, repacked) = pruner.join().unwrap();
        assert!(runs >= 5, "prune ran {runs} times");
        assert!(deleted > 0, "prune deleted nothing while backups ran");
        assert!(repacked > 0, "prune repacked nothing while backups ran");
    });
    // Backups slower than the grace period stop with a conflict (safely);
    // the others must get through.
    let (ok, failed) = (
        backups.load(Ordering::Relaxed),
        conflicts.load(Ordering::Relaxed),
    );
    eprintln!("{ok} backups succeeded, {failed} stopped by a prune conflict");
    assert!(ok >= 10, "{ok} backups succeeded, {failed} conflicts");

    // Let the last marks fall due, and delete them.
    let repo = open(local(&repo_dir));
    prune(&repo, &opts, &PruneProgress::default()).unwrap();
    std::thread::sleep(GRACE + Duration::from_secs(1));
    prune(&repo, &opts, &PruneProgress::default()).unwrap();

    let repo = open(local(&repo_dir));
    assert_no_damage(&repo, true);
    let kept = kept.lock().unwrap();
    assert_eq!(kept.len(), repo.snapshots().unwrap().items.len());
    let scratch = work.path().join("restore");
    for (_, snap, src, files) in kept.iter() {
        assert_eq!(&restore(&repo, snap, src, &scratch), files);
    }
}
