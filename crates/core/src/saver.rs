//! Deduplicating blob writer: hash → dedup (index + in-flight set) →
//! seal (compress, encrypt) → pack → upload → index.
//!
//! Any number of backup workers call [`BlobSaver::save`]. Each data blob
//! goes to one of [`DATA_PACKS`] open data packs, chosen at random, so a
//! reader of the store cannot tell which stored blobs follow each other in
//! a file (docs/security.md, "What random pack assignment changes"). Full
//! packs go through a channel to uploader threads, so workers keep sealing
//! while packs are written and synced. Data packs in flight are bounded (see
//! [`FILLING`]), so a slow store holds the workers back (backpressure)
//! instead of letting packs pile up in memory. On a local repository a
//! data pack is written to a staged file as it fills, and never held in
//! memory. The first upload error is kept; from then on every `save`
//! fails, the uploaders drain the channel without writing, and no
//! snapshot is written.

use crate::repo::RepositoryInternals as _;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use crossbeam_channel::{Receiver, Sender};
use lifeboat_format::layout::{Folder, object_path};
use lifeboat_format::{
    BlobType, Compression, GROUP_MEMBER_MAX_LEN, GroupBuilder, Id, IndexEntry, IndexPack,
    IndexSegment, PackBuilder, SealedBlob, SealedGroup, seal_blob_in_mode,
};
use lifeboat_index::write_segment;
use lifeboat_store::StagedObject;

#[cfg(feature = "testing")]
use crate::failpoint::FailPoints;
use crate::prune_guard::PruneGuard;
use crate::{Error, Repository, Result};

/// Packs per index segment written while a backup runs, so a crash loses
/// little indexing work.
const PACKS_PER_SEGMENT: usize = 64;

/// Data packs open at once, each data blob going to one of them at random
/// (a blob of pack size or more gets a pack of its own instead).
const DATA_PACKS: usize = 2;

// A pick takes one byte of a hash modulo DATA_PACKS: uniform only if it divides 256.
const _: () = assert!(256 % DATA_PACKS == 0);

/// Data packs open at once beyond one per uploader: the [`DATA_PACKS`]
/// being filled. A worker that needs a new data pack while every uploader
/// is busy waits for one to finish, so at most `uploaders + 2` data packs
/// exist. Where they are built in memory (remote stores), that bounds
/// their memory (17 MiB each at the default 16 MiB pack size: 102 MiB with
/// the 4 uploaders a remote store gets, `Backend::upload_parallelism`), and uploaded buffers are reused: a fresh one
/// is mapped by the allocator and costs a page fault per 4 KiB as it
/// fills, a recycled one is already resident.
const FILLING: usize = DATA_PACKS;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Counters of what was added.
#[derive(Debug, Default)]
pub(crate) struct SaverStats {
    pub data_blobs: AtomicU64,
    pub tree_blobs: AtomicU64,
    pub bytes_added: AtomicU64,
    pub bytes_stored: AtomicU64,
}

/// A pack being filled: in memory, or (data packs on a local repository)
/// written blob by blob to a staged file, with only its header in memory.
pub(crate) struct OpenPack {
    pack: PackBuilder,
    file: Option<Box<dyn StagedObject>>,
}

impl OpenPack {
    fn add(&mut self, blob: &SealedBlob) -> Result<()> {
        let appended = self
            .pack
            .add(blob)
            .map_err(|e| Error::format("adding a blob to a pack", e))?;
        if let Some(f) = &mut self.file
            && appended
        {
            f.write(&blob.bytes)?;
        }
        Ok(())
    }

    fn add_group(&mut self, group: &SealedGroup) -> Result<()> {
        self.pack
            .add_group(group)
            .map_err(|e| Error::format("adding a group to a pack", e))?;
        if let Some(f) = &mut self.file {
            f.write(&group.bytes)?;
        }
        Ok(())
    }
}

