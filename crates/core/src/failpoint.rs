//! Failure injection for tests of the backup pipeline and of restore.
//!
//! A test names one stage and, optionally, how many passes through it
//! succeed first; that pass then fails with [`crate::Error::Injected`],
//! which the pipeline must handle as it would a real error there. Compiled
//! only with the `testing` feature: without it the `fail_point!` checks
//! expand to `Ok(())`.

use std::sync::atomic::{AtomicU64, Ordering};

/// A stage of the backup pipeline.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Listing a directory of the backup source.
    ReadDir,
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
    /// Writing one blob into a file being restored.
    RestoreWrite,
}

/// Which stage fails, after how many successful passes.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct FailPoints {
    at: Option<(Stage, u64)>,
    /// Fail only that one pass, not every later one too.
    once: bool,
    passes: AtomicU64,
}

/// Points that never fire: what a pipeline without a test's points uses.
pub(crate) static NONE: FailPoints = FailPoints {
    at: None,
    once: false,
    passes: AtomicU64::new(0),
};

impl Clone for FailPoints {
    fn clone(&self) -> Self {
        FailPoints {
            at: self.at,
            once: self.once,
            passes: AtomicU64::new(0),
        }
    }
}

impl FailPoints {
    /// Fail `stage` after `after` passes through it have succeeded.
    pub fn new(stage: Stage, after: u64) -> FailPoints {
        FailPoints {
            at: Some((stage, after)),
            once: false,
            passes: AtomicU64::new(0),
        }
    }

    /// Fail only the pass through `stage` that follows `after` successful
    /// ones (a restore then fails one file and goes on with the others).
    pub fn once(stage: Stage, after: u64) -> FailPoints {
        FailPoints {
            once: true,
            ..FailPoints::new(stage, after)
        }
    }

    /// Whether this pass through `stage` is the one to fail.
    #[inline]
    pub(crate) fn fires(&self, stage: Stage) -> bool {
        match self.at {
            Some((s, after)) if s == stage => {
                let pass = self.passes.fetch_add(1, Ordering::Relaxed);
                if self.once {
                    pass == after
                } else {
                    pass >= after
                }
            }
            _ => false,
        }
    }
}
