//! Why a check or a repair could not run, and why an object's bytes are
//! wrong.

use lifeboat_format::Id;

/// Errors that stop a check (or a repair) from running at all. Damage is
/// never an error: it is reported in [`CheckReport`](crate::CheckReport).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
    /// The repository could not be read.
    #[error(transparent)]
    Core(#[from] lifeboat_core::Error),
    /// The index could not be written or reloaded (repair).
    #[error(transparent)]
    Index(#[from] lifeboat_index::Error),
    /// Resumable mode ([`Resume`](crate::Resume)) was asked for without the
    /// data pass.
    #[error("invalid options: --max-age, --max-duration and --max-packs need --read-data")]
    ResumeWithoutReadData,
    /// Resumable mode was combined with a [`Subset`](crate::Subset) other
    /// than `All`.
    #[error("invalid options: resumable verification cannot be combined with --read-data-subset")]
    ResumeWithSubset,
    /// The operating system's random source failed (the data pass draws its
    /// random subsets from it).
    #[error("cannot draw a random subset: {source}")]
    Random {
        /// What failed.
        source: lifeboat_format::Error,
    },
    /// Stopped through [`CheckProgress::cancel`](crate::CheckProgress::cancel).
    #[error("interrupted")]
    Interrupted,
    /// Repair refuses to run while data that it would drop can still be
    /// recovered by rebuilding the index.
    #[error(
        "{packs} pack(s) hold data that snapshots need but are in no index; \
         run `lifeboat index rebuild` first, then repair what is still lost"
    )]
    IndexIncomplete {
        /// Packs that are in no index but hold needed blobs.
        packs: usize,
    },
    /// Repair refuses to run on a check that could not read everything: what
    /// it would drop is then unknown.
    #[error(
        "repair: the check could not read everything ({}); nothing was changed, try again",
        unchecked.join("; ")
    )]
    CheckIncomplete {
        /// The objects the check could not read, with why.
        unchecked: Vec<String>,
    },
    /// Repair needs a tree that no pack holds any more.
    #[error("repair: tree {tree} cannot be read")]
    TreeLost {
        /// The tree's id.
        tree: Id,
    },
    /// Repair read a tree whose bytes are wrong.
    #[error("repair: tree {tree}: {source}")]
    CorruptTree {
        /// The tree's id.
        tree: Id,
        /// What is wrong with it.
        source: Corruption,
    },
    /// An index segment that repair must replace cannot be decoded.
    #[error("repair: {path}: {source}")]
    CorruptSegment {
        /// The segment's store path.
        path: String,
        /// What is wrong with it.
        source: lifeboat_format::Error,
    },
    /// Repair could not encode or seal an object it writes (a tree, a blob,
    /// a pack).
    #[error("repair: {what}: {source}")]
    Encode {
        /// What was being written.
        what: &'static str,
        /// What failed.
        source: lifeboat_format::Error,
    },
}

impl Error {
    /// Whether running the check (or repair) again later may succeed: the
    /// store, or the store underneath the repository or index, failed in a
    /// way it reports as temporary, or the check could not read everything.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) => e.is_transient(),
            Error::Core(e) => e.is_transient(),
            Error::Index(e) => e.is_transient(),
            Error::CheckIncomplete { .. } => true,
            _ => false,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why the bytes of an object are wrong (they were read; they do not
/// verify).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Corruption {
    /// Decryption, decompression, decoding or the id check failed.
    #[error(transparent)]
    Format(#[from] lifeboat_format::Error),
    /// A pack shorter than its trailer.
    #[error("pack of {size} bytes is too short")]
    PackTooShort {
        /// The pack's size.
        size: u64,
    },
    /// A pack trailer names a header longer than the pack.
    #[error("header length {header} does not fit in a pack of {size} bytes")]
    HeaderTooLong {
        /// The header length the trailer gives.
        header: u64,
        /// The pack's size.
        size: u64,
    },
    /// An object's bytes do not hash to the name it is stored under.
    #[error("content does not hash to its name")]
    NameMismatch,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transient_store_failures_are_transient_through_every_wrapper() {
        let unavailable = || lifeboat_store::Error::unavailable("x", std::io::Error::other("503"));
        assert!(Error::Store(unavailable()).is_transient());
        assert!(Error::Core(lifeboat_core::Error::Store(unavailable())).is_transient());
        assert!(Error::Index(lifeboat_index::Error::Store(unavailable())).is_transient());
        assert!(
            Error::Index(lifeboat_index::Error::SegmentVanished {
                segment: "x".into()
            })
            .is_transient()
        );
        let denied = lifeboat_store::Error::permission_denied("x", std::io::Error::other("403"));
        assert!(!Error::Store(denied).is_transient());
        assert!(!Error::Interrupted.is_transient());
        assert!(!Error::ResumeWithSubset.is_transient());
    }

    #[test]
    fn causes_are_kept() {
        use std::error::Error as _;
        let e = Error::CorruptTree {
            tree: Id([1; 32]),
            source: Corruption::NameMismatch,
        };
        let cause = e.source().map(ToString::to_string);
        assert_eq!(cause.as_deref(), Some("content does not hash to its name"));
    }
}
