//! Copying snapshots between repositories (`lifeboat copy`), and creating a
//! repository that can receive such copies blob by blob.
//!
//! Blob ids are keyed hashes, so two repositories give one chunk the same id
//! only if they share the id key. `copy` therefore requires it: the target is
//! made with [`init_with_params_from`] (`lifeboat init --from-repo SRC
//! --copy-params`), which takes the id key, chunker seed, gear table and chunk sizes of
//! the source but a fresh data key. Then a copy moves blobs by id: whatever
//! the target already has is neither read nor sent again, and trees are
//! copied as they are. Every blob is decrypted and verified from the source
//! and encrypted anew under the target's key.

use crate::repo::RepositoryInternals as _;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_format::layout::{Folder, object_path};
use lifeboat_format::{BlobType, Id, MasterKey, Snapshot, Tree, open_blob};
use lifeboat_index::BlobLocation;
use lifeboat_store::Backend;
use rayon::prelude::*;

use crate::error::BlobDamage;
use crate::saver::BlobSaver;
use crate::{Error, InitOptions, Progress, Repository, Result};

/// What [`copy_snapshots`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CopyReport {
    /// Snapshots written to the target: (source id, target id).
    pub copied: Vec<(Id, Id)>,
    /// Source snapshots the target already had (an identical snapshot).
    pub skipped: Vec<Id>,
    /// Data blobs sent to the target.
    pub data_blobs_copied: u64,
    /// Tree blobs sent to the target.
    pub tree_blobs_copied: u64,
    /// Plaintext bytes of the blobs sent.
    pub bytes_copied: u64,
    /// Blobs the snapshots need that the target had already.
    pub blobs_present: u64,
}

const ID_PROBE: &[u8] = b"lifeboat: do these repositories share an id key?";

/// Whether `a` and `b` name blobs alike (same id key).
pub fn same_blob_ids(a: &Repository, b: &Repository) -> bool {
    a.key.blob_id(ID_PROBE) == b.key.blob_id(ID_PROBE)
}

/// Create a repository in `backend` that shares `source`'s blob id key,
/// chunker seed and chunk sizes (so [`copy_snapshots`] can move blobs by id
/// and later backups deduplicate against copied data), with its own data
/// key and password.
pub fn init_with_params_from(
    backend: Arc<dyn Backend>,
    password: &[u8],
    opts: &InitOptions,
    source: &Repository,
) -> Result<Repository> {
    let fresh = MasterKey::generate().map_err(|e| Error::format("generating the master key", e))?;
    let mut bytes = fresh.to_bytes();
    let theirs = source.key.to_bytes();
    bytes[32..].copy_from_slice(&theirs[32..]);
    let key = MasterKey::from_bytes(&bytes)
        .map_err(|e| Error::format("combining the source's id key with a new data key", e))?;
    let mut opts = opts.clone();
    opts.chunker = source.config.chunker;
    opts.chunker_gear = source.config.chunker_gear;
    Repository::init_with_key(backend, password, &opts, key)
}

