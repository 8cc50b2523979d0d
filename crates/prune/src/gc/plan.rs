//! Planning: which blobs are used, and what happens to each pack and
//! leftover. Reads only.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use lifeboat_core::Repository;
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{
    BlobType, ContentPart, Id, IndexSegment, MarkedObject, MasterKey, Snapshot, Tree, open_blob,
};
use lifeboat_index::{Index, UsedBlobs};
use lifeboat_store::Backend;
use rayon::prelude::*;

use super::marks::Marks;
use super::options::{Error, MaxUnused, PruneOptions, PruneProgress, Result};

/// How many grace periods the mark of a deleted object stays after it
/// fell due (a tombstone): longer than any index write may take.
const TOMBSTONE_GRACES: u64 = 3;

/// What one pack holds, by the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackUsage {
    /// Pack id.
    pub id: Id,
    /// Data or tree.
    pub blob_type: BlobType,
    /// Size of the pack object.
    pub size: u64,
    /// Blobs in it.
    pub blobs: u32,
    /// Blobs in it that some snapshot uses.
    pub used_blobs: u32,
    /// Stored bytes of the used blobs.
    pub used_bytes: u64,
    /// Used blobs stored without compression.
    pub uncompressed_used: u32,
}

/// Usage of every indexed pack, sorted by id: 64 bytes a pack (a map took
/// about 140, 87 MB for 625,000 packs).
#[derive(Debug, Default)]
pub(crate) struct PackTable(Vec<PackUsage>);

impl PackTable {
    /// The usage of pack `id`, if the index lists it.
    pub(crate) fn get(&self, id: &Id) -> Option<&PackUsage> {
        self.0
            .binary_search_by(|u| u.id.cmp(id))
            .ok()
            .and_then(|i| self.0.get(i))
    }

    fn contains_key(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    fn values(&self) -> impl Iterator<Item = &PackUsage> {
        self.0.iter()
    }

    fn keys(&self) -> impl Iterator<Item = &Id> {
        self.0.iter().map(|u| &u.id)
    }
}

/// An object (pack or leftover) that no snapshot needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unused {
    /// Store name.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
    /// Whether the index lists it (a pack with no used blob), as opposed to a
    /// leftover: a pack no index segment names, or a file under `staging/`.
    pub indexed: bool,
}

/// Number and bytes of some objects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many.
    pub count: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Tally {
    fn add(&mut self, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
    }
}

/// What a prune will do (or, with `dry_run`, would do), decided before it
/// changes anything.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PrunePlan {
    /// The prune's start time (Unix seconds), before it listed snapshots:
    /// the time marks are compared with.
    pub started: u64,
    /// Snapshots walked.
    pub snapshots: u64,
    /// Distinct blobs the snapshots use.
    pub used_blobs: u64,
    /// Blobs the snapshots name that the index lacks (a lost or damaged
    /// segment, or a backup whose segment is not written yet). While there
    /// are any, packs that no segment lists are kept: they may hold them.
    pub missing_blobs: u64,
    /// Packs and bytes in `data/` before the prune.
    pub before: Tally,
    /// Packs kept as they are.
    pub keep: Tally,
    /// Partly used packs to repack (their used blobs are copied into new
    /// packs, then the packs are marked).
    pub repack: Vec<PackUsage>,
    /// Unused objects marked by this run (deleted by a later run after the
    /// grace period).
    pub mark: Vec<Unused>,
    /// Objects marked by an earlier run, still unused, not yet due.
    pub still_marked: Vec<Unused>,
    /// Objects deleted now: marked longer than the grace period ago and
    /// still unused (or, with `instant_delete`, every unused object).
    pub delete: Vec<Unused>,
    /// Marked objects used again (by a backup since the mark), so unmarked.
    pub recovered: Vec<String>,
    /// Packs the index lists that are not in `data/` (damage; left alone).
    pub missing_packs: Vec<Id>,
    /// Packs a prune deleted that an index segment written since names
    /// (a backup's segment written late, whose backup then failed): dropped
    /// from the index.
    pub unindex: Vec<Id>,
    /// Bytes in `data/` once the deletions of this run and later runs are
    /// done, the repacks written and their packs deleted.
    pub size_after: u64,
    /// Unused bytes left in kept, partly used packs.
    pub unused_after: u64,
    pub(crate) marks: Vec<MarkedObject>,
    pub(crate) marks_listed: Vec<Id>,
    pub(crate) marks_changed: bool,
}

