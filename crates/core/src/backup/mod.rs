//! Backup: read the sources, chunk, save blobs and trees, write the
//! snapshot. This module holds the options, the report and the
//! orchestration; the parts are:
//! - `archiver`: the traversal of the source file system, entry by entry;
//! - `source_roots`: the paths given, as one tree;
//! - `parent`: the parent snapshot, and which files are unchanged since;
//! - `file_reader`, `stream_reader`: reading content, on a `content_saver`;
//! - `block_reader`: block devices and raw images, with changed ranges;
//! - `budget`: the cap on content bytes in memory.

mod archiver;
mod block_reader;
mod budget;
mod content_saver;
mod file_reader;
mod parent;
mod source_roots;
mod stream_reader;

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use lifeboat_format::{Id, Node, NodeKind, Snapshot, SnapshotSummary, SourceKind, Timestamp};

use crate::filter::PathFilter;
use crate::meta::NameCache;
use crate::prune_guard::PruneGuard;
use crate::repo::{hostname, now_rfc3339, username};
use crate::saver::BlobSaver;
use crate::{EntryError, Error, Progress, Repository, Result};
use archiver::Archiver;
use budget::{Budget, MEMORY_PER_THREAD};
use content_saver::ContentSaver;
use source_roots::{absolute_clean, insert_path};
use stream_reader::{BATCH_BYTES, stream_bytes};

pub use block_reader::{
    BlockChunking, ByteRange, DEFAULT_BLOCK_CHUNKING, MAX_FIXED_CHUNK, META_CHANGED_RANGES,
    META_CHUNKING, META_SIZE, MIN_FIXED_CHUNK, parse_changed_ranges,
};

/// What to back up.
pub enum BackupSource<'a> {
    /// Files and directories, recursively.
    Paths(Vec<PathBuf>),
    /// A stream, stored as one file named `filename`.
    Stdin {
        /// Name of the file in the snapshot.
        filename: String,
        /// The stream.
        reader: &'a mut (dyn Read + Send),
    },
    /// A block device or raw image file, stored as one file named after
    /// it, with its size and chunking in the snapshot's `source_meta`.
    Block {
        /// The device or image.
        path: PathBuf,
        /// How to cut it into chunks.
        chunking: BlockChunking,
        /// Only these ranges changed since the parent snapshot (which
        /// [`BackupOptions::parent`] names, or the latest block snapshot
        /// of the same host and path): only they are read. Needs
        /// [`BlockChunking::Fixed`] with the parent's chunk size.
        changed_ranges: Option<Vec<ByteRange>>,
    },
    /// Standard input that is a regular file (`lifeboat backup --stdin <
    /// image`): stored as [`BackupSource::Stdin`] stores it, but read like
    /// a file, by data extent with holes skipped. Read from its current
    /// position to its end; at a position other than the start it is
    /// read as a stream.
    StdinFile {
        /// Name of the file in the snapshot.
        filename: String,
        /// The open file.
        file: fs::File,
    },
    /// A stream of another kind (an etcd snapshot), stored as one file
    /// named `filename`. `meta` gives the snapshot's `source_meta` once the
    /// stream has been read to its end; a read error, or an error from
    /// `meta`, fails the backup and no snapshot is written.
    Stream {
        /// Name of the file in the snapshot.
        filename: String,
        /// The path recorded in the snapshot's `paths`, which `forget`
        /// groups by: the same for every snapshot of one source (say
        /// `/etcd-snapshot-node1`), while `filename` may differ each time.
        path: String,
        /// The stream.
        reader: &'a mut (dyn Read + Send),
        /// The source kind to record.
        kind: SourceKind,
        /// The source facts, asked for after the stream's end.
        meta: StreamMeta<'a>,
    },
}

/// What [`BackupSource::Stream`] records as `source_meta`, known only once
/// the stream has been read.
pub type StreamMeta<'a> =
    Box<dyn FnOnce() -> std::io::Result<BTreeMap<String, String>> + Send + 'a>;

