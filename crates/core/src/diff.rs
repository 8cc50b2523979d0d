//! Comparing two snapshot trees: what was added, removed or changed.

use std::path::Path;

use lifeboat_format::{Id, Node, NodeKind};

use crate::{Repository, Result};

/// How an entry differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// Only in the second snapshot.
    Added,
    /// Only in the first snapshot.
    Removed,
    /// Content differs.
    Modified,
    /// Only metadata differs.
    Metadata,
    /// The entry changed kind (file to directory, ...).
    TypeChanged,
}

/// One difference.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DiffEntry {
    /// Path, starting with `/`.
    pub path: String,
    /// What changed.
    pub change: Change,
}

fn meta_equal(a: &Node, b: &Node) -> bool {
    a.mode == b.mode
        && a.uid == b.uid
        && a.gid == b.gid
        && a.mtime == b.mtime
        && a.xattrs == b.xattrs
        && a.symlink_target == b.symlink_target
        && a.rdev == b.rdev
}

impl Repository {
    /// Differences from tree `a` to tree `b`, sorted by path.
    pub fn diff(&self, a: &Id, b: &Id) -> Result<Vec<DiffEntry>> {
        let mut out = Vec::new();
        self.diff_inner(Some(a), Some(b), Path::new("/"), &mut out)?;
        Ok(out)
    }

    fn all_below(
        &self,
        tree: &Id,
        base: &Path,
        change: Change,
        out: &mut Vec<DiffEntry>,
    ) -> Result<()> {
        self.walk_from(tree, base, &mut |p, _| {
            out.push(DiffEntry {
                path: p.display().to_string(),
                change,
            });
            Ok(true)
        })
    }

    /// An entry (and everything below it) that only one snapshot has.
    fn one_side(
        &self,
        n: &Node,
        base: &Path,
        change: Change,
        out: &mut Vec<DiffEntry>,
    ) -> Result<()> {
        let p = base.join(n.name_lossy());
        out.push(DiffEntry {
            path: p.display().to_string(),
            change,
        });
        if let Some(s) = &n.subtree {
            self.all_below(s, &p, change, out)?;
        }
        Ok(())
    }

    fn diff_inner(
        &self,
        a: Option<&Id>,
        b: Option<&Id>,
        base: &Path,
        out: &mut Vec<DiffEntry>,
    ) -> Result<()> {
        if a == b {
            return Ok(());
        }
        let ta = match a {
            Some(a) => self.load_tree(a)?.nodes,
            None => Vec::new(),
        };
        let tb = match b {
            Some(b) => self.load_tree(b)?.nodes,
            None => Vec::new(),
        };
        let (mut i, mut j) = (0, 0);
        while i < ta.len() || j < tb.len() {
            let ord = match (ta.get(i), tb.get(j)) {
                (Some(x), Some(y)) => x.name.cmp(&y.name),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    self.one_side(&ta[i], base, Change::Removed, out)?;
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    self.one_side(&tb[j], base, Change::Added, out)?;
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    let (x, y) = (&ta[i], &tb[j]);
                    let p = base.join(x.name_lossy());
                    if x.kind != y.kind {
                        out.push(DiffEntry {
                            path: p.display().to_string(),
                            change: Change::TypeChanged,
                        });
                    } else if x.kind == NodeKind::File && x.content != y.content {
                        out.push(DiffEntry {
                            path: p.display().to_string(),
                            change: Change::Modified,
                        });
                    } else if !meta_equal(x, y) {
                        out.push(DiffEntry {
                            path: p.display().to_string(),
                            change: Change::Metadata,
                        });
                    }
                    if x.kind == NodeKind::Dir && y.kind == NodeKind::Dir {
                        self.diff_inner(x.subtree.as_ref(), y.subtree.as_ref(), &p, out)?;
                    }
                    i += 1;
                    j += 1;
                }
            }
        }
        Ok(())
    }
}