impl PrunePlan {
    /// Bytes deleted by this run.
    pub fn bytes_deleted_now(&self) -> u64 {
        self.delete.iter().map(|u| u.size).sum()
    }

    /// Whether the run changes nothing on the store.
    pub fn is_empty(&self) -> bool {
        self.repack.is_empty()
            && self.delete.is_empty()
            && self.unindex.is_empty()
            && !self.marks_changed
    }
}

/// Read tree blob `id` through `index`.
fn read_tree(backend: &Arc<dyn Backend>, key: &MasterKey, index: &Index, id: &Id) -> Result<Tree> {
    let loc = index.get(id).ok_or(Error::TreeNotIndexed { tree: *id })?;
    let start = u64::from(loc.offset);
    let path = layout::object_path(Folder::Data, &loc.pack);
    let bytes = backend.get_metadata_range(&path, start..start + u64::from(loc.stored_len))?;
    let fmt = |e| Error::Format {
        what: format!("tree {id} in pack {}", loc.pack),
        source: e,
    };
    let plain = open_blob(key, BlobType::Tree, id, loc.flags, loc.raw_len, &bytes).map_err(fmt)?;
    Tree::decode(&plain).map_err(fmt)
}

/// Trees read and decoded at once while marking: enough to keep every
/// core busy, few enough that memory holds only this many trees.
const TREE_BATCH: usize = 16;

/// Mark every blob reachable from every snapshot. Each tree is read once
/// however many snapshots share it; memory is the bitset, the stack of
/// trees not yet read, and one batch of [`TREE_BATCH`] trees, which are
/// read and decoded in parallel.
pub(crate) fn mark_used(
    repo: &Repository,
    snapshots: &[(Id, Snapshot)],
    index: &Index,
    used: &mut UsedBlobs<'_>,
    progress: &PruneProgress,
) -> Result<u64> {
    progress
        .snapshots_total
        .store(snapshots.len() as u64, Ordering::Relaxed);
    let (backend, key) = (repo.backend(), repo.master_key());
    let mut missing = 0u64;
    let mut batch = Vec::with_capacity(TREE_BATCH);
    for (_, snap) in snapshots {
        let mut stack = vec![snap.tree];
        while !stack.is_empty() {
            batch.clear();
            while batch.len() < TREE_BATCH {
                let Some(t) = stack.pop() else { break };
                match used.insert(&t) {
                    Some(true) => batch.push(t),
                    Some(false) => {}
                    None => return Err(Error::TreeNotIndexed { tree: t }),
                }
            }
            let trees: Vec<Result<Tree>> = batch
                .par_iter()
                .map(|t| read_tree(backend, key, index, t))
                .collect();
            for tree in trees {
                let tree = tree?;
                progress.trees_done.fetch_add(1, Ordering::Relaxed);
                for n in tree.nodes {
                    for part in &n.content {
                        if let ContentPart::Blob { id, .. } = part
                            && used.insert(id).is_none()
                        {
                            missing += 1;
                        }
                    }
                    if let Some(sub) = n.subtree {
                        stack.push(sub);
                    }
                }
            }
        }
        progress.snapshots_done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(missing)
}

/// Read the live segment `id`; a vanished one means a concurrent compaction.
pub(crate) fn read_segment(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    id: &Id,
) -> Result<IndexSegment> {
    let path = layout::object_path(Folder::Index, id);
    let bytes = match backend.get(&path) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Err(Error::IndexChanged { segment: *id }),
        Err(e) => return Err(e.into()),
    };
    IndexSegment::decode(key, &bytes).map_err(|e| Error::Format {
        what: path,
        source: e,
    })
}

