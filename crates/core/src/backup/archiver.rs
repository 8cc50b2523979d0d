//! The backup's traversal of the source file system: each entry becomes a
//! node, each directory a tree blob, files are compared with the parent
//! snapshot and read only when changed. Unreadable entries are recorded
//! and skipped; a repository failure stops the whole backup.

use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use lifeboat_format::{BlobType, Id, Node, NodeKind, Tree};
use rayon::prelude::*;

use super::content_saver::ContentSaver;
use super::parent::{parent_tree, unchanged};
use super::source_roots::SourceEntry;
use crate::filter::PathFilter;
use crate::meta::{NameCache, node_from_metadata, node_from_stat, read_xattrs, read_xattrs_of};
use crate::{EntryError, Error, Result};

/// Turns the source's entries into nodes and trees, and counts them.
pub(super) struct Archiver<'a, 'r> {
    pub(super) content: ContentSaver<'a, 'r>,
    pub(super) excludes: PathFilter,
    pub(super) names: NameCache,
    pub(super) errors: Mutex<Vec<EntryError>>,
    pub(super) files: AtomicU64,
    pub(super) files_changed: AtomicU64,
    pub(super) files_unchanged: AtomicU64,
    pub(super) dirs: AtomicU64,
    /// Content bytes of every file in the snapshot, read or unchanged.
    pub(super) bytes_total: AtomicU64,
    /// Directories held open now ([`DirHandles`]).
    pub(super) open_dirs: AtomicUsize,
}

impl Archiver<'_, '_> {
    fn record(&self, path: &Path, message: String) {
        self.content.progress.errors.fetch_add(1, Ordering::Relaxed);
        let mut e = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        e.push(EntryError {
            path: path.display().to_string(),
            message,
        });
    }