/// Backup settings.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Host name to record (default: this machine's).
    pub hostname: Option<String>,
    /// Tags to record.
    pub tags: Vec<String>,
    /// Exclude patterns (see [`crate::PathFilter`]).
    pub excludes: Vec<String>,
    /// Snapshot time to record instead of now (RFC 3339).
    pub time: Option<String>,
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
    /// Compare against this snapshot instead of the latest one with the
    /// same host and paths.
    pub parent: Option<Id>,
    /// Read every file even if the parent snapshot says it is unchanged.
    pub force: bool,
    /// Pack upload threads (default: the store's
    /// `upload_parallelism`, 2 on a local disk and 4 on a remote store).
    pub upload_threads: Option<usize>,
    /// Compression for this run instead of the repository's.
    pub compression: Option<lifeboat_format::Compression>,
    /// Failure injection, for tests of the pipeline (feature `testing`).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fail: crate::failpoint::FailPoints,
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The new snapshot's id.
    pub id: Id,
    /// The snapshot as written.
    pub snapshot: Snapshot,
    /// Entries skipped because they could not be read, and files that
    /// changed while they were read.
    pub errors: Vec<EntryError>,
    /// Packs in `data/` that no index segment listed when the backup
    /// started: uploaded by a backup that was killed before it indexed
    /// them (or by one still running). The backup does not reuse them: a
    /// blob found only there was stored again, so that no snapshot depends
    /// on a pack a prune may take for a leftover; `lifeboat prune` deletes
    /// them (docs/prune.md).
    pub unindexed_packs: u64,
    /// Their bytes.
    pub unindexed_bytes: u64,
    /// Why `data/` could not be listed to count them, if it could not: the
    /// count is informative only, so a failed listing does not stop the
    /// backup; the counts are then 0 and unknown.
    pub unindexed_unknown: Option<String>,
}

impl BackupReport {
    /// Whether every entry was backed up.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }

    /// Files and content bytes processed, as restic counts them: new,
    /// changed and unchanged files alike, whether read or taken from the
    /// parent snapshot (the summary's `bytes_read` counts only what was read).
    pub fn processed(&self) -> (u64, u64) {
        match &self.snapshot.summary {
            Some(s) => (
                s.files_new + s.files_changed + s.files_unchanged,
                s.bytes_total,
            ),
            None => (0, 0),
        }
    }
}

