//! Live counters that running operations (backup, restore, copy) update
//! for a progress display, and the flag that asks them to stop.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// Live counters for progress display, updated by running operations.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Directories finished.
    pub dirs: AtomicU64,
    /// Content bytes processed (for a backup, this includes files taken
    /// unchanged from the parent snapshot without being read).
    pub bytes: AtomicU64,
    /// Entries that failed.
    pub errors: AtomicU64,
    /// Set to ask the operation to stop; it then fails with
    /// [`crate::Error::Interrupted`] and writes no snapshot.
    pub cancel: AtomicBool,
}
