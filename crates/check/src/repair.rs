//! `repair snapshots`: rewrite snapshots that reference lost data so that
//! they drop only what is lost, and forget the originals.
//!
//! What is lost comes from a check (structural, or with the data pass when
//! asked). In the rewritten trees a lost data blob becomes a hole of the same
//! length, so every surviving byte of a file stays at its offset, and a
//! directory whose listing is lost becomes an empty directory. The new
//! snapshot keeps the original's time, host and paths, gains the tag
//! `repaired`, names every dropped piece in its `incomplete` list, and
//! records the original's id in `source_meta["repaired_from"]`.
//!
//! The index stops listing damaged packs (missing, truncated, with a bad
//! header, hash or blob): the blobs of such a pack that still verify are
//! copied, as stored, into new packs first. The damaged pack files themselves
//! are left alone; they become orphan packs that prune removes.
//!
//! Without `forget_damaged` nothing is written: the report says what would
//! be done. With it, the order is: new packs, then one index segment that
//! lists them and replaces every segment that named a damaged pack, then the
//! new snapshots, and only then are the originals removed. A crash at any
//! point leaves no snapshot referencing data that is not durable.

use lifeboat_core::internals::RepositoryInternals as _;
use std::collections::{BTreeMap, HashMap, HashSet};

use lifeboat_core::Repository;
use lifeboat_format::layout::{Folder, id_of_path};
use lifeboat_format::{
    BlobType, ContentPart, Id, IndexEntry, IndexPack, IndexSegment, NodeKind, PackBuilder,
    SealedBlob, Tree, open_blob, seal_blob_with_id,
};
use lifeboat_index::write_segment;
use serde::Serialize;

use crate::check::run;
use crate::error::{Corruption, Error, Result};
use crate::options::{CheckOptions, CheckProgress};
use crate::report::{Category, CheckReport};
use crate::state::{Loc, ReadErr, State, pack_path};
use crate::walk::Walk;

/// Tag given to repaired snapshots.
pub const REPAIRED_TAG: &str = "repaired";
/// `source_meta` key holding the id of the snapshot a repair replaced.
pub const REPAIRED_FROM: &str = "repaired_from";

/// How to repair.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Write the repaired snapshots and the repaired index, and remove the
    /// damaged originals (and snapshot objects that cannot be read at all).
    /// Without it, only report.
    pub forget_damaged: bool,
    /// Also read every pack, so that blobs that fail to verify count as lost.
    pub read_data: bool,
}

/// What happened, or would happen, to one snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct RepairedSnapshot {
    /// The damaged snapshot.
    pub original: String,
    /// Its replacement (none in a dry run, or when the object itself is
    /// unreadable).
    pub repaired: Option<String>,
    /// What is dropped, one line per path.
    pub lost: Vec<String>,
    /// Whether the original was removed.
    pub forgotten: bool,
}

/// A pack the index stops listing.
#[derive(Debug, Clone, Serialize)]
pub struct DroppedPack {
    /// Pack id.
    pub pack: String,
    /// The finding that condemns it.
    pub reason: Category,
}

/// The result of a repair.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RepairReport {
    /// True when nothing was written.
    pub dry_run: bool,
    /// Damaged snapshots.
    pub snapshots: Vec<RepairedSnapshot>,
    /// Packs removed from the index.
    pub packs_dropped: Vec<DroppedPack>,
    /// Intact blobs copied out of dropped packs.
    pub blobs_copied: u64,
    /// Tree blobs written.
    pub trees_written: u64,
    /// The check the repair was based on.
    pub check: CheckReport,
}

/// Writes blobs into new packs (data and tree apart), then one index
/// segment.
struct PackWriter<'r> {
    repo: &'r Repository,
    packs: [PackBuilder; 2],
    /// Blobs written by this repair.
    seen: HashSet<Id>,
    /// Packs the index will stop listing.
    dropped: HashSet<Id>,
    written: Vec<IndexPack>,
    trees: u64,
    copied: u64,
}

