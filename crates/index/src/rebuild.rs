//! Rebuild: reconstruct the index from pack headers alone, for when index
//! segments are lost or damaged.
//!
//! Every pack's header is read with one ranged read of its tail (two if the
//! header is larger than that read), never the whole pack. The new segments
//! describe every pack whose header opens; the last one supersedes every
//! segment listed before the packs were listed, readable or not, and those
//! are deleted afterwards. Listing `index/` before `data/` is what makes
//! this safe against a concurrent backup: any segment it lists describes
//! packs that were already written, so they are in the pack listing too;
//! segments written later are not superseded.
//!
//! Only a pack that is really damaged (gone, short, or whose trailer or
//! header fails to authenticate or decode) is left out and reported. Any
//! other store error (a timeout, refused access) stops the rebuild before
//! it supersedes anything: a pack it could not read this time would
//! otherwise lose its blobs from the index.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::sync_channel;

use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{
    BlobType, Id, IndexEntry, IndexPack, IndexSegment, MasterKey, PACK_TRAILER_LEN,
    decode_pack_header, parse_pack_trailer,
};
use lifeboat_store::Backend;

use crate::{Error, IndexProgress, IndexWarning, Recovered, Result, write_segment};

/// Bytes read from the end of each pack at first: the trailer and, for packs
/// of up to about 350 blobs, the whole header.
const TAIL_READ: u64 = 16 << 10;

/// How to rebuild.
#[derive(Debug, Clone)]
pub struct RebuildOptions {
    /// Blobs per new segment.
    pub target_blobs: usize,
    /// Pack headers read at once.
    pub read_concurrency: usize,
}

impl Default for RebuildOptions {
    fn default() -> Self {
        RebuildOptions {
            target_blobs: 1 << 16,
            read_concurrency: 16,
        }
    }
}

/// A pack whose header could not be read; its blobs are not indexed.
#[derive(Debug)]
pub struct UnreadablePack {
    /// Object name.
    pub path: String,
    /// What is wrong with it.
    pub reason: PackDamage,
}

