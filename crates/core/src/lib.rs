//! The Lifeboat repository engine.
//!
//! Owns [`Repository`]: creating and opening repositories and their key
//! slots, the backup pipeline (walk → read → chunk → hash → dedup →
//! compress → encrypt → pack → upload), restore, snapshots, trees, diff and
//! stats. Byte layouts belong to `lifeboat-format`, storage to
//! `lifeboat-store`, blob lookup to `lifeboat-index`; this crate composes
//! them and must not define encodings of its own.

mod backup;
mod copy;
mod error;
mod failpoint;
mod filter;
mod meta;
mod repo;
mod restore;
mod restore_plan;
mod saver;
mod walk;

pub use backup::{BackupOptions, BackupReport, BackupSource, EntryError, Progress};
pub use copy::{CopyReport, copy_snapshots, init_with_params_from, same_blob_ids};
pub use error::{Error, Result};
#[doc(hidden)]
pub use failpoint::{FailPoints, Stage};
pub use filter::{PathFilter, SnapshotFilter};
pub use repo::{InitOptions, KeyInfo, Repository};
pub use restore::{RestoreOptions, RestoreReport};

/// Access to a repository's insides for the other Lifeboat crates; not part
/// of the embedding API.
#[doc(hidden)]
pub mod internals {
    pub use crate::repo::RepositoryInternals;
}
pub use walk::{Change, DiffEntry, Stats};

pub use lifeboat_format as format;
pub use lifeboat_store as store;
