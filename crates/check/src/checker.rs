//! The structural pass and the state shared by the passes: what the pack
//! listing, the index and the pack headers say, and the findings so far.

use lifeboat_core::internals::RepositoryInternals as _;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use lifeboat_core::Repository;
use lifeboat_format::{
    BlobFlags, BlobType, Id, IndexSegment, KeySlot, MASTER_KEY_LEN, MasterKey, PACK_TRAILER_LEN,
    PackHeaderEntry, decode_pack_header, open_blob, parse_pack_trailer,
};
use lifeboat_index::{BlobLocation, pack_path};
use lifeboat_store::Backend;

use crate::walk::Walk;
use crate::{Category, CheckOptions, CheckProgress, CheckReport, Error, Problem, Result, Subset};

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

/// Why a blob could not be read.
#[derive(Debug)]
pub(crate) enum ReadErr {
    /// The pack is not in the store (any more).
    NotFound(String),
    /// The pack is shorter than the range asked for.
    Truncated(String),
    /// The bytes are there but wrong.
    Corrupt(String),
    /// The store failed; nothing is known about the bytes.
    Store(String),
}

fn store_err(e: lifeboat_store::Error) -> ReadErr {
    match e {
        e @ lifeboat_store::Error::NotFound { .. } => ReadErr::NotFound(e.to_string()),
        e @ lifeboat_store::Error::Truncated { .. } => ReadErr::Truncated(e.to_string()),
        e => ReadErr::Store(e.to_string()),
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
    /// Header entries, or why the header could not be read.
    pub header: std::result::Result<Vec<PackHeaderEntry>, String>,
}

/// Result of looking a blob up.
#[derive(Debug, Default)]
pub(crate) struct Resolved {
    /// Where to read it, if it can be read at all.
    pub loc: Option<Loc>,
    /// Findings that concern it.
    pub marks: Vec<Mark>,
}

pub(crate) struct Checker<'r> {
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
    pub walk: Option<Walk>,
}

