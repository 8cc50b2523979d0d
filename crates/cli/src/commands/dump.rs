//! `lifeboat dump`.

use anyhow::Result;
use clap::Args;

use crate::args::{Global, SnapshotFilterArgs};
use crate::{exit, open};

/// Options of `lifeboat dump`.
#[derive(Debug, Args)]
pub struct DumpArgs {
    /// Snapshot id, id prefix, or "latest".
    snapshot: String,
    /// Path of the file in the snapshot (for stdin backups, its name).
    path: String,
    /// Filters.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// Write the file to standard output.
pub fn run(g: &Global, a: &DumpArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let (_, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let p = if a.path.starts_with('/') {
        a.path.clone()
    } else {
        format!("/{}", a.path)
    };
    let node = repo.find_node(&snap.tree, &p)?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
    repo.dump_file(&node, &mut out)?;
    Ok(exit::OK)
}
