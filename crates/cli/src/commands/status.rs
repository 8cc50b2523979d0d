//! `lifeboat status`: recovery readiness per source, as text, JSON or
//! Prometheus metrics.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use lifeboat::policy::{format_duration, parse_duration};
use lifeboat::{GroupBy, Policy, SourceStatus, StatusOptions};
use serde_json::json;

use crate::args::Global;
use crate::open;
use crate::output::{bytes, print_json};

/// After `lifeboat status --help`.
pub const AFTER_HELP: &str = "Exit codes: 0 every source is within its RPO and was drilled \
recently enough; 5 some source is older than its RPO (or has no snapshot); 6 some source has \
no successful drill within its limit, failed its newest drill, or restored slower than its RTO; \
7 both; 1 the status could not be taken.";

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

/// Options of `lifeboat status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Recovery policy: tiers and sources (see docs/drill.md).
    #[arg(long, value_name = "FILE", env = "LIFEBOAT_POLICY")]
    policy: Option<PathBuf>,
    /// RPO of every source (over the policy's): e.g. 26h, 15m, 7d.
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    max_age: Option<Duration>,
    /// How old the last successful drill of every source may be (over the policy's).
    #[arg(long, value_name = "DURATION", value_parser = duration)]
    drill_max_age: Option<Duration>,
    /// What makes a source: host, paths and/or tags.
    #[arg(short = 'g', long, value_name = "FIELDS", default_value = "host,paths")]
    group_by: GroupBy,
    /// Also write the status as Prometheus metrics to FILE (atomically), for a textfile
    /// collector.
    #[arg(long, value_name = "FILE")]
    prometheus: Option<PathBuf>,
}

fn opt_secs(d: Option<Duration>) -> Option<u64> {
    d.map(|d| d.as_secs())
}

fn source_json(s: &SourceStatus) -> serde_json::Value {
    let drill = |d: &lifeboat::DrillSeen| {
        json!({"id": d.at.id.to_hex(), "time": d.at.time, "age_secs": d.at.age_secs, "ok": d.ok,
            "rto_secs": d.rto_secs, "snapshot": d.snapshot.to_hex()})
    };
    json!({
        "source": s.label(),
        "host": s.host, "paths": s.paths, "tags": s.tags,
        "name": s.name, "tier": s.tier,
        "rpo_secs": opt_secs(s.rpo), "rto_secs": opt_secs(s.rto),
        "drill_max_age_secs": opt_secs(s.drill_max_age),
        "snapshots": s.snapshots,
        "last_snapshot": s.last_snapshot.as_ref().map(|d| json!({
            "id": d.id.to_hex(), "time": d.time, "age_secs": d.age_secs})),
        "last_drill": s.last_drill.as_ref().map(drill),
        "last_successful_drill": s.last_good_drill.as_ref().map(drill),
        "stale": s.stale, "drill_problem": s.drill_problem, "problems": s.problems,
    })
}

fn age(secs: i64) -> String {
    if secs < 0 {
        return "future".into();
    }
    format_duration(Duration::from_secs(secs as u64))
}

/// Take the status; the exit code says whether every source is ready.
pub fn run(g: &Global, a: &StatusArgs) -> Result<u8> {
    let policy = match &a.policy {
        Some(p) => Some(Policy::load(p)?),
        None => None,
    };
    let repo = open::repository(g)?;
    let opts = StatusOptions {
        policy,
        max_age: a.max_age,
        drill_max_age: a.drill_max_age,
        group_by: a.group_by,
        now: jiff::Timestamp::now(),
    };
    let report = repo.status(&opts)?;
    if let Some(path) = &a.prometheus {
        report
            .write_prometheus(path)
            .with_context(|| format!("writing metrics to {}", path.display()))?;
    }
    let readiness = report.readiness();
    let r = &report.repository;
    if g.json {
        print_json(&json!({
            "message_type": "status",
            "time": report.now.to_string(),
            "readiness": readiness.name(),
            "exit_code": readiness.exit_code(),
            "sources": report.sources.iter().map(source_json).collect::<Vec<_>>(),
            "repository": {
                "location": r.location, "size_bytes": r.size_bytes, "packs": r.packs,
                "snapshots": r.snapshots, "drills": r.drills,
                "growth_24h_bytes": r.growth_24h_bytes, "growth_7d_bytes": r.growth_7d_bytes,
                "skipped": r.skipped,
            },
        }));
    } else if !g.quiet {
        println!(
            "{:<36} {:<8} {:>9} {:>7} {:>12} {:>14} {:<6}",
            "Source", "Tier", "Snapshot", "RPO", "Drill", "RTO", "Status"
        );
        for s in &report.sources {
            let snap = s
                .last_snapshot
                .as_ref()
                .map(|d| age(d.age_secs))
                .unwrap_or_else(|| "none".into());
            let drill = s
                .last_good_drill
                .as_ref()
                .map(|d| age(d.at.age_secs))
                .unwrap_or_else(|| "never".into());
            let rto = match (&s.last_good_drill, s.rto) {
                (Some(d), Some(t)) => format!("{:.1}s/{}", d.rto_secs, format_duration(t)),
                (Some(d), None) => format!("{:.1}s", d.rto_secs),
                (None, Some(t)) => format!("-/{}", format_duration(t)),
                (None, None) => "-".into(),
            };
            let state = if s.problems.is_empty() {
                "ok"
            } else {
                "NOT OK"
            };
            println!(
                "{:<36} {:<8} {:>9} {:>7} {:>12} {:>14} {:<6}",
                s.label(),
                s.tier.as_deref().unwrap_or("-"),
                snap,
                s.rpo.map(format_duration).unwrap_or_else(|| "-".into()),
                drill,
                rto,
                state
            );
            for p in &s.problems {
                println!("    {p}");
            }
        }
        println!(
            "repository {}: {} in {} packs, {} snapshots, {} drills; added {} in 24h, {} in 7d",
            r.location,
            bytes(r.size_bytes),
            r.packs,
            r.snapshots,
            r.drills,
            bytes(r.growth_24h_bytes),
            bytes(r.growth_7d_bytes)
        );
        println!("readiness: {}", readiness.name());
    }
    Ok(readiness.exit_code())
}
