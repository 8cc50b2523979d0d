//! Durable writes to a local repository: every object is written to a new
//! file under `staging/`, fsynced, renamed (or linked, for a create) to its
//! name, and its folder fsynced; see docs/storage.md, "Crash model".

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lifeboat_format::layout::Folder;

use crate::{Error, Result};

/// Folder of a local repository that holds objects being written; see
/// [`Backend::stage`](crate::Backend::stage). What an interrupted writer
/// leaves there is not part of the repository and may be deleted when no
/// backup runs.
pub const STAGING_DIR: &str = Folder::Staging.name();

/// Writes to a staged file are gathered up to this size: a pack of small
/// files' blobs was one `write` per blob, 124k on the real tree of
/// docs/benchmarks.md. Larger writes go straight through.
const STAGE_BUFFER: usize = 256 << 10;

/// `e`, with `what` was being done put before its message and its kind kept.
fn io_during(what: &str, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        IoDuring {
            what: what.to_string(),
            source: e,
        },
    )
}

/// An I/O error and the step it happened in (`fsync`, `rename`, ...).
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
struct IoDuring {
    what: String,
    source: std::io::Error,
}

/// The error for step `what` of writing object `path`.
fn write_error(path: &str, what: &str, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        Error::permission_denied(path, io_during(what, e))
    } else {
        Error::backend(path, io_during(what, e))
    }
}

/// Make the entries of folder `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Create `dir` and the folders above it that are missing, fsyncing the
/// parent of each one created, so that a repository folder made by `init`
/// is still there after a power loss.
pub(crate) fn create_dir_durably(dir: &Path) -> std::io::Result<()> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .filter(|d| !d.as_os_str().is_empty())
        .take_while(|d| !d.is_dir())
        .collect();
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        sync_dir(d.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Whether `path` is a name a local repository holds: segments of ASCII
/// letters, digits, `-`, `_` and `.` (what Lifeboat writes: hex names under
/// a few folders), none `.` or `..`, so that it maps to the same file as in
/// `object_store`'s layout and stays inside the repository.
pub(crate) fn is_plain_name(path: &str) -> bool {
    path.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    })
}

/// Whether a write may replace an object that is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// [`Backend::put`](crate::Backend::put): rename over it.
    Replace,
    /// [`Backend::create`](crate::Backend::create): link, which fails if
    /// the name is taken, even by a creator racing this one.
    CreateNew,
}

/// The root folder of a local repository.
#[derive(Debug)]
pub(crate) struct LocalRoot {
    root: PathBuf,
    /// Folders whose entry in their parent this process has fsynced (so
    /// once per folder and process, not per object). A folder that was
    /// there already counts only once fsynced too: whoever made it may
    /// have died before its own fsync.
    durable_dirs: Mutex<HashSet<PathBuf>>,
}

impl LocalRoot {
    pub(crate) fn new(root: PathBuf) -> LocalRoot {
        LocalRoot {
            root,
            durable_dirs: Mutex::new(HashSet::new()),
        }
    }

    /// The repository's folder.
    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    /// Make sure `dir`, a folder inside the repository, and every folder
    /// between it and the root exist and are durable in their parents.
    fn ensure_dir(&self, dir: &Path) -> std::io::Result<()> {
        let Ok(rel) = dir.strip_prefix(&self.root) else {
            return Err(std::io::Error::other(format!(
                "{} is outside the repository",
                dir.display()
            )));
        };
        let mut cur = self.root.clone();
        for part in rel.components() {
            let parent = cur.clone();
            cur.push(part);
            let known = self
                .durable_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&cur);
            if known {
                continue;
            }
            match std::fs::create_dir(&cur) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
            sync_dir(&parent)?;
            self.durable_dirs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(cur.clone());
        }
        Ok(())
    }

    /// A new, empty staged object.
    pub(crate) fn stage(self: &Arc<Self>) -> Result<LocalStaged> {
        LocalStaged::create(self.clone())
    }

    /// Store `data` under `path` as [`Backend::put`](crate::Backend::put) or
    /// [`Backend::create`](crate::Backend::create) do: the staged path,
    /// with the whole object in one write.
    pub(crate) fn write(self: &Arc<Self>, path: &str, data: &[u8], how: Placement) -> Result<()> {
        let mut staged = self.stage()?;
        crate::StagedObject::write(&mut staged, data)?;
        staged.place(path, how)
    }
}

