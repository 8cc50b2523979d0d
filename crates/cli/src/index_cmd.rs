//! `lifeboat index rebuild|compact`.

use lifeboat_core::internals::RepositoryInternals as _;
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use clap::Subcommand;
use lifeboat::Repository;
use lifeboat_index::{CompactOptions, IndexProgress, RebuildOptions};
use serde_json::json;

use crate::args::Global;
use crate::exit;
use crate::output::print_json;
use crate::password;

/// Index maintenance commands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Rebuild the index from the pack headers, for when index segments are
    /// lost or damaged. Reads only the end of each pack.
    Rebuild {
        /// Pack headers read at once.
        #[arg(long, default_value_t = 16, value_name = "N")]
        read_concurrency: usize,
    },
    /// Merge small index segments into larger ones and delete the merged
    /// ones. Safe while backups run.
    Compact {
        /// Blobs per new segment; segments with at least half as many are kept.
        #[arg(long, default_value_t = 65536, value_name = "N")]
        target_blobs: usize,
    },
}

/// Prints `done/total` every second while an index operation runs: on a
/// terminal as a one-line counter, with `--json` as status lines.
struct Reporter {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Reporter {
    fn start(p: Arc<IndexProgress>, action: &'static str, unit: &'static str, g: &Global) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let json = g.json;
        let show = !g.quiet && (json || std::io::stderr().is_terminal());
        let handle = show.then(|| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut last = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    last = Instant::now();
                    let done = p.done.load(Ordering::Relaxed);
                    let total = p.total.load(Ordering::Relaxed);
                    let secs = t0.elapsed().as_secs_f64();
                    if json {
                        print_json(&json!({"message_type": "status", "action": action,
                            "seconds_elapsed": secs, "done": done, "total": total, "unit": unit}));
                    } else {
                        eprint!("\r[{secs:>4.0}s] {action}: {done}/{total} {unit}   ");
                    }
                }
                if !json {
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

fn open(g: &Global) -> Result<Repository> {
    let loc = g
        .repo
        .clone()
        .ok_or_else(|| anyhow!("no repository given: use -r/--repo or set LIFEBOAT_REPOSITORY"))?;
    let backend = lifeboat::open_location(&loc, false)?;
    let pw = password::get(g)?;
    Ok(Repository::open_without_index(backend, &pw)?)
}

/// Run an index command; returns the exit code.
pub fn run(g: &Global, command: &IndexCommand) -> Result<u8> {
    let repo = open(g)?;
    let progress = Arc::new(IndexProgress::default());
    match command {
        IndexCommand::Rebuild { read_concurrency } => {
            let opts = RebuildOptions {
                read_concurrency: (*read_concurrency).max(1),
                ..RebuildOptions::default()
            };
            let rep = Reporter::start(progress.clone(), "index rebuild", "packs", g);
            let r = lifeboat_index::rebuild(repo.backend(), repo.master_key(), &opts, &progress);
            rep.finish();
            let r = r?;
            if g.json {
                print_json(&json!({
                    "message_type": "index_rebuild",
                    "packs_listed": r.packs_listed,
                    "packs_indexed": r.packs_indexed,
                    "blobs": r.blobs,
                    "segments_written": r.written.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "segments_superseded": r.superseded.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "junk_removed": r.junk,
                    "delete_errors": r.delete_errors.iter()
                        .map(|(p, e)| json!({"path": p, "error": e.to_string()})).collect::<Vec<_>>(),
                    "unreadable_packs": r.unreadable.iter()
                        .map(|u| json!({"path": u.path, "error": u.reason.to_string()})).collect::<Vec<_>>(),
                }));
            } else {
                for u in &r.unreadable {
                    eprintln!(
                        "lifeboat: warning: {}: {} (its blobs are not indexed)",
                        u.path, u.reason
                    );
                }
                for (p, e) in &r.delete_errors {
                    eprintln!("lifeboat: warning: could not delete {p}: {e}");
                }
                if !g.quiet {
                    println!(
                        "indexed {} blobs in {} of {} packs: wrote {} segments, superseded {}",
                        r.blobs,
                        r.packs_indexed,
                        r.packs_listed,
                        r.written.len(),
                        r.superseded.len()
                    );
                }
            }
            Ok(if r.unreadable.is_empty() {
                exit::OK
            } else {
                exit::ERROR
            })
        }
        IndexCommand::Compact { target_blobs } => {
            let opts = CompactOptions {
                target_blobs: (*target_blobs).max(1),
                ..CompactOptions::default()
            };
            let rep = Reporter::start(progress.clone(), "index compact", "segments", g);
            let r = lifeboat_index::compact(repo.backend(), repo.master_key(), &opts, &progress);
            rep.finish();
            let r = r?;
            if g.json {
                print_json(&json!({
                    "message_type": "index_compact",
                    "segments_listed": r.segments_listed,
                    "segments_merged": r.segments_merged,
                    "segments_kept": r.segments_kept,
                    "segments_written": r.written.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "segments_deleted": r.deleted.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "delete_errors": r.delete_errors.iter()
                        .map(|(i, e)| json!({"segment": i.to_hex(), "error": e.to_string()})).collect::<Vec<_>>(),
                    "packs": r.packs,
                    "blobs": r.blobs,
                }));
            } else {
                for (i, e) in &r.delete_errors {
                    eprintln!("lifeboat: warning: could not delete index/{i}: {e}");
                }
                if !g.quiet {
                    if r.written.is_empty() && r.deleted.is_empty() {
                        println!(
                            "nothing to compact: {} segments, none small enough to merge",
                            r.segments_listed
                        );
                    } else {
                        println!(
                            "merged {} segments ({} packs, {} blobs) into {}, deleted {}, kept {}",
                            r.segments_merged,
                            r.packs,
                            r.blobs,
                            r.written.len(),
                            r.deleted.len(),
                            r.segments_kept
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
    }
}