/// An envelope to append to a pack: one blob, or a group of small ones.
enum Sealed<'a> {
    Blob(&'a SealedBlob),
    Group(&'a SealedGroup),
}

/// Picks the open data pack for each data blob: the `n`-th pick is a byte
/// of BLAKE3(secret ‖ n), with a secret drawn from the operating system on
/// the first pick and kept only in this process. Without the secret the
/// picks cannot be predicted or told from coin tosses, so the order of the
/// blobs in the packs says nothing about their order in the files. One
/// atomic add and one hash of 40 bytes a blob, and no lock.
#[derive(Default)]
struct PackPicker {
    secret: OnceLock<Id>,
    next: AtomicU64,
}

impl PackPicker {
    /// The index of an open data pack, uniform over [`DATA_PACKS`].
    fn pick(&self) -> Result<usize> {
        let secret = match self.secret.get() {
            Some(s) => s,
            None => {
                let s = Id::random().map_err(|e| Error::format("drawing random bits", e))?;
                // Another thread may have set it first: all use the one set.
                self.secret.get_or_init(|| s)
            }
        };
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut input = [0u8; 40];
        input[..32].copy_from_slice(secret.as_bytes());
        input[32..].copy_from_slice(&n.to_le_bytes());
        // An unkeyed hash of a secret input: a PRF, as BLAKE3 has no length
        // extension.
        Ok(usize::from(Id::of_object(&input).0[0]) % DATA_PACKS)
    }
}

/// Data pack slots (see [`FILLING`]): how many are taken (the open packs,
/// queued and uploading ones), and uploaded buffers free for reuse.
struct Slots {
    out: usize,
    limit: usize,
    free: Vec<Vec<u8>>,
}

pub(crate) struct BlobSaver<'r> {
    repo: &'r Repository,
    inflight: Mutex<HashSet<Id>>,
    /// The open data packs, each made on the first blob it gets. Separate
    /// locks, so two workers can fill two packs at once.
    data: [Mutex<Option<OpenPack>>; DATA_PACKS],
    /// Which open data pack a data blob goes to.
    picker: PackPicker,
    /// The groups of small data blobs being filled, one per open data
    /// pack: a small blob joins the group of the pack it is picked for.
    groups: [Mutex<Option<GroupBuilder>>; DATA_PACKS],
    /// The open tree pack, made on the first tree blob.
    tree: Mutex<Option<OpenPack>>,
    /// Full packs to the uploaders; taken (closed) by [`Self::close`].
    tx: Mutex<Option<Sender<OpenPack>>>,
    pending: Mutex<Vec<IndexPack>>,
    slots: Mutex<Slots>,
    /// Signalled when a slot is freed or an upload fails.
    freed: Condvar,
    written: Mutex<Vec<IndexPack>>,
    /// The first error of an uploader, or the first cause of lost blobs
    /// ([`Self::lost_blobs`]).
    error: Mutex<Option<Error>>,
    failed: AtomicBool,
    #[cfg(feature = "testing")]
    fail: &'r FailPoints,
    pub stats: SaverStats,
    /// Which packs a concurrent prune has marked; what this run relies on.
    pub guard: PruneGuard,
    /// How new blobs are compressed: the repository's mode unless the run
    /// overrides it.
    pub compression: Compression,
}

