//! `lifeboat prune`: garbage-collect the packs no snapshot uses
//! (docs/prune.md). The facade plans and acts; this module parses the
//! options and prints the plan, then what was done.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use bytesize::ByteSize;
use clap::Args;
use lifeboat::{
    Executed, MaxUnused, PackUsage, PruneError, PruneOptions, PrunePlan, PruneProgress,
    PruneReport, Repository, Tally, Unused,
};
use serde_json::{Value, json};

use crate::args::Global;
use crate::output::{bytes, print_json};
use crate::{exit, open, progress};

/// Options of `lifeboat prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Unused space allowed to stay in partly used packs: a percentage of
    /// the repository's size after the prune (`5%`), a size (`1G`), or
    /// `unlimited` (repack nothing for its unused space).
    #[arg(long, value_name = "x%|SIZE|unlimited", default_value = "5%", value_parser = parse_max_unused)]
    pub max_unused: MaxUnused,
    /// Repack at most this many bytes of packs (`10G`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_repack_size: Option<u64>,
    /// Also repack packs smaller than half the target pack size.
    #[arg(long)]
    pub repack_small: bool,
    /// Also repack packs holding uncompressed blobs, compressing them.
    #[arg(long)]
    pub repack_uncompressed: bool,
    /// How long an unused pack stays marked before a later prune deletes it
    /// (`24h`, `3d`): longer than any backup into this repository runs.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// Delete unused packs at once instead of marking them: only when no
    /// backup runs against the repository.
    #[arg(long)]
    pub instant_delete: bool,
    /// Print what would be done; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// `5%`, `1.5GiB` or `unlimited`.
fn parse_max_unused(s: &str) -> Result<MaxUnused, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("unlimited") {
        return Ok(MaxUnused::Unlimited);
    }
    if let Some(p) = s.strip_suffix('%') {
        let p: f64 = p
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a percentage"))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(format!("{s:?}: the percentage must be between 0 and 100"));
        }
        return Ok(MaxUnused::Percent(p));
    }
    parse_size(s).map(MaxUnused::Bytes)
}

/// A size such as `500M` or `2GiB`.
fn parse_size(s: &str) -> Result<u64, String> {
    s.trim()
        .parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| format!("{s:?} is not a size: {e}"))
}

/// The machine's host name, recorded in the prune lock.
fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

impl PruneArgs {
    /// The library's options for these arguments.
    pub fn options(&self) -> PruneOptions {
        PruneOptions {
            grace: self.grace,
            instant_delete: self.instant_delete,
            max_unused: self.max_unused,
            max_repack_size: self.max_repack_size,
            repack_small: self.repack_small,
            repack_uncompressed: self.repack_uncompressed,
            dry_run: self.dry_run,
            hostname: hostname(),
            ..PruneOptions::default()
        }
    }
}

/// Open the repository, prune it and print the report.
pub fn run(g: &Global, a: &PruneArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    if !a.dry_run {
        repo.core().require_delete("prune")?;
    }
    prune_and_print(g, &repo, &a.options())
}

/// `forget --prune`'s options: the defaults, the host name, and
/// `instant_delete` and `dry_run` as given.
pub fn default_options(instant_delete: bool, dry_run: bool) -> PruneOptions {
    PruneOptions {
        instant_delete,
        dry_run,
        hostname: hostname(),
        ..PruneOptions::default()
    }
}

/// Prune `repo` with `opts`, showing progress, and print the report.
pub fn prune_and_print(g: &Global, repo: &Repository, opts: &PruneOptions) -> Result<u8> {
    let counters = Arc::new(PruneProgress::default());
    let display = progress::prune(counters.clone(), g);
    let result = repo.prune(opts, &counters);
    display.finish();
    let report = match result {
        Ok(r) => r,
        Err(lifeboat::Error::Prune(PruneError::Locked {
            path,
            hostname,
            expires,
        })) => {
            let until = i64::try_from(expires)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .map(|t| t.to_string())
                .unwrap_or_else(|| format!("unix time {expires}"));
            bail!(
                "another prune holds the lock until {until} ({path}, host {hostname:?}); \
                 run prune again after that"
            );
        }
        Err(e) => return Err(e.into()),
    };
    if g.json {
        print_json(&report_json(&report, opts));
    } else if !g.quiet {
        print_plan(&report.plan, opts);
        print_executed(&report, opts);
    }
    Ok(exit::OK)
}

fn tally(count: u64, bytes_: u64) -> String {
    format!("{count} objects, {}", bytes(bytes_))
}

fn packs(t: Tally) -> String {
    format!("{} packs, {}", t.count, bytes(t.bytes))
}

fn sum(objects: &[Unused]) -> Tally {
    Tally {
        count: objects.len() as u64,
        bytes: objects.iter().map(|u| u.size).sum(),
    }
}

