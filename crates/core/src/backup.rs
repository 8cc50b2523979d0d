//! Backup: walk sources, chunk, save blobs and trees, write the snapshot.

use crate::repo::RepositoryInternals as _;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use lifeboat_format::{
    BlobType, ContentPart, Id, Node, NodeKind, Snapshot, SnapshotSummary, SourceKind, Timestamp,
    Tree,
};
use rayon::prelude::*;

use crate::failpoint::{FailPoints, Stage};
use crate::filter::PathFilter;
use crate::meta::{NameCache, node_from_metadata};
use crate::repo::{hostname, now_rfc3339, username};
use crate::saver::BlobSaver;
use crate::{Error, Repository, Result};

thread_local! {
    /// A whole small file's bytes (up to two maximum chunks), reused from
    /// file to file by this thread.
    static READ_BUF: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Chunks sealed in parallel per batch, and the byte cap of one batch.
const BATCH_CHUNKS: usize = 16;
const BATCH_BYTES: usize = 8 << 20;
/// Content bytes held in memory by all workers together (see [`Budget`]),
/// per worker thread, and room for at least two full batches.
const MEMORY_PER_THREAD: usize = 8 << 20;
/// Holes shorter than this are read (as zeros) rather than skipped, so a
/// fragmented file does not become a storm of tiny chunks.
const MIN_HOLE: u64 = 1 << 20;
/// Pack upload threads (default).
pub(crate) const UPLOADERS: usize = 2;

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
}

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
    /// Pack upload threads (default 2).
    pub upload_threads: Option<usize>,
    /// Failure injection, for tests of the pipeline.
    #[doc(hidden)]
    pub fail: FailPoints,
}

/// A cap on content bytes held by all workers at once. A worker waits for
/// room only while it holds none itself: a worker already holding some
/// may go over (it is in the middle of a file and other work may depend
/// on it), which rules out deadlock, and the overshoot is at most one
/// batch per thread.
struct Budget {
    used: Mutex<usize>,
    room: Condvar,
    cap: usize,
    /// Threads waiting for room; releases wake them only if there are any
    /// (a wake is a system call, and releases happen once per chunk).
    waiting: AtomicU64,
}

thread_local! {
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

struct Grant<'a> {
    budget: &'a Budget,
    n: usize,
}

impl Budget {
    fn take(&self, n: usize) -> Grant<'_> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if HELD.get() == 0 {
            while *used > 0 && *used + n > self.cap {
                // Rather than idle, help: run a pending job of the pool
                // (often a chunk of the batch that holds the budget).
                drop(used);
                let helped = matches!(rayon::yield_now(), Some(rayon::Yield::Executed));
                used = self.used.lock().unwrap_or_else(|p| p.into_inner());
                if !helped && *used > 0 && *used + n > self.cap {
                    self.waiting.fetch_add(1, Ordering::SeqCst);
                    used = self
                        .room
                        .wait_timeout(used, std::time::Duration::from_millis(2))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        *used += n;
        HELD.set(HELD.get() + n);
        Grant { budget: self, n }
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.n;
        HELD.set(HELD.get().saturating_sub(self.n));
        if self.budget.waiting.load(Ordering::SeqCst) > 0 {
            self.budget.room.notify_all();
        }
    }
}

/// An entry that could not be backed up.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntryError {
    /// Path of the entry.
    pub path: String,
    /// What went wrong.
    pub message: String,
}

/// The outcome of a backup.
#[derive(Debug, Clone)]
pub struct BackupReport {
    /// The new snapshot's id.
    pub id: Id,
    /// The snapshot as written.
    pub snapshot: Snapshot,
    /// Entries skipped because they could not be read.
    pub errors: Vec<EntryError>,
}

