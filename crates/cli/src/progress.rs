//! Progress while an operation runs: an `indicatif` bar on a terminal, JSON
//! status lines with `--json` (where the command has them), nothing with
//! `--quiet` or when stderr is not a terminal.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use lifeboat::{CheckProgress, IndexProgress, Progress, PruneProgress};
use serde_json::json;

use crate::args::Global;
use crate::output::print_json;

/// How often the counters are read.
const POLL: Duration = Duration::from_millis(100);
/// How often a JSON status line is printed.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// A thread that shows an operation's counters until [`Display::finish`].
pub struct Display {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Display {
    fn hidden() -> Display {
        Display {
            stop: Arc::new(AtomicBool::new(false)),
            handle: None,
        }
    }

    /// Calls `tick` with the time since the start every [`POLL`], then `end`.
    fn spawn(
        mut tick: impl FnMut(Duration) + Send + 'static,
        end: impl FnOnce() + Send + 'static,
    ) -> Display {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            while !stopped.load(Ordering::Relaxed) {
                std::thread::sleep(POLL);
                tick(t0.elapsed());
            }
            end();
        });
        Display {
            stop,
            handle: Some(handle),
        }
    }

    /// Stop showing progress (and clear the bar) before the result is printed.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Whether a bar can be drawn: progress is wanted and stderr is a terminal.
fn terminal(g: &Global) -> bool {
    !g.quiet && !g.json && std::io::stderr().is_terminal()
}

/// A bar on stderr drawn with `template`.
fn bar(template: &str, len: Option<u64>, prefix: &'static str) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb.set_prefix(prefix);
    pb
}

/// Says when the next JSON status line is due.
struct StatusClock {
    last: Duration,
}

impl StatusClock {
    fn due(&mut self, elapsed: Duration) -> bool {
        if elapsed - self.last < STATUS_EVERY {
            return false;
        }
        self.last = elapsed;
        true
    }
}

/// Backup, restore and copy: files and bytes done, against `total` bytes
/// when known.
pub fn transfer(
    progress: Arc<Progress>,
    verb: &'static str,
    g: &Global,
    total: Option<u64>,
) -> Display {
    if g.json && !g.quiet {
        let mut clock = StatusClock {
            last: Duration::ZERO,
        };
        return Display::spawn(
            move |elapsed| {
                if !clock.due(elapsed) {
                    return;
                }
                let secs = elapsed.as_secs_f64();
                let b = progress.bytes.load(Ordering::Relaxed);
                let mut v = json!({"message_type": "status", "action": verb, "seconds_elapsed": secs,
                    "files_done": progress.files.load(Ordering::Relaxed), "bytes_done": b,
                    "errors": progress.errors.load(Ordering::Relaxed),
                    "bytes_per_second": b as f64 / secs.max(0.001)});
                if let Some(t) = total {
                    v["total_bytes"] = json!(t);
                    v["percent_done"] = json!(if t > 0 { b as f64 / t as f64 } else { 1.0 });
                }
                print_json(&v);
            },
            || {},
        );
    }
    if !terminal(g) {
        return Display::hidden();
    }
    let template = if total.is_some() {
        "[{elapsed_precise}] {prefix}: {binary_bytes}/{binary_total_bytes} {wide_bar} \
         {binary_bytes_per_sec}, ETA {eta}, {msg}"
    } else {
        "[{elapsed_precise}] {prefix}: {binary_bytes}, {binary_bytes_per_sec}, {msg}"
    };
    let pb = bar(template, total, verb);
    let done = pb.clone();
    Display::spawn(
        move |_| {
            pb.set_position(progress.bytes.load(Ordering::Relaxed));
            pb.set_message(format!(
                "{} files, {} errors",
                progress.files.load(Ordering::Relaxed),
                progress.errors.load(Ordering::Relaxed)
            ));
        },
        move || done.finish_and_clear(),
    )
}

/// Check and repair: packs and bytes read, trees walked. Only on a
/// terminal, and only once the check has run for a second.
pub fn check(progress: Arc<CheckProgress>, g: &Global) -> Display {
    if !terminal(g) {
        return Display::hidden();
    }
    let pb = bar(
        "[{elapsed_precise}] check: {binary_bytes}/{binary_total_bytes}, \
         {binary_bytes_per_sec}, {msg}",
        Some(0),
        "check",
    );
    pb.set_draw_target(ProgressDrawTarget::hidden());
    let done = pb.clone();
    Display::spawn(
        move |elapsed| {
            if elapsed < Duration::from_secs(1) {
                return;
            }
            if pb.is_hidden() {
                pb.set_draw_target(ProgressDrawTarget::stderr());
            }
            let p = &progress;
            pb.set_length(p.bytes_total.load(Ordering::Relaxed));
            pb.set_position(p.bytes_done.load(Ordering::Relaxed));
            pb.set_message(format!(
                "{}/{} packs, {} trees",
                p.packs_done.load(Ordering::Relaxed),
                p.packs_total.load(Ordering::Relaxed),
                p.trees_done.load(Ordering::Relaxed)
            ));
        },
        move || done.finish_and_clear(),
    )
}

/// Index rebuild and compact: `done/total` of `unit`, as a bar on a
/// terminal or as JSON status lines.
pub fn index(
    progress: Arc<IndexProgress>,
    action: &'static str,
    unit: &'static str,
    g: &Global,
) -> Display {
    if g.json && !g.quiet {
        let mut clock = StatusClock {
            last: Duration::ZERO,
        };
        return Display::spawn(
            move |elapsed| {
                if clock.due(elapsed) {
                    print_json(&json!({"message_type": "status", "action": action,
                        "seconds_elapsed": elapsed.as_secs_f64(),
                        "done": progress.done.load(Ordering::Relaxed),
                        "total": progress.total.load(Ordering::Relaxed), "unit": unit}));
                }
            },
            || {},
        );
    }
    if !terminal(g) {
        return Display::hidden();
    }
    let pb = bar(
        "[{elapsed_precise}] {prefix}: {pos}/{len} {msg}",
        Some(0),
        action,
    );
    pb.set_message(unit);
    let done = pb.clone();
    Display::spawn(
        move |_| {
            pb.set_length(progress.total.load(Ordering::Relaxed));
            pb.set_position(progress.done.load(Ordering::Relaxed));
        },
        move || done.finish_and_clear(),
    )
}

/// Prune: snapshots walked, then packs repacked and objects deleted. Only
/// on a terminal.
pub fn prune(progress: Arc<PruneProgress>, g: &Global) -> Display {
    if !terminal(g) {
        return Display::hidden();
    }
    let pb = bar("[{elapsed_precise}] {prefix}: {msg}", None, "prune");
    let done = pb.clone();
    Display::spawn(
        move |_| {
            let p = &progress;
            pb.set_message(format!(
                "{}/{} snapshots, {} trees, {} packs repacked, {} objects deleted",
                p.snapshots_done.load(Ordering::Relaxed),
                p.snapshots_total.load(Ordering::Relaxed),
                p.trees_done.load(Ordering::Relaxed),
                p.packs_repacked.load(Ordering::Relaxed),
                p.objects_deleted.load(Ordering::Relaxed)
            ));
            pb.tick();
        },
        move || done.finish_and_clear(),
    )
}
