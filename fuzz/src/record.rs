//! The verification record (`verify/<id>`, `docs/format.md` §7.1).
//!
//! Its decoder is private to `lifeboat-check` (`crates/check/src/record.rs`,
//! `fn decode`), so this is a copy of its payload types and of its decode
//! steps: open the object (the crate's public [`open_object`]), postcard
//! with no trailing bytes, then the version. Keep it in step with that file;
//! moving the record into `lifeboat-format` (as `prune.rs` was) would let the
//! target call the real decoder.

use lifeboat_format::{Id, MasterKey, ObjectKind, open_object};
use serde::{Deserialize, Serialize};

/// `RecordPayload` of `crates/check/src/record.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordPayload {
    /// 1.
    pub version: u32,
    /// Packs, sorted by id.
    pub packs: Vec<VerifiedPack>,
}

/// `VerifiedPack` of `crates/check/src/record.rs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifiedPack {
    /// Pack id.
    pub id: Id,
    /// Unix time, seconds.
    pub verified: u64,
    /// Whether that verification found damage.
    pub damaged: bool,
}

/// Why a record was refused.
#[derive(Debug)]
pub enum RecordError {
    /// Opening the object failed.
    Sealed(lifeboat_format::Error),
    /// Not postcard.
    Malformed(postcard::Error),
    /// Bytes after the record.
    TrailingBytes,
    /// Not version 1.
    UnsupportedVersion(u32),
}

/// The steps of `lifeboat-check`'s `record::decode`.
pub fn decode(key: &MasterKey, bytes: &[u8]) -> Result<RecordPayload, RecordError> {
    let plain = open_object(key, ObjectKind::VerifyRecord, bytes).map_err(RecordError::Sealed)?;
    let (p, rest): (RecordPayload, &[u8]) =
        postcard::take_from_bytes(&plain).map_err(RecordError::Malformed)?;
    if !rest.is_empty() {
        return Err(RecordError::TrailingBytes);
    }
    if p.version != 1 {
        return Err(RecordError::UnsupportedVersion(p.version));
    }
    Ok(p)
}
