//! The state shared by the file and stream readers: where content goes
//! (the blob saver), the memory budget, the counters, and how a fatal
//! error stops every worker.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lifeboat_format::{BlobType, ContentPart};
use rayon::prelude::*;

use super::budget::Budget;
#[cfg(feature = "testing")]
use crate::failpoint::FailPoints;
use crate::saver::BlobSaver;
use crate::{Error, Progress, Repository, Result};

/// Saves file and stream content as data blobs. The reading itself is in
/// `file_reader` (files) and `stream_reader` (any reader).
pub(super) struct ContentSaver<'a, 'r> {
    pub(super) repo: &'r Repository,
    pub(super) saver: &'a BlobSaver<'r>,
    #[cfg(feature = "testing")]
    pub(super) fail_points: &'a FailPoints,
    pub(super) budget: Budget,
    pub(super) progress: &'a Progress,
    /// Set by the first fatal error, so every worker stops.
    pub(super) failed: AtomicBool,
    /// Content bytes read from the source.
    pub(super) bytes: AtomicU64,
    /// The batch buffers of streams that finished, reused by the next
    /// (see `stream_reader`).
    pub(super) stream_bufs: Mutex<Vec<[Vec<u8>; 2]>>,
}

impl ContentSaver<'_, '_> {
    /// Whether to stop: the caller cancelled, or a worker failed.
    pub(super) fn check_stop(&self) -> Result<()> {
        if self.progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        if self.failed.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    /// Fail the whole backup with `e`.
    pub(super) fn fail<T>(&self, e: Error) -> Result<T> {
        self.failed.store(true, Ordering::Relaxed);
        Err(e)
    }

    /// Save one chunk: a hole if it is all zeros, else a data blob.
    pub(super) fn save_chunk(&self, c: &[u8]) -> Result<ContentPart> {
        if lifeboat_chunker::is_zero(c) {
            return Ok(ContentPart::Hole {
                len: c.len() as u64,
            });
        }
        let (id, _) = self.saver.save(BlobType::Data, c)?;
        Ok(ContentPart::Blob {
            id,
            len: c.len() as u32,
        })
    }

    pub(super) fn save_chunks(&self, chunks: &[&[u8]]) -> Result<Vec<ContentPart>> {
        self.check_stop()?;
        let res = if chunks.len() == 1 {
            chunks
                .iter()
                .map(|c| self.save_chunk(c))
                .collect::<Result<_>>()
        } else {
            chunks
                .par_iter()
                .map(|c| self.save_chunk(c))
                .collect::<Result<_>>()
        };
        res.or_else(|e| self.fail(e))
    }
}
