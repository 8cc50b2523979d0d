//! Prune's bookkeeping on the store (`docs/prune.md`, `docs/format.md` §7.2):
//! the mark objects of two-phase deletion (`marks/<id>`) and the expiring
//! prune lock (`locks/prune-<n>`). Both are metadata objects; their payload
//! is postcard.

use serde::{Deserialize, Serialize};

use crate::object::{ObjectKind, open_object, seal_object};
use crate::{Error, Id, MasterKey, Result};

/// Version of [`PruneMarks`] and [`PruneLock`] payloads.
pub const PRUNE_OBJECT_VERSION: u32 = 1;

/// A pack or leftover object that a prune found unused, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkedObject {
    /// Store name, e.g. `data/ab/ab12…` or `staging/…`.
    pub path: String,
    /// Size in bytes when it was marked.
    pub size: u64,
    /// Unix time (seconds, by the marking prune's clock) it was first marked.
    pub marked: u64,
    /// Unix time (seconds) from which a prune may delete it: `marked` plus
    /// the marking prune's grace period. Backups read it (`docs/prune.md`).
    pub delete_after: u64,
}

/// The set of marked objects a prune left (`marks/<id>`), as a whole: a new
/// mark object supersedes the ones it was computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PruneMarks {
    /// Payload version (1).
    pub version: u32,
    /// Unix time (seconds) the prune that wrote it started.
    pub created: u64,
    /// Mark objects this one replaces.
    pub supersedes: Vec<Id>,
    /// Marked objects, sorted by path.
    pub objects: Vec<MarkedObject>,
}

/// The prune lock (`locks/prune-<n>`): taken with create-if-absent, valid
/// until `created + ttl_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneLock {
    /// Payload version (1).
    pub version: u32,
    /// Random, so the holder can tell its own lock from another's.
    pub nonce: Id,
    /// Unix time (seconds) it was taken or last renewed.
    pub created: u64,
    /// Seconds after `created` it expires.
    pub ttl_secs: u64,
    /// Host of the holder, for messages.
    pub hostname: String,
}

fn check_version(what: &'static str, found: u32) -> Result<()> {
    if found != PRUNE_OBJECT_VERSION {
        return Err(Error::UnsupportedVersion {
            what,
            found,
            supported: PRUNE_OBJECT_VERSION,
        });
    }
    Ok(())
}

fn decode_payload<T: for<'de> Deserialize<'de>>(what: &'static str, bin: &[u8]) -> Result<T> {
    let (v, rest): (T, &[u8]) =
        postcard::take_from_bytes(bin).map_err(|e| crate::error::malformed(what, e))?;
    if !rest.is_empty() {
        return Err(crate::error::malformed(what, "trailing bytes"));
    }
    Ok(v)
}

impl PruneMarks {
    /// Encode and encrypt (kind 5, payload encoding 0).
    pub fn encode(&self, key: &MasterKey) -> Result<Vec<u8>> {
        let bin =
            postcard::to_allocvec(self).map_err(|e| crate::error::malformed("prune marks", e))?;
        seal_object(key, ObjectKind::PruneMarks, &bin, 0)
    }

    /// Decrypt and decode.
    pub fn decode(key: &MasterKey, stored: &[u8]) -> Result<PruneMarks> {
        let bin = open_object(key, ObjectKind::PruneMarks, stored)?;
        let m: PruneMarks = decode_payload("prune marks", &bin)?;
        check_version("prune marks", m.version)?;
        Ok(m)
    }
}

impl PruneLock {
    /// Encode and encrypt (kind 6, payload encoding 0).
    pub fn encode(&self, key: &MasterKey) -> Result<Vec<u8>> {
        let bin =
            postcard::to_allocvec(self).map_err(|e| crate::error::malformed("prune lock", e))?;
        seal_object(key, ObjectKind::PruneLock, &bin, 0)
    }

    /// Decrypt and decode.
    pub fn decode(key: &MasterKey, stored: &[u8]) -> Result<PruneLock> {
        let bin = open_object(key, ObjectKind::PruneLock, stored)?;
        let l: PruneLock = decode_payload("prune lock", &bin)?;
        check_version("prune lock", l.version)?;
        Ok(l)
    }

    /// Unix time (seconds) it expires.
    pub fn expires(&self) -> u64 {
        self.created.saturating_add(self.ttl_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_and_locks_round_trip_and_are_not_interchangeable() {
        let k = MasterKey::generate().unwrap();
        let m = PruneMarks {
            version: 1,
            created: 1_700_000_000,
            supersedes: vec![Id([7; 32])],
            objects: vec![MarkedObject {
                path: crate::layout::object_path(crate::layout::Folder::Data, &Id([0xaa; 32])),
                size: 42,
                marked: 1_699_999_000,
                delete_after: 1_700_085_400,
            }],
        };
        let s = m.encode(&k).unwrap();
        assert_eq!(PruneMarks::decode(&k, &s).unwrap(), m);
        assert!(PruneLock::decode(&k, &s).is_err());
        let l = PruneLock {
            version: 1,
            nonce: Id([1; 32]),
            created: 10,
            ttl_secs: 5,
            hostname: "h".into(),
        };
        let s = l.encode(&k).unwrap();
        assert_eq!(PruneLock::decode(&k, &s).unwrap(), l);
        assert_eq!(l.expires(), 15);
        let v2 = PruneLock { version: 2, ..l };
        assert!(PruneLock::decode(&k, &v2.encode(&k).unwrap()).is_err());
    }
}