impl PackWriter<'_> {
    /// Whether the repaired repository will have `id` without writing it.
    fn has(&self, id: &Id) -> bool {
        self.seen.contains(id)
            || self
                .repo
                .index()
                .get(id)
                .is_some_and(|l| !self.dropped.contains(&l.pack))
    }

    fn add_sealed(&mut self, blob: &SealedBlob) -> Result<()> {
        if !self.seen.insert(blob.id) {
            return Ok(());
        }
        let i = blob.blob_type as usize;
        self.packs[i].add(blob).map_err(|source| Error::Encode {
            what: "pack",
            source,
        })?;
        if self.packs[i].len() >= self.repo.config().pack_size as usize {
            self.flush(blob.blob_type)?;
        }
        Ok(())
    }

    fn add_tree(&mut self, id: Id, plain: &[u8]) -> Result<()> {
        if self.has(&id) {
            return Ok(());
        }
        let sealed = seal_blob_with_id(
            self.repo.master_key(),
            BlobType::Tree,
            id,
            plain,
            self.repo.config().compression_level,
        )
        .map_err(|source| Error::Encode {
            what: "tree blob",
            source,
        })?;
        self.trees += 1;
        self.add_sealed(&sealed)
    }

    fn flush(&mut self, t: BlobType) -> Result<()> {
        let i = t as usize;
        if self.packs[i].is_empty() {
            return Ok(());
        }
        let p = std::mem::replace(&mut self.packs[i], PackBuilder::new(t, 0));
        let (bytes, id, entries) =
            p.finish(self.repo.master_key())
                .map_err(|source| Error::Encode {
                    what: "pack",
                    source,
                })?;
        let size = bytes.len() as u64;
        self.repo.backend().put(&pack_path(&id), bytes.into())?;
        self.written.push(IndexPack {
            id,
            blob_type: t,
            size,
            blobs: entries.iter().map(IndexEntry::from).collect(),
        });
        Ok(())
    }

    /// Copy the blobs of damaged pack `pack` that still verify.
    fn copy_intact(&mut self, c: &State<'_>, pack: &Id) -> Result<()> {
        let entries: Vec<(Id, Loc)> = {
            let index = self.repo.index();
            index
                .iter()
                .filter(|(_, l)| l.pack == *pack)
                .map(|(id, l)| (id, Loc::from(l)))
                .collect()
        };
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = match self.repo.backend().get(&pack_path(pack)) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        for (id, l) in entries {
            if l.end() > bytes.len() as u64 || c.bad_blobs.contains(&id) {
                continue;
            }
            let stored = &bytes[l.offset as usize..l.end() as usize];
            if open_blob(c.key(), l.blob_type, &id, l.flags, l.raw_len, stored).is_err() {
                continue;
            }
            self.copied += 1;
            self.add_sealed(&SealedBlob {
                id,
                blob_type: l.blob_type,
                flags: l.flags,
                raw_len: l.raw_len,
                bytes: stored.to_vec(),
            })?;
        }
        Ok(())
    }

    /// Write the last packs and one index segment that lists every new pack
    /// and replaces each live segment naming a dropped pack.
    fn finish(&mut self) -> Result<()> {
        self.flush(BlobType::Data)?;
        self.flush(BlobType::Tree)?;
        let mut seg = IndexSegment::new();
        if !self.dropped.is_empty() {
            let backend = self.repo.backend();
            let key = self.repo.master_key();
            let mut segs: Vec<(Id, IndexSegment)> = Vec::new();
            for o in backend.list(&Folder::Index.prefix())? {
                let Some(id) = id_of_path(&o.path) else {
                    continue;
                };
                let bytes = match backend.get(&o.path) {
                    Ok(b) => b,
                    // Compacted away since the listing, or listed late.
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e.into()),
                };
                let s =
                    IndexSegment::decode(key, &bytes).map_err(|source| Error::CorruptSegment {
                        path: o.path.clone(),
                        source,
                    })?;
                segs.push((id, s));
            }
            let superseded: HashSet<Id> = segs
                .iter()
                .flat_map(|(_, s)| s.supersedes.iter().copied())
                .collect();
            for (id, s) in segs {
                if superseded.contains(&id) || !s.packs.iter().any(|p| self.dropped.contains(&p.id))
                {
                    continue;
                }
                seg.supersedes.push(id);
                seg.packs.extend(
                    s.packs
                        .into_iter()
                        .filter(|p| !self.dropped.contains(&p.id)),
                );
            }
        }
        seg.packs.append(&mut self.written);
        if seg.packs.is_empty() && seg.supersedes.is_empty() {
            return Ok(());
        }
        write_segment(self.repo.backend(), self.repo.master_key(), &seg)?;
        self.repo.reload_index()?;
        Ok(())
    }
}

