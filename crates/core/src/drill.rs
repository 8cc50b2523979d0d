//! Restore drills, the engine's part: store and list drill records
//! (`drills/<id>`, encoded by `lifeboat_format::DrillRecord`), and verify a
//! restored tree or image against its snapshot, reading every byte back
//! from the disk and hashing it with the repository's blob id key.
//!
//! The drill itself (restore, timing, cleanup, etcd and `e2fsck` checks)
//! is the facade's (`lifeboat::drill`); this module only knows the
//! repository and the file system.

use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use lifeboat_format::layout::{self, Folder, object_path};
use lifeboat_format::{ContentPart, DrillRecord, Id, Node, NodeKind, Snapshot};
use rayon::prelude::*;

use crate::damage::{Listing, Warning, WarningKind};
use crate::restore_target::RESTORE_TEMP_PREFIX;
use crate::{Error, Repository, Result};

/// One difference between a restored entry and the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// Path inside the snapshot (starting with `/`), lossy UTF-8.
    pub path: String,
    /// What differs, for people.
    pub what: String,
}

/// What [`Repository::verify_restored`] found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreCheck {
    /// Entries of the snapshot looked at.
    pub entries: u64,
    /// Regular files whose content was read back and hashed.
    pub files: u64,
    /// Content bytes read back.
    pub bytes: u64,
    /// Every difference found.
    pub mismatches: Vec<Mismatch>,
}

/// Which metadata [`Repository::verify_restored`] compares beside content
/// and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataChecks {
    /// Permission bits (not of symlinks).
    pub mode: bool,
    /// Modification times of files and directories.
    pub mtime: bool,
    /// Owner and group by number; only root can restore them.
    pub owner: bool,
    /// `user.*` extended attributes (all of them when `owner`).
    pub xattrs: bool,
}

impl Default for MetadataChecks {
    /// Everything a restore by this user puts back.
    fn default() -> Self {
        let root = nix::unistd::geteuid().is_root();
        MetadataChecks {
            mode: true,
            mtime: true,
            owner: root,
            xattrs: true,
        }
    }
}

impl Repository {
    /// Store a drill record (write-once); returns its id.
    pub fn save_drill(&self, record: &DrillRecord) -> Result<Id> {
        let bytes = record
            .encode(&self.key)
            .map_err(|e| Error::corrupt("drill record", e))?;
        let id = Id::of_object(&bytes);
        match self
            .backend
            .create(&object_path(Folder::Drills, &id), bytes.into())
        {
            Ok(()) | Err(lifeboat_store::Error::AlreadyExists { .. }) => Ok(id),
            Err(e) => Err(e.into()),
        }
    }

    /// Every readable drill record, oldest first. A record that cannot be
    /// read, opened or decoded, or does not hash to its name, is skipped
    /// with a [`WarningKind::DamagedDrillRecord`] warning; a store error
    /// that may be transient fails the call.
    pub fn drills(&self) -> Result<Listing<(Id, DrillRecord)>> {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for o in self.backend.list(&Folder::Drills.prefix())? {
            let Some(id) = layout::id_of_path(&o.path) else {
                skipped.push(Warning::new(o.path, WarningKind::StrayObject, None));
                continue;
            };
            let bytes = match self.backend.get(&o.path) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) if e.is_transient() => return Err(e.into()),
                Err(e) => {
                    skipped.push(Warning::new(
                        o.path,
                        WarningKind::DamagedDrillRecord,
                        Some(Box::new(e)),
                    ));
                    continue;
                }
            };
            let decoded = if Id::of_object(&bytes) != id {
                Err(lifeboat_format::Error::Malformed {
                    what: "drill record",
                    reason: "content does not match its name".into(),
                })
            } else {
                DrillRecord::decode(&self.key, &bytes)
            };
            match decoded {
                Ok(r) => out.push((id, r)),
                Err(e) => skipped.push(Warning::new(
                    o.path,
                    WarningKind::DamagedDrillRecord,
                    Some(Box::new(e)),
                )),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(Listing::new(out, skipped))
    }