/// Usage of every indexed pack, from the live segments. A blob counts as
/// used in every pack that holds a copy of it, so a duplicate never makes
/// a pack look unused while a reader may still find the blob there.
pub(crate) fn pack_usage(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    index: &Index,
    used: &UsedBlobs<'_>,
) -> Result<PackTable> {
    let mut packs = Vec::with_capacity(index.pack_count());
    for seg_id in index.segments() {
        let seg = read_segment(backend, key, seg_id)?;
        for p in &seg.packs {
            let mut u = PackUsage {
                id: p.id,
                blob_type: p.blob_type,
                size: p.size,
                blobs: p.blobs.len() as u32,
                used_blobs: 0,
                used_bytes: 0,
                uncompressed_used: 0,
            };
            // A group's envelope counts as used in the share of its
            // members' plaintext that is used: a repack drops its dead
            // members (format.md §8.1). Offset to (stored, raw, used raw).
            let mut groups: std::collections::HashMap<u32, (u64, u64, u64)> =
                std::collections::HashMap::new();
            for b in &p.blobs {
                let is_used = used.contains(&b.id);
                if b.flags.grouped() {
                    let g = groups
                        .entry(b.offset)
                        .or_insert((u64::from(b.stored_len), 0, 0));
                    // An empty member weighs a byte, so that a used one
                    // counts for something.
                    let weight = u64::from(b.raw_len).max(1);
                    g.1 += weight;
                    if is_used {
                        g.2 += weight;
                    }
                }
                if is_used {
                    u.used_blobs += 1;
                    if !b.flags.grouped() {
                        u.used_bytes += u64::from(b.stored_len);
                    }
                    u.uncompressed_used += u32::from(!b.flags.compressed());
                }
            }
            for (stored, raw, used_raw) in groups.into_values() {
                u.used_bytes += stored * used_raw / raw.max(1);
            }
            packs.push(u);
        }
    }
    // A pack listed by several segments counts once, as the first lists it
    // (the sort is stable).
    packs.sort_by_key(|u| u.id);
    packs.dedup_by(|later, first| later.id == first.id);
    Ok(PackTable(packs))
}

