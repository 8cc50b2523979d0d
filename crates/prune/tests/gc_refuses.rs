//! Prune deletes nothing when it cannot know what is used: a snapshot that
//! cannot be read, or used blobs that no index segment lists (their packs
//! would look unused). On copies of the golden repositories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod gc_common;

use std::path::Path;

use gc_common::*;
use lifeboat_core::Repository;
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
fn used_blobs_in_no_index_segment_stop_prune_before_anything_is_deleted() {
    let (_tmp, dir) = golden("missing_index_segment");
    let before = all_objects(&dir);
    let repo = open_golden(&dir);
    let e = prune(&repo, &instant(), &PruneProgress::default()).unwrap_err();
    assert!(
        matches!(e, Error::IncompleteIndex { missing } if missing > 0)
            || matches!(e, Error::TreeNotIndexed { .. }),
        "{e}"
    );
    assert!(e.to_string().contains("index rebuild"), "{e}");
    assert_eq!(all_objects(&dir), before);
}