    /// Compare what lies in `target` with `snapshot`, as a restore of the
    /// whole snapshot there leaves it: every entry present with its kind,
    /// every file's content read back and hashed chunk by chunk against the
    /// snapshot's blob ids (holes must read as zeros), sizes, symlink
    /// targets and the metadata `checks` asks for; and nothing in a
    /// backed-up folder that the snapshot lacks. The folders above the
    /// snapshot's `paths` are only checked to be folders, so a restore into
    /// `/` (back where the data came from) can be verified in place. Differences are in the result; an error
    /// means the snapshot's trees could not be read.
    pub fn verify_restored(
        &self,
        snapshot: &Snapshot,
        target: &Path,
        checks: MetadataChecks,
    ) -> Result<RestoreCheck> {
        let mut entries: Vec<(PathBuf, Node)> = Vec::new();
        self.walk(&snapshot.tree, &mut |p, n| {
            entries.push((p.to_path_buf(), n.clone()));
            Ok(true)
        })?;
        let dest = |p: &Path| target.join(p.strip_prefix("/").unwrap_or(p));
        // What was backed up: a `paths` entry names a node (§12.1); the
        // nodes above it only lead there, and their folders in the target
        // may hold anything, so only their kind is compared.
        let roots: Vec<PathBuf> = snapshot.paths.iter().map(PathBuf::from).collect();
        let backed_up = |p: &Path| roots.is_empty() || roots.iter().any(|r| p.starts_with(r));
        let results: Vec<(u64, Vec<Mismatch>)> = entries
            .par_iter()
            .map(|(p, n)| {
                let mut found = Vec::new();
                let only_kind = !backed_up(p) && n.kind == NodeKind::Dir;
                let checks = if only_kind {
                    MetadataChecks {
                        mode: false,
                        mtime: false,
                        owner: false,
                        xattrs: false,
                    }
                } else {
                    checks
                };
                let bytes = self.verify_entry(&dest(p), n, checks, &mut |what| {
                    found.push(Mismatch {
                        path: p.to_string_lossy().into_owned(),
                        what,
                    })
                });
                (bytes, found)
            })
            .collect();
        let mut report = RestoreCheck {
            entries: entries.len() as u64,
            ..Default::default()
        };
        for ((_, n), (bytes, found)) in entries.iter().zip(results) {
            if n.kind == NodeKind::File {
                report.files += 1;
                report.bytes += bytes;
            }
            report.mismatches.extend(found);
        }
        let dirs: Vec<PathBuf> = entries
            .iter()
            .filter(|(p, n)| n.kind == NodeKind::Dir && roots.iter().any(|r| r == p))
            .map(|(p, _)| dest(p))
            .collect();
        let known: HashSet<PathBuf> = entries.into_iter().map(|(p, _)| dest(&p)).collect();
        let mut extra = Vec::new();
        if roots.is_empty() {
            list_extra(target, &known, &mut extra);
        }
        for d in dirs {
            list_extra(&d, &known, &mut extra);
        }
        for p in extra {
            let inside = Path::new("/").join(p.strip_prefix(target).unwrap_or(&p));
            report.mismatches.push(Mismatch {
                path: inside.to_string_lossy().into_owned(),
                what: "present in the restore but not in the snapshot".into(),
            });
        }
        report
            .mismatches
            .sort_by(|a, b| a.path.cmp(&b.path).then(a.what.cmp(&b.what)));
        Ok(report)
    }

    /// Compare the content of the file at `path` with `node`'s: its length,
    /// then every chunk's blob id. Returns the bytes read and the first
    /// difference, if any. For block images restored to a file or device.
    pub fn verify_content(&self, path: &Path, node: &Node) -> (u64, Option<String>) {
        match self.compare_content(path, node) {
            Ok(n) => (n, None),
            Err((n, what)) => (n, Some(what)),
        }
    }

