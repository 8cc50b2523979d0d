//! The verification record: when each pack was last read and verified, so
//! that a scheduled `check --read-data --max-age 30d --max-duration 1h`
//! covers the whole repository over successive runs.
//!
//! Stored as `verify/<id>`, a metadata object of kind 4 (VerifyRecord)
//! whose payload is the postcard encoding of [`RecordPayload`]; `<id>` is
//! the BLAKE3 of the stored bytes, like every other object. A run writes a
//! new record (create-if-absent, atomic) holding everything it merged, and
//! only then deletes the records it read. Two checks running at once each
//! write their own; the next run merges both. A record that cannot be read
//! is ignored with a warning: the worst it costs is reading packs again.

use std::collections::HashMap;
use std::sync::Arc;

use lifeboat_format::layout::{Folder, id_of_path, object_path};
use lifeboat_format::{Id, MasterKey, ObjectKind, open_object, seal_object};
use lifeboat_store::Backend;
use serde::{Deserialize, Serialize};

/// Version of the record payload.
const RECORD_VERSION: u32 = 1;

/// The plaintext of a record (postcard).
#[derive(Debug, Serialize, Deserialize)]
struct RecordPayload {
    /// 1.
    version: u32,
    /// Packs, sorted by id.
    packs: Vec<VerifiedPack>,
}

/// One pack and when it was last verified.
#[derive(Debug, Serialize, Deserialize)]
struct VerifiedPack {
    /// Pack id.
    id: Id,
    /// Unix time, seconds.
    verified: u64,
    /// Whether that verification found damage (such packs are read again by
    /// every run, so that every run reports them).
    damaged: bool,
}

/// The last verification of one pack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PackRecord {
    /// Unix time, seconds.
    pub verified: u64,
    /// Whether it found damage.
    pub damaged: bool,
}

/// What was read from `verify/`.
#[derive(Debug, Default)]
pub(crate) struct Records {
    /// Last verification of each pack, merged over all readable records.
    pub packs: HashMap<Id, PackRecord>,
    /// Records merged into `times` (replaced by the next record written).
    pub merged: Vec<String>,
    /// Records that failed authentication or their name check: garbage,
    /// deleted once a new record is written.
    pub garbage: Vec<String>,
    /// Warnings for the report.
    pub warnings: Vec<String>,
}

