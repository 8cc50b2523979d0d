//! Carrying out a plan, in the order that keeps every step safe to stop
//! at: new packs, then new index segments (which supersede those naming
//! the packs that go), then the new mark object, and deletions last.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use lifeboat_core::Repository;
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{
    BlobType, Compression, GroupBuilder, Id, IndexEntry, IndexPack, IndexSegment, MarkedObject,
    MasterKey, PackBuilder, SealedBlob, decode_pack_header, open_blob, parse_pack_trailer,
    seal_blob_with_id,
};
use lifeboat_index::{Index, UsedBlobs, write_segment};
use lifeboat_store::Backend;

use super::lock::HeldLock;
use super::marks;
use super::options::{Error, PruneOptions, PruneProgress, Result};
use super::plan::{PrunePlan, read_segment};

/// Blobs per index segment written by prune.
const SEGMENT_BLOBS: usize = 1 << 16;

/// What carrying out a plan did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Executed {
    /// New packs written by repacking.
    pub packs_written: Vec<Id>,
    /// Blobs copied into them.
    pub blobs_repacked: u64,
    /// Index segments written.
    pub segments_written: Vec<Id>,
    /// Index segments deleted (superseded).
    pub segments_deleted: Vec<Id>,
    /// The mark object written, if any.
    pub marks_written: Option<Id>,
    /// Objects deleted.
    pub deleted: u64,
    /// Their bytes.
    pub bytes_deleted: u64,
}

fn fmt_err(what: String) -> impl FnOnce(lifeboat_format::Error) -> Error {
    move |e| Error::Format { what, source: e }
}

/// Packs a repack stores at once. Each store waits on its own durability
/// (a local store fsyncs the pack, renames it and fsyncs the folder; S3
/// uploads it), so writing several at once overlaps those waits with each
/// other and with the reading and copying of the next packs. Memory in
/// flight: this many packs, one queued and the one being filled.
const PACK_WRITERS: usize = 3;

/// Objects deleted at once at the end of a prune: deletions wait on the
/// store (a journal commit, a round trip), not on the CPU.
const DELETERS: usize = 8;

/// Deletions between two checks that the lock is still held.
const DELETE_BATCH: usize = 256;

/// A finished pack on its way to the store: (order, path, bytes, entry).
type PackOut = (usize, String, bytes::Bytes, IndexPack);

/// Packs being written by a repack, one per blob type. Finished packs go
/// to the writer threads through `out`.
struct Repacker<'a> {
    key: &'a MasterKey,
    pack_size: usize,
    open: [Option<PackBuilder>; 2],
    /// Used members of partly used groups, grouped anew, one per type.
    groups: [Option<GroupBuilder>; 2],
    /// How new groups are compressed: the repository's mode.
    mode: Compression,
    out: crossbeam_channel::Sender<PackOut>,
    sent: usize,
}

impl Repacker<'_> {
    /// Add `plain`, a used member of a group that is partly dead, to a new
    /// group, sealing that group into a pack once it is full.
    fn regroup(&mut self, blob_type: BlobType, id: Id, plain: &[u8]) -> Result<()> {
        let g = self.groups[blob_type as usize].get_or_insert_with(|| GroupBuilder::new(blob_type));
        g.push(id, plain)
            .map_err(fmt_err("regrouped blob".into()))?;
        if g.is_full() {
            self.seal_group(blob_type)?;
        }
        Ok(())
    }

    /// Seal the new group of type `t`, if any, into the open pack.
    fn seal_group(&mut self, t: BlobType) -> Result<()> {
        let Some(mut g) = self.groups[t as usize].take().filter(|g| !g.is_empty()) else {
            return Ok(());
        };
        let sealed = g
            .seal(self.key, self.mode)
            .map_err(fmt_err("regrouped blobs".into()))?;
        self.append(t, |b| b.add_group(&sealed))
    }

    fn add(&mut self, blob: &SealedBlob) -> Result<()> {
        self.append(blob.blob_type, |b| b.add(blob).map(|_| ()))
    }

    /// Add to the open pack of type `t` (opening one if there is none) with
    /// `add`, and hand the pack on once it is full.
    fn append(
        &mut self,
        t: BlobType,
        add: impl FnOnce(&mut PackBuilder) -> lifeboat_format::Result<()>,
    ) -> Result<()> {
        let b =
            self.open[t as usize].get_or_insert_with(|| PackBuilder::new(t, self.pack_size + 4096));
        add(b).map_err(fmt_err("repacked pack".into()))?;
        if b.len() >= self.pack_size {
            self.flush(t)?;
        }
        Ok(())
    }

    /// Finish the open pack of type `t` and hand it to a writer. Fails
    /// with [`Error::WritersStopped`] when every writer has stopped (one
    /// failed); the caller then reports the writer's error.
    fn flush(&mut self, t: BlobType) -> Result<()> {
        let Some(b) = self.open[t as usize].take() else {
            return Ok(());
        };
        if b.is_empty() {
            return Ok(());
        }
        let (bytes, id, entries) = b
            .finish(self.key)
            .map_err(fmt_err("repacked pack".into()))?;
        let pack = IndexPack {
            id,
            blob_type: t,
            size: bytes.len() as u64,
            blobs: entries.iter().map(IndexEntry::from).collect(),
        };
        let path = layout::object_path(Folder::Data, &id);
        self.out
            .send((self.sent, path, bytes.into(), pack))
            .map_err(|_| Error::WritersStopped)?;
        self.sent += 1;
        Ok(())
    }
}

