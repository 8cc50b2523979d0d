use std::cell::RefCell;

use crate::{Error, Id, MAX_BLOB_LEN, MasterKey, Result};

/// What a blob holds. Data and tree blobs live in separate packs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum BlobType {
    /// File content.
    Data = 0,
    /// An encoded [`crate::Tree`].
    Tree = 1,
}

impl BlobType {
    /// Decode the on-disk byte.
    pub fn from_u8(v: u8) -> Result<BlobType> {
        match v {
            0 => Ok(BlobType::Data),
            1 => Ok(BlobType::Tree),
            _ => Err(crate::error::malformed(
                "blob type",
                format!("unknown type {v}"),
            )),
        }
    }
}

/// Per-blob flags in pack headers and index entries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct BlobFlags(pub u8);

impl BlobFlags {
    /// The stored plaintext is a zstd frame.
    pub const COMPRESSED: u8 = 1;

    /// Whether the blob is compressed.
    pub fn compressed(self) -> bool {
        self.0 & Self::COMPRESSED != 0
    }

    /// Reject flags this version does not define.
    pub fn validate(self) -> Result<BlobFlags> {
        if self.0 & !Self::COMPRESSED != 0 {
            return Err(crate::error::malformed(
                "blob flags",
                format!("unknown flags {:#x}", self.0),
            ));
        }
        Ok(self)
    }
}

/// A blob ready to be appended to a pack.
#[derive(Debug, Clone)]
pub struct SealedBlob {
    /// Keyed hash of the plaintext.
    pub id: Id,
    /// Data or tree.
    pub blob_type: BlobType,
    /// Compression flag.
    pub flags: BlobFlags,
    /// Plaintext length.
    pub raw_len: u32,
    /// The encrypted envelope as stored in the pack.
    pub bytes: Vec<u8>,
}

fn blob_aad(
    blob_type: BlobType,
    flags: BlobFlags,
    raw_len: u32,
    id: &Id,
) -> [u8; 16 + 1 + 1 + 4 + 32] {
    let mut aad = [0u8; 54];
    aad[..16].copy_from_slice(b"lifeboat blob v1");
    aad[16] = blob_type as u8;
    aad[17] = flags.0;
    aad[18..22].copy_from_slice(&raw_len.to_le_bytes());
    aad[22..].copy_from_slice(&id.0);
    aad
}