/// Copy `snapshots` of `src` into `dst`. Snapshots `dst` already holds (an
/// identical snapshot, as after an earlier copy) are skipped; of the rest,
/// only blobs `dst` lacks are read and sent. Everything is indexed before
/// any snapshot is written, so an interrupted copy leaves no snapshot that
/// refers to missing data. `progress.bytes` counts plaintext bytes sent,
/// `progress.files` blobs sent.
pub fn copy_snapshots(
    src: &Repository,
    dst: &Repository,
    snapshots: &[(Id, Snapshot)],
    progress: &Progress,
) -> Result<CopyReport> {
    if !same_blob_ids(src, dst) {
        return Err(Error::InvalidArgument(format!(
            "{} and {} name blobs with different keys, so blobs cannot be copied by id; \
             create the target with `lifeboat init --from-repo {} --copy-params`",
            src.backend.location(),
            dst.backend.location(),
            src.backend.location()
        )));
    }
    let mut report = CopyReport::default();
    let existing: Vec<Snapshot> = dst.snapshots()?.items.into_iter().map(|(_, s)| s).collect();
    let todo: Vec<&(Id, Snapshot)> = snapshots
        .iter()
        .filter(|(id, s)| {
            let have = existing.contains(s);
            if have {
                report.skipped.push(*id);
            }
            !have
        })
        .collect();
    if todo.is_empty() {
        return Ok(report);
    }

    // Every tree of the snapshots, read once; the data blobs they name.
    let mut trees: Vec<(Id, Vec<u8>)> = Vec::new();
    let mut data: HashSet<Id> = HashSet::new();
    let mut seen: HashSet<Id> = HashSet::new();
    let mut queue: Vec<Id> = todo.iter().map(|(_, s)| s.tree).collect();
    while !queue.is_empty() {
        queue.retain(|id| seen.insert(*id));
        let loaded: Vec<Result<(Id, Vec<u8>, Tree)>> = queue
            .par_iter()
            .map(|id| {
                let bytes = src.read_blob(BlobType::Tree, id)?;
                let tree = Tree::decode(&bytes).map_err(|e| {
                    Error::corrupt_blob(
                        src.index().get(id).map(|l| l.pack).unwrap_or_default(),
                        *id,
                        e,
                    )
                })?;
                Ok((*id, bytes, tree))
            })
            .collect();
        let mut next = Vec::new();
        for r in loaded {
            let (id, bytes, tree) = r?;
            for n in &tree.nodes {
                if let Some(sub) = n.subtree {
                    next.push(sub);
                }
                for part in &n.content {
                    if let lifeboat_format::ContentPart::Blob { id, .. } = part {
                        data.insert(*id);
                    }
                }
            }
            trees.push((id, bytes));
        }
        if progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        queue = next;
    }

    // Data blobs the target lacks, grouped by source pack.
    let mut by_pack: HashMap<Id, Vec<(Id, BlobLocation)>> = HashMap::new();
    {
        let have = dst.index();
        let index = src.index();
        for id in &data {
            if have.contains(id) {
                report.blobs_present += 1;
                continue;
            }
            let loc = index.get(id).ok_or(Error::BlobNotFound { blob: *id })?;
            by_pack.entry(loc.pack).or_default().push((*id, loc));
        }
    }
    let (saver, rx) = BlobSaver::new(dst, dst.backend.upload_parallelism());
    saver.drive(rx, || -> Result<()> {
        let sent = AtomicU64::new(0);
        let bytes_sent = AtomicU64::new(0);
        let packs: Vec<(Id, Vec<(Id, BlobLocation)>)> = by_pack.into_iter().collect();
        packs
            .par_iter()
            .try_for_each(|(pack, blobs)| -> Result<()> {
                if progress.cancel.load(Ordering::Relaxed) {
                    return Err(Error::Interrupted);
                }
                // One ranged read per pack, covering the blobs wanted from it.
                let start = blobs
                    .iter()
                    .map(|(_, l)| u64::from(l.offset))
                    .min()
                    .unwrap_or(0);
                let end = blobs
                    .iter()
                    .map(|(_, l)| u64::from(l.offset) + u64::from(l.stored_len))
                    .max()
                    .unwrap_or(0);
                let span = src
                    .backend
                    .get_range(&object_path(Folder::Data, pack), start..end)
                    .map_err(|e| Error::pack_read(*pack, blobs[0].0, e))?;
                for (id, l) in blobs {
                    let off = (u64::from(l.offset) - start) as usize;
                    let stored = span
                        .get(off..off + l.stored_len as usize)
                        .ok_or_else(|| Error::corrupt_blob(*pack, *id, BlobDamage::ShortRead))?;
                    let plain = open_blob(&src.key, BlobType::Data, id, l.flags, l.raw_len, stored)
                        .map_err(|e| Error::corrupt_blob(*pack, *id, e))?;
                    if saver.save_with_id(BlobType::Data, *id, &plain)? {
                        sent.fetch_add(1, Ordering::Relaxed);
                        bytes_sent.fetch_add(plain.len() as u64, Ordering::Relaxed);
                        progress.files.fetch_add(1, Ordering::Relaxed);
                        progress
                            .bytes
                            .fetch_add(plain.len() as u64, Ordering::Relaxed);
                    }
                }
                Ok(())
            })?;
        report.data_blobs_copied = sent.load(Ordering::Relaxed);
        report.bytes_copied = bytes_sent.load(Ordering::Relaxed);

        for (id, bytes) in &trees {
            if saver.save_with_id(BlobType::Tree, *id, bytes)? {
                report.tree_blobs_copied += 1;
                report.bytes_copied += bytes.len() as u64;
            } else {
                report.blobs_present += 1;
            }
        }
        Ok(())
    })?;
    saver.finish()?;

    for (sid, snap) in todo {
        let new = dst.save_snapshot(snap)?;
        report.copied.push((*sid, new));
    }
    Ok(report)
}
