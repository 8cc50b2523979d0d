//! The snapshot walk: load every snapshot, walk its trees breadth-first
//! (each tree once, however many snapshots share it, the trees of one level
//! in parallel), and look up every blob they reference. Then name, for each
//! finding, the snapshots that reach it.

use lifeboat_core::internals::RepositoryInternals as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lifeboat_format::layout::{Folder, id_of_path, object_path};
use lifeboat_format::{BlobType, ContentPart, Id, NodeKind, Snapshot, Tree};
use lifeboat_index::Index;
use rayon::prelude::*;

use crate::error::{Corruption, Error, Result};
use crate::options::CheckProgress;
use crate::report::Category;
use crate::state::{Mark, ReadErr, State};

/// What the walk learnt about one tree.
#[derive(Debug, Default)]
pub(crate) struct TreeFacts {
    /// Subtrees.
    pub children: Vec<Id>,
    /// Findings about the tree itself and the data blobs it references.
    pub marks: Vec<Mark>,
    /// Whether the tree could be read (its children are then known).
    pub readable: bool,
}

/// The walk's results, kept for the report and for repair.
#[derive(Debug, Default)]
pub(crate) struct Walk {
    pub trees: HashMap<Id, TreeFacts>,
    /// Snapshots that could be read.
    pub snapshots: Vec<(Id, Snapshot)>,
    /// Snapshots whose object is damaged.
    pub unreadable: Vec<Id>,
    /// Every finding each tree reaches, itself and below; trees that reach
    /// none are absent.
    pub reach: HashMap<Id, Arc<Vec<Mark>>>,
    /// Orphan packs holding needed blobs, with how many.
    pub needed_orphans: BTreeMap<Id, u64>,
}

impl Walk {
    /// Findings reachable from `tree`.
    pub fn reach(&self, tree: &Id) -> &[Mark] {
        self.reach.get(tree).map(|v| v.as_slice()).unwrap_or(&[])
    }
}

struct Visit {
    id: Id,
    facts: TreeFacts,
    children: Vec<(Id, String)>,
    /// New findings: (category, object, message).
    new: Vec<(Category, Id, String)>,
    orphan_blobs: Vec<(Id, Id)>,
    unchecked: Option<String>,
}

fn join(path: &str, name: &str) -> String {
    if path.ends_with('/') {
        format!("{path}{name}")
    } else {
        format!("{path}/{name}")
    }
}

fn visit(c: &State<'_>, index: &Index, id: Id, path: &str) -> Visit {
    let mut v = Visit {
        id,
        facts: TreeFacts::default(),
        children: Vec::new(),
        new: Vec::new(),
        orphan_blobs: Vec::new(),
        unchecked: None,
    };
    let r = c.resolve(index, &id, BlobType::Tree);
    for m in &r.marks {
        match m.0 {
            Category::MissingTree => v.new.push((
                m.0,
                id,
                format!("the listing of directory {path} is in no index and no pack"),
            )),
            Category::MissingIndexSegment => v.orphan_blobs.push((m.1, id)),
            _ => {}
        }
    }
    v.facts.marks = r.marks;
    let Some(loc) = r.loc else {
        return v;
    };
    let bytes = match c.tree_cache.get(&id) {
        Some(b) => Ok(b.clone()),
        None => c.read_blob(&id, BlobType::Tree, &loc),
    };
    let tree = match bytes {
        Ok(b) => Tree::decode(&b).map_err(|e| format!("does not decode: {e}")),
        Err(ReadErr::Store(e)) => {
            v.unchecked = Some(format!("tree {id} (directory {path}): {e}"));
            return v;
        }
        Err(ReadErr::NotFound(e)) => {
            v.facts.marks.push((Category::MissingPack, loc.pack));
            v.new.push((
                Category::MissingPack,
                loc.pack,
                format!("pack disappeared from the store during the check: {e}"),
            ));
            return v;
        }
        Err(e @ (ReadErr::Corrupt(_) | ReadErr::Truncated(_))) => Err(e.to_string()),
    };
    let tree = match tree {
        Ok(t) => t,
        Err(e) => {
            v.facts.marks.push((Category::CorruptBlob, id));
            v.new.push((
                Category::CorruptBlob,
                id,
                format!(
                    "tree blob of directory {path} in pack {}: {e}",
                    loc.pack.short()
                ),
            ));
            return v;
        }
    };
    v.facts.readable = true;
    for n in &tree.nodes {
        let p = join(path, &n.name_lossy());
        if n.kind == NodeKind::Dir {
            if let Some(s) = n.subtree {
                v.facts.children.push(s);
                v.children.push((s, p.clone()));
            }
        }
        for part in &n.content {
            let ContentPart::Blob { id: b, .. } = part else {
                continue;
            };
            let r = c.resolve(index, b, BlobType::Data);
            for m in r.marks {
                match m.0 {
                    Category::MissingBlob => v.new.push((
                        m.0,
                        *b,
                        format!("data of file {p} is in no index and no pack"),
                    )),
                    Category::MissingIndexSegment => v.orphan_blobs.push((m.1, *b)),
                    _ => {}
                }
                v.facts.marks.push(m);
            }
        }
    }
    v.facts.marks.sort();
    v.facts.marks.dedup();
    v
}

