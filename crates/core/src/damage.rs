//! Damage that costs only the object it is in: what a listing or an open
//! skipped, and why, as [`Warning`]s rather than errors.

use std::fmt;

use lifeboat_format::Id;

/// What a [`Warning`] is about, and so what deals with it
/// ([`WarningKind::remedy`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WarningKind {
    /// A snapshot that cannot be read, decrypted or decoded, or that does
    /// not hash to its name; left out of listings.
    DamagedSnapshot,
    /// A key slot that does not parse or names an unknown kdf or version;
    /// the other slots were tried.
    DamagedKeySlot,
    /// A key slot whose argon2id costs are outside the accepted bounds; it
    /// was not tried (no hashing was done), the other slots were.
    KeySlotParameters,
    /// An index segment that cannot be read; skipped.
    DamagedIndexSegment,
    /// A pack that no loaded index segment lists; its blobs were read from
    /// its header.
    UnindexedPack,
    /// A pack that no loaded index segment lists and whose header cannot
    /// be read.
    UnreadablePack,
    /// Reading the headers of unindexed packs stopped on a store error.
    IndexFallbackFailed,
    /// An object in a repository folder whose name is not an object id.
    StrayObject,
    /// A restore drill record that cannot be read, opened or decoded, or
    /// does not hash to its name; left out of `drills`.
    DamagedDrillRecord,
}

impl WarningKind {
    /// A stable name for scripts (`--json`): `damaged_snapshot`, ...
    pub fn name(self) -> &'static str {
        match self {
            WarningKind::DamagedSnapshot => "damaged_snapshot",
            WarningKind::DamagedKeySlot => "damaged_key_slot",
            WarningKind::KeySlotParameters => "key_slot_parameters",
            WarningKind::DamagedIndexSegment => "damaged_index_segment",
            WarningKind::UnindexedPack => "unindexed_pack",
            WarningKind::UnreadablePack => "unreadable_pack",
            WarningKind::IndexFallbackFailed => "index_fallback_failed",
            WarningKind::StrayObject => "stray_object",
            WarningKind::DamagedDrillRecord => "damaged_drill_record",
        }
    }

    /// What to run about it, for people.
    pub fn remedy(self) -> &'static str {
        match self {
            WarningKind::DamagedSnapshot => {
                "run `lifeboat check`, then `lifeboat repair snapshots` or `lifeboat forget` it"
            }
            WarningKind::DamagedKeySlot | WarningKind::KeySlotParameters => {
                "run `lifeboat check`; remove the slot with `lifeboat key remove` \
                 once another password opens the repository"
            }
            WarningKind::DamagedIndexSegment
            | WarningKind::UnindexedPack
            | WarningKind::UnreadablePack => {
                "run `lifeboat index rebuild` to make the repair permanent, \
                 and `lifeboat check` to see what is lost"
            }
            WarningKind::IndexFallbackFailed => "retry",
            WarningKind::StrayObject => {
                "nothing reads it; move it out of the repository (`lifeboat check` lists it)"
            }
            WarningKind::DamagedDrillRecord => {
                "that drill counts as not done; run `lifeboat drill` again and delete the object"
            }
        }
    }

    fn describe(self) -> &'static str {
        match self {
            WarningKind::DamagedSnapshot => "damaged snapshot skipped",
            WarningKind::DamagedKeySlot => "damaged key slot skipped",
            WarningKind::KeySlotParameters => {
                "key slot skipped: its argon2id costs are out of bounds"
            }
            WarningKind::DamagedIndexSegment => "damaged index segment skipped",
            WarningKind::UnindexedPack => "pack in no index segment, read from its header",
            WarningKind::UnreadablePack => "pack in no index segment, header unreadable",
            WarningKind::IndexFallbackFailed => "reading unindexed packs stopped",
            WarningKind::StrayObject => "not a repository object (its name is not an id); ignored",
            WarningKind::DamagedDrillRecord => "damaged drill record skipped",
        }
    }
}

/// Something skipped because it is damaged or does not belong: the
/// operation went on without it. Its [`source`](std::error::Error::source)
/// is the error that made it skip, where there was one.
#[derive(Debug)]
#[non_exhaustive]
pub struct Warning {
    /// Store path of the object concerned (`snapshots/<id>`, `keys/<id>`,
    /// ...); empty when it concerns no single object.
    pub object: String,
    /// What kind of damage.
    pub kind: WarningKind,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Warning {
    pub(crate) fn new(
        object: impl Into<String>,
        kind: WarningKind,
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Warning {
        Warning {
            object: object.into(),
            kind,
            cause,
        }
    }

    /// The error that made it skip, if any.
    pub fn into_cause(self) -> Option<Box<dyn std::error::Error + Send + Sync>> {
        self.cause
    }

    /// The object's id, when it is named by one.
    pub fn id(&self) -> Option<Id> {
        lifeboat_format::layout::id_of_path(&self.object)
    }

    pub(crate) fn from_index(w: lifeboat_index::IndexWarning) -> Warning {
        use lifeboat_index::IndexWarning as W;
        match w {
            W::DamagedSegment { path, source } => {
                Warning::new(path, WarningKind::DamagedIndexSegment, Some(source))
            }
            W::StrayName { path } => Warning::new(path, WarningKind::StrayObject, None),
            W::UnindexedPack { path, .. } => Warning::new(path, WarningKind::UnindexedPack, None),
            W::UnreadablePack { path, source } => {
                Warning::new(path, WarningKind::UnreadablePack, Some(Box::new(source)))
            }
            W::FallbackFailed { source } => {
                Warning::new("", WarningKind::IndexFallbackFailed, Some(source))
            }
            // A kind this build does not know: keep the index's words.
            other => Warning::new(
                other.path().unwrap_or_default().to_string(),
                WarningKind::IndexFallbackFailed,
                Some(Box::new(other)),
            ),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.object.is_empty() {
            write!(f, "{}: ", self.object)?;
        }
        // The cause last, as errors print theirs, so that a printer walking
        // `source()` can leave out a cause the text already ends with.
        write!(f, "{} ({})", self.kind.describe(), self.kind.remedy())?;
        match &self.cause {
            Some(c) => write!(f, ": {c}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for Warning {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause
            .as_deref()
            .map(|c| c as &(dyn std::error::Error + 'static))
    }
}

/// What a listing found: the items it could read, and a warning for each
/// object it skipped.
#[derive(Debug)]
#[non_exhaustive]
pub struct Listing<T> {
    /// The readable items.
    pub items: Vec<T>,
    /// One warning per object skipped.
    pub skipped: Vec<Warning>,
}

impl<T> Listing<T> {
    pub(crate) fn new(items: Vec<T>, skipped: Vec<Warning>) -> Listing<T> {
        Listing { items, skipped }
    }
}

/// The readable snapshots, oldest first, and the ones skipped.
pub type SnapshotList = Listing<(Id, lifeboat_format::Snapshot)>;
