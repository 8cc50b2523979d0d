//! `lifeboat drill` and `lifeboat drills`: prove snapshots restorable and
//! list the proofs.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use clap::Args;
use lifeboat::{DrillOptions, DrillReport, GroupBy, Progress};
use serde_json::json;

use crate::args::{Global, SnapshotFilterArgs};
use crate::output::{bytes, print_json, print_warnings};
use crate::{exit, open, progress};

/// Options of `lifeboat drill`.
#[derive(Debug, Args)]
pub struct DrillArgs {
    /// Snapshot id, id prefix, or "latest".
    #[arg(
        required_unless_present = "latest_per_source",
        conflicts_with = "latest_per_source"
    )]
    snapshot: Option<String>,
    /// Drill the newest snapshot of every source (see --group-by).
    #[arg(long)]
    latest_per_source: bool,
    /// What makes a source for --latest-per-source: host, paths and/or tags.
    #[arg(short = 'g', long, value_name = "FIELDS", default_value = "host,paths")]
    group_by: GroupBy,
    /// Scratch space to restore into; the drill's own folder in it is removed afterwards.
    #[arg(
        long,
        value_name = "DIR",
        env = "LIFEBOAT_SCRATCH",
        required_unless_present = "verify_only"
    )]
    scratch: Option<PathBuf>,
    /// For etcd snapshots, also start a throwaway etcd on loopback on the restored snapshot
    /// (when etcd is installed) and compare its revision with the recorded one.
    #[arg(long)]
    etcd_verify: bool,
    /// Leave the restored data in the scratch space.
    #[arg(long)]
    keep: bool,
    /// Write no drill record into the repository.
    #[arg(long)]
    no_record: bool,
    /// Restore nothing: compare an existing restore of the whole snapshot in DIR with the
    /// snapshot (content hashes, sizes, metadata, nothing extra). Records nothing.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["latest_per_source", "scratch", "keep"])]
    verify_only: Option<PathBuf>,
    /// Time to record instead of now (RFC 3339 with an offset).
    #[arg(long)]
    time: Option<jiff::Timestamp>,
    /// Filters.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// Options of `lifeboat drills`.
