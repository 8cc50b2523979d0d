//! The state both passes record into: what the pack listing, the index and
//! the pack headers say, what the data pass found, and the findings so far.
//! Also the reads both passes share (a blob, a pack header) and the lookup
//! that says where a blob can be read and which findings concern it.

use lifeboat_core::internals::RepositoryInternals as _;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use lifeboat_core::Repository;
use lifeboat_format::layout::{Folder, object_path};
use lifeboat_format::{
    BlobFlags, BlobType, Id, MasterKey, PACK_TRAILER_LEN, PackHeaderEntry, decode_pack_header,
    open_blob, parse_pack_trailer,
};
use lifeboat_index::BlobLocation;
use lifeboat_store::Backend;

use crate::error::Corruption;
use crate::report::{Category, CheckReport, Problem};

/// Where a blob's envelope is, from the index or from a pack header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Loc {
    pub pack: Id,
    pub blob_type: BlobType,
    pub flags: BlobFlags,
    pub offset: u32,
    pub stored_len: u32,
    pub raw_len: u32,
}

impl From<BlobLocation> for Loc {
    fn from(l: BlobLocation) -> Loc {
        Loc {
            pack: l.pack,
            blob_type: l.blob_type,
            flags: l.flags,
            offset: l.offset,
            stored_len: l.stored_len,
            raw_len: l.raw_len,
        }
    }
}

impl Loc {
    pub fn from_header(pack: Id, e: &PackHeaderEntry) -> Loc {
        Loc {
            pack,
            blob_type: e.blob_type,
            flags: e.flags,
            offset: e.offset,
            stored_len: e.stored_len,
            raw_len: e.raw_len,
        }
    }

    pub fn end(&self) -> u64 {
        u64::from(self.offset) + u64::from(self.stored_len)
    }
}

/// The store path of pack `id`.
pub(crate) fn pack_path(id: &Id) -> String {
    object_path(Folder::Data, id)
}

/// What the listing and the index say about one pack.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PackState {
    /// Size in the store listing, if listed.
    pub listed: Option<u64>,
    /// Size in the index, if indexed.
    pub indexed: Option<u64>,
}

/// A finding attached to a blob or tree: its category and the object the
/// finding is about (a pack or blob id).
pub(crate) type Mark = (Category, Id);

/// Why an object could not be read.
#[derive(Debug)]
pub(crate) enum ReadErr {
    /// The object is not in the store (any more).
    NotFound(lifeboat_store::Error),
    /// The object is shorter than the range asked for.
    Truncated(lifeboat_store::Error),
    /// The bytes are there but wrong.
    Corrupt(Corruption),
    /// The store failed; nothing is known about the bytes.
    Store(lifeboat_store::Error),
}

impl std::fmt::Display for ReadErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadErr::Corrupt(e) => e.fmt(f),
            ReadErr::NotFound(e) | ReadErr::Truncated(e) | ReadErr::Store(e) => e.fmt(f),
        }
    }
}

impl From<lifeboat_store::Error> for ReadErr {
    fn from(e: lifeboat_store::Error) -> ReadErr {
        match e {
            e @ lifeboat_store::Error::NotFound { .. } => ReadErr::NotFound(e),
            e @ lifeboat_store::Error::Truncated { .. } => ReadErr::Truncated(e),
            e => ReadErr::Store(e),
        }
    }
}

impl From<Corruption> for ReadErr {
    fn from(e: Corruption) -> ReadErr {
        ReadErr::Corrupt(e)
    }
}

impl From<lifeboat_format::Error> for ReadErr {
    fn from(e: lifeboat_format::Error) -> ReadErr {
        ReadErr::Corrupt(Corruption::Format(e))
    }
}

#[derive(Debug, Default)]
struct Entry {
    message: String,
    snapshots: BTreeSet<Id>,
}

/// Findings by (category, object), each with the snapshots it affects.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    map: BTreeMap<(Category, String), Entry>,
}

impl Findings {
    /// Record a finding; the first message for an object is kept.
    pub fn add(&mut self, category: Category, object: impl ToString, message: impl ToString) {
        let e = self.map.entry((category, object.to_string())).or_default();
        if e.message.is_empty() {
            e.message = message.to_string();
        }
    }

