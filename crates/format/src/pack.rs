use crate::object::{ObjectKind, open_object, seal_object};
use crate::{BlobFlags, BlobType, Error, Id, MasterKey, Result, SealedBlob, SealedGroup};

/// Magic bytes in every pack trailer.
pub const PACK_MAGIC: &[u8; 6] = b"LBPACK";
/// Pack format version written by this build.
pub const PACK_VERSION: u16 = 1;
/// `header length (u32 LE) ‖ "LBPACK" ‖ version (u16 LE)`.
pub const PACK_TRAILER_LEN: usize = 12;
/// Encoded size of one header entry.
pub const HEADER_ENTRY_LEN: usize = 1 + 1 + 4 + 4 + 4 + 32;
/// A header longer than this is rejected as corrupt (about 360k blobs).
pub const MAX_HEADER_LEN: u32 = 16 << 20;

/// Where one blob sits in a pack, as listed in the pack's encrypted header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackHeaderEntry {
    /// Data or tree.
    pub blob_type: BlobType,
    /// Compression flag.
    pub flags: BlobFlags,
    /// Byte offset of the blob's envelope from the start of the pack.
    pub offset: u32,
    /// Length of the envelope.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
    /// Blob id.
    pub id: Id,
}

impl PackHeaderEntry {
    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.blob_type as u8);
        out.push(self.flags.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.stored_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&self.id.0);
    }

    fn decode(b: &[u8]) -> Result<PackHeaderEntry> {
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[14..46]);
        Ok(PackHeaderEntry {
            blob_type: BlobType::from_u8(b[0])?,
            flags: BlobFlags(b[1]).validate()?,
            offset: u32_at(2),
            stored_len: u32_at(6),
            raw_len: u32_at(10),
            id: Id(id),
        })
    }
}

/// Accumulates sealed blobs of one type into a pack:
/// `blob envelopes ‖ encrypted header ‖ trailer`.
#[derive(Debug)]
pub struct PackBuilder {
    buf: Vec<u8>,
    /// For a [`PackBuilder::hashed`] pack: the hash and length of the blob
    /// bytes, which the caller keeps elsewhere.
    hashed: Option<(blake3::Hasher, usize)>,
    entries: Vec<PackHeaderEntry>,
    blob_type: BlobType,
    /// The last group envelope appended, and its offset: a grouped blob
    /// added with the same envelope (a copier adding a group's members one
    /// by one) gets an entry pointing at it rather than a second copy.
    last_group: Option<(u32, Vec<u8>)>,
}

impl PackBuilder {
    /// An empty pack for blobs of `blob_type`, with room for `capacity` bytes.
    pub fn new(blob_type: BlobType, capacity: usize) -> PackBuilder {
        PackBuilder {
            buf: Vec::with_capacity(capacity),
            hashed: None,
            entries: Vec::new(),
            blob_type,
            last_group: None,
        }
    }

    /// An empty pack that keeps no blob bytes, only their hash: the caller
    /// writes each blob's bytes, in the order added, to where the pack is
    /// built (a staged file), then appends what [`PackBuilder::finish`]
    /// returns.
    pub fn hashed(blob_type: BlobType) -> PackBuilder {
        PackBuilder {
            buf: Vec::new(),
            hashed: Some((blake3::Hasher::new(), 0)),
            entries: Vec::new(),
            blob_type,
            last_group: None,
        }
    }

    /// An empty pack that reuses `buf`'s allocation (its contents are
    /// dropped), so a writer can recycle the buffers of uploaded packs.
    pub fn with_buffer(blob_type: BlobType, mut buf: Vec<u8>) -> PackBuilder {
        buf.clear();
        PackBuilder {
            buf,
            hashed: None,
            entries: Vec::new(),
            blob_type,
            last_group: None,
        }
    }

