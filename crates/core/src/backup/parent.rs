//! The parent snapshot: which one a backup compares against, and whether a
//! file is unchanged since it (then it is not read again).

use crate::repo::RepositoryInternals as _;

use lifeboat_format::{ContentPart, Id, Node, NodeKind, SourceKind, Tree};

use crate::prune_guard::PruneGuard;
use crate::{Repository, Result};

/// The latest readable snapshot of the same host and paths (all from the
/// file system), if any; damaged snapshots are passed over.
pub(super) fn latest_of(repo: &Repository, host: &str, paths: &[String]) -> Result<Option<Id>> {
    Ok(repo
        .snapshots()?
        .items
        .into_iter()
        .rev()
        .find(|(_, s)| s.source == SourceKind::Fs && s.hostname == host && s.paths == paths)
        .map(|(id, _)| id))
}

/// The parent snapshot's tree for a directory, if it can be read; a
/// damaged parent only means files are read again.
pub(super) fn parent_tree(repo: &Repository, id: Option<Id>) -> Option<Tree> {
    id.and_then(|id| repo.load_tree(&id).ok())
}

/// Whether a file's metadata says its content is as in the parent, and
/// the parent's blobs are all still indexed.
pub(super) fn unchanged(repo: &Repository, guard: &PruneGuard, p: &Node, n: &Node) -> bool {
    p.kind == NodeKind::File
        && p.size == n.size
        && p.mtime == n.mtime
        && p.ctime == n.ctime
        && p.inode == n.inode
        && p.content.iter().map(|c| c.len()).sum::<u64>() == n.size
        && {
            let idx = repo.index();
            p.content.iter().all(|c| match c {
                ContentPart::Blob { id, .. } => guard.usable(&idx, id),
                ContentPart::Hole { .. } => true,
            })
        }
}