#[derive(Debug, Args)]
pub struct DrillsArgs {
    /// Only the drills that failed.
    #[arg(long)]
    failed: bool,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn report_json(r: &DrillReport) -> serde_json::Value {
    json!({
        "message_type": "drill",
        "snapshot_id": r.snapshot_id.to_hex(),
        "snapshot_time": r.snapshot.time,
        "hostname": r.snapshot.hostname,
        "paths": r.snapshot.paths,
        "tags": r.snapshot.tags,
        "source": r.snapshot.source,
        "ok": r.ok,
        "problems": r.problems,
        "checks": r.checks,
        "notes": r.notes,
        "entries": r.entries,
        "bytes": r.bytes,
        "ttfb_secs": secs(r.time_to_first_byte),
        "restore_secs": secs(r.restore_time),
        "verify_secs": secs(r.verify_time),
        "throughput_bytes_per_sec": r.throughput(),
        "etcd": r.etcd.as_ref().map(|e| json!({
            "revision": e.revision, "keys": e.keys, "version": e.version})),
        "restored_to": r.restored_to,
        "record_id": r.record.map(|i| i.to_hex()),
    })
}

fn print_human(r: &DrillReport) {
    let verdict = if r.ok { "passed" } else { "FAILED" };
    println!(
        "drill of snapshot {} ({} {}:{}): {verdict}",
        r.snapshot_id.short(),
        serde_json::to_value(r.snapshot.source)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        r.snapshot.hostname,
        r.snapshot.paths.join(",")
    );
    println!(
        "  restored {} entries, {} in {:.3}s (first byte after {:.3}s, {}/s); verified in {:.3}s: {}",
        r.entries,
        bytes(r.bytes),
        secs(r.restore_time),
        secs(r.time_to_first_byte),
        bytes(r.throughput() as u64),
        secs(r.verify_time),
        r.checks.join(", ")
    );
    if let Some(e) = &r.etcd {
        println!(
            "  etcd {} served {} keys at revision {}",
            e.version, e.keys, e.revision
        );
    }
    for n in &r.notes {
        println!("  note: {n}");
    }
    if let Some(id) = r.record {
        println!("  drill record {} saved", id.short());
    }
}

/// Run the drills; exit 0 when every one passed, 1 otherwise.
pub fn run(g: &Global, a: &DrillArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let filter = a.filter.filter();
    if let Some(dir) = &a.verify_only {
        let spec = a.snapshot.as_deref().unwrap_or("latest");
        let (id, snap) = repo.find_snapshot(spec, &filter)?;
        let check = repo.verify_restore(&snap, dir)?;
        for m in &check.mismatches {
            eprintln!("lifeboat: drill: {}: {}", m.path, m.what);
        }
        if g.json {
            print_json(
                &json!({"message_type": "summary", "snapshot_id": id.to_hex(),
                "ok": check.mismatches.is_empty(), "entries": check.entries, "files": check.files,
                "bytes": check.bytes, "mismatches": check.mismatches}),
            );
        } else if !g.quiet {
            println!(
                "{} against snapshot {}: {} entries, {} files, {} read back; {} differences",
                dir.display(),
                id.short(),
                check.entries,
                check.files,
                bytes(check.bytes),
                check.mismatches.len()
            );
        }
        return Ok(if check.mismatches.is_empty() {
            exit::OK
        } else {
            exit::ERROR
        });
    }
    let Some(scratch) = &a.scratch else {
        bail!("give --scratch DIR");
    };
    let targets = if a.latest_per_source {
        let (all, _) = repo.readable_snapshots()?;
        let latest = repo.latest_per_source(a.group_by)?;
        latest
            .into_iter()
            .filter(|(id, s)| filter.matches(s) && all.iter().any(|(i, _)| i == id))
            .collect::<Vec<_>>()
    } else {
        vec![repo.find_snapshot(a.snapshot.as_deref().unwrap_or("latest"), &filter)?]
    };
    if targets.is_empty() {
        bail!("no snapshot matches");
    }
    let opts = DrillOptions {
        scratch: scratch.clone(),
        etcd_server: a.etcd_verify,
        keep: a.keep,
        no_record: a.no_record,
        time: a.time,
        threads: None,
    };
    let mut failed = 0;
    for (id, snap) in &targets {
        let total = snap.summary.as_ref().map(|s| s.bytes_total);
        let progress = Arc::new(Progress::default());
        let display = progress::transfer(progress.clone(), "drill", g, total);
        let res = repo.drill(id, snap, &opts, &progress);
        display.finish();
        let r = res?;
        for p in &r.problems {
            eprintln!("lifeboat: drill {}: {p}", id.short());
        }
        if !r.ok {
            failed += 1;
        }
        if g.json {
            print_json(&report_json(&r));
        } else if !g.quiet {
            print_human(&r);
        }
    }
    if g.json {
        print_json(&json!({"message_type": "summary", "drills": targets.len(),
            "passed": targets.len() - failed, "failed": failed}));
    }
    if failed > 0 {
        eprintln!(
            "lifeboat: {failed} of {} drills failed: the snapshot could not be proven restorable",
            targets.len()
        );
        Ok(exit::ERROR)
    } else {
        Ok(exit::OK)
    }
}

/// List the drill records, oldest first.
pub fn run_list(g: &Global, a: &DrillsArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let list = repo.drills()?;
    print_warnings(g.json, &list.skipped);
    let items: Vec<_> = list
        .items
        .iter()
        .filter(|(_, d)| !a.failed || !d.ok)
        .collect();
    if g.json {
        let v: Vec<_> = items
            .iter()
            .map(|(id, d)| {
                json!({"id": id.to_hex(), "time": d.time, "snapshot": d.snapshot.to_hex(),
                "snapshot_time": d.snapshot_time, "hostname": d.hostname, "paths": d.paths,
                "tags": d.tags, "source": d.source, "drill_host": d.drill_host, "ok": d.ok,
                "problems": d.problems, "checks": d.checks, "entries": d.entries, "bytes": d.bytes,
                "ttfb_secs": d.ttfb_secs, "restore_secs": d.restore_secs,
                "verify_secs": d.verify_secs, "program": d.program})
            })
            .collect();
        print_json(&v);
    } else if !g.quiet {
        println!(
            "{:<10} {:<25} {:<10} {:<6} {:<30} {:>10} {:>9} {:>9}",
            "ID", "Time", "Snapshot", "Result", "Source", "Bytes", "RTO", "TTFB"
        );
        for (id, d) in &items {
            println!(
                "{:<10} {:<25} {:<10} {:<6} {:<30} {:>10} {:>8.2}s {:>8.3}s",
                id.short(),
                d.time,
                d.snapshot.short(),
                if d.ok { "ok" } else { "FAILED" },
                format!("{}:{}", d.hostname, d.paths.join(",")),
                bytes(d.bytes),
                d.restore_secs,
                d.ttfb_secs
            );
        }
        println!("{} drills", items.len());
    }
    Ok(if list.skipped.is_empty() {
        exit::OK
    } else {
        exit::INCOMPLETE
    })
}
