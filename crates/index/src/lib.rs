//! The blob index of a Lifeboat repository.
//!
//! Owns reading and writing index segments (`index/<id>`) and answering
//! "where is blob X?" (pack, offset, lengths, type). Index segments are the
//! only place this crate writes; it never touches packs or snapshots.
//!
//! This version holds the merged index in a hash map. Its contract (what
//! `load` reads, how superseded segments are skipped) is the one the mmap'd
//! lookup table keeps.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use lifeboat_format::{BlobFlags, BlobType, Id, IndexPack, IndexSegment, MasterKey};
use lifeboat_store::Backend;

/// Errors from loading or writing the index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
    /// A segment could not be decrypted or decoded.
    #[error("index segment {segment}: {source}")]
    Segment {
        /// Segment id.
        segment: String,
        /// What was wrong.
        source: lifeboat_format::Error,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Pack holding the blob.
    pub pack: Id,
    /// Data or tree.
    pub blob_type: BlobType,
    /// Compression flag.
    pub flags: BlobFlags,
    /// Offset of the envelope in the pack.
    pub offset: u32,
    /// Envelope length.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

/// Storage path of a pack.
pub fn pack_path(id: &Id) -> String {
    let h = id.to_hex();
    format!("data/{}/{}", &h[..2], h)
}

/// Storage path of an index segment.
pub fn segment_path(id: &Id) -> String {
    format!("index/{}", id.to_hex())
}

/// The merged index of all live segments.
#[derive(Debug, Default)]
pub struct Index {
    blobs: HashMap<Id, BlobLocation>,
    packs: HashMap<Id, u64>,
    segments: Vec<Id>,
    duplicates: u64,
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Read every segment under `index/`, skipping segments that another
    /// segment supersedes.
    pub fn load(backend: &Arc<dyn Backend>, key: &MasterKey) -> Result<Index> {
        let listed = backend.list("index/")?;
        let mut segs = Vec::with_capacity(listed.len());
        for obj in &listed {
            let name = obj.path.trim_start_matches("index/");
            let id: Id = name.parse().map_err(|e| Error::Segment {
                segment: name.to_string(),
                source: e,
            })?;
            let bytes = backend.get(&obj.path)?;
            let seg = IndexSegment::decode(key, &bytes).map_err(|e| Error::Segment {
                segment: name.to_string(),
                source: e,
            })?;
            segs.push((id, seg));
        }
        let superseded: HashSet<Id> = segs
            .iter()
            .flat_map(|(_, s)| s.supersedes.iter().copied())
            .collect();
        let mut idx = Index::new();
        for (id, seg) in &segs {
            if !superseded.contains(id) {
                idx.add_segment(*id, seg);
            }
        }
        Ok(idx)
    }

    /// Merge a segment's packs into the index.
    pub fn add_segment(&mut self, id: Id, seg: &IndexSegment) {
        self.segments.push(id);
        for p in &seg.packs {
            self.add_pack(p);
        }
    }

    /// Merge one pack's blobs.
    pub fn add_pack(&mut self, p: &IndexPack) {
        self.packs.insert(p.id, p.size);
        for b in &p.blobs {
            let loc = BlobLocation {
                pack: p.id,
                blob_type: p.blob_type,
                flags: b.flags,
                offset: b.offset,
                stored_len: b.stored_len,
                raw_len: b.raw_len,
            };
            if self.blobs.insert(b.id, loc).is_some() {
                self.duplicates += 1;
            }
        }
    }

    /// Location of a blob.
    pub fn get(&self, id: &Id) -> Option<&BlobLocation> {
        self.blobs.get(id)
    }

    /// Whether a blob is indexed.
    pub fn contains(&self, id: &Id) -> bool {
        self.blobs.contains_key(id)
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.blobs.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty()
    }

    /// Indexed packs and their sizes.
    pub fn packs(&self) -> impl Iterator<Item = (&Id, &u64)> {
        self.packs.iter()
    }

    /// Segments merged.
    pub fn segments(&self) -> &[Id] {
        &self.segments
    }

    /// Blob entries seen more than once (stored in two packs).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Every blob and its location.
    pub fn iter(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> {
        self.blobs.iter()
    }
}

/// Encrypt and store a segment; returns its id.
pub fn write_segment(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    seg: &IndexSegment,
) -> Result<Id> {
    let bytes = seg.encode(key).map_err(|e| Error::Segment {
        segment: "<new>".into(),
        source: e,
    })?;
    let id = Id::of_object(&bytes);
    backend.put(&segment_path(&id), bytes.into())?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_format::IndexEntry;
    use lifeboat_store::ObjectStoreBackend;

    fn pack(n: u8) -> IndexPack {
        IndexPack {
            id: Id([n; 32]),
            blob_type: BlobType::Data,
            size: 100,
            blobs: vec![IndexEntry {
                id: Id([n + 100; 32]),
                flags: BlobFlags(0),
                offset: 0,
                stored_len: 50,
                raw_len: 10,
            }],
        }
    }

    #[test]
    fn load_skips_superseded_segments() {
        let b: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let k = MasterKey::generate().unwrap();
        let mut s1 = IndexSegment::new();
        s1.packs.push(pack(1));
        let id1 = write_segment(&b, &k, &s1).unwrap();
        let mut s2 = IndexSegment::new();
        s2.packs.push(pack(2));
        write_segment(&b, &k, &s2).unwrap();
        let idx = Index::load(&b, &k).unwrap();
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.get(&Id([101; 32])).unwrap().pack, Id([1; 32]));

        let mut s3 = IndexSegment::new();
        s3.supersedes.push(id1);
        write_segment(&b, &k, &s3).unwrap();
        let idx = Index::load(&b, &k).unwrap();
        assert_eq!(idx.len(), 1);
        assert!(!idx.contains(&Id([101; 32])));

        let other = MasterKey::generate().unwrap();
        assert!(matches!(
            Index::load(&b, &other),
            Err(Error::Segment { .. })
        ));
    }
}
