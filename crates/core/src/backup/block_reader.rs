//! Reading a block device or raw image (`BackupSource::Block`): its size
//! from seeking to the end, its data extents from SEEK_DATA/SEEK_HOLE
//! (holes are recorded without being read), fixed aligned chunks read with
//! positioned reads, zero chunks recorded as holes. With changed ranges
//! only the chunks they touch are read; every other chunk is taken from
//! the parent snapshot's content list.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::Ordering;

use lifeboat_format::{ContentPart, Id, Node, NodeKind, SourceKind, Timestamp};
use rayon::prelude::*;

use super::BackupOptions;
use super::archiver::Archiver;
use super::content_saver::ContentSaver;
use super::file_reader::data_extents;
use super::source_roots::absolute_clean;
use crate::repo::RepositoryInternals as _;
use crate::repo::hostname;
use crate::{Error, Repository, Result};

/// `source_meta` key: the device size in bytes (decimal).
pub const META_SIZE: &str = "block.size";
/// `source_meta` key: the chunking, `cdc` or `fixed:<bytes>`.
pub const META_CHUNKING: &str = "block.chunking";
/// `source_meta` key: how many changed ranges an incremental backup was given.
pub const META_CHANGED_RANGES: &str = "block.changed_ranges";

/// Smallest fixed chunk, and what every fixed chunk size is a multiple of.
pub const MIN_FIXED_CHUNK: u32 = 4096;
/// Largest fixed chunk.
pub const MAX_FIXED_CHUNK: u32 = 64 << 20;
/// The default chunking for block sources: fixed 1 MiB chunks. On a 2 GiB
/// ext4 image with in-place churn they stored less than 4 MiB chunks or
/// CDC, and backed up as fast (docs/block.md, "Measurement").
pub const DEFAULT_BLOCK_CHUNKING: BlockChunking = BlockChunking::Fixed(1 << 20);

/// Bytes of one batch of fixed chunks, read and sealed in parallel (at
/// least four chunks per thread). Memory does not grow with it: each
/// thread holds one chunk at a time.
const BATCH_BYTES: u64 = 32 << 20;

/// How a block source is cut into chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockChunking {
    /// Content-defined chunks, as for files: best dedup against shifted
    /// content, but a changed range cannot be mapped to chunks.
    Cdc,
    /// Aligned chunks of this many bytes (a multiple of
    /// [`MIN_FIXED_CHUNK`], at most [`MAX_FIXED_CHUNK`]); needed for
    /// changed ranges.
    Fixed(u32),
}

impl Default for BlockChunking {
    fn default() -> Self {
        DEFAULT_BLOCK_CHUNKING
    }
}

impl BlockChunking {
    fn validate(self) -> Result<()> {
        match self {
            BlockChunking::Fixed(n)
                if !(MIN_FIXED_CHUNK..=MAX_FIXED_CHUNK).contains(&n)
                    || n % MIN_FIXED_CHUNK != 0 =>
            {
                Err(Error::InvalidArgument(format!(
                    "fixed chunk size {n} must be a multiple of {MIN_FIXED_CHUNK} \
                     between {MIN_FIXED_CHUNK} and {MAX_FIXED_CHUNK} bytes"
                )))
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for BlockChunking {
    /// As recorded in `source_meta`: `cdc` or `fixed:<bytes>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockChunking::Cdc => f.write_str("cdc"),
            BlockChunking::Fixed(n) => write!(f, "fixed:{n}"),
        }
    }
}

impl FromStr for BlockChunking {
    type Err = Error;

    /// `cdc`, or `fixed:SIZE` with SIZE in bytes or with a unit: `4MiB`,
    /// `512KiB`, `1M` (units are powers of 1024).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidArgument(format!(
                "invalid chunking {s:?}: want cdc or fixed:SIZE (e.g. fixed:4MiB)"
            ))
        };
        if s == "cdc" {
            return Ok(BlockChunking::Cdc);
        }
        let size = s.strip_prefix("fixed:").ok_or_else(bad)?.trim();
        let digits = size
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(size.len());
        let (num, unit) = size.split_at(digits);
        let num: u64 = num.parse().map_err(|_| bad())?;
        let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
            "" | "b" => 1,
            "k" | "kib" | "kb" => 1 << 10,
            "m" | "mib" | "mb" => 1 << 20,
            "g" | "gib" | "gb" => 1 << 30,
            _ => return Err(bad()),
        };
        let n = num
            .checked_mul(mult)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(bad)?;
        let c = BlockChunking::Fixed(n);
        c.validate()?;
        Ok(c)
    }
}

