//! Reading a stream (stdin, or a data extent of a large file): chunked as
//! it is read, chunks saved in parallel batches within the memory budget.

use std::io::Read;
use std::sync::atomic::Ordering;

use lifeboat_format::ContentPart;

use super::content_saver::ContentSaver;
use crate::Result;

/// Chunks sealed in parallel per batch, and the byte cap of one batch.
const BATCH_CHUNKS: usize = 16;
pub(super) const BATCH_BYTES: usize = 8 << 20;

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
    pub(super) fn stream_into(
        &self,
        reader: impl Read,
        parts: &mut Vec<ContentPart>,
    ) -> Result<std::io::Result<u64>> {
        let mut total = 0u64;
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut grants = Vec::new();
        let mut batch_bytes = 0usize;
        for chunk in self.repo.chunker.stream(reader) {
            let chunk = match chunk {
                Ok(c) => c,
                Err(lifeboat_chunker::Error::Io(e)) => return Ok(Err(e)),
                Err(e) => return Ok(Err(std::io::Error::other(e))),
            };
            if let Err(e) = fail_point!(self.fail_points, Read) {
                return self.fail(e);
            }
            grants.push(self.budget.take(chunk.len()));
            batch_bytes += chunk.len();
            batch.push(chunk);
            if batch.len() >= BATCH_CHUNKS || batch_bytes >= BATCH_BYTES {
                total += self.flush_batch(&mut batch, parts)?;
                grants.clear();
                batch_bytes = 0;
            }
        }
        total += self.flush_batch(&mut batch, parts)?;
        Ok(Ok(total))
    }

    fn flush_batch(&self, batch: &mut Vec<Vec<u8>>, parts: &mut Vec<ContentPart>) -> Result<u64> {
        if let Err(e) = fail_point!(self.fail_points, Chunk) {
            return self.fail(e);
        }
        let slices: Vec<&[u8]> = batch.iter().map(|c| c.as_slice()).collect();
        let saved = self.save_chunks(&slices)?;
        let n: u64 = batch.iter().map(|c| c.len() as u64).sum();
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.progress.bytes.fetch_add(n, Ordering::Relaxed);
        parts.extend(saved);
        batch.clear();
        Ok(n)
    }
}
