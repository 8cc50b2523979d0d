//! Verification and repair of Lifeboat repositories.
//!
//! Owns `lifeboat check` and `lifeboat repair snapshots`. [`check`] has a
//! structural pass (key slots, the index against one listing of the packs,
//! index segments, every snapshot's trees walked to confirm that each
//! referenced blob can be found) and an optional data pass that downloads
//! packs and verifies every byte: the pack's hash against its name, its
//! header against the index, and every blob decrypted, decompressed and
//! re-hashed. Findings come in [`Category`]s, each naming the snapshots it
//! affects.
//!
//! [`check`] only reads, with one exception: in resumable mode
//! ([`Resume`]) it writes its encrypted verification record under
//! `verify/`. [`repair_snapshots`] is the only code here that writes
//! repository data, and only when asked to.

mod checker;
mod data;
mod record;
mod repair;
mod select;
mod walk;

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use serde::Serialize;

pub use record::RECORD_DIR;
pub use repair::{
    DroppedPack, REPAIRED_FROM, REPAIRED_TAG, RepairOptions, RepairReport, RepairedSnapshot,
    repair_snapshots,
};
pub use select::{Subset, parse_duration, parse_size};

/// Errors that stop a check (or a repair) from running at all. Damage is
/// never an error: it is reported in [`CheckReport`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
    /// The repository could not be read.
    #[error(transparent)]
    Core(#[from] lifeboat_core::Error),
    /// The options do not fit together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// Stopped through [`CheckProgress::cancel`].
    #[error("interrupted")]
    Interrupted,
    /// Repair refuses to run while data that it would drop can still be
    /// recovered by rebuilding the index.
    #[error(
        "{packs} pack(s) hold data that snapshots need but are in no index; \
         run `lifeboat index rebuild` first, then repair what is still lost"
    )]
    IndexIncomplete {
        /// Packs that are in no index but hold needed blobs.
        packs: usize,
    },
    /// Writing the repaired snapshots failed.
    #[error("repair: {0}")]
    Repair(String),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The repository is damaged: data or an access path is lost or at risk.
    Damage,
    /// Worth knowing, harmless: a concurrent or interrupted backup leaves
    /// these, and prune cleans them up.
    Notice,
}

/// Kinds of finding. Each is documented, with its cause and remedy, in
/// `docs/check.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// A key slot does not hash to its name or is not a valid slot: the
    /// password it held no longer opens the repository.
    CorruptKeySlot,
    /// A snapshot object cannot be read, decrypted or decoded.
    DamagedSnapshot,
    /// An indexed pack is not in the store.
    MissingPack,
    /// A pack's size differs from its index entry (usually truncated).
    WrongSizePack,
    /// A pack is in no index but holds blobs that snapshots need: the index
    /// segment that listed it is missing. `lifeboat index rebuild` recovers it.
    MissingIndexSegment,
    /// A tree blob that a snapshot needs is in no index and no pack.
    MissingTree,
    /// A data blob that a snapshot needs is in no index and no pack.
    MissingBlob,
    /// A pack's header cannot be decrypted or disagrees with the index.
    CorruptPackHeader,
    /// A blob fails to decrypt, decompress or verify against its id.
    CorruptBlob,
    /// A pack's bytes do not hash to its name, though its header and blobs
    /// verify.
    CorruptPack,
    /// A pack in the store is in no index and nothing needs its blobs (left
    /// by an interrupted or running backup).
    OrphanPack,
    /// A blob is stored in more than one pack (two backups stored it at the
    /// same time).
    DuplicateBlob,
}

impl Category {
    /// Damage or notice.
    pub fn severity(self) -> Severity {
        match self {
            Category::OrphanPack | Category::DuplicateBlob => Severity::Notice,
            _ => Severity::Damage,
        }
    }

    /// Whether a snapshot that references the object cannot be restored
    /// completely now.
    pub fn is_loss(self) -> bool {
        matches!(
            self,
            Category::DamagedSnapshot
                | Category::MissingPack
                | Category::WrongSizePack
                | Category::MissingIndexSegment
                | Category::MissingTree
                | Category::MissingBlob
                | Category::CorruptBlob
        )
    }