/// Store the packs that arrive on `rx` until it closes or a store fails;
/// on failure, set `failed` so that the repack stops early.
fn write_packs(
    backend: &Arc<dyn Backend>,
    rx: crossbeam_channel::Receiver<PackOut>,
    failed: &AtomicBool,
) -> Result<Vec<(usize, IndexPack)>> {
    let mut written = Vec::new();
    for (n, path, bytes, pack) in rx {
        if let Err(e) = backend.put(&path, bytes) {
            failed.store(true, Ordering::Relaxed);
            return Err(e.into());
        }
        written.push((n, pack));
    }
    Ok(written)
}

/// Copy the used blobs of the plan's repack packs into new packs. A blob
/// is copied as its stored envelope, which is bound to its id, type, flags
/// and length but not to its place, so it is not decrypted; only with
/// `repack_uncompressed` is an uncompressed blob opened and sealed again.
fn repack(
    repo: &Repository,
    opts: &PruneOptions,
    plan: &PrunePlan,
    used: &UsedBlobs<'_>,
    lock: &mut HeldLock,
    progress: &PruneProgress,
    done: &mut Executed,
) -> Result<Vec<IndexPack>> {
    if plan.repack.is_empty() {
        return Ok(Vec::new());
    }
    let backend = repo.backend();
    let failed = AtomicBool::new(false);
    let (tx, rx) = crossbeam_channel::bounded::<PackOut>(1);
    let (copied, mut written) = std::thread::scope(|s| {
        let writers: Vec<_> = (0..PACK_WRITERS)
            .map(|_| {
                let rx = rx.clone();
                let failed = &failed;
                s.spawn(move || write_packs(backend, rx, failed))
            })
            .collect();
        drop(rx);
        let mut w = Repacker {
            key: repo.master_key(),
            pack_size: repo.config().pack_size as usize,
            open: [None, None],
            groups: [None, None],
            mode: repo.config().compression(),
            out: tx,
            sent: 0,
        };
        let copied = copy_used(repo, opts, plan, used, lock, progress, &mut w, &failed);
        drop(w);
        // Every writer is joined before the index names any new pack: a
        // pack is durable before a segment lists it.
        let written = join_all(writers);
        // A writer's own error says more than the copier's "writers stopped".
        match (copied, written) {
            (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
            (Ok(n), Ok(w)) => Ok((n, w.into_iter().flatten().collect::<Vec<_>>())),
        }
    })?;
    done.blobs_repacked += copied;
    written.sort_unstable_by_key(|(n, _)| *n);
    let written: Vec<IndexPack> = written.into_iter().map(|(_, p)| p).collect();
    done.packs_written = written.iter().map(|p| p.id).collect();
    Ok(written)
}

/// A pack to repack, read and checked: its path, bytes and header entries.
type FetchedPack = (String, bytes::Bytes, Vec<lifeboat_format::PackHeaderEntry>);

/// Read pack `id` whole, check that its content matches its name, and
/// decode its header.
fn fetch_pack(backend: &Arc<dyn Backend>, key: &MasterKey, id: &Id) -> Result<FetchedPack> {
    let path = layout::object_path(Folder::Data, id);
    let bytes = backend.get(&path)?;
    // The pack's name is its hash: equal, every byte is as written.
    if Id::of_object(&bytes) != *id {
        return Err(Error::Format {
            what: path,
            source: lifeboat_format::Error::Malformed {
                what: "pack",
                reason: "content does not match its name".into(),
            },
        });
    }
    let hlen = parse_pack_trailer(&bytes).map_err(fmt_err(path.clone()))? as usize;
    let end = bytes.len() - lifeboat_format::PACK_TRAILER_LEN;
    let header = bytes.get(end.saturating_sub(hlen)..end).unwrap_or_default();
    let entries =
        decode_pack_header(key, header, bytes.len() as u64).map_err(fmt_err(path.clone()))?;
    Ok((path, bytes, entries))
}

/// Copy the used blobs of the plan's repack packs into `w`, one pack after
/// another; returns the number of blobs copied. A second thread reads and
/// checks the next pack while this one's blobs are copied.
#[allow(clippy::too_many_arguments)]
fn copy_used(
    repo: &Repository,
    opts: &PruneOptions,
    plan: &PrunePlan,
    used: &UsedBlobs<'_>,
    lock: &mut HeldLock,
    progress: &PruneProgress,
    w: &mut Repacker<'_>,
    failed: &AtomicBool,
) -> Result<u64> {
    let (backend, key) = (repo.backend(), repo.master_key());
    let level = repo.config().compression_level;
    let mut copied = HashSet::new();
    let mut n = 0;
    let (tx, rx) = crossbeam_channel::bounded::<Result<FetchedPack>>(1);
    std::thread::scope(|s| {
        s.spawn(move || {
            for p in &plan.repack {
                if failed.load(Ordering::Relaxed) {
                    break;
                }
                let r = fetch_pack(backend, key, &p.id);
                let stop = r.is_err();
                // A closed channel: the copier stopped.
                if tx.send(r).is_err() || stop {
                    break;
                }
            }
        });
        for fetched in rx {
            if failed.load(Ordering::Relaxed) {
                return Err(Error::WritersStopped);
            }
            let (path, bytes, entries) = fetched?;
            lock.ensure()?;
            // Groups whose every member is used and not copied yet: copied
            // whole, as stored. The used members of the others are grouped
            // anew, so the dead ones are dropped (format.md §8.1).
            let mut whole: HashMap<u32, bool> = HashMap::new();
            for e in entries.iter().filter(|e| e.flags.grouped()) {
                let keep = used.contains(&e.id) && !copied.contains(&e.id);
                *whole.entry(e.offset).or_insert(true) &= keep;
            }
            for e in entries {
                if !used.contains(&e.id) || !copied.insert(e.id) {
                    continue;
                }
                let start = e.offset as usize;
                let stored = &bytes[start..start + e.stored_len as usize];
                if e.flags.grouped() && !whole.get(&e.offset).copied().unwrap_or(true) {
                    let plain = open_blob(key, e.blob_type, &e.id, e.flags, e.raw_len, stored)
                        .map_err(fmt_err(format!("blob {} in {path}", e.id)))?;
                    w.regroup(e.blob_type, e.id, &plain)?;
                    n += 1;
                    continue;
                }
                let blob = if opts.repack_uncompressed && level != 0 && !e.flags.compressed() {
                    let plain = open_blob(key, e.blob_type, &e.id, e.flags, e.raw_len, stored)
                        .map_err(fmt_err(format!("blob {} in {path}", e.id)))?;
                    seal_blob_with_id(key, e.blob_type, e.id, &plain, level)
                        .map_err(fmt_err("sealing a blob".into()))?
                } else {
                    SealedBlob {
                        id: e.id,
                        blob_type: e.blob_type,
                        flags: e.flags,
                        raw_len: e.raw_len,
                        bytes: stored.to_vec(),
                    }
                };
                w.add(&blob)?;
                n += 1;
            }
            progress.packs_repacked.fetch_add(1, Ordering::Relaxed);
        }
        Ok::<(), Error>(())
    })?;
    w.seal_group(BlobType::Data)?;
    w.seal_group(BlobType::Tree)?;
    w.flush(BlobType::Data)?;
    w.flush(BlobType::Tree)?;
    Ok(n)
}

/// Index segments being written: each is stored once it lists
/// [`SEGMENT_BLOBS`] blobs, so memory holds one segment, not the index.
struct SegmentWriter<'a> {
    backend: &'a Arc<dyn Backend>,
    key: &'a MasterKey,
    cur: IndexSegment,
    blobs: usize,
}