struct Rewriter<'a, 'r> {
    c: &'a State<'r>,
    walk: &'a Walk,
    /// Packs the index stops listing.
    dropped: HashSet<Id>,
    writer: Option<PackWriter<'r>>,
    memo: HashMap<Id, (Id, Vec<String>)>,
    empty_tree: Id,
}

impl Rewriter<'_, '_> {
    fn affected(&self, tree: &Id) -> bool {
        self.walk.reach(tree).iter().any(|m| m.0.is_loss())
    }

    /// Whether a duplicate of `id` outside the index's choice survives the
    /// repair (once the damaged pack is dropped, the index uses it).
    fn other_copy(&self, id: &Id) -> bool {
        if self.c.bad_blobs.contains(id) {
            return false;
        }
        self.c.other_copies.get(id).is_some_and(|locs| {
            locs.iter().any(|l| {
                !self.dropped.contains(&l.pack)
                    && self
                        .c
                        .packs
                        .get(&l.pack)
                        .is_some_and(|s| s.listed.is_some_and(|n| n >= l.end()))
            })
        })
    }

    fn tree_lost(&self, tree: &Id) -> bool {
        !self.walk.trees.get(tree).is_some_and(|f| f.readable) && !self.other_copy(tree)
    }

    /// A tree that cannot be read now but survives elsewhere: kept as is.
    fn tree_elsewhere(&self, tree: &Id) -> bool {
        !self.walk.trees.get(tree).is_some_and(|f| f.readable) && self.other_copy(tree)
    }

    fn blob_lost(&self, id: &Id) -> bool {
        let index = self.c.repo.index();
        self.c.resolve(&index, id, BlobType::Data).loc.is_none() && !self.other_copy(id)
    }

    fn load(&self, id: &Id) -> Result<Tree> {
        let bytes = match self.c.tree_cache.get(id) {
            Some(b) => b.clone(),
            None => {
                let r = {
                    let index = self.c.repo.index();
                    self.c.resolve(&index, id, BlobType::Tree)
                };
                let loc = r.loc.ok_or(Error::TreeLost { tree: *id })?;
                self.c
                    .read_blob(id, BlobType::Tree, &loc)
                    .map_err(|e| match e {
                        ReadErr::Corrupt(source) => Error::CorruptTree { tree: *id, source },
                        ReadErr::NotFound(e) | ReadErr::Truncated(e) | ReadErr::Store(e) => {
                            Error::Store(e)
                        }
                    })?
            }
        };
        Tree::decode(&bytes).map_err(|e| Error::CorruptTree {
            tree: *id,
            source: Corruption::Format(e),
        })
    }

    fn save(&mut self, tree: &Tree) -> Result<Id> {
        let bytes = tree.encode().map_err(|source| Error::Encode {
            what: "tree",
            source,
        })?;
        let id = self.c.key().blob_id(&bytes);
        if let Some(w) = &mut self.writer {
            w.add_tree(id, &bytes)?;
        }
        Ok(id)
    }

