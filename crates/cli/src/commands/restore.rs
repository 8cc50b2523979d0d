//! `lifeboat restore`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Result;
use clap::Args;
use lifeboat::{BlockRestoreOptions, Overwrite, Progress, RestoreOptions};
use serde_json::json;

use crate::args::{Global, SnapshotFilterArgs};
use crate::output::{bytes, print_json};
use crate::{exit, open, progress};

/// Options of `lifeboat restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id, id prefix, or "latest".
    snapshot: String,
    /// Directory to restore into (with --block: the device or image file).
    #[arg(short, long)]
    target: PathBuf,
    /// Restore a block snapshot onto the device or file --target: a new
    /// file stays sparse; on a device or a file with content, what must be
    /// zero is zeroed or discarded.
    #[arg(long, conflicts_with_all = ["includes", "excludes"])]
    block: bool,
    /// Restore only entries matching this pattern (repeatable).
    #[arg(short = 'i', long = "include", value_name = "PATTERN")]
    includes: Vec<String>,
    /// Skip entries matching this pattern (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// What to do with entries already in the target: always (replace each,
    /// atomically: the default), if-changed (keep files whose size and
    /// mtime, or content, match the snapshot), if-newer (replace only
    /// entries older than the snapshot's), never (keep every existing entry).
    #[arg(long, value_name = "MODE", default_value = "always",
          value_parser = |s: &str| s.parse::<Overwrite>())]
    overwrite: Overwrite,
    /// Filters.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// Restore and print the summary.
pub fn run(g: &Global, a: &RestoreArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let total = snap.summary.as_ref().map(|s| s.bytes_total);
    if a.block {
        return run_block(g, a, &repo, id, &snap, total);
    }
    let opts = RestoreOptions {
        target: a.target.clone(),
        includes: a.includes.clone(),
        excludes: a.excludes.clone(),
        overwrite: a.overwrite,
        ..Default::default()
    };
    let progress = Arc::new(Progress::default());
    let display = progress::transfer(progress.clone(), "restore", g, total);
    let res = repo.restore(&snap, &opts, &progress);
    display.finish();
    let report = res?;
    for e in &report.errors {
        eprintln!("lifeboat: error: {}: {}", e.path, e.message);
    }
    if g.json {
        print_json(
            &json!({"message_type": "summary", "snapshot_id": id.to_hex(), "files": report.files,
            "dirs": report.dirs, "others": report.others, "bytes": report.bytes, "skipped": report.skipped,
            "errors": report.errors}),
        );
    } else if !g.quiet {
        let skipped = if report.skipped > 0 {
            format!(
                ", {} kept as they were (--overwrite {})",
                report.skipped, a.overwrite
            )
        } else {
            String::new()
        };
        println!(
            "restored snapshot {} to {}: {} files, {} directories, {} other entries, {}{}",
            id.short(),
            a.target.display(),
            report.files,
            report.dirs,
            report.others,
            bytes(report.bytes),
            skipped
        );
    }
    if report.errors.is_empty() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "lifeboat: {} entries were not restored correctly",
            report.errors.len()
        );
        Ok(exit::ERROR)
    }
}

/// `restore --block`: write the image onto the device or file.
fn run_block(
    g: &Global,
    a: &RestoreArgs,
    repo: &lifeboat::Repository,
    id: lifeboat::Id,
    snap: &lifeboat::Snapshot,
    total: Option<u64>,
) -> Result<u8> {
    let opts = BlockRestoreOptions {
        target: a.target.clone(),
        ..Default::default()
    };
    let progress = Arc::new(Progress::default());
    let display = progress::transfer(progress.clone(), "restore", g, total);
    let res = repo.restore_block(snap, &opts, &progress);
    display.finish();
    let report = res?;
    if g.json {
        print_json(
            &json!({"message_type": "summary", "snapshot_id": id.to_hex(),
            "target": a.target.display().to_string(), "size": report.size,
            "bytes_written": report.bytes_written, "bytes_zeroed": report.bytes_zeroed,
            "device": report.device, "fresh": report.fresh}),
        );
    } else if !g.quiet {
        println!(
            "restored block snapshot {} to {}: {} image, {} written, {} zeroed",
            id.short(),
            a.target.display(),
            bytes(report.size),
            bytes(report.bytes_written),
            bytes(report.bytes_zeroed)
        );
    }
    Ok(exit::OK)
}