/// How a pack left out of a rebuild is damaged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PackDamage {
    /// Listed, but gone when read (also what a listing that lags a delete
    /// shows).
    #[error("listed, but not found when read")]
    Missing(#[source] lifeboat_store::Error),
    /// Shorter than its listed size when read.
    #[error("shorter than its listed size when read")]
    Truncated(#[source] lifeboat_store::Error),
    /// Too short to hold a pack trailer.
    #[error("{size} bytes is too short for a pack")]
    TooShort {
        /// The pack's size.
        size: u64,
    },
    /// The trailer names a header longer than the pack.
    #[error("header of {header_len} bytes does not fit in {size} bytes")]
    HeaderTooLong {
        /// Header length from the trailer.
        header_len: u64,
        /// The pack's size.
        size: u64,
    },
    /// The trailer or header does not decode or authenticate.
    #[error("pack header: {0}")]
    Header(#[source] lifeboat_format::Error),
    /// The header lists both data and tree blobs.
    #[error("pack mixes data and tree blobs")]
    MixedTypes,
}

/// Why a pack's header was not read.
enum PackReadError {
    /// The pack is damaged: leave it out.
    Damaged(PackDamage),
    /// The store failed otherwise: stop.
    Store(lifeboat_store::Error),
}

impl From<lifeboat_store::Error> for PackReadError {
    fn from(e: lifeboat_store::Error) -> PackReadError {
        match e {
            e @ lifeboat_store::Error::NotFound { .. } => {
                PackReadError::Damaged(PackDamage::Missing(e))
            }
            e @ lifeboat_store::Error::Truncated { .. } => {
                PackReadError::Damaged(PackDamage::Truncated(e))
            }
            e => PackReadError::Store(e),
        }
    }
}

impl From<PackDamage> for PackReadError {
    fn from(d: PackDamage) -> PackReadError {
        PackReadError::Damaged(d)
    }
}

/// What a rebuild did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct RebuildReport {
    /// Packs listed under `data/`.
    pub packs_listed: u64,
    /// Packs indexed.
    pub packs_indexed: u64,
    /// Blobs indexed.
    pub blobs: u64,
    /// New segments.
    pub written: Vec<Id>,
    /// Old segments superseded (and deleted unless listed in `delete_errors`).
    pub superseded: Vec<Id>,
    /// Objects under `index/` whose names are not segment ids; deleted.
    pub junk: Vec<String>,
    /// Deletions that failed, with the store's error (harmless for
    /// superseded segments).
    pub delete_errors: Vec<(String, lifeboat_store::Error)>,
    /// Packs left out.
    pub unreadable: Vec<UnreadablePack>,
}

/// Read and decode the header of the pack at `path` of `size` bytes.
fn read_pack(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    id: Id,
    path: &str,
    size: u64,
) -> std::result::Result<IndexPack, PackReadError> {
    if size < PACK_TRAILER_LEN as u64 {
        return Err(PackDamage::TooShort { size }.into());
    }
    let tail_len = size.min(TAIL_READ);
    let tail = backend.get_range(path, size - tail_len..size)?;
    let hlen = u64::from(parse_pack_trailer(&tail).map_err(PackDamage::Header)?);
    let need = hlen + PACK_TRAILER_LEN as u64;
    if need > size {
        return Err(PackDamage::HeaderTooLong {
            header_len: hlen,
            size,
        }
        .into());
    }
    let fetched;
    let sealed: &[u8] = if need <= tail_len {
        let t = tail.len();
        &tail[t - need as usize..t - PACK_TRAILER_LEN]
    } else {
        fetched = backend.get_range(path, size - need..size - PACK_TRAILER_LEN as u64)?;
        &fetched
    };
    let entries = decode_pack_header(key, sealed, size).map_err(PackDamage::Header)?;
    let blob_type = entries.first().map_or(BlobType::Data, |e| e.blob_type);
    if entries.iter().any(|e| e.blob_type != blob_type) {
        return Err(PackDamage::MixedTypes.into());
    }
    Ok(IndexPack {
        id,
        blob_type,
        size,
        blobs: entries.iter().map(IndexEntry::from).collect(),
    })
}

/// Read the headers of the packs under `data/` that `indexed` does not know
/// (what a lost or damaged segment listed, or what an interrupted backup
/// left), one pack at a time with the ranged reads of a rebuild. A store
/// error that is not damage ends the reading, reported as a warning.
pub(crate) fn recover_unindexed(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    indexed: &dyn Fn(&Id) -> bool,
) -> Recovered {
    let mut found = Recovered::default();
    let listing = match backend.list(&Folder::Data.prefix()) {
        Ok(l) => l,
        Err(e) => {
            found.warnings.push(IndexWarning::FallbackFailed {
                source: Box::new(Error::Store(e)),
            });
            return found;
        }
    };
    for obj in listing {
        let Some(id) = layout::id_of_path(&obj.path) else {
            found
                .warnings
                .push(IndexWarning::StrayName { path: obj.path });
            continue;
        };
        if indexed(&id) {
            continue;
        }
        match read_pack(backend, key, id, &obj.path, obj.size) {
            Ok(pack) => {
                found.warnings.push(IndexWarning::UnindexedPack {
                    path: obj.path,
                    blobs: pack.blobs.len(),
                });
                found.add(&pack);
            }
            Err(PackReadError::Damaged(source)) => {
                found.warnings.push(IndexWarning::UnreadablePack {
                    path: obj.path,
                    source,
                });
            }
            Err(PackReadError::Store(e)) => {
                found.warnings.push(IndexWarning::FallbackFailed {
                    source: Box::new(Error::RebuildStopped {
                        pack: obj.path,
                        source: e,
                    }),
                });
                break;
            }
        }
    }
    found
}

/// Rebuild the index from the headers of every pack under `data/`, then
/// supersede and delete every segment that was there before. Damaged packs
/// are reported in [`RebuildReport::unreadable`], not indexed. Any other
/// store error while reading packs stops the rebuild with
/// [`Error::RebuildStopped`] before anything is superseded or deleted
/// (segments already written stay; they only repeat what is indexed).
pub fn rebuild(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    opts: &RebuildOptions,
    progress: &IndexProgress,
) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    // Segments first, then packs (see the module doc).
    let mut old: Vec<Id> = Vec::new();
    let index = Folder::Index.prefix();
    for obj in backend.list(&index)? {
        let name = obj.path.trim_start_matches(index.as_str());
        match name.parse::<Id>() {
            Ok(id) => old.push(id),
            Err(_) => report.junk.push(obj.path.clone()),
        }
    }
    old.sort_unstable();
    old.dedup();
    let packs: Vec<(Id, String, u64)> = backend
        .list(&Folder::Data.prefix())?
        .into_iter()
        .filter_map(|o| {
            let id = o.path.rsplit('/').next()?.parse().ok()?;
            Some((id, o.path, o.size))
        })
        .collect();
    report.packs_listed = packs.len() as u64;
    progress.total.store(packs.len() as u64, Ordering::Relaxed);
    progress.done.store(0, Ordering::Relaxed);

    let target = opts.target_blobs.max(1);
    let mut cur = IndexSegment::new();
    let mut cur_blobs = 0usize;
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let workers = opts.read_concurrency.clamp(1, packs.len().max(1));
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = sync_channel(workers);
        for _ in 0..workers {
            let tx = tx.clone();
            let (next, stop, packs) = (&next, &stop, &packs);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Some((id, path, size)) = packs.get(next.fetch_add(1, Ordering::Relaxed))
                    else {
                        break;
                    };
                    let r = read_pack(backend, key, *id, path, *size);
                    if tx.send((path.clone(), r)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut result = Ok(());
        for (path, r) in rx {
            progress.done.fetch_add(1, Ordering::Relaxed);
            if result.is_err() {
                continue;
            }
            match r {
                Ok(p) => {
                    report.packs_indexed += 1;
                    report.blobs += p.blobs.len() as u64;
                    cur_blobs += p.blobs.len();
                    cur.packs.push(p);
                    if cur_blobs >= target {
                        let full = std::mem::replace(&mut cur, IndexSegment::new());
                        cur_blobs = 0;
                        match write_segment(backend, key, &full) {
                            Ok(id) => report.written.push(id),
                            Err(e) => {
                                stop.store(true, Ordering::Relaxed);
                                result = Err(e);
                            }
                        }
                    }
                }
                Err(PackReadError::Damaged(reason)) => {
                    report.unreadable.push(UnreadablePack { path, reason });
                }
                Err(PackReadError::Store(source)) => {
                    stop.store(true, Ordering::Relaxed);
                    result = Err(Error::RebuildStopped { pack: path, source });
                }
            }
        }
        result
    })?;
    if !cur.packs.is_empty() || !old.is_empty() {
        cur.supersedes = old.clone();
        report.written.push(write_segment(backend, key, &cur)?);
    }
    report.superseded = old;
    for path in report
        .superseded
        .iter()
        .map(|id| layout::object_path(Folder::Index, id))
        .chain(report.junk.iter().cloned())
        .collect::<Vec<_>>()
    {
        if let Err(e) = backend.delete(&path) {
            report.delete_errors.push((path, e));
        }
    }
    report.unreadable.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(report)
}