impl BackupReport {
    /// Whether every entry was backed up.
    pub fn is_complete(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Live counters for progress display, updated by running operations.
#[derive(Debug, Default)]
pub struct Progress {
    /// Files finished.
    pub files: AtomicU64,
    /// Directories finished.
    pub dirs: AtomicU64,
    /// Content bytes processed.
    pub bytes: AtomicU64,
    /// Entries that failed.
    pub errors: AtomicU64,
    /// Set to ask the operation to stop; it then fails with
    /// [`Error::Interrupted`] and writes no snapshot.
    pub cancel: AtomicBool,
}

struct Walker<'a, 'r> {
    repo: &'r Repository,
    saver: &'a BlobSaver<'r>,
    fail: &'a FailPoints,
    budget: Budget,
    excludes: PathFilter,
    names: NameCache,
    errors: Mutex<Vec<EntryError>>,
    progress: &'a Progress,
    failed: AtomicBool,
    files: AtomicU64,
    files_changed: AtomicU64,
    files_unchanged: AtomicU64,
    dirs: AtomicU64,
    bytes: AtomicU64,
    bytes_total: AtomicU64,
}

/// Lexically absolute form of `p` (no `.`/`..`, symlinks not resolved).
fn absolute_clean(p: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(p).map_err(|e| Error::io(p, e))?;
    let mut out = PathBuf::from("/");
    for c in abs.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

enum VEntry {
    Real(PathBuf),
    Virtual(PathBuf, BTreeMap<Vec<u8>, VEntry>),
}

impl<'a, 'r> Walker<'a, 'r> {
    fn record(&self, path: &Path, message: String) {
        self.progress.errors.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        e.push(EntryError {
            path: path.display().to_string(),
            message,
        });
    }

    fn check_stop(&self) -> Result<()> {
        if self.progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        if self.failed.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        Ok(())
    }

    fn fail<T>(&self, e: Error) -> Result<T> {
        self.failed.store(true, Ordering::Relaxed);
        Err(e)
    }

    /// Back up one entry. `Ok(None)`: skipped, error recorded. `Err`: the
    /// whole backup must stop.
    fn entry(&self, path: &Path, name: Vec<u8>, parent: Option<&Node>) -> Result<Option<Node>> {
        self.check_stop()?;
        let md = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                self.record(path, format!("stat: {e}"));
                return Ok(None);
            }
        };
        let mut node = node_from_metadata(name, path, &md, &self.names);
        match node.kind {
            NodeKind::Dir => {
                let sub = parent
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree);
                node.subtree = Some(self.dir(path, sub)?);
            }
            NodeKind::File if parent.is_some_and(|p| self.unchanged(p, &node)) => {
                let p = parent.map(|p| p.content.clone()).unwrap_or_default();
                node.content = p;
                self.files.fetch_add(1, Ordering::Relaxed);
                self.files_unchanged.fetch_add(1, Ordering::Relaxed);
                self.bytes_total.fetch_add(node.size, Ordering::Relaxed);
                self.progress.files.fetch_add(1, Ordering::Relaxed);
            }
            NodeKind::File => match fs::File::open(path) {
                Ok(f) => match self.file_content(f, md.len()) {
                    Ok(Ok((parts, len))) => {
                        node.content = parts;
                        node.size = len;
                        self.files.fetch_add(1, Ordering::Relaxed);
                        if parent.is_some_and(|p| p.kind == NodeKind::File) {
                            self.files_changed.fetch_add(1, Ordering::Relaxed);
                        }
                        self.bytes_total.fetch_add(len, Ordering::Relaxed);
                        self.progress.files.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        self.record(path, format!("read: {e}"));
                        return Ok(None);
                    }
                    Err(e) => return self.fail(e),
                },
                Err(e) => {
                    self.record(path, format!("open: {e}"));
                    return Ok(None);
                }
            },
            NodeKind::Symlink => match fs::read_link(path) {
                Ok(t) => node.symlink_target = Some(t.as_os_str().as_bytes().to_vec()),
                Err(e) => {
                    self.record(path, format!("readlink: {e}"));
                    return Ok(None);
                }
            },
            _ => {}
        }
        Ok(Some(node))
    }

