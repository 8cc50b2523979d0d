//! The data pass: read packs and verify every byte.
//!
//! A few reader threads fetch whole packs (one GET each, bounded by a
//! channel) while rayon verifies them: the pack's BLAKE3 against its name,
//! the header against the index, and every blob decrypted, decompressed and
//! re-hashed, the blobs of one pack in parallel too. Memory is bounded by
//! (readers + rayon threads) packs: the hand-over queue is a rendezvous.

use lifeboat_core::internals::RepositoryInternals as _;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use lifeboat_format::{
    BlobType, Id, PACK_TRAILER_LEN, PackHeaderEntry, decode_pack_header, open_blob,
    parse_pack_trailer,
};
use lifeboat_index::Index;
use rayon::prelude::*;

use crate::error::{Corruption, Error, Result};
use crate::options::{CheckOptions, CheckProgress};
use crate::record;
use crate::report::{Category, DataStats};
use crate::state::{Loc, State, pack_path};
use crate::subset::{ListedPack, select};

/// Tree plaintexts kept for the walk, at most this many bytes.
const TREE_CACHE_BYTES: u64 = 256 << 20;

/// What verifying one pack found.
#[derive(Debug, Default)]
struct Outcome {
    id: Id,
    bytes: u64,
    blobs: u64,
    /// (category, object, message).
    problems: Vec<(Category, Id, String)>,
    bad_blobs: Vec<Id>,
    /// Damage that loses no blob (header, pack hash).
    affected: Option<Category>,
    /// The pack was deleted after the listing.
    gone: bool,
    store_error: Option<lifeboat_store::Error>,
    trees: Vec<(Id, Vec<u8>)>,
}

