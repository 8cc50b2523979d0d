//! etcd snapshots for Lifeboat: read them from one member's
//! `Maintenance.Snapshot` gRPC stream or from a file, verify them as they
//! pass, and write restored ones atomically.
//!
//! A snapshot is what `etcdctl snapshot save` writes: etcd's bbolt database
//! followed by its sha256 (32 bytes). Verification checks the two bbolt meta
//! pages (magic, version, page size, FNV-1a checksum) as soon as they have
//! gone by, and at the end that the database is the size its meta page and
//! the server announced and that the trailer is its sha256. A
//! [`SnapshotReader`] turns a failed verification into a read error where
//! the stream would end, so a backup reading it fails instead of storing a
//! bad snapshot.
//!
//! This crate knows etcd and bbolt only; it does not touch repositories
//! (the `lifeboat` facade wires it to the backup engine).

mod bbolt;
mod client;
mod error;
mod restore;
mod verify;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use bbolt::{MAGIC as BBOLT_MAGIC, fnv64a};
pub use client::{Endpoint, ServerStatus, SnapshotStream};
pub use error::{Error, MetaProblem, Result, VerifyError};
pub use restore::SnapshotFile;
pub use verify::{SnapshotCheck, TRAILER, Verdict, Verified, VerifyingReader, verify_reader};

#[doc(hidden)]
pub use bbolt::meta_page;

/// Keys of the facts recorded in a snapshot's `source_meta`.
pub mod meta_keys {
    /// The store revision the snapshot holds (decimal).
    pub const REVISION: &str = "revision";
    /// Where the revision comes from: `snapshot-header` (the stream's
    /// header, etcd 3.6 and later: exact) or `status` (the member's status
    /// just before the snapshot: the snapshot holds at least that revision).
    pub const REVISION_SOURCE: &str = "revision_source";
    /// Bytes of the database, without the sha256 trailer (decimal).
    pub const DB_SIZE: &str = "db_size";
    /// sha256 of the database, the trailer (hex).
    pub const SHA256: &str = "sha256";
    /// etcd version of the member.
    pub const SERVER_VERSION: &str = "server_version";
    /// Member id (hex, as `etcdctl` prints it).
    pub const MEMBER_ID: &str = "member_id";
    /// Cluster id (hex).
    pub const CLUSTER_ID: &str = "cluster_id";
    /// The endpoint the snapshot was streamed from.
    pub const ENDPOINT: &str = "endpoint";
    /// The file the snapshot was read from.
    pub const FILE: &str = "file";
    /// The snapshot's name (`<prefix>-<node>-<unix time>`, as K3s and RKE2 name theirs).
    pub const NAME: &str = "name";
    /// The node name in the snapshot's name.
    pub const NODE: &str = "node";
}

/// What is known of a verified snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SnapshotFacts {
    /// The verified bytes.
    pub verified: Verified,
    /// The store revision (see [`meta_keys::REVISION_SOURCE`]); `None` for a file.
    pub revision: Option<i64>,
    /// Whether `revision` is the snapshot's own (from its stream header)
    /// rather than a lower bound taken from the status before it.
    pub revision_exact: bool,
    /// The member's status, for a stream.
    pub status: Option<ServerStatus>,
    /// The endpoint, for a stream.
    pub endpoint: Option<String>,
    /// The file, for a file.
    pub file: Option<PathBuf>,
}

impl SnapshotFacts {
    /// The facts as `source_meta` entries (keys in [`meta_keys`]).
    pub fn to_meta(&self) -> BTreeMap<String, String> {
        use meta_keys::*;
        let mut m = BTreeMap::new();
        m.insert(SHA256.into(), self.verified.sha256_hex());
        m.insert(DB_SIZE.into(), self.verified.db_size.to_string());
        if let Some(r) = self.revision {
            m.insert(REVISION.into(), r.to_string());
            let source = if self.revision_exact {
                "snapshot-header"
            } else {
                "status"
            };
            m.insert(REVISION_SOURCE.into(), source.into());
        }
        if let Some(s) = &self.status {
            m.insert(SERVER_VERSION.into(), s.version.clone());
            m.insert(MEMBER_ID.into(), format!("{:x}", s.member_id));
            m.insert(CLUSTER_ID.into(), format!("{:x}", s.cluster_id));
        }
        if let Some(e) = &self.endpoint {
            m.insert(ENDPOINT.into(), e.clone());
        }
        if let Some(f) = &self.file {
            m.insert(FILE.into(), f.display().to_string());
        }
        m
    }
}