    /// Set the message of a finding, if there is one for `object` and it has
    /// none yet.
    pub fn describe(&mut self, category: Category, object: impl ToString, message: impl ToString) {
        if let Some(e) = self.map.get_mut(&(category, object.to_string())) {
            if e.message.is_empty() {
                e.message = message.to_string();
            }
        }
    }

    /// Name `snapshot` on the finding `mark` (created if new).
    pub fn attach(&mut self, mark: &Mark, snapshot: Id) {
        self.map
            .entry((mark.0, mark.1.to_hex()))
            .or_default()
            .snapshots
            .insert(snapshot);
    }

    fn into_problems(self) -> Vec<Problem> {
        self.map
            .into_iter()
            .map(|((category, object), e)| Problem {
                category,
                severity: category.severity(),
                message: if e.message.is_empty() {
                    category.description().to_string()
                } else {
                    e.message
                },
                object,
                snapshots: e.snapshots.iter().map(Id::to_hex).collect(),
            })
            .collect()
    }
}

/// A pack in no index.
#[derive(Debug)]
pub(crate) struct Orphan {
    pub size: u64,
    /// Header entries, if the header could be read (why not is a note or an
    /// unchecked object).
    pub header: Option<Vec<PackHeaderEntry>>,
}

/// Result of looking a blob up.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Where to read it, if it can be read at all.
    pub loc: Option<Loc>,
    /// Findings that concern it.
    pub marks: Vec<Mark>,
}

/// What the passes of one check know so far.
pub(crate) struct State<'r> {
    pub repo: &'r Repository,
    pub backend: Arc<dyn Backend>,
    /// Every pack that is listed or indexed.
    pub packs: HashMap<Id, PackState>,
    /// Listed packs that no index knows.
    pub orphans: BTreeMap<Id, Orphan>,
    /// Blobs found in the headers of orphan packs.
    pub orphan_blobs: HashMap<Id, Loc>,
    /// Blobs that the data pass found corrupt.
    pub bad_blobs: HashSet<Id>,
    /// Packs with damage that loses no blob (header, hash).
    pub affected_packs: HashMap<Id, Category>,
    /// Damage found in orphan packs, reported only as notes on the orphan
    /// (or, for blobs a snapshot needs, as findings of their own).
    pub orphan_notes: HashMap<Id, Vec<String>>,
    /// Blobs of orphan packs that fail to verify, with why.
    pub orphan_bad: HashMap<Id, String>,
    /// Copies of duplicated blobs besides the one the index uses.
    pub other_copies: HashMap<Id, Vec<Loc>>,
    /// Tree plaintexts verified by the data pass, to spare the walk a read.
    pub tree_cache: HashMap<Id, Vec<u8>>,
    pub findings: Findings,
    pub report: CheckReport,
}

impl<'r> State<'r> {
    /// Nothing known yet about `repo`.
    pub fn new(repo: &'r Repository) -> State<'r> {
        State {
            repo,
            backend: repo.backend().clone(),
            packs: HashMap::new(),
            orphans: BTreeMap::new(),
            orphan_blobs: HashMap::new(),
            bad_blobs: HashSet::new(),
            affected_packs: HashMap::new(),
            orphan_notes: HashMap::new(),
            orphan_bad: HashMap::new(),
            other_copies: HashMap::new(),
            tree_cache: HashMap::new(),
            findings: Findings::default(),
            report: CheckReport::default(),
        }
    }

    pub fn key(&self) -> &'r MasterKey {
        self.repo.master_key()
    }

    /// Read the header of a pack of `size` bytes with ranged reads.
    pub fn read_header(&self, id: &Id, size: u64) -> Result<Vec<PackHeaderEntry>, ReadErr> {
        if size < PACK_TRAILER_LEN as u64 {
            return Err(Corruption::PackTooShort { size }.into());
        }
        let path = pack_path(id);
        let tail_len = size.min(64 << 10);
        let tail = self.backend.get_range(&path, size - tail_len..size)?;
        let hlen = u64::from(parse_pack_trailer(&tail)?);
        let need = hlen + PACK_TRAILER_LEN as u64;
        if need > size {
            return Err(Corruption::HeaderTooLong { header: hlen, size }.into());
        }
        let sealed = if need <= tail_len {
            let t = tail_len as usize;
            tail.slice(t - need as usize..t - PACK_TRAILER_LEN)
        } else {
            self.backend
                .get_range(&path, size - need..size - PACK_TRAILER_LEN as u64)?
        };
        Ok(decode_pack_header(self.key(), &sealed, size)?)
    }

