//! Lifeboat: content-addressed, deduplicating, encrypted backups.
//!
//! This crate is the library to embed: a [`Repository`] with typed options
//! and typed reports for every operation (init and open, key slots, backup,
//! restore, snapshots, diff and stats, copy, forget and prune, check and repair, index
//! maintenance, etcd snapshots, restore drills and recovery status against a
//! [`Policy`]), and one [`Error`] to match on. It prints nothing, reads no
//! terminal and never exits the process. The engine lives in
//! `lifeboat-core`, retention in `lifeboat-prune`, verification in
//! `lifeboat-check`, the index in `lifeboat-index`, storage in
//! `lifeboat-store` and the byte formats in `lifeboat-format`; this crate
//! holds no engine logic of its own, only thin calls into those. The `lifeboat` program (crate `lifeboat-cli`) is
//! built on this one.
//!
//! A whole round trip: create a repository, back up a directory, restore it.
//!
//! ```
//! use lifeboat::{BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let work = tempfile::tempdir()?;
//! let source = work.path().join("photos");
//! std::fs::create_dir(&source)?;
//! std::fs::write(source.join("hello.txt"), b"hello, lifeboat")?;
//!
//! // A local repository; cheap key derivation keeps the example fast.
//! let backend = lifeboat::open_location(work.path().join("repo").to_str().unwrap(), true)?;
//! let mut opts = InitOptions::default();
//! opts.kdf = lifeboat::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! let repo = Repository::init(backend, b"correct horse", &opts)?;
//!
//! let report = repo.backup(
//!     BackupSource::Paths(vec![source.clone()]),
//!     &BackupOptions::default(),
//!     &Progress::default(),
//! )?;
//! assert!(report.is_complete());
//!
//! let backend = lifeboat::open_location(work.path().join("repo").to_str().unwrap(), false)?;
//! let repo = Repository::open(backend, b"correct horse")?;
//! let (_, snap) = repo.find_snapshot("latest", &Default::default())?;
//! let target = work.path().join("restored");
//! let restore = RestoreOptions { target: target.clone(), ..Default::default() };
//! repo.restore(&snap, &restore, &Progress::default())?;
//!
//! let restored = target.join(source.strip_prefix("/")?).join("hello.txt");
//! assert_eq!(std::fs::read(restored)?, b"hello, lifeboat");
//! # Ok(())
//! # }
//! ```
//!
//! Checking a repository, and repairing it: damage is in the report, not
//! an error. Here every pack of the repository goes missing.
//!
//! ```
//! use lifeboat::{
//!     BackupOptions, BackupSource, Category, CheckOptions, CheckProgress, InitOptions, Progress,
//!     RepairOptions, Repository, Verdict,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let work = tempfile::tempdir()?;
//! let source = work.path().join("photos");
//! std::fs::create_dir(&source)?;
//! std::fs::write(source.join("hello.txt"), b"hello, lifeboat")?;
//! let location = work.path().join("repo");
//! let backend = lifeboat::open_location(location.to_str().unwrap(), true)?;
//! let mut opts = InitOptions::default();
//! opts.kdf = lifeboat::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! let repo = Repository::init(backend, b"correct horse", &opts)?;
//! let backup = repo.backup(
//!     BackupSource::Paths(vec![source]),
//!     &BackupOptions::default(),
//!     &Progress::default(),
//! )?;
//!
//! let read_all = CheckOptions { read_data: true, ..Default::default() };
//! let report = repo.check(&read_all, &CheckProgress::default())?;
//! assert_eq!(report.verdict(), Verdict::Clean);
//! assert_eq!((report.snapshots, report.packs), (1, 2), "one data pack, one tree pack");
//!
//! // Lose every pack: file data and trees.
//! let packs = location.join(lifeboat::layout::Folder::Data.name());
//! std::fs::remove_dir_all(&packs)?;
//! std::fs::create_dir(&packs)?;
//!
//! let report = repo.check(&CheckOptions::default(), &CheckProgress::default())?;
//! assert_eq!(report.verdict(), Verdict::Damaged);
//! assert_eq!(report.damaged_snapshots, vec![backup.id.to_hex()]);
//! assert!(report.of(Category::MissingPack).count() > 0);
//!
//! // Without `forget_damaged`, repair only says what it would do.
//! let repair = repo.repair_snapshots(&RepairOptions::default(), &CheckProgress::default())?;
//! assert!(repair.dry_run);
//! assert_eq!(repair.snapshots.len(), 1);
//! assert_eq!(repair.snapshots[0].original, backup.id.to_hex());
//! # Ok(())
//! # }
//! ```

