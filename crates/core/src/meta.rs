//! File metadata: reading it into tree nodes and putting it back.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::RwLock;

use lifeboat_format::{Node, NodeKind, Timestamp, Xattr};

/// uid/gid → name lookups, cached.
#[derive(Debug, Default)]
pub(crate) struct NameCache {
    users: RwLock<HashMap<u32, Option<String>>>,
    groups: RwLock<HashMap<u32, Option<String>>>,
}

fn cached(
    map: &RwLock<HashMap<u32, Option<String>>>,
    id: u32,
    lookup: impl FnOnce() -> Option<String>,
) -> Option<String> {
    // Read-mostly: every entry asks, few ids exist.
    if let Some(v) = map.read().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return v.clone();
    }
    let mut m = map.write().unwrap_or_else(|p| p.into_inner());
    m.entry(id).or_insert_with(lookup).clone()
}

impl NameCache {
    fn user(&self, uid: u32) -> Option<String> {
        cached(&self.users, uid, || {
            nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map(|u| u.name)
        })
    }

    fn group(&self, gid: u32) -> Option<String> {
        cached(&self.groups, gid, || {
            nix::unistd::Group::from_gid(nix::unistd::Gid::from_raw(gid))
                .ok()
                .flatten()
                .map(|g| g.name)
        })
    }
}

fn ts(sec: i64, nsec: i64) -> Timestamp {
    Timestamp {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

pub(crate) fn kind_of(md: &fs::Metadata) -> NodeKind {
    let ft = md.file_type();
    if ft.is_dir() {
        NodeKind::Dir
    } else if ft.is_symlink() {
        NodeKind::Symlink
    } else if ft.is_fifo() {
        NodeKind::Fifo
    } else if ft.is_socket() {
        NodeKind::Socket
    } else if ft.is_char_device() {
        NodeKind::CharDevice
    } else if ft.is_block_device() {
        NodeKind::BlockDevice
    } else {
        NodeKind::File
    }
}

/// A node for `path` from its `lstat` metadata; content and subtree are
/// filled in by the caller.
pub(crate) fn node_from_metadata(
    name: Vec<u8>,
    path: &Path,
    md: &fs::Metadata,
    names: &NameCache,
) -> Node {
    let mut n = node_from_stat(name, md, names);
    n.xattrs = read_xattrs(path);
    n
}

/// [`node_from_metadata`] without the extended attributes, for a caller
/// that reads them itself (of an open file: [`read_xattrs_of`]).
pub(crate) fn node_from_stat(name: Vec<u8>, md: &fs::Metadata, names: &NameCache) -> Node {
    let mut n = Node::new(name, kind_of(md));
    n.mode = md.mode() & 0o7777;
    n.uid = md.uid();
    n.gid = md.gid();
    n.user = names.user(n.uid);
    n.group = names.group(n.gid);
    n.mtime = ts(md.mtime(), md.mtime_nsec());
    n.atime = ts(md.atime(), md.atime_nsec());
    n.ctime = ts(md.ctime(), md.ctime_nsec());
    n.size = if n.kind == NodeKind::File {
        md.size()
    } else {
        0
    };
    n.device_id = md.dev();
    n.inode = md.ino();
    n.links = md.nlink();
    n.rdev = md.rdev();
    n
}

/// Extended attributes of `path` (not following symlinks), sorted. A
/// filesystem without xattr support gives none.
pub(crate) fn read_xattrs(path: &Path) -> Vec<Xattr> {
    collect_xattrs(xattr::list(path), |name| xattr::get(path, name))
}

/// [`read_xattrs`] of an open file (`flistxattr`, `fgetxattr`), which
/// costs no lookup of its path.
pub(crate) fn read_xattrs_of(f: &fs::File) -> Vec<Xattr> {
    use xattr::FileExt as _;
    collect_xattrs(f.list_xattr(), |name| f.get_xattr(name))
}

fn collect_xattrs(
    names: std::io::Result<xattr::XAttrs>,
    get: impl Fn(&std::ffi::OsStr) -> std::io::Result<Option<Vec<u8>>>,
) -> Vec<Xattr> {
    let Ok(names) = names else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = get(&name).ok().flatten()?;
            Some(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// Whether this process may chown, asked once (a restore asks per entry).
fn is_root() -> bool {
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| nix::unistd::geteuid().is_root())
}

/// The mode restore creates a regular file with: its own permission bits,
/// plus read and write for the owner so that it can be opened again to be
/// written. The umask applies, so the file is never more open than it will
/// end up, apart from those owner bits.
pub(crate) fn creation_mode(node: &Node) -> u32 {
    (node.mode & 0o777) | 0o600
}

/// This process's umask, from `/proc/self/status` (reading it with
/// umask(2) would change it for a moment, under other threads).
fn umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find(|l| l.starts_with("Umask:"))?;
        u32::from_str_radix(line["Umask:".len()..].trim(), 8).ok()
    })
}