    /// Where to read blob `id` and which findings concern it.
    pub fn resolve(&self, index: &lifeboat_index::Index, id: &Id, want: BlobType) -> Resolved {
        let mut r = Resolved::default();
        if let Some(l) = index.get(id) {
            let loc = Loc::from(l);
            let st = self.packs.get(&loc.pack).copied().unwrap_or_default();
            match st.listed {
                None => {
                    r.marks.push((Category::MissingPack, loc.pack));
                    return r;
                }
                Some(size) if size < st.indexed.unwrap_or(size) && loc.end() > size => {
                    r.marks.push((Category::WrongSizePack, loc.pack));
                    return r;
                }
                _ => {}
            }
            if self.bad_blobs.contains(id) {
                r.marks.push((Category::CorruptBlob, *id));
                return r;
            }
            if let Some(c) = self.affected_packs.get(&loc.pack) {
                r.marks.push((*c, loc.pack));
            }
            r.loc = Some(loc);
        } else if let Some(loc) = self.orphan_blobs.get(id) {
            r.marks.push((Category::MissingIndexSegment, loc.pack));
            if self.bad_blobs.contains(id) {
                r.marks.push((Category::CorruptBlob, *id));
            } else {
                r.loc = Some(*loc);
            }
        } else {
            let c = match want {
                BlobType::Tree => Category::MissingTree,
                BlobType::Data => Category::MissingBlob,
            };
            r.marks.push((c, *id));
        }
        r
    }

    /// Read, decrypt and verify one blob.
    pub fn read_blob(&self, id: &Id, want: BlobType, loc: &Loc) -> Result<Vec<u8>, ReadErr> {
        let start = u64::from(loc.offset);
        let stored = self
            .backend
            .get_range(&pack_path(&loc.pack), start..loc.end())?;
        Ok(open_blob(
            self.key(),
            want,
            id,
            loc.flags,
            loc.raw_len,
            &stored,
        )?)
    }

    /// Classify orphans (`needed_orphans`: those holding blobs a snapshot
    /// needs, with how many) and build the report's findings.
    pub fn finish(&mut self, needed_orphans: &BTreeMap<Id, u64>) {
        let orphans = std::mem::take(&mut self.orphans);
        for (id, o) in &orphans {
            let mut notes = self.orphan_notes.get(id).cloned().unwrap_or_default();
            notes.dedup();
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join("; "))
            };
            if let Some(n) = needed_orphans.get(id) {
                self.findings.add(
                    Category::MissingIndexSegment,
                    id,
                    format!(
                        "pack is in no index but holds {n} blob(s) that snapshots need: the \
                         index segment that listed it is missing; run `lifeboat index rebuild`{notes}"
                    ),
                );
            } else {
                let blobs = match &o.header {
                    Some(h) => format!("{} blobs", h.len()),
                    None => "unknown blobs".into(),
                };
                self.findings.add(
                    Category::OrphanPack,
                    id,
                    format!(
                        "pack ({} bytes, {blobs}) is in no index and no snapshot needs it; \
                         an interrupted or running backup leaves these, prune removes them{notes}",
                        o.size
                    ),
                );
            }
        }
        for (blob, msg) in std::mem::take(&mut self.orphan_bad) {
            self.findings.describe(Category::CorruptBlob, blob, msg);
        }
        self.orphans = orphans;
        let findings = std::mem::take(&mut self.findings);
        let problems = findings.into_problems();
        let mut damaged: BTreeSet<String> = BTreeSet::new();
        for p in &problems {
            if p.category.is_loss() {
                damaged.extend(p.snapshots.iter().cloned());
            }
        }
        self.report.problems = problems;
        self.report.damaged_snapshots = damaged.into_iter().collect();
    }
}
