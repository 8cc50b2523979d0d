//! A prune stopped after its N-th store operation, for 20 values of N
//! spread over a whole run that deletes and repacks: after each stop the
//! repository checks clean and every kept snapshot restores byte-identical;
//! a rerun then finishes the job (issue 16, acceptance 3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gc_common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use gc_common::*;
use lifeboat_core::format::Snapshot;
use lifeboat_prune::gc::{MaxUnused, PruneOptions, PruneProgress, prune};

const GRACE: u64 = 24 * 3600;

struct Base {
    repo_dir: PathBuf,
    kept: Vec<(Snapshot, PathBuf)>,
}

/// Four snapshots; the first and third forgotten, so the first's packs
/// are partly used (the second shares half its files) and the third's are
/// unused. A first prune has marked the unused packs; the clock of the
/// trials starts when they are due.
fn base(work: &Path) -> Base {
    let repo_dir = work.join("base");
    let repo = init(&repo_dir);
    let file = |name: &str, seed: u64| {
        (
            name.to_string(),
            seed,
            150_000 + (seed as usize % 7) * 9_000,
        )
    };
    let src1 = work.join("src1");
    write_source(
        &src1,
        &(0..8)
            .map(|i| file(&format!("a{i}"), 10 + i))
            .collect::<Vec<_>>(),
    );
    let (s1, _) = backup(&repo, &src1).unwrap();
    let mut files: Vec<_> = (0..4).map(|i| file(&format!("a{i}"), 10 + i)).collect();
    files.extend((0..2).map(|i| file(&format!("b{i}"), 30 + i)));
    write_source(&src1, &files);
    let (_, s2) = backup(&repo, &src1).unwrap();
    let src3 = work.join("src3");
    write_source(
        &src3,
        &(0..5)
            .map(|i| file(&format!("c{i}"), 50 + i))
            .collect::<Vec<_>>(),
    );
    let (s3, _) = backup(&repo, &src3).unwrap();
    let src4 = work.join("src4");
    write_source(
        &src4,
        &(0..3)
            .map(|i| file(&format!("d{i}"), 70 + i))
            .collect::<Vec<_>>(),
    );
    let (_, s4) = backup(&repo, &src4).unwrap();
    repo.delete_snapshot(&s1).unwrap();
    repo.delete_snapshot(&s3).unwrap();
    let clock = FakeClock::new();
    let marked = prune(
        &repo,
        &PruneOptions {
            clock: clock.clock(),
            max_unused: MaxUnused::Unlimited,
            ..PruneOptions::default()
        },
        &PruneProgress::default(),
    )
    .unwrap();
    assert!(!marked.plan.mark.is_empty());
    Base {
        repo_dir,
        kept: vec![(s2, src1), (s4, src4)],
    }
}

fn options(clock: &FakeClock) -> PruneOptions {
    PruneOptions {
        clock: clock.clock(),
        max_unused: MaxUnused::Bytes(0),
        ..PruneOptions::default()
    }
}

fn trial_clock() -> FakeClock {
    let c = FakeClock::new();
    c.advance(GRACE);
    c
}

fn assert_sound(repo_dir: &Path, kept: &[(Snapshot, PathBuf)], scratch: &Path, what: &str) {
    let repo = open(local(repo_dir));
    // Restores verify every blob they read; reading all data is left to
    // the reference run.
    let r = check(&repo, what == "reference");
    assert!(
        !r.has_damage(),
        "{what}: check found damage: {:#?}",
        r.problems
    );
    for (snap, src) in kept {
        assert_eq!(restore(&repo, snap, src, scratch), read_tree(src), "{what}");
    }
}

/// The prune, its rerun after the lock expired, and two runs a grace
/// period apart to delete what the others marked; returns the final size.
fn finish(repo_dir: &Path, clock: &FakeClock) -> u64 {
    let repo = open(local(repo_dir));
    for advance in [3600, GRACE, GRACE] {
        clock.advance(advance);
        prune(&repo, &options(clock), &PruneProgress::default()).unwrap();
    }
    data_bytes(repo_dir)
}

#[test]
fn a_prune_stopped_at_any_store_operation_leaves_a_sound_repository() {
    let work = tempfile::tempdir().unwrap();
    let base = base(work.path());
    let scratch = work.path().join("restore");

    // A whole run, counted, and where the repository ends up.
    let reference = work.path().join("reference");
    copy_dir(&base.repo_dir, &reference);
    let store = Arc::new(StopAfter::new(local(&reference)));
    let repo = open(store.clone());
    let clock = trial_clock();
    let start = store.count();
    let full = prune(&repo, &options(&clock), &PruneProgress::default()).unwrap();
    let total = store.count() - start;
    assert!(
        !full.plan.repack.is_empty() && !full.plan.delete.is_empty(),
        "{:?}",
        full.plan
    );
    let reference_size = finish(&reference, &clock);
    assert_sound(&reference, &base.kept, &scratch, "reference");

    let mut stopped = 0;
    for k in 0..20u64 {
        let n = k * total / 20;
        let dir = work.path().join(format!("trial{k}"));
        copy_dir(&base.repo_dir, &dir);
        let store = Arc::new(StopAfter::new(local(&dir)));
        let repo = open(store.clone());
        let clock = trial_clock();
        store.stop_after(n);
        if prune(&repo, &options(&clock), &PruneProgress::default()).is_err() {
            stopped += 1;
        }
        drop(repo);
        assert_sound(
            &dir,
            &base.kept,
            &scratch,
            &format!("stopped after {n} of {total}"),
        );
        let size = finish(&dir, &clock);
        assert_sound(
            &dir,
            &base.kept,
            &scratch,
            &format!("rerun after {n} of {total}"),
        );
        assert!(
            size <= reference_size + reference_size / 100,
            "after a stop at {n}: {size} bytes, an uninterrupted prune left {reference_size}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
    assert_eq!(stopped, 20, "every trial was stopped before the end");
}
