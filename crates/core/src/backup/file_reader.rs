//! Reading a regular file: small ones whole into a reused buffer, large
//! ones streamed by data extent, skipping holes.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::sync::atomic::Ordering;

use lifeboat_format::ContentPart;

use super::content_saver::ContentSaver;
use crate::Result;

thread_local! {
    /// A whole small file's bytes (up to two maximum chunks), reused from
    /// file to file by this thread.
    static READ_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Holes shorter than this are read (as zeros) rather than skipped, so a
/// fragmented file does not become a storm of tiny chunks.
const MIN_HOLE: u64 = 1 << 20;

impl ContentSaver<'_, '_> {
    /// Files up to two maximum chunks are read whole into a buffer of
    /// their size; larger ones are streamed, data extents only: holes of
    /// at least [`MIN_HOLE`] found with SEEK_DATA/SEEK_HOLE are recorded
    /// as holes without being read.
    pub(super) fn file_content(
        &self,
        mut f: &fs::File,
        len: u64,
    ) -> Result<std::io::Result<(Vec<ContentPart>, u64)>> {
        if len > 2 * self.repo.chunker.max_size() as u64 {
            let mut parts = Vec::new();
            let mut pos = 0u64;
            for (start, end) in data_extents(f, len) {
                if start > pos {
                    parts.push(ContentPart::Hole { len: start - pos });
                }
                if let Err(e) = f.seek(SeekFrom::Start(start)) {
                    return Ok(Err(e));
                }
                match self.stream_into((&mut f).take(end - start), &mut parts)? {
                    Ok(n) if n == end - start => pos = end,
                    // The file shrank while read: store what was there.
                    Ok(n) => return Ok(Ok((parts, start + n))),
                    Err(e) => return Ok(Err(e)),
                }
            }
            if len > pos {
                parts.push(ContentPart::Hole { len: len - pos });
            }
            return Ok(Ok((parts, len)));
        }
        // Small files are many and bounded by the thread count: only those
        // of a MiB or more count against the budget.
        let _grant = (len >= 1 << 20).then(|| self.budget.take(len as usize));
        // Read what stat said is there, no more: no size probe, no second
        // read to find the end. A file that grew since is stored as it was
        // when stat'ed; one that shrank, as it is.
        // This thread's buffer, taken so that a file picked up while this
        // one waits in `save_chunks` gets its own: fresh memory per file
        // cost page faults and zeroing in the kernel.
        let mut buf = READ_BUF.take();
        buf.clear();
        buf.reserve(len as usize);
        if let Err(e) = (&mut f).take(len).read_to_end(&mut buf) {
            return Ok(Err(e));
        }
        if let Err(e) = fail_point!(self.fail_points, Read) {
            return self.fail(e);
        }
        if let Err(e) = fail_point!(self.fail_points, Chunk) {
            return self.fail(e);
        }
        let chunks: Vec<&[u8]> = self
            .repo
            .chunker
            .chunks(&buf)
            .map(|(o, l)| &buf[o..o + l])
            .collect();
        let parts = self.save_chunks(&chunks)?;
        let n = buf.len() as u64;
        READ_BUF.set(buf);
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.progress.bytes.fetch_add(n, Ordering::Relaxed);
        Ok(Ok((parts, n)))
    }
}

/// The data extents `[start, end)` of a file of `len` bytes, merging
/// those separated by holes shorter than [`MIN_HOLE`]. A file system
/// without SEEK_DATA support yields one extent: the whole file.
pub(super) fn data_extents(f: &fs::File, len: u64) -> Vec<(u64, u64)> {
    use nix::unistd::{Whence, lseek};
    let whole = vec![(0, len)];
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let Ok(off) = i64::try_from(pos) else {
            return whole;
        };
        let data = match lseek(f, off, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break, // only a hole is left
            Err(_) => return whole,
        };
        let hole = match lseek(f, data as i64, Whence::SeekHole) {
            Ok(h) => (h as u64).min(len),
            Err(_) => return whole,
        };
        if hole <= data {
            return whole;
        }
        match out.last_mut() {
            Some(last) if data - last.1 < MIN_HOLE => last.1 = hole,
            Some(_) => out.push((data, hole)),
            None if data < MIN_HOLE => out.push((0, hole)),
            None => out.push((data, hole)),
        }
        pos = hole;
    }
    if let Some(last) = out.last_mut() {
        if len - last.1 < MIN_HOLE {
            last.1 = len;
        }
    }
    out
}
