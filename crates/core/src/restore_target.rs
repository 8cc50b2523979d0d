//! Where restored entries land in the target: directories made without
//! following symlinks, existing entries replaced through a temporary name
//! beside them, and the [`Overwrite`] decision for each existing entry.

use std::collections::HashSet;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_format::{ContentPart, MasterKey, Node, NodeKind};

use crate::Error;

/// Name prefix of the temporary files a restore writes beside the entries
/// it replaces. One left behind (by a crash or a kill) is safe to delete;
/// `check` and later restores can recognise it by this prefix.
pub const RESTORE_TEMP_PREFIX: &str = ".lifeboat-restore-";

/// What a restore does with an entry that already exists in the target
/// (restic's `--overwrite`). Whatever the mode, an existing file is only
/// ever replaced whole and atomically: its new content is written under a
/// temporary name beside it and renamed over it once complete, so a failed
/// write leaves the old content.
///
/// The default is [`Overwrite::Always`], as in restic: a restore is most
/// often run because data went bad, and damage (a bad disk, a buggy
/// program, a half-finished copy) rarely changes a file's size and mtime,
/// so the size-and-mtime shortcut of `IfChanged` would keep exactly the
/// files the operator wanted back. On a live volume `Always` is also safe
/// for readers: each file is swapped by rename, never seen half-written.
/// `IfChanged` is the choice for a quick resync of a volume known to be
/// healthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Overwrite {
    /// Replace every existing entry.
    #[default]
    Always,
    /// Keep an existing file whose size and mtime match the snapshot's, or
    /// whose content does (read and compared blob by blob); its metadata
    /// is still set to the snapshot's. Other entries: keep a symlink with
    /// the same target, a fifo, a device with the same numbers, a hard
    /// link already to the right file.
    IfChanged,
    /// Replace an existing entry only when the snapshot's mtime is newer
    /// than its own; otherwise leave it as it is.
    IfNewer,
    /// Never touch an existing entry, nor a symlink where the snapshot has
    /// a directory (that directory's content is then reported and skipped).
    Never,
}

impl Overwrite {
    /// The name used on the command line: `always`, `if-changed`,
    /// `if-newer` or `never`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overwrite::Always => "always",
            Overwrite::IfChanged => "if-changed",
            Overwrite::IfNewer => "if-newer",
            Overwrite::Never => "never",
        }
    }
}

impl std::fmt::Display for Overwrite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Overwrite {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "always" => Ok(Overwrite::Always),
            "if-changed" => Ok(Overwrite::IfChanged),
            "if-newer" => Ok(Overwrite::IfNewer),
            "never" => Ok(Overwrite::Never),
            other => Err(Error::InvalidArgument(format!(
                "unknown overwrite mode {other:?} (expected always, if-changed, if-newer or never)"
            ))),
        }
    }
}

/// What to do with one entry of the snapshot at its destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Nothing is there: create it in place.
    Create,
    /// Something is there: write beside it, then rename over it.
    Replace,
    /// Leave what is there, metadata included.
    Skip,
    /// What is there has the right content: set only its metadata.
    KeepContent,
}

/// The action for `node` at `dest` under `mode`, from `dest`'s `lstat`.
/// `unchanged` tells (at some cost) whether what is there already has the
/// snapshot's content; it is asked only under [`Overwrite::IfChanged`].
pub(crate) fn decide(
    mode: Overwrite,
    dest: &Path,
    node: &Node,
    unchanged: impl FnOnce(&fs::Metadata) -> bool,
) -> std::io::Result<Action> {
    let md = match fs::symlink_metadata(dest) {
        Ok(md) => md,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Action::Create),
        Err(e) => return Err(e),
    };
    Ok(match mode {
        Overwrite::Always => Action::Replace,
        Overwrite::Never => Action::Skip,
        Overwrite::IfNewer => {
            if (node.mtime.sec, i64::from(node.mtime.nsec)) > (md.mtime(), md.mtime_nsec()) {
                Action::Replace
            } else {
                Action::Skip
            }
        }
        Overwrite::IfChanged if unchanged(&md) => Action::KeepContent,
        Overwrite::IfChanged => Action::Replace,
    })
}

/// Whether the non-file entry `md` (lstat'ed at `dest`) already is what
/// `node` describes, apart from metadata.
pub(crate) fn same_special(dest: &Path, md: &fs::Metadata, node: &Node) -> bool {
    let ft = md.file_type();
    match node.kind {
        NodeKind::Symlink => {
            ft.is_symlink()
                && fs::read_link(dest)
                    .is_ok_and(|t| Some(t.as_os_str().as_bytes()) == node.symlink_target.as_deref())
        }
        NodeKind::Fifo => ft.is_fifo(),
        NodeKind::CharDevice => ft.is_char_device() && md.rdev() == node.rdev,
        NodeKind::BlockDevice => ft.is_block_device() && md.rdev() == node.rdev,
        _ => false,
    }
}

