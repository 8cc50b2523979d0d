//! Repacking partly used and small packs: blobs are copied as their stored
//! envelopes (groups of small blobs too, while every member is used; the
//! used members of a partly dead group are grouped anew), the repository
//! shrinks, `check --read-data` is clean and every
//! kept snapshot restores byte-identical.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gc_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gc_common::*;
use lifeboat_core::Repository;
use lifeboat_core::format::layout::{self, Folder};
use lifeboat_core::format::{ContentPart, Id, Snapshot};
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_prune::gc::{MaxUnused, PruneOptions, PruneProgress, prune};

/// The stored envelope of every data blob under `tree`, and its pack.
fn envelopes(repo: &Repository, tree: &Id) -> BTreeMap<Id, (Id, Vec<u8>)> {
    let mut out = BTreeMap::new();
    repo.walk(tree, &mut |_, node| {
        for part in &node.content {
            if let ContentPart::Blob { id, .. } = part {
                let loc = repo.index().get(id).unwrap();
                let start = u64::from(loc.offset);
                let bytes = repo
                    .backend()
                    .get_range(
                        &layout::object_path(Folder::Data, &loc.pack),
                        start..start + u64::from(loc.stored_len),
                    )
                    .unwrap();
                out.insert(*id, (loc.pack, bytes.to_vec()));
            }
        }
        Ok(true)
    })
    .unwrap();
    out
}

/// Twelve files of 140,000 bytes (contents from `seed`) backed up, then
/// every other one removed and backed up again: once the first snapshot is
/// forgotten, each data pack of the first backup is half used. Returns the
/// repository folder, the repository, the source folder, the twelve files,
/// the first snapshot and the second.
type HalfDead = (
    PathBuf,
    Repository,
    PathBuf,
    Vec<(String, u64, usize)>,
    (Id, Snapshot),
    Snapshot,
);

fn half_dead(work: &Path, seed: u64) -> HalfDead {
    let repo_dir = work.join("repo");
    let repo = init(&repo_dir);
    let src = work.join("src");
    let file = |i: u64| (format!("f{i}"), seed + i, 140_000);
    let all: Vec<_> = (0..12).map(file).collect();
    write_source(&src, &all);
    let first = backup(&repo, &src).unwrap();
    write_source(&src, &(0..12).step_by(2).map(file).collect::<Vec<_>>());
    let (_, kept) = backup(&repo, &src).unwrap();
    (repo_dir, repo, src, all, first, kept)
}

#[test]
fn partly_used_packs_are_repacked_without_reencrypting() {
    let work = tempfile::tempdir().unwrap();
    let (repo_dir, repo, src, _, (first, _), kept) = half_dead(work.path(), 500);
    repo.delete_snapshot(&first).unwrap();
    let before = envelopes(&repo, &kept.tree);
    let size_before = data_bytes(&repo_dir);

    let opts = PruneOptions {
        instant_delete: true,
        max_unused: MaxUnused::Bytes(0),
        ..PruneOptions::default()
    };
    let report = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    assert!(!report.plan.repack.is_empty(), "{:?}", report.plan);
    let executed = report.executed.unwrap();
    assert!(executed.blobs_repacked > 0 && !executed.packs_written.is_empty());

    let repo = open(local(&repo_dir));
    let after = envelopes(&repo, &kept.tree);
    assert_eq!(after.len(), before.len());
    let mut moved = 0;
    let mut regrouped = 0;
    for (id, (pack, bytes)) in &after {
        let (old_pack, old_bytes) = &before[id];
        if repo.index().get(id).unwrap().flags.grouped() && pack != old_pack {
            // Every other file is dead: each old group held dead members,
            // so its used ones were opened and grouped anew.
            assert_ne!(bytes, old_bytes, "blob {id} was regrouped");
            regrouped += 1;
        } else {
            assert_eq!(bytes, old_bytes, "blob {id} was copied as stored");
        }
        moved += usize::from(pack != old_pack);
    }
    assert!(moved > regrouped, "some blobs moved to new packs as stored");
    assert!(regrouped > 0, "small chunks were regrouped");
    let size_after = data_bytes(&repo_dir);
    assert!(
        size_after * 10 < size_before * 7,
        "{size_before} -> {size_after} bytes"
    );
    assert_no_damage(&repo, true);
    let scratch = work.path().join("restore");
    assert_eq!(restore(&repo, &kept, &src, &scratch), read_tree(&src));
    // Nothing is left to repack.
    let again = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    assert!(again.plan.repack.is_empty(), "{:?}", again.plan.repack);
}

