//! The blob index of a Lifeboat repository.
//!
//! Owns the index segments in the repository (`index/<id>`, each mapping blob
//! ids to pack, offset, lengths and type) and answers "where is blob X?"
//! without holding the index in memory: the live segments are merged into a
//! local, sorted, fixed-width table file (in a cache directory, or an
//! unlinked temporary file), authenticated with a MAC keyed from the master
//! key and mapped read-only. Blobs added by the running process sit in a
//! small in-memory delta beside it. [`Index::refresh`] reads only segments
//! the table has not merged and swaps in a new file. [`compact`] merges small
//! segments into larger ones and [`rebuild`] reconstructs the index from pack
//! headers; both supersede old segments safely while other clients work.
//! [`UsedBlobs`] is a set of blobs bounded to one bit per indexed blob, for
//! check and prune.
//!
//! Index segments are the only repository objects this crate writes or
//! deletes; it reads pack headers (for rebuild) but never writes packs or
//! snapshots. The table layout, the memory model and the concurrency rules
//! are in `docs/index.md`; the segment encoding is in `docs/format.md`.
//!
//! All `unsafe` code is in one private module that maps table files.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock};

use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{BlobFlags, BlobType, Id, IndexEntry, IndexPack, IndexSegment, MasterKey};
use lifeboat_store::Backend;
use zeroize::Zeroizing;

mod build;
mod compact;
mod map;
mod rebuild;
mod sort;
mod table;
mod used;

pub use compact::{CompactOptions, CompactReport, compact};
pub use rebuild::{PackDamage, RebuildOptions, RebuildReport, UnreadablePack, rebuild};
pub use table::Lookups;
pub use used::UsedBlobs;

use build::{BuildContext, Built};
use table::{Table, TableScan};

/// Errors from loading or writing the index.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] lifeboat_store::Error),
    /// A rebuild stopped because the store failed while it read a pack
    /// (anything but the pack being missing or short: a timeout, refused
    /// access, ...). Nothing was superseded or deleted.
    #[error("index rebuild stopped at pack {pack}; the old index is left in place: {source}")]
    RebuildStopped {
        /// Object name of the pack.
        pack: String,
        /// What the store said.
        source: lifeboat_store::Error,
    },
    /// A segment could not be decrypted or decoded.
    #[error("index segment {segment}: {source}")]
    Segment {
        /// Segment id.
        segment: String,
        /// What was wrong.
        source: lifeboat_format::Error,
    },
    /// A segment was listed, then deleted before it could be read, and no
    /// segment that was read supersedes it (tried several times).
    #[error(
        "index segment {segment} disappeared while the index was read and nothing supersedes it; \
         retry, or run `lifeboat index rebuild`"
    )]
    SegmentVanished {
        /// Segment id.
        segment: String,
    },
    /// The local table could not be written or read.
    #[error("local index table in {}: {source}", path.display())]
    Cache {
        /// File or directory concerned (empty for an unnamed temporary file).
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// A bug: an invariant of this crate does not hold.
    #[error("internal index error: {0}")]
    Internal(String),
}

impl Error {
    /// Whether trying again later may succeed: the store failed with an
    /// error it calls transient ([`lifeboat_store::Error::is_transient`]).
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Store(e) | Error::RebuildStopped { source: e, .. } => e.is_transient(),
            // Listed but gone: a listing that lags a delete catches up.
            Error::SegmentVanished { .. } => true,
            Error::Cache { source, .. } => matches!(
                source.kind(),
                std::io::ErrorKind::Interrupted
                    | std::io::ErrorKind::TimedOut
                    | std::io::ErrorKind::WouldBlock
            ),
            _ => false,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Something the index left out or found elsewhere: not an error, since the
/// index works without it, but worth telling the user.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexWarning {
    /// A segment that does not decrypt or decode, does not hash to its name,
    /// or is shorter than listed, was skipped.
    #[error(
        "{path}: damaged index segment skipped (blobs it listed are found from their \
         packs' headers; `lifeboat index rebuild` makes the repair permanent): {source}"
    )]
    DamagedSegment {
        /// Object path of the segment.
        path: String,
        /// What was wrong with it.
        #[source]
        source: Box<Error>,
    },
    /// An object whose name is not an object id, in `index/` or `data/`.
    #[error("{path}: not a repository object (its name is not an object id); ignored")]
    StrayName {
        /// Object path.
        path: String,
    },
    /// A pack no loaded segment lists; its blobs were read from its header.
    #[error(
        "{path}: pack listed by no index segment (a lost segment, or an \
         interrupted backup); its {blobs} blobs were read from its header, and \
         `lifeboat index rebuild` makes the repair permanent"
    )]
    UnindexedPack {
        /// Object path of the pack.
        path: String,
        /// Blobs its header lists.
        blobs: usize,
    },
    /// A pack no loaded segment lists, whose header cannot be read.
    #[error("{path}: pack listed by no index segment, and its header cannot be read: {source}")]
    UnreadablePack {
        /// Object path of the pack.
        path: String,
        /// What is wrong with it.
        #[source]
        source: PackDamage,
    },
    /// Looking for unindexed packs stopped on a store error that is not
    /// damage; blobs only they hold stay unfound until the next open.
    #[error("reading the headers of packs that no index segment lists stopped: {source}")]
    FallbackFailed {
        /// The store's failure.
        #[source]
        source: Box<Error>,
    },
}

