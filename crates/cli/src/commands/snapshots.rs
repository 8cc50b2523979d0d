//! `lifeboat snapshots`.

use anyhow::Result;
use clap::Args;
use lifeboat::{Id, Snapshot, SourceKind, etcd_meta_keys};

use crate::args::{Global, SnapshotFilterArgs};
use crate::output::{print_json, snapshot_json};
use crate::{exit, open};

/// Options of `lifeboat snapshots`.
#[derive(Debug, Args)]
pub struct SnapshotsArgs {
    /// Filters.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// List the snapshots that pass the filters. Exits 3 when a damaged or
/// stray object was skipped (each is reported as a warning).
pub fn run(g: &Global, a: &SnapshotsArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let flt = a.filter.filter();
    let (all, skipped) = repo.readable_snapshots()?;
    let snaps: Vec<(Id, Snapshot)> = all.into_iter().filter(|(_, s)| flt.matches(s)).collect();
    if g.json {
        let v: Vec<_> = snaps.iter().map(|(id, s)| snapshot_json(id, s)).collect();
        print_json(&v);
    } else {
        // etcd snapshots add a column: the store revision they hold.
        let etcd = snaps.iter().any(|(_, s)| s.source == SourceKind::Etcd);
        let rev_head = if etcd {
            format!("{:<10} ", "Revision")
        } else {
            String::new()
        };
        println!(
            "{:<10} {:<26} {:<16} {:<16} {rev_head}Paths",
            "ID", "Time", "Host", "Tags"
        );
        for (id, s) in &snaps {
            let time = s.time.get(..19).unwrap_or(&s.time).replace('T', " ");
            let rev = if etcd {
                let r = s.source_meta.get(etcd_meta_keys::REVISION);
                format!("{:<10} ", r.map(String::as_str).unwrap_or(""))
            } else {
                String::new()
            };
            println!(
                "{:<10} {:<26} {:<16} {:<16} {rev}{}{}",
                id.short(),
                time,
                s.hostname,
                s.tags.join(","),
                s.paths.join(" "),
                if s.incomplete.is_empty() {
                    ""
                } else {
                    " (incomplete)"
                }
            );
        }
        println!("{} snapshots", snaps.len());
    }
    // Like a backup that could not read everything: the listing is what
    // could be read, and the warnings say what could not.
    Ok(if skipped > 0 {
        exit::INCOMPLETE
    } else {
        exit::OK
    })
}
