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
    #[error("pack {pack}, blob {blob}: {reason}")]
    CorruptBlob {
        /// Pack id.
        pack: Id,
        /// Blob id.
        blob: Id,
        /// What was wrong.
        reason: String,
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
    /// Bad arguments (patterns, sizes).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The operation was stopped.
    #[error("interrupted")]
    Interrupted,
    /// An unexpected internal failure (a bug).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
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

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
