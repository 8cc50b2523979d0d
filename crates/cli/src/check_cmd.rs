//! `lifeboat check` and `lifeboat repair snapshots`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat_check::{
    Category, CheckOptions, CheckProgress, CheckReport, Problem, RepairOptions, Resume, Severity,
    Subset, Verdict,
};
use serde_json::json;

use crate::args::Global;
use crate::exit;
use crate::output::{bytes, print_json};

/// Shown by `lifeboat check --help`.
pub const CHECK_AFTER_HELP: &str = "\
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
    pub read_data: bool,
    /// Read only a subset of the packs: group n of m (`2/7`), a percentage
    /// chosen at random (`5%`), or packs up to a total size (`5G`).
    #[arg(
        long,
        value_name = "n/m|x%|SIZE",
        value_parser = Subset::parse,
        conflicts_with = "read_data"
    )]
    pub read_data_subset: Option<Subset>,
    /// Resumable: read only packs last verified longer ago than this
    /// (`30d`, `12h`; units s, m, h, d, w), or never.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "read_data", conflicts_with = "read_data_subset")]
    pub max_age: Option<Duration>,
    /// Resumable: start no new pack after this long (`1h`, `30m`). At least
    /// one pack is read per run.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "read_data", conflicts_with = "read_data_subset")]
    pub max_duration: Option<Duration>,
    /// Resumable: read at most this many packs.
    #[arg(
        long,
        value_name = "N",
        requires = "read_data",
        conflicts_with = "read_data_subset"
    )]
    pub max_packs: Option<u64>,
    /// Packs to download at once (default: from the number of CPUs, 2 to 8).
    #[arg(long, value_name = "N", default_value_t = 0, hide_default_value = true)]
    pub read_concurrency: usize,
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

/// Exit code for a finished check.
fn verdict_code(v: Verdict) -> u8 {
    match v {
        Verdict::Clean => exit::OK,
        Verdict::Incomplete => exit::INCOMPLETE,
        Verdict::Damaged => exit::DAMAGE,
    }
}

/// Turn a check error into one whose cause `main` maps to an exit code.
fn lift(e: lifeboat_check::Error) -> anyhow::Error {
    match e {
        lifeboat_check::Error::Core(c) => c.into(),
        lifeboat_check::Error::Interrupted => lifeboat::Error::Interrupted.into(),
        e => e.into(),
    }
}

/// Shows the data pass's progress on a terminal.
struct Reporter {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Reporter {
    fn start(progress: Arc<CheckProgress>, g: &Global) -> Reporter {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = (!g.quiet && !g.json && std::io::stderr().is_terminal()).then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut shown = false;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    if t0.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    let p = &progress;
                    let (n, total) = (
                        p.packs_done.load(Ordering::Relaxed),
                        p.packs_total.load(Ordering::Relaxed),
                    );
                    let (b, bt) = (
                        p.bytes_done.load(Ordering::Relaxed),
                        p.bytes_total.load(Ordering::Relaxed),
                    );
                    let secs = t0.elapsed().as_secs_f64();
                    eprint!(
                        "\r\x1b[K[{secs:>4.0}s] check: {n}/{total} packs, {} of {}, {}/s, {} trees",
                        bytes(b),
                        bytes(bt),
                        bytes((b as f64 / secs) as u64),
                        p.trees_done.load(Ordering::Relaxed)
                    );
                    shown = true;
                }
                if shown {
                    eprint!("\r\x1b[K");
                }
            })
        });
        Reporter { stop, handle }
    }

    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
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

/// `lifeboat check`.
pub fn check(g: &Global, a: &CheckArgs) -> Result<u8> {
    let repo = crate::commands::open_repo(g)?;
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
    let reporter = Reporter::start(progress.clone(), g);
    let res = lifeboat_check::check(&repo, &opts, &progress);
    reporter.finish();
    let report = res.map_err(lift)?;
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

/// `lifeboat repair ...`.
pub fn repair(g: &Global, command: &RepairCommand) -> Result<u8> {
    let RepairCommand::Snapshots {
        forget_damaged,
        read_data,
    } = command;
    let repo = crate::commands::open_repo(g)?;
    let opts = RepairOptions {
        forget_damaged: *forget_damaged,
        read_data: *read_data,
    };
    let progress = Arc::new(CheckProgress::default());
    let reporter = Reporter::start(progress.clone(), g);
    let res = lifeboat_check::repair_snapshots(&repo, &opts, &progress);
    reporter.finish();
    let report = res.map_err(lift)?;
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
