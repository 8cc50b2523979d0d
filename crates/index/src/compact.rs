//! Compaction: merge many small index segments into few large ones.
//!
//! Safe while other clients back up, load the index or compact (the argument
//! is in `docs/index.md`):
//! - only segments this run listed *and read* are superseded; a segment
//!   written after the listing is never touched;
//! - new segments are written first; the last one names every merged
//!   segment in `supersedes`, so until it is durable readers see the old
//!   segments (and identical copies, which merge as one), and after it they
//!   skip the old ones;
//! - old segments are deleted only after that, and a reader that listed one
//!   and then finds it gone looks for the segment superseding it.
//!
//! Memory is bounded: records are grouped by pack through an external sort.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{BlobFlags, BlobType, Id, IndexEntry, IndexPack, IndexSegment, MasterKey};
use lifeboat_store::Backend;

use crate::build::{list_segments, read_segments};
use crate::sort::{Peekable, Sorter};
use crate::{Error, IndexProgress, Result, write_segment};

/// `pack id (32) ‖ segment ordinal u32 BE ‖ size u64 LE ‖ type u8`.
const CPACK: usize = 45;
/// `pack id (32) ‖ offset u32 BE ‖ ordinal u32 BE ‖ blob id (32) ‖ flags ‖
/// stored_len u32 LE ‖ raw_len u32 LE`.
const CBLOB: usize = 81;

/// How to compact.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Blobs per new segment. Segments with at least half as many blobs are
    /// left as they are.
    pub target_blobs: usize,
    /// Bytes of records sorted in memory before spilling to disk.
    pub sort_memory: usize,
    /// Segments downloaded at once.
    pub read_concurrency: usize,
    /// Directory for sort runs (the system temporary directory if `None`).
    pub temp_dir: Option<PathBuf>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions {
            target_blobs: 1 << 16,
            sort_memory: 32 << 20,
            read_concurrency: 4,
            temp_dir: None,
        }
    }
}

/// What a compaction did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct CompactReport {
    /// Segments listed.
    pub segments_listed: usize,
    /// Live segments merged into new ones.
    pub segments_merged: usize,
    /// Live segments left as they were (large enough already).
    pub segments_kept: usize,
    /// New segments written.
    pub written: Vec<Id>,
    /// Segments deleted: the merged ones and ones already superseded.
    pub deleted: Vec<Id>,
    /// Segments that could not be deleted, with the store's error
    /// (harmless: they are superseded; a later compaction deletes them).
    pub delete_errors: Vec<(Id, lifeboat_store::Error)>,
    /// Packs in the new segments.
    pub packs: u64,
    /// Blobs in the new segments.
    pub blobs: u64,
}

fn ord_of(r: &[u8], at: usize) -> usize {
    u32::from_be_bytes([r[at], r[at + 1], r[at + 2], r[at + 3]]) as usize
}

fn le32(r: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]])
}

fn io(e: std::io::Error) -> Error {
    Error::Cache {
        path: PathBuf::from("<compaction sort>"),
        source: e,
    }
}

