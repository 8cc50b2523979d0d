//! Prune deletes nothing when it cannot know what is used: a snapshot that
//! cannot be read; and it keeps every pack no index segment lists while
//! used blobs are unindexed (such a pack would look unused). On copies of
//! the golden repositories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gc_common;

use std::path::Path;

use gc_common::*;
use lifeboat_core::Repository;
use lifeboat_format::layout::Folder;
use lifeboat_prune::gc::{Error, PruneOptions, PruneProgress, prune};

fn golden(variant: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/golden")
            .join(variant),
        &dir,
    );
    (tmp, dir)
}

fn open_golden(dir: &Path) -> Repository {
    let pw = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden/password"),
    )
    .unwrap();
    Repository::open_with_cache(local(dir), pw.trim_end().as_bytes(), None).unwrap()
}

fn instant() -> PruneOptions {
    PruneOptions {
        instant_delete: true,
        ..PruneOptions::default()
    }
}

#[test]
fn a_damaged_snapshot_stops_prune_before_anything_is_deleted() {
    let (_tmp, dir) = golden("damaged_snapshot");
    let before = all_objects(&dir);
    let repo = open_golden(&dir);
    let e = prune(&repo, &instant(), &PruneProgress::default()).unwrap_err();
    assert!(matches!(e, Error::DamagedSnapshot { .. }), "{e}");
    assert!(e.to_string().contains("repair snapshots"), "{e}");
    // The lock object is gone again and nothing else changed.
    assert_eq!(all_objects(&dir), before);
}

#[test]
fn packs_no_segment_lists_are_kept_while_used_blobs_are_unindexed() {
    let (_tmp, dir) = golden("missing_index_segment");
    let packs = |d: &Path| -> Vec<String> {
        all_objects(d)
            .into_iter()
            .filter(|p| Folder::Data.holds(p))
            .collect()
    };
    let before = packs(&dir);
    let repo = open_golden(&dir);
    // Here a snapshot's root tree is unindexed too, so prune cannot even
    // walk it and stops; had only data blobs been unindexed, it would go on
    // and keep every unindexed pack. Either way no pack may go.
    match prune(&repo, &instant(), &PruneProgress::default()) {
        Ok(r) => {
            assert!(r.plan.missing_blobs > 0, "{:?}", r.plan);
            assert!(r.plan.delete.is_empty(), "{:?}", r.plan.delete);
            assert!(r.plan.mark.is_empty(), "{:?}", r.plan.mark);
        }
        Err(e) => {
            assert!(matches!(e, Error::TreeNotIndexed { .. }), "{e}");
            assert!(e.to_string().contains("index rebuild"), "{e}");
        }
    }
    assert_eq!(
        packs(&dir),
        before,
        "a pack that may hold unindexed used blobs was deleted"
    );
}