    fn verify_entry(
        &self,
        path: &Path,
        node: &Node,
        checks: MetadataChecks,
        note: &mut dyn FnMut(String),
    ) -> u64 {
        // Sockets are recorded but restored as nothing.
        if node.kind == NodeKind::Socket {
            return 0;
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => {
                note(format!("missing from the restore: {e}"));
                return 0;
            }
        };
        let ft = meta.file_type();
        let kind_ok = match node.kind {
            NodeKind::File => ft.is_file(),
            NodeKind::Dir => ft.is_dir(),
            NodeKind::Symlink => ft.is_symlink(),
            NodeKind::Fifo => ft.is_fifo(),
            NodeKind::CharDevice => ft.is_char_device(),
            NodeKind::BlockDevice => ft.is_block_device(),
            NodeKind::Socket => true,
        };
        if !kind_ok {
            note(format!(
                "restored as a {ft:?}, the snapshot has a {:?}",
                node.kind
            ));
            return 0;
        }
        let mut bytes = 0;
        if node.kind == NodeKind::File {
            if meta.len() != node.size {
                note(format!(
                    "size {} bytes, the snapshot has {}",
                    meta.len(),
                    node.size
                ));
            }
            match self.compare_content(path, node) {
                Ok(n) => bytes = n,
                Err((n, what)) => {
                    bytes = n;
                    note(what);
                }
            }
        }
        if node.kind == NodeKind::Symlink {
            match fs::read_link(path) {
                Ok(t) if Some(t.as_os_str().as_bytes()) == node.symlink_target.as_deref() => {}
                Ok(t) => note(format!("symlink points to {}", t.display())),
                Err(e) => note(format!("cannot read the symlink: {e}")),
            }
            return bytes;
        }
        if checks.mode && meta.mode() & 0o7777 != node.mode & 0o7777 {
            note(format!(
                "mode {:o}, the snapshot has {:o}",
                meta.mode() & 0o7777,
                node.mode & 0o7777
            ));
        }
        if checks.mtime
            && matches!(node.kind, NodeKind::File | NodeKind::Dir)
            && (meta.mtime() != node.mtime.sec || meta.mtime_nsec() != i64::from(node.mtime.nsec))
        {
            note(format!(
                "mtime {}.{:09}, the snapshot has {}.{:09}",
                meta.mtime(),
                meta.mtime_nsec(),
                node.mtime.sec,
                node.mtime.nsec
            ));
        }
        if checks.owner && (meta.uid() != node.uid || meta.gid() != node.gid) {
            note(format!(
                "owner {}:{}, the snapshot has {}:{}",
                meta.uid(),
                meta.gid(),
                node.uid,
                node.gid
            ));
        }
        if checks.owner
            && matches!(node.kind, NodeKind::CharDevice | NodeKind::BlockDevice)
            && meta.rdev() != node.rdev
        {
            note(format!(
                "device {:x}, the snapshot has {:x}",
                meta.rdev(),
                node.rdev
            ));
        }
        if checks.xattrs {
            for x in &node.xattrs {
                if !checks.owner && !x.name.starts_with(b"user.") {
                    continue;
                }
                let name = std::ffi::OsStr::from_bytes(&x.name);
                match xattr::get(path, name) {
                    Ok(Some(v)) if v == x.value => {}
                    Ok(_) => note(format!(
                        "extended attribute {} differs or is missing",
                        name.to_string_lossy()
                    )),
                    Err(e) => note(format!(
                        "extended attribute {}: {e}",
                        name.to_string_lossy()
                    )),
                }
            }
        }
        bytes
    }

    /// Read `path` and hash it part by part; the bytes read, or those and
    /// the first difference.
    fn compare_content(&self, path: &Path, node: &Node) -> std::result::Result<u64, (u64, String)> {
        let mut f = fs::File::open(path).map_err(|e| (0, format!("cannot open: {e}")))?;
        let mut offset = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        for part in &node.content {
            let len = part.len();
            match part {
                ContentPart::Blob { id, len } => {
                    let mut data = vec![0u8; *len as usize];
                    read_exact_at(&mut f, &mut data, offset)?;
                    if self.key.blob_id(&data) != *id {
                        return Err((
                            offset,
                            format!(
                                "content differs at bytes {offset}..{} (blob {})",
                                offset + u64::from(*len),
                                id.short()
                            ),
                        ));
                    }
                }
                ContentPart::Hole { len } => {
                    let mut left = *len;
                    while left > 0 {
                        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                        read_exact_at(&mut f, &mut buf[..n], offset + (len - left))?;
                        if buf[..n].iter().any(|b| *b != 0) {
                            return Err((
                                offset,
                                format!(
                                    "bytes {offset}..{} should be zero (a hole) and are not",
                                    offset + len
                                ),
                            ));
                        }
                        left -= n as u64;
                    }
                }
            }
            offset += len;
        }
        let mut one = [0u8; 1];
        match f.read(&mut one) {
            Ok(0) => Ok(offset),
            Ok(_) => Err((offset, format!("longer than the snapshot's {offset} bytes"))),
            Err(e) => Err((offset, format!("read error at byte {offset}: {e}"))),
        }
    }
}

fn read_exact_at(
    f: &mut fs::File,
    buf: &mut [u8],
    offset: u64,
) -> std::result::Result<(), (u64, String)> {
    use std::os::unix::fs::FileExt;
    f.read_exact_at(buf, offset).map_err(|e| {
        let what = if e.kind() == std::io::ErrorKind::UnexpectedEof {
            format!(
                "shorter than the snapshot says: ends before byte {}",
                offset + buf.len() as u64
            )
        } else {
            format!("read error at byte {offset}: {e}")
        };
        (offset, what)
    })?;
    // Keep the cursor in step for the end-of-file test.
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(offset + buf.len() as u64))
        .map_err(|e| (offset, format!("seek: {e}")))?;
    Ok(())
}

/// Entries under `dir` not in `known` (not descending into them), and no
/// leftover temporary names of an interrupted restore either.
fn list_extra(dir: &Path, known: &HashSet<PathBuf>, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name();
        if !known.contains(&p) || name.as_bytes().starts_with(RESTORE_TEMP_PREFIX.as_bytes()) {
            out.push(p);
        } else if e.file_type().is_ok_and(|t| t.is_dir()) {
            list_extra(&p, known, out);
        }
    }
}