impl Repository {
    /// Back up `source` and write a snapshot. Unreadable entries are skipped
    /// and listed in the report (and the snapshot's `incomplete`); a failure
    /// to write to the repository fails the whole backup, and then no
    /// snapshot is written.
    pub fn backup(
        &self,
        source: BackupSource<'_>,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport> {
        let start = Instant::now();
        let start_time = now_rfc3339();
        let excludes = PathFilter::new(&opts.excludes)?;
        let (unindexed_packs, unindexed_bytes, unindexed_unknown) = match self.unindexed_packs() {
            Ok((n, b)) => (n, b, None),
            Err(e) => (0, 0, Some(e.to_string())),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads.unwrap_or(0))
            .stack_size(16 << 20)
            .thread_name(|i| format!("lifeboat-backup-{i}"))
            .build()
            .map_err(Error::ThreadPool)?;
        let uploaders = opts
            .upload_threads
            .unwrap_or_else(|| self.backend.upload_parallelism())
            .max(1);
        let (mut saver, rx) = BlobSaver::new(self, uploaders);
        saver.guard = PruneGuard::load(self)?;
        if let Some(c) = opts.compression {
            saver.compression = c;
        }
        #[cfg(feature = "testing")]
        let saver = saver.with_fail_points(&opts.fail);
        let archiver = Archiver {
            content: ContentSaver {
                repo: self,
                saver: &saver,
                #[cfg(feature = "testing")]
                fail_points: &opts.fail,
                budget: Budget::new(budget_cap(&self.chunker, pool.current_num_threads())),
                progress,
                failed: AtomicBool::new(false),
                bytes: AtomicU64::new(0),
                stream_bufs: Mutex::new(Vec::new()),
            },
            excludes,
            names: NameCache::default(),
            errors: Mutex::new(Vec::new()),
            files: AtomicU64::new(0),
            files_changed: AtomicU64::new(0),
            files_unchanged: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            open_dirs: AtomicUsize::new(0),
        };
        let mut parent_id = None;
        let mut source_meta = BTreeMap::new();

        let archived = saver.drive(rx, || -> Result<(Id, Vec<String>, SourceKind)> {
            let (tree, paths, kind) = match source {
                BackupSource::Paths(paths) => {
                    if paths.is_empty() {
                        return Err(Error::InvalidArgument("no paths to back up".into()));
                    }
                    let mut abs = Vec::new();
                    for p in &paths {
                        let a = absolute_clean(p)?;
                        if let Err(e) = fs::symlink_metadata(&a) {
                            return Err(Error::io(&a, e));
                        }
                        abs.push(a);
                    }
                    abs.sort();
                    abs.dedup();
                    let path_strings: Vec<String> =
                        abs.iter().map(|a| a.display().to_string()).collect();
                    let host = opts.hostname.clone().unwrap_or_else(hostname);
                    parent_id = if opts.force {
                        None
                    } else if let Some(p) = opts.parent {
                        Some(p)
                    } else {
                        parent::latest_of(self, &host, &path_strings)?
                    };
                    let parent_root = match parent_id {
                        Some(id) => Some(self.load_snapshot(&id)?.tree),
                        None => None,
                    };
                    let tree = pool.install(|| -> Result<Id> {
                        if abs.iter().any(|a| a == Path::new("/")) {
                            return archiver.dir(Path::new("/"), parent_root);
                        }
                        let root_parent = parent::parent_tree(self, parent_root);
                        let mut root = BTreeMap::new();
                        for a in &abs {
                            insert_path(&mut root, a);
                        }
                        let mut nodes = Vec::new();
                        for (n, v) in &root {
                            let pn = root_parent.as_ref().and_then(|t| t.find(n));
                            if let Some(node) = archiver.source_entry(n.clone(), v, pn)? {
                                nodes.push(node);
                            }
                        }
                        archiver.save_tree(nodes)
                    })?;
                    (
                        tree,
                        abs.iter().map(|a| a.display().to_string()).collect(),
                        SourceKind::Fs,
                    )
                }
                BackupSource::Stdin { filename, reader } => {
                    let tree =
                        pool.install(|| archiver.stdin(&filename, StdinInput::Reader(reader)))?;
                    (tree, vec![format!("/{filename}")], SourceKind::Stdin)
                }
                BackupSource::StdinFile { filename, file } => {
                    let tree =
                        pool.install(|| archiver.stdin(&filename, StdinInput::File(file)))?;
                    (tree, vec![format!("/{filename}")], SourceKind::Stdin)
                }
                BackupSource::Block {
                    path,
                    chunking,
                    changed_ranges,
                } => {
                    let b = pool.install(|| {
                        archiver.block(opts, &path, chunking, changed_ranges.as_deref())
                    })?;
                    parent_id = b.parent;
                    source_meta = b.meta;
                    (b.tree, b.paths, SourceKind::Block)
                }
                BackupSource::Stream {
                    filename,
                    path,
                    reader,
                    kind,
                    meta,
                } => {
                    let tree = pool.install(|| -> Result<Id> {
                        let node = archiver.stream_node(
                            &filename,
                            &filename,
                            StdinInput::Reader(reader),
                            0o600,
                        )?;
                        archiver.save_tree(vec![node])
                    })?;
                    source_meta = meta().map_err(|e| Error::io(&filename, e))?;
                    (tree, vec![path], kind)
                }
            };
            archiver.content.check_stop()?;
            Ok((tree, paths, kind))
        });
        let (tree, paths, kind) = archived?;
        saver.finish()?;
        let errors = archiver
            .errors
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let files = archiver.files.load(Ordering::Relaxed);
        let changed = archiver.files_changed.load(Ordering::Relaxed);
        let unchanged = archiver.files_unchanged.load(Ordering::Relaxed);
        let bytes = archiver.content.bytes.load(Ordering::Relaxed);
        let summary = SnapshotSummary {
            files_new: files - changed - unchanged,
            files_changed: changed,
            files_unchanged: unchanged,
            dirs: archiver.dirs.load(Ordering::Relaxed),
            bytes_total: archiver.bytes_total.load(Ordering::Relaxed).max(bytes),
            bytes_read: bytes,
            bytes_added: saver.stats.bytes_added.load(Ordering::Relaxed),
            bytes_stored: saver.stats.bytes_stored.load(Ordering::Relaxed),
            data_blobs: saver.stats.data_blobs.load(Ordering::Relaxed),
            tree_blobs: saver.stats.tree_blobs.load(Ordering::Relaxed),
            errors: errors.len() as u64,
            start: start_time.clone(),
            end: now_rfc3339(),
            duration_secs: start.elapsed().as_secs_f64(),
        };
        let snapshot = Snapshot {
            version: 1,
            time: opts.time.clone().unwrap_or(start_time),
            tree,
            paths,
            hostname: opts.hostname.clone().unwrap_or_else(hostname),
            username: username(),
            tags: opts.tags.clone(),
            source: kind,
            source_meta,
            parent: parent_id,
            excludes: opts.excludes.clone(),
            incomplete: errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
            summary: Some(summary),
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        };
        fail_point!(opts.fail, Snapshot)?;
        saver.guard.check(self)?;
        let id = self.save_snapshot(&snapshot)?;
        Ok(BackupReport {
            id,
            snapshot,
            errors,
            unindexed_packs,
            unindexed_bytes,
            unindexed_unknown,
        })
    }

