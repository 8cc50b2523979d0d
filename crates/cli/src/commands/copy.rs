//! `lifeboat copy`.

use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use lifeboat::{Id, Progress, Snapshot};
use serde_json::json;

use crate::args::{FromRepoArgs, Global, SnapshotFilterArgs};
use crate::output::{bytes, print_json};
use crate::{exit, open, progress};

/// Options of `lifeboat copy`.
#[derive(Debug, Args)]
pub struct CopyArgs {
    /// Snapshots to copy (ids, prefixes or "latest"; default: all that pass the filters).
    snapshots: Vec<String>,
    /// The source repository.
    #[command(flatten)]
    from: FromRepoArgs,
    /// Filters on the source's snapshots.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// Copy the snapshots from `--from-repo` into `-r`.
pub fn run(g: &Global, a: &CopyArgs) -> Result<u8> {
    let filter = a.filter.filter();
    let src = open::source_repository(g, &a.from)?;
    let dst = open::repository(g)?;
    let snaps: Vec<(Id, Snapshot)> = if a.snapshots.is_empty() {
        src.readable_snapshots()?
            .0
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect()
    } else {
        let mut v = Vec::new();
        for s in &a.snapshots {
            let found = src.find_snapshot(s, &filter)?;
            if !v.iter().any(|(id, _): &(Id, Snapshot)| *id == found.0) {
                v.push(found);
            }
        }
        v
    };
    let progress = Arc::new(Progress::default());
    let display = progress::transfer(progress.clone(), "copy", g, None);
    let res = dst.copy_from(&src, &snaps, &progress);
    display.finish();
    let r = res?;
    if g.json {
        let copied: Vec<_> = r
            .copied
            .iter()
            .map(|(s, t)| json!({"source": s.to_hex(), "target": t.to_hex()}))
            .collect();
        let skipped: Vec<_> = r.skipped.iter().map(Id::to_hex).collect();
        print_json(&json!({
            "message_type": "summary",
            "snapshots_copied": r.copied.len(),
            "snapshots_skipped": r.skipped.len(),
            "data_blobs_copied": r.data_blobs_copied,
            "tree_blobs_copied": r.tree_blobs_copied,
            "bytes_copied": r.bytes_copied,
            "blobs_present": r.blobs_present,
            "copied": copied,
            "skipped": skipped,
        }));
    } else if !g.quiet {
        for (s, t) in &r.copied {
            println!("snapshot {} copied as {}", s.short(), t.short());
        }
        for s in &r.skipped {
            println!("snapshot {} is already in the target", s.short());
        }
        println!(
            "copied {} snapshots ({} skipped): {} data and {} tree blobs, {}; {} blobs were there already",
            r.copied.len(),
            r.skipped.len(),
            r.data_blobs_copied,
            r.tree_blobs_copied,
            bytes(r.bytes_copied),
            r.blobs_present
        );
    }
    Ok(exit::OK)
}
