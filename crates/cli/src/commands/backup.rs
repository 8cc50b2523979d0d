//! `lifeboat backup`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Args;
use lifeboat::Compression;
use lifeboat::{
    BackupOptions, BackupSource, BlockChunking, DEFAULT_BLOCK_CHUNKING, META_CHUNKING, META_SIZE,
    Progress, SnapshotFilter, parse_changed_ranges,
};
use serde_json::json;

use crate::args::Global;
use crate::output::{bytes, print_json};
use crate::{exit, open, progress};

/// Options of `lifeboat backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// Read the data to back up from standard input.
    #[arg(long)]
    stdin: bool,
    /// File name for data read from standard input.
    #[arg(long, default_value = "stdin", requires = "stdin")]
    stdin_filename: String,
    /// Back up a block device or raw image file as one file (its size and
    /// chunking are recorded; holes and zero chunks are not stored).
    #[arg(long, value_name = "PATH", conflicts_with = "stdin")]
    block: Option<PathBuf>,
    /// Chunking of a --block backup: cdc, or fixed:SIZE (e.g. fixed:4MiB;
    /// default fixed:1MiB).
    #[arg(long, value_name = "CHUNKER", requires = "block",
          value_parser = |s: &str| s.parse::<BlockChunking>())]
    chunker: Option<BlockChunking>,
    /// JSON list of the byte ranges changed since the parent block
    /// snapshot ([{"offset":N,"length":M},...]): only they are read.
    #[arg(long, value_name = "FILE", requires = "block")]
    changed_ranges: Option<PathBuf>,
    /// Add a tag (repeatable, or comma-separated).
    #[arg(long = "tag", value_delimiter = ',')]
    tags: Vec<String>,
    /// Host name to record.
    #[arg(long = "host")]
    host: Option<String>,
    /// Exclude a pattern (repeatable).
    #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Read exclude patterns from a file, one per line.
    #[arg(long = "exclude-file", value_name = "FILE")]
    exclude_files: Vec<PathBuf>,
    /// Time to record for the snapshot (RFC 3339 with an offset, e.g.
    /// 2024-01-02T03:04:05+02:00) instead of now.
    #[arg(long, value_parser = snapshot_time)]
    time: Option<String>,
    /// Compare against this snapshot (default: the latest with the same host and paths).
    #[arg(long, value_name = "SNAPSHOT")]
    parent: Option<String>,
    /// Read every file, trusting no parent snapshot.
    #[arg(long, conflicts_with = "parent")]
    force: bool,
    /// Compression of this run's new data instead of the repository's:
    /// auto, fastest, better, max, off, or a zstd level (-7 to 22).
    #[arg(long, value_name = "MODE", allow_negative_numbers = true,
          value_parser = |s: &str| s.parse::<Compression>())]
    compression: Option<Compression>,
}

/// A `--time` as given, once it parses as an instant: a snapshot time that
/// does not would stop `forget` from planning until it is forgotten by id.
fn snapshot_time(s: &str) -> Result<String, jiff::Error> {
    s.parse::<jiff::Timestamp>().map(|_| s.to_string())
}

/// The exclude patterns of `-e` and of every `--exclude-file`.
fn excludes(a: &BackupArgs) -> Result<Vec<String>> {
    let mut excl = a.excludes.clone();
    for f in &a.exclude_files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading exclude file {}", f.display()))?;
        excl.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    Ok(excl)
}

/// A numeric `source_meta` value.
fn meta_u64(meta: &std::collections::BTreeMap<String, String>, key: &str) -> Option<u64> {
    meta.get(key).and_then(|v| v.parse().ok())
}

/// Standard input as a file of its own, when it is a regular file (`<
/// image`), so it is read by extent with holes skipped; `None` for a
/// pipe, a terminal or a device.
fn stdin_regular_file() -> Option<std::fs::File> {
    use std::os::fd::AsFd;
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let file = std::fs::File::from(fd);
    file.metadata().ok()?.is_file().then_some(file)
}

/// Make a pipe on standard input hold 1 MiB (what an unprivileged user may
/// ask for by default) instead of 64 KiB, so the writer and Lifeboat take
/// turns once per MiB rather than once per 64 KiB. Anything else on
/// standard input, or a refusal, leaves it as it is.
fn enlarge_stdin_pipe() {
    use nix::fcntl::{FcntlArg, fcntl};
    use std::os::fd::AsFd;
    let stdin = std::io::stdin();
    let _ = fcntl(stdin.as_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20));
}