#[test]
fn small_packs_are_merged_on_request() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let repo = init(&repo_dir);
    let mut snaps = Vec::new();
    for i in 0..5u64 {
        let src = work.path().join(format!("src{i}"));
        write_source(&src, &[(format!("small{i}"), 900 + i, 20_000)]);
        snaps.push((backup(&repo, &src).unwrap().1, src));
    }
    let packs = || local(&repo_dir).list(&Folder::Data.prefix()).unwrap().len();
    let before = packs();
    assert!(
        before >= 6,
        "{before} packs: at least a data pack per backup"
    );
    // Small packs stay without the option (they are fully used).
    let plain = prune(
        &repo,
        &PruneOptions {
            dry_run: true,
            ..PruneOptions::default()
        },
        &PruneProgress::default(),
    )
    .unwrap();
    assert!(plain.plan.repack.is_empty());
    let opts = PruneOptions {
        instant_delete: true,
        repack_small: true,
        ..PruneOptions::default()
    };
    let report = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    assert_eq!(report.plan.repack.len(), before);
    assert_eq!(packs(), 2, "one data and one tree pack");
    let repo = open(local(&repo_dir));
    assert_no_damage(&repo, true);
    let scratch = work.path().join("restore");
    for (snap, src) in &snaps {
        assert_eq!(restore(&repo, snap, src, &scratch), read_tree(src));
    }
}

/// A backup that found a blob in the index before a prune repacked its pack
/// may name it in a snapshot written after the repack, although the
/// blob was dead when the prune planned (the prune copied only the used
/// ones). The old pack keeps those blobs in the index until it is deleted
/// as unused, so such a snapshot stays whole, and the next prunes keep
/// what it uses. Before this, the repack dropped the old pack from the
/// index at once, and such a snapshot named blobs no segment listed
/// (`gc_concurrent` failed so under load).
#[test]
fn a_repacked_pack_keeps_its_uncopied_blobs_findable_until_deleted() {
    let work = tempfile::tempdir().unwrap();
    let (repo_dir, repo, src, all, (first, first_snap), kept) = half_dead(work.path(), 700);
    let dead: Vec<Id> = {
        let live = envelopes(&repo, &kept.tree);
        envelopes(&repo, &first_snap.tree)
            .into_keys()
            .filter(|id| !live.contains_key(id))
            .collect()
    };
    assert!(!dead.is_empty());
    repo.delete_snapshot(&first).unwrap();

    let grace = std::time::Duration::from_secs(2);
    let opts = PruneOptions {
        grace,
        max_unused: MaxUnused::Bytes(0),
        ..PruneOptions::default()
    };
    let report = prune(&repo, &opts, &PruneProgress::default()).unwrap();
    let repacked: Vec<Id> = report.plan.repack.iter().map(|u| u.id).collect();
    assert!(!repacked.is_empty(), "{:?}", report.plan);

    // The dead blobs are still found, in the old packs, which still exist.
    let repo = open(local(&repo_dir));
    for id in &dead {
        let loc = repo.index().get(id).expect("a dead blob left the index");
        assert!(repacked.contains(&loc.pack), "blob {id} in {}", loc.pack);
        local(&repo_dir)
            .head(&layout::object_path(Folder::Data, &loc.pack))
            .unwrap();
    }
    // The late backup's snapshot lands now.
    repo.save_snapshot(&first_snap).unwrap();
    write_source(&src, &all);
    let scratch = work.path().join("restore");
    let repo = open(local(&repo_dir));
    assert_no_damage(&repo, true);
    assert_eq!(restore(&repo, &first_snap, &src, &scratch), read_tree(&src));

    // Past the grace period, prune keeps what the snapshot uses.
    prune(&repo, &opts, &PruneProgress::default()).unwrap();
    std::thread::sleep(grace + std::time::Duration::from_secs(1));
    prune(&repo, &opts, &PruneProgress::default()).unwrap();
    let repo = open(local(&repo_dir));
    assert_no_damage(&repo, true);
    let scratch = work.path().join("restore2");
    assert_eq!(restore(&repo, &first_snap, &src, &scratch), read_tree(&src));
}
