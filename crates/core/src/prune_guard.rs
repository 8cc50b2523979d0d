//! What a backup does so that a concurrent prune cannot delete data it
//! uses (the protocol and its proof are in `docs/prune.md`):
//! - when it starts, it reads prune's marks (`marks/`) and treats a blob
//!   whose pack is marked as not stored, so it stores the blob again;
//! - it records every existing pack it takes a blob from, and every pack
//!   it writes;
//! - before it writes its snapshot, it reads the marks again and fails with
//!   [`Error::PruneConflict`] if one of those packs is marked and a prune
//!   may delete it soon (within the margin), so no snapshot ever names a
//!   pack a prune may already have decided to delete.

use std::collections::HashSet;
use std::sync::Mutex;

use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{Id, PruneMarks};
use lifeboat_index::Index;

use crate::repo::RepositoryInternals as _;
use crate::{Error, Repository, Result};

/// Longest margin a backup keeps before a mark's deletion time: covers the
/// clock skew between hosts and the time from the final check to the
/// snapshot being stored.
const MAX_MARGIN_SECS: u64 = 600;

/// The margin for a mark: a quarter of its grace period, at least a
/// second (times are whole seconds) and at most [`MAX_MARGIN_SECS`].
fn margin(marked: u64, delete_after: u64) -> u64 {
    (delete_after.saturating_sub(marked) / 4).clamp(1, MAX_MARGIN_SECS)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Every marked object named by the mark objects of `repo`, read now
/// (superseded ones too, which only adds marks). A mark object deleted
/// since the listing is skipped (its successor, written before it was
/// deleted, is listed too).
pub(crate) fn read_marks(repo: &Repository) -> Result<Vec<lifeboat_format::MarkedObject>> {
    let backend = repo.backend();
    let mut out = Vec::new();
    for obj in backend.list(&Folder::Marks.prefix())? {
        let bytes = match backend.get(&obj.path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        // A mark object that does not open stops every prune until it is
        // removed, so nothing it marks can be deleted meanwhile: skipping it
        // is safe, and a damaged object does not stop backups.
        if let Ok(marks) = PruneMarks::decode(repo.master_key(), &bytes) {
            out.extend(marks.objects);
        }
    }
    Ok(out)
}

/// A backup's view of prune's marks, and the packs it relies on.
#[derive(Debug, Default)]
pub(crate) struct PruneGuard {
    /// Packs marked when the backup started.
    marked: HashSet<Id>,
    /// Existing packs the backup took blobs from, and packs it wrote.
    relied: Mutex<HashSet<Id>>,
}

impl PruneGuard {
    /// Read the marks of `repo` now.
    pub fn load(repo: &Repository) -> Result<PruneGuard> {
        let marked = read_marks(repo)?
            .iter()
            .filter(|m| Folder::Data.holds(&m.path))
            .filter_map(|m| layout::id_of_path(&m.path))
            .collect();
        Ok(PruneGuard {
            marked,
            relied: Mutex::new(HashSet::new()),
        })
    }

    fn relied(&self) -> std::sync::MutexGuard<'_, HashSet<Id>> {
        self.relied.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether blob `id` is stored in a pack the backup may rely on (indexed
    /// and not marked); if so, the pack is recorded.
    pub fn usable(&self, index: &Index, id: &Id) -> bool {
        match index.get_indexed(id) {
            Some(loc) if !self.marked.contains(&loc.pack) => {
                self.relied().insert(loc.pack);
                true
            }
            _ => false,
        }
    }

    /// Record a pack the backup wrote.
    pub fn wrote(&self, pack: Id) {
        self.relied().insert(pack);
    }

    /// Read the marks again; fail if a pack the backup relies on is marked
    /// and may be deleted within the margin.
    pub fn check(&self, repo: &Repository) -> Result<()> {
        let relied = self.relied();
        if relied.is_empty() {
            return Ok(());
        }
        let now = unix_now();
        for m in read_marks(repo)? {
            let Some(pack) = layout::id_of_path(&m.path).filter(|_| Folder::Data.holds(&m.path))
            else {
                continue;
            };
            if relied.contains(&pack)
                && now.saturating_add(margin(m.marked, m.delete_after)) >= m.delete_after
            {
                return Err(Error::PruneConflict { pack });
            }
        }
        Ok(())
    }
}
