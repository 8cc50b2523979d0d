use serde::{Deserialize, Serialize};

use crate::object::{ObjectKind, open_object, seal_object};
use crate::{BlobFlags, BlobType, Error, Id, MasterKey, Result};

/// One blob's location in an index segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Blob id.
    pub id: Id,
    /// Compression flag.
    pub flags: BlobFlags,
    /// Offset of the envelope in the pack.
    pub offset: u32,
    /// Envelope length.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

/// The blobs of one pack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPack {
    /// Pack id.
    pub id: Id,
    /// Type of every blob in the pack.
    pub blob_type: BlobType,
    /// Size of the whole pack object in bytes.
    pub size: u64,
    /// Its blobs.
    pub blobs: Vec<IndexEntry>,
}

/// An index segment (`index/<id>`): postcard, then encrypted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IndexSegment {
    /// Segment format version (1).
    pub version: u32,
    /// Segments this one replaces (written by compaction).
    pub supersedes: Vec<Id>,
    /// Packs it describes.
    pub packs: Vec<IndexPack>,
}

impl IndexSegment {
    /// A new, empty version-1 segment.
    pub fn new() -> IndexSegment {
        IndexSegment {
            version: 1,
            ..Default::default()
        }
    }

    /// Encode and encrypt.
    pub fn encode(&self, key: &MasterKey) -> Result<Vec<u8>> {
        let bin =
            postcard::to_allocvec(self).map_err(|e| crate::error::malformed("index segment", e))?;
        seal_object(key, ObjectKind::Index, &bin, 0)
    }

    /// Decrypt and decode.
    pub fn decode(key: &MasterKey, stored: &[u8]) -> Result<IndexSegment> {
        let bin = open_object(key, ObjectKind::Index, stored)?;
        let (seg, rest): (IndexSegment, &[u8]) = postcard::take_from_bytes(&bin)
            .map_err(|e| crate::error::malformed("index segment", e))?;
        if !rest.is_empty() {
            return Err(crate::error::malformed("index segment", "trailing bytes"));
        }
        if seg.version != 1 {
            return Err(Error::UnsupportedVersion {
                what: "index segment",
                found: seg.version,
                supported: 1,
            });
        }
        for e in seg.packs.iter().flat_map(|p| &p.blobs) {
            e.flags.validate()?;
        }
        Ok(seg)
    }

    /// Number of blobs described.
    pub fn blob_count(&self) -> usize {
        self.packs.iter().map(|p| p.blobs.len()).sum()
    }
}

impl From<&crate::PackHeaderEntry> for IndexEntry {
    /// The index entry for a blob listed in a pack header.
    fn from(e: &crate::PackHeaderEntry) -> IndexEntry {
        IndexEntry {
            id: e.id,
            flags: e.flags,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
        }
    }
}