mod drill;
mod error;
mod etcd;
mod etcd_server;
mod location;
pub mod policy;
mod repository;
mod status;

pub use drill::{DrillOptions, DrillReport, EtcdServed, Mismatch, RestoreCheck};
pub use error::{Error, Result};
pub use etcd::{
    EtcdBackupOptions, EtcdBackupReport, EtcdEndpoint, EtcdError, EtcdRestoreReport,
    EtcdServerStatus, EtcdSource, EtcdVerifyError, etcd_snapshot_name, etcd_snapshot_path,
};
pub use lifeboat_etcd::{SnapshotFacts as EtcdSnapshotFacts, meta_keys as etcd_meta_keys};
pub use lifeboat_format::{DRILL_RECORD_VERSION, DrillRecord};
pub use location::{open_location, open_location_with};
pub use policy::{Policy, PolicyError, SourceRule, Tier};
pub use repository::{PackTotals, Repository};
pub use status::{
    Dated, DrillSeen, Readiness, RepositoryStatus, SourceStatus, StatusOptions, StatusReport,
};

pub use lifeboat_check::{
    Category, CheckOptions, CheckProgress, CheckReport, DataStats, DroppedPack, Problem,
    RepairOptions, RepairReport, RepairedSnapshot, Resume, Severity, Subset, Verdict,
};
pub use lifeboat_core::{
    BackupOptions, BackupReport, BackupSource, BlockChunking, BlockRestoreOptions,
    BlockRestoreReport, ByteRange, Change, CopyReport, DEFAULT_BLOCK_CHUNKING, DiffEntry,
    EntryError, InitOptions, KeyInfo, Listing, MAX_FIXED_CHUNK, META_CHANGED_RANGES, META_CHUNKING,
    META_SIZE, MIN_FIXED_CHUNK, NoDeleteReason, Overwrite, Progress, RestoreOptions, RestoreReport,
    RotateReport, SnapshotFilter, SnapshotList, Stats, Warning, WarningKind, parse_changed_ranges,
};
pub use lifeboat_format::{
    Compression, Config, ContentPart, Id, KdfParams, Node, NodeKind, SlotKind, Snapshot,
    SnapshotSummary, SourceKind, Timestamp, Tree, layout,
};
pub use lifeboat_index::{
    CompactOptions, CompactReport, IndexProgress, RebuildOptions, RebuildReport, UnreadablePack,
};
pub use lifeboat_prune::gc::{
    Clock as PruneClock, Executed, MaxUnused, PackUsage, PruneOptions, PrunePlan, PruneProgress,
    PruneReport, Tally, UnlockReport, Unused,
};
pub use lifeboat_prune::{
    DurationError, ForgetOptions, ForgetPlan, ForgetReport, GroupBy, GroupByError, GroupKey,
    GroupPlan, KeepCount, KeepCountError, KeepReason, KeepWithin, KeptSnapshot, PlannedSnapshot,
    RetentionPolicy, TagList, TagListError, plan_forget,
};
pub use lifeboat_store::{Backend, Location, OpenOptions, default_cache_root, error_chain};

/// The password in a password file's or command's output: its first line,
/// without the line ending (`\n` or `\r\n`), as restic reads one. Both the
/// input and the result are zeroed when dropped.
pub fn password_line(bytes: Vec<u8>) -> zeroize::Zeroizing<Vec<u8>> {
    let bytes = zeroize::Zeroizing::new(bytes);
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len());
    let mut line = &bytes[..end];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    zeroize::Zeroizing::new(line.to_vec())
}

/// The time library of [`ForgetPlan::now`] and of the `now` that
/// [`Repository::forget`] takes.
pub use jiff;

/// The errors of the crates below, kept whole inside [`Error`].
pub use lifeboat_check::Error as CheckError;
pub use lifeboat_core::Error as RepositoryError;
pub use lifeboat_index::Error as IndexError;
pub use lifeboat_prune::ForgetError;
pub use lifeboat_prune::PruneError;
pub use lifeboat_store::Error as StoreError;

/// What only the `lifeboat` program and Lifeboat's own tests need: raw
/// access to a repository's objects. Not part of the embedding API; it may
/// change in any release.
#[doc(hidden)]
pub mod internals {
    pub use lifeboat_core::internals::RepositoryInternals;
    pub use lifeboat_format::{BlobType, IndexSegment, KeySlot};
}