impl Outcome {
    fn clean(&self) -> bool {
        !self.gone && self.store_error.is_none() && self.problems.is_empty()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn parse_header(
    key: &lifeboat_format::MasterKey,
    bytes: &[u8],
) -> Result<Vec<PackHeaderEntry>, Corruption> {
    let hlen = parse_pack_trailer(bytes)? as usize;
    let end = bytes.len() - PACK_TRAILER_LEN;
    let start = end.checked_sub(hlen).ok_or(Corruption::HeaderTooLong {
        header: hlen as u64,
        size: bytes.len() as u64,
    })?;
    Ok(decode_pack_header(
        key,
        &bytes[start..end],
        bytes.len() as u64,
    )?)
}

/// The index entries of one pack, by scanning the index (only for packs
/// whose header cannot be used, so rare).
fn index_entries(index: &Index, pack: &Id) -> Vec<(Id, Loc)> {
    let mut v: Vec<(Id, Loc)> = index
        .iter()
        .filter(|(_, l)| l.pack == *pack)
        .map(|(id, l)| (id, Loc::from(l)))
        .collect();
    v.sort_by_key(|(_, l)| l.offset);
    v
}

/// What verifying one blob gave.
enum BlobResult {
    /// Past the end of a truncated pack (reported as the pack's size).
    Skipped,
    /// A data blob that verifies.
    Verified,
    /// A tree blob that verifies, with its plaintext for the walk.
    Tree(Vec<u8>),
    /// Why it failed.
    Failed(lifeboat_format::Error),
}

struct Verifier<'a> {
    c: &'a State<'a>,
    index: &'a Index,
    /// Blobs per pack in the index.
    counts: HashMap<Id, u64>,
    cache_used: AtomicU64,
}

impl Verifier<'_> {
    fn verify(&self, p: ListedPack, got: lifeboat_store::Result<Bytes>) -> Outcome {
        let mut out = Outcome {
            id: p.id,
            ..Outcome::default()
        };
        let bytes = match got {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                out.gone = true;
                return out;
            }
            Err(e) => {
                out.store_error = Some(e);
                return out;
            }
        };
        out.bytes = bytes.len() as u64;
        let key = self.c.key();
        let st = self.c.packs.get(&p.id).copied().unwrap_or_default();
        let wrong_size = st.indexed.is_some_and(|s| s != out.bytes);
        let hash_ok = Id::of_object(&bytes) == p.id;
        let header = parse_header(key, &bytes);
        let mut header_problem: Option<String> = None;
        let entries: Vec<(Id, Loc)> = if st.indexed.is_some() {
            match &header {
                Ok(h) => {
                    let mut matched = 0u64;
                    let mut differ = 0u64;
                    for e in h {
                        if let Some(l) = self.index.get(&e.id) {
                            if l.pack == p.id {
                                let li = Loc::from(l);
                                if li.offset == e.offset
                                    && li.stored_len == e.stored_len
                                    && li.raw_len == e.raw_len
                                    && li.flags == e.flags
                                    && li.blob_type == e.blob_type
                                {
                                    matched += 1;
                                } else {
                                    differ += 1;
                                }
                            }
                        }
                    }
                    let indexed = self.counts.get(&p.id).copied().unwrap_or(0);
                    if differ > 0 || matched != indexed {
                        header_problem = Some(format!(
                            "header and index disagree: {matched} of the {indexed} indexed \
                             blobs match the header, {differ} differ"
                        ));
                        index_entries(self.index, &p.id)
                    } else {
                        h.iter()
                            .map(|e| (e.id, Loc::from_header(p.id, e)))
                            .collect()
                    }
                }
                Err(e) => {
                    header_problem = Some(format!("header cannot be read: {e}"));
                    index_entries(self.index, &p.id)
                }
            }
        } else {
            match &header {
                Ok(h) => h
                    .iter()
                    .map(|e| (e.id, Loc::from_header(p.id, e)))
                    .collect(),
                Err(e) => {
                    header_problem = Some(format!("its header cannot be read: {e}"));
                    Vec::new()
                }
            }
        };
        let results: Vec<(Id, BlobType, BlobResult)> = entries
            .par_iter()
            .map(|(id, l)| {
                let end = l.end();
                if end > out.bytes {
                    // Past the end of a truncated pack: reported as WrongSizePack.
                    return (*id, l.blob_type, BlobResult::Skipped);
                }
                let stored = &bytes[l.offset as usize..end as usize];
                let r = match open_blob(key, l.blob_type, id, l.flags, l.raw_len, stored) {
                    // Only trees are kept (for the walk); data is dropped at once.
                    Ok(plain) if l.blob_type == BlobType::Tree => BlobResult::Tree(plain),
                    Ok(_) => BlobResult::Verified,
                    Err(e) => BlobResult::Failed(e),
                };
                (*id, l.blob_type, r)
            })
            .collect();
        for (id, t, r) in results {
            match r {
                BlobResult::Skipped => {}
                BlobResult::Verified => out.blobs += 1,
                BlobResult::Tree(plain) => {
                    out.blobs += 1;
                    let n = plain.len() as u64;
                    if self.cache_used.fetch_add(n, Ordering::Relaxed) + n <= TREE_CACHE_BYTES {
                        out.trees.push((id, plain));
                    }
                }
                BlobResult::Failed(e) => {
                    out.blobs += 1;
                    out.bad_blobs.push(id);
                    out.problems.push((
                        Category::CorruptBlob,
                        id,
                        format!("{t:?} blob in pack {}: {e}", p.id.short()),
                    ));
                }
            }
        }
        if let Some(h) = header_problem {
            if !wrong_size {
                out.problems.push((Category::CorruptPackHeader, p.id, h));
                out.affected = Some(Category::CorruptPackHeader);
            }
        }
        if !hash_ok && !wrong_size && out.problems.is_empty() {
            out.problems.push((
                Category::CorruptPack,
                p.id,
                "pack does not hash to its name, though its header and every blob verify".into(),
            ));
            out.affected = Some(Category::CorruptPack);
        }
        if wrong_size {
            // The size difference is the finding; keep the pack out of the
            // record so it is read again.
            out.problems
                .push((Category::WrongSizePack, p.id, String::new()));
        }
        out
    }
}

