//! Failure injection for tests of the backup pipeline.
//!
//! A test names one stage and, optionally, how many passes through it
//! succeed first; that pass then fails as a real error from that stage
//! would. Production code never sets it: [`crate::BackupOptions`] leaves
//! it empty, and an empty one costs one branch per check.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{Error, Result};

/// A stage of the backup pipeline.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Listing a directory.
    Walk,
    /// Reading a file or stream.
    Read,
    /// Cutting content into chunks.
    Chunk,
    /// Keyed hashing of a blob.
    Hash,
    /// The index and in-flight lookup.
    Dedup,
    /// Compression and encryption (one call per blob).
    Seal,
    /// Adding a sealed blob to a pack.
    Pack,
    /// Writing a pack to the store (on an uploader thread).
    Upload,
    /// Writing an index segment.
    Index,
    /// Writing the snapshot.
    Snapshot,
}

/// Which stage fails, after how many successful passes.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct FailPoints {
    at: Option<(Stage, u64)>,
    passes: AtomicU64,
}

impl Clone for FailPoints {
    fn clone(&self) -> Self {
        FailPoints {
            at: self.at,
            passes: AtomicU64::new(0),
        }
    }
}

impl FailPoints {
    /// Fail `stage` after `after` passes through it have succeeded.
    pub fn new(stage: Stage, after: u64) -> FailPoints {
        FailPoints {
            at: Some((stage, after)),
            passes: AtomicU64::new(0),
        }
    }

    /// Fail if this pass through `stage` is the chosen one.
    #[inline]
    pub(crate) fn check(&self, stage: Stage) -> Result<()> {
        match self.at {
            Some((s, after)) if s == stage => {
                if self.passes.fetch_add(1, Ordering::Relaxed) >= after {
                    Err(Error::Internal(format!(
                        "injected failure in stage {stage:?}"
                    )))
                } else {
                    Ok(())
                }
            }
            _ => Ok(()),
        }
    }
}