/// Whether a file created with [`creation_mode`] already has `node`'s
/// mode, so that chmod can be skipped (one system call less per file: most
/// files are 0644 or 0755 under umask 022). Never with set-id or sticky
/// bits, which chown clears and only chmod sets.
fn mode_is_set(node: &Node) -> bool {
    node.mode & 0o7000 == 0
        && umask().is_some_and(|m| creation_mode(node) & !m == node.mode & 0o7777)
}

/// [`apply_metadata`] for a regular file through its open handle: the
/// same steps in the same order, without a path lookup for each. Restore
/// calls it right after a file's last write, before closing it. The file
/// must have been created by this process with [`creation_mode`].
/// `new_owner` is the owner (uid, gid) such a file gets, when the caller
/// knows it: chown is skipped when it is the node's already.
pub(crate) fn apply_file_metadata(
    f: &fs::File,
    path: &Path,
    node: &Node,
    new_owner: Option<(u32, u32)>,
) -> Vec<String> {
    apply(path, Some(f), node, new_owner == Some((node.uid, node.gid)))
}

/// The owner a file created now gets: this process's effective uid and
/// gid (the group only where the directory is not set-group-id).
pub(crate) fn own_ids() -> (u32, u32) {
    (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}

/// Put back ownership, mode, xattrs and times (in that order: chown clears
/// set-id bits, and writing anything changes times). Returns the problems
/// that were not fatal.
pub(crate) fn apply_metadata(path: &Path, node: &Node) -> Vec<String> {
    apply(path, None, node, false)
}

/// The steps of [`apply_metadata`], through `file` when given (a file
/// made with [`creation_mode`]), else through `path` without following a
/// symlink. `owned`: the entry has its owner already.
fn apply(path: &Path, file: Option<&fs::File>, node: &Node, owned: bool) -> Vec<String> {
    use xattr::FileExt as _;
    let mut problems = Vec::new();
    let mut note =
        |what: &str, e: std::io::Error| problems.push(format!("{}: {what}: {e}", path.display()));
    if is_root() && !owned {
        let (uid, gid) = (Some(node.uid), Some(node.gid));
        let r = match file {
            Some(f) => std::os::unix::fs::fchown(f, uid, gid),
            None => std::os::unix::fs::lchown(path, uid, gid),
        };
        if let Err(e) = r {
            note("chown", e);
        }
    }
    let perms = fs::Permissions::from_mode(node.mode);
    let r = match file {
        Some(_) if mode_is_set(node) => Ok(()),
        Some(f) => f.set_permissions(perms),
        None if node.kind == NodeKind::Symlink => Ok(()),
        None => fs::set_permissions(path, perms),
    };
    if let Err(e) = r {
        note("chmod", e);
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        let r = match file {
            Some(f) => f.set_xattr(name, &x.value),
            None => xattr::set(path, name, &x.value),
        };
        // Only user.* attributes are expected to be restorable everywhere.
        if let Err(e) = r {
            if x.name.starts_with(b"user.") {
                note("setxattr", e);
            }
        }
    }
    let mtime = filetime::FileTime::from_unix_time(node.mtime.sec, node.mtime.nsec);
    let atime = filetime::FileTime::from_unix_time(node.atime.sec, node.atime.nsec);
    let r = match file {
        Some(f) => filetime::set_file_handle_times(f, Some(atime), Some(mtime)),
        None => filetime::set_symlink_file_times(path, atime, mtime),
    };
    if let Err(e) = r {
        note("set times", e);
    }
    problems
}
