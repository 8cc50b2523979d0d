//! Deduplicating blob writer: hash → dedup (index + in-flight set) →
//! compress → encrypt → pack → upload. Shared by all backup worker threads.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_format::{
    BlobType, Id, IndexEntry, IndexPack, IndexSegment, PackBuilder, seal_blob_with_id,
};
use lifeboat_index::{pack_path, write_segment};

use crate::{Error, Repository, Result};

/// Packs per index segment written while a backup runs, so a crash loses
/// little indexing work.
const PACKS_PER_SEGMENT: usize = 64;

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
    pending: Mutex<Vec<IndexPack>>,
    written: Mutex<Vec<IndexPack>>,
    pub stats: SaverStats,
}

impl<'r> BlobSaver<'r> {
    pub fn new(repo: &'r Repository) -> BlobSaver<'r> {
        BlobSaver {
            repo,
            inflight: Mutex::new(HashSet::new()),
            packers: [
                Mutex::new(PackBuilder::new(BlobType::Data, 0)),
                Mutex::new(PackBuilder::new(BlobType::Tree, 0)),
            ],
            pending: Mutex::new(Vec::new()),
            written: Mutex::new(Vec::new()),
            stats: SaverStats::default(),
        }
    }

    /// Store `data` as a blob unless the repository or this run has it.
    /// Returns the id and whether it was new.
    pub fn save(&self, blob_type: BlobType, data: &[u8]) -> Result<(Id, bool)> {
        let id = self.repo.key.blob_id(data);
        self.save_with_id(blob_type, id, data).map(|new| (id, new))
    }

    pub fn save_with_id(&self, blob_type: BlobType, id: Id, data: &[u8]) -> Result<bool> {
        if self.repo.index().contains(&id) || !lock(&self.inflight).insert(id) {
            return Ok(false);
        }
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
        let full = {
            let mut p = lock(&self.packers[blob_type as usize]);
            p.add(&sealed).map_err(|e| Error::Internal(e.to_string()))?;
            if p.len() >= self.repo.config.pack_size as usize {
                Some(std::mem::replace(&mut *p, PackBuilder::new(blob_type, 0)))
            } else {
                None
            }
        };
        if let Some(p) = full {
            self.upload(p)?;
        }
        Ok(true)
    }

    fn upload(&self, p: PackBuilder) -> Result<()> {
        let blob_type = p.blob_type();
        let (bytes, id, entries) = p
            .finish(&self.repo.key)
            .map_err(|e| Error::Internal(e.to_string()))?;
        let size = bytes.len() as u64;
        self.repo.backend.put(&pack_path(&id), bytes.into())?;
        let pack = IndexPack {
            id,
            blob_type,
            size,
            blobs: entries
                .iter()
                .map(|e| IndexEntry {
                    id: e.id,
                    flags: e.flags,
                    offset: e.offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                })
                .collect(),
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
        let mut seg = IndexSegment::new();
        seg.packs = packs;
        write_segment(&self.repo.backend, &self.repo.key, &seg)?;
        lock(&self.written).extend(seg.packs);
        Ok(())
    }

    /// Upload partial packs and index everything written. After this
    /// returns, every blob saved is durable and indexed.
    pub fn finish(&self) -> Result<()> {
        for t in [BlobType::Data, BlobType::Tree] {
            let p = std::mem::replace(
                &mut *lock(&self.packers[t as usize]),
                PackBuilder::new(t, 0),
            );
            if !p.is_empty() {
                self.upload(p)?;
            }
        }
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