    /// Back up a directory's entries; returns the tree blob id.
    /// The parent snapshot's tree for a directory, if it can be read; a
    /// damaged parent only means files are read again.
    fn parent_tree(&self, id: Option<Id>) -> Option<Tree> {
        id.and_then(|id| self.repo.load_tree(&id).ok())
    }

    /// Whether a file's metadata says its content is as in the parent, and
    /// the parent's blobs are all still indexed.
    fn unchanged(&self, p: &Node, n: &Node) -> bool {
        p.kind == NodeKind::File
            && p.size == n.size
            && p.mtime == n.mtime
            && p.ctime == n.ctime
            && p.inode == n.inode
            && p.content.iter().map(|c| c.len()).sum::<u64>() == n.size
            && {
                let idx = self.repo.index();
                p.content.iter().all(|c| match c {
                    ContentPart::Blob { id, .. } => idx.contains(id),
                    ContentPart::Hole { .. } => true,
                })
            }
    }

    fn dir(&self, path: &Path, parent: Option<Id>) -> Result<Id> {
        if let Err(e) = self.fail.check(Stage::Walk) {
            return self.fail(e);
        }
        let parent = self.parent_tree(parent);
        let mut names: Vec<std::ffi::OsString> = Vec::new();
        match fs::read_dir(path) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => names.push(e.file_name()),
                        Err(e) => self.record(path, format!("read dir: {e}")),
                    }
                }
            }
            Err(e) => self.record(path, format!("read dir: {e}")),
        }
        names.sort();
        let nodes: Vec<Option<Node>> = names
            .par_iter()
            .map(|n| {
                let child = path.join(n);
                if self.excludes.matches(&child) {
                    return Ok(None);
                }
                let name = n.as_bytes();
                self.entry(
                    &child,
                    name.to_vec(),
                    parent.as_ref().and_then(|t| t.find(name)),
                )
            })
            .collect::<Result<_>>()?;
        self.dirs.fetch_add(1, Ordering::Relaxed);
        self.progress.dirs.fetch_add(1, Ordering::Relaxed);
        self.save_tree(nodes.into_iter().flatten().collect())
    }

    fn save_tree(&self, nodes: Vec<Node>) -> Result<Id> {
        let bytes = Tree::new(nodes)
            .encode()
            .map_err(|e| Error::Internal(e.to_string()))?;
        match self.saver.save(BlobType::Tree, &bytes) {
            Ok((id, _)) => Ok(id),
            Err(e) => self.fail(e),
        }
    }

    /// Chunk and save a stream. Outer error: fatal; inner: the source
    /// could not be read.
    fn content(&self, reader: impl Read) -> Result<std::io::Result<(Vec<ContentPart>, u64)>> {
        let mut parts = Vec::new();
        Ok(self
            .stream_into(reader, &mut parts)?
            .map(|total| (parts, total)))
    }

    /// Chunk `reader` and append its parts; returns the bytes read.
    fn stream_into(
        &self,
        reader: impl Read,
        parts: &mut Vec<ContentPart>,
    ) -> Result<std::io::Result<u64>> {
        let mut total = 0u64;
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut grants = Vec::new();
        let mut batch_bytes = 0usize;
        for chunk in self.repo.chunker.stream(reader) {
            let chunk = match chunk {
                Ok(c) => c,
                Err(lifeboat_chunker::Error::Io(e)) => return Ok(Err(e)),
                Err(e) => return Ok(Err(std::io::Error::other(e))),
            };
            if let Err(e) = self.fail.check(Stage::Read) {
                return self.fail(e);
            }
            grants.push(self.budget.take(chunk.len()));
            batch_bytes += chunk.len();
            batch.push(chunk);
            if batch.len() >= BATCH_CHUNKS || batch_bytes >= BATCH_BYTES {
                total += self.flush_batch(&mut batch, parts)?;
                grants.clear();
                batch_bytes = 0;
            }
        }
        total += self.flush_batch(&mut batch, parts)?;
        Ok(Ok(total))
    }

    /// Files up to two maximum chunks are read whole into a buffer of
    /// their size; larger ones are streamed, data extents only: holes of
    /// at least [`MIN_HOLE`] found with SEEK_DATA/SEEK_HOLE are recorded
    /// as holes without being read.
    fn file_content(
        &self,
        mut f: fs::File,
        len: u64,
    ) -> Result<std::io::Result<(Vec<ContentPart>, u64)>> {
        if len > 2 * self.repo.chunker.max_size() as u64 {
            let mut parts = Vec::new();
            let mut pos = 0u64;
            for (start, end) in data_extents(&f, len) {
                if start > pos {
                    parts.push(ContentPart::Hole { len: start - pos });
                }
                if let Err(e) = f.seek(SeekFrom::Start(start)) {
                    return Ok(Err(e));
                }
                match self.stream_into((&mut f).take(end - start), &mut parts)? {
                    Ok(n) if n == end - start => pos = end,
                    // The file shrank while read: store what was there.
                    Ok(n) => return Ok(Ok((parts, start + n))),
                    Err(e) => return Ok(Err(e)),
                }
            }
            if len > pos {
                parts.push(ContentPart::Hole { len: len - pos });
            }
            return Ok(Ok((parts, len)));
        }
        // Small files are many and bounded by the thread count: only those
        // of a MiB or more count against the budget.
        let _grant = (len >= 1 << 20).then(|| self.budget.take(len as usize));
        // Read what stat said is there, no more: no size probe, no second
        // read to find the end. A file that grew since is stored as it was
        // when stat'ed; one that shrank, as it is.
        // This thread's buffer, taken so that a file picked up while this
        // one waits in `save_chunks` gets its own: fresh memory per file
        // cost page faults and zeroing in the kernel.
        let mut buf = READ_BUF.take();
        buf.clear();
        buf.reserve(len as usize);
        if let Err(e) = (&mut f).take(len).read_to_end(&mut buf) {
            return Ok(Err(e));
        }
        if let Err(e) = self.fail.check(Stage::Read) {
            return self.fail(e);
        }
        if let Err(e) = self.fail.check(Stage::Chunk) {
            return self.fail(e);
        }
        let chunks: Vec<&[u8]> = self
            .repo
            .chunker
            .chunks(&buf)
            .map(|(o, l)| &buf[o..o + l])
            .collect();
        let parts = self.save_chunks(&chunks)?;
        let n = buf.len() as u64;
        READ_BUF.set(buf);
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.progress.bytes.fetch_add(n, Ordering::Relaxed);
        Ok(Ok((parts, n)))
    }

    fn save_chunks(&self, chunks: &[&[u8]]) -> Result<Vec<ContentPart>> {
        self.check_stop()?;
        let one = |c: &&[u8]| -> Result<ContentPart> {
            if lifeboat_chunker::is_zero(c) {
                return Ok(ContentPart::Hole {
                    len: c.len() as u64,
                });
            }
            let (id, _) = self.saver.save(BlobType::Data, c)?;
            Ok(ContentPart::Blob {
                id,
                len: c.len() as u32,
            })
        };
        let res = if chunks.len() == 1 {
            chunks.iter().map(one).collect::<Result<_>>()
        } else {
            chunks.par_iter().map(one).collect::<Result<_>>()
        };
        res.or_else(|e| self.fail(e))
    }

    fn flush_batch(&self, batch: &mut Vec<Vec<u8>>, parts: &mut Vec<ContentPart>) -> Result<u64> {
        if let Err(e) = self.fail.check(Stage::Chunk) {
            return self.fail(e);
        }
        let slices: Vec<&[u8]> = batch.iter().map(|c| c.as_slice()).collect();
        let saved = self.save_chunks(&slices)?;
        let n: u64 = batch.iter().map(|c| c.len() as u64).sum();
        self.bytes.fetch_add(n, Ordering::Relaxed);
        self.progress.bytes.fetch_add(n, Ordering::Relaxed);
        parts.extend(saved);
        batch.clear();
        Ok(n)
    }

    fn ventry(&self, name: Vec<u8>, v: &VEntry, parent: Option<&Node>) -> Result<Option<Node>> {
        match v {
            VEntry::Real(p) => self.entry(p, name, parent),
            VEntry::Virtual(p, children) => {
                let md = match fs::symlink_metadata(p) {
                    Ok(m) => m,
                    Err(e) => {
                        self.record(p, format!("stat: {e}"));
                        return Ok(None);
                    }
                };
                let mut node = node_from_metadata(name, p, &md, &self.names);
                node.kind = NodeKind::Dir;
                let sub = self.parent_tree(
                    parent
                        .filter(|p| p.kind == NodeKind::Dir)
                        .and_then(|p| p.subtree),
                );
                let mut nodes = Vec::new();
                for (n, c) in children {
                    let pn = sub.as_ref().and_then(|t| t.find(n));
                    if let Some(node) = self.ventry(n.clone(), c, pn)? {
                        nodes.push(node);
                    }
                }
                node.subtree = Some(self.save_tree(nodes)?);
                Ok(Some(node))
            }
        }
    }
}