    /// The snake_case name used in text and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Category::CorruptKeySlot => "corrupt_key_slot",
            Category::DamagedSnapshot => "damaged_snapshot",
            Category::MissingPack => "missing_pack",
            Category::WrongSizePack => "wrong_size_pack",
            Category::MissingIndexSegment => "missing_index_segment",
            Category::MissingTree => "missing_tree",
            Category::MissingBlob => "missing_blob",
            Category::CorruptPackHeader => "corrupt_pack_header",
            Category::CorruptBlob => "corrupt_blob",
            Category::CorruptPack => "corrupt_pack",
            Category::OrphanPack => "orphan_pack",
            Category::DuplicateBlob => "duplicate_blob",
        }
    }

    /// One line saying what the category means.
    pub fn description(self) -> &'static str {
        match self {
            Category::CorruptKeySlot => {
                "key slots that are damaged (their password no longer opens the repository)"
            }
            Category::DamagedSnapshot => "snapshot objects that cannot be read",
            Category::MissingPack => "indexed packs missing from the store",
            Category::WrongSizePack => "packs whose size differs from the index (truncated)",
            Category::MissingIndexSegment => {
                "packs in no index that hold needed data (run `lifeboat index rebuild`)"
            }
            Category::MissingTree => "directory listings (tree blobs) that are nowhere",
            Category::MissingBlob => "file data (data blobs) that is nowhere",
            Category::CorruptPackHeader => {
                "pack headers that are unreadable or disagree with the index"
            }
            Category::CorruptBlob => "blobs that fail to decrypt or verify",
            Category::CorruptPack => "packs whose bytes do not hash to their name",
            Category::OrphanPack => "packs in no index that nothing needs (prune removes them)",
            Category::DuplicateBlob => {
                "blobs stored in more than one pack (prune removes the extra copies)"
            }
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Kind of finding.
    pub category: Category,
    /// Damage or notice.
    pub severity: Severity,
    /// The object concerned: a pack, blob or snapshot id, or a key slot's
    /// path (`keys/<id>`).
    pub object: String,
    /// Details.
    pub message: String,
    /// Snapshots that reference the object, by id.
    pub snapshots: Vec<String>,
}

/// Resumable verification: which packs a `--read-data` run reads, from the
/// verification record. At least one pack is read per run when any is due.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Resume {
    /// Read only packs last verified longer ago than this (or never). Without
    /// it every pack is due, the longest-unverified first.
    pub max_age: Option<Duration>,
    /// Start no pack after this much time has passed (packs already being
    /// read are finished).
    pub max_duration: Option<Duration>,
    /// Read at most this many packs.
    pub max_packs: Option<u64>,
}

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Download packs and verify every blob in them.
    pub read_data: bool,
    /// Which packs `read_data` reads.
    pub subset: Subset,
    /// Resumable mode (only with `read_data` and [`Subset::All`]).
    pub resume: Option<Resume>,
    /// Packs read at once (0: a default that suits the store).
    pub read_concurrency: usize,
}

/// Counters a caller can watch while a check runs, and a flag to stop it.
#[derive(Debug, Default)]
pub struct CheckProgress {
    /// Packs to read in this run.
    pub packs_total: AtomicU64,
    /// Packs read so far.
    pub packs_done: AtomicU64,
    /// Bytes of those packs.
    pub bytes_total: AtomicU64,
    /// Bytes read so far.
    pub bytes_done: AtomicU64,
    /// Trees walked so far.
    pub trees_done: AtomicU64,
    /// Set to stop; the check then fails with [`Error::Interrupted`].
    pub cancel: AtomicBool,
}

/// The outcome of a check, by exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything checked, no damage (notices allowed).
    Clean,
    /// No damage found, but some objects could not be read because the store
    /// failed; see [`CheckReport::unchecked`].
    Incomplete,
    /// Damage found.
    Damaged,
}

/// What a `--read-data` run read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataStats {
    /// Packs selected for reading.
    pub packs_selected: u64,
    /// Packs read and verified.
    pub packs_read: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Blobs decrypted and verified.
    pub blobs_read: u64,
    /// Resumable mode: packs skipped because they were verified recently.
    pub packs_fresh: u64,
    /// Resumable mode: packs due but left for a later run (time or count limit).
    pub packs_left: u64,
    /// Resumable mode: the verification record written.
    pub record: Option<String>,
    /// Seconds spent reading and verifying.
    pub seconds: f64,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Findings, by category then object.
    pub problems: Vec<Problem>,
    /// Snapshots that cannot be restored completely, by id.
    pub damaged_snapshots: Vec<String>,
    /// Objects that could not be checked because the store failed.
    pub unchecked: Vec<String>,
    /// Things the user should know that are not findings (a damaged
    /// verification record, for example).
    pub warnings: Vec<String>,
    /// Key slots checked.
    pub keys: u64,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Trees walked.
    pub trees: u64,
    /// Packs listed in the store.
    pub packs: u64,
    /// Index segments in the store.
    pub index_segments: u64,
    /// The data pass, when asked for.
    pub data: Option<DataStats>,
}

impl CheckReport {
    /// Whether any finding is damage.
    pub fn has_damage(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Damage)
    }

    /// Whether nothing at all was found and everything was checked.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.unchecked.is_empty()
    }

    /// Clean, incomplete or damaged.
    pub fn verdict(&self) -> Verdict {
        if self.has_damage() {
            Verdict::Damaged
        } else if !self.unchecked.is_empty() {
            Verdict::Incomplete
        } else {
            Verdict::Clean
        }
    }

    /// Findings of one category.
    pub fn of(&self, category: Category) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.category == category)
    }
}

/// Check `repo`. Damage is reported in the result; `Err` means the check
/// itself could not run. Reads only, except for the verification record in
/// resumable mode.
pub fn check(
    repo: &lifeboat_core::Repository,
    opts: &CheckOptions,
    progress: &CheckProgress,
) -> Result<CheckReport> {
    // Check looks up every blob, some several times: through the memory
    // map, not one `pread` each (4 per blob: a third of the system time of
    // `check --read-data`).
    let checked = repo.with_mapped_index(|| checker::Checker::run(repo, opts, progress));
    Ok(checked?.report)
}