impl SegmentWriter<'_> {
    fn push(&mut self, p: IndexPack, lock: &mut HeldLock, done: &mut Executed) -> Result<()> {
        self.blobs += p.blobs.len();
        self.cur.packs.push(p);
        if self.blobs >= SEGMENT_BLOBS {
            lock.ensure()?;
            let full = std::mem::replace(&mut self.cur, IndexSegment::new());
            done.segments_written
                .push(write_segment(self.backend, self.key, &full)?);
            self.blobs = 0;
        }
        Ok(())
    }
}

/// How a prune changes the packs the index lists.
struct IndexChange<'a> {
    /// Packs that leave the index: unused ones deleted now, gone ones, and
    /// repacked ones deleted now (`instant_delete`).
    removed: HashSet<Id>,
    /// Repacked packs left for the grace period: they stay listed with only
    /// the blobs the repack did not copy (those not in `used`), until they
    /// are deleted as unused like any other pack. A backup running now may
    /// have found one of those blobs in the index it loaded and named it in
    /// its snapshot; the blob must stay findable until the pack is deleted,
    /// which only happens through the two-phase deletion that such a
    /// backup's checks guard against (docs/prune.md, "A repacked pack").
    repacked: HashSet<Id>,
    used: &'a UsedBlobs<'a>,
}

