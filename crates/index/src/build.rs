//! Building the local tables from the repository's index segments.
//!
//! The index is a *base* table plus at most one *overlay*. A refresh reads
//! only the segments neither has merged. While the overlay stays small
//! (at most 1/8 of the base), they are merged with the old overlay into a new
//! overlay, so a refresh costs in proportion to what is new, not to the size
//! of the index. Past that, the overlay's segments are read again and
//! everything is merged into a new base. A segment merged into either table
//! that is superseded or gone forces a full build.
//!
//! Memory is bounded by the sort budget, the segments being decoded (one per
//! reader thread, plus one queued), and 4 bytes per pack for renumbering
//! packs; it does not grow with the number of blobs.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{BlobFlags, BlobType, Id, IndexPack, IndexSegment, MasterKey};
use lifeboat_store::Backend;

use crate::sort::{Empty, Peekable, Sorted, Sorter, Source};
use crate::table::{
    BLOB_REC, PACK_REC, Table, TableError, TableWriter, blob_record, pack_record, record_pack,
    with_pack,
};
use crate::{Error, IndexOptions, IndexWarning, LoadStats, Result};

/// Record of a pack read from a segment, sorted by pack id, then sequence:
/// `pack id (32) ‖ seq u32 BE ‖ size u64 LE ‖ type u8`.
const NEW_PACK: usize = 45;
/// Record of a blob read from a segment, sorted by blob id, then sequence:
/// `blob id (32) ‖ pack seq u32 BE ‖ flags u8 ‖ offset ‖ stored_len ‖ raw_len (u32 LE)`.
const NEW_BLOB: usize = 49;
/// Pack sequence number of a pack whose segment is superseded.
const DEAD: u32 = u32::MAX;
/// Pack sequence number not yet given a table position.
const PENDING: u32 = u32::MAX - 1;
/// How often a build is retried when a segment vanishes under it.
const ATTEMPTS: usize = 4;

/// Name of the base table file in the index cache directory.
pub(crate) const TABLE_FILE: &str = "table-v1";
/// Name of the overlay table file in the index cache directory.
pub(crate) const OVERLAY_FILE: &str = "overlay-v1";
/// The overlay is folded into the base when it would exceed 1/`OVERLAY_RATIO`
/// of the base's blobs.
const OVERLAY_RATIO: u64 = 8;
/// Fewest stored bytes per blob in a segment (a 32-byte id and four more
/// fields), to estimate from listed sizes how many blobs segments hold.
const SEGMENT_BYTES_PER_BLOB: u64 = 36;

fn io_err(path: Option<&Path>) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Cache {
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        source: e,
    }
}

/// The error for a table that fails to open just after it was written.
fn reopen_err(path: Option<&Path>) -> impl Fn(TableError) -> Error + '_ {
    move |e| Error::Cache {
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        source: match e {
            TableError::Io(io) => io,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        },
    }
}

/// All segment ids under `index/`, ascending; names that are not ids are
/// left out.
pub(crate) fn list_segments(backend: &Arc<dyn Backend>) -> Result<Vec<Id>> {
    Ok(list_segments_sized(backend)?
        .0
        .into_iter()
        .map(|(id, _)| id)
        .collect())
}

/// Segment ids with their listed sizes, and the paths of stray names.
type SegmentListing = (Vec<(Id, u64)>, Vec<String>);

/// All segment ids under `index/` with their sizes, ascending by id, and
/// the paths of listed objects whose names are not ids.
fn list_segments_sized(backend: &Arc<dyn Backend>) -> Result<SegmentListing> {
    let mut ids = Vec::new();
    let mut strays = Vec::new();
    for obj in backend.list(&Folder::Index.prefix())? {
        match layout::id_of_path(&obj.path) {
            Some(id) => ids.push((id, obj.size)),
            None => strays.push(obj.path),
        }
    }
    ids.sort_unstable();
    ids.dedup_by_key(|(id, _)| *id);
    Ok((ids, strays))
}

/// Fetch, check and decode one segment.
pub(crate) fn read_segment(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    id: &Id,
) -> Result<IndexSegment> {
    let bytes = backend.get(&layout::object_path(Folder::Index, id))?;
    if Id::of_object(&bytes) != *id {
        return Err(Error::Segment {
            segment: id.to_hex(),
            source: lifeboat_format::Error::Malformed {
                what: "index segment",
                reason: "content does not hash to its name".into(),
            },
        });
    }
    IndexSegment::decode(key, &bytes).map_err(|e| Error::Segment {
        segment: id.to_hex(),
        source: e,
    })
}