    /// Append a blob. Fails if the pack would pass 4 GiB. Returns whether
    /// its bytes were appended: a member of a group ([`BlobFlags::GROUPED`])
    /// whose envelope is the one appended last is listed at that envelope
    /// instead, and a caller that writes the bytes elsewhere (a
    /// [`PackBuilder::hashed`] pack) must not write them again.
    pub fn add(&mut self, blob: &SealedBlob) -> Result<bool> {
        let shared = match &self.last_group {
            // Another member of the group appended last (a wrong type goes
            // on to `append`, which refuses it).
            Some((offset, bytes))
                if blob.flags.grouped()
                    && blob.blob_type == self.blob_type
                    && *bytes == blob.bytes =>
            {
                Some(*offset)
            }
            _ => None,
        };
        let offset = match shared {
            Some(offset) => offset,
            None => {
                let offset = self.append(blob.blob_type, &blob.bytes)?;
                if blob.flags.grouped() {
                    self.last_group = Some((offset, blob.bytes.clone()));
                }
                offset
            }
        };
        self.push_entry(
            blob.blob_type,
            blob.flags,
            offset,
            &blob.bytes,
            blob.raw_len,
            blob.id,
        );
        Ok(shared.is_none())
    }

    /// Append a group's envelope once, with an entry for each member.
    pub fn add_group(&mut self, group: &SealedGroup) -> Result<()> {
        let offset = self.append(group.blob_type, &group.bytes)?;
        self.last_group = None;
        for (id, raw_len) in &group.members {
            self.push_entry(
                group.blob_type,
                group.flags,
                offset,
                &group.bytes,
                *raw_len,
                *id,
            );
        }
        Ok(())
    }

    fn push_entry(
        &mut self,
        blob_type: BlobType,
        flags: BlobFlags,
        offset: u32,
        envelope: &[u8],
        raw_len: u32,
        id: Id,
    ) {
        self.entries.push(PackHeaderEntry {
            blob_type,
            flags,
            offset,
            // Checked by `append` when the envelope was added.
            stored_len: envelope.len() as u32,
            raw_len,
            id,
        });
    }

    /// Append an envelope of type `blob_type` (or, hashed, account for its
    /// bytes); returns its offset. Fails on a type other than the pack's,
    /// or if the pack would pass 4 GiB.
    fn append(&mut self, blob_type: BlobType, bytes: &[u8]) -> Result<u32> {
        if blob_type != self.blob_type {
            return Err(crate::error::malformed(
                "pack",
                "blob type differs from pack type",
            ));
        }
        let offset = u32::try_from(self.len())
            .map_err(|_| crate::error::malformed("pack", "pack larger than 4 GiB"))?;
        let stored_len = u32::try_from(bytes.len())
            .map_err(|_| crate::error::malformed("pack", "blob larger than 4 GiB"))?;
        offset
            .checked_add(stored_len)
            .ok_or_else(|| crate::error::malformed("pack", "pack larger than 4 GiB"))?;
        match &mut self.hashed {
            Some((h, len)) => {
                h.update(bytes);
                *len += bytes.len();
            }
            None => self.buf.extend_from_slice(bytes),
        }
        Ok(offset)
    }

    /// Bytes of blob data so far.
    pub fn len(&self) -> usize {
        match &self.hashed {
            Some((_, len)) => *len,
            None => self.buf.len(),
        }
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of blobs.
    pub fn blob_count(&self) -> usize {
        self.entries.len()
    }

    /// Blob type of this pack.
    pub fn blob_type(&self) -> BlobType {
        self.blob_type
    }

    /// Seal the header and trailer; returns the pack bytes, its id (BLAKE3
    /// of those bytes) and the header entries. For a
    /// [`PackBuilder::hashed`] pack the bytes are only what follows the
    /// blobs (encrypted header and trailer), and the id covers the blobs
    /// too.
    pub fn finish(mut self, key: &MasterKey) -> Result<(Vec<u8>, Id, Vec<PackHeaderEntry>)> {
        let mut header = Vec::with_capacity(self.entries.len() * HEADER_ENTRY_LEN);
        for e in &self.entries {
            e.encode(&mut header);
        }
        let sealed = seal_object(key, ObjectKind::PackHeader, &header, 0)?;
        let hlen = u32::try_from(sealed.len())
            .ok()
            .filter(|l| *l <= MAX_HEADER_LEN)
            .ok_or_else(|| crate::error::malformed("pack", "header too large"))?;
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&hlen.to_le_bytes());
        self.buf.extend_from_slice(PACK_MAGIC);
        self.buf.extend_from_slice(&PACK_VERSION.to_le_bytes());
        let id = match &mut self.hashed {
            Some((h, _)) => Id(*h.update(&self.buf).finalize().as_bytes()),
            None => Id::of_object(&self.buf),
        };
        Ok((self.buf, id, self.entries))
    }
}

