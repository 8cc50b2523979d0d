use lifeboat_format::Id;

/// Errors from repository operations. Match on the variant; the message is
/// for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository at the location.
    #[error("repository {location} does not exist (run `lifeboat init` first)")]
    RepositoryNotFound {
        /// Where we looked.
        location: String,
    },
    /// `init` found a repository already there.
    #[error("repository {location} already exists; refusing to overwrite it")]
    AlreadyInitialized {
        /// Where.
        location: String,
    },
    /// No key slot opened with the password.
    #[error("wrong password: no key in the repository opens with it")]
    WrongPassword,
    /// No key slot opened with the password, and a slot was refused
    /// without trying it because its argon2id costs are out of bounds (so
    /// the password may be right for that slot).
    #[error(
        "key slot {slot} was not tried (its argon2id costs are refused before any hashing; \
         another password may open the repository): {source}"
    )]
    KeySlotParameters {
        /// Object path of the slot.
        slot: String,
        /// The bound it breaks ([`lifeboat_format::Error::KdfOutOfBounds`]).
        source: lifeboat_format::Error,
    },
    /// The snapshot asked for by id is damaged (unreadable, undecryptable,
    /// malformed, or not hashing to its name); listings skip it.
    #[error(
        "{object}: damaged snapshot (run `lifeboat check`, then `lifeboat repair snapshots`): \
         {source}"
    )]
    DamagedSnapshot {
        /// Object path of the snapshot.
        object: String,
        /// Why it cannot be read.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A format version this build cannot read.
    #[error("{0}")]
    UnsupportedVersion(lifeboat_format::Error),
    /// A metadata object failed to decrypt or decode.
    #[error("{object}: {source}")]
    Corrupt {
        /// Object path.
        object: String,
        /// What was wrong.
        source: lifeboat_format::Error,
    },
    /// A blob in a pack failed to read, decrypt or verify.
    #[error("pack {pack}, blob {blob}: {source}")]
    CorruptBlob {
        /// Pack id.
        pack: Id,
        /// Blob id.
        blob: Id,
        /// What was wrong.
        #[source]
        source: BlobDamage,
    },
    /// A blob the snapshot needs is in no index.
    #[error("blob {blob} is not in the index (data lost or index damaged)")]
    BlobNotFound {
        /// Blob id.
        blob: Id,
    },
    /// No snapshot matches.
    #[error("no snapshot matches {spec:?}")]
    SnapshotNotFound {
        /// What was asked for.
        spec: String,
    },
    /// More than one snapshot matches an id prefix.
    #[error("{spec:?} matches more than one snapshot: {}", matches.join(", "))]
    AmbiguousSnapshot {
        /// What was asked for.
        spec: String,
        /// Short ids of the candidates.
        matches: Vec<String>,
    },
    /// A path inside a snapshot does not exist.
    #[error("{path}: not found in snapshot")]
    PathNotFound {
        /// The path.
        path: String,
    },
    /// The key to remove is not in the repository.
    #[error("key {0} not found")]
    KeyNotFound(String),
    /// Removing the key would lock everyone out or removes the key in use.
    #[error("refusing to remove key {0}: it is the key in use (open with another password first)")]
    KeyInUse(String),
    /// Local file I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// File path.
        path: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
    /// The index could not be loaded.
    #[error(transparent)]
    Index(#[from] lifeboat_index::Error),
    /// Bad arguments (sizes, names).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An include or exclude pattern is not a valid glob.
    #[error("invalid argument: pattern {pattern:?}: {source}")]
    InvalidPattern {
        /// The pattern as given.
        pattern: String,
        /// Why the glob was rejected.
        source: globset::Error,
    },
    /// Chunk sizes the chunker does not accept.
    #[error("invalid argument: {0}")]
    InvalidChunkerParams(#[source] lifeboat_chunker::Error),
    /// Key derivation parameters (argon2id costs) that cannot make a key slot.
    #[error("invalid argument: {0}")]
    InvalidKdf(#[source] lifeboat_format::Error),
    /// Encoding, sealing or key material failed while writing: the random
    /// source, compression, a pack or tree that cannot be encoded.
    #[error("{what}: {source}")]
    Format {
        /// What was being made.
        what: &'static str,
        /// The format crate's error.
        source: lifeboat_format::Error,
    },
    /// The worker threads could not be started.
    #[error("starting worker threads: {0}")]
    ThreadPool(#[source] rayon::ThreadPoolBuildError),
    /// A pack upload failed, so the blobs of this run may not all be
    /// stored; the upload's own error is reported where it is known.
    #[error("an upload failed")]
    UploadFailed,
    /// The operation was stopped.
    #[error("interrupted")]
    Interrupted,
    /// A prune marked a pack this backup relies on and may delete it soon,
    /// so the backup wrote no snapshot; running it again stores what it
    /// needs anew (`docs/prune.md`).
    #[error(
        "pack {pack} that this backup uses was marked for deletion by a prune; no snapshot written, run the backup again"
    )]
    PruneConflict {
        /// The marked pack.
        pack: Id,
    },
    /// A failure injected by a test (feature `testing`).
    #[cfg(feature = "testing")]
    #[error("injected failure in stage {0:?}")]
    Injected(crate::failpoint::Stage),
    /// An unexpected internal failure (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

/// Why a blob could not be read back (the cause of [`Error::CorruptBlob`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobDamage {
    /// The index files the blob under the other blob type.
    #[error("indexed as {indexed:?}, expected {expected:?}")]
    WrongType {
        /// The type the index gives.
        indexed: lifeboat_format::BlobType,
        /// The type asked for.
        expected: lifeboat_format::BlobType,
    },
    /// The pack the index names is not in the store.
    #[error("pack is missing")]
    PackMissing,
    /// The pack ends before the blob does.
    #[error("pack is truncated ({len} bytes)")]
    PackTruncated {
        /// The pack's length.
        len: u64,
    },
    /// The store returned fewer bytes than asked for.
    #[error("short read")]
    ShortRead,
    /// The bytes failed to decrypt, decompress, verify or decode (boxed:
    /// keeps every `Result` of the crate small).
    #[error(transparent)]
    Format(Box<lifeboat_format::Error>),
}

impl From<lifeboat_format::Error> for BlobDamage {
    fn from(e: lifeboat_format::Error) -> Self {
        BlobDamage::Format(Box::new(e))
    }
}

impl Error {
    /// Whether trying the operation again may succeed: the store or the
    /// index's store was unavailable, an index segment vanished while it was
    /// read, or local I/O was interrupted or timed out. Corrupt data, a
    /// wrong password or bad arguments are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::Index(e) => e.is_transient(),
            Error::Io { source, .. } => io_is_transient(source),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }

    pub(crate) fn format(what: &'static str, source: lifeboat_format::Error) -> Error {
        Error::Format { what, source }
    }

    pub(crate) fn corrupt_blob(pack: Id, blob: Id, source: impl Into<BlobDamage>) -> Error {
        Error::CorruptBlob {
            pack,
            blob,
            source: source.into(),
        }
    }

    /// A failed read of a pack: a missing or truncated pack is damage to
    /// the blob read from it, anything else is the store's failure.
    pub(crate) fn pack_read(pack: Id, blob: Id, e: lifeboat_store::Error) -> Error {
        match e {
            e if e.is_not_found() => Error::corrupt_blob(pack, blob, BlobDamage::PackMissing),
            lifeboat_store::Error::Truncated { len, .. } => {
                Error::corrupt_blob(pack, blob, BlobDamage::PackTruncated { len })
            }
            other => Error::Store(other),
        }
    }

    pub(crate) fn corrupt(object: impl Into<String>, source: lifeboat_format::Error) -> Error {
        match source {
            lifeboat_format::Error::UnsupportedVersion { .. } => Error::UnsupportedVersion(source),
            source => Error::Corrupt {
                object: object.into(),
                source,
            },
        }
    }
}

fn io_is_transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::Interrupted
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::WouldBlock
    )
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::{BlobDamage, Error};
    use lifeboat_format::Id;

    fn store_error(unavailable: bool) -> lifeboat_store::Error {
        let cause = std::io::Error::other("503");
        if unavailable {
            lifeboat_store::Error::unavailable("x", cause)
        } else {
            lifeboat_store::Error::permission_denied("x", cause)
        }
    }

    #[test]
    fn only_errors_a_retry_may_cure_are_transient() {
        let io = |kind| Error::io("/f", std::io::Error::from(kind));
        assert!(Error::Store(store_error(true)).is_transient());
        assert!(!Error::Store(store_error(false)).is_transient());
        assert!(Error::Index(lifeboat_index::Error::Store(store_error(true))).is_transient());
        assert!(
            Error::Index(lifeboat_index::Error::SegmentVanished {
                segment: "ab".into()
            })
            .is_transient()
        );
        assert!(io(std::io::ErrorKind::TimedOut).is_transient());
        assert!(io(std::io::ErrorKind::Interrupted).is_transient());
        assert!(!io(std::io::ErrorKind::NotFound).is_transient());
        assert!(!Error::WrongPassword.is_transient());
        assert!(
            !Error::corrupt_blob(Id::default(), Id::default(), BlobDamage::ShortRead)
                .is_transient()
        );
    }

    #[test]
    fn a_corrupt_blob_keeps_its_cause() {
        let e = Error::corrupt_blob(
            Id::default(),
            Id::default(),
            lifeboat_format::Error::WrongPassword,
        );
        let cause = std::error::Error::source(&e).expect("no cause");
        let Some(BlobDamage::Format(format)) = cause.downcast_ref::<BlobDamage>() else {
            panic!("cause is not the format error: {cause:?}");
        };
        assert!(matches!(**format, lifeboat_format::Error::WrongPassword));
    }
}