impl IndexChange<'_> {
    /// Whether pack `id` is listed differently after the change.
    fn touches(&self, id: &Id) -> bool {
        self.removed.contains(id) || self.repacked.contains(id)
    }

    /// `p` as the index lists it after the change, or `None` if it leaves.
    fn apply(&self, mut p: IndexPack) -> Option<IndexPack> {
        if self.removed.contains(&p.id) {
            return None;
        }
        if self.repacked.contains(&p.id) {
            p.blobs.retain(|b| !self.used.contains(&b.id));
            if p.blobs.is_empty() {
                return None;
            }
        }
        Some(p)
    }
}

/// Write segments listing `new_packs` and every pack of the live segments
/// that name a pack `change` touches, as `change` leaves it; the last one
/// supersedes those segments (and the still-listed segments they
/// superseded). Then delete the superseded segments. The segments are read
/// and the new ones written as they fill, so a prune that touches every
/// segment of a large index holds one segment at a time, not all the packs
/// they list.
fn rewrite_index(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    index: &Index,
    change: &IndexChange<'_>,
    new_packs: Vec<IndexPack>,
    lock: &mut HeldLock,
    done: &mut Executed,
) -> Result<()> {
    let listed: HashSet<Id> = backend
        .list(&Folder::Index.prefix())?
        .iter()
        .filter_map(|o| layout::id_of_path(&o.path))
        .collect();
    let mut affected = Vec::new();
    let mut again = HashSet::new();
    let mut kept_ids = HashSet::new();
    let any_new = !new_packs.is_empty();
    let mut w = SegmentWriter {
        backend,
        key,
        cur: IndexSegment::new(),
        blobs: 0,
    };
    for p in new_packs {
        w.push(p, lock, done)?;
    }
    if !change.removed.is_empty() || !change.repacked.is_empty() {
        for seg_id in index.segments() {
            let seg = read_segment(backend, key, seg_id)?;
            if !seg.packs.iter().any(|p| change.touches(&p.id)) {
                continue;
            }
            affected.push(*seg_id);
            again.extend(
                seg.supersedes
                    .iter()
                    .filter(|s| listed.contains(s))
                    .copied(),
            );
            for p in seg.packs {
                if !kept_ids.insert(p.id) {
                    continue;
                }
                if let Some(p) = change.apply(p) {
                    w.push(p, lock, done)?;
                }
            }
        }
    }
    if affected.is_empty() && !any_new {
        return Ok(());
    }
    let mut sup: Vec<Id> = affected.iter().chain(&again).copied().collect();
    sup.sort_unstable();
    sup.dedup();
    let mut last = w.cur;
    last.supersedes = sup.clone();
    lock.ensure()?;
    done.segments_written
        .push(write_segment(backend, key, &last)?);
    for id in sup {
        backend.delete(&layout::object_path(Folder::Index, &id))?;
        done.segments_deleted.push(id);
    }
    Ok(())
}

