//! The facade's error: the kinds an embedding tool acts on (no repository,
//! wrong password, stopped) as variants of their own, everything else as the
//! error of the crate that failed, kept whole as the cause.

/// Errors from the facade. Match on the variant; the message is for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No repository at the location.
    #[error("repository {location} does not exist (run `lifeboat init` first)")]
    RepositoryNotFound {
        /// Where we looked.
        location: String,
    },
    /// No key slot opened with the password.
    #[error("wrong password: no key in the repository opens with it")]
    WrongPassword,
    /// The operation was stopped through its progress handle.
    #[error("interrupted")]
    Interrupted,
    /// The callback given to [`Repository::walk`](crate::Repository::walk)
    /// failed, which stopped the walk.
    #[error("the tree walk was stopped: {0}")]
    Visit(#[source] std::io::Error),
    /// The repository engine failed (damage, a missing snapshot or path,
    /// local I/O, bad arguments); see [`RepositoryError`](crate::RepositoryError).
    #[error(transparent)]
    Repository(lifeboat_core::Error),
    /// `check` or `repair` could not run; see [`CheckError`](crate::CheckError).
    #[error(transparent)]
    Check(lifeboat_check::Error),
    /// `forget` refused its options or stopped while deleting; see
    /// [`ForgetError`](crate::ForgetError).
    #[error(transparent)]
    Forget(lifeboat_prune::ForgetError),
    /// `prune` could not run or stopped: another prune holds the lock
    /// ([`PruneError::Locked`](crate::PruneError::Locked)), a snapshot is
    /// unreadable, the index is incomplete, ...; see
    /// [`PruneError`](crate::PruneError), whose `is_transient` says whether
    /// a later run may succeed.
    #[error(transparent)]
    Prune(lifeboat_prune::PruneError),
    /// Index maintenance failed; see [`IndexError`](crate::IndexError).
    #[error(transparent)]
    Index(lifeboat_index::Error),
    /// The store failed, or its location could not be parsed; see
    /// [`StoreError`](crate::StoreError).
    #[error(transparent)]
    Store(lifeboat_store::Error),
    /// etcd could not be reached, or an etcd snapshot file could not be
    /// read or written; see [`EtcdError`](crate::EtcdError).
    #[error(transparent)]
    Etcd(lifeboat_etcd::Error),
    /// An etcd snapshot failed verification (bbolt meta pages, size, sha256
    /// trailer): no snapshot was stored, no file was written.
    #[error("{what}: the etcd snapshot failed verification")]
    EtcdVerify {
        /// The endpoint or file.
        what: String,
        /// What is wrong with it.
        #[source]
        source: lifeboat_etcd::VerifyError,
    },
    /// The operation does not apply to this snapshot, or an option is
    /// invalid (an etcd restore of a file-tree snapshot, a bad time).
    #[error("{0}")]
    InvalidArgument(String),
    /// A policy file (`lifeboat.toml`) that does not parse.
    #[error(transparent)]
    Policy(#[from] crate::policy::PolicyError),
    /// A local file or folder the operation needs (scratch space, a
    /// metrics file).
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

impl Error {
    /// The store's failure inside this error, whichever operation met it:
    /// for telling refused credentials
    /// ([`StoreError::PermissionDenied`](crate::StoreError::PermissionDenied))
    /// or an unreachable store
    /// ([`StoreError::Unavailable`](crate::StoreError::Unavailable)) from
    /// other failures without reading messages.
    pub fn store_error(&self) -> Option<&lifeboat_store::Error> {
        fn index(e: &lifeboat_index::Error) -> Option<&lifeboat_store::Error> {
            match e {
                lifeboat_index::Error::Store(s) => Some(s),
                _ => None,
            }
        }
        fn core(e: &lifeboat_core::Error) -> Option<&lifeboat_store::Error> {
            match e {
                lifeboat_core::Error::Store(s) => Some(s),
                lifeboat_core::Error::Index(i) => index(i),
                _ => None,
            }
        }
        match self {
            Error::Store(s) => Some(s),
            Error::Repository(c) => core(c),
            Error::Index(i) => index(i),
            Error::Check(lifeboat_check::Error::Store(s)) => Some(s),
            Error::Check(lifeboat_check::Error::Index(i)) => index(i),
            Error::Forget(lifeboat_prune::ForgetError::Delete { source, .. }) => core(source),
            Error::Prune(lifeboat_prune::PruneError::Store(s)) => Some(s),
            Error::Prune(lifeboat_prune::PruneError::Index(i)) => index(i),
            _ => None,
        }
    }
}

/// Result alias for the facade.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<lifeboat_core::Error> for Error {
    fn from(e: lifeboat_core::Error) -> Error {
        match e {
            lifeboat_core::Error::RepositoryNotFound { location } => {
                Error::RepositoryNotFound { location }
            }
            lifeboat_core::Error::WrongPassword => Error::WrongPassword,
            lifeboat_core::Error::Interrupted => Error::Interrupted,
            e => Error::Repository(e),
        }
    }
}

impl From<lifeboat_check::Error> for Error {
    fn from(e: lifeboat_check::Error) -> Error {
        match e {
            lifeboat_check::Error::Core(c) => c.into(),
            lifeboat_check::Error::Interrupted => Error::Interrupted,
            e => Error::Check(e),
        }
    }
}

impl From<lifeboat_prune::ForgetError> for Error {
    fn from(e: lifeboat_prune::ForgetError) -> Error {
        match e {
            // Loading the snapshots failed in the engine: the engine's kind
            // (wrong password, missing repository, ...) is what callers match.
            lifeboat_prune::ForgetError::Load(c) => (*c).into(),
            e => Error::Forget(e),
        }
    }
}

impl From<lifeboat_prune::PruneError> for Error {
    fn from(e: lifeboat_prune::PruneError) -> Error {
        match e {
            // The engine's kinds (wrong password, interrupted, ...) are what
            // callers match, as for the other operations.
            lifeboat_prune::PruneError::Core(c) => c.into(),
            e => Error::Prune(e),
        }
    }
}

impl From<lifeboat_index::Error> for Error {
    fn from(e: lifeboat_index::Error) -> Error {
        Error::Index(e)
    }
}

impl From<lifeboat_store::Error> for Error {
    fn from(e: lifeboat_store::Error) -> Error {
        Error::Store(e)
    }
}

impl From<lifeboat_etcd::Error> for Error {
    fn from(e: lifeboat_etcd::Error) -> Error {
        match e {
            lifeboat_etcd::Error::Verify { path, source } => {
                Error::EtcdVerify { what: path, source }
            }
            e => Error::Etcd(e),
        }
    }
}