/// Decide, from the usage of every pack, the objects listed in `data/` and
/// `staging/`, and the marks.
///
/// With `keep_unindexed`, packs that no index segment lists are kept as
/// they are, neither marked nor deleted: the caller found used blobs that
/// no segment lists, and such a pack may hold them.
pub(crate) fn decide(
    repo: &Repository,
    opts: &PruneOptions,
    now: u64,
    usage: &PackTable,
    marks: &Marks,
    keep_unindexed: bool,
) -> Result<PrunePlan> {
    let backend = repo.backend();
    let grace = opts.grace.as_secs();
    let mut plan = PrunePlan {
        started: now,
        marks_listed: marks.listed.clone(),
        ..PrunePlan::default()
    };
    let mut unused: Vec<Unused> = Vec::new();
    let mut partly: Vec<PackUsage> = Vec::new();
    let mut listed: HashMap<Id, u64> = HashMap::new();
    for obj in backend.list(&Folder::Data.prefix())? {
        let Some(id) = layout::id_of_path(&obj.path) else {
            continue;
        };
        plan.before.add(obj.size);
        listed.insert(id, obj.size);
        match usage.get(&id) {
            Some(u) if u.used_blobs > 0 => {
                if u.used_blobs < u.blobs
                    || (opts.repack_small && u.size < u64::from(repo.config().pack_size) / 2)
                    || (opts.repack_uncompressed
                        && repo.config().compression_level != 0
                        && u.uncompressed_used > 0)
                {
                    partly.push(*u);
                } else {
                    plan.keep.add(u.size);
                }
            }
            Some(u) => unused.push(Unused {
                path: obj.path,
                size: u.size,
                indexed: true,
            }),
            None if keep_unindexed => plan.keep.add(obj.size),
            None => unused.push(Unused {
                path: obj.path,
                size: obj.size,
                indexed: false,
            }),
        }
    }
    plan.missing_packs = usage
        .keys()
        .filter(|id| !listed.contains_key(id))
        .copied()
        .collect();
    for obj in backend.list(&Folder::Staging.prefix())? {
        unused.push(Unused {
            path: obj.path,
            size: obj.size,
            indexed: false,
        });
    }

    // Repack: forced ones first, then by unused share, until the unused
    // space left is within the limit or the size limit is reached.
    let used_total: u64 = usage.values().map(|u| u.used_bytes).sum();
    let limit = match opts.max_unused {
        MaxUnused::Percent(p) => (used_total as f64 * p.max(0.0) / 100.0) as u64,
        MaxUnused::Bytes(b) => b,
        MaxUnused::Unlimited => u64::MAX,
    };
    let forced = |u: &PackUsage| {
        (opts.repack_small && u.size < u64::from(repo.config().pack_size) / 2)
            || (opts.repack_uncompressed
                && repo.config().compression_level != 0
                && u.uncompressed_used > 0)
    };
    let waste = |u: &PackUsage| u.size.saturating_sub(u.used_bytes);
    partly.sort_by(|a, b| {
        forced(b).cmp(&forced(a)).then(
            (waste(b) as f64 / b.size.max(1) as f64)
                .total_cmp(&(waste(a) as f64 / a.size.max(1) as f64)),
        )
    });
    let mut unused_left: u64 = partly.iter().map(waste).sum();
    let mut repack_bytes = 0u64;
    for u in partly {
        let within_size = opts
            .max_repack_size
            .is_none_or(|m| repack_bytes + u.size <= m);
        if within_size && (forced(&u) || unused_left > limit) {
            repack_bytes += u.size;
            unused_left -= waste(&u);
            plan.repack.push(u);
        } else {
            plan.keep.add(u.size);
        }
    }
    plan.unused_after = unused_left;

    // Two-phase deletion of everything unused.
    let mut seen = std::collections::HashSet::new();
    for u in unused {
        seen.insert(u.path.clone());
        match marks.objects.get(&u.path) {
            Some(m) => {
                let due = now >= m.delete_after.max(m.marked.saturating_add(grace));
                plan.marks.push(m.clone());
                if due || opts.instant_delete {
                    plan.delete.push(u);
                } else {
                    plan.still_marked.push(u);
                }
            }
            None if opts.instant_delete => plan.delete.push(u),
            None => {
                plan.marks.push(MarkedObject {
                    path: u.path.clone(),
                    size: u.size,
                    marked: now,
                    delete_after: now.saturating_add(grace),
                });
                plan.mark.push(u);
            }
        }
    }
    // Marks of objects that are no longer unused: still listed means used
    // again (recovered); gone means deleted, and the mark stays one more
    // grace period as a tombstone, so that backups keep away from a pack an
    // index segment written late may still name, and prunes drop it from
    // the index.
    for (path, m) in &marks.objects {
        if seen.contains(path) {
            continue;
        }
        let pack = layout::id_of_path(path).filter(|_| Folder::Data.holds(path));
        if pack.is_some_and(|id| listed.contains_key(&id)) {
            plan.recovered.push(path.clone());
            continue;
        }
        if now < m.delete_after.saturating_add(TOMBSTONE_GRACES * grace) {
            plan.marks.push(m.clone());
        }
        // Gone for good: a blob listed there is found in its other copy,
        // if any, only once the index forgets this one.
        if let Some(id) = pack
            && usage.contains_key(&id)
        {
            plan.unindex.push(id);
        }
    }
    plan.missing_packs.retain(|id| !plan.unindex.contains(id));
    plan.marks_changed = !plan.mark.is_empty()
        || marks.objects.len() != plan.marks.len()
        || marks.listed.len() > 1
        || !plan.repack.is_empty();
    let repacked_used: u64 = plan.repack.iter().map(|u| u.used_bytes).sum();
    plan.size_after = plan.keep.bytes + repacked_used;
    Ok(plan)
}