impl IndexWarning {
    /// The object the warning is about, if it is about one.
    pub fn path(&self) -> Option<&str> {
        match self {
            IndexWarning::DamagedSegment { path, .. }
            | IndexWarning::StrayName { path }
            | IndexWarning::UnindexedPack { path, .. }
            | IndexWarning::UnreadablePack { path, .. } => Some(path),
            IndexWarning::FallbackFailed { .. } => None,
        }
    }
}

/// Blobs of packs that no loaded segment lists, read from their headers
/// the first time a lookup missed.
#[derive(Default)]
pub(crate) struct Recovered {
    blobs: HashMap<Id, BlobLocation>,
    packs: BTreeMap<Id, u64>,
    warnings: Vec<IndexWarning>,
}

impl Recovered {
    fn add(&mut self, p: &IndexPack) {
        self.packs.insert(p.id, p.size);
        for b in &p.blobs {
            self.blobs
                .entry(b.id)
                .or_insert(BlobLocation::in_pack(p, b));
        }
    }
}

/// Where the index reads unindexed packs from when a lookup misses.
struct PackFallback {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    enabled: bool,
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobLocation {
    /// Pack holding the blob.
    pub pack: Id,
    /// Data or tree.
    pub blob_type: BlobType,
    /// Compression flag.
    pub flags: BlobFlags,
    /// Offset of the envelope in the pack.
    pub offset: u32,
    /// Envelope length.
    pub stored_len: u32,
    /// Plaintext length.
    pub raw_len: u32,
}

impl BlobLocation {
    /// Where entry `b` of pack `p` is.
    pub fn in_pack(p: &IndexPack, b: &IndexEntry) -> BlobLocation {
        BlobLocation {
            pack: p.id,
            blob_type: p.blob_type,
            flags: b.flags,
            offset: b.offset,
            stored_len: b.stored_len,
            raw_len: b.raw_len,
        }
    }
}

/// Encrypt and store a segment; returns its id.
pub fn write_segment(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    seg: &IndexSegment,
) -> Result<Id> {
    let bytes = seg.encode(key).map_err(|e| Error::Segment {
        segment: "<new>".into(),
        source: e,
    })?;
    let id = Id::of_object(&bytes);
    backend.put(&layout::object_path(Folder::Index, &id), bytes.into())?;
    Ok(id)
}

/// The cache directory of one repository under `root` (for instance
/// [`lifeboat_store::default_cache_root`]): `root/<repo id>`.
pub fn repository_cache_dir(root: &Path, repository_id: &Id) -> PathBuf {
    root.join(repository_id.to_hex())
}

/// How the index keeps its local table.
#[derive(Debug, Clone)]
pub struct IndexOptions {
    /// The repository's cache directory; the table lives in its `index/`
    /// subdirectory and is reused and refreshed across runs. `None`: an
    /// unlinked temporary file, built in full on every open.
    pub cache_dir: Option<PathBuf>,
    /// Bytes of records sorted in memory before spilling a sorted run to
    /// disk while building the table.
    pub sort_memory: usize,
    /// How lookups read the table: with `pread` (the default; nothing stays
    /// resident) or through the memory map (faster; see [`Lookups`]).
    pub lookups: Lookups,
    /// With [`Lookups::Mapped`]: lookups between dropping the table's pages
    /// from the resident set (0: never).
    pub release_every: u64,
    /// Segments downloaded and decoded at once.
    pub read_concurrency: usize,
}

impl Default for IndexOptions {
    fn default() -> Self {
        IndexOptions {
            cache_dir: None,
            sort_memory: 32 << 20,
            lookups: Lookups::Read,
            release_every: 0,
            read_concurrency: 4,
        }
    }
}

/// What loading or refreshing the index did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadStats {
    /// Segments listed in the repository.
    pub segments_listed: usize,
    /// Segments downloaded and decoded.
    pub segments_read: usize,
    /// Whether the table was built from all segments, not from a previous one.
    pub full_build: bool,
    /// Whether a table from an earlier run was found valid and used.
    pub cache_used: bool,
    /// Why a table or cache directory found on disk was not used.
    pub cache_rejected: Option<String>,
    /// The base table file; `None` for an unlinked temporary file.
    pub table_path: Option<PathBuf>,
    /// The overlay table file, if there is one in the cache directory.
    pub overlay_path: Option<PathBuf>,
}

