//! What a prune is asked to do, how it reports, and how it fails.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use lifeboat_format::Id;

/// Errors from garbage collection.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The repository failed (reading snapshots or trees, for instance).
    #[error(transparent)]
    Core(#[from] lifeboat_core::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
    /// The index could not be read or written.
    #[error(transparent)]
    Index(#[from] lifeboat_index::Error),
    /// A prune object or pack could not be encoded, decoded or opened.
    #[error("{what}: {source}")]
    Format {
        /// The object concerned.
        what: String,
        /// What was wrong.
        source: lifeboat_format::Error,
    },
    /// A tree that a snapshot references is not indexed: the set of used
    /// blobs cannot be known, so nothing is deleted.
    #[error(
        "tree {tree} is not in the index; run `lifeboat check` (and `index rebuild`) before pruning"
    )]
    TreeNotIndexed {
        /// The tree blob.
        tree: Id,
    },
    /// A snapshot could not be read: what it references is unknown, so
    /// nothing may be deleted until it is repaired or forgotten.
    #[error(
        "{object} cannot be read, so what it uses is unknown; nothing was pruned \
         (run `lifeboat check`, then `lifeboat repair snapshots` or `lifeboat forget` it)"
    )]
    DamagedSnapshot {
        /// The snapshot object.
        object: String,
    },
    /// Another prune holds the lock.
    #[error("another prune holds {path} (host {hostname:?}) until unix time {expires}")]
    Locked {
        /// The lock object.
        path: String,
        /// Its holder's host.
        hostname: String,
        /// When it expires.
        expires: u64,
    },
    /// Every thread storing repacked packs stopped; the error of the one
    /// that failed is reported instead where there is one.
    #[error("the threads storing repacked packs stopped")]
    WritersStopped,
    /// This prune's lock expired or was taken over; it stopped before
    /// changing anything more.
    #[error("the prune lock {path} expired or was taken over; stopped")]
    LockLost {
        /// The lock object.
        path: String,
    },
    /// The store cannot create objects exclusively (an S3 server without
    /// conditional writes), so two prunes could both take the lock.
    #[error("{location}: the store cannot create objects exclusively, so prune cannot lock it")]
    NoExclusiveCreate {
        /// The repository.
        location: String,
    },
    /// The index changed under the prune (a segment it read was deleted by a
    /// concurrent `index compact`); run it again.
    #[error("index segment {segment} vanished while prune read it; run prune again")]
    IndexChanged {
        /// The segment.
        segment: Id,
    },
}

impl Error {
    /// Whether running the prune again later may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::Index(e) => e.is_transient(),
            Error::Locked { .. } | Error::LockLost { .. } | Error::IndexChanged { .. } => true,
            _ => false,
        }
    }
}

/// Result alias for garbage collection.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a prune takes the time from: the system clock, or (tests) any
/// function giving Unix seconds.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<dyn Fn() -> u64 + Send + Sync>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that asks `f` for Unix seconds.
    pub fn from_fn(f: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock(Some(Arc::new(f)))
    }

    /// Now, in Unix seconds.
    pub fn now(&self) -> u64 {
        match &self.0 {
            Some(f) => f(),
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Clock(custom)"
        } else {
            "Clock(system)"
        })
    }
}

/// How much unused space may stay in partly used packs.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum MaxUnused {
    /// A share of the repository's size after the prune, in percent.
    Percent(f64),
    /// A number of bytes.
    Bytes(u64),
    /// Any amount: repack nothing for its unused space.
    Unlimited,
}

/// How to prune. `Default` is restic's: 5% unused allowed, no repack size
/// limit, a 24 h grace period.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// How long an unused pack or leftover stays marked before it is
    /// deleted (default 24 h).
    pub grace: Duration,
    /// Delete unused packs and leftovers at once, without marking them
    /// first. Only when no backup runs against the repository.
    pub instant_delete: bool,
    /// Unused space allowed to stay in partly used packs.
    pub max_unused: MaxUnused,
    /// Repack at most this many bytes of packs (`None`: no limit).
    pub max_repack_size: Option<u64>,
    /// Repack packs smaller than half the target pack size.
    pub repack_small: bool,
    /// Repack packs holding uncompressed blobs, compressing them (when the
    /// repository compresses).
    pub repack_uncompressed: bool,
    /// Plan only: change nothing.
    pub dry_run: bool,
    /// How long the prune lock is valid before it must be renewed.
    pub lock_ttl: Duration,
    /// Where the time comes from.
    pub clock: Clock,
    /// Host name recorded in the lock (default: empty).
    pub hostname: String,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            grace: Duration::from_secs(24 * 3600),
            instant_delete: false,
            max_unused: MaxUnused::Percent(5.0),
            max_repack_size: None,
            repack_small: false,
            repack_uncompressed: false,
            dry_run: false,
            lock_ttl: Duration::from_secs(3600),
            clock: Clock::system(),
            hostname: String::new(),
        }
    }
}

/// Counters a caller can watch while a prune runs.
#[derive(Debug, Default)]
pub struct PruneProgress {
    /// Snapshots whose trees were walked.
    pub snapshots_done: AtomicU64,
    /// Snapshots to walk.
    pub snapshots_total: AtomicU64,
    /// Trees read.
    pub trees_done: AtomicU64,
    /// Packs repacked so far.
    pub packs_repacked: AtomicU64,
    /// Objects deleted so far.
    pub objects_deleted: AtomicU64,
}
