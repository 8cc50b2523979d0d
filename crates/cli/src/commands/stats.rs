//! `lifeboat stats`.

use anyhow::Result;
use clap::Args;
use lifeboat::Snapshot;
use serde_json::json;

use crate::args::{Global, SnapshotFilterArgs};
use crate::output::{bytes, print_json};
use crate::{exit, open};

/// Options of `lifeboat stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Snapshots to count (default: all).
    snapshots: Vec<String>,
    /// Filters.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// Print sizes and counts of the snapshots and of the repository.
pub fn run(g: &Global, a: &StatsArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let flt = a.filter.filter();
    let snaps: Vec<Snapshot> = if a.snapshots.is_empty() {
        repo.readable_snapshots()?
            .0
            .into_iter()
            .filter(|(_, s)| flt.matches(s))
            .map(|(_, s)| s)
            .collect()
    } else {
        a.snapshots
            .iter()
            .map(|s| repo.find_snapshot(s, &flt).map(|x| x.1))
            .collect::<lifeboat::Result<_>>()?
    };
    let st = repo.stats(&snaps)?;
    let totals = repo.pack_totals();
    if g.json {
        let mut v = serde_json::to_value(&st)?;
        v["repository_packs"] = json!(totals.packs);
        v["repository_size"] = json!(totals.bytes);
        v["repository_blobs"] = json!(totals.blobs);
        print_json(&v);
    } else {
        println!("Snapshots:          {}", st.snapshots);
        println!("Files:              {}", st.files);
        println!("Directories:        {}", st.dirs);
        println!("Restore size:       {}", bytes(st.restore_size));
        println!("Unique data blobs:  {}", st.unique_blobs);
        println!(
            "Unique data size:   {} ({} stored)",
            bytes(st.unique_raw_size),
            bytes(st.unique_stored_size)
        );
        println!(
            "Repository:         {} in {} packs, {} blobs",
            bytes(totals.bytes),
            totals.packs,
            totals.blobs
        );
    }
    Ok(exit::OK)
}
