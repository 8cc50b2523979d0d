//! What a check found: findings by [`Category`], each naming the snapshots
//! it affects, and the counters of what was checked.

use serde::Serialize;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The repository is damaged: data or an access path is lost or at risk.
    Damage,
    /// Worth knowing, harmless: a concurrent or interrupted backup leaves
    /// these, and prune cleans them up.
    Notice,
}

/// Kinds of finding. Each is documented, with its cause and remedy, in
/// `docs/check.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// A key slot does not hash to its name or is not a valid slot: the
    /// password it held no longer opens the repository.
    CorruptKeySlot,
    /// A snapshot object cannot be read, decrypted or decoded.
    DamagedSnapshot,
    /// An indexed pack is not in the store.
    MissingPack,
    /// A pack's size differs from its index entry (usually truncated).
    WrongSizePack,
    /// A pack is in no index but holds blobs that snapshots need: the index
    /// segment that listed it is missing. `lifeboat index rebuild` recovers it.
    MissingIndexSegment,
    /// A tree blob that a snapshot needs is in no index and no pack.
    MissingTree,
    /// A data blob that a snapshot needs is in no index and no pack.
    MissingBlob,
    /// A pack's header cannot be decrypted or disagrees with the index.
    CorruptPackHeader,
    /// A blob fails to decrypt, decompress or verify against its id.
    CorruptBlob,
    /// A pack's bytes do not hash to its name, though its header and blobs
    /// verify.
    CorruptPack,
    /// A pack in the store is in no index and nothing needs its blobs (left
    /// by an interrupted or running backup).
    OrphanPack,
    /// A blob is stored in more than one pack (two backups stored it at the
    /// same time).
    DuplicateBlob,
}

impl Category {
    /// Damage or notice.
    pub fn severity(self) -> Severity {
        match self {
            Category::OrphanPack | Category::DuplicateBlob => Severity::Notice,
            _ => Severity::Damage,
        }
    }

    /// Whether a snapshot that references the object cannot be restored
    /// completely now.
    pub fn is_loss(self) -> bool {
        matches!(
            self,
            Category::DamagedSnapshot
                | Category::MissingPack
                | Category::WrongSizePack
                | Category::MissingIndexSegment
                | Category::MissingTree
                | Category::MissingBlob
                | Category::CorruptBlob
        )
    }

    /// The snake_case name used in text and JSON output.
    pub fn name(self) -> &'static str {
        match self {
            Category::CorruptKeySlot => "corrupt_key_slot",
            Category::DamagedSnapshot => "damaged_snapshot",
            Category::MissingPack => "missing_pack",
            Category::WrongSizePack => "wrong_size_pack",
            Category::MissingIndexSegment => "missing_index_segment",
            Category::MissingTree => "missing_tree",
            Category::MissingBlob => "missing_blob",
            Category::CorruptPackHeader => "corrupt_pack_header",
            Category::CorruptBlob => "corrupt_blob",
            Category::CorruptPack => "corrupt_pack",
            Category::OrphanPack => "orphan_pack",
            Category::DuplicateBlob => "duplicate_blob",
        }
    }

    /// One line saying what the category means.
    pub fn description(self) -> &'static str {
        match self {
            Category::CorruptKeySlot => {
                "key slots that are damaged (their password no longer opens the repository)"
            }
            Category::DamagedSnapshot => "snapshot objects that cannot be read",
            Category::MissingPack => "indexed packs missing from the store",
            Category::WrongSizePack => "packs whose size differs from the index (truncated)",
            Category::MissingIndexSegment => {
                "packs in no index that hold needed data (run `lifeboat index rebuild`)"
            }
            Category::MissingTree => "directory listings (tree blobs) that are nowhere",
            Category::MissingBlob => "file data (data blobs) that is nowhere",
            Category::CorruptPackHeader => {
                "pack headers that are unreadable or disagree with the index"
            }
            Category::CorruptBlob => "blobs that fail to decrypt or verify",
            Category::CorruptPack => "packs whose bytes do not hash to their name",
            Category::OrphanPack => "packs in no index that nothing needs (prune removes them)",
            Category::DuplicateBlob => {
                "blobs stored in more than one pack (prune removes the extra copies)"
            }
        }
    }
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Kind of finding.
    pub category: Category,
    /// Damage or notice.
    pub severity: Severity,
    /// The object concerned: a pack, blob or snapshot id, or a key slot's
    /// path (`keys/<id>`).
    pub object: String,
    /// Details.
    pub message: String,
    /// Snapshots that reference the object, by id.
    pub snapshots: Vec<String>,
}

/// The outcome of a check, by exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Everything checked, no damage (notices allowed).
    Clean,
    /// No damage found, but some objects could not be read because the store
    /// failed; see [`CheckReport::unchecked`].
    Incomplete,
    /// Damage found.
    Damaged,
}

/// What a `--read-data` run read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DataStats {
    /// Packs selected for reading.
    pub packs_selected: u64,
    /// Packs read and verified.
    pub packs_read: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Blobs decrypted and verified.
    pub blobs_read: u64,
    /// Resumable mode: packs skipped because they were verified recently.
    pub packs_fresh: u64,
    /// Resumable mode: packs due but left for a later run (time or count limit).
    pub packs_left: u64,
    /// Resumable mode: the verification record written.
    pub record: Option<String>,
    /// Seconds spent reading and verifying.
    pub seconds: f64,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Findings, by category then object.
    pub problems: Vec<Problem>,
    /// Snapshots that cannot be restored completely, by id.
    pub damaged_snapshots: Vec<String>,
    /// Objects that could not be checked because the store failed.
    pub unchecked: Vec<String>,
    /// Things the user should know that are not findings (a damaged
    /// verification record, for example).
    pub warnings: Vec<String>,
    /// Key slots checked.
    pub keys: u64,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Trees walked.
    pub trees: u64,
    /// Packs listed in the store.
    pub packs: u64,
    /// Index segments in the store.
    pub index_segments: u64,
    /// The data pass, when asked for.
    pub data: Option<DataStats>,
}

impl CheckReport {
    /// Whether any finding is damage.
    pub fn has_damage(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Damage)
    }

    /// Whether nothing at all was found and everything was checked.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.unchecked.is_empty()
    }

    /// Clean, incomplete or damaged.
    pub fn verdict(&self) -> Verdict {
        if self.has_damage() {
            Verdict::Damaged
        } else if !self.unchecked.is_empty() {
            Verdict::Incomplete
        } else {
            Verdict::Clean
        }
    }

    /// Findings of one category.
    pub fn of(&self, category: Category) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.category == category)
    }
}