impl<'r> Checker<'r> {
    pub fn key(&self) -> &'r MasterKey {
        self.repo.master_key()
    }

    /// Every pass of a check, in order.
    pub fn run(
        repo: &'r Repository,
        opts: &CheckOptions,
        progress: &CheckProgress,
    ) -> Result<Checker<'r>> {
        if opts.resume.is_some() && !opts.read_data {
            return Err(Error::InvalidOptions(
                "--max-age, --max-duration and --max-packs need --read-data".into(),
            ));
        }
        if opts.resume.is_some() && opts.subset != Subset::All {
            return Err(Error::InvalidOptions(
                "resumable verification cannot be combined with --read-data-subset".into(),
            ));
        }
        let mut c = Checker {
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
            walk: None,
        };
        repo.set_index_fallback(false); // report what the segments say, not what packs recover
        c.check_keys()?;
        let segments = c.check_packs()?;
        c.read_orphan_headers();
        c.check_duplicates(&segments);
        if opts.read_data {
            crate::data::read_data(&mut c, opts, progress)?;
        }
        c.walk = Some(crate::walk::walk(&mut c, progress)?);
        c.finish();
        Ok(c)
    }

    /// Key slots: each must hash to its name and be a well-formed slot. A
    /// slot's password cannot be tried without the password, so a slot whose
    /// wrapped key was changed is found by its name.
    fn check_keys(&mut self) -> Result<()> {
        for obj in self.backend.list("keys/")? {
            let name = obj.path.trim_start_matches("keys/");
            self.report.keys += 1;
            let bytes = match self.backend.get(&obj.path) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    self.report.unchecked.push(format!("{}: {e}", obj.path));
                    continue;
                }
            };
            let problem = if name.parse::<Id>().ok() != Some(Id::of_object(&bytes)) {
                Some("content does not hash to its name".to_string())
            } else {
                match KeySlot::from_json(&bytes) {
                    Err(e) => Some(format!("not a valid key slot: {e}")),
                    Ok(s) if s.version != 1 || s.kdf != "argon2id" => Some(format!(
                        "unknown slot version {} or kdf {:?}",
                        s.version, s.kdf
                    )),
                    Ok(s) if s.wrapped_key.len() != MASTER_KEY_LEN + 40 || s.salt.is_empty() => {
                        Some("wrapped key or salt has the wrong length".to_string())
                    }
                    Ok(_) => None,
                }
            };
            if let Some(p) = problem {
                self.findings.add(
                    Category::CorruptKeySlot,
                    &obj.path,
                    format!("{p}; the password of this slot no longer opens the repository"),
                );
            }
        }
        Ok(())
    }

    /// One listing of `data/` against the index. Returns the listing of
    /// `index/`.
    fn check_packs(&mut self) -> Result<Vec<String>> {
        for o in self.backend.list("data/")? {
            let Some(id) = o.path.rsplit('/').next().and_then(|n| n.parse::<Id>().ok()) else {
                continue;
            };
            self.packs.entry(id).or_default().listed = Some(o.size);
        }
        let segments: Vec<String> = self
            .backend
            .list("index/")?
            .into_iter()
            .map(|o| o.path)
            .collect();
        self.report.index_segments = segments.len() as u64;
        {
            let index = self.repo.index();
            for (id, size) in index.packs() {
                self.packs.entry(id).or_default().indexed = Some(size);
            }
        }
        self.report.packs = self.packs.values().filter(|p| p.listed.is_some()).count() as u64;
        let mut ids: Vec<Id> = self.packs.keys().copied().collect();
        ids.sort();
        for id in ids {
            let st = self.packs[&id];
            match (st.listed, st.indexed) {
                (None, Some(i)) => self.findings.add(
                    Category::MissingPack,
                    id,
                    format!("pack is in the index ({i} bytes) but not in the store"),
                ),
                (Some(l), Some(i)) if l < i => self.findings.add(
                    Category::WrongSizePack,
                    id,
                    format!(
                        "pack is truncated: {l} bytes in the store, the index says {i}; \
                         blobs past byte {l} are lost"
                    ),
                ),
                (Some(l), Some(i)) if l > i => self.findings.add(
                    Category::WrongSizePack,
                    id,
                    format!("pack has {l} bytes in the store, the index says {i}"),
                ),
                (Some(l), None) => {
                    self.orphans.insert(
                        id,
                        Orphan {
                            size: l,
                            header: Err(String::new()),
                        },
                    );
                }
                _ => {}
            }
        }
        Ok(segments)
    }

    /// Read the header of a pack of `size` bytes with ranged reads.
    pub fn read_header(
        &self,
        id: &Id,
        size: u64,
    ) -> std::result::Result<Vec<PackHeaderEntry>, ReadErr> {
        if size < PACK_TRAILER_LEN as u64 {
            return Err(ReadErr::Corrupt(format!(
                "pack of {size} bytes is too short"
            )));
        }
        let path = pack_path(id);
        let tail_len = size.min(64 << 10);
        let tail = self
            .backend
            .get_range(&path, size - tail_len..size)
            .map_err(store_err)?;
        let hlen =
            u64::from(parse_pack_trailer(&tail).map_err(|e| ReadErr::Corrupt(e.to_string()))?);
        let need = hlen + PACK_TRAILER_LEN as u64;
        if need > size {
            return Err(ReadErr::Corrupt(format!(
                "header length {hlen} does not fit in a pack of {size} bytes"
            )));
        }
        let sealed = if need <= tail_len {
            let t = tail_len as usize;
            tail.slice(t - need as usize..t - PACK_TRAILER_LEN)
        } else {
            self.backend
                .get_range(&path, size - need..size - PACK_TRAILER_LEN as u64)
                .map_err(store_err)?
        };
        decode_pack_header(self.key(), &sealed, size).map_err(|e| ReadErr::Corrupt(e.to_string()))
    }

    /// Headers of packs that no index lists: a missing index segment leaves
    /// its packs like this, and the walk looks for needed blobs here.
    fn read_orphan_headers(&mut self) {
        let ids: Vec<(Id, u64)> = self.orphans.iter().map(|(id, o)| (*id, o.size)).collect();
        for (id, size) in ids {
            let header = match self.read_header(&id, size) {
                Ok(h) => Ok(h),
                Err(ReadErr::Store(e)) => {
                    self.report
                        .unchecked
                        .push(format!("header of pack {id}: {e}"));
                    Err(e)
                }
                Err(ReadErr::NotFound(_)) => {
                    // Deleted since the listing (prune): nothing to check.
                    self.orphans.remove(&id);
                    continue;
                }
                Err(ReadErr::Corrupt(e) | ReadErr::Truncated(e)) => {
                    self.orphan_notes
                        .entry(id)
                        .or_default()
                        .push(format!("its header cannot be read: {e}"));
                    Err(e)
                }
            };
            if let Ok(h) = &header {
                for e in h {
                    self.orphan_blobs
                        .entry(e.id)
                        .or_insert_with(|| Loc::from_header(id, e));
                }
            }
            if let Some(o) = self.orphans.get_mut(&id) {
                o.header = header;
            }
        }
    }

    /// Blobs indexed in more than one pack. The merged index keeps one
    /// location per blob; an entry of a live segment that points elsewhere
    /// is a duplicate.
    fn check_duplicates(&mut self, segments: &[String]) {
        let dups = self.repo.index().duplicates();
        if dups == 0 {
            return;
        }
        let mut decoded: Vec<(Id, IndexSegment)> = Vec::new();
        for path in segments {
            let Ok(id) = path.trim_start_matches("index/").parse::<Id>() else {
                continue;
            };
            match self
                .backend
                .get(path)
                .map_err(|e| e.to_string())
                .and_then(|b| IndexSegment::decode(self.key(), &b).map_err(|e| e.to_string()))
            {
                Ok(s) => decoded.push((id, s)),
                Err(e) => self.report.unchecked.push(format!("{path}: {e}")),
            }
        }
        let superseded: HashSet<Id> = decoded
            .iter()
            .flat_map(|(_, s)| s.supersedes.iter().copied())
            .collect();
        let mut copies: BTreeMap<Id, BTreeSet<Id>> = BTreeMap::new();
        {
            let index = self.repo.index();
            for (id, seg) in &decoded {
                if superseded.contains(id) {
                    continue;
                }
                for p in &seg.packs {
                    for b in &p.blobs {
                        if let Some(l) = index.get(&b.id) {
                            if l.pack != p.id {
                                let c = copies.entry(b.id).or_default();
                                c.insert(p.id);
                                c.insert(l.pack);
                                self.other_copies.entry(b.id).or_default().push(Loc {
                                    pack: p.id,
                                    blob_type: p.blob_type,
                                    flags: b.flags,
                                    offset: b.offset,
                                    stored_len: b.stored_len,
                                    raw_len: b.raw_len,
                                });
                            }
                        }
                    }
                }
            }
        }
        if copies.is_empty() {
            self.findings.add(
                Category::DuplicateBlob,
                "index",
                format!("{dups} blob entries are listed more than once for the same pack"),
            );
        }
        let index = self.repo.index();
        for (blob, packs) in copies {
            let used = index.get(&blob).map(|l| l.pack.short()).unwrap_or_default();
            let names: Vec<String> = packs.iter().map(Id::short).collect();
            self.findings.add(
                Category::DuplicateBlob,
                blob,
                format!(
                    "blob is stored in packs {} (reads use {used})",
                    names.join(", ")
                ),
            );
        }
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
    pub fn read_blob(
        &self,
        id: &Id,
        want: BlobType,
        loc: &Loc,
    ) -> std::result::Result<Vec<u8>, ReadErr> {
        let start = u64::from(loc.offset);
        let stored = self
            .backend
            .get_range(&pack_path(&loc.pack), start..loc.end())
            .map_err(store_err)?;
        open_blob(self.key(), want, id, loc.flags, loc.raw_len, &stored)
            .map_err(|e| ReadErr::Corrupt(e.to_string()))
    }

    /// Classify orphans, build the report.
    fn finish(&mut self) {
        let needed: BTreeMap<Id, u64> = self
            .walk
            .as_ref()
            .map(|w| w.needed_orphans.clone())
            .unwrap_or_default();
        let orphans = std::mem::take(&mut self.orphans);
        for (id, o) in &orphans {
            let mut notes = self.orphan_notes.get(id).cloned().unwrap_or_default();
            notes.dedup();
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!("; {}", notes.join("; "))
            };
            if let Some(n) = needed.get(id) {
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
                    Ok(h) => format!("{} blobs", h.len()),
                    Err(_) => "unknown blobs".into(),
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