/// Merge the repository's small live segments into segments of about
/// `opts.target_blobs` blobs, then delete the merged ones and any segments
/// already superseded. Fails without changing anything if a segment cannot
/// be decoded (run [`rebuild`](crate::rebuild) then).
pub fn compact(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    opts: &CompactOptions,
    progress: &IndexProgress,
) -> Result<CompactReport> {
    let target = opts.target_blobs.max(1);
    let listed = list_segments(backend)?;
    let mut report = CompactReport {
        segments_listed: listed.len(),
        ..CompactReport::default()
    };
    progress.total.store(listed.len() as u64, Ordering::Relaxed);
    progress.done.store(0, Ordering::Relaxed);

    let dir = opts.temp_dir.as_deref();
    let mut packs: Sorter<CPACK> = Sorter::new(dir, opts.sort_memory / 8);
    let mut blobs: Sorter<CBLOB> = Sorter::new(dir, opts.sort_memory - opts.sort_memory / 8);
    // Segments read, by ordinal: id and whether it is small.
    let mut read: Vec<(Id, bool)> = Vec::new();
    let mut supersedes: HashSet<Id> = HashSet::new();
    read_segments(backend, key, &listed, opts.read_concurrency, |id, r| {
        progress.done.fetch_add(1, Ordering::Relaxed);
        let seg = match r {
            Ok(s) => s,
            // Deleted since the listing (by another compaction): not ours.
            Err(Error::Store(e)) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        supersedes.extend(seg.supersedes.iter().copied());
        let ord = read.len() as u32;
        let small = seg.blob_count() < target.div_ceil(2);
        read.push((id, small));
        if !small {
            return Ok(());
        }
        for p in &seg.packs {
            let mut r = [0u8; CPACK];
            r[..32].copy_from_slice(&p.id.0);
            r[32..36].copy_from_slice(&ord.to_be_bytes());
            r[36..44].copy_from_slice(&p.size.to_le_bytes());
            r[44] = p.blob_type as u8;
            packs.push(r).map_err(io)?;
            for b in &p.blobs {
                let mut r = [0u8; CBLOB];
                r[..32].copy_from_slice(&p.id.0);
                r[32..36].copy_from_slice(&b.offset.to_be_bytes());
                r[36..40].copy_from_slice(&ord.to_be_bytes());
                r[40..72].copy_from_slice(&b.id.0);
                r[72] = b.flags.0;
                r[73..77].copy_from_slice(&b.stored_len.to_le_bytes());
                r[77..81].copy_from_slice(&b.raw_len.to_le_bytes());
                blobs.push(r).map_err(io)?;
            }
        }
        Ok(())
    })?;

    // Merge the small live segments; keep the large ones; delete the
    // superseded ones that are still listed.
    let merge: Vec<bool> = read
        .iter()
        .map(|(id, small)| *small && !supersedes.contains(id))
        .collect();
    let inputs: Vec<Id> = read
        .iter()
        .zip(&merge)
        .filter(|(_, m)| **m)
        .map(|((id, _), _)| *id)
        .collect();
    report.segments_kept = read
        .iter()
        .filter(|(id, small)| !small && !supersedes.contains(id))
        .count();
    let stale: Vec<Id> = listed
        .iter()
        .filter(|id| supersedes.contains(id))
        .copied()
        .collect();
    if inputs.len() < 2 {
        delete(backend, &stale, &mut report);
        return Ok(report);
    }
    report.segments_merged = inputs.len();

    let mut packs = Peekable::new(packs.finish().map_err(io)?).map_err(io)?;
    let mut blobs = Peekable::new(blobs.finish().map_err(io)?).map_err(io)?;
    let mut cur = IndexSegment::new();
    let mut cur_blobs = 0usize;
    let mut last_pack: Option<[u8; 32]> = None;
    while let Some(p) = packs.take().map_err(io)? {
        if !merge.get(ord_of(&p, 32)).copied().unwrap_or(false)
            || last_pack.is_some_and(|l| l[..] == p[..32])
        {
            continue;
        }
        let mut pid = [0u8; 32];
        pid.copy_from_slice(&p[..32]);
        last_pack = Some(pid);
        let blob_type = BlobType::from_u8(p[44])
            .map_err(|e| io(std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        let size = u64::from_le_bytes([p[36], p[37], p[38], p[39], p[40], p[41], p[42], p[43]]);
        let mut entries: Vec<IndexEntry> = Vec::new();
        // Blob records sort by pack id as the pack records do; those of
        // skipped packs come first and are dropped here.
        while let Some(b) = blobs.peek() {
            if b[..32] > pid[..] {
                break;
            }
            let Some(b) = blobs.take().map_err(io)? else {
                break;
            };
            if b[..32] < pid[..] || !merge.get(ord_of(&b, 36)).copied().unwrap_or(false) {
                continue;
            }
            let mut bid = [0u8; 32];
            bid.copy_from_slice(&b[40..72]);
            let e = IndexEntry {
                id: Id(bid),
                flags: BlobFlags(b[72]),
                offset: ord_of(&b, 32) as u32,
                stored_len: le32(&b, 73),
                raw_len: le32(&b, 77),
            };
            if entries.last() != Some(&e) {
                entries.push(e);
            }
        }
        report.packs += 1;
        report.blobs += entries.len() as u64;
        cur_blobs += entries.len();
        cur.packs.push(IndexPack {
            id: Id(pid),
            blob_type,
            size,
            blobs: entries,
        });
        if cur_blobs >= target {
            let full = std::mem::replace(&mut cur, IndexSegment::new());
            report.written.push(write_segment(backend, key, &full)?);
            cur_blobs = 0;
        }
    }
    // The last segment supersedes everything merged, and the segments that
    // were already superseded, so that they stay superseded once their
    // superseders are gone.
    let mut sup: Vec<Id> = inputs.iter().chain(&stale).copied().collect();
    sup.sort_unstable();
    sup.dedup();
    cur.supersedes = sup.clone();
    report.written.push(write_segment(backend, key, &cur)?);
    delete(backend, &sup, &mut report);
    Ok(report)
}

fn delete(backend: &Arc<dyn Backend>, ids: &[Id], report: &mut CompactReport) {
    for id in ids {
        match backend.delete(&layout::object_path(Folder::Index, id)) {
            Ok(()) => report.deleted.push(*id),
            Err(e) => report.delete_errors.push((*id, e)),
        }
    }
}