/// Read `ids` with `workers` threads and hand each result to `f` on the
/// calling thread, in completion order. Stops early when `f` fails.
pub(crate) fn read_segments(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    ids: &[Id],
    workers: usize,
    mut f: impl FnMut(Id, Result<IndexSegment>) -> Result<()>,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let workers = workers.clamp(1, ids.len());
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // One queued segment: memory stays at about `workers + 2` segments.
        let (tx, rx) = sync_channel(1);
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop) = (&next, &stop);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some(id) = ids.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    if tx.send((*id, read_segment(backend, key, id))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut result = Ok(());
        for (id, r) in rx {
            if result.is_ok() {
                result = f(id, r);
                if result.is_err() {
                    stop.store(true, Ordering::Relaxed);
                }
            }
        }
        result
    })
}

/// Where a new table is written.
enum Dest {
    /// In the cache directory, renamed to `target` when complete.
    Named(tempfile::NamedTempFile, PathBuf),
    /// An unlinked temporary file, gone when the process ends.
    Anonymous(File),
}

impl Dest {
    fn create(dir: Option<&Path>, name: &str) -> Result<Dest> {
        match dir {
            Some(d) => {
                let tmp = tempfile::Builder::new()
                    .prefix(".table-")
                    .tempfile_in(d)
                    .map_err(io_err(Some(d)))?;
                Ok(Dest::Named(tmp, d.join(name)))
            }
            None => Ok(Dest::Anonymous(tempfile::tempfile().map_err(io_err(None))?)),
        }
    }

    fn file(&self) -> Result<File> {
        match self {
            Dest::Named(t, p) => t.as_file().try_clone().map_err(io_err(Some(p))),
            Dest::Anonymous(f) => f.try_clone().map_err(io_err(None)),
        }
    }

    /// Put the finished file in place; returns it and its path.
    fn commit(self) -> Result<(File, Option<PathBuf>)> {
        match self {
            Dest::Named(t, p) => {
                let f = t.persist(&p).map_err(|e| Error::Cache {
                    path: p.clone(),
                    source: e.error,
                })?;
                Ok((f, Some(p)))
            }
            Dest::Anonymous(f) => Ok((f, None)),
        }
    }
}

/// Pack and blob records gathered from segments, before sorting.
pub(crate) struct Feed {
    packs: Sorter<NEW_PACK>,
    blobs: Sorter<NEW_BLOB>,
    seqs: u32,
}

impl Feed {
    pub(crate) fn new(dir: Option<&Path>, memory: usize) -> Feed {
        Feed {
            packs: Sorter::new(dir, memory / 8),
            blobs: Sorter::new(dir, memory - memory / 8),
            seqs: 0,
        }
    }

    /// Add a pack and its blobs; returns its sequence number.
    pub(crate) fn add_pack(&mut self, p: &IndexPack) -> std::io::Result<u32> {
        let seq = self.seqs;
        if seq >= PENDING {
            return Err(std::io::Error::other("too many packs"));
        }
        self.seqs += 1;
        let mut r = [0u8; NEW_PACK];
        r[..32].copy_from_slice(&p.id.0);
        r[32..36].copy_from_slice(&seq.to_be_bytes());
        r[36..44].copy_from_slice(&p.size.to_le_bytes());
        r[44] = p.blob_type as u8;
        self.packs.push(r)?;
        for b in &p.blobs {
            let mut r = [0u8; NEW_BLOB];
            r[..32].copy_from_slice(&b.id.0);
            r[32..36].copy_from_slice(&seq.to_be_bytes());
            r[36] = b.flags.0;
            r[37..41].copy_from_slice(&b.offset.to_le_bytes());
            r[41..45].copy_from_slice(&b.stored_len.to_le_bytes());
            r[45..49].copy_from_slice(&b.raw_len.to_le_bytes());
            self.blobs.push(r)?;
        }
        Ok(seq)
    }
}

fn seq_of(r: &[u8]) -> usize {
    u32::from_be_bytes([r[32], r[33], r[34], r[35]]) as usize
}

fn le32(r: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([r[i], r[i + 1], r[i + 2], r[i + 3]])
}

