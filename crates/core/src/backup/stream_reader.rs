//! Reading a stream (stdin, or a data extent of a large file): read and cut
//! in batches into a pair of buffers this thread reuses, and while one
//! batch is sealed on the pool the next one is read and cut.

use std::io::Read;
use std::sync::atomic::Ordering;

use lifeboat_chunker::StreamBatches;
use lifeboat_format::ContentPart;

use super::content_saver::ContentSaver;
use crate::{Error, Result};

/// Bytes read and cut per batch, at least: with many threads a batch is
/// larger, so that each thread has chunks to seal.
pub(super) const BATCH_BYTES: usize = 8 << 20;

/// Bytes read and cut per batch of a stream on `threads` workers.
pub(super) fn batch_step(chunker: &lifeboat_chunker::Chunker, threads: usize) -> usize {
    BATCH_BYTES.max(threads * chunker.avg_size())
}

/// Bytes a stream holds against the budget while it runs: its two batch
/// buffers.
pub(super) fn stream_bytes(chunker: &lifeboat_chunker::Chunker, threads: usize) -> usize {
    2 * chunker.batch_capacity(batch_step(chunker, threads))
}

/// The outcome of one batch's sealing.
type Sealed = Result<(Vec<ContentPart>, u64)>;

impl ContentSaver<'_, '_> {
    /// Chunk and save a stream. Outer error: fatal; inner: the source
    /// could not be read.
    pub(super) fn content(
        &self,
        reader: impl Read,
    ) -> Result<std::io::Result<(Vec<ContentPart>, u64)>> {
        let mut parts = Vec::new();
        Ok(self
            .stream_into(reader, &mut parts)?
            .map(|total| (parts, total)))
    }

    /// Chunk `reader` and append its parts; returns the bytes read.
    ///
    /// The stream holds two buffers of [`lifeboat_chunker::Chunker::batch_capacity`]
    /// bytes, counted against the budget for as long as it runs.
    pub(super) fn stream_into(
        &self,
        reader: impl Read,
        parts: &mut Vec<ContentPart>,
    ) -> Result<std::io::Result<u64>> {
        let chunker = &self.repo.chunker;
        let threads = rayon::current_num_threads();
        let _grant = self.budget.take(stream_bytes(chunker, threads));
        let mut bufs = self.stream_buffers().pop().unwrap_or_default();
        let res = self.stream_batches(
            chunker.batches(reader, batch_step(chunker, threads)),
            &mut bufs,
            parts,
        );
        self.stream_buffers().push(bufs);
        res
    }

    /// Buffer pairs of finished streams, for the next ones: fresh memory
    /// per stream (or per chunk, as before) costs a page fault per 4 KiB
    /// read. There are as many pairs as streams ran at once, which the
    /// budget bounds.
    fn stream_buffers(&self) -> std::sync::MutexGuard<'_, Vec<[Vec<u8>; 2]>> {
        self.stream_bufs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Batch after batch: seal the current one on the pool while this
    /// thread reads and cuts the next into the other buffer (carrying the
    /// current one's undecided tail over), then swap.
    fn stream_batches<R: Read>(
        &self,
        mut batches: StreamBatches<'_, R>,
        bufs: &mut [Vec<u8>; 2],
        parts: &mut Vec<ContentPart>,
    ) -> Result<std::io::Result<u64>> {
        let [mut cur, mut next] = bufs.each_mut();
        let (mut cuts, mut next_cuts) = (Vec::new(), Vec::new());
        let mut tail_start = match batches.next_batch(&[], cur, &mut cuts) {
            Ok(t) => t,
            Err(e) => return Ok(Err(io_error(e))),
        };
        let mut total = 0u64;
        loop {
            self.check_stop()?;
            let done = batches.is_done();
            let mut sealed: Option<Sealed> = None;
            let read = rayon::in_place_scope(|s| {
                let (batch, batch_cuts, slot) = (&*cur, &cuts, &mut sealed);
                s.spawn(move |_| *slot = Some(self.seal_batch(batch, batch_cuts)));
                (!done).then(|| batches.next_batch(&cur[tail_start..], next, &mut next_cuts))
            });
            let (saved, n) = sealed.unwrap_or(Err(Error::Interrupted))?;
            parts.extend(saved);
            total += n;
            match read {
                None => return Ok(Ok(total)),
                Some(Err(e)) => return Ok(Err(io_error(e))),
                Some(Ok(t)) => tail_start = t,
            }
            std::mem::swap(&mut cur, &mut next);
            std::mem::swap(&mut cuts, &mut next_cuts);
        }
    }

    /// Save one batch's chunks (in parallel) and count its bytes.
    fn seal_batch(&self, buf: &[u8], cuts: &[(usize, usize)]) -> Sealed {
        for _ in cuts {
            if let Err(e) = fail_point!(self.fail_points, Read) {
                return self.fail(e);
            }
        }
        if cuts.is_empty() {
            return Ok((Vec::new(), 0));
        }
        if let Err(e) = fail_point!(self.fail_points, Chunk) {
            return self.fail(e);
        }
        let slices: Vec<&[u8]> = cuts.iter().map(|&(o, l)| &buf[o..o + l]).collect();
        let saved = self.save_chunks(&slices)?;
        let n: u64 = cuts.iter().map(|&(_, l)| l as u64).sum();
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.progress.bytes.fetch_add(n, Ordering::Relaxed);
        Ok((saved, n))
    }
}

/// The reader's error, as the stream's read error.
fn io_error(e: lifeboat_chunker::Error) -> std::io::Error {
    match e {
        lifeboat_chunker::Error::Io(e) => e,
        e => std::io::Error::other(e),
    }
}