    /// The repaired form of `tree` and what it drops (paths relative to it).
    fn rewrite(&mut self, tree: &Id) -> Result<(Id, Vec<String>)> {
        if !self.affected(tree) {
            return Ok((*tree, Vec::new()));
        }
        if let Some(r) = self.memo.get(tree) {
            return Ok(r.clone());
        }
        let mut t = self.load(tree)?;
        let mut lost = Vec::new();
        for n in &mut t.nodes {
            let name = n.name_lossy();
            if n.kind == NodeKind::Dir {
                if let Some(s) = n.subtree {
                    if self.tree_elsewhere(&s) {
                        // Kept: the index will use the surviving copy.
                    } else if self.tree_lost(&s) {
                        n.subtree = Some(self.empty_tree);
                        lost.push(format!(
                            "{name}/: directory listing lost; now an empty directory"
                        ));
                    } else if self.affected(&s) {
                        let (new, sub) = self.rewrite(&s)?;
                        n.subtree = Some(new);
                        lost.extend(sub.into_iter().map(|l| format!("{name}/{l}")));
                    }
                }
            }
            let mut offset = 0u64;
            let mut ranges: Vec<(u64, u64)> = Vec::new();
            for part in &mut n.content {
                let len = part.len();
                if let ContentPart::Blob { id, len: l } = *part {
                    if self.blob_lost(&id) {
                        *part = ContentPart::Hole { len: u64::from(l) };
                        match ranges.last_mut() {
                            Some(r) if r.1 == offset => r.1 += len,
                            _ => ranges.push((offset, offset + len)),
                        }
                    }
                }
                offset += len;
            }
            if !ranges.is_empty() {
                let lost_bytes: u64 = ranges.iter().map(|r| r.1 - r.0).sum();
                let shown: Vec<String> = ranges
                    .iter()
                    .take(8)
                    .map(|r| format!("{}..{}", r.0, r.1))
                    .collect();
                let more = if ranges.len() > 8 { ", ..." } else { "" };
                lost.push(format!(
                    "{name}: {lost_bytes} of {offset} bytes lost (bytes {}{more}); \
                     they restore as zeros",
                    shown.join(", ")
                ));
            }
        }
        let id = self.save(&t)?;
        self.memo.insert(*tree, (id, lost.clone()));
        Ok((id, lost))
    }
}

/// Packs the index should stop listing, from the check's findings.
fn damaged_packs(c: &State<'_>) -> BTreeMap<Id, Category> {
    let mut out = BTreeMap::new();
    let index = c.repo.index();
    for p in &c.report.problems {
        let Ok(id) = p.object.parse::<Id>() else {
            continue;
        };
        let pack = match p.category {
            Category::MissingPack
            | Category::WrongSizePack
            | Category::CorruptPackHeader
            | Category::CorruptPack => id,
            Category::CorruptBlob => match index.get(&id) {
                Some(l) => l.pack,
                None => continue,
            },
            _ => continue,
        };
        if c.packs.get(&pack).is_some_and(|s| s.indexed.is_some()) {
            out.entry(pack).or_insert(p.category);
        }
    }
    out
}