/// A byte range of a device: `length` bytes from `offset`. The JSON shape
/// of a changed-ranges file is a list of these, `{"offset":N,"length":M}`;
/// the names of the CSI `BlockMetadata` message (`byte_offset`,
/// `size_bytes`) are accepted too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct ByteRange {
    /// First byte.
    #[serde(alias = "byte_offset")]
    pub offset: u64,
    /// Bytes in the range.
    #[serde(alias = "size_bytes")]
    pub length: u64,
}

/// Parse a changed-ranges file: a JSON list of [`ByteRange`]. Whether the
/// ranges fit the device is checked by the backup.
pub fn parse_changed_ranges(json: &[u8]) -> Result<Vec<ByteRange>> {
    serde_json::from_slice(json).map_err(|e| {
        Error::InvalidArgument(format!(
            "changed ranges: {e} (want a JSON list like [{{\"offset\":0,\"length\":4096}}])"
        ))
    })
}

/// Check that `ranges` are non-empty, sorted, non-overlapping and inside a
/// device of `size` bytes.
fn validate_ranges(ranges: &[ByteRange], size: u64) -> Result<()> {
    let mut prev_end = 0u64;
    for (i, r) in ranges.iter().enumerate() {
        let bad = |why: String| {
            Err(Error::InvalidArgument(format!(
                "changed range {i} (offset {}, length {}): {why}",
                r.offset, r.length
            )))
        };
        if r.length == 0 {
            return bad("length is 0".into());
        }
        let end = match r.offset.checked_add(r.length) {
            Some(e) if e <= size => e,
            _ => return bad(format!("ends past the end of the device ({size} bytes)")),
        };
        if i > 0 && r.offset < prev_end {
            return bad(format!(
                "starts before the end of range {} ({prev_end}); ranges must be sorted by \
                 offset and must not overlap",
                i - 1
            ));
        }
        prev_end = end;
    }
    Ok(())
}

/// What a block backup produced, for the snapshot.
pub(super) struct BlockBackup {
    pub(super) tree: Id,
    pub(super) paths: Vec<String>,
    pub(super) parent: Option<Id>,
    pub(super) meta: BTreeMap<String, String>,
}

/// The device size: seeking to the end works for block devices and files.
fn device_size(f: &mut fs::File, path: &Path) -> Result<u64> {
    let size = f.seek(SeekFrom::End(0)).map_err(|e| Error::io(path, e))?;
    f.seek(SeekFrom::Start(0)).map_err(|e| Error::io(path, e))?;
    Ok(size)
}

/// Chunk-aligned intervals `[start, end)` covering `ranges`, merged.
fn round_out(ranges: &[ByteRange], chunk: u64, size: u64) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for r in ranges {
        let a = r.offset / chunk * chunk;
        let b = (r.offset + r.length)
            .div_ceil(chunk)
            .saturating_mul(chunk)
            .min(size);
        push_interval(&mut out, a, b);
    }
    out
}

/// Append `[a, b)` to sorted intervals, merging with the last if they touch.
fn push_interval(out: &mut Vec<(u64, u64)>, a: u64, b: u64) {
    if a >= b {
        return;
    }
    match out.last_mut() {
        Some(last) if a <= last.1 => last.1 = last.1.max(b),
        _ => out.push((a, b)),
    }
}