/// The data extents `[start, end)` of a file of `len` bytes, merging
/// those separated by holes shorter than [`MIN_HOLE`]. A file system
/// without SEEK_DATA support yields one extent: the whole file.
fn data_extents(f: &fs::File, len: u64) -> Vec<(u64, u64)> {
    use nix::unistd::{Whence, lseek};
    let whole = vec![(0, len)];
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0u64;
    while pos < len {
        let Ok(off) = i64::try_from(pos) else {
            return whole;
        };
        let data = match lseek(f, off, Whence::SeekData) {
            Ok(d) => d as u64,
            Err(nix::errno::Errno::ENXIO) => break, // only a hole is left
            Err(_) => return whole,
        };
        let hole = match lseek(f, data as i64, Whence::SeekHole) {
            Ok(h) => (h as u64).min(len),
            Err(_) => return whole,
        };
        if hole <= data {
            return whole;
        }
        match out.last_mut() {
            Some(last) if data - last.1 < MIN_HOLE => last.1 = hole,
            Some(_) => out.push((data, hole)),
            None if data < MIN_HOLE => out.push((0, hole)),
            None => out.push((data, hole)),
        }
        pos = hole;
    }
    if let Some(last) = out.last_mut() {
        if len - last.1 < MIN_HOLE {
            last.1 = len;
        }
    }
    out
}