/// Where a [`SnapshotReader`] leaves what it found, readable by whoever
/// holds a clone once the reader has reached the end.
#[derive(Debug, Clone, Default)]
pub struct Outcome(Arc<Mutex<Option<Result<SnapshotFacts, VerifyError>>>>);

impl Outcome {
    /// The facts of the verified snapshot, or why it failed; `None` until
    /// the reader has reached the end (or failed on a meta page).
    pub fn get(&self) -> Option<Result<SnapshotFacts, VerifyError>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, v: Result<SnapshotFacts, VerifyError>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
    }
}

enum Source {
    Stream(Box<SnapshotStream>),
    File(File),
}

impl Read for Source {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Source::Stream(s) => s.read(buf),
            Source::File(f) => f.read(buf),
        }
    }
}

/// An etcd snapshot, read from a member or a file, verified as it is read:
/// the bytes are `db || sha256(db)` exactly as `etcdctl snapshot save`
/// writes them, and a snapshot that fails verification is a read error
/// ([`io::ErrorKind::InvalidData`]) instead of an end.
pub struct SnapshotReader {
    inner: VerifyingReader<Source>,
    outcome: Outcome,
    announced_set: bool,
    endpoint: Option<String>,
    file: Option<PathBuf>,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("endpoint", &self.endpoint)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl SnapshotReader {
    /// Open the snapshot stream of the member at `ep`.
    pub fn connect(ep: &Endpoint) -> Result<SnapshotReader> {
        let stream = SnapshotStream::open(ep)?;
        let endpoint = Some(stream.endpoint().to_string());
        Ok(SnapshotReader {
            inner: VerifyingReader::new(Source::Stream(Box::new(stream))),
            outcome: Outcome::default(),
            announced_set: false,
            endpoint,
            file: None,
        })
    }

    /// Open a snapshot file (as `etcdctl snapshot save` writes).
    pub fn open_file(path: &Path) -> Result<SnapshotReader> {
        let f = File::open(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(SnapshotReader {
            inner: VerifyingReader::new(Source::File(f)),
            outcome: Outcome::default(),
            announced_set: false,
            endpoint: None,
            file: Some(path.to_path_buf()),
        })
    }

    /// A handle on the outcome.
    pub fn outcome(&self) -> Outcome {
        self.outcome.clone()
    }

    /// The member's status, for a stream.
    pub fn status(&self) -> Option<&ServerStatus> {
        match self.inner.get_ref() {
            Source::Stream(s) => Some(s.status()),
            Source::File(_) => None,
        }
    }

    fn conclude(&mut self) {
        let Some(v) = self.inner.verdict().get() else {
            return;
        };
        let facts = v.map(|verified| {
            let (status, revision, exact) = match self.inner.get_ref() {
                Source::Stream(s) => match s.header_revision() {
                    Some(r) => (Some(s.status().clone()), Some(r), true),
                    None => (Some(s.status().clone()), Some(s.status().revision), false),
                },
                Source::File(_) => (None, None, false),
            };
            SnapshotFacts {
                verified,
                revision,
                revision_exact: exact,
                status,
                endpoint: self.endpoint.clone(),
                file: self.file.clone(),
            }
        });
        self.outcome.set(facts);
    }
}

impl Read for SnapshotReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let res = self.inner.read(buf);
        if !self.announced_set {
            if let Source::Stream(s) = self.inner.get_ref() {
                if let Some(a) = s.announced_db_size() {
                    self.inner.expect_db_size(a);
                    self.announced_set = true;
                }
            }
        }
        match &res {
            Ok(0) | Err(_) => self.conclude(),
            Ok(_) => {}
        }
        res
    }
}
