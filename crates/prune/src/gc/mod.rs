//! Pack garbage collection (`lifeboat prune`), safe while backups run.
//!
//! A prune walks every snapshot's trees into the index's one-bit-per-blob
//! [`UsedBlobs`](lifeboat_index::UsedBlobs) set, finds the packs that hold
//! no used blob and the leftovers of killed backups, and deletes them in
//! two phases: a run *marks* them (`marks/<id>`), a later run deletes those
//! still unused once the grace period has passed. Partly used packs are
//! repacked when their unused share is worth it. Only one prune runs at a
//! time (an expiring lock under `locks/`); backups take no lock. The
//! protocol and why it is safe are in `docs/prune.md`.

mod execute;
mod lock;
mod marks;
mod options;
mod plan;
mod run;

pub use execute::Executed;
pub use lock::{UnlockReport, unlock};
pub use options::{Clock, Error, MaxUnused, PruneOptions, PruneProgress, Result};
pub use plan::{PackUsage, PrunePlan, Tally, Unused};
pub use run::{PruneReport, prune};
