//! Measuring snapshots: counts, restore size and unique blob sizes.

use crate::repo::RepositoryInternals as _;
use std::collections::HashSet;

use lifeboat_format::{ContentPart, Id, NodeKind, Snapshot};

use crate::{Repository, Result};

/// Sizes and counts of one or more snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// Snapshots counted.
    pub snapshots: u64,
    /// Files (counted once per snapshot they appear in).
    pub files: u64,
    /// Directories.
    pub dirs: u64,
    /// Bytes a restore of all of them would write.
    pub restore_size: u64,
    /// Distinct data blobs referenced.
    pub unique_blobs: u64,
    /// Plaintext bytes of those blobs.
    pub unique_raw_size: u64,
    /// Bytes those blobs take in the repository. A group of small blobs
    /// counts once, whole, when any of its members is referenced.
    pub unique_stored_size: u64,
}

impl Repository {
    /// Counts and sizes for `snapshots`; blobs shared between them count once.
    pub fn stats(&self, snapshots: &[Snapshot]) -> Result<Stats> {
        let mut st = Stats {
            snapshots: snapshots.len() as u64,
            ..Default::default()
        };
        let mut seen: HashSet<Id> = HashSet::new();
        // Groups counted already: (pack, offset).
        let mut groups: HashSet<(Id, u32)> = HashSet::new();
        let idx = self.index();
        for s in snapshots {
            self.walk(&s.tree, &mut |_, n| {
                match n.kind {
                    NodeKind::Dir => st.dirs += 1,
                    NodeKind::File => {
                        st.files += 1;
                        st.restore_size += n.content.iter().map(|c| c.len()).sum::<u64>();
                        for c in &n.content {
                            if let ContentPart::Blob { id, .. } = c {
                                if seen.insert(*id) {
                                    st.unique_blobs += 1;
                                    if let Some(l) = idx.get(id) {
                                        st.unique_raw_size += u64::from(l.raw_len);
                                        if !l.flags.grouped() || groups.insert((l.pack, l.offset)) {
                                            st.unique_stored_size += u64::from(l.stored_len);
                                        }
                                    }
                                }
                            }
                        }
                    }
                    _ => {}
                }
                Ok(true)
            })?;
        }
        Ok(st)
    }
}