/// The union of two sorted lists of intervals.
fn union(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut all: Vec<(u64, u64)> = a.iter().chain(b).copied().collect();
    all.sort_unstable();
    let mut out = Vec::new();
    for (s, e) in all {
        push_interval(&mut out, s, e);
    }
    out
}

/// Append a part, merging neighbouring holes.
fn push_part(parts: &mut Vec<ContentPart>, p: ContentPart) {
    if let (Some(ContentPart::Hole { len }), ContentPart::Hole { len: more }) =
        (parts.last_mut(), &p)
    {
        *len += more;
        return;
    }
    if !p.is_empty() {
        parts.push(p);
    }
}

/// Why a parent's content list cannot be reused.
fn parent_misfit(why: String) -> Error {
    Error::InvalidArgument(format!(
        "the parent snapshot's content cannot be reused with changed ranges: {why}; \
         back up without --changed-ranges"
    ))
}

/// Walks a content list in order, copying byte intervals of it.
struct PartCursor<'p> {
    parts: &'p [ContentPart],
    idx: usize,
    /// Offset of `parts[idx]`.
    start: u64,
}

impl<'p> PartCursor<'p> {
    fn new(parts: &'p [ContentPart]) -> Self {
        PartCursor {
            parts,
            idx: 0,
            start: 0,
        }
    }

    /// Append the parts covering `[from, to)` (never before a previous
    /// copy's end). Holes are cut as needed; a blob must lie wholly inside.
    fn copy(&mut self, from: u64, to: u64, out: &mut Vec<ContentPart>) -> Result<()> {
        let mut pos = from;
        while pos < to {
            let Some(p) = self.parts.get(self.idx) else {
                return Err(parent_misfit(format!("its content ends before byte {to}")));
            };
            let end = self.start + p.len();
            if end <= pos {
                self.idx += 1;
                self.start = end;
                continue;
            }
            let cut_end = end.min(to);
            match p {
                ContentPart::Hole { .. } => {
                    push_part(out, ContentPart::Hole { len: cut_end - pos })
                }
                ContentPart::Blob { .. } if self.start == pos && end == cut_end => {
                    push_part(out, *p)
                }
                ContentPart::Blob { .. } => {
                    return Err(parent_misfit(format!(
                        "a chunk at byte {} is not aligned with the chunking",
                        self.start
                    )));
                }
            }
            pos = cut_end;
        }
        Ok(())
    }
}

/// The new content list: `parent`'s, with each interval of `reread`
/// replaced by the parts read for it (`fresh`, in the same order), up to
/// `size` bytes.
fn splice(
    parent: &[ContentPart],
    size: u64,
    reread: &[(u64, u64)],
    fresh: Vec<Vec<ContentPart>>,
) -> Result<Vec<ContentPart>> {
    let mut out = Vec::new();
    let mut cur = PartCursor::new(parent);
    let mut pos = 0;
    for (&(a, b), parts) in reread.iter().zip(fresh) {
        cur.copy(pos, a, &mut out)?;
        for p in parts {
            push_part(&mut out, p);
        }
        pos = b;
    }
    cur.copy(pos, size, &mut out)?;
    Ok(out)
}

/// Check that `parts` is a fixed-chunk content list of `size` bytes:
/// every blob starts on a multiple of `chunk` and is `chunk` long, or ends
/// the content.
fn check_aligned(parts: &[ContentPart], chunk: u64, size: u64) -> Result<()> {
    let mut pos = 0u64;
    for p in parts {
        if let ContentPart::Blob { len, .. } = p {
            let len = u64::from(*len);
            if pos % chunk != 0 || (len != chunk && pos + len != size) {
                return Err(parent_misfit(format!(
                    "its chunk at byte {pos} ({len} bytes) is not a fixed {chunk}-byte chunk"
                )));
            }
        }
        pos += p.len();
    }
    if pos != size {
        return Err(parent_misfit(format!(
            "its content is {pos} bytes, its recorded size {size}"
        )));
    }
    Ok(())
}