/// Parse the 12-byte trailer at the end of `tail` and return the length of
/// the encrypted header that precedes it.
pub fn parse_pack_trailer(tail: &[u8]) -> Result<u32> {
    if tail.len() < PACK_TRAILER_LEN {
        return Err(Error::Truncated {
            what: "pack trailer",
            needed: PACK_TRAILER_LEN,
            actual: tail.len(),
        });
    }
    let t = &tail[tail.len() - PACK_TRAILER_LEN..];
    if &t[4..10] != PACK_MAGIC {
        return Err(crate::error::malformed("pack trailer", "bad magic"));
    }
    let version = u16::from_le_bytes([t[10], t[11]]);
    if version != PACK_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "pack",
            found: version.into(),
            supported: PACK_VERSION.into(),
        });
    }
    let hlen = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
    if hlen > MAX_HEADER_LEN {
        return Err(crate::error::malformed(
            "pack trailer",
            "header length too large",
        ));
    }
    Ok(hlen)
}

/// Decrypt a pack header and check each entry against the pack's size.
pub fn decode_pack_header(
    key: &MasterKey,
    sealed: &[u8],
    pack_len: u64,
) -> Result<Vec<PackHeaderEntry>> {
    let plain = open_object(key, ObjectKind::PackHeader, sealed)?;
    if plain.len() % HEADER_ENTRY_LEN != 0 {
        return Err(crate::error::malformed(
            "pack header",
            "length is not a whole number of entries",
        ));
    }
    let data_end = pack_len.saturating_sub((sealed.len() + PACK_TRAILER_LEN) as u64);
    plain
        .chunks_exact(HEADER_ENTRY_LEN)
        .map(|c| {
            let e = PackHeaderEntry::decode(c)?;
            if u64::from(e.offset) + u64::from(e.stored_len) > data_end {
                return Err(crate::error::malformed(
                    "pack header",
                    format!("blob {} lies outside the pack", e.id),
                ));
            }
            Ok(e)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal_blob;

    /// The header entries of a whole pack, read back through its trailer.
    fn read_header(k: &MasterKey, pack: &[u8]) -> Vec<PackHeaderEntry> {
        let hlen = parse_pack_trailer(pack).unwrap() as usize;
        let hstart = pack.len() - PACK_TRAILER_LEN - hlen;
        decode_pack_header(
            k,
            &pack[hstart..pack.len() - PACK_TRAILER_LEN],
            pack.len() as u64,
        )
        .unwrap()
    }

    #[test]
    fn build_and_parse_pack() {
        let k = MasterKey::generate().unwrap();
        let mut p = PackBuilder::new(BlobType::Data, 0);
        let a = seal_blob(&k, BlobType::Data, b"alpha", 3).unwrap();
        let b = seal_blob(&k, BlobType::Data, &vec![7u8; 5000], 3).unwrap();
        p.add(&a).unwrap();
        p.add(&b).unwrap();
        assert!(
            p.add(&seal_blob(&k, BlobType::Tree, b"t", 0).unwrap())
                .is_err()
        );
        let (bytes, id, entries) = p.finish(&k).unwrap();
        assert_eq!(id, Id::of_object(&bytes));
        let parsed = read_header(&k, &bytes);
        assert_eq!(parsed, entries);
        let e = parsed[1];
        let blob = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
        assert_eq!(
            crate::open_blob(&k, e.blob_type, &e.id, e.flags, e.raw_len, blob).unwrap(),
            vec![7u8; 5000]
        );
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 1] = 9;
        assert!(matches!(
            parse_pack_trailer(&bad),
            Err(Error::UnsupportedVersion { .. })
        ));
        assert!(parse_pack_trailer(&bytes[..5]).is_err());
    }

    #[test]
    fn hashed_pack_is_the_same_pack() {
        let k = MasterKey::generate().unwrap();
        let blobs = [
            seal_blob(&k, BlobType::Data, b"alpha", 3).unwrap(),
            seal_blob(&k, BlobType::Data, &vec![7u8; 5000], 3).unwrap(),
            seal_blob(&k, BlobType::Data, b"omega", 0).unwrap(),
        ];
        let mut whole = PackBuilder::new(BlobType::Data, 0);
        let mut hashed = PackBuilder::hashed(BlobType::Data);
        let mut written = Vec::new();
        for b in &blobs {
            whole.add(b).unwrap();
            hashed.add(b).unwrap();
            written.extend_from_slice(&b.bytes);
            assert_eq!(hashed.len(), whole.len());
        }
        let (bytes, id, entries) = whole.finish(&k).unwrap();
        let (tail, hid, hentries) = hashed.finish(&k).unwrap();
        assert_eq!(hentries, entries);
        // The header is sealed with a fresh nonce, so the two packs differ
        // there; each id must cover its own whole pack.
        assert_eq!(tail.len() + written.len(), bytes.len());
        written.extend_from_slice(&tail);
        assert_eq!(hid, Id::of_object(&written));
        assert_eq!(id, Id::of_object(&bytes));
        assert_eq!(read_header(&k, &written), entries);
    }

    #[test]
    fn a_group_is_stored_once_and_copies_of_it_are_shared() {
        let k = MasterKey::generate().unwrap();
        let mut g = crate::GroupBuilder::new(BlobType::Data);
        let plains: Vec<Vec<u8>> = (0..3)
            .map(|i| format!("member {i} ").repeat(50).into_bytes())
            .collect();
        for p in &plains {
            g.push(k.blob_id(p), p).unwrap();
        }
        let group = g.seal(&k, crate::Compression::Auto).unwrap();
        let alone = seal_blob(&k, BlobType::Data, b"alone", 3).unwrap();
        let mut p = PackBuilder::new(BlobType::Data, 0);
        p.add(&alone).unwrap();
        p.add_group(&group).unwrap();
        assert_eq!(p.len(), alone.bytes.len() + group.bytes.len());
        let (bytes, _, entries) = p.finish(&k).unwrap();
        assert_eq!(read_header(&k, &bytes), entries);
        assert_eq!(entries.len(), 4);
        for (e, plain) in entries[1..].iter().zip(&plains) {
            assert_eq!(
                (e.offset, e.stored_len),
                (entries[1].offset, entries[1].stored_len)
            );
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            let opened = crate::open_blob(&k, e.blob_type, &e.id, e.flags, e.raw_len, stored);
            assert_eq!(&opened.unwrap(), plain);
        }
        // A copier adds the members one by one (skipping a dead one): the
        // envelope is appended once, and a hashed pack is told so.
        let mut copy = PackBuilder::hashed(BlobType::Data);
        let mut appended = Vec::new();
        for e in [&entries[0], &entries[1], &entries[3]] {
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            appended.push(
                copy.add(&SealedBlob {
                    id: e.id,
                    blob_type: e.blob_type,
                    flags: e.flags,
                    raw_len: e.raw_len,
                    bytes: stored.to_vec(),
                })
                .unwrap(),
            );
        }
        assert_eq!(appended, [true, true, false]);
        assert_eq!(copy.len(), alone.bytes.len() + group.bytes.len());
        let (_, _, copied) = copy.finish(&k).unwrap();
        assert_eq!(copied[2].offset, copied[1].offset);
        // Ungrouped blobs with equal bytes are never shared.
        let mut twice = PackBuilder::new(BlobType::Data, 0);
        assert!(twice.add(&alone).unwrap());
        assert!(twice.add(&alone).unwrap());
    }
}