fn insert_path(root: &mut BTreeMap<Vec<u8>, VEntry>, abs: &Path) {
    let comps: Vec<&std::ffi::OsStr> = abs
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s),
            _ => None,
        })
        .collect();
    let mut map = root;
    let mut cur = PathBuf::from("/");
    for (i, c) in comps.iter().enumerate() {
        cur.push(c);
        let key = c.as_bytes().to_vec();
        if i + 1 == comps.len() {
            map.insert(key, VEntry::Real(cur.clone()));
            return;
        }
        let e = map
            .entry(key)
            .or_insert_with(|| VEntry::Virtual(cur.clone(), BTreeMap::new()));
        match e {
            VEntry::Real(_) => return, // an ancestor is already backed up whole
            VEntry::Virtual(_, children) => map = children,
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
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads.unwrap_or(0))
            .stack_size(16 << 20)
            .thread_name(|i| format!("lifeboat-backup-{i}"))
            .build()
            .map_err(|e| Error::Internal(e.to_string()))?;
        let uploaders = opts.upload_threads.unwrap_or(UPLOADERS).max(1);
        let (saver, rx) = BlobSaver::new(self, uploaders, &opts.fail);
        let walker = Walker {
            repo: self,
            saver: &saver,
            fail: &opts.fail,
            budget: Budget {
                used: Mutex::new(0),
                room: Condvar::new(),
                cap: (MEMORY_PER_THREAD * pool.current_num_threads()).max(2 * BATCH_BYTES),
                waiting: AtomicU64::new(0),
            },
            excludes,
            names: NameCache::default(),
            errors: Mutex::new(Vec::new()),
            progress,
            failed: AtomicBool::new(false),
            files: AtomicU64::new(0),
            files_changed: AtomicU64::new(0),
            files_unchanged: AtomicU64::new(0),
            dirs: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
        };
        let mut parent_id = None;

        let walked = saver.drive(rx, || -> Result<(Id, Vec<String>, SourceKind)> {
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
                        self.snapshots()?
                            .into_iter()
                            .rev()
                            .find(|(_, s)| {
                                s.source == SourceKind::Fs
                                    && s.hostname == host
                                    && s.paths == path_strings
                            })
                            .map(|(id, _)| id)
                    };
                    let parent_root = match parent_id {
                        Some(id) => Some(self.load_snapshot(&id)?.tree),
                        None => None,
                    };
                    let tree = pool.install(|| -> Result<Id> {
                        if abs.iter().any(|a| a == Path::new("/")) {
                            return walker.dir(Path::new("/"), parent_root);
                        }
                        let root_parent = walker.parent_tree(parent_root);
                        let mut root = BTreeMap::new();
                        for a in &abs {
                            insert_path(&mut root, a);
                        }
                        let mut nodes = Vec::new();
                        for (n, v) in &root {
                            let pn = root_parent.as_ref().and_then(|t| t.find(n));
                            if let Some(node) = walker.ventry(n.clone(), v, pn)? {
                                nodes.push(node);
                            }
                        }
                        walker.save_tree(nodes)
                    })?;
                    (
                        tree,
                        abs.iter().map(|a| a.display().to_string()).collect(),
                        SourceKind::Fs,
                    )
                }
                BackupSource::Stdin { filename, reader } => {
                    if filename.is_empty()
                        || filename.contains('/')
                        || filename == "."
                        || filename == ".."
                    {
                        return Err(Error::InvalidArgument(format!(
                            "invalid stdin file name {filename:?}"
                        )));
                    }
                    let tree = pool.install(|| -> Result<Id> {
                        let (parts, len) = walker
                            .content(reader)?
                            .map_err(|e| Error::io("<stdin>", e))?;
                        let mut node = Node::new(filename.as_bytes().to_vec(), NodeKind::File);
                        node.mode = 0o644;
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
                        walker.files.fetch_add(1, Ordering::Relaxed);
                        walker.save_tree(vec![node])
                    })?;
                    (tree, vec![format!("/{filename}")], SourceKind::Stdin)
                }
            };
            walker.check_stop()?;
            Ok((tree, paths, kind))
        });
        let (tree, paths, kind) = walked?;
        saver.finish()?;
        let errors = walker
            .errors
            .into_inner()
            .unwrap_or_else(|p| p.into_inner());
        let files = walker.files.load(Ordering::Relaxed);
        let changed = walker.files_changed.load(Ordering::Relaxed);
        let unchanged = walker.files_unchanged.load(Ordering::Relaxed);
        let bytes = walker.bytes.load(Ordering::Relaxed);
        let summary = SnapshotSummary {
            files_new: files - changed - unchanged,
            files_changed: changed,
            files_unchanged: unchanged,
            dirs: walker.dirs.load(Ordering::Relaxed),
            bytes_total: walker.bytes_total.load(Ordering::Relaxed).max(bytes),
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
            source_meta: Default::default(),
            parent: parent_id,
            excludes: opts.excludes.clone(),
            incomplete: errors
                .iter()
                .map(|e| format!("{}: {}", e.path, e.message))
                .collect(),
            summary: Some(summary),
            program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
        };
        opts.fail.check(Stage::Snapshot)?;
        let id = self.save_snapshot(&snapshot)?;
        Ok(BackupReport {
            id,
            snapshot,
            errors,
        })
    }
}