/// Load one snapshot, checking its name.
fn load_snapshot(c: &State<'_>, id: &Id) -> std::result::Result<Snapshot, ReadErr> {
    let bytes = c
        .backend
        .get(&object_path(Folder::Snapshots, id))
        .map_err(|e| match e {
            e if e.is_not_found() => ReadErr::NotFound(e),
            e => ReadErr::Store(e),
        })?;
    if Id::of_object(&bytes) != *id {
        return Err(Corruption::NameMismatch.into());
    }
    Ok(Snapshot::decode(c.key(), &bytes)?)
}

/// Walk every snapshot; record findings in `c`.
pub(crate) fn walk(c: &mut State<'_>, progress: &CheckProgress) -> Result<Walk> {
    let mut w = Walk::default();
    let mut ids: Vec<Id> = c
        .backend
        .list(&Folder::Snapshots.prefix())?
        .iter()
        .filter_map(|o| id_of_path(&o.path))
        .collect();
    ids.sort();
    c.report.snapshots = ids.len() as u64;
    let loaded: Vec<(Id, std::result::Result<Snapshot, ReadErr>)> = {
        let cr: &State<'_> = c;
        ids.par_iter()
            .map(|id| (*id, load_snapshot(cr, id)))
            .collect()
    };
    for (id, r) in loaded {
        match r {
            Ok(s) => w.snapshots.push((id, s)),
            Err(ReadErr::NotFound(_)) => c.report.snapshots -= 1,
            Err(ReadErr::Store(e)) => c.report.unchecked.push(format!("snapshot {id}: {e}")),
            Err(e @ (ReadErr::Corrupt(_) | ReadErr::Truncated(_))) => {
                c.findings.add(
                    Category::DamagedSnapshot,
                    id,
                    format!("snapshot object cannot be read: {e}"),
                );
                c.findings.attach(&(Category::DamagedSnapshot, id), id);
                w.unreadable.push(id);
            }
        }
    }

    let mut queued: HashSet<Id> = HashSet::new();
    let mut frontier: Vec<(Id, String)> = Vec::new();
    for (_, s) in &w.snapshots {
        if queued.insert(s.tree) {
            frontier.push((s.tree, "/".to_string()));
        }
    }
    let repo = c.repo;
    let mut orphan_blobs: BTreeMap<Id, HashSet<Id>> = BTreeMap::new();
    while !frontier.is_empty() {
        if progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let visits: Vec<Visit> = {
            let index = repo.index();
            let cr: &State<'_> = c;
            frontier
                .par_iter()
                .map(|(id, path)| {
                    let v = visit(cr, &index, *id, path);
                    progress.trees_done.fetch_add(1, Ordering::Relaxed);
                    v
                })
                .collect()
        };
        let mut next = Vec::new();
        for v in visits {
            for (cat, obj, msg) in v.new {
                c.findings.add(cat, obj, msg);
            }
            for (pack, blob) in v.orphan_blobs {
                orphan_blobs.entry(pack).or_default().insert(blob);
            }
            if let Some(u) = v.unchecked {
                c.report.unchecked.push(u);
            }
            for (ch, p) in v.children {
                if queued.insert(ch) {
                    next.push((ch, p));
                }
            }
            w.trees.insert(v.id, v.facts);
        }
        frontier = next;
    }
    c.report.trees = w.trees.len() as u64;
    w.needed_orphans = orphan_blobs
        .into_iter()
        .map(|(p, b)| (p, b.len() as u64))
        .collect();

    // Which findings each tree reaches, bottom-up, each tree once.
    let empty: Arc<Vec<Mark>> = Arc::new(Vec::new());
    let mut memo: HashMap<Id, Arc<Vec<Mark>>> = HashMap::new();
    let mut in_progress: HashSet<Id> = HashSet::new();
    for (_, s) in &w.snapshots {
        let mut stack: Vec<(Id, bool)> = vec![(s.tree, false)];
        while let Some((t, expanded)) = stack.pop() {
            if memo.contains_key(&t) {
                continue;
            }
            let Some(f) = w.trees.get(&t) else {
                memo.insert(t, empty.clone());
                continue;
            };
            if !expanded {
                in_progress.insert(t);
                stack.push((t, true));
                for ch in &f.children {
                    if !memo.contains_key(ch) && !in_progress.contains(ch) {
                        stack.push((*ch, false));
                    }
                }
                continue;
            }
            let mut all: Vec<Mark> = f.marks.clone();
            for ch in &f.children {
                if let Some(m) = memo.get(ch) {
                    all.extend(m.iter().copied());
                }
            }
            all.sort();
            all.dedup();
            in_progress.remove(&t);
            memo.insert(
                t,
                if all.is_empty() {
                    empty.clone()
                } else {
                    Arc::new(all)
                },
            );
        }
    }
    memo.retain(|_, v| !v.is_empty());
    w.reach = memo;
    for (sid, s) in &w.snapshots {
        for m in w.reach(&s.tree) {
            c.findings.attach(m, *sid);
        }
    }
    Ok(w)
}
