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
    n.xattrs = read_xattrs(path);
    n
}

/// Extended attributes of `path` (not following symlinks), sorted. A
/// filesystem without xattr support gives none.
pub(crate) fn read_xattrs(path: &Path) -> Vec<Xattr> {
    let Ok(names) = xattr::list(path) else {
        return Vec::new();
    };
    let mut out: Vec<Xattr> = names
        .filter_map(|name| {
            let value = xattr::get(path, &name).ok().flatten()?;
            Some(Xattr {
                name: name.as_bytes().to_vec(),
                value,
            })
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Put back ownership, mode, xattrs and times (in that order: chown clears
/// set-id bits, and writing anything changes times). Returns the problems
/// that were not fatal.
pub(crate) fn apply_metadata(path: &Path, node: &Node) -> Vec<String> {
    let mut problems = Vec::new();
    let mut note =
        |what: &str, e: std::io::Error| problems.push(format!("{}: {what}: {e}", path.display()));
    if is_root() {
        if let Err(e) = std::os::unix::fs::lchown(path, Some(node.uid), Some(node.gid)) {
            note("chown", e);
        }
    }
    if node.kind != NodeKind::Symlink {
        if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(node.mode)) {
            note("chmod", e);
        }
    }
    for x in &node.xattrs {
        let name = OsStr::from_bytes(&x.name);
        if let Err(e) = xattr::set(path, name, &x.value) {
            // Only user.* attributes are expected to be restorable everywhere.
            if x.name.starts_with(b"user.") {
                note("setxattr", e);
            }
        }
    }
    let mtime = filetime::FileTime::from_unix_time(node.mtime.sec, node.mtime.nsec);
    let atime = filetime::FileTime::from_unix_time(node.atime.sec, node.atime.nsec);
    if let Err(e) = filetime::set_symlink_file_times(path, atime, mtime) {
        note("set times", e);
    }
    problems
}