fn corrupt(what: &str) -> std::io::Error {
    std::io::Error::other(format!("local index table: {what}"))
}

/// Merge an old table's records (possibly none) with new ones into `w`.
/// `new_map[seq]` is `DEAD` for packs of superseded segments and `PENDING`
/// for the others; it is filled with table positions. When writing an
/// overlay, `base` is its base: blobs it holds are left out and packs it
/// holds are flagged. Returns the duplicate blob entries (the same blob id
/// at another location) and the packs shared with `base`.
fn merge(
    w: &mut TableWriter,
    old_packs: impl Source<PACK_REC>,
    old_blobs: impl Source<BLOB_REC>,
    new_packs: Sorted<NEW_PACK>,
    new_blobs: Sorted<NEW_BLOB>,
    new_map: &mut [u32],
    base: Option<&Table>,
) -> std::io::Result<(u64, u64)> {
    // Packs, by id; the old table wins a tie.
    let mut old = Peekable::new(old_packs)?;
    let mut new = Peekable::new(new_packs)?;
    let mut old_map: Vec<u32> = Vec::new();
    // Pack ids written, for comparing locations with the base (overlays only).
    let mut written: Vec<Id> = Vec::new();
    let mut shared = 0u64;
    let mut last: Option<([u8; 32], u32)> = None;
    loop {
        let take_old = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(o), Some(n)) => o[..32] <= n[..32],
        };
        let (rec, slot) = if take_old {
            let Some(r) = old.take()? else { break };
            old_map.push(PENDING);
            let i = old_map.len() - 1;
            (r, (true, i))
        } else {
            let Some(r) = new.take()? else { break };
            let seq = seq_of(&r);
            if *new_map.get(seq).ok_or_else(|| corrupt("pack sequence"))? == DEAD {
                continue;
            }
            let mut id = [0u8; 32];
            id.copy_from_slice(&r[..32]);
            let size = u64::from_le_bytes([r[36], r[37], r[38], r[39], r[40], r[41], r[42], r[43]]);
            let t = BlobType::from_u8(r[44]).map_err(|_| corrupt("blob type"))?;
            (pack_record(&Id(id), size, t, false), (false, seq))
        };
        let i = match last {
            Some((l, i)) if l[..] == rec[..32] => i,
            _ => {
                let mut id = [0u8; 32];
                id.copy_from_slice(&rec[..32]);
                let mut rec = rec;
                if let Some(b) = base {
                    // Old records carry their flag already.
                    if slot.0 && rec[41] == 1 || !slot.0 && b.find_pack(&Id(id)).is_some() {
                        rec[41] = 1;
                        shared += 1;
                    }
                    written.push(Id(id));
                }
                let i = w.pack(&rec)?;
                last = Some((id, i));
                i
            }
        };
        match slot {
            (true, j) => old_map[j] = i,
            (false, seq) => new_map[seq] = i,
        }
    }

    // Blobs, by id; the old table wins a tie, and identical entries are one.
    let mut old = Peekable::new(old_blobs)?;
    let mut new = Peekable::new(new_blobs)?;
    let mut last: Option<[u8; BLOB_REC]> = None;
    let mut seen: Vec<[u8; BLOB_REC]> = Vec::new();
    let mut duplicates = 0;
    loop {
        let take_old = match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(o), Some(n)) => o[..32] <= n[..32],
        };
        let rec = if take_old {
            let Some(r) = old.take()? else { break };
            let p = old_map
                .get(record_pack(&r) as usize)
                .ok_or_else(|| corrupt("blob refers to a missing pack"))?;
            // Known not to be in the base: the old table is that overlay.
            last = Some(with_pack(r, *p));
            seen.clear();
            seen.extend(last);
            w.blob(&with_pack(r, *p))?;
            continue;
        } else {
            let Some(r) = new.take()? else { break };
            let p = *new_map
                .get(seq_of(&r))
                .ok_or_else(|| corrupt("pack sequence"))?;
            if p == DEAD {
                continue;
            }
            if p == PENDING {
                return Err(corrupt("blob of a pack that was not merged"));
            }
            blob_record(
                &r[..32],
                p,
                BlobFlags(r[36]),
                le32(&r, 37),
                le32(&r, 41),
                le32(&r, 45),
            )
        };
        match &last {
            Some(l) if l[..32] == rec[..32] => {
                // Count each further distinct location of this id once.
                if !seen.contains(&rec) {
                    seen.push(rec);
                    duplicates += 1;
                }
            }
            _ => {
                seen.clear();
                seen.push(rec);
                last = Some(rec);
                if let Some(b) = base {
                    let mut id = [0u8; 32];
                    id.copy_from_slice(&rec[..32]);
                    if let Some(pos) = b.find(&Id(id)) {
                        // Held by the base: left out, and a duplicate if
                        // the base has it elsewhere.
                        let same = b.blob_at(pos).is_some_and(|(_, l)| {
                            written.get(record_pack(&rec) as usize) == Some(&l.pack)
                                && l.offset == le32(&rec, 36)
                                && l.stored_len == le32(&rec, 40)
                        });
                        duplicates += u64::from(!same);
                        continue;
                    }
                }
                w.blob(&rec)?;
            }
        }
    }
    Ok((duplicates, shared))
}

