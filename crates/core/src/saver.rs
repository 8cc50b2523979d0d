//! Deduplicating blob writer: hash → dedup (index + in-flight set) →
//! seal (compress, encrypt) → pack → upload → index.
//!
//! Any number of backup workers call [`BlobSaver::save`]. Full packs go
//! through a bounded channel to uploader threads, so workers keep sealing
//! while packs are written and synced, and a slow store holds them back
//! (backpressure) instead of letting packs pile up in memory. The first
//! upload error is kept; from then on every `save` fails, the uploaders
//! drain the channel without writing, and no snapshot is written.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crossbeam_channel::{Receiver, Sender};
use lifeboat_format::{
    BlobType, Id, IndexEntry, IndexPack, IndexSegment, PackBuilder, seal_blob_with_id,
};
use lifeboat_index::{pack_path, write_segment};

use crate::failpoint::{FailPoints, Stage};
use crate::{Error, Repository, Result};

/// Packs per index segment written while a backup runs, so a crash loses
/// little indexing work.
const PACKS_PER_SEGMENT: usize = 64;

/// Buffers of uploaded packs kept for the next packs. A fresh 17 MiB
/// buffer is mapped by the allocator and costs one page fault per 4 KiB
/// when filled; a recycled one is already resident. Packs fill one at a
/// time, so one spare catches most, and each spare can add 17 MiB to peak
/// memory.
const SPARE_BUFFERS: usize = 1;

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

pub(crate) struct BlobSaver<'r> {
    repo: &'r Repository,
    inflight: Mutex<HashSet<Id>>,
    packers: [Mutex<PackBuilder>; 2],
    /// Full packs to the uploaders; taken (closed) by [`Self::close`].
    tx: Mutex<Option<Sender<PackBuilder>>>,
    pending: Mutex<Vec<IndexPack>>,
    /// Recycled pack buffers, see [`SPARE_BUFFERS`].
    spare: Mutex<Vec<Vec<u8>>>,
    written: Mutex<Vec<IndexPack>>,
    /// The first error of an uploader.
    error: Mutex<Option<Error>>,
    failed: AtomicBool,
    fail: &'r FailPoints,
    pub stats: SaverStats,
}

impl<'r> BlobSaver<'r> {
    /// A saver, and the receiving end of its pack channel to hand to
    /// [`Self::drive`]. The channel is a rendezvous: a full pack waits in
    /// its worker until an uploader takes it, so at most one pack per
    /// uploader is in flight.
    pub fn new(repo: &'r Repository, fail: &'r FailPoints) -> (Self, Receiver<PackBuilder>) {
        let (tx, rx) = crossbeam_channel::bounded(0);
        (Self::with_channel(repo, tx, fail), rx)
    }

    fn with_channel(repo: &'r Repository, tx: Sender<PackBuilder>, fail: &'r FailPoints) -> Self {
        BlobSaver {
            repo,
            inflight: Mutex::new(HashSet::new()),
            packers: [BlobType::Data, BlobType::Tree].map(|t| Mutex::new(Self::packer(repo, t))),
            tx: Mutex::new(Some(tx)),
            pending: Mutex::new(Vec::new()),
            spare: Mutex::new(Vec::new()),
            written: Mutex::new(Vec::new()),
            error: Mutex::new(None),
            failed: AtomicBool::new(false),
            fail,
            stats: SaverStats::default(),
        }
    }

    fn packer(repo: &Repository, t: BlobType) -> PackBuilder {
        PackBuilder::new(t, repo.config.pack_size as usize + (1 << 20))
    }

    /// A new pack for `t`, in a recycled buffer when there is one.
    fn next_packer(&self, t: BlobType) -> PackBuilder {
        match lock(&self.spare).pop() {
            Some(buf) => PackBuilder::with_buffer(t, buf),
            None => Self::packer(self.repo, t),
        }
    }

    /// Keep an uploaded pack's buffer for reuse, if it is free and of the
    /// usual size (an oversized one from a huge blob is let go).
    fn recycle(&self, bytes: bytes::Bytes) {
        let Ok(buf) = bytes.try_into_mut() else {
            return;
        };
        let buf = Vec::from(buf);
        let want = self.repo.config.pack_size as usize + (1 << 20);
        let mut spare = lock(&self.spare);
        if spare.len() < SPARE_BUFFERS && buf.capacity() >= want && buf.capacity() <= 2 * want {
            spare.push(buf);
        }
    }

    /// Store `data` as a blob unless the repository or this run has it.
    /// Returns the id and whether it was new.
    pub fn save(&self, blob_type: BlobType, data: &[u8]) -> Result<(Id, bool)> {
        self.fail.check(Stage::Hash)?;
        let id = self.repo.key.blob_id(data);
        self.save_with_id(blob_type, id, data).map(|new| (id, new))
    }

