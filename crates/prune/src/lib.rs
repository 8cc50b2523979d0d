//! Retention and garbage collection for Lifeboat repositories.
//!
//! Owns `forget` (which snapshots a [`RetentionPolicy`] keeps: [`plan_forget`]
//! decides, [`forget()`] also deletes; see docs/forget.md) and, in time, `prune`
//! (removing packs no snapshot references, safely against concurrent
//! backups). It decides what to delete; it never changes how anything is
//! encoded.

mod forget;
mod retention;
mod retention_time;

pub use forget::{
    ForgetError, ForgetOptions, ForgetPlan, ForgetReport, GroupBy, GroupByError, GroupKey,
    GroupPlan, KeptSnapshot, PlannedSnapshot, forget, plan_forget,
};
pub use retention::{
    KeepCount, KeepCountError, KeepReason, PolicyInput, RetentionPolicy, TagList, TagListError,
    Verdict,
};
pub use retention_time::{DurationError, KeepWithin, SnapshotTime};

/// Errors from retention decisions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A snapshot time could not be parsed.
    #[error("snapshot {id}: invalid time {time:?}")]
    InvalidTime {
        /// Snapshot id.
        id: String,
        /// The time string.
        time: String,
    },
    /// The repository failed.
    #[error(transparent)]
    Core(#[from] lifeboat_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
