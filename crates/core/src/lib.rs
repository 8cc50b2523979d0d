//! The Lifeboat repository engine.
//!
//! Owns [`Repository`]: creating and opening repositories and their key
//! slots, the backup pipeline (read the source → chunk → hash → dedup →
//! compress → encrypt → pack → upload), restore, copy, snapshots, trees,
//! diff and stats. It composes the other crates and must not touch what
//! they own: byte layouts, encodings and the store's folder names belong
//! to `lifeboat-format` (see `lifeboat_format::layout`), storage to
//! `lifeboat-store`, blob lookup to `lifeboat-index`, retention to
//! `lifeboat-prune` and verification to `lifeboat-check`.
//!
//! The `testing` feature adds failure injection into the backup pipeline
//! and restore (`FailPoints`, `Stage`, `BackupOptions::fail`,
//! `RestoreOptions::fail`), for tests only.

/// Fail here if the test's [`FailPoints`] say so: `fail_point!(points, Stage)`
/// evaluates to a `Result<()>`. Without the `testing` feature it is `Ok(())`
/// and the points expression is not compiled.
#[cfg(feature = "testing")]
macro_rules! fail_point {
    ($points:expr, $stage:ident) => {
        if $points.fires($crate::failpoint::Stage::$stage) {
            Err($crate::Error::Injected($crate::failpoint::Stage::$stage))
        } else {
            $crate::Result::<()>::Ok(())
        }
    };
}
#[cfg(not(feature = "testing"))]
macro_rules! fail_point {
    ($points:expr, $stage:ident) => {
        $crate::Result::<()>::Ok(())
    };
}

mod backup;
mod copy;
mod damage;
mod diff;
mod drill;
mod entry_error;
mod error;
#[cfg(feature = "testing")]
mod failpoint;
mod filter;
#[doc(hidden)]
pub mod internals;
mod meta;
mod progress;
mod prune_guard;
mod repo;
mod restore;
mod restore_block;
mod restore_plan;
mod restore_target;
mod saver;
mod stats;
mod tree_walk;

pub use backup::{
    BackupOptions, BackupReport, BackupSource, BlockChunking, ByteRange, DEFAULT_BLOCK_CHUNKING,
    MAX_FIXED_CHUNK, META_CHANGED_RANGES, META_CHUNKING, META_SIZE, MIN_FIXED_CHUNK, StreamMeta,
    parse_changed_ranges,
};
pub use copy::{CopyReport, copy_snapshots, init_with_params_from, same_blob_ids};
pub use damage::{Listing, SnapshotList, Warning, WarningKind};
pub use diff::{Change, DiffEntry};
pub use drill::{MetadataChecks, Mismatch, RestoreCheck};
pub use entry_error::EntryError;
pub use error::{BlobDamage, Error, Result};
#[cfg(feature = "testing")]
pub use failpoint::{FailPoints, Stage};
pub use filter::{PathFilter, SnapshotFilter};
pub use progress::Progress;
pub use repo::{InitOptions, KeyInfo, NoDeleteReason, Repository, RotateReport};
pub use restore::{RestoreOptions, RestoreReport};
pub use restore_block::{BlockRestoreOptions, BlockRestoreReport};
pub use restore_target::{Overwrite, RESTORE_TEMP_PREFIX};
pub use stats::Stats;

pub use lifeboat_format as format;
pub use lifeboat_store as store;