    /// As [`Self::save`], for a blob whose id is known.
    pub fn save_with_id(&self, blob_type: BlobType, id: Id, data: &[u8]) -> Result<bool> {
        self.check_failed()?;
        self.fail.check(Stage::Dedup)?;
        if self.repo.index().contains(&id) || !lock(&self.inflight).insert(id) {
            return Ok(false);
        }
        self.fail.check(Stage::Seal)?;
        let sealed = seal_blob_with_id(
            &self.repo.key,
            blob_type,
            id,
            data,
            self.repo.config.compression_level,
        )
        .map_err(|e| Error::Internal(format!("sealing blob: {e}")))?;
        let counter = match blob_type {
            BlobType::Data => &self.stats.data_blobs,
            BlobType::Tree => &self.stats.tree_blobs,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.stats
            .bytes_added
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        self.stats
            .bytes_stored
            .fetch_add(sealed.bytes.len() as u64, Ordering::Relaxed);
        self.fail.check(Stage::Pack)?;
        let full = {
            let mut p = lock(&self.packers[blob_type as usize]);
            p.add(&sealed).map_err(|e| Error::Internal(e.to_string()))?;
            if p.len() >= self.repo.config.pack_size as usize {
                Some(std::mem::replace(&mut *p, self.next_packer(blob_type)))
            } else {
                None
            }
        };
        if let Some(p) = full {
            self.send(p)?;
        }
        Ok(true)
    }

    fn check_failed(&self) -> Result<()> {
        if self.failed.load(Ordering::Relaxed) {
            return Err(Error::Internal("an upload failed".into()));
        }
        Ok(())
    }

    /// Queue a full pack; blocks while the uploaders are busy.
    fn send(&self, p: PackBuilder) -> Result<()> {
        let tx = lock(&self.tx).clone();
        match tx {
            Some(tx) => tx
                .send(p)
                .map_err(|_| Error::Internal("the uploaders stopped".into()))?,
            None => return Err(Error::Internal("the saver is closed".into())),
        }
        self.check_failed()
    }

    /// Run `work` (which saves blobs) while `uploaders` threads upload the
    /// packs it fills; then queue the partial packs, stop the uploaders and
    /// wait for them. Returns `work`'s result, or the first upload error
    /// (workers only see "an upload failed"). Call [`Self::finish`] after.
    pub fn drive<T>(
        &self,
        rx: Receiver<PackBuilder>,
        uploaders: usize,
        work: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..uploaders.max(1))
                .map(|_| {
                    let rx = rx.clone();
                    s.spawn(move || self.run_uploader(rx))
                })
                .collect();
            drop(rx);
            let res = work().and_then(|t| self.flush().map(|()| t));
            self.close();
            for h in handles {
                let _ = h.join();
            }
            res.map_err(|e| self.take_error().unwrap_or(e))
        })
    }

    /// Upload packs from `rx` until every sender is gone. After a failure
    /// the rest is drained unwritten, so senders never block for ever.
    fn run_uploader(&self, rx: Receiver<PackBuilder>) {
        for p in rx {
            if self.failed.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(e) = self.upload(p) {
                let mut slot = lock(&self.error);
                if slot.is_none() {
                    *slot = Some(e);
                }
                self.failed.store(true, Ordering::Relaxed);
            }
        }
    }

    fn upload(&self, p: PackBuilder) -> Result<()> {
        let blob_type = p.blob_type();
        let (bytes, id, entries) = p
            .finish(&self.repo.key)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let size = bytes.len() as u64;
        self.fail.check(Stage::Upload)?;
        let bytes = bytes::Bytes::from(bytes);
        self.repo.backend.put(&pack_path(&id), bytes.clone())?;
        self.recycle(bytes);
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
        Ok(())
    }

    fn write_index(&self, packs: Vec<IndexPack>) -> Result<()> {
        if packs.is_empty() {
            return Ok(());
        }
        self.fail.check(Stage::Index)?;
        let mut seg = IndexSegment::new();
        seg.packs = packs;
        write_segment(&self.repo.backend, &self.repo.key, &seg)?;
        lock(&self.written).extend(seg.packs);
        Ok(())
    }

    /// Queue the partial packs. Call once all workers are done.
    fn flush(&self) -> Result<()> {
        for t in [BlobType::Data, BlobType::Tree] {
            let p = std::mem::replace(
                &mut *lock(&self.packers[t as usize]),
                Self::packer(self.repo, t),
            );
            if !p.is_empty() {
                self.send(p)?;
            }
        }
        Ok(())
    }

    /// Stop accepting packs, so the uploaders end once the queue is empty.
    fn close(&self) {
        lock(&self.tx).take();
    }

    /// The first uploader error, if any.
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