/// Counters of a long index operation, updated as it runs.
#[derive(Debug, Default)]
pub struct IndexProgress {
    /// Units done (segments or packs).
    pub done: AtomicU64,
    /// Units to do.
    pub total: AtomicU64,
}

fn mac_key(key: &MasterKey) -> Zeroizing<[u8; 32]> {
    Zeroizing::new(blake3::derive_key(table::MAC_CONTEXT, &key.to_bytes()))
}

/// Create `<cache_dir>/index` (mode 0700) and clear temporary files that a
/// crashed run left there.
fn prepare_dir(cache_dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    // Named after the folder whose segments the table merges.
    let dir = cache_dir.join(Folder::Index.name());
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for e in rd.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age.as_secs() > 24 * 3600);
            if old && e.file_name().to_string_lossy().starts_with(".table-") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(dir)
}

/// The merged index of all live segments: a local base table, an overlay
/// table for segments merged since the base was built, and the blobs this
/// process added since (the delta, in memory).
///
/// Reads take `&self` and may run on many threads at once; lookups allocate
/// nothing. Adding takes `&mut self`.
#[derive(Default)]
pub struct Index {
    base: Option<Table>,
    overlay: Option<Table>,
    delta: BTreeMap<Id, BlobLocation>,
    delta_packs: BTreeMap<Id, u64>,
    added_segments: Vec<Id>,
    segments: Vec<Id>,
    delta_duplicates: u64,
    opts: IndexOptions,
    stats: LoadStats,
    fallback: Option<PackFallback>,
    recovered: OnceLock<Recovered>,
    /// Warnings not yet taken (see [`Index::take_warnings`]).
    warnings: Mutex<Vec<IndexWarning>>,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("blobs", &self.len())
            .field("segments", &self.segments.len())
            .field("table", &self.stats.table_path)
            .finish()
    }
}

impl Index {
    /// An empty index.
    pub fn new() -> Index {
        Index::default()
    }

    /// Read every segment under `index/`, skipping superseded ones, into an
    /// unlinked local table (no cache directory).
    pub fn load(backend: &Arc<dyn Backend>, key: &MasterKey) -> Result<Index> {
        Index::open(backend, key, &IndexOptions::default())
    }

    /// Open the index with `opts`: reuse the local tables in the cache
    /// directory if their MACs hold and they are still a subset of the live
    /// index, reading only segments they lack; else build them in full.
    ///
    /// A damaged segment, or an object in `index/` whose name is not an id,
    /// is skipped with a warning ([`take_warnings`](Index::take_warnings)).
    /// The first lookup with [`get`](Index::get) that misses then reads the
    /// headers of every pack that no loaded segment lists, once, and finds
    /// blobs there too (see [`set_pack_fallback`](Index::set_pack_fallback)).
    pub fn open(backend: &Arc<dyn Backend>, key: &MasterKey, opts: &IndexOptions) -> Result<Index> {
        let mut idx = Index {
            opts: opts.clone(),
            fallback: Some(PackFallback {
                backend: Arc::clone(backend),
                key: key.clone(),
                enabled: true,
            }),
            ..Index::default()
        };
        idx.refresh(backend, key)?;
        Ok(idx)
    }

    /// Whether a lookup that misses may read the headers of packs that no
    /// loaded segment lists (on by default for an index from
    /// [`open`](Index::open)). Check turns it off, since it reports what the
    /// segments say; anything that deletes packs no segment lists must too.
    pub fn set_pack_fallback(&mut self, enabled: bool) {
        if let Some(f) = &mut self.fallback {
            f.enabled = enabled;
        }
    }