/// Whether the regular file `md` at `dest` holds `node`'s content: size
/// and mtime equal (the shortcut backup also trusts), or else every blob
/// read back hashes to its id and every hole reads as zeros.
pub(crate) fn same_file(key: &MasterKey, dest: &Path, md: &fs::Metadata, node: &Node) -> bool {
    if !md.file_type().is_file() || md.len() != node.size {
        return false;
    }
    if (md.mtime(), md.mtime_nsec()) == (node.mtime.sec, i64::from(node.mtime.nsec)) {
        return true;
    }
    let Ok(f) = fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(dest)
    else {
        return false;
    };
    let mut f = std::io::BufReader::with_capacity(1 << 20, f);
    let mut buf = Vec::new();
    for part in &node.content {
        buf.resize(part.len() as usize, 0);
        if f.read_exact(&mut buf).is_err() {
            return false;
        }
        let same = match part {
            ContentPart::Blob { id, .. } => key.blob_id(&buf) == *id,
            ContentPart::Hole { .. } => buf.iter().all(|&b| b == 0),
        };
        if !same {
            return false;
        }
    }
    // Nothing beyond the content (the size said so, unless it grew since).
    f.read(&mut [0u8; 1]).is_ok_and(|n| n == 0)
}

/// Create the symlink, fifo or device `node` describes at `path`.
pub(crate) fn make_special(path: &Path, node: &Node) -> std::io::Result<()> {
    use nix::sys::stat::{Mode, SFlag};
    let mode = Mode::from_bits_truncate(node.mode);
    match node.kind {
        NodeKind::Symlink => {
            let t = node.symlink_target.as_deref().unwrap_or_default();
            std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(t), path)
        }
        NodeKind::Fifo => Ok(nix::unistd::mkfifo(path, mode)?),
        NodeKind::CharDevice => Ok(nix::sys::stat::mknod(
            path,
            SFlag::S_IFCHR,
            mode,
            node.rdev as nix::libc::dev_t,
        )?),
        NodeKind::BlockDevice => Ok(nix::sys::stat::mknod(
            path,
            SFlag::S_IFBLK,
            mode,
            node.rdev as nix::libc::dev_t,
        )?),
        _ => Err(std::io::Error::other("not a special file")),
    }
}

/// How a directory of the snapshot was made ready.
pub(crate) enum DirOutcome {
    /// Created now (possibly in place of a symlink).
    Made,
    /// A directory was there already.
    Existed,
}

/// Make `dest` a directory without ever following a symlink there: an
/// existing directory is used, a symlink is replaced by a new directory
/// (under [`Overwrite::Never`] it is left, and this fails), anything else
/// fails. The parent must be a directory this restore checked already.
pub(crate) fn make_dir(dest: &Path, mode: Overwrite) -> std::result::Result<DirOutcome, String> {
    match fs::create_dir(dest) {
        Ok(()) => return Ok(DirOutcome::Made),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("mkdir: {e}")),
    }
    let md = fs::symlink_metadata(dest).map_err(|e| format!("lstat: {e}"))?;
    let ft = md.file_type();
    if ft.is_dir() {
        return Ok(DirOutcome::Existed);
    }
    if !ft.is_symlink() {
        return Err("mkdir: exists and is not a directory (not replaced)".into());
    }
    if mode == Overwrite::Never {
        return Err(
            "is a symlink where the snapshot has a directory: not followed, and not replaced \
             (overwrite mode never); its content was not restored"
                .into(),
        );
    }
    // A symlink holds no data of its own: removing it loses nothing, and
    // following it could write outside the target.
    fs::remove_file(dest).map_err(|e| format!("removing symlink in the way: {e}"))?;
    fs::create_dir(dest).map_err(|e| format!("mkdir: {e}"))?;
    Ok(DirOutcome::Made)
}

/// Temporary names beside destinations: [`RESTORE_TEMP_PREFIX`], this
/// process's id and a counter, never one of the snapshot's own entries,
/// always created exclusively (a leftover of the same name is stepped
/// over, never reused).
pub(crate) struct TempNames {
    pid: u32,
    next: AtomicU64,
    /// Destinations of snapshot entries that carry the prefix themselves.
    reserved: HashSet<PathBuf>,
}

/// Tries before giving up on finding a free temporary name.
const TEMP_TRIES: u32 = 64;

impl TempNames {
    pub(crate) fn new(reserved: HashSet<PathBuf>) -> TempNames {
        TempNames {
            pid: std::process::id(),
            next: AtomicU64::new(0),
            reserved,
        }
    }

    fn candidate(&self, dest: &Path) -> PathBuf {
        let dir = dest.parent().unwrap_or(Path::new("."));
        loop {
            let n = self.next.fetch_add(1, Ordering::Relaxed);
            let p = dir.join(format!("{RESTORE_TEMP_PREFIX}{:x}-{n:x}", self.pid));
            if !self.reserved.contains(&p) {
                return p;
            }
        }
    }

    /// Create a new empty file with `mode` beside `dest`; returns its path
    /// and handle.
    pub(crate) fn create_file(
        &self,
        dest: &Path,
        mode: u32,
    ) -> std::io::Result<(PathBuf, fs::File)> {
        self.make(dest, |p| {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(p)
        })
    }

    /// Replace whatever is at `dest` by what `make` creates: `make` builds
    /// it under a temporary name beside `dest`, which is then renamed over
    /// `dest`. On failure `dest` is as it was and no temporary is left.
    pub(crate) fn replace_with(
        &self,
        dest: &Path,
        make: impl Fn(&Path) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let (tmp, ()) = self.make(dest, make)?;
        fs::rename(&tmp, dest).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
    }

    fn make<T>(
        &self,
        dest: &Path,
        make: impl Fn(&Path) -> std::io::Result<T>,
    ) -> std::io::Result<(PathBuf, T)> {
        for _ in 0..TEMP_TRIES {
            let p = self.candidate(dest);
            match make(&p) {
                Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
                Ok(t) => return Ok((p, t)),
            }
        }
        Err(std::io::Error::new(
            ErrorKind::AlreadyExists,
            "no free temporary name beside the destination",
        ))
    }
}
