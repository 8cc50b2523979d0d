//! Retention and garbage collection for Lifeboat repositories.
//!
//! Owns `forget` (which snapshots a [`RetentionPolicy`] keeps: [`plan_forget`]
//! decides, [`forget()`] also deletes; see docs/forget.md) and `prune`
//! ([`prune()`]: removing packs no snapshot references, safely against
//! concurrent backups; see docs/prune.md). It decides what to delete; it never changes how anything is
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

pub mod gc;

pub use gc::{Error as PruneError, PruneOptions, PruneProgress, PruneReport, prune};