impl<'r> BlobSaver<'r> {
    /// A saver for `uploaders` upload threads, and the receiving end of its
    /// pack channel to hand to [`Self::drive`].
    pub fn new(repo: &'r Repository, uploaders: usize) -> (Self, Receiver<OpenPack>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        let saver = BlobSaver {
            repo,
            inflight: Mutex::new(HashSet::new()),
            data: std::array::from_fn(|_| Mutex::new(None)),
            picker: PackPicker::default(),
            groups: std::array::from_fn(|_| Mutex::new(None)),
            tree: Mutex::new(None),
            tx: Mutex::new(Some(tx)),
            pending: Mutex::new(Vec::new()),
            slots: Mutex::new(Slots {
                out: 0,
                limit: uploaders.max(1) + FILLING,
                free: Vec::new(),
            }),
            freed: Condvar::new(),
            written: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
            #[cfg(feature = "testing")]
            fail: &crate::failpoint::NONE,
            stats: SaverStats::default(),
            guard: PruneGuard::default(),
            compression: repo.config.compression(),
        };
        (saver, rx)
    }

    /// This saver, failing where `fail` says.
    #[cfg(feature = "testing")]
    pub fn with_fail_points(self, fail: &'r FailPoints) -> Self {
        BlobSaver { fail, ..self }
    }

    fn capacity(&self) -> usize {
        self.repo.config.pack_size as usize + (1 << 20)
    }

    /// A new pack for `t`. A tree pack is built in memory. A data pack
    /// takes a slot, waiting while all are taken (or failing once an
    /// upload has failed), and is staged where the store can, else built
    /// in a recycled buffer.
    fn open_pack(&self, t: BlobType) -> Result<OpenPack> {
        if t != BlobType::Data {
            return Ok(OpenPack {
                pack: PackBuilder::new(t, self.capacity()),
                file: None,
            });
        }
        let buf = {
            let mut s = lock(&self.slots);
            while s.out >= s.limit {
                self.check_failed()?;
                s = self
                    .freed
                    .wait_timeout(s, std::time::Duration::from_millis(50))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
            s.out += 1;
            s.free.pop()
        };
        let staged = self
            .repo
            .backend
            .stage()
            .inspect_err(|_| self.free_slot(None))?;
        Ok(match (staged, buf) {
            (Some(file), _) => OpenPack {
                pack: PackBuilder::hashed(t),
                file: Some(file),
            },
            (None, Some(buf)) => OpenPack {
                pack: PackBuilder::with_buffer(t, buf),
                file: None,
            },
            (None, None) => OpenPack {
                pack: PackBuilder::new(t, self.capacity()),
                file: None,
            },
        })
    }

    /// Free a data pack's slot once it is uploaded (or dropped), keeping
    /// its buffer for reuse if it is free and of the usual size (an
    /// oversized one from a huge blob is let go).
    fn free_slot(&self, bytes: Option<bytes::Bytes>) {
        let buf = bytes.and_then(|b| b.try_into_mut().ok()).map(Vec::from);
        let want = self.capacity();
        let mut s = lock(&self.slots);
        s.out = s.out.saturating_sub(1);
        if let Some(buf) = buf
            && buf.capacity() >= want
            && buf.capacity() <= 2 * want
            && s.free.len() + s.out < s.limit
        {
            s.free.push(buf);
        }
        drop(s);
        self.freed.notify_one();
    }

    /// Store `data` as a blob unless the repository or this run has it.
    /// Returns the id and whether it was new.
    pub fn save(&self, blob_type: BlobType, data: &[u8]) -> Result<(Id, bool)> {
        fail_point!(self.fail, Hash)?;
        let id = self.repo.key.blob_id(data);
        self.save_with_id(blob_type, id, data).map(|new| (id, new))
    }

    /// As [`Self::save`], for a blob whose id is known.
    pub fn save_with_id(&self, blob_type: BlobType, id: Id, data: &[u8]) -> Result<bool> {
        self.check_failed()?;
        fail_point!(self.fail, Dedup)?;
        if self.guard.usable(&self.repo.index(), &id) || !lock(&self.inflight).insert(id) {
            return Ok(false);
        }
        fail_point!(self.fail, Seal)?;
        let counter = match blob_type {
            BlobType::Data => &self.stats.data_blobs,
            BlobType::Tree => &self.stats.tree_blobs,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if blob_type == BlobType::Data
            && data.len() < GROUP_MEMBER_MAX_LEN
            && self.compression.level() != 0
        {
            let i = self.picker.pick()?;
            let full = {
                let mut g = lock(&self.groups[i]);
                let b = g.get_or_insert_with(|| GroupBuilder::new(BlobType::Data));
                b.push(id, data)
                    .map_err(|e| self.lost_blobs(Error::format("grouping a blob", e)))?;
                if b.is_full() { g.take() } else { None }
            };
            if let Some(mut b) = full {
                self.store_group(i, &mut b)?;
            }
            return Ok(true);
        }
        let sealed = seal_blob_in_mode(&self.repo.key, blob_type, id, data, self.compression)
            .map_err(|e| Error::format("sealing a blob", e))?;
        self.stats
            .bytes_stored
            .fetch_add(sealed.bytes.len() as u64, Ordering::Relaxed);
        fail_point!(self.fail, Pack)?;
        let pack_size = self.repo.config.pack_size as usize;
        let packer = match blob_type {
            // A blob of pack size or more fills a pack alone: it gets its
            // own, and the open packs stay as they are.
            BlobType::Data if sealed.bytes.len() >= pack_size => {
                let mut p = self.open_pack(blob_type)?;
                if let Err(e) = p.add(&sealed) {
                    self.discard(p);
                    return Err(self.lost_blobs(e));
                }
                self.send(p)?;
                return Ok(true);
            }
            BlobType::Data => &self.data[self.picker.pick()?],
            BlobType::Tree => &self.tree,
        };
        self.append(packer, blob_type, Sealed::Blob(&sealed))?;
        Ok(true)
    }

    /// Seal group `b` (emptied) and append it to open data pack `i`. A
    /// failure loses its members, which count as saved already.
    fn store_group(&self, i: usize, b: &mut GroupBuilder) -> Result<()> {
        let sealed = b
            .seal(&self.repo.key, self.compression)
            .map_err(|e| self.lost_blobs(Error::format("sealing a group", e)))?;
        self.stats
            .bytes_stored
            .fetch_add(sealed.bytes.len() as u64, Ordering::Relaxed);
        fail_point!(self.fail, Pack).map_err(|e| self.lost_blobs(e))?;
        self.append(&self.data[i], BlobType::Data, Sealed::Group(&sealed))
    }

    /// Append `sealed` to the open pack in `packer` (opening one if there
    /// is none), and queue the pack once it is full.
    fn append(
        &self,
        packer: &Mutex<Option<OpenPack>>,
        blob_type: BlobType,
        sealed: Sealed<'_>,
    ) -> Result<()> {
        let pack_size = self.repo.config.pack_size as usize;
        let full = {
            let mut slot = lock(packer);
            let open = match slot.take() {
                Some(p) => p,
                None => self.open_pack(blob_type)?,
            };
            let p = slot.insert(open);
            let added = match sealed {
                Sealed::Blob(b) => p.add(b),
                Sealed::Group(g) => p.add_group(g),
            };
            match added.map(|()| p.pack.len() >= pack_size) {
                Ok(true) => slot.take(),
                Ok(false) => None,
                Err(e) => {
                    // The pack may hold part of a blob now: drop it, so
                    // nothing of it is stored.
                    if let Some(p) = slot.take() {
                        self.discard(p);
                    }
                    return Err(self.lost_blobs(e));
                }
            }
        };
        if let Some(p) = full {
            self.send(p)?;
        }
        Ok(())
    }

    /// Blobs counted as saved (in the in-flight set) were dropped with a
    /// pack or a group: fail every later save, so no snapshot names them.
    /// The first such cause is kept as the saver's error, as an upload's
    /// is, so that the run reports it rather than the [`Error::UploadFailed`]
    /// another worker's next save meets; the caller gets that placeholder
    /// back then, and `e` itself for any later cause.
    fn lost_blobs(&self, e: Error) -> Error {
        self.failed.store(true, Ordering::Relaxed);
        self.freed.notify_all();
        let mut slot = lock(&self.error);
        if slot.is_none() {
            *slot = Some(e);
            return Error::UploadFailed;
        }
        e
    }

    fn check_failed(&self) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(Error::UploadFailed);
        }
        Ok(())
    }

    /// Drop a pack unwritten (a staged file is removed) and free its slot.
    fn discard(&self, p: OpenPack) {
        let data = p.pack.blob_type() == BlobType::Data;
        drop(p);
        if data {
            self.free_slot(None);
        }
    }

    /// Queue a full pack for the uploaders.
    fn send(&self, p: OpenPack) -> Result<()> {
        let tx = lock(&self.tx).clone();
        match tx {
            Some(tx) => tx.send(p).map_err(|_| {
                Error::Internal("a pack was sent after the uploaders stopped".into())
            })?,
            None => {
                return Err(Error::Internal(
                    "a pack was sent after the saver closed".into(),
                ));
            }
        }
        self.check_failed()
    }

    /// Run `work` (which saves blobs) while the uploader threads upload the
    /// packs it fills; then queue the partial packs, stop the uploaders and
    /// wait for them. Returns `work`'s result, or the first upload error
    /// (workers only see [`Error::UploadFailed`]). Call [`Self::finish`] after.
    pub fn drive<T>(&self, rx: Receiver<OpenPack>, work: impl FnOnce() -> Result<T>) -> Result<T> {
        std::thread::scope(|s| {
            let uploaders = lock(&self.slots).limit - FILLING;
            let handles: Vec<_> = (0..uploaders)
                .map(|_| {
                    let rx = rx.clone();
                    s.spawn(move || self.run_uploader(rx))
                })
                .collect();
            drop(rx);
            // Closes the queue even if `work` panics, so that the uploaders
            // end and the scope's wait for them does not hang for ever.
            struct CloseOnDrop<'s, 'r>(&'s BlobSaver<'r>);
            impl Drop for CloseOnDrop<'_, '_> {
                fn drop(&mut self) {
                    self.0.close();
                }
            }
            let closer = CloseOnDrop(self);
            let res = work().and_then(|t| self.flush().map(|()| t));
            drop(closer);
            for h in handles {
                let _ = h.join();
            }
            res.map_err(|e| self.take_error().unwrap_or(e))
        })
    }

    /// Upload packs from `rx` until every sender is gone. After a failure
    /// the rest is drained unwritten, so senders never block for ever.
    fn run_uploader(&self, rx: Receiver<OpenPack>) {
        for p in rx {
            let data = p.pack.blob_type() == BlobType::Data;
            let res = if self.failed.load(Ordering::Relaxed) {
                Ok(None)
            } else {
                self.upload(p)
            };
            match res {
                Ok(bytes) if data => self.free_slot(bytes),
                Ok(_) => {}
                Err(e) => {
                    if data {
                        self.free_slot(None);
                    }
                    let mut slot = lock(&self.error);
                    if slot.is_none() {
                        *slot = Some(e);
                    }
                    self.failed.store(true, Ordering::Relaxed);
                    // Wake workers waiting for a slot, to see the failure.
                    self.freed.notify_all();
                }
            }
        }
    }

    /// Write one pack and index it; returns the buffer of an in-memory
    /// pack, for reuse.
    fn upload(&self, p: OpenPack) -> Result<Option<bytes::Bytes>> {
        let blob_type = p.pack.blob_type();
        let (bytes, id, entries) = p
            .pack
            .finish(&self.repo.key)
            .map_err(|e| Error::format("finishing a pack", e))?;
        fail_point!(self.fail, Upload)?;
        let (size, reuse) = match p.file {
            // A staged pack: `bytes` is its header and trailer.
            Some(mut f) => {
                f.write(&bytes)?;
                let size = f.len();
                f.commit(&object_path(Folder::Data, &id))?;
                (size, None)
            }
            None => {
                let size = bytes.len() as u64;
                let bytes = bytes::Bytes::from(bytes);
                self.repo
                    .backend
                    .put(&object_path(Folder::Data, &id), bytes.clone())?;
                (size, Some(bytes))
            }
        };
        self.guard.wrote(id);
        let pack = IndexPack {
            id,
            blob_type,
            size,
            blobs: entries.iter().map(IndexEntry::from).collect(),
        };
        let batch = {
            let mut pending = lock(&self.pending);
            pending.push(pack);
            (pending.len() >= PACKS_PER_SEGMENT).then(|| std::mem::take(&mut *pending))
        };
        if let Some(b) = batch {
            self.write_index(b)?;
        }
        Ok(reuse)
    }

    fn write_index(&self, packs: Vec<IndexPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        fail_point!(self.fail, Index)?;
        // A segment naming a pack that a prune may delete any moment would
        // outlive the pack.
        self.guard.check(self.repo)?;
        let mut seg = IndexSegment::new();
        seg.packs = packs;
        write_segment(&self.repo.backend, &self.repo.key, &seg)?;
        lock(&self.written).extend(seg.packs);
        Ok(())
    }

    /// Seal the partial groups and queue the partial packs. Call once all
    /// workers are done. Two
    /// in-memory data packs that fit in one are merged first, so a backup
    /// does not end with two small packs where one will do; staged ones
    /// are not (see [`Self::merge`]).
    fn flush(&self) -> Result<()> {
        for (i, g) in self.groups.iter().enumerate() {
            let group = lock(g).take();
            if let Some(mut b) = group.filter(|b| !b.is_empty()) {
                self.store_group(i, &mut b)?;
            }
        }
        let mut data = Vec::with_capacity(DATA_PACKS);
        for m in &self.data {
            match lock(m).take() {
                Some(p) if !p.pack.is_empty() => data.push(p),
                Some(p) => self.discard(p),
                None => {}
            }
        }
        let pack_size = self.repo.config.pack_size as usize;
        loop {
            // The smallest is merged into the next smallest.
            data.sort_by_key(|p| p.pack.len());
            let [from, into, ..] = &data[..] else { break };
            let fits = from.pack.len() + into.pack.len() < pack_size;
            if !fits || from.file.is_some() || into.file.is_some() {
                break;
            }
            let from = data.remove(0);
            if let Err(e) = self.merge(from, &mut data[0]) {
                for p in data {
                    self.discard(p);
                }
                return Err(self.lost_blobs(e));
            }
        }
        for p in data {
            self.send(p)?;
        }
        let tree = lock(&self.tree).take();
        match tree {
            Some(p) if !p.pack.is_empty() => self.send(p)?,
            Some(p) => self.discard(p),
            None => {}
        }
        Ok(())
    }

    /// Move the blobs of in-memory pack `from` to the end of `into`, and
    /// free `from`'s slot. Their ciphertext is copied as it is (a blob's
    /// envelope does not depend on its pack), so this costs a copy of at
    /// most half a pack, once a backup. Staged packs are left apart: their
    /// blobs are on disk, and the store gives no way to read a staged file
    /// back, so merging would mean rewriting it; on a local disk one more
    /// small file costs little.
    fn merge(&self, from: OpenPack, into: &mut OpenPack) -> Result<()> {
        // The header sealed here is thrown away: finishing is how a
        // builder gives back its blob bytes and where each one lies.
        let (bytes, _, entries) = from
            .pack
            .finish(&self.repo.key)
            .map_err(|e| Error::format("finishing a pack", e))?;
        self.free_slot(None);
        let mut blob = SealedBlob {
            id: Id::default(),
            blob_type: BlobType::Data,
            flags: Default::default(),
            raw_len: 0,
            bytes: Vec::new(),
        };
        for e in entries {
            let start = e.offset as usize;
            let stored = bytes
                .get(start..start + e.stored_len as usize)
                .ok_or_else(|| Error::Internal("a pack's entry lies outside its bytes".into()))?;
            blob.id = e.id;
            blob.blob_type = e.blob_type;
            blob.flags = e.flags;
            blob.raw_len = e.raw_len;
            blob.bytes.clear();
            blob.bytes.extend_from_slice(stored);
            into.add(&blob)?;
        }
        Ok(())
    }

    /// Stop accepting packs, so the uploaders end once the queue is empty.
    fn close(&self) {
        lock(&self.tx).take();
    }

    /// The first uploader error or cause of lost blobs, if any.
    fn take_error(&self) -> Option<Error> {
        lock(&self.error).take()
    }

    /// Index what the (joined) uploaders left pending. After this returns,
    /// every blob saved is durable and indexed.
    pub fn finish(&self) -> Result<()> {
        if let Some(e) = self.take_error() {
            return Err(e);
        }
        self.check_failed()?;
        let rest = std::mem::take(&mut *lock(&self.pending));
        self.write_index(rest)?;
        let written = std::mem::take(&mut *lock(&self.written));
        let mut idx = self.repo.index.write().unwrap_or_else(|p| p.into_inner());
        for p in &written {
            idx.add_pack(p);
        }
        Ok(())
    }
}
