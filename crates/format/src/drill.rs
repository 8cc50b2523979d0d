//! Restore drill records (`drills/<id>`, `docs/format.md` §21): what one
//! `lifeboat drill` proved about one snapshot, and how long it took.

use serde::{Deserialize, Serialize};

use crate::object::{ObjectKind, open_object, seal_object};
use crate::{Error, Id, MasterKey, Result, SourceKind};

/// The only record version this crate reads and writes.
pub const DRILL_RECORD_VERSION: u32 = 1;

/// One restore drill: a snapshot restored into scratch space and verified
/// against itself. Stored as JSON, sealed as a metadata object of kind 7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRecord {
    /// [`DRILL_RECORD_VERSION`].
    pub version: u32,
    /// Start of the drill, RFC 3339.
    pub time: String,
    /// The snapshot drilled.
    pub snapshot: Id,
    /// Its `time`.
    pub snapshot_time: String,
    /// Its `hostname`: with `paths` and `tags`, which source it was.
    pub hostname: String,
    /// Its `paths`.
    pub paths: Vec<String>,
    /// Its `tags`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Its `source`.
    pub source: SourceKind,
    /// Host the drill ran on.
    #[serde(default)]
    pub drill_host: String,
    /// Whether every check passed.
    pub ok: bool,
    /// What failed, one line each; empty when `ok`.
    #[serde(default)]
    pub problems: Vec<String>,
    /// The checks that ran (`content`, `metadata`, `etcd-trailer`, ...).
    #[serde(default)]
    pub checks: Vec<String>,
    /// Entries restored (files, directories, others).
    #[serde(default)]
    pub entries: u64,
    /// Content bytes restored.
    #[serde(default)]
    pub bytes: u64,
    /// Seconds from the start of the restore to its first content byte.
    #[serde(default)]
    pub ttfb_secs: f64,
    /// Seconds the restore took: the recovery time achieved.
    pub restore_secs: f64,
    /// Seconds the verification took.
    #[serde(default)]
    pub verify_secs: f64,
    /// Program that ran the drill.
    #[serde(default)]
    pub program: String,
}

impl DrillRecord {
    /// The sealed object: JSON, payload encoding 0.
    pub fn encode(&self, key: &MasterKey) -> Result<Vec<u8>> {
        let json =
            serde_json::to_vec(self).map_err(|e| crate::error::malformed("drill record", e))?;
        seal_object(key, ObjectKind::DrillRecord, &json, 0)
    }

    /// Open and decode a sealed record; refuses another `version`.
    pub fn decode(key: &MasterKey, stored: &[u8]) -> Result<DrillRecord> {
        let json = open_object(key, ObjectKind::DrillRecord, stored)?;
        let r: DrillRecord = serde_json::from_slice(&json)
            .map_err(|e| crate::error::malformed("drill record", e))?;
        if r.version != DRILL_RECORD_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "drill record",
                found: r.version,
                supported: DRILL_RECORD_VERSION,
            });
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_are_not_snapshots() {
        let k = MasterKey::generate().unwrap();
        let r = DrillRecord {
            version: 1,
            time: "2026-12-01T10:00:00Z".into(),
            snapshot: Id([7; 32]),
            snapshot_time: "2026-12-01T09:00:00Z".into(),
            hostname: "h".into(),
            paths: vec!["/data".into()],
            tags: vec![],
            source: SourceKind::Fs,
            drill_host: "d".into(),
            ok: false,
            problems: vec!["x".into()],
            checks: vec!["content".into()],
            entries: 3,
            bytes: 10,
            ttfb_secs: 0.25,
            restore_secs: 1.5,
            verify_secs: 0.5,
            program: String::new(),
        };
        let sealed = r.encode(&k).unwrap();
        assert_eq!(DrillRecord::decode(&k, &sealed).unwrap(), r);
        assert!(crate::Snapshot::decode(&k, &sealed).is_err());
        let v2 = DrillRecord { version: 2, ..r };
        assert!(matches!(
            DrillRecord::decode(&k, &v2.encode(&k).unwrap()),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
    }
}