/// Carry out `plan` (made from `index` and `used`) under `lock`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    repo: &Repository,
    opts: &PruneOptions,
    plan: &PrunePlan,
    index: &Index,
    used: &UsedBlobs<'_>,
    lock: &mut HeldLock,
    progress: &PruneProgress,
) -> Result<Executed> {
    let (backend, key) = (repo.backend(), repo.master_key());
    let mut done = Executed::default();
    let new_packs = repack(repo, opts, plan, used, lock, progress, &mut done)?;

    let mut change = IndexChange {
        removed: plan.unindex.iter().copied().collect(),
        repacked: plan.repack.iter().map(|u| u.id).collect(),
        used,
    };
    if opts.instant_delete {
        change.removed.extend(change.repacked.drain());
    }
    let deleted_now = plan.delete.iter().filter(|u| u.indexed);
    change
        .removed
        .extend(deleted_now.filter_map(|u| layout::id_of_path(&u.path)));
    rewrite_index(backend, key, index, &change, new_packs, lock, &mut done)?;

    // Repacked packs are unused now: marked like any other (or deleted at
    // once with `instant_delete`).
    let mut objects: Vec<MarkedObject> = plan.marks.clone();
    let mut delete: Vec<(String, u64)> = plan
        .delete
        .iter()
        .map(|u| (u.path.clone(), u.size))
        .collect();
    for u in &plan.repack {
        let path = layout::object_path(Folder::Data, &u.id);
        if opts.instant_delete {
            delete.push((path, u.size));
        } else {
            objects.push(MarkedObject {
                path,
                size: u.size,
                marked: 0,
                delete_after: 0,
            });
        }
    }
    // New marks carry the time they are written, not the (earlier) start
    // of the run: a backup that did not see a mark must be able to count on
    // a whole grace period from the moment it could have.
    let stamp = opts.clock.now();
    let new: HashSet<&str> = plan.mark.iter().map(|u| u.path.as_str()).collect();
    for o in &mut objects {
        if o.delete_after == 0 || new.contains(o.path.as_str()) {
            o.marked = stamp;
            o.delete_after = stamp.saturating_add(opts.grace.as_secs());
        }
    }
    objects.sort_by(|a, b| a.path.cmp(&b.path));
    if plan.marks_changed {
        lock.ensure()?;
        done.marks_written = marks::write(backend, key, plan.started, objects, &plan.marks_listed)?;
    }
    for batch in delete.chunks(DELETE_BATCH) {
        lock.ensure()?;
        let (n, bytes) = delete_all(backend, batch, progress)?;
        done.deleted += n;
        done.bytes_deleted += bytes;
    }
    Ok(done)
}

/// Delete `objects` with up to [`DELETERS`] at once; returns how many were
/// deleted and their bytes, or the first error (the others then stop
/// taking new objects).
fn delete_all(
    backend: &Arc<dyn Backend>,
    objects: &[(String, u64)],
    progress: &PruneProgress,
) -> Result<(u64, u64)> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = DELETERS.min(objects.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<(u64, u64)> {
                    let (mut n, mut bytes) = (0, 0);
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((path, size)) = objects.get(i) else {
                            break;
                        };
                        if let Err(e) = backend.delete(path) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e.into());
                        }
                        n += 1;
                        bytes += size;
                        progress.objects_deleted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((n, bytes))
                })
            })
            .collect();
        join_all(handles).map(|counts| {
            counts
                .into_iter()
                .fold((0, 0), |(n, bytes), (a, b)| (n + a, bytes + b))
        })
    })
}

/// Join every thread of `handles` (none is left running), then return
/// their results, or the first error among them. A thread's panic goes on
/// in the caller.
fn join_all<T>(handles: Vec<std::thread::ScopedJoinHandle<'_, Result<T>>>) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(handles.len());
    let mut first_err = None;
    for h in handles {
        match h.join() {
            Ok(Ok(v)) => out.push(v),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
    first_err.map_or(Ok(out), Err)
}
