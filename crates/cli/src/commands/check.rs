//! `lifeboat check`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use clap::Args;
use lifeboat::{
    Category, CheckOptions, CheckProgress, CheckReport, Problem, Resume, Severity, Subset, Verdict,
};
use serde_json::json;

use crate::args::Global;
use crate::output::{bytes, print_json};
use crate::{exit, open, progress};

/// Shown by `lifeboat check --help`.
pub const AFTER_HELP: &str = "\
Exit codes:
  0   no damage found (notices such as orphan packs may be listed)
  1   could not check (bad arguments, the store failed, the repository cannot be opened)
  3   no damage found, but some objects could not be read because the store failed
  4   damage found
  10  no repository at the location
  12  wrong password

Resumable verification: with --max-age, --max-duration or --max-packs, --read-data
reads the packs verified longest ago (never-verified first) and records what it
verified in an encrypted record under verify/ in the repository. A weekly job such as
`lifeboat check --read-data --max-age 30d --max-duration 1h` covers the whole
repository over successive runs without rereading fresh packs.

Categories and what to do about each: docs/check.md.";

/// Options of `lifeboat check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Download every pack and verify every byte: the pack's hash, its
    /// header against the index, every blob decrypted and re-hashed.
    #[arg(long)]
    read_data: bool,
    /// Read only a subset of the packs: group n of m (`2/7`), a percentage
    /// chosen at random (`5%`), or packs up to a total size (`5G`).
    #[arg(
        long,
        value_name = "n/m|x%|SIZE",
        value_parser = |s: &str| s.parse::<Subset>(),
        conflicts_with = "read_data"
    )]
    read_data_subset: Option<Subset>,
    /// Resumable: read only packs last verified longer ago than this
    /// (`30d`, `12h`; units s, m, h, d, w), or never.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "read_data", conflicts_with = "read_data_subset")]
    max_age: Option<Duration>,
    /// Resumable: start no new pack after this long (`1h`, `30m`). At least
    /// one pack is read per run.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "read_data", conflicts_with = "read_data_subset")]
    max_duration: Option<Duration>,
    /// Resumable: read at most this many packs.
    #[arg(
        long,
        value_name = "N",
        requires = "read_data",
        conflicts_with = "read_data_subset"
    )]
    max_packs: Option<u64>,
    /// Packs to download at once (default: from the number of CPUs, 2 to 8).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub read_concurrency: usize,
}

/// Exit code for a finished check.
fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Clean => exit::OK,
        Verdict::Incomplete => exit::INCOMPLETE,
        Verdict::Damaged => exit::DAMAGE,
    }
}

fn problem_text(p: &Problem) -> String {
    let mut s = format!("    {}: {}", p.object, p.message);
    if !p.snapshots.is_empty() {
        let names: Vec<String> = p
            .snapshots
            .iter()
            .map(|s| s[..8.min(s.len())].to_string())
            .collect();
        s.push_str(&format!("\n      snapshots: {}", names.join(", ")));
    }
    s
}

fn print_report(r: &CheckReport, code: u8) {
    for (sev, title) in [
        (Severity::Damage, "damage found:"),
        (Severity::Notice, "notices:"),
    ] {
        let ps: Vec<&Problem> = r.problems.iter().filter(|p| p.severity == sev).collect();
        if ps.is_empty() {
            continue;
        }
        println!("{title}");
        let mut cats: Vec<Category> = ps.iter().map(|p| p.category).collect();
        cats.dedup();
        for c in cats {
            let of: Vec<&&Problem> = ps.iter().filter(|p| p.category == c).collect();
            println!("  {} ({}): {}", c.name(), of.len(), c.description());
            for p in of {
                println!("{}", problem_text(p));
            }
        }
    }
    if !r.damaged_snapshots.is_empty() {
        println!(
            "damaged snapshots (cannot be restored completely): {}",
            r.damaged_snapshots.join(", ")
        );
    }
    for w in &r.warnings {
        println!("warning: {w}");
    }
    for u in &r.unchecked {
        println!("could not check: {u}");
    }
    println!(
        "checked {} key slots, {} snapshots ({} trees), {} packs, {} index segments",
        r.keys, r.snapshots, r.trees, r.packs, r.index_segments
    );
    if let Some(d) = &r.data {
        let rate = d.bytes_read as f64 / d.seconds.max(1e-6);
        println!(
            "read {} of {} selected packs ({}, {} blobs) in {:.2} s, {}/s",
            d.packs_read,
            d.packs_selected,
            bytes(d.bytes_read),
            d.blobs_read,
            d.seconds,
            bytes(rate as u64)
        );
        if d.record.is_some() || d.packs_fresh > 0 || d.packs_left > 0 {
            println!(
                "resumable: {} packs verified recently and skipped, {} left for later runs",
                d.packs_fresh, d.packs_left
            );
        }
    }
    let verdict = match code {
        exit::OK if r.problems.is_empty() => "no errors".to_string(),
        exit::OK => format!("no damage ({} notices)", r.problems.len()),
        exit::INCOMPLETE => "no damage found, but the check is incomplete".to_string(),
        _ => format!(
            "{} problems, {} damaged snapshots",
            r.problems
                .iter()
                .filter(|p| p.severity == Severity::Damage)
                .count(),
            r.damaged_snapshots.len()
        ),
    };
    println!("{verdict}");
}

/// Check and print the report; the exit code says what was found.
pub fn run(g: &Global, a: &CheckArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let resume = (a.max_age.is_some() || a.max_duration.is_some() || a.max_packs.is_some())
        .then_some(Resume {
            max_age: a.max_age,
            max_duration: a.max_duration,
            max_packs: a.max_packs,
        });
    let opts = CheckOptions {
        read_data: a.read_data || a.read_data_subset.is_some(),
        subset: a.read_data_subset.unwrap_or_default(),
        resume,
        read_concurrency: a.read_concurrency,
    };
    let progress = Arc::new(CheckProgress::default());
    let display = progress::check(progress.clone(), g);
    let res = repo.check(&opts, &progress);
    display.finish();
    let report = res?;
    let code = verdict_code(report.verdict());
    if g.json {
        let mut v = serde_json::to_value(&report)?;
        v["message_type"] = json!("check");
        v["verdict"] = json!(report.verdict());
        v["exit_code"] = json!(code);
        print_json(&v);
    } else if !(g.quiet && code == exit::OK) {
        print_report(&report, code);
    }
    Ok(code)
}
