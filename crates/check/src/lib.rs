//! Verification of Lifeboat repositories.
//!
//! Owns `lifeboat check`: a structural pass (index against the pack listing,
//! every snapshot's trees walked to confirm each referenced blob is indexed)
//! and an optional data pass that downloads packs and verifies every byte.
//! It only reads: it never writes, repairs or deletes anything.

use std::collections::{BTreeMap, HashMap, HashSet};

use lifeboat_core::Repository;
use lifeboat_format::{
    ContentPart, Id, NodeKind, decode_pack_header, open_blob, parse_pack_trailer,
};
use lifeboat_index::pack_path;
use rayon::prelude::*;
use serde::Serialize;

/// Errors that stop a check from running at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] lifeboat_store::Error),
    /// The repository could not be read.
    #[error(transparent)]
    Core(#[from] lifeboat_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Kinds of damage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Category {
    /// An indexed pack is not in the store.
    MissingPack,
    /// A pack in the store is in no index.
    OrphanPack,
    /// A pack's size differs from its index entry.
    WrongSizePack,
    /// A pack's bytes do not hash to its name.
    CorruptPack,
    /// A pack's header is unreadable or disagrees with the index.
    CorruptPackHeader,
    /// A blob fails to decrypt, decompress or verify.
    CorruptBlob,
    /// A blob referenced by a snapshot is in no index.
    MissingBlob,
    /// A blob is indexed in more than one pack.
    DuplicateBlob,
    /// A snapshot or one of its trees cannot be read.
    DamagedSnapshot,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// Kind of damage.
    pub category: Category,
    /// The object concerned (pack, blob or snapshot id).
    pub object: String,
    /// Details.
    pub message: String,
}

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct CheckOptions {
    /// Download and verify every pack.
    pub read_data: bool,
}

/// The result of a check.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// Findings.
    pub problems: Vec<Problem>,
    /// Snapshots whose data is damaged, by id.
    pub damaged_snapshots: Vec<String>,
    /// Snapshots checked.
    pub snapshots: u64,
    /// Packs listed in the store.
    pub packs: u64,
    /// Packs whose data was read.
    pub packs_read: u64,
    /// Blobs verified by reading.
    pub blobs_read: u64,
}

impl CheckReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(category: Category, object: impl ToString, message: impl ToString) -> Problem {
    Problem {
        category,
        object: object.to_string(),
        message: message.to_string(),
    }
}