/// restic's summary: what is used, and what each pack and leftover becomes.
fn print_plan(plan: &PrunePlan, opts: &PruneOptions) {
    let repack_bytes: u64 = plan.repack.iter().map(|p| p.size).sum();
    let repack_used: u64 = plan.repack.iter().map(|p| p.used_bytes).sum();
    let (mark, still, delete) = (sum(&plan.mark), sum(&plan.still_marked), sum(&plan.delete));
    let rows: Vec<(&str, String)> = vec![
        ("snapshots:", plan.snapshots.to_string()),
        ("used blobs:", plan.used_blobs.to_string()),
        ("packs before:", packs(plan.before)),
        ("keep:", packs(plan.keep)),
        (
            "repack:",
            format!(
                "{} packs, {} ({} of it used)",
                plan.repack.len(),
                bytes(repack_bytes),
                bytes(repack_used)
            ),
        ),
        ("marked now:", tally(mark.count, mark.bytes)),
        ("still marked:", tally(still.count, still.bytes)),
        ("delete now:", tally(delete.count, delete.bytes)),
        ("size after:", bytes(plan.size_after)),
        ("unused left:", unused_left(plan)),
    ];
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in &rows {
        println!("{k:<width$}  {v}");
    }
    if plan.missing_blobs > 0 {
        println!(
            "warning: {} blobs used by snapshots are not in the index (run `lifeboat check`)",
            plan.missing_blobs
        );
    }
    if !plan.missing_packs.is_empty() {
        println!(
            "warning: {} packs the index lists are missing (run `lifeboat check`)",
            plan.missing_packs.len()
        );
    }
    if !plan.recovered.is_empty() {
        println!(
            "{} marked objects are used again and are unmarked",
            plan.recovered.len()
        );
    }
    if !plan.mark.is_empty() {
        println!(
            "marked objects are deleted by a prune after {}:",
            humantime::format_duration(opts.grace)
        );
        list(&plan.mark);
    }
    if !plan.delete.is_empty() {
        println!("deleted now:");
        list(&plan.delete);
    }
}

fn list(objects: &[Unused]) {
    for u in objects {
        let leftover = if u.indexed { "" } else { " (leftover)" };
        println!("  {} {}{leftover}", u.path, bytes(u.size));
    }
}

/// `12.00 MiB (3.1% of the size after)`.
fn unused_left(plan: &PrunePlan) -> String {
    let share = if plan.size_after == 0 {
        0.0
    } else {
        plan.unused_after as f64 * 100.0 / plan.size_after as f64
    };
    format!(
        "{} ({share:.1}% of the size after)",
        bytes(plan.unused_after)
    )
}

fn print_executed(report: &PruneReport, opts: &PruneOptions) {
    let Some(done) = &report.executed else {
        println!("dry run: nothing was changed");
        return;
    };
    if report.plan.is_empty() {
        println!("nothing to do");
        return;
    }
    if !done.packs_written.is_empty() {
        println!(
            "repacked {} blobs into {} new packs",
            done.blobs_repacked,
            done.packs_written.len()
        );
    }
    if let Some(id) = &done.marks_written {
        println!("wrote mark object {}", id.short());
    }
    if !done.segments_written.is_empty() || !done.segments_deleted.is_empty() {
        println!(
            "wrote {} index segments, deleted {}",
            done.segments_written.len(),
            done.segments_deleted.len()
        );
    }
    println!("deleted {}", tally(done.deleted, done.bytes_deleted));
    if !opts.instant_delete && !report.plan.mark.is_empty() {
        println!(
            "{} objects stay marked; run prune again after {} to delete them",
            report.plan.mark.len(),
            humantime::format_duration(opts.grace)
        );
    }
}

fn tally_json(t: Tally) -> Value {
    json!({"count": t.count, "bytes": t.bytes})
}

fn unused_json(objects: &[Unused]) -> Value {
    objects
        .iter()
        .map(|u| json!({"path": u.path, "size": u.size, "indexed": u.indexed}))
        .collect()
}

fn pack_json(p: &PackUsage) -> Value {
    json!({"id": p.id.to_hex(), "size": p.size, "blobs": p.blobs, "used_blobs": p.used_blobs,
        "used_bytes": p.used_bytes, "uncompressed_used": p.uncompressed_used})
}

fn executed_json(e: &Executed) -> Value {
    let hex = |ids: &[lifeboat::Id]| ids.iter().map(|i| i.to_hex()).collect::<Vec<_>>();
    json!({
        "packs_written": hex(&e.packs_written),
        "blobs_repacked": e.blobs_repacked,
        "segments_written": hex(&e.segments_written),
        "segments_deleted": hex(&e.segments_deleted),
        "marks_written": e.marks_written.map(|i| i.to_hex()),
        "deleted": e.deleted,
        "bytes_deleted": e.bytes_deleted,
    })
}

/// The report as one JSON document.
fn report_json(report: &PruneReport, opts: &PruneOptions) -> Value {
    let p = &report.plan;
    json!({
        "message_type": "summary",
        "dry_run": opts.dry_run,
        "instant_delete": opts.instant_delete,
        "grace_seconds": opts.grace.as_secs(),
        "plan": {
            "started": p.started,
            "snapshots": p.snapshots,
            "used_blobs": p.used_blobs,
            "missing_blobs": p.missing_blobs,
            "before": tally_json(p.before),
            "keep": tally_json(p.keep),
            "repack": p.repack.iter().map(pack_json).collect::<Vec<_>>(),
            "mark": unused_json(&p.mark),
            "still_marked": unused_json(&p.still_marked),
            "delete": unused_json(&p.delete),
            "recovered": p.recovered,
            "missing_packs": p.missing_packs.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
            "unindex": p.unindex.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
            "bytes_deleted_now": p.bytes_deleted_now(),
            "size_after": p.size_after,
            "unused_after": p.unused_after,
        },
        "executed": report.executed.as_ref().map(executed_json),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_unused_takes_a_share_a_size_or_unlimited() {
        assert_eq!(parse_max_unused("5%"), Ok(MaxUnused::Percent(5.0)));
        assert_eq!(parse_max_unused("unlimited"), Ok(MaxUnused::Unlimited));
        assert_eq!(parse_max_unused("1KiB"), Ok(MaxUnused::Bytes(1024)));
        assert!(parse_max_unused("150%").is_err());
        assert!(parse_max_unused("lots").is_err());
    }
}