/// Repair the snapshots of `repo` that reference lost data, and the index.
/// See the module documentation.
pub fn repair_snapshots(
    repo: &Repository,
    opts: &RepairOptions,
    progress: &CheckProgress,
) -> Result<RepairReport> {
    let check_opts = CheckOptions {
        read_data: opts.read_data,
        ..CheckOptions::default()
    };
    let checked = run(repo, &check_opts, progress)?;
    let (c, walk) = (&checked.state, &checked.walk);
    if !c.report.unchecked.is_empty() {
        return Err(Error::CheckIncomplete {
            unchecked: c.report.unchecked.clone(),
        });
    }
    if !walk.needed_orphans.is_empty() {
        return Err(Error::IndexIncomplete {
            packs: walk.needed_orphans.len(),
        });
    }
    let dropped = damaged_packs(c);
    let empty = Tree::new(Vec::new());
    let empty_bytes = empty.encode().map_err(|source| Error::Encode {
        what: "tree",
        source,
    })?;
    let mut writer = opts.forget_damaged.then(|| PackWriter {
        repo,
        packs: [
            PackBuilder::new(BlobType::Data, 0),
            PackBuilder::new(BlobType::Tree, 0),
        ],
        seen: HashSet::new(),
        dropped: dropped.keys().copied().collect(),
        written: Vec::new(),
        trees: 0,
        copied: 0,
    });
    if let Some(w) = &mut writer {
        for pack in dropped.keys() {
            w.copy_intact(c, pack)?;
        }
    }
    let mut rw = Rewriter {
        c,
        walk,
        dropped: dropped.keys().copied().collect(),
        writer,
        memo: HashMap::new(),
        empty_tree: repo.master_key().blob_id(&empty_bytes),
    };
    let mut out = Vec::new();
    let mut new_snaps = Vec::new();
    for (sid, snap) in &walk.snapshots {
        if !rw.affected(&snap.tree) {
            continue;
        }
        if rw.tree_elsewhere(&snap.tree) {
            continue;
        }
        let (root, lost) = if rw.tree_lost(&snap.tree) {
            (
                rw.empty_tree,
                vec!["/: the root directory listing is lost; the snapshot is now empty".into()],
            )
        } else {
            let (r, l) = rw.rewrite(&snap.tree)?;
            (
                r,
                l.into_iter()
                    .map(|p| format!("/{p}"))
                    .collect::<Vec<String>>(),
            )
        };
        if root == snap.tree && lost.is_empty() {
            // Nothing is lost once the index uses the surviving copies.
            continue;
        }
        let mut s = snap.clone();
        s.tree = root;
        if !s.tags.iter().any(|t| t == REPAIRED_TAG) {
            s.tags.push(REPAIRED_TAG.into());
        }
        s.incomplete
            .extend(lost.iter().map(|l| format!("lost in repair: {l}")));
        s.source_meta.insert(REPAIRED_FROM.into(), sid.to_hex());
        new_snaps.push((*sid, s));
        out.push(RepairedSnapshot {
            original: sid.to_hex(),
            repaired: None,
            lost,
            forgotten: false,
        });
    }
    let (mut trees_written, mut blobs_copied) = (0, 0);
    if let Some(w) = &mut rw.writer {
        if !new_snaps.is_empty() {
            w.add_tree(rw.empty_tree, &empty_bytes)?;
        }
        w.finish()?;
        trees_written = w.trees;
        blobs_copied = w.copied;
    }
    if opts.forget_damaged {
        // Every new snapshot is durable before any original goes.
        for ((_, s), r) in new_snaps.iter().zip(out.iter_mut()) {
            r.repaired = Some(repo.save_snapshot(s)?.to_hex());
        }
        for ((sid, _), r) in new_snaps.iter().zip(out.iter_mut()) {
            repo.delete_snapshot(sid)?;
            r.forgotten = true;
        }
    }
    for sid in &walk.unreadable {
        if opts.forget_damaged {
            repo.delete_snapshot(sid)?;
        }
        out.push(RepairedSnapshot {
            original: sid.to_hex(),
            repaired: None,
            lost: vec!["the snapshot object itself cannot be read".into()],
            forgotten: opts.forget_damaged,
        });
    }
    Ok(RepairReport {
        dry_run: !opts.forget_damaged,
        snapshots: out,
        packs_dropped: dropped
            .into_iter()
            .map(|(p, reason)| DroppedPack {
                pack: p.to_hex(),
                reason,
            })
            .collect(),
        blobs_copied,
        trees_written,
        check: c.report.clone(),
    })
}