    /// Back up one entry. `Ok(None)`: skipped, error recorded. `Err`: the
    /// whole backup must stop. `at`: where the entry was found, when it
    /// comes from a directory being read; then it is `lstat`ed and opened
    /// relative to that directory, not by its whole path.
    fn entry(
        &self,
        path: &Path,
        name: Vec<u8>,
        parent: Option<&Node>,
        at: Option<InDir<'_>>,
    ) -> Result<Option<Node>> {
        self.content.check_stop()?;
        let stat = match &at {
            Some(a) => a.entry.metadata(),
            None => fs::symlink_metadata(path),
        };
        let md = match stat {
            Ok(m) => m,
            Err(e) => {
                self.record(path, format!("stat: {e}"));
                return Ok(None);
            }
        };
        let mut node = node_from_stat(name, &md, &self.names);
        // A file that is read gets its extended attributes from the open
        // file below; every other entry by its path.
        let read = node.kind == NodeKind::File
            && !parent
                .is_some_and(|p| unchanged(self.content.repo, &self.content.saver.guard, p, &node));
        if !read {
            node.xattrs = read_xattrs(path);
        }
        match node.kind {
            NodeKind::Dir => {
                let sub = parent
                    .filter(|p| p.kind == NodeKind::Dir)
                    .and_then(|p| p.subtree);
                node.subtree = Some(self.dir(path, sub)?);
            }
            NodeKind::File if !read => {
                let p = parent.map(|p| p.content.clone()).unwrap_or_default();
                node.content = p;
                self.files.fetch_add(1, Ordering::Relaxed);
                self.files_unchanged.fetch_add(1, Ordering::Relaxed);
                self.bytes_total.fetch_add(node.size, Ordering::Relaxed);
                self.content.progress.files.fetch_add(1, Ordering::Relaxed);
                // Processed as restic counts it: taken from the parent, not read.
                self.content
                    .progress
                    .bytes
                    .fetch_add(node.size, Ordering::Relaxed);
            }
            NodeKind::File => match open_file(path, at.as_ref()) {
                Ok(f) => match self.content.file_content(&f, md.len()) {
                    Ok(Ok((parts, len))) => {
                        if let Some(what) = changed_while_read(&f, &md) {
                            // Kept as read, and said: the bytes may mix
                            // the file's old and new content.
                            self.record(
                                path,
                                format!(
                                    "changed while read ({what}); the snapshot holds \
                                     the bytes as read, which may mix old and new content"
                                ),
                            );
                        }
                        node.xattrs = read_xattrs_of(&f);
                        node.content = parts;
                        node.size = len;
                        self.files.fetch_add(1, Ordering::Relaxed);
                        if parent.is_some_and(|p| p.kind == NodeKind::File) {
                            self.files_changed.fetch_add(1, Ordering::Relaxed);
                        }
                        self.bytes_total.fetch_add(len, Ordering::Relaxed);
                        self.content.progress.files.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(e)) => {
                        self.record(path, format!("read: {e}"));
                        return Ok(None);
                    }
                    Err(e) => return self.content.fail(e),
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
    pub(super) fn dir(&self, path: &Path, parent: Option<Id>) -> Result<Id> {
        if let Err(e) = fail_point!(self.content.fail_points, ReadDir) {
            return self.content.fail(e);
        }
        let parent = parent_tree(self.content.repo, parent);
        // Each entry keeps the directory open, so that its `lstat` is asked
        // relative to it (`DirEntry::metadata`) rather than by the whole
        // path: one lookup of every folder above it less per entry. Files
        // are opened relative to `dir` for the same reason. Past the cap
        // of directories held open, entries keep nothing open and go by
        // path, so a deep tree cannot use up the file descriptors.
        let held = DirHandles::take(&self.open_dirs);
        let dir = held.as_ref().and_then(|_| fs::File::open(path).ok());
        let mut entries: Vec<(std::ffi::OsString, Option<fs::DirEntry>)> = Vec::new();
        match fs::read_dir(path) {
            Ok(rd) => {
                for e in rd {
                    match e {
                        Ok(e) => entries.push((e.file_name(), held.as_ref().map(|_| e))),
                        Err(e) => self.record(path, format!("read dir: {e}")),
                    }
                }
            }
            Err(e) => self.record(path, format!("read dir: {e}")),
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let nodes: Vec<Option<Node>> = entries
            .par_iter()
            .map(|(n, e)| {
                let child = path.join(n);
                if self.excludes.matches(&child) {
                    return Ok(None);
                }
                let name = n.as_bytes();
                self.entry(
                    &child,
                    name.to_vec(),
                    parent.as_ref().and_then(|t| t.find(name)),
                    e.as_ref().map(|entry| InDir {
                        dir: dir.as_ref(),
                        name: n,
                        entry,
                    }),
                )
            })
            .collect::<Result<_>>()?;
        self.dirs.fetch_add(1, Ordering::Relaxed);
        self.content.progress.dirs.fetch_add(1, Ordering::Relaxed);
        self.save_tree(nodes.into_iter().flatten().collect())
    }

    pub(super) fn save_tree(&self, nodes: Vec<Node>) -> Result<Id> {
        let bytes = Tree::new(nodes)
            .encode()
            .map_err(|e| Error::format("encoding a tree", e))?;
        match self.content.saver.save(BlobType::Tree, &bytes) {
            Ok((id, _)) => Ok(id),
            Err(e) => self.content.fail(e),
        }
    }

    /// Back up an entry of the tree of backup paths.
    pub(super) fn source_entry(
        &self,
        name: Vec<u8>,
        v: &SourceEntry,
        parent: Option<&Node>,
    ) -> Result<Option<Node>> {
        match v {
            SourceEntry::Real(p) => self.entry(p, name, parent, None),
            SourceEntry::Virtual(p, children) => {
                let md = match fs::symlink_metadata(p) {
                    Ok(m) => m,
                    Err(e) => {
                        self.record(p, format!("stat: {e}"));
                        return Ok(None);
                    }
                };
                let mut node = node_from_metadata(name, p, &md, &self.names);
                node.kind = NodeKind::Dir;
                let sub = parent_tree(
                    self.content.repo,
                    parent
                        .filter(|p| p.kind == NodeKind::Dir)
                        .and_then(|p| p.subtree),
                );
                let mut nodes = Vec::new();
                for (n, c) in children {
                    let pn = sub.as_ref().and_then(|t| t.find(n));
                    if let Some(node) = self.source_entry(n.clone(), c, pn)? {
                        nodes.push(node);
                    }
                }
                node.subtree = Some(self.save_tree(nodes)?);
                Ok(Some(node))
            }
        }
    }
}

/// How many directories a backup holds open at once to look their entries
/// up relative to them, two descriptors each (the listing and the
/// directory): an eighth of the soft limit on open files, at most 256.
/// Deeper ones are read by path.
fn dir_handles_cap() -> usize {
    static CAP: OnceLock<usize> = OnceLock::new();
    *CAP.get_or_init(|| {
        use nix::sys::resource::{Resource, getrlimit};
        getrlimit(Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| usize::try_from(soft / 8).unwrap_or(usize::MAX).min(256))
            .unwrap_or(0)
    })
}

/// One of the [`dir_handles_cap`] directories held open; given back when
/// dropped.
struct DirHandles<'a>(&'a AtomicUsize);

impl<'a> DirHandles<'a> {
    /// A slot, if fewer than the cap are held.
    fn take(held: &'a AtomicUsize) -> Option<Self> {
        held.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < dir_handles_cap()).then_some(n + 1)
        })
        .ok()
        .map(|_| DirHandles(held))
    }
}

impl Drop for DirHandles<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An entry of a directory being read: the open directory (if it could be
/// opened), the entry's name in it, and the entry as read from it.
struct InDir<'a> {
    dir: Option<&'a fs::File>,
    name: &'a std::ffi::OsStr,
    entry: &'a fs::DirEntry,
}

/// Open the file at `path` for reading: relative to its directory where
/// `at` has that open (`openat`), else by the whole path.
fn open_file(path: &Path, at: Option<&InDir<'_>>) -> std::io::Result<fs::File> {
    use nix::fcntl::{OFlag, openat};
    use nix::sys::stat::Mode;
    match at.and_then(|a| Some((a.dir?, a.name))) {
        Some((dir, name)) => openat(dir, name, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map(fs::File::from)
            .map_err(std::io::Error::from),
        None => fs::File::open(path),
    }
}

/// What changed about the open file `f` since `before` (its path's
/// `lstat`) was taken, if anything: its size, modification or change time.
/// Asked of the open file, not its path: the file read is the one that
/// matters, and a path lookup per file cost about 2% of a cold backup's
/// CPU. A file removed or replaced by another after it was opened was read
/// whole from the old one; one replaced between the `lstat` and the open
/// is not the file `before` describes. Neither counts as a change.
fn changed_while_read(f: &fs::File, before: &fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::MetadataExt;
    let now = f.metadata().ok()?;
    if (now.dev(), now.ino()) != (before.dev(), before.ino()) {
        None
    } else if now.len() != before.len() {
        Some("size")
    } else if (now.mtime(), now.mtime_nsec()) != (before.mtime(), before.mtime_nsec()) {
        Some("modification time")
    } else if (now.ctime(), now.ctime_nsec()) != (before.ctime(), before.ctime_nsec()) {
        Some("change time")
    } else {
        None
    }
}
