//! Prune after forgetting half the snapshots: the first run only marks,
//! the run after the grace period deletes, and the repository shrinks by
//! what the forgotten snapshots alone had stored (issue 16, acceptance 4).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gc_common;

use gc_common::*;
use lifeboat_prune::gc::{PruneOptions, PruneProgress, prune};

#[test]
fn forgetting_half_the_snapshots_frees_what_only_they_stored() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let repo = init(&repo_dir);
    let mut snaps = Vec::new();
    let mut stored_by = Vec::new();
    for i in 0..6u64 {
        let src = work.path().join(format!("src{i}"));
        let files: Vec<(String, u64, usize)> = (0..4)
            .map(|f| {
                (
                    format!("f{f}"),
                    i * 100 + f + 1,
                    300_000 + (f as usize) * 7_000,
                )
            })
            .collect();
        write_source(&src, &files);
        let before = data_bytes(&repo_dir);
        snaps.push((backup(&repo, &src).unwrap(), src));
        stored_by.push(data_bytes(&repo_dir) - before);
    }
    // Forget the odd ones: their packs hold nothing the others use.
    let mut expected_freed = 0;
    for (i, ((id, _), _)) in snaps.iter().enumerate() {
        if i % 2 == 1 {
            repo.delete_snapshot(id).unwrap();
            expected_freed += stored_by[i];
        }
    }
    let size_before = data_bytes(&repo_dir);
    let clock = FakeClock::new();
    let opts = PruneOptions {
        clock: clock.clock(),
        ..PruneOptions::default()
    };

    let dry = prune(
        &repo,
        &PruneOptions {
            dry_run: true,
            ..opts.clone()
        },
        &PruneProgress::default(),
    )
    .unwrap();
    let objects_before = all_objects(&repo_dir);
    assert!(dry.executed.is_none());
    assert_eq!(
        all_objects(&repo_dir),
        objects_before,
        "a dry run changes nothing"
    );

    let first = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    let marked: u64 = first.plan.mark.iter().map(|u| u.size).sum();
    assert_eq!(
        marked, expected_freed,
        "the first run marks exactly the forgotten packs"
    );
    assert!(first.plan.delete.is_empty());
    assert!(first.plan.repack.is_empty(), "no pack is partly used");
    assert_eq!(
        data_bytes(&repo_dir),
        size_before,
        "nothing is deleted before the grace period"
    );

    // Not yet due one second before the grace period ends.
    clock.advance(24 * 3600 - 1);
    let early = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    assert!(early.plan.delete.is_empty());
    assert_eq!(early.plan.still_marked.len(), first.plan.mark.len());

    clock.advance(1);
    let second = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    let freed = size_before - data_bytes(&repo_dir);
    assert_eq!(second.plan.bytes_deleted_now(), freed);
    // Bound: within 1% (the packs are the forgotten backups' own).
    assert!(
        freed.abs_diff(expected_freed) <= expected_freed / 100,
        "freed {freed}, expected {expected_freed}"
    );
    assert!(
        freed * 10 >= size_before * 4,
        "about half the repository is freed"
    );

    let repo = open(local(&repo_dir));
    assert_no_damage(&repo, true);
    let scratch = work.path().join("restore");
    for (i, ((_, snap), src)) in snaps.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(restore(&repo, snap, src, &scratch), read_tree(src));
        }
    }
    // The marks of deleted packs stay as tombstones for three grace
    // periods; then a run drops them, and the run after that has nothing
    // to do and writes nothing.
    let marks = || {
        local(&repo_dir)
            .list(&lifeboat_core::format::layout::Folder::Marks.prefix())
            .unwrap()
    };
    let tombstones = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    assert!(tombstones.plan.mark.is_empty() && tombstones.plan.delete.is_empty());
    assert_eq!(marks().len(), 1);
    clock.advance(3 * 24 * 3600);
    prune(&repo, &opts, &PruneProgress::default()).unwrap();
    assert!(marks().is_empty());
    let objects = all_objects(&repo_dir);
    let fourth = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    assert!(fourth.plan.is_empty(), "{:?}", fourth.plan);
    assert_eq!(all_objects(&repo_dir), objects);
}

#[test]
fn a_held_lock_stops_a_second_prune_until_it_expires() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let repo = init(&repo_dir);
    let clock = FakeClock::new();
    let opts = PruneOptions {
        clock: clock.clock(),
        ..PruneOptions::default()
    };
    // A prune killed while it held the lock: its lock object stays.
    let store = std::sync::Arc::new(StopAfter::new(local(&repo_dir)));
    let killed = open(store.clone());
    store.stop_after(2);
    assert!(prune(&killed, &opts, &PruneProgress::default()).is_err());
    let held = prune(&repo, &opts, &PruneProgress::default()).unwrap_err();
    assert!(
        matches!(held, lifeboat_prune::gc::Error::Locked { .. }),
        "{held}"
    );
    assert!(held.is_transient());
    clock.advance(3600);
    prune(&repo, &opts, &PruneProgress::default()).unwrap();
    let locks = local(&repo_dir)
        .list(&lifeboat_core::format::layout::Folder::Locks.prefix())
        .unwrap();
    assert!(
        locks.is_empty(),
        "the taken-over lock and its own are gone: {locks:?}"
    );
}