/// Settings shared by every build of one index.
pub(crate) struct BuildContext<'a> {
    pub backend: &'a Arc<dyn Backend>,
    pub key: &'a MasterKey,
    pub mac_key: &'a [u8; 32],
    pub opts: &'a IndexOptions,
    /// The index cache directory, created; `None` for unnamed tables.
    pub dir: Option<&'a Path>,
}

/// What a refresh produced.
pub(crate) enum Built {
    /// The tables given already hold every live segment; with `overlay`
    /// false, the overlay given is not part of the index any more.
    Current {
        /// Whether the overlay given is still valid.
        overlay: bool,
    },
    /// A new base; any overlay is obsolete.
    Base(Table),
    /// A new overlay over the current base.
    Overlay(Table),
}

enum Attempt {
    Done(Box<Built>),
    /// A merged segment was superseded: only a full build is correct.
    NeedFull,
    /// The overlay would grow too large: merge it into the base.
    NeedFold,
    /// A listed segment disappeared and nothing read supersedes it.
    Vanished(Id),
}

/// Bring the tables up to date with the repository (see the module doc).
pub(crate) fn build(
    cx: &BuildContext<'_>,
    base: Option<&Table>,
    overlay: Option<&Table>,
    stats: &mut LoadStats,
    warnings: &mut Vec<IndexWarning>,
) -> Result<Built> {
    let mut vanished = None;
    for _ in 0..ATTEMPTS {
        let (sized, strays) = list_segments_sized(cx.backend)?;
        warnings.clear();
        warnings.extend(
            strays
                .into_iter()
                .map(|path| IndexWarning::StrayName { path }),
        );
        let listing_warnings = warnings.len();
        let listed: Vec<Id> = sized.iter().map(|(id, _)| *id).collect();
        stats.segments_listed = listed.len();
        let subset = |t: &&Table| t.segments().iter().all(|s| listed.binary_search(s).is_ok());
        let mut base = base.filter(subset);
        let mut overlay = overlay.filter(subset).filter(|_| base.is_some());
        let mut allow_overlay = true;
        loop {
            warnings.truncate(listing_warnings);
            let tables = Tables { base, overlay };
            match attempt(cx, &sized, &listed, tables, allow_overlay, stats, warnings)? {
                Attempt::Done(b) => {
                    stats.full_build = base.is_none();
                    return Ok(*b);
                }
                Attempt::NeedFull if base.is_some() => {
                    base = None;
                    overlay = None;
                }
                Attempt::NeedFold if allow_overlay => {
                    overlay = None;
                    allow_overlay = false;
                }
                Attempt::NeedFull | Attempt::NeedFold => {
                    return Err(Error::Internal("a full build asked for another".into()));
                }
                Attempt::Vanished(id) => {
                    vanished = Some(id);
                    break;
                }
            }
        }
    }
    Err(Error::SegmentVanished {
        segment: vanished.map(|v| v.to_hex()).unwrap_or_default(),
    })
}

/// The tables an attempt starts from.
#[derive(Clone, Copy)]
struct Tables<'a> {
    base: Option<&'a Table>,
    overlay: Option<&'a Table>,
}