/// Run the data pass for `opts`, recording findings in `c`.
pub(crate) fn read_data(
    c: &mut State<'_>,
    opts: &CheckOptions,
    progress: &CheckProgress,
) -> Result<()> {
    let t0 = Instant::now();
    let mut listed: Vec<ListedPack> = c
        .packs
        .iter()
        .filter_map(|(id, st)| st.listed.map(|size| ListedPack { id: *id, size }))
        .collect();
    listed.sort_by_key(|p| p.id);
    let mut stats = DataStats::default();
    let now = unix_now();

    // `records` also carries how many packs at the head of the queue start
    // whatever the time limit (known-damaged ones and one more).
    let (queue, records) = match opts.resume {
        None => {
            let seed = Id::random().map_err(|source| Error::Random { source })?;
            (select(&listed, opts.subset, &seed), None)
        }
        Some(resume) => {
            let recs = match record::load(c.repo.backend(), c.key()) {
                Ok(r) => r,
                Err(e) => {
                    c.report.warnings.push(format!(
                        "verification records cannot be listed ({e}); every pack counts as never verified"
                    ));
                    record::Records::default()
                }
            };
            c.report.warnings.extend(recs.warnings.iter().cloned());
            let max_age = resume.max_age.map(|d| d.as_secs());
            let mut damaged: Vec<ListedPack> = Vec::new();
            let mut due: Vec<(u64, ListedPack)> = Vec::new();
            for p in &listed {
                let last = recs.packs.get(&p.id).copied();
                if last.is_some_and(|r| r.damaged) {
                    damaged.push(*p);
                    continue;
                }
                let is_due = match (last, max_age) {
                    (None, _) | (_, None) => true,
                    (Some(r), Some(a)) => now.saturating_sub(r.verified) >= a,
                };
                if is_due {
                    due.push((last.map_or(0, |r| r.verified), *p));
                } else {
                    stats.packs_fresh += 1;
                }
            }
            // Never-verified first, then the longest ago; ties by id.
            due.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.id.cmp(&b.1.id)));
            let mut q: Vec<ListedPack> = due.into_iter().map(|(_, p)| p).collect();
            if let Some(n) = resume.max_packs {
                let n = usize::try_from(n).unwrap_or(usize::MAX);
                stats.packs_left += q.len().saturating_sub(n) as u64;
                q.truncate(n);
            }
            // Packs found damaged before are read again first, on top of the
            // limits, so every run reports them.
            let always = damaged.len() + 1;
            damaged.extend(q);
            let q = damaged;
            (q, Some((recs, always)))
        }
    };
    stats.packs_selected = queue.len() as u64;
    progress
        .packs_total
        .store(queue.len() as u64, Ordering::Relaxed);
    progress
        .bytes_total
        .store(queue.iter().map(|p| p.size).sum(), Ordering::Relaxed);

    let always = records.as_ref().map_or(1, |r| r.1);
    let deadline = opts.resume.and_then(|r| r.max_duration).map(|d| t0 + d);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Every pack in flight is held whole, so keep few of them: one reader
    // per two verifying threads keeps the verifiers busy on a local or
    // nearby store, and the hand-over queue holds none (rendezvous).
    let readers = if opts.read_concurrency > 0 {
        opts.read_concurrency
    } else {
        (cpus / 2).clamp(1, 8)
    };

    let repo = c.repo;
    let outcomes: Vec<Outcome> = {
        let index = repo.index();
        let mut counts: HashMap<Id, u64> = HashMap::new();
        for (_, l) in index.iter() {
            *counts.entry(l.pack).or_default() += 1;
        }
        let v = Verifier {
            c: &*c,
            index: &index,
            counts,
            cache_used: AtomicU64::new(0),
        };
        let next = AtomicUsize::new(0);
        let backend = repo.backend();
        let (tx, rx) = crossbeam_channel::bounded::<(ListedPack, lifeboat_store::Result<Bytes>)>(0);
        std::thread::scope(|s| {
            for _ in 0..readers {
                let tx = tx.clone();
                let (queue, next) = (&queue, &next);
                s.spawn(move || {
                    loop {
                        if progress.cancel.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(p) = queue.get(i) else { break };
                        // The first packs always start, so every run makes progress.
                        if i >= always && deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                        let got = backend.get(&pack_path(&p.id));
                        if tx.send((*p, got)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            rx.into_iter()
                .par_bridge()
                .map(|(p, got)| {
                    let o = v.verify(p, got);
                    progress.packs_done.fetch_add(1, Ordering::Relaxed);
                    progress.bytes_done.fetch_add(p.size, Ordering::Relaxed);
                    o
                })
                .collect()
        })
    };
    if progress.cancel.load(Ordering::Relaxed) {
        return Err(Error::Interrupted);
    }

    let attempted = outcomes.len() as u64;
    let mut verified_clean: Vec<Id> = Vec::new();
    let mut damaged: Vec<Id> = Vec::new();
    for o in outcomes {
        if o.gone {
            if c.packs.get(&o.id).is_some_and(|s| s.indexed.is_some()) {
                c.findings.add(
                    Category::MissingPack,
                    o.id,
                    "pack is in the index but was deleted from the store during the check",
                );
            }
            if let Some(st) = c.packs.get_mut(&o.id) {
                st.listed = None;
            }
            c.orphans.remove(&o.id);
            continue;
        }
        if let Some(e) = &o.store_error {
            c.report.unchecked.push(format!("pack {}: {e}", o.id));
            continue;
        }
        stats.packs_read += 1;
        stats.bytes_read += o.bytes;
        stats.blobs_read += o.blobs;
        if o.clean() {
            verified_clean.push(o.id);
        } else {
            damaged.push(o.id);
        }
        c.bad_blobs.extend(o.bad_blobs);
        if c.orphans.contains_key(&o.id) {
            // Nothing uses an orphan unless the walk finds a snapshot that
            // needs its blobs; its damage is a note on the orphan until then.
            for (cat, obj, msg) in o.problems {
                match cat {
                    Category::CorruptBlob => {
                        c.orphan_bad.insert(obj, msg);
                    }
                    _ if !msg.is_empty() => c.orphan_notes.entry(o.id).or_default().push(msg),
                    _ => {}
                }
            }
        } else {
            for (cat, obj, msg) in o.problems {
                if !msg.is_empty() {
                    c.findings.add(cat, obj, msg);
                }
            }
            if let Some(a) = o.affected {
                c.affected_packs.insert(o.id, a);
            }
        }
        c.tree_cache.extend(o.trees);
    }
    stats.packs_left += stats.packs_selected.saturating_sub(attempted);

    if let Some((recs, _)) = records {
        let mut times: HashMap<Id, record::PackRecord> = recs
            .packs
            .iter()
            .filter(|(id, _)| c.packs.get(id).is_some_and(|s| s.listed.is_some()))
            .map(|(id, t)| (*id, *t))
            .collect();
        for (ids, damaged) in [(damaged, true), (verified_clean, false)] {
            for id in ids {
                times.insert(
                    id,
                    record::PackRecord {
                        verified: now,
                        damaged,
                    },
                );
            }
        }
        let mut replaces = recs.merged.clone();
        replaces.extend(recs.garbage.iter().cloned());
        match record::store(c.repo.backend(), c.key(), &times, &replaces) {
            Ok(path) => stats.record = Some(path),
            Err(e) => c
                .report
                .warnings
                .push(format!("the verification record could not be written: {e}")),
        }
    }
    stats.seconds = t0.elapsed().as_secs_f64();
    c.report.data = Some(stats);
    Ok(())
}