/// Whether `[s, e)` meets any of the sorted, disjoint `extents`.
fn has_data(extents: &[(u64, u64)], s: u64, e: u64) -> bool {
    let i = extents.partition_point(|x| x.1 <= s);
    extents.get(i).is_some_and(|x| x.0 < e)
}

thread_local! {
    /// One fixed chunk's bytes, reused by this thread from chunk to chunk:
    /// a block backup holds at most one chunk per pool thread.
    static CHUNK_BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl ContentSaver<'_, '_> {
    /// Read and save `[from, to)` of `f` in fixed chunks of `chunk` bytes
    /// (`from` is aligned; `to` is aligned or the device end). Chunks that
    /// meet no data extent are holes and are not read.
    ///
    /// Each pool thread reads a chunk into its own buffer and seals it, so
    /// reading and sealing overlap across threads and nothing waits for a
    /// whole batch to be read first. Batches only keep the content list in
    /// order; they hold many chunks per thread, so a thread that finishes
    /// its last chunk early idles little.
    fn fixed_content(
        &self,
        f: &fs::File,
        path: &Path,
        (from, to): (u64, u64),
        chunk: u64,
        extents: &[(u64, u64)],
    ) -> Result<Vec<ContentPart>> {
        let threads = rayon::current_num_threads().max(1) as u64;
        let per_batch = (BATCH_BYTES / chunk).max(4 * threads);
        let mut parts = Vec::new();
        let mut pos = from;
        while pos < to {
            self.check_stop()?;
            let batch_end = (pos + per_batch * chunk).min(to);
            let spans: Vec<(u64, u64)> = (pos..batch_end)
                .step_by(chunk as usize)
                .map(|s| (s, (s + chunk).min(batch_end)))
                .collect();
            let read = std::sync::atomic::AtomicU64::new(0);
            let saved = spans
                .par_iter()
                .map(|&(s, e)| {
                    if !has_data(extents, s, e) {
                        return Ok(ContentPart::Hole { len: e - s });
                    }
                    self.check_stop()?;
                    CHUNK_BUF.with_borrow_mut(|buf| {
                        // Resized, not cleared: only a first (or larger)
                        // chunk zero-fills anything.
                        buf.resize((e - s) as usize, 0);
                        f.read_exact_at(buf, s).map_err(|e| Error::io(path, e))?;
                        fail_point!(self.fail_points, Read)?;
                        read.fetch_add(e - s, Ordering::Relaxed);
                        self.save_chunk(buf)
                    })
                })
                .collect::<Result<Vec<ContentPart>>>()
                .or_else(|e| self.fail(e))?;
            for p in saved {
                push_part(&mut parts, p);
            }
            self.bytes.fetch_add(read.into_inner(), Ordering::Relaxed);
            self.progress
                .bytes
                .fetch_add(batch_end - pos, Ordering::Relaxed);
            pos = batch_end;
        }
        Ok(parts)
    }
}

/// The parent of an incremental block backup, checked for reuse: its id
/// and its content list.
fn block_parent(
    repo: &Repository,
    id: Id,
    chunking: BlockChunking,
) -> Result<(Vec<ContentPart>, u64)> {
    let snap = repo.load_snapshot(&id)?;
    if snap.source != SourceKind::Block {
        return Err(parent_misfit(format!(
            "snapshot {} is not a block backup",
            id.short()
        )));
    }
    let recorded = snap.source_meta.get(META_CHUNKING).map(String::as_str);
    if recorded != Some(chunking.to_string().as_str()) {
        return Err(parent_misfit(format!(
            "snapshot {} was chunked {}, this backup {chunking}",
            id.short(),
            recorded.unwrap_or("(not recorded)")
        )));
    }
    let old_size: u64 = snap
        .source_meta
        .get(META_SIZE)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| parent_misfit(format!("snapshot {} records no device size", id.short())))?;
    let tree = repo.load_tree(&snap.tree)?;
    let node = match tree.nodes.as_slice() {
        [n] if n.kind == NodeKind::File => n,
        _ => {
            return Err(parent_misfit(format!(
                "snapshot {} does not hold exactly one file",
                id.short()
            )));
        }
    };
    if let BlockChunking::Fixed(c) = chunking {
        check_aligned(&node.content, u64::from(c), old_size)?;
    }
    Ok((node.content.clone(), old_size))
}

