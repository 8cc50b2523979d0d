//! Walking a snapshot's tree: every node below a tree, depth first, with
//! its path. Used by restore, diff, stats and the other crates.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use lifeboat_format::{Id, Node, NodeKind};

use crate::{Repository, Result};

impl Repository {
    /// Visit every node under `tree` in depth-first pre-order, with its path
    /// (starting with `/`). Returning `false` from `f` for a directory skips
    /// its contents.
    pub fn walk(&self, tree: &Id, f: &mut dyn FnMut(&Path, &Node) -> Result<bool>) -> Result<()> {
        self.walk_from(tree, Path::new("/"), f)
    }

    /// As [`Self::walk`], with paths below `base`.
    pub(crate) fn walk_from(
        &self,
        tree: &Id,
        base: &Path,
        f: &mut dyn FnMut(&Path, &Node) -> Result<bool>,
    ) -> Result<()> {
        self.walk_owned(tree, base, &mut HashMap::new(), &mut |p, n| {
            let sub = n.subtree;
            Ok(f(p, &n)?.then_some(sub).flatten())
        })
    }

    /// The walk, taking trees from `trees` (removing them) when there and
    /// from the repository when not, and handing each node over by value:
    /// `f` returns the subtree to descend into, if any. Restore keeps the nodes it selects without
    /// copying them, so the trees it prefetched are not held twice.
    pub(crate) fn walk_owned(
        &self,
        tree: &Id,
        base: &Path,
        trees: &mut HashMap<Id, Vec<u8>>,
        f: &mut dyn FnMut(&Path, Node) -> Result<Option<Id>>,
    ) -> Result<()> {
        let t = match trees.remove(tree) {
            Some(b) => self.decode_tree(tree, &b)?,
            None => self.load_tree(tree)?,
        };
        for n in t.nodes {
            let p = base.join(OsStr::from_bytes(&n.name));
            let dir = n.kind == NodeKind::Dir;
            if let Some(sub) = f(&p, n)?.filter(|_| dir) {
                self.walk_owned(&sub, &p, trees, f)?;
            }
        }
        Ok(())
    }
}