    /// Count and bytes of the packs in `data/` that the index does not
    /// list: one listing of `data/`.
    fn unindexed_packs(&self) -> Result<(u64, u64)> {
        use crate::repo::RepositoryInternals as _;
        use lifeboat_format::layout::{Folder, id_of_path};
        let listed = self.backend().list(&Folder::Data.prefix())?;
        let index = self.index();
        Ok(listed
            .iter()
            .filter(|o| id_of_path(&o.path).is_some_and(|id| index.pack_size(&id).is_none()))
            .fold((0, 0), |(n, b), o| (n + 1, b + o.size)))
    }
}

/// Where standard input's content comes from.
enum StdinInput<'a> {
    Reader(&'a mut (dyn Read + Send)),
    File(fs::File),
}

impl Archiver<'_, '_> {
    /// Save standard input as the one file `filename` of a root tree;
    /// returns the tree's id.
    fn stdin(&self, filename: &str, input: StdinInput<'_>) -> Result<Id> {
        let node = self.stream_node(filename, "<stdin>", input, 0o644)?;
        self.save_tree(vec![node])
    }

    /// Read standard input or another stream to its end and make its file
    /// node, `filename` with `mode`; read errors name the stream `source`.
    /// A read error is fatal: a stream cannot be skipped as an entry of a
    /// tree can.
    fn stream_node(
        &self,
        filename: &str,
        source: &str,
        input: StdinInput<'_>,
        mode: u32,
    ) -> Result<Node> {
        if filename.is_empty() || filename.contains('/') || filename == "." || filename == ".." {
            return Err(Error::InvalidArgument(format!(
                "invalid stdin file name {filename:?}"
            )));
        }
        let content = match input {
            StdinInput::Reader(reader) => self.content.content(reader)?,
            StdinInput::File(mut file) => {
                use std::io::Seek;
                match (file.stream_position(), file.metadata()) {
                    (Ok(0), Ok(m)) if m.is_file() => self.content.file_content(&file, m.len())?,
                    _ => self.content.content(file)?,
                }
            }
        };
        let (parts, len) = content.map_err(|e| Error::io(source, e))?;
        let mut node = Node::new(filename.as_bytes().to_vec(), NodeKind::File);
        node.mode = mode;
        node.uid = nix::unistd::getuid().as_raw();
        node.gid = nix::unistd::getgid().as_raw();
        let now = jiff::Timestamp::now();
        node.mtime = Timestamp {
            sec: now.as_second(),
            nsec: now.subsec_nanosecond().max(0) as u32,
        };
        node.atime = node.mtime;
        node.ctime = node.mtime;
        node.size = len;
        node.links = 1;
        node.content = parts;
        self.files.fetch_add(1, Ordering::Relaxed);
        // Holes skipped in a regular file are content too.
        self.bytes_total.fetch_add(len, Ordering::Relaxed);
        Ok(node)
    }
}

/// The memory budget's cap for `threads` workers: [`MEMORY_PER_THREAD`]
/// each, and at least two batches. With three workers or more, also room
/// for a stream's two batch buffers beside one file per worker other than
/// the streaming one and its first helper: where a stream needs the whole
/// cap, the other workers wait behind it, and waits under stolen work are
/// what ends in a stall (see `budget`). With two, the helper seals the
/// stream's batches, and the cap stays at two batches.
fn budget_cap(chunker: &lifeboat_chunker::Chunker, threads: usize) -> usize {
    let cap = (MEMORY_PER_THREAD * threads).max(2 * BATCH_BYTES);
    if threads < 3 {
        return cap;
    }
    cap.max(stream_bytes(chunker, threads) + MEMORY_PER_THREAD * (threads - 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_cap_leaves_room_beside_a_stream_from_three_workers() {
        // The default chunker: 512 KiB, 1 MiB, 8 MiB.
        let c = lifeboat_chunker::Chunker::new(512 << 10, 1 << 20, 8 << 20, 0).unwrap();
        let stream = 2 * c.batch_capacity(BATCH_BYTES);
        assert_eq!(stream, 32 << 20);
        // Two workers: two batches, as measured (a stream runs alone).
        assert_eq!(budget_cap(&c, 2), 16 << 20);
        assert_eq!(budget_cap(&c, 1), 16 << 20);
        // Three and more: a stream beside one file per worker other than
        // the streaming one and its first helper.
        assert_eq!(budget_cap(&c, 3), (32 + 8) << 20);
        assert_eq!(budget_cap(&c, 4), (32 + 16) << 20);
        for t in 3..=64 {
            let stream = 2 * c.batch_capacity(BATCH_BYTES.max(t * c.avg_size()));
            assert!(budget_cap(&c, t) >= stream + MEMORY_PER_THREAD * (t - 2));
            assert!(budget_cap(&c, t) >= MEMORY_PER_THREAD * t);
        }
    }
}