fn attempt(
    cx: &BuildContext<'_>,
    sized: &[(Id, u64)],
    listed: &[Id],
    Tables { base, overlay }: Tables<'_>,
    allow_overlay: bool,
    stats: &mut LoadStats,
    warnings: &mut Vec<IndexWarning>,
) -> Result<Attempt> {
    let tables: Vec<&Table> = base.iter().chain(overlay.iter()).copied().collect();
    let known = |id: &Id| {
        tables.iter().any(|t| {
            t.segments().binary_search(id).is_ok() || t.superseded().binary_search(id).is_ok()
        })
    };
    let to_read: Vec<Id> = listed.iter().filter(|id| !known(id)).copied().collect();
    if base.is_some() && to_read.is_empty() {
        return Ok(Attempt::Done(Box::new(Built::Current {
            overlay: overlay.is_some(),
        })));
    }
    // Write an overlay while it stays small; else a new base. Decided from
    // the listed sizes, before reading, so nothing is read twice.
    let write_overlay = match base {
        Some(b) if allow_overlay => {
            let new_bytes: u64 = sized
                .iter()
                .filter(|(id, _)| !known(id))
                .map(|(_, size)| size)
                .sum();
            let total = overlay.map_or(0, |o| o.len() as u64) + new_bytes / SEGMENT_BYTES_PER_BLOB;
            let fits = total * OVERLAY_RATIO <= b.len() as u64;
            if !fits && overlay.is_some() {
                // The overlay's segments must be read again for the base.
                return Ok(Attempt::NeedFold);
            }
            fits
        }
        _ => false,
    };
    let mut feed = Feed::new(cx.dir, cx.opts.sort_memory);
    let mut ranges: Vec<(Id, u32, u32)> = Vec::new();
    let mut supersedes: HashSet<Id> = HashSet::new();
    let mut gone: Vec<Id> = Vec::new();
    let dir = cx.dir;
    read_segments(
        cx.backend,
        cx.key,
        &to_read,
        cx.opts.read_concurrency,
        |id, r| {
            match r {
                Ok(seg) => {
                    stats.segments_read += 1;
                    supersedes.extend(seg.supersedes.iter().copied());
                    let start = feed.seqs;
                    for p in &seg.packs {
                        feed.add_pack(p).map_err(io_err(dir))?;
                    }
                    ranges.push((id, start, feed.seqs));
                }
                Err(Error::Store(e)) if e.is_not_found() => gone.push(id),
                // Damage costs this segment only: its packs are found from
                // their headers when a lookup misses.
                Err(
                    e @ (Error::Segment { .. }
                    | Error::Store(lifeboat_store::Error::Truncated { .. })),
                ) => {
                    warnings.push(IndexWarning::DamagedSegment {
                        path: layout::object_path(Folder::Index, &id),
                        source: Box::new(e),
                    });
                }
                Err(e) => return Err(e),
            }
            Ok(())
        },
    )?;
    if tables
        .iter()
        .any(|t| t.segments().iter().any(|s| supersedes.contains(s)))
    {
        return Ok(Attempt::NeedFull);
    }
    if let Some(v) = gone.iter().find(|v| !supersedes.contains(v)) {
        return Ok(Attempt::Vanished(*v));
    }
    // Only damaged segments were new: the tables are as current as they
    // can be, so they are kept rather than written again on every open.
    if allow_overlay && base.is_some() && ranges.is_empty() && supersedes.is_empty() {
        return Ok(Attempt::Done(Box::new(Built::Current {
            overlay: overlay.is_some(),
        })));
    }
    // The old table merged into the new one: the overlay, or the base.
    let old = if write_overlay { overlay } else { base };

    let mut new_map = vec![PENDING; feed.seqs as usize];
    let mut merged: Vec<Id> = old.map(|t| t.segments().to_vec()).unwrap_or_default();
    for (id, start, end) in &ranges {
        if supersedes.contains(id) {
            new_map[*start as usize..*end as usize].fill(DEAD);
        } else {
            merged.push(*id);
        }
    }
    merged.sort_unstable();
    merged.dedup();
    let mut superseded: Vec<Id> = tables
        .iter()
        .flat_map(|t| t.superseded().iter().copied())
        .collect();
    superseded.extend(supersedes);
    superseded.retain(|id| listed.binary_search(id).is_ok());
    superseded.sort_unstable();
    superseded.dedup();

    let name = if write_overlay {
        OVERLAY_FILE
    } else {
        TABLE_FILE
    };
    let dest = Dest::create(cx.dir, name)?;
    let err = io_err(cx.dir);
    let mut w = TableWriter::new(dest.file()?, cx.mac_key);
    for id in &merged {
        w.segment(id).map_err(&err)?;
    }
    for id in &superseded {
        w.superseded(id).map_err(&err)?;
    }
    let new_packs = feed.packs.finish().map_err(&err)?;
    let new_blobs = feed.blobs.finish().map_err(&err)?;
    let over = if write_overlay { base } else { None };
    let (duplicates, shared) = match old {
        Some(t) => {
            let (d, s) = merge(
                &mut w,
                t.pack_records(),
                t.blob_records(),
                new_packs,
                new_blobs,
                &mut new_map,
                over,
            )
            .map_err(&err)?;
            (d + t.duplicates(), s)
        }
        None => merge(
            &mut w,
            Empty,
            Empty,
            new_packs,
            new_blobs,
            &mut new_map,
            over,
        )
        .map_err(&err)?,
    };
    drop(new_map);
    w.finish(duplicates, shared, over.map(Table::mac))
        .map_err(&err)?;
    let (file, path) = dest.commit()?;
    let table = Table::open(
        file,
        cx.mac_key,
        false,
        cx.opts.lookups,
        cx.opts.release_every,
    )
    .map_err(reopen_err(path.as_deref()))?;
    if write_overlay {
        stats.overlay_path = path;
        Ok(Attempt::Done(Box::new(Built::Overlay(table))))
    } else {
        stats.table_path = path;
        Ok(Attempt::Done(Box::new(Built::Base(table))))
    }
}

