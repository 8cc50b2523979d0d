//! The paths given to a backup, as one tree: their ancestors become
//! directories of the snapshot ("virtual" ones, holding only the way down
//! to what was asked for).

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::{Error, Result};

/// An entry of the tree of backup paths.
pub(super) enum SourceEntry {
    /// A path given to back up: everything below it is backed up.
    Real(PathBuf),
    /// An ancestor of given paths: only those children are backed up.
    Virtual(PathBuf, BTreeMap<Vec<u8>, SourceEntry>),
}

/// Lexically absolute form of `p` (no `.`/`..`, symlinks not resolved).
pub(super) fn absolute_clean(p: &Path) -> Result<PathBuf> {
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

/// Add absolute path `abs` to the tree below `root`.
pub(super) fn insert_path(root: &mut BTreeMap<Vec<u8>, SourceEntry>, abs: &Path) {
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
            map.insert(key, SourceEntry::Real(cur.clone()));
            return;
        }
        let e = map
            .entry(key)
            .or_insert_with(|| SourceEntry::Virtual(cur.clone(), BTreeMap::new()));
        match e {
            SourceEntry::Real(_) => return, // an ancestor is already backed up whole
            SourceEntry::Virtual(_, children) => map = children,
        }
    }
}
