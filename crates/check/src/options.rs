//! What a caller asks of a check, and how it watches one run.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::Duration;

use crate::subset::Subset;

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
    /// Set to stop; the check then fails with [`Error::Interrupted`](crate::Error::Interrupted).
    pub cancel: AtomicBool,
}