/// Build a table from packs given directly (no repository): for tests and
/// benchmarks. Written as an unnamed file unless `dir` is given.
pub(crate) fn build_from_packs(
    packs: impl IntoIterator<Item = IndexPack>,
    mac_key: &[u8; 32],
    opts: &IndexOptions,
    dir: Option<&Path>,
) -> Result<(Table, Option<PathBuf>)> {
    let err = io_err(dir);
    let mut feed = Feed::new(dir, opts.sort_memory);
    for p in packs {
        feed.add_pack(&p).map_err(&err)?;
    }
    let mut new_map = vec![PENDING; feed.seqs as usize];
    let dest = Dest::create(dir, TABLE_FILE)?;
    let mut w = TableWriter::new(dest.file()?, mac_key);
    let new_packs = feed.packs.finish().map_err(&err)?;
    let new_blobs = feed.blobs.finish().map_err(&err)?;
    let (duplicates, _) = merge(
        &mut w,
        Empty,
        Empty,
        new_packs,
        new_blobs,
        &mut new_map,
        None,
    )
    .map_err(&err)?;
    w.finish(duplicates, 0, None).map_err(&err)?;
    let (file, path) = dest.commit()?;
    let table = Table::open(file, mac_key, false, opts.lookups, opts.release_every)
        .map_err(reopen_err(path.as_deref()))?;
    Ok((table, path))
}

/// Open the base table in `dir` and its overlay, each if it is there and its
/// MAC holds; an overlay of another base is ignored.
pub(crate) fn open_cached(
    dir: &Path,
    mac_key: &[u8; 32],
    opts: &IndexOptions,
) -> (Option<Table>, Option<Table>, Option<String>) {
    let open = |name: &str| -> std::result::Result<Option<Table>, (PathBuf, TableError)> {
        let path = dir.join(name);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err((path, e.into())),
        };
        Table::open(file, mac_key, true, opts.lookups, opts.release_every)
            .map(Some)
            .map_err(|e| (path, e))
    };
    // Why a table was not used is a note in the load statistics, not an
    // error: the table is built again from the repository.
    let why = |(path, e): (PathBuf, TableError)| Some(format!("{}: {e}", path.display()));
    let base = match open(TABLE_FILE) {
        Ok(Some(b)) if b.base_mac().is_none() => b,
        Ok(Some(_)) => return (None, None, Some("base table is an overlay".into())),
        Ok(None) => return (None, None, None),
        Err(e) => return (None, None, why(e)),
    };
    match open(OVERLAY_FILE) {
        Ok(Some(o)) if o.base_mac() == Some(base.mac()) => (Some(base), Some(o), None),
        Ok(_) => (Some(base), None, None),
        Err(e) => (Some(base), None, why(e)),
    }
}

/// Remove the overlay file (after a new base made it obsolete).
pub(crate) fn remove_overlay(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(OVERLAY_FILE));
}
