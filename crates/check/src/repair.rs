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
//! Without `forget_damaged` nothing is written: the report says what would
//! be done. With it, new tree packs and their index segment are written
//! first, then the new snapshots, and only then are the originals removed.

use std::collections::{HashMap, HashSet};

use lifeboat_core::Repository;
use lifeboat_format::{
    BlobType, ContentPart, Id, IndexEntry, IndexPack, IndexSegment, NodeKind, PackBuilder, Tree,
    seal_blob_with_id,
};
use lifeboat_index::{pack_path, write_segment};
use serde::Serialize;

use crate::checker::{Checker, ReadErr};
use crate::walk::Walk;
use crate::{CheckOptions, CheckProgress, CheckReport, Error, Result};

/// Tag given to repaired snapshots.
pub const REPAIRED_TAG: &str = "repaired";
/// `source_meta` key holding the id of the snapshot a repair replaced.
pub const REPAIRED_FROM: &str = "repaired_from";

/// How to repair.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Write the repaired snapshots and remove the damaged originals (and
    /// snapshot objects that cannot be read at all). Without it, only report.
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

/// The result of a repair.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    /// True when nothing was written.
    pub dry_run: bool,
    /// Damaged snapshots.
    pub snapshots: Vec<RepairedSnapshot>,
    /// Tree blobs written.
    pub trees_written: u64,
    /// The check the repair was based on.
    pub check: CheckReport,
}

/// Writes new tree blobs into tree packs plus one index segment.
struct TreeWriter<'r> {
    repo: &'r Repository,
    pack: PackBuilder,
    seen: HashSet<Id>,
    written: Vec<IndexPack>,
    count: u64,
}

impl TreeWriter<'_> {
    fn add(&mut self, id: Id, plain: &[u8]) -> Result<()> {
        if self.repo.index().contains(&id) || !self.seen.insert(id) {
            return Ok(());
        }
        let sealed = seal_blob_with_id(
            self.repo.master_key(),
            BlobType::Tree,
            id,
            plain,
            self.repo.config().compression_level,
        )
        .map_err(|e| Error::Repair(e.to_string()))?;
        self.pack
            .add(&sealed)
            .map_err(|e| Error::Repair(e.to_string()))?;
        self.count += 1;
        if self.pack.len() >= self.repo.config().pack_size as usize {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        let p = std::mem::replace(&mut self.pack, PackBuilder::new(BlobType::Tree, 0));
        let (bytes, id, entries) = p
            .finish(self.repo.master_key())
            .map_err(|e| Error::Repair(e.to_string()))?;
        let size = bytes.len() as u64;
        self.repo.backend().put(&pack_path(&id), bytes.into())?;
        self.written.push(IndexPack {
            id,
            blob_type: BlobType::Tree,
            size,
            blobs: entries
                .iter()
                .map(|e| IndexEntry {
                    id: e.id,
                    flags: e.flags,
                    offset: e.offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                })
                .collect(),
        });
        Ok(())
    }

    /// Make everything written durable and indexed.
    fn finish(&mut self) -> Result<()> {
        self.flush()?;
        if self.written.is_empty() {
            return Ok(());
        }
        let mut seg = IndexSegment::new();
        seg.packs = std::mem::take(&mut self.written);
        write_segment(self.repo.backend(), self.repo.master_key(), &seg)
            .map_err(|e| Error::Repair(e.to_string()))?;
        self.repo.reload_index()?;
        Ok(())
    }
}

struct Rewriter<'a, 'r> {
    c: &'a Checker<'r>,
    walk: &'a Walk,
    writer: Option<TreeWriter<'r>>,
    memo: HashMap<Id, (Id, Vec<String>)>,
    empty_tree: Id,
}

impl Rewriter<'_, '_> {
    fn affected(&self, tree: &Id) -> bool {
        self.walk.reach(tree).iter().any(|m| m.0.is_loss())
    }

    fn tree_lost(&self, tree: &Id) -> bool {
        !self.walk.trees.get(tree).is_some_and(|f| f.readable)
    }