    /// Warnings since the index was opened or this was last called: segments
    /// and names skipped, packs read from their headers.
    pub fn take_warnings(&self) -> Vec<IndexWarning> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn push_warnings(&self, more: impl IntoIterator<Item = IndexWarning>) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(more);
    }

    /// The blobs of unindexed packs, read on the first call (once per open).
    fn recovered(&self) -> Option<&Recovered> {
        let f = self.fallback.as_ref().filter(|f| f.enabled)?;
        Some(self.recovered.get_or_init(|| {
            let mut found = rebuild::recover_unindexed(&f.backend, &f.key, &|id| {
                self.delta_packs.contains_key(id)
                    || self.tables().any(|t| t.find_pack(id).is_some())
            });
            self.push_warnings(found.warnings.drain(..));
            found
        }))
    }

    /// Build an index from packs given directly, without a repository (for
    /// tests and benchmarks); the table goes to `opts.cache_dir` if set.
    pub fn from_packs(
        packs: impl IntoIterator<Item = IndexPack>,
        key: &MasterKey,
        opts: &IndexOptions,
    ) -> Result<Index> {
        let mac = mac_key(key);
        let dir = match &opts.cache_dir {
            Some(d) => Some(prepare_dir(d).map_err(|e| Error::Cache {
                path: d.clone(),
                source: e,
            })?),
            None => None,
        };
        let (table, path) = build::build_from_packs(packs, &mac, opts, dir.as_deref())?;
        let mut idx = Index {
            opts: opts.clone(),
            ..Index::default()
        };
        idx.stats.table_path = path;
        idx.stats.full_build = true;
        idx.base = Some(table);
        Ok(idx)
    }

    /// Bring the index up to date with the repository: read the segments
    /// written since the tables were built and swap in a new overlay (or,
    /// when that would grow past 1/8 of the base, a new base). Blobs added
    /// with [`add_pack`](Index::add_pack) that the tables now hold leave the
    /// delta.
    pub fn refresh(&mut self, backend: &Arc<dyn Backend>, key: &MasterKey) -> Result<()> {
        let mac = mac_key(key);
        let mut stats = LoadStats::default();
        let mut dir = None;
        if let Some(cd) = &self.opts.cache_dir {
            match prepare_dir(cd) {
                Ok(d) => dir = Some(d),
                Err(e) => stats.cache_rejected = Some(format!("{}: {e}", cd.display())),
            }
        }
        // Tables this process holds are trusted; else look for them on disk.
        if self.base.is_none() {
            if let Some(d) = &dir {
                let (b, o, rejected) = build::open_cached(d, &mac, &self.opts);
                stats.cache_used = b.is_some();
                stats.cache_rejected = rejected;
                if b.is_some() {
                    stats.table_path = Some(d.join(build::TABLE_FILE));
                }
                if o.is_some() {
                    stats.overlay_path = Some(d.join(build::OVERLAY_FILE));
                }
                self.base = b;
                self.overlay = o;
            }
        } else {
            stats.table_path = self.stats.table_path.take();
            stats.overlay_path = self.stats.overlay_path.take();
        }
        let mut cx = BuildContext {
            backend,
            key,
            mac_key: &mac,
            opts: &self.opts,
            dir: dir.as_deref(),
        };
        let (base, overlay) = (self.base.as_ref(), self.overlay.as_ref());
        let mut warnings = Vec::new();
        let built = match build::build(&cx, base, overlay, &mut stats, &mut warnings) {
            Err(Error::Cache { path, source }) if cx.dir.is_some() => {
                // The cache directory is unusable (full, read-only): fall back
                // to unlinked files.
                stats.cache_rejected = Some(format!("{}: {source}", path.display()));
                cx.dir = None;
                build::build(&cx, base, overlay, &mut stats, &mut warnings)?
            }
            r => r?,
        };
        self.push_warnings(warnings);
        match built {
            Built::Current { overlay: true } => {}
            Built::Current { overlay: false } => {
                self.overlay = None;
                stats.overlay_path = None;
            }
            Built::Base(t) => {
                self.base = Some(t);
                self.overlay = None;
                stats.overlay_path = None;
                if let (Some(d), Some(_)) = (&dir, &stats.table_path) {
                    build::remove_overlay(d);
                }
            }
            Built::Overlay(t) => self.overlay = Some(t),
        }
        self.stats = stats;
        let tables: Vec<&Table> = self.base.iter().chain(self.overlay.iter()).collect();
        self.delta
            .retain(|id, _| tables.iter().all(|t| t.find(id).is_none()));
        self.delta_packs
            .retain(|id, _| tables.iter().all(|t| t.find_pack(id).is_none()));
        self.added_segments.retain(|s| {
            tables
                .iter()
                .all(|t| t.segments().binary_search(s).is_err())
        });
        self.segments = tables
            .iter()
            .flat_map(|t| t.segments().iter().copied())
            .chain(self.added_segments.iter().copied())
            .collect();
        Ok(())
    }

    fn tables(&self) -> impl Iterator<Item = &Table> + '_ {
        self.base.iter().chain(self.overlay.iter())
    }

    /// How lookups read the tables now, and the release interval.
    pub fn lookups(&self) -> (Lookups, u64) {
        (self.opts.lookups, self.opts.release_every)
    }

    /// Change how lookups read the tables ([`IndexOptions::lookups`] and
    /// [`IndexOptions::release_every`]).
    pub fn set_lookups(&mut self, mode: Lookups, release_every: u64) {
        self.opts.lookups = mode;
        self.opts.release_every = release_every;
        for t in self.base.iter_mut().chain(self.overlay.iter_mut()) {
            t.set_lookups(mode, release_every);
        }
    }

    /// Bytes of memory the index holds outside the table files: the tables'
    /// page fences and segment lists, and the delta.
    pub fn heap_bytes(&self) -> usize {
        self.tables().map(Table::heap_bytes).sum::<usize>()
            + self.delta.len() * 96
            + self.delta_packs.len() * 72
            + self.segments.capacity() * 32
    }

    /// What the last load or refresh did.
    pub fn load_stats(&self) -> &LoadStats {
        &self.stats
    }

    /// Merge a segment's packs into the in-memory delta.
    pub fn add_segment(&mut self, id: Id, seg: &IndexSegment) {
        self.added_segments.push(id);
        self.segments.push(id);
        for p in &seg.packs {
            self.add_pack(p);
        }
    }

    /// Merge one pack's blobs into the in-memory delta.
    pub fn add_pack(&mut self, p: &IndexPack) {
        if self.pack_size(&p.id).is_none() {
            self.delta_packs.insert(p.id, p.size);
        }
        for b in &p.blobs {
            let loc = BlobLocation::in_pack(p, b);
            match self.get_loaded(&b.id) {
                Some(old) if old != loc => self.delta_duplicates += 1,
                Some(_) => {}
                None => {
                    self.delta.insert(b.id, loc);
                }
            }
        }
    }

    /// Location of a blob. On a miss, looks among the blobs of packs that
    /// no loaded segment lists, reading their headers the first time (see
    /// [`open`](Index::open)).
    pub fn get(&self, id: &Id) -> Option<BlobLocation> {
        self.get_loaded(id)
            .or_else(|| self.recovered()?.blobs.get(id).copied())
    }

    /// Location of a blob as the loaded segments (and this process's own
    /// additions) give it, never from the headers of unindexed packs: for
    /// deciding whether a new snapshot may reference it, since a blob only
    /// a pack header knows of could be in a pack that prune deletes.
    pub fn get_indexed(&self, id: &Id) -> Option<BlobLocation> {
        self.get_loaded(id)
    }

    /// Location of a blob in the tables and the delta only.
    fn get_loaded(&self, id: &Id) -> Option<BlobLocation> {
        if let Some(l) = self.delta.get(id) {
            return Some(*l);
        }
        self.tables().find_map(|t| t.get(id))
    }

    /// Whether a blob is indexed: in a loaded segment or added since.
    /// Blobs found only in unindexed packs do not count: a backup asks this
    /// of every new blob, and must store again rather than reference a blob
    /// that no segment lists.
    pub fn contains(&self, id: &Id) -> bool {
        self.delta.contains_key(id) || self.tables().any(|t| t.find(id).is_some())
    }

    /// Number of distinct blobs.
    pub fn len(&self) -> usize {
        self.table_len() + self.delta.len()
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Size of an indexed pack (or of an unindexed one read by an earlier
    /// [`get`](Index::get)).
    pub fn pack_size(&self, id: &Id) -> Option<u64> {
        if let Some(s) = self.delta_packs.get(id) {
            return Some(*s);
        }
        self.tables()
            .find_map(|t| t.pack_at(t.find_pack(id)?).map(|(_, s, _)| s))
            .or_else(|| self.recovered.get()?.packs.get(id).copied())
    }

    /// Indexed packs and their sizes, each once: the base's in id order,
    /// then the overlay's, then the delta's, then those of unindexed packs
    /// read by an earlier [`get`](Index::get) (so that nothing that deletes
    /// packs missing from this list deletes one a lookup used).
    pub fn packs(&self) -> impl Iterator<Item = (Id, u64)> + '_ {
        let base = self.base.iter().flat_map(|t| {
            (0..t.pack_count()).filter_map(|i| t.pack_at(i).map(|(id, size, _)| (id, size)))
        });
        let overlay = self
            .overlay
            .iter()
            .flat_map(|t| (0..t.pack_count()).filter_map(|i| t.own_pack_at(i).flatten()));
        let recovered = self.recovered.get().into_iter().flat_map(|r| {
            r.packs
                .iter()
                .filter(|(id, _)| {
                    !self.delta_packs.contains_key(id)
                        && self.tables().all(|t| t.find_pack(id).is_none())
                })
                .map(|(id, s)| (*id, *s))
        });
        base.chain(overlay)
            .chain(self.delta_packs.iter().map(|(id, s)| (*id, *s)))
            .chain(recovered)
    }

    /// Number of indexed packs.
    pub fn pack_count(&self) -> usize {
        self.tables()
            .map(|t| t.pack_count() - t.shared_packs())
            .sum::<usize>()
            + self.delta_packs.len()
    }

    /// Live segments merged (the tables', then those added in memory).
    pub fn segments(&self) -> &[Id] {
        &self.segments
    }

    /// Blob ids indexed at more than one location (in two packs, or twice
    /// in one pack); identical entries listed by two segments do not count.
    pub fn duplicates(&self) -> u64 {
        self.tables().map(Table::duplicates).sum::<u64>() + self.delta_duplicates
    }

    /// Every blob and its location, in ascending id order. A full scan
    /// releases the table pages behind it, so it does not make the tables
    /// resident.
    pub fn iter(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        MergeIter {
            a: self.table_scan().map(|(_, id, l)| (id, l)).peekable(),
            b: self.delta.iter().map(|(id, l)| (*id, *l)).peekable(),
        }
    }

    /// The position of a blob in the tables (base, then overlay), for
    /// [`UsedBlobs`].
    pub(crate) fn table_position(&self, id: &Id) -> Option<usize> {
        if let Some(p) = self.base.as_ref().and_then(|t| t.find(id)) {
            return Some(p);
        }
        let o = self.overlay.as_ref()?;
        o.find(id)
            .map(|p| p + self.base.as_ref().map_or(0, Table::len))
    }

    /// Number of blobs in the tables (not the delta).
    pub(crate) fn table_len(&self) -> usize {
        self.tables().map(Table::len).sum()
    }

    /// Table blobs with their positions, in id order.
    pub(crate) fn table_scan(&self) -> impl Iterator<Item = (usize, Id, BlobLocation)> + '_ {
        let shift = self.base.as_ref().map_or(0, Table::len);
        let base = self.base.iter().flat_map(TableScan::new);
        let overlay = self
            .overlay
            .iter()
            .flat_map(TableScan::new)
            .map(move |(p, id, l)| (p + shift, id, l));
        MergeIter {
            a: base.map(|(p, id, l)| (id, (p, l))).peekable(),
            b: overlay.map(|(p, id, l)| (id, (p, l))).peekable(),
        }
        .map(|(id, (p, l))| (p, id, l))
    }

    /// Blobs in the delta, in id order.
    pub(crate) fn delta_iter(&self) -> impl Iterator<Item = (&Id, &BlobLocation)> + '_ {
        self.delta.iter()
    }

    /// Whether a blob is in the delta.
    pub(crate) fn delta_contains(&self, id: &Id) -> bool {
        self.delta.contains_key(id)
    }
}

/// Merges two id-ordered streams of distinct ids.
struct MergeIter<A: Iterator, B: Iterator> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<T, A, B> Iterator for MergeIter<A, B>
where
    A: Iterator<Item = (Id, T)>,
    B: Iterator<Item = (Id, T)>,
{
    type Item = (Id, T);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.a.peek(), self.b.peek()) {
            (Some(x), Some(y)) if y.0 < x.0 => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

/// Used by `UsedBlobs` for blobs outside the table.
pub(crate) type DeltaSet = HashSet<Id>;

#[cfg(test)]
mod tests;