/// Back up and print the summary.
pub fn run(g: &Global, a: &BackupArgs) -> Result<u8> {
    let excl = excludes(a)?;
    if a.stdin && !a.paths.is_empty() {
        bail!("--stdin and paths cannot be combined");
    }
    if a.block.is_some() && !a.paths.is_empty() {
        bail!("--block and paths cannot be combined");
    }
    if !a.stdin && a.block.is_none() && a.paths.is_empty() {
        bail!("nothing to back up: give paths, --stdin or --block");
    }
    let changed_ranges = match &a.changed_ranges {
        Some(f) => {
            let text = std::fs::read(f)
                .with_context(|| format!("reading changed ranges {}", f.display()))?;
            Some(
                parse_changed_ranges(&text)
                    .with_context(|| format!("reading changed ranges {}", f.display()))?,
            )
        }
        None => None,
    };
    let repo = open::repository(g)?;
    let parent = match &a.parent {
        Some(p) => Some(repo.find_snapshot(p, &SnapshotFilter::default())?.0),
        None => None,
    };
    let opts = BackupOptions {
        hostname: a.host.clone(),
        tags: a.tags.clone(),
        excludes: excl,
        time: a.time.clone(),
        threads: None,
        parent,
        force: a.force,
        compression: a.compression,
        ..Default::default()
    };
    let progress = Arc::new(Progress::default());
    let display = progress::transfer(progress.clone(), "backup", g, None);
    let mut input = std::io::stdin();
    let source = if let Some(path) = &a.block {
        BackupSource::Block {
            path: path.clone(),
            chunking: a.chunker.unwrap_or(DEFAULT_BLOCK_CHUNKING),
            changed_ranges,
        }
    } else if a.stdin {
        match stdin_regular_file() {
            Some(file) => BackupSource::StdinFile {
                filename: a.stdin_filename.clone(),
                file,
            },
            None => {
                enlarge_stdin_pipe();
                BackupSource::Stdin {
                    filename: a.stdin_filename.clone(),
                    reader: &mut input,
                }
            }
        }
    } else {
        BackupSource::Paths(a.paths.clone())
    };
    let res = repo.backup(source, &opts, &progress);
    display.finish();
    let report = res?;
    for e in &report.errors {
        eprintln!("lifeboat: warning: {}: {}", e.path, e.message);
    }
    let s = report.snapshot.summary.clone().unwrap_or_default();
    // As restic counts it: unchanged files taken from the parent count as
    // processed too, so an unchanged re-backup does not say "0 B".
    let (files_processed, bytes_processed) = report.processed();
    if g.json {
        print_json(&json!({
            "message_type": "summary",
            "snapshot_id": report.id.to_hex(),
            "files_new": s.files_new, "files_changed": s.files_changed, "files_unchanged": s.files_unchanged,
            "dirs": s.dirs, "bytes_total": s.bytes_total, "bytes_read": s.bytes_read, "bytes_added": s.bytes_added,
            "bytes_stored": s.bytes_stored, "data_blobs": s.data_blobs, "tree_blobs": s.tree_blobs,
            "duration_secs": s.duration_secs, "errors": report.errors,
            "total_files_processed": files_processed, "total_bytes_processed": bytes_processed,
            "source": report.snapshot.source,
            "device_size": meta_u64(&report.snapshot.source_meta, META_SIZE),
            "chunking": report.snapshot.source_meta.get(META_CHUNKING),
            "parent": report.snapshot.parent.map(|p| p.to_hex()),
            "unindexed_packs": {
                "count": report.unindexed_packs, "bytes": report.unindexed_bytes,
                "action": if report.unindexed_unknown.is_some() {
                    "unknown"
                } else if report.unindexed_packs > 0 {
                    "left_for_prune"
                } else {
                    "none"
                },
            },
        }));
    } else if !g.quiet {
        println!(
            "Files: {} new, {} changed, {} unchanged; {} directories",
            s.files_new, s.files_changed, s.files_unchanged, s.dirs
        );
        println!(
            "Added to the repository: {} ({} stored)",
            bytes(s.bytes_added),
            bytes(s.bytes_stored)
        );
        println!(
            "processed {} files, {} in {:.2}s ({}/s; {} read)",
            files_processed,
            bytes(bytes_processed),
            s.duration_secs,
            bytes((bytes_processed as f64 / s.duration_secs.max(0.001)) as u64),
            bytes(s.bytes_read)
        );
        if let (Some(size), Some(chunking)) = (
            meta_u64(&report.snapshot.source_meta, META_SIZE),
            report.snapshot.source_meta.get(META_CHUNKING),
        ) {
            println!(
                "Block device: {} ({size} bytes), chunking {chunking}",
                bytes(size)
            );
        }
        println!("snapshot {} saved", report.id.short());
    }
    if let Some(why) = &report.unindexed_unknown
        && !g.quiet
    {
        eprintln!("lifeboat: note: could not count the packs in no index segment: {why}");
    }
    if report.unindexed_packs > 0 && !g.quiet {
        // On stderr, so that it shows beside --json too.
        eprintln!(
            "lifeboat: note: {} packs ({}) in no index segment, left by an interrupted \
             backup (or one still running): not reused, their blobs were stored again \
             where needed; `lifeboat prune` deletes them",
            report.unindexed_packs,
            bytes(report.unindexed_bytes)
        );
    }
    if report.is_complete() {
        Ok(exit::OK)
    } else {
        eprintln!(
            "lifeboat: warning: {} entries could not be read; the snapshot is incomplete",
            report.errors.len()
        );
        Ok(exit::INCOMPLETE)
    }
}