    fn blob_lost(&self, id: &Id) -> bool {
        let index = self.c.repo.index();
        self.c.resolve(&index, id, BlobType::Data).loc.is_none()
    }

    fn load(&self, id: &Id) -> Result<Tree> {
        let bytes = match self.c.tree_cache.get(id) {
            Some(b) => b.clone(),
            None => {
                let r = {
                    let index = self.c.repo.index();
                    self.c.resolve(&index, id, BlobType::Tree)
                };
                let loc = r
                    .loc
                    .ok_or_else(|| Error::Repair(format!("tree {id} cannot be read")))?;
                self.c
                    .read_blob(id, BlobType::Tree, &loc)
                    .map_err(|e| match e {
                        ReadErr::NotFound(m)
                        | ReadErr::Truncated(m)
                        | ReadErr::Corrupt(m)
                        | ReadErr::Store(m) => Error::Repair(format!("tree {id}: {m}")),
                    })?
            }
        };
        Tree::decode(&bytes).map_err(|e| Error::Repair(format!("tree {id}: {e}")))
    }

    fn save(&mut self, tree: &Tree) -> Result<Id> {
        let bytes = tree.encode().map_err(|e| Error::Repair(e.to_string()))?;
        let id = self.c.key().blob_id(&bytes);
        if let Some(w) = &mut self.writer {
            w.add(id, &bytes)?;
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
                    if self.tree_lost(&s) {
                        n.subtree = Some(self.empty_tree);
                        lost.push(format!("{name}/: directory listing lost; now an empty directory"));
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
                    "{name}: {lost_bytes} of {offset} bytes lost (bytes {}{more}); they restore as zeros",
                    shown.join(", ")
                ));
            }
        }
        let id = self.save(&t)?;
        self.memo.insert(*tree, (id, lost.clone()));
        Ok((id, lost))
    }
}

/// Repair the snapshots of `repo` that reference lost data. See the module
/// documentation.
pub fn repair_snapshots(
    repo: &Repository,
    opts: &RepairOptions,
    progress: &CheckProgress,
) -> Result<RepairReport> {
    let check_opts = CheckOptions {
        read_data: opts.read_data,
        ..CheckOptions::default()
    };
    let c = Checker::run(repo, &check_opts, progress)?;
    let Some(walk) = &c.walk else {
        return Err(Error::Repair("the check did not walk the snapshots".into()));
    };
    if !c.report.unchecked.is_empty() {
        return Err(Error::Repair(format!(
            "the check could not read everything ({}); nothing was changed, try again",
            c.report.unchecked.join("; ")
        )));
    }
    if !walk.needed_orphans.is_empty() {
        return Err(Error::IndexIncomplete {
            packs: walk.needed_orphans.len(),
        });
    }
    let empty = Tree::new(Vec::new());
    let empty_bytes = empty.encode().map_err(|e| Error::Repair(e.to_string()))?;
    let mut rw = Rewriter {
        c: &c,
        walk,
        writer: opts.forget_damaged.then(|| TreeWriter {
            repo,
            pack: PackBuilder::new(BlobType::Tree, 0),
            seen: HashSet::new(),
            written: Vec::new(),
            count: 0,
        }),
        memo: HashMap::new(),
        empty_tree: repo.master_key().blob_id(&empty_bytes),
    };
    let mut out = Vec::new();
    let mut new_snaps = Vec::new();
    for (sid, snap) in &walk.snapshots {
        if !rw.affected(&snap.tree) {
            continue;
        }
        let (root, lost) = if rw.tree_lost(&snap.tree) {
            (
                rw.empty_tree,
                vec!["/: the root directory listing is lost; the snapshot is now empty".into()],
            )
        } else {
            let (r, l) = rw.rewrite(&snap.tree)?;
            (r, l.into_iter().map(|p| format!("/{p}")).collect())
        };
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
    if let Some(w) = &mut rw.writer {
        if !new_snaps.is_empty() {
            w.add(rw.empty_tree, &empty_bytes)?;
        }
        w.finish()?;
    }
    let trees_written = rw.writer.as_ref().map_or(0, |w| w.count);
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
        trees_written,
        check: c.report.clone(),
    })
}
