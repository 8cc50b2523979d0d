//! Verification and repair of Lifeboat repositories.
//!
//! This crate owns `lifeboat check` and `lifeboat repair snapshots`: it
//! judges whether a repository is whole and rewrites snapshots around data
//! that is lost. [`check`] has a structural pass (key slots, the index
//! against one listing of the packs, index segments, every snapshot's trees
//! walked to confirm that each referenced blob can be found) and an
//! optional data pass that downloads packs and verifies every byte: the
//! pack's hash against its name, its header against the index, and every
//! blob decrypted, decompressed and re-hashed. Findings come in
//! [`Category`]s, each naming the snapshots it affects. It must not touch
//! what it checks: [`check`] only reads, except for its own encrypted
//! verification record under `verify/` in resumable mode ([`Resume`]), and
//! [`repair_snapshots`] is the only code here that writes repository data
//! (new packs, one index segment, snapshots), and only when asked to. The
//! on-store encodings and the layout belong to `lifeboat-format`, opening a
//! repository to `lifeboat-core`, argument parsing and output to the CLI.
//!
//! ```
//! use lifeboat_check::{CheckOptions, RepairOptions, Resume, Subset};
//! use std::time::Duration;
//!
//! // Verify a random tenth of the packs.
//! let sampled = CheckOptions {
//!     read_data: true,
//!     subset: "10%".parse::<Subset>()?,
//!     ..CheckOptions::default()
//! };
//! assert_eq!(sampled.subset, Subset::Percent(10.0));
//! // Or, run after run, the packs verified longest ago, an hour at a time.
//! let resumed = CheckOptions {
//!     read_data: true,
//!     resume: Some(Resume {
//!         max_duration: Some(Duration::from_secs(3600)),
//!         ..Resume::default()
//!     }),
//!     ..CheckOptions::default()
//! };
//! assert!(resumed.resume.is_some());
//! let dry_run = RepairOptions::default();
//! assert!(!dry_run.forget_damaged);
//! # Ok::<(), lifeboat_check::SubsetError>(())
//! ```

mod check;
mod data;
mod error;
mod options;
mod record;
mod repair;
mod report;
mod state;
mod structure;
mod subset;
mod walk;

pub use check::check;
pub use error::{Corruption, Error, Result};
pub use options::{CheckOptions, CheckProgress, Resume};
pub use repair::{
    DroppedPack, REPAIRED_FROM, REPAIRED_TAG, RepairOptions, RepairReport, RepairedSnapshot,
    repair_snapshots,
};
pub use report::{Category, CheckReport, DataStats, Problem, Severity, Verdict};
pub use subset::{SizeError, Subset, SubsetError};