impl Archiver<'_, '_> {
    /// Back up the block device or image at `path` as one file node.
    pub(super) fn block(
        &self,
        opts: &BackupOptions,
        path: &Path,
        chunking: BlockChunking,
        changed: Option<&[ByteRange]>,
    ) -> Result<BlockBackup> {
        chunking.validate()?;
        let repo = self.content.repo;
        let abs: PathBuf = absolute_clean(path)?;
        let md = fs::metadata(&abs).map_err(|e| Error::io(&abs, e))?;
        if !md.is_file() && !md.file_type().is_block_device() {
            return Err(Error::InvalidArgument(format!(
                "{} is neither a block device nor a regular file",
                abs.display()
            )));
        }
        let name = abs
            .file_name()
            .map(|n| n.as_encoded_bytes().to_vec())
            .ok_or_else(|| Error::InvalidArgument(format!("{} has no name", abs.display())))?;
        let mut f = fs::File::open(&abs).map_err(|e| Error::io(&abs, e))?;
        let size = device_size(&mut f, &abs)?;
        let paths = vec![abs.display().to_string()];

        let mut meta = BTreeMap::new();
        meta.insert(META_SIZE.to_string(), size.to_string());
        meta.insert(META_CHUNKING.to_string(), chunking.to_string());

        let mut parent_id = None;
        let content = match (chunking, changed) {
            (BlockChunking::Cdc, Some(_)) => {
                return Err(Error::InvalidArgument(
                    "changed ranges need fixed chunking (fixed:SIZE), not cdc".into(),
                ));
            }
            (BlockChunking::Cdc, None) => match self.content.file_content(&f, size)? {
                Ok((parts, n)) if n == size => parts,
                Ok((_, n)) => {
                    return Err(Error::io(
                        &abs,
                        std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            format!("device shrank while read: {n} of {size} bytes"),
                        ),
                    ));
                }
                Err(e) => return self.content.fail(Error::io(&abs, e)),
            },
            (BlockChunking::Fixed(c), changed) => {
                let chunk = u64::from(c);
                let extents = data_extents(&f, size);
                match changed {
                    None => self
                        .content
                        .fixed_content(&f, &abs, (0, size), chunk, &extents)?,
                    Some(ranges) => {
                        validate_ranges(ranges, size)?;
                        if opts.force {
                            return Err(Error::InvalidArgument(
                                "changed ranges need a parent snapshot; --force reads none".into(),
                            ));
                        }
                        let host = opts.hostname.clone().unwrap_or_else(hostname);
                        let pid = match opts.parent {
                            Some(p) => p,
                            None => latest_block(repo, &host, &paths)?.ok_or_else(|| {
                                Error::InvalidArgument(format!(
                                    "changed ranges need a parent: no block snapshot of {} \
                                     on host {host}",
                                    abs.display()
                                ))
                            })?,
                        };
                        let (old, old_size) = block_parent(repo, pid, chunking)?;
                        parent_id = Some(pid);
                        meta.insert(META_CHANGED_RANGES.to_string(), ranges.len().to_string());
                        // Read: the changed chunks, the tail past the last
                        // whole chunk both sizes share (growth, or a last
                        // chunk that was short), and chunks whose parent
                        // blob the backup cannot rely on (not indexed, or
                        // marked by a prune).
                        let keep = old_size.min(size) / chunk * chunk;
                        let mut reread = round_out(ranges, chunk, size);
                        let mut extra = Vec::new();
                        {
                            let idx = repo.index();
                            let mut pos = 0u64;
                            for p in &old {
                                if let ContentPart::Blob { id, .. } = p {
                                    if pos < keep && !self.content.saver.guard.usable(&idx, id) {
                                        push_interval(&mut extra, pos, (pos + chunk).min(keep));
                                    }
                                }
                                pos += p.len();
                            }
                        }
                        push_interval(&mut extra, keep, size);
                        reread = union(&reread, &extra);
                        let mut fresh = Vec::with_capacity(reread.len());
                        for &span in &reread {
                            fresh.push(
                                self.content
                                    .fixed_content(&f, &abs, span, chunk, &extents)?,
                            );
                        }
                        let reused: u64 = size - reread.iter().map(|(a, b)| b - a).sum::<u64>();
                        self.content
                            .progress
                            .bytes
                            .fetch_add(reused, Ordering::Relaxed);
                        self.files_changed.fetch_add(1, Ordering::Relaxed);
                        splice(&old, size, &reread, fresh)?
                    }
                }
            }
        };