thread_local! {
    /// Compressed output, reused from blob to blob.
    static COMPRESSED: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Compress `data` into `out` (replacing what it held).
fn compress_into(level: i32, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(l, _)| *l) != Some(level) {
            let comp = zstd::bulk::Compressor::new(level)
                .map_err(|e| Error::Compression(e.to_string()))?;
            *c = Some((level, comp));
        }
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        match c.as_mut() {
            Some((_, comp)) => comp
                .compress_to_buffer(data, out)
                .map(|_| ())
                .map_err(|e| Error::Compression(e.to_string())),
            None => Err(Error::Compression("no compressor".into())),
        }
    })
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Decompress one zstd frame into at most `capacity` bytes. The context is
/// made once per thread: creating one per blob cost a tenth of
/// `check --read-data`.
fn decompress(frame: &[u8], capacity: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_into(frame, capacity, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out` (replacing what it held), reusing its memory.
fn decompress_into(frame: &[u8], capacity: usize, out: &mut Vec<u8>) -> Result<()> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(
                zstd::bulk::Decompressor::new().map_err(|e| Error::Compression(e.to_string()))?,
            );
        }
        out.clear();
        out.reserve(capacity);
        match d.as_mut() {
            Some(d) => d
                .decompress_to_buffer(frame, out)
                .map_err(|e| Error::Compression(e.to_string()))?,
            None => return Err(Error::Compression("no decompressor".into())),
        };
        Ok(())
    })
}

/// Hash, compress (at `level`; 0 = never) and encrypt a blob. Compression is
/// kept only when it saves at least 1/32 of the plaintext.
pub fn seal_blob(
    key: &MasterKey,
    blob_type: BlobType,
    plaintext: &[u8],
    level: i32,
) -> Result<SealedBlob> {
    let id = key.blob_id(plaintext);
    seal_blob_with_id(key, blob_type, id, plaintext, level)
}

/// [`seal_blob`] for a caller that already computed the id.
pub fn seal_blob_with_id(
    key: &MasterKey,
    blob_type: BlobType,
    id: Id,
    plaintext: &[u8],
    level: i32,
) -> Result<SealedBlob> {
    let raw_len = u32::try_from(plaintext.len())
        .ok()
        .filter(|l| *l <= MAX_BLOB_LEN)
        .ok_or_else(|| crate::error::malformed("blob", "plaintext larger than 1 GiB"))?;
    let mut flags = BlobFlags(0);
    // This thread's buffer, taken (not borrowed) so that a nested call
    // cannot find it in use; put back for the next blob.
    let mut scratch = COMPRESSED.take();
    let compressed = level != 0 && !plaintext.is_empty() && {
        compress_into(level, plaintext, &mut scratch)?;
        scratch.len() + plaintext.len() / 32 < plaintext.len()
    };
    if compressed {
        flags.0 |= BlobFlags::COMPRESSED;
    }
    let body = if compressed { &scratch[..] } else { plaintext };
    let bytes = key.seal(&blob_aad(blob_type, flags, raw_len, &id), body)?;
    COMPRESSED.set(scratch);
    Ok(SealedBlob {
        id,
        blob_type,
        flags,
        raw_len,
        bytes,
    })
}

/// Decrypt, decompress and verify a blob read from a pack. Fails if any
/// byte, the id, the type, the flags or the length were changed.
pub fn open_blob(
    key: &MasterKey,
    blob_type: BlobType,
    id: &Id,
    flags: BlobFlags,
    raw_len: u32,
    stored: &[u8],
) -> Result<Vec<u8>> {
    check_header(flags, raw_len)?;
    let plain = key.open(&blob_aad(blob_type, flags, raw_len, id), stored, "blob")?;
    let data = if flags.compressed() {
        decompress(&plain, raw_len as usize)?
    } else {
        plain
    };
    verify(key, id, raw_len, &data)?;
    Ok(data)
}

/// [`open_blob`] without copies, for a reader that holds many blobs in
/// one buffer: decrypts `stored` where it lies (its bytes are lost) and
/// decompresses into `scratch`, whose memory is reused from blob to blob.
/// Returns the verified plaintext, in `stored` or in `scratch`.
pub fn open_blob_in_place<'a>(
    key: &MasterKey,
    blob_type: BlobType,
    id: &Id,
    flags: BlobFlags,
    raw_len: u32,
    stored: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8]> {
    check_header(flags, raw_len)?;
    let plain = key.open_in_place(&blob_aad(blob_type, flags, raw_len, id), stored, "blob")?;
    let data = if flags.compressed() {
        decompress_into(plain, raw_len as usize, scratch)?;
        scratch.as_slice()
    } else {
        plain
    };
    verify(key, id, raw_len, data)?;
    Ok(data)
}

fn check_header(flags: BlobFlags, raw_len: u32) -> Result<()> {
    if raw_len > MAX_BLOB_LEN {
        return Err(crate::error::malformed("blob", "length larger than 1 GiB"));
    }
    // A flag this version does not define could change how the blob must be
    // decoded, so refuse it rather than ignore it.
    flags.validate().map(|_| ())
}

/// The plaintext has the recorded length and hashes to its id.
fn verify(key: &MasterKey, id: &Id, raw_len: u32, data: &[u8]) -> Result<()> {
    if data.len() != raw_len as usize {
        return Err(crate::error::malformed(
            "blob",
            format!("length {} differs from recorded {raw_len}", data.len()),
        ));
    }
    let actual = key.blob_id(data);
    if actual != *id {
        return Err(Error::IdMismatch {
            expected: *id,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_and_incompressible_round_trip() {
        let k = MasterKey::generate().unwrap();
        let text = b"lifeboat ".repeat(10_000);
        let s = seal_blob(&k, BlobType::Data, &text, 3).unwrap();
        assert!(s.flags.compressed());
        assert!(s.bytes.len() < text.len() / 10);
        assert_eq!(
            open_blob(&k, BlobType::Data, &s.id, s.flags, s.raw_len, &s.bytes).unwrap(),
            text
        );

        let mut noise = vec![0u8; 100_000];
        crate::random::fill_random(&mut noise).unwrap();
        let s = seal_blob(&k, BlobType::Data, &noise, 3).unwrap();
        assert!(!s.flags.compressed(), "incompressible data is stored raw");
        assert_eq!(s.bytes.len(), noise.len() + crate::ENVELOPE_OVERHEAD);
        assert_eq!(
            open_blob(&k, BlobType::Data, &s.id, s.flags, s.raw_len, &s.bytes).unwrap(),
            noise
        );
    }

    #[test]
    fn in_place_opening_matches_and_reuses_scratch() {
        let k = MasterKey::generate().unwrap();
        let text = b"lifeboat ".repeat(10_000);
        let mut noise = vec![0u8; 50_000];
        crate::random::fill_random(&mut noise).unwrap();
        let mut scratch = Vec::new();
        // Compressed, raw, then compressed again into the same scratch.
        for plain in [&text[..], &noise[..], &text[..200]] {
            let s = seal_blob(&k, BlobType::Data, plain, 3).unwrap();
            let mut open = |mut stored: Vec<u8>| {
                let (id, f, l) = (&s.id, s.flags, s.raw_len);
                open_blob_in_place(&k, BlobType::Data, id, f, l, &mut stored, &mut scratch)
                    .map(|d| d.to_vec())
            };
            assert_eq!(open(s.bytes.clone()).unwrap(), plain);
            // Any flipped bit, in the nonce, the body or the tag, is refused.
            for at in [0, s.bytes.len() / 2, s.bytes.len() - 1] {
                let mut bad = s.bytes.clone();
                bad[at] ^= 0x10;
                assert!(open(bad).is_err(), "flip at {at} accepted");
            }
            assert!(open(s.bytes[..10].to_vec()).is_err());
        }
    }

    #[test]
    fn swapping_id_or_type_is_detected() {
        let k = MasterKey::generate().unwrap();
        let s = seal_blob(&k, BlobType::Data, b"one", 3).unwrap();
        let other = k.blob_id(b"two");
        assert!(open_blob(&k, BlobType::Data, &other, s.flags, s.raw_len, &s.bytes).is_err());
        assert!(open_blob(&k, BlobType::Tree, &s.id, s.flags, s.raw_len, &s.bytes).is_err());
        assert!(open_blob(&k, BlobType::Data, &s.id, BlobFlags(1), s.raw_len, &s.bytes).is_err());
        assert!(open_blob(&k, BlobType::Data, &s.id, s.flags, 4, &s.bytes).is_err());
    }
}
