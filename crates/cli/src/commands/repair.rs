//! `lifeboat repair snapshots`.

use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat::{CheckProgress, RepairOptions};
use serde_json::json;

use crate::args::Global;
use crate::output::print_json;
use crate::{exit, open, progress};

/// Options of `lifeboat repair`.
#[derive(Debug, Args)]
pub struct RepairArgs {
    /// What to repair.
    #[command(subcommand)]
    command: RepairCommand,
}

/// `lifeboat repair` subcommands.
#[derive(Debug, Subcommand)]
pub enum RepairCommand {
    /// Rewrite snapshots that reference lost data so they drop only what is
    /// lost. Without --forget-damaged, only shows what it would do.
    ///
    /// A lost part of a file becomes a hole of the same length (the rest of
    /// the file stays at its offsets; the lost bytes restore as zeros) and a
    /// directory whose listing is lost becomes empty. Each new snapshot is
    /// tagged `repaired` and lists what it lost in its `incomplete` field.
    Snapshots {
        /// Write the repaired snapshots and remove the damaged originals
        /// (and snapshot objects that cannot be read at all).
        #[arg(long)]
        forget_damaged: bool,
        /// Also read every pack, so that blobs that fail to verify count as
        /// lost too.
        #[arg(long)]
        read_data: bool,
    },
}

/// Repair and print what was (or would be) done.
pub fn run(g: &Global, a: &RepairArgs) -> Result<u8> {
    let RepairCommand::Snapshots {
        forget_damaged,
        read_data,
    } = &a.command;
    let repo = open::repository(g)?;
    repo.core().require_delete("repair")?;
    let opts = RepairOptions {
        forget_damaged: *forget_damaged,
        read_data: *read_data,
    };
    let progress = Arc::new(CheckProgress::default());
    let display = progress::check(progress.clone(), g);
    let res = repo.repair_snapshots(&opts, &progress);
    display.finish();
    let report = res?;
    if g.json {
        let mut v = serde_json::to_value(&report)?;
        v["message_type"] = json!("repair_snapshots");
        print_json(&v);
        return Ok(exit::OK);
    }
    if report.snapshots.is_empty() && report.packs_dropped.is_empty() {
        if !g.quiet {
            println!(
                "no snapshot references lost data and the index lists no damaged pack; nothing to repair"
            );
        }
        return Ok(exit::OK);
    }
    for d in &report.packs_dropped {
        println!(
            "pack {} ({}): {} the index{}",
            &d.pack[..8.min(d.pack.len())],
            d.reason.name(),
            if report.dry_run {
                "would be removed from"
            } else {
                "removed from"
            },
            if report.dry_run {
                ", its intact blobs copied to a new pack"
            } else {
                ""
            }
        );
    }
    for s in &report.snapshots {
        let what = match (&s.repaired, s.forgotten, report.dry_run) {
            (Some(n), true, _) => format!("repaired as {}, original removed", &n[..8]),
            (None, true, _) => "removed".to_string(),
            (_, _, true) => "would be repaired".to_string(),
            _ => "unchanged".to_string(),
        };
        println!(
            "snapshot {}: {what}",
            &s.original[..8.min(s.original.len())]
        );
        for l in &s.lost {
            println!("  lost: {l}");
        }
    }
    if report.dry_run {
        println!(
            "dry run: nothing was changed; run `lifeboat repair snapshots --forget-damaged` \
             to write the repaired snapshots and remove the damaged ones"
        );
    } else if !g.quiet {
        println!(
            "{} snapshots repaired ({} trees written, {} intact blobs copied out of damaged packs); \
             `lifeboat prune` can now free the unreferenced data",
            report
                .snapshots
                .iter()
                .filter(|s| s.repaired.is_some())
                .count(),
            report.trees_written,
            report.blobs_copied
        );
    }
    Ok(exit::OK)
}