/// Check `repo`. Damage is reported in the result; `Err` means the check
/// itself could not run.
pub fn check(repo: &Repository, opts: &CheckOptions) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let backend = repo.backend();
    // One listing of all packs.
    let listed: HashMap<Id, u64> = backend
        .list("data/")?
        .into_iter()
        .filter_map(|o| {
            o.path
                .rsplit('/')
                .next()
                .and_then(|n| n.parse().ok())
                .map(|id| (id, o.size))
        })
        .collect();
    report.packs = listed.len() as u64;
    let index = repo.index();
    let indexed: HashMap<Id, u64> = index.packs().collect();
    for (id, size) in &indexed {
        match listed.get(id) {
            None => report.problems.push(problem(
                Category::MissingPack,
                id,
                "pack is indexed but missing from the store",
            )),
            Some(s) if s != size => report.problems.push(problem(
                Category::WrongSizePack,
                id,
                format!("pack has {s} bytes, index says {size}"),
            )),
            _ => {}
        }
    }
    for id in listed.keys() {
        if !indexed.contains_key(id) {
            report
                .problems
                .push(problem(Category::OrphanPack, id, "pack is in no index"));
        }
    }
    if index.duplicates() > 0 {
        report.problems.push(problem(
            Category::DuplicateBlob,
            "index",
            format!(
                "{} blob entries are indexed more than once",
                index.duplicates()
            ),
        ));
    }
    drop(index);

    // Walk every snapshot.
    let mut damaged: BTreeMap<String, ()> = BTreeMap::new();
    let mut seen_trees: HashSet<Id> = HashSet::new();
    for sid in repo.snapshot_ids()? {
        report.snapshots += 1;
        let snap = match repo.load_snapshot(&sid) {
            Ok(s) => s,
            Err(e) => {
                report
                    .problems
                    .push(problem(Category::DamagedSnapshot, sid, e));
                damaged.insert(sid.to_hex(), ());
                continue;
            }
        };
        let mut stack = vec![snap.tree];
        let mut bad = false;
        while let Some(t) = stack.pop() {
            if !seen_trees.insert(t) {
                continue;
            }
            let tree = match repo.load_tree(&t) {
                Ok(tree) => tree,
                Err(e) => {
                    let cat = if matches!(e, lifeboat_core::Error::BlobNotFound { .. }) {
                        Category::MissingBlob
                    } else {
                        Category::DamagedSnapshot
                    };
                    report.problems.push(problem(
                        cat,
                        t,
                        format!("tree of snapshot {}: {e}", sid.short()),
                    ));
                    bad = true;
                    continue;
                }
            };
            let index = repo.index();
            for n in &tree.nodes {
                if n.kind == NodeKind::Dir {
                    if let Some(s) = n.subtree {
                        stack.push(s);
                    }
                }
                for c in &n.content {
                    if let ContentPart::Blob { id, .. } = c {
                        if !index.contains(id) {
                            report.problems.push(problem(
                                Category::MissingBlob,
                                id,
                                format!("data of {:?} in snapshot {}", n.name_lossy(), sid.short()),
                            ));
                            bad = true;
                        }
                    }
                }
            }
        }
        if bad {
            damaged.insert(sid.to_hex(), ());
        }
    }

    if opts.read_data {
        let key = repo.master_key();
        let packs: Vec<Id> = listed.keys().copied().collect();
        let results: Vec<(Vec<Problem>, u64)> = packs
            .par_iter()
            .map(|id| {
                let mut probs = Vec::new();
                let bytes = match backend.get(&pack_path(id)) {
                    Ok(b) => b,
                    Err(e) => return (vec![problem(Category::MissingPack, id, e)], 0),
                };
                if Id::of_object(&bytes) != *id {
                    probs.push(problem(
                        Category::CorruptPack,
                        id,
                        "pack content does not hash to its name",
                    ));
                }
                let header = parse_pack_trailer(&bytes).and_then(|hlen| {
                    let end = bytes.len() - lifeboat_format::PACK_TRAILER_LEN;
                    let start = end.checked_sub(hlen as usize).ok_or(
                        lifeboat_format::Error::Truncated {
                            what: "pack header",
                            needed: hlen as usize,
                            actual: end,
                        },
                    )?;
                    decode_pack_header(key, &bytes[start..end], bytes.len() as u64)
                });
                let entries = match header {
                    Ok(h) => h,
                    Err(e) => {
                        probs.push(problem(Category::CorruptPackHeader, id, e));
                        return (probs, 0);
                    }
                };
                let index = repo.index();
                let mut n = 0;
                for e in &entries {
                    match index.get(&e.id) {
                        Some(l)
                            if l.pack == *id
                                && (l.offset != e.offset || l.stored_len != e.stored_len) =>
                        {
                            probs.push(problem(
                                Category::CorruptPackHeader,
                                id,
                                format!("blob {} differs from the index", e.id),
                            ))
                        }
                        _ => {}
                    }
                    let blob = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
                    if let Err(err) = open_blob(key, e.blob_type, &e.id, e.flags, e.raw_len, blob) {
                        probs.push(problem(
                            Category::CorruptBlob,
                            e.id,
                            format!("in pack {id}: {err}"),
                        ));
                    }
                    n += 1;
                }
                (probs, n)
            })
            .collect();
        for (p, n) in results {
            report.packs_read += 1;
            report.blobs_read += n;
            report.problems.extend(p);
        }
    }
    report.damaged_snapshots = damaged.into_keys().collect();
    report
        .problems
        .sort_by(|a, b| a.category.cmp(&b.category).then(a.object.cmp(&b.object)));
    Ok(report)
}
