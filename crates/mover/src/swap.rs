//! Restoring a file tree into a volume without risking what is there:
//! the snapshot is restored into a staging folder on the volume itself,
//! checked entry by entry against the snapshot, and only then swapped in
//! by renames. A restore that fails, or does not verify, removes the
//! staging folder and leaves the volume as it was.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use lifeboat::{Id, NodeKind, Progress, Repository, RestoreOptions, Snapshot};

use crate::error::{Failure, INTEGRITY};

/// Names the mover gives its own folders in the volume; a backup skips
/// them and a restore never moves them.
pub const STAGING_PREFIX: &str = ".lifeboat-restore-";
/// Where the volume's previous entries wait while the restored ones move in.
pub const PREVIOUS_PREFIX: &str = ".lifeboat-previous-";

/// Entries of the volume the mover never backs up or replaces.
pub fn is_reserved(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n == "lost+found" || n.starts_with(STAGING_PREFIX) || n.starts_with(PREVIOUS_PREFIX)
}

/// What a restore did.
#[derive(Debug, Default)]
pub struct Restored {
    /// Files written.
    pub files: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Entries checked against the snapshot.
    pub verified: u64,
    /// Entries of the volume replaced.
    pub replaced: u64,
}

fn io_failure(what: &str, path: &Path, e: io::Error) -> Failure {
    Failure::config(format!("{what} {}: {e}", path.display()))
}

/// Where the snapshot's content lands below `staging`: with one path, that
/// path's folder (its entries become the volume's); with several, the
/// staging folder itself (each path keeps its full name in the volume).
fn content_root(staging: &Path, snap: &Snapshot) -> PathBuf {
    match snap.paths.as_slice() {
        [one] => staging.join(one.trim_start_matches('/')),
        _ => staging.to_path_buf(),
    }
}

/// Check every entry of the snapshot's tree against the restored copy:
/// present, of the same kind, and for files of the same size.
fn verify(repo: &Repository, tree: &Id, staging: &Path) -> Result<u64, Failure> {
    let mut checked = 0u64;
    let mut problems: Vec<String> = Vec::new();
    repo.walk(tree, &mut |path, node| {
        let rel = path.strip_prefix("/").unwrap_or(path);
        let on_disk = staging.join(rel);
        checked += 1;
        match fs::symlink_metadata(&on_disk) {
            Err(e) => problems.push(format!("{}: {e}", path.display())),
            Ok(m) => {
                let ft = m.file_type();
                let same_kind = match node.kind {
                    NodeKind::File => ft.is_file(),
                    NodeKind::Dir => ft.is_dir(),
                    NodeKind::Symlink => ft.is_symlink(),
                    _ => true,
                };
                if !same_kind {
                    problems.push(format!("{}: restored as another kind", path.display()));
                } else if node.kind == NodeKind::File && m.len() != node.size {
                    problems.push(format!(
                        "{}: {} bytes restored, {} in the snapshot",
                        path.display(),
                        m.len(),
                        node.size
                    ));
                }
            }
        }
        Ok(problems.len() < 20)
    })?;
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(Failure::new(
            INTEGRITY,
            format!(
                "the restored tree does not match the snapshot: {}",
                problems.join("; ")
            ),
        ))
    }
}

/// The volume's entries that a restore replaces.
fn replaceable(dir: &Path) -> Result<Vec<PathBuf>, Failure> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(|e| io_failure("reading", dir, e))? {
        let e = e.map_err(|e| io_failure("reading", dir, e))?;
        if !is_reserved(&e.file_name()) {
            v.push(e.path());
        }
    }
    Ok(v)
}

/// Move each of `from` into `to`; on a failure move back those moved and
/// return the error.
fn move_all(from: &[PathBuf], to: &Path) -> Result<Vec<(PathBuf, PathBuf)>, Failure> {
    let mut moved = Vec::new();
    for src in from {
        let Some(name) = src.file_name() else {
            continue;
        };
        let dst = to.join(name);
        if let Err(e) = fs::rename(src, &dst) {
            undo(&moved);
            return Err(io_failure("moving", src, e));
        }
        moved.push((src.clone(), dst));
    }
    Ok(moved)
}

fn undo(moved: &[(PathBuf, PathBuf)]) {
    for (src, dst) in moved.iter().rev() {
        let _ = fs::rename(dst, src);
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(f) = fs::File::open(dir) {
        let _ = f.sync_all();
    }
}

/// Restore `snap` into `data_dir` by way of a staging folder (see the
/// module doc). `progress` can stop it (SIGTERM); then, as on any failure,
/// the volume keeps its previous content.
pub fn restore_tree(
    repo: &Repository,
    snap: &Snapshot,
    data_dir: &Path,
    threads: Option<usize>,
    progress: &Progress,
) -> Result<Restored, Failure> {
    fs::create_dir_all(data_dir).map_err(|e| io_failure("creating", data_dir, e))?;
    // A staging folder of a killed restore is never the volume's content.
    for e in fs::read_dir(data_dir)
        .map_err(|e| io_failure("reading", data_dir, e))?
        .flatten()
    {
        if e.file_name().to_string_lossy().starts_with(STAGING_PREFIX) {
            let _ = fs::remove_dir_all(e.path());
        }
    }
    let staging = data_dir.join(format!("{STAGING_PREFIX}{}", std::process::id()));
    fs::create_dir(&staging).map_err(|e| io_failure("creating", &staging, e))?;
    let result = stage_and_swap(repo, snap, data_dir, &staging, threads, progress);
    let _ = fs::remove_dir_all(&staging);
    sync_dir(data_dir);
    result
}

fn stage_and_swap(
    repo: &Repository,
    snap: &Snapshot,
    data_dir: &Path,
    staging: &Path,
    threads: Option<usize>,
    progress: &Progress,
) -> Result<Restored, Failure> {
    let opts = RestoreOptions {
        target: staging.to_path_buf(),
        threads,
        ..Default::default()
    };
    let report = repo.restore(snap, &opts, progress)?;
    if !report.errors.is_empty() {
        let first: Vec<String> = report
            .errors
            .iter()
            .take(5)
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        return Err(Failure::new(
            INTEGRITY,
            format!(
                "{} entries could not be restored ({}); the volume was left as it was",
                report.errors.len(),
                first.join("; ")
            ),
        ));
    }
    let verified = verify(repo, &snap.tree, staging)?;
    let root = content_root(staging, snap);
    let incoming: Vec<PathBuf> = match fs::read_dir(&root) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_failure("reading", &root, e)),
    };
    let previous = data_dir.join(format!("{PREVIOUS_PREFIX}{}", std::process::id()));
    fs::create_dir(&previous).map_err(|e| io_failure("creating", &previous, e))?;
    let outgoing = replaceable(data_dir)?;
    let replaced = outgoing.len() as u64;
    let moved_out = match move_all(&outgoing, &previous) {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_dir(&previous);
            return Err(e.context("setting the volume's entries aside"));
        }
    };
    if let Err(e) = move_all(&incoming, data_dir) {
        undo(&moved_out);
        let _ = fs::remove_dir(&previous);
        return Err(e.context("moving the restored entries in"));
    }
    // The volume's root takes the mode of the snapshot's root folder.
    if let Ok(m) = fs::metadata(&root) {
        let _ = fs::set_permissions(data_dir, m.permissions());
    }
    fs::remove_dir_all(&previous).map_err(|e| io_failure("removing", &previous, e))?;
    Ok(Restored {
        files: report.files,
        bytes: report.bytes,
        verified,
        replaced,
    })
}