/// A local object being written: `staging/<random>`, opened exclusively.
#[derive(Debug)]
pub(crate) struct LocalStaged {
    root: Arc<LocalRoot>,
    /// `None` once committed.
    file: Option<(std::io::BufWriter<std::fs::File>, PathBuf)>,
    len: u64,
}

impl LocalStaged {
    fn create(root: Arc<LocalRoot>) -> Result<LocalStaged> {
        let dir = root.root.join(STAGING_DIR);
        root.ensure_dir(&dir)
            .map_err(|e| Error::backend(STAGING_DIR, io_during("create folder", e)))?;
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        loop {
            // Unique within this process; the exclusive create (and a new
            // name if taken) covers other writers.
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let name = format!("{}-{n}-{nanos:09}", std::process::id());
            let path = dir.join(&name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(f) => {
                    return Ok(LocalStaged {
                        root,
                        file: Some((std::io::BufWriter::with_capacity(STAGE_BUFFER, f), path)),
                        len: 0,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(write_error(&format!("{STAGING_DIR}/{name}"), "create", e));
                }
            }
        }
    }

    /// Make the object durable, then give it its name `path`: fsync the
    /// file, rename or link it into place, fsync the folder. No step
    /// before the fsync touches `path`, so a crash leaves either no object
    /// or the whole one (and perhaps a file in `staging/`).
    fn place(&mut self, path: &str, how: Placement) -> Result<()> {
        // Left in `self.file`, the staged file goes when `self` is dropped.
        if !is_plain_name(path) {
            return Err(write_error(
                path,
                "commit",
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "not a name a local repository holds (ASCII letters, digits, '-', '_', '.')",
                ),
            ));
        }
        let Some((f, staged)) = self.file.take() else {
            return Err(write_error(
                path,
                "commit",
                std::io::Error::other("committed twice"),
            ));
        };
        let io = |what: &'static str| move |e: std::io::Error| write_error(path, what, e);
        let res = (|| {
            let f = f
                .into_inner()
                .map_err(|e| e.into_error())
                .map_err(io("write"))?;
            f.sync_all().map_err(io("fsync"))?;
            drop(f);
            let dest = self.root.root.join(path);
            let parent = dest.parent().unwrap_or(&self.root.root);
            self.root.ensure_dir(parent).map_err(io("create folder"))?;
            match how {
                Placement::Replace => std::fs::rename(&staged, &dest).map_err(io("rename"))?,
                Placement::CreateNew => match std::fs::hard_link(&staged, &dest) {
                    Ok(()) => {
                        // The object is in place; a staged name left by a
                        // failed unlink is only a stray file in staging/.
                        let _ = std::fs::remove_file(&staged);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Err(Error::AlreadyExists { path: path.into() });
                    }
                    Err(e) => return Err(io("link")(e)),
                },
            }
            sync_dir(parent).map_err(io("fsync folder"))
        })();
        if res.is_err() {
            let _ = std::fs::remove_file(&staged);
        }
        res
    }
}

impl crate::StagedObject for LocalStaged {
    fn write(&mut self, data: &[u8]) -> Result<()> {
        let Some((f, path)) = &mut self.file else {
            return Err(Error::backend(
                STAGING_DIR,
                std::io::Error::other("write after commit"),
            ));
        };
        if let Err(e) = f.write_all(data) {
            let name = path
                .strip_prefix(&self.root.root)
                .unwrap_or(path)
                .display()
                .to_string();
            return Err(write_error(&name, "write", e));
        }
        self.len += data.len() as u64;
        Ok(())
    }

    fn len(&self) -> u64 {
        self.len
    }

    fn commit(mut self: Box<Self>, path: &str) -> Result<()> {
        self.place(path, Placement::Replace)
    }
}

impl Drop for LocalStaged {
    fn drop(&mut self) {
        if let Some((w, path)) = self.file.take() {
            // Not flushed: the file is going away.
            drop(w.into_parts());
            let _ = std::fs::remove_file(path);
        }
    }
}