/// Why a record cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// The stored bytes do not hash to the record's name.
    #[error("content does not hash to its name")]
    NameMismatch,
    /// Decryption (or sealing) failed.
    #[error(transparent)]
    Sealed(#[from] lifeboat_format::Error),
    /// The payload is not a postcard-encoded record.
    #[error("malformed: {0}")]
    Malformed(#[from] postcard::Error),
    /// The payload has bytes after the record.
    #[error("malformed: trailing bytes")]
    TrailingBytes,
    /// A record version this build does not read.
    #[error("unsupported record version {0}")]
    UnsupportedVersion(u32),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
}

impl RecordError {
    /// A record written by a newer build: left for that build to read.
    fn is_unsupported(&self) -> bool {
        matches!(
            self,
            RecordError::UnsupportedVersion(_)
                | RecordError::Sealed(lifeboat_format::Error::UnsupportedVersion { .. })
        )
    }
}

fn decode(key: &MasterKey, bytes: &[u8]) -> Result<RecordPayload, RecordError> {
    let plain = open_object(key, ObjectKind::VerifyRecord, bytes)?;
    let (p, rest): (RecordPayload, &[u8]) = postcard::take_from_bytes(&plain)?;
    if !rest.is_empty() {
        return Err(RecordError::TrailingBytes);
    }
    if p.version != RECORD_VERSION {
        return Err(RecordError::UnsupportedVersion(p.version));
    }
    Ok(p)
}

/// Read every record. Only the listing itself can fail; a record that cannot
/// be read or decoded becomes a warning.
pub(crate) fn load(backend: &Arc<dyn Backend>, key: &MasterKey) -> lifeboat_store::Result<Records> {
    let mut r = Records::default();
    for obj in backend.list(&Folder::Verify.prefix())? {
        let Some(id) = id_of_path(&obj.path) else {
            continue;
        };
        let bytes = match backend.get(&obj.path) {
            Ok(b) => b,
            Err(e) => {
                r.warnings.push(format!(
                    "verification record {}: cannot be read, ignored: {e}",
                    obj.path
                ));
                continue;
            }
        };
        let res = if Id::of_object(&bytes) != id {
            Err(RecordError::NameMismatch)
        } else {
            decode(key, &bytes)
        };
        match res {
            Ok(p) => {
                for v in p.packs {
                    let new = PackRecord {
                        verified: v.verified,
                        damaged: v.damaged,
                    };
                    let t = r.packs.entry(v.id).or_insert(new);
                    if new.verified > t.verified {
                        *t = new;
                    }
                }
                r.merged.push(obj.path);
            }
            Err(e) => {
                r.warnings.push(format!(
                    "verification record {} is damaged and was ignored ({e}); \
                     its packs count as never verified",
                    obj.path
                ));
                if !e.is_unsupported() {
                    r.garbage.push(obj.path);
                }
            }
        }
    }
    Ok(r)
}

/// Write a record of `times` and delete the records it replaces. Returns the
/// new record's name.
pub(crate) fn store(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    packs: &HashMap<Id, PackRecord>,
    replaces: &[String],
) -> Result<String, RecordError> {
    let mut packs: Vec<VerifiedPack> = packs
        .iter()
        .map(|(id, r)| VerifiedPack {
            id: *id,
            verified: r.verified,
            damaged: r.damaged,
        })
        .collect();
    packs.sort_by_key(|p| p.id);
    let payload = RecordPayload {
        version: RECORD_VERSION,
        packs,
    };
    let plain = postcard::to_allocvec(&payload)?;
    let sealed = seal_object(key, ObjectKind::VerifyRecord, &plain, 0)?;
    let path = object_path(Folder::Verify, &Id::of_object(&sealed));
    match backend.create(&path, sealed.into()) {
        Ok(()) | Err(lifeboat_store::Error::AlreadyExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    for old in replaces {
        if *old != path {
            backend.delete(old)?;
        }
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_store::ObjectStoreBackend;

    #[test]
    fn records_merge_and_damage_is_ignored() {
        let b: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let k = MasterKey::generate().unwrap();
        let (p1, p2) = (Id([1; 32]), Id([2; 32]));
        let at = |verified, damaged| PackRecord { verified, damaged };
        let a = store(
            &b,
            &k,
            &HashMap::from([(p1, at(10, false)), (p2, at(5, true))]),
            &[],
        )
        .unwrap();
        let c = store(&b, &k, &HashMap::from([(p2, at(20, false))]), &[]).unwrap();
        let r = load(&b, &k).unwrap();
        assert_eq!(
            r.packs,
            HashMap::from([(p1, at(10, false)), (p2, at(20, false))])
        );
        assert_eq!(r.merged.len(), 2);
        assert!(r.warnings.is_empty());

        // A damaged record is a warning, not an error.
        let mut bytes = b.get(&c).unwrap().to_vec();
        bytes[30] ^= 1;
        b.put(&c, bytes.into()).unwrap();
        let r = load(&b, &k).unwrap();
        assert_eq!(
            r.packs,
            HashMap::from([(p1, at(10, false)), (p2, at(5, true))])
        );
        assert_eq!(r.garbage, vec![c.clone()]);
        assert_eq!(r.warnings.len(), 1);

        // Another key cannot read it either, and says so.
        let other = MasterKey::generate().unwrap();
        let r = load(&b, &other).unwrap();
        assert!(r.packs.is_empty());
        assert_eq!(r.warnings.len(), 2);

        // Writing replaces what was merged.
        let n = store(
            &b,
            &k,
            &HashMap::from([(p1, at(30, false))]),
            &[a.clone(), c],
        )
        .unwrap();
        let left: Vec<String> = b
            .list(&Folder::Verify.prefix())
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .collect();
        assert_eq!(left, vec![n]);
    }
}
