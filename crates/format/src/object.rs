use std::io::Read;

use crate::{Error, MAX_BLOB_LEN, MasterKey, Result};

/// What a metadata object is; bound into its encryption as associated data
/// so one kind can never be passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
#[non_exhaustive]
pub enum ObjectKind {
    /// The repository `config`.
    Config = 0,
    /// An index segment under `index/`.
    Index = 1,
    /// A snapshot under `snapshots/`.
    Snapshot = 2,
    /// The header at the end of a pack.
    PackHeader = 3,
    /// A check verification record.
    VerifyRecord = 4,
    /// A prune mark object under `marks/`.
    PruneMarks = 5,
    /// The prune lock under `locks/`.
    PruneLock = 6,
    /// A restore drill's record under `drills/`.
    DrillRecord = 7,
}

const OBJECT_AAD: &[u8] = b"lifeboat object v1";
/// Payload stored as is.
const ENCODING_RAW: u8 = 0;
/// Payload is one zstd frame.
const ENCODING_ZSTD: u8 = 1;

pub(crate) fn object_aad(kind: ObjectKind, extra: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(OBJECT_AAD.len() + 1 + extra.len());
    aad.extend_from_slice(OBJECT_AAD);
    aad.push(kind as u8);
    aad.extend_from_slice(extra);
    aad
}

/// Encrypt a metadata object: `envelope(encoding byte ‖ payload)`.
/// `level` 0 stores the payload raw, otherwise zstd at that level (kept only
/// when it makes the payload smaller).
pub fn seal_object(
    key: &MasterKey,
    kind: ObjectKind,
    payload: &[u8],
    level: i32,
) -> Result<Vec<u8>> {
    seal_object_aad(key, kind, &[], payload, level)
}

pub(crate) fn seal_object_aad(
    key: &MasterKey,
    kind: ObjectKind,
    extra_aad: &[u8],
    payload: &[u8],
    level: i32,
) -> Result<Vec<u8>> {
    let mut plain = Vec::with_capacity(payload.len() + 1);
    if level != 0 {
        let c =
            zstd::bulk::compress(payload, level).map_err(|e| Error::Compression(e.to_string()))?;
        if c.len() < payload.len() {
            plain.push(ENCODING_ZSTD);
            plain.extend_from_slice(&c);
        }
    }
    if plain.is_empty() {
        plain.push(ENCODING_RAW);
        plain.extend_from_slice(payload);
    }
    key.seal(&object_aad(kind, extra_aad), &plain)
}

/// Decrypt and decompress a metadata object sealed as `kind`.
pub fn open_object(key: &MasterKey, kind: ObjectKind, sealed: &[u8]) -> Result<Vec<u8>> {
    open_object_aad(key, kind, &[], sealed)
}

pub(crate) fn open_object_aad(
    key: &MasterKey,
    kind: ObjectKind,
    extra_aad: &[u8],
    sealed: &[u8],
) -> Result<Vec<u8>> {
    let plain = key.open(
        &object_aad(kind, extra_aad),
        sealed,
        &format!("{kind:?} object"),
    )?;
    match plain.split_first() {
        Some((&ENCODING_RAW, rest)) => Ok(rest.to_vec()),
        Some((&ENCODING_ZSTD, rest)) => decompress_bounded(rest, MAX_BLOB_LEN as u64),
        Some((other, _)) => Err(crate::error::malformed(
            "object",
            format!("unknown payload encoding {other}"),
        )),
        None => Err(Error::Truncated {
            what: "object payload",
            needed: 1,
            actual: 0,
        }),
    }
}

pub(crate) fn decompress_bounded(data: &[u8], limit: u64) -> Result<Vec<u8>> {
    let dec =
        zstd::stream::read::Decoder::new(data).map_err(|e| Error::Compression(e.to_string()))?;
    let mut out = Vec::new();
    dec.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::Compression(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(Error::Compression(format!("payload exceeds {limit} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_not_interchangeable() {
        let k = MasterKey::generate().unwrap();
        let text = b"{\"a\":1}".repeat(100);
        let s = seal_object(&k, ObjectKind::Snapshot, &text, 3).unwrap();
        assert!(s.len() < text.len(), "compressible payload is compressed");
        assert_eq!(open_object(&k, ObjectKind::Snapshot, &s).unwrap(), text);
        assert!(open_object(&k, ObjectKind::Index, &s).is_err());
        let raw = seal_object(&k, ObjectKind::Index, b"xy", 0).unwrap();
        assert_eq!(open_object(&k, ObjectKind::Index, &raw).unwrap(), b"xy");
    }
}