        let mut node = Node::new(name, NodeKind::File);
        node.mode = md.mode() & 0o7777;
        node.uid = md.uid();
        node.gid = md.gid();
        node.mtime = Timestamp {
            sec: md.mtime(),
            nsec: md.mtime_nsec().clamp(0, 999_999_999) as u32,
        };
        node.atime = Timestamp {
            sec: md.atime(),
            nsec: md.atime_nsec().clamp(0, 999_999_999) as u32,
        };
        node.ctime = Timestamp {
            sec: md.ctime(),
            nsec: md.ctime_nsec().clamp(0, 999_999_999) as u32,
        };
        node.size = size;
        node.links = 1;
        node.content = content;
        self.files.fetch_add(1, Ordering::Relaxed);
        self.bytes_total.fetch_add(size, Ordering::Relaxed);
        self.content.progress.files.fetch_add(1, Ordering::Relaxed);
        let tree = self.save_tree(vec![node])?;
        Ok(BlockBackup {
            tree,
            paths,
            parent: parent_id,
            meta,
        })
    }
}

/// The latest readable block snapshot of the same host and device path;
/// damaged snapshots are passed over.
fn latest_block(repo: &Repository, host: &str, paths: &[String]) -> Result<Option<Id>> {
    Ok(repo
        .snapshots()?
        .items
        .into_iter()
        .rev()
        .find(|(_, s)| s.source == SourceKind::Block && s.hostname == host && s.paths == paths)
        .map(|(id, _)| id))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn blob(n: u8, len: u32) -> ContentPart {
        ContentPart::Blob {
            id: Id([n; 32]),
            len,
        }
    }
    fn hole(len: u64) -> ContentPart {
        ContentPart::Hole { len }
    }
    fn r(offset: u64, length: u64) -> ByteRange {
        ByteRange { offset, length }
    }

    #[test]
    fn chunking_parses_and_prints() {
        assert_eq!(
            "fixed:4MiB".parse::<BlockChunking>().unwrap(),
            BlockChunking::Fixed(4 << 20)
        );
        assert_eq!(
            "fixed:65536".parse::<BlockChunking>().unwrap(),
            BlockChunking::Fixed(65536)
        );
        assert_eq!("cdc".parse::<BlockChunking>().unwrap(), BlockChunking::Cdc);
        assert_eq!(BlockChunking::Fixed(1 << 20).to_string(), "fixed:1048576");
        for bad in [
            "fixed:",
            "fixed:1000",
            "fixed:1GiB",
            "fixed:4XB",
            "4MiB",
            "fixed:0",
        ] {
            assert!(bad.parse::<BlockChunking>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_parse_both_spellings() {
        let a = parse_changed_ranges(br#"[{"offset":4096,"length":512}]"#).unwrap();
        let b = parse_changed_ranges(br#"[{"byte_offset":4096,"size_bytes":512}]"#).unwrap();
        assert_eq!(a, vec![r(4096, 512)]);
        assert_eq!(a, b);
        assert!(parse_changed_ranges(b"{}").is_err());
        assert!(parse_changed_ranges(br#"[{"offset":-1,"length":1}]"#).is_err());
    }

    #[test]
    fn ranges_are_validated() {
        validate_ranges(&[r(0, 10), r(10, 5), r(100, 1)], 101).unwrap();
        validate_ranges(&[], 0).unwrap();
        let msg = |rs: &[ByteRange]| validate_ranges(rs, 100).unwrap_err().to_string();
        assert!(msg(&[r(0, 0)]).contains("length is 0"));
        assert!(msg(&[r(90, 11)]).contains("past the end"));
        assert!(msg(&[r(u64::MAX, 2)]).contains("past the end"));
        assert!(msg(&[r(10, 5), r(0, 5)]).contains("sorted"));
        assert!(msg(&[r(0, 10), r(9, 5)]).contains("overlap"));
    }

    #[test]
    fn round_out_aligns_and_merges() {
        assert_eq!(
            round_out(&[r(1, 1), r(4095, 2), r(10000, 1)], 4096, 10001),
            vec![(0, 8192), (8192, 10001)]
                .into_iter()
                .fold(Vec::new(), |mut v, (a, b)| {
                    push_interval(&mut v, a, b);
                    v
                })
        );
        assert_eq!(round_out(&[r(5000, 1)], 4096, 6000), vec![(4096, 6000)]);
    }

    #[test]
    fn splice_replaces_chunks_and_cuts_holes() {
        // 4 chunks of 10: blob, hole, hole, blob(short 5) = 35 bytes.
        let parent = vec![blob(1, 10), hole(20), blob(2, 5)];
        check_aligned(&parent, 10, 35).unwrap();
        let out = splice(&parent, 35, &[(10, 20)], vec![vec![blob(3, 10)]]).unwrap();
        assert_eq!(out, vec![blob(1, 10), blob(3, 10), hole(10), blob(2, 5)]);
        // Growth: tail re-read.
        let out = splice(&parent, 45, &[(30, 45)], vec![vec![blob(4, 10), hole(5)]]).unwrap();
        assert_eq!(out, vec![blob(1, 10), hole(20), blob(4, 10), hole(5)]);
        // A zero chunk replacing a blob merges with the holes around it.
        let out = splice(&parent, 35, &[(0, 10)], vec![vec![hole(10)]]).unwrap();
        assert_eq!(out, vec![hole(30), blob(2, 5)]);
        // Shrink to 25: the kept part is 20, the tail [20, 25) re-read.
        let out = splice(&parent, 25, &[(20, 25)], vec![vec![hole(5)]]).unwrap();
        assert_eq!(out, vec![blob(1, 10), hole(15)]);
        // A blob cut by a re-read interval means the parent is not aligned.
        assert!(splice(&parent, 35, &[(5, 10)], vec![vec![]]).is_err());
        assert!(check_aligned(&[blob(1, 7), blob(2, 10)], 10, 17).is_err());
        assert!(check_aligned(&[blob(1, 10)], 10, 20).is_err());
    }

    #[test]
    fn has_data_finds_overlaps() {
        let ext = [(100, 200), (1000, 1100)];
        assert!(!has_data(&ext, 0, 100));
        assert!(has_data(&ext, 0, 101));
        assert!(has_data(&ext, 199, 300));
        assert!(!has_data(&ext, 200, 1000));
        assert!(has_data(&ext, 1050, 1051));
        assert!(!has_data(&ext, 1100, 5000));
    }
}
