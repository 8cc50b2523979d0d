//! `lifeboat-mover`: the program a Kubernetes Job runs to back up or
//! restore a volume, a block device or etcd, in the manner of VolSync's
//! restic mover and with its environment variables. The ops are named as
//! arguments and run in order (`lifeboat-mover unlock backup forget`); the
//! first failure stops the run. Every op goes through the `lifeboat`
//! facade crate. `docs/mover.md` is the manual: ops, variables, exit codes,
//! metrics.

mod error;
mod metrics;
mod ops;
mod retention;
mod settings;
mod swap;
mod tls;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use error::{Failure, OK, USAGE};
use metrics::{OpRecord, RunRecord};
use ops::{Mover, Outcome};
use settings::{Settings, SourceKind, var};

const USAGE_TEXT: &str = "usage: lifeboat-mover OP...
ops, run in order; the first failure stops the run:
  init     create the repository if there is none
  unlock   remove expired prune locks (all of them with MOVER_UNLOCK_FORCE=true)
  backup   back up DATA_DIR, BLOCK_DEVICE or etcd (ETCDCTL_ENDPOINTS); creates the repository
  forget   apply FORGET_OPTIONS / MOVER_KEEP_* (no policy: forget nothing)
  prune    delete data no snapshot uses
  restore  restore the newest snapshot (RESTORE_AS_OF, SELECT_PREVIOUS); never creates a repository
  check    verify the repository (MOVER_CHECK_READ_DATA=10% reads a share of the data)
settings come from the environment (RESTIC_REPOSITORY, RESTIC_PASSWORD, DATA_DIR, ...);
see docs/mover.md";

const OPS: &[&str] = &[
    "init", "unlock", "backup", "forget", "prune", "restore", "check",
];

fn log(msg: impl std::fmt::Display) {
    eprintln!("lifeboat-mover: {msg}");
}

fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// On SIGTERM or SIGINT: ask the running op to stop (backup and restore
/// stop without writing a snapshot or touching the volume). Prune cannot
/// be asked; it is safe to stop anywhere, so the process exits at once
/// and its lock expires after `MOVER_PRUNE_LOCK_TTL`.
fn watch_signals(mover: &Mover, in_prune: Arc<AtomicBool>) -> Result<(), Failure> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .map_err(|e| Failure::config(format!("installing the signal handler: {e}")))?;
    let progress = mover.progress.clone();
    let check = mover.check_progress.clone();
    let stop = mover.stop.clone();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            log(format!("signal {sig}: stopping"));
            stop.store(true, Ordering::SeqCst);
            progress.cancel.store(true, Ordering::SeqCst);
            check.cancel.store(true, Ordering::SeqCst);
            if in_prune.load(Ordering::SeqCst) {
                println!(
                    "MOVER_RESULT {{\"exit_code\":130,\"error\":\"interrupted during prune\"}}"
                );
                std::process::exit(i32::from(error::INTERRUPTED));
            }
        }
    });
    Ok(())
}

fn source_name(s: &Settings) -> &'static str {
    match s.source {
        SourceKind::Fs => "fs",
        SourceKind::Block => "block",
        SourceKind::Etcd => "etcd",
    }
}

/// Kubernetes shows this file's content as the container's termination
/// message (at most 4 KiB); written only where the file exists.
fn termination_message(text: &str) {
    let path = "/dev/termination-log";
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
    {
        use std::io::Write as _;
        let bytes = text.as_bytes();
        let _ = f.write_all(&bytes[..bytes.len().min(4096)]);
    }
}

fn run(ops: &[String]) -> u8 {
    if let Err(f) = tls::apply_custom_ca() {
        log(&f);
        return f.code;
    }
    let started = now_unix();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(f) => {
            log(&f);
            let record = RunRecord {
                exit_code: f.code,
                error: Some(f.message),
                ..Default::default()
            };
            println!("{}", record.result_line());
            return record.exit_code;
        }
    };
    let record = RunRecord {
        name: var("MOVER_NAME").unwrap_or_else(|| settings.host.clone()),
        source: source_name(&settings).into(),
        started: started as i64,
        ..Default::default()
    };
    let metrics_file = settings.metrics_file.clone();
    let mut mover = Mover::new(settings, record);
    let in_prune = Arc::new(AtomicBool::new(false));
    let mut failure: Option<Failure> = None;
    if let Err(f) = watch_signals(&mover, in_prune.clone()) {
        failure = Some(f);
    }
    for op in ops {
        if failure.is_some() {
            break;
        }
        if mover.stop.load(Ordering::SeqCst) {
            failure = Some(Failure::new(error::INTERRUPTED, "interrupted"));
            break;
        }
        log(format!("{op}: starting"));
        in_prune.store(op == "prune", Ordering::SeqCst);
        let t = Instant::now();
        let result = mover.run_op(op);
        in_prune.store(false, Ordering::SeqCst);
        let seconds = t.elapsed().as_secs_f64();
        let (result, detail) = match result {
            Ok(Outcome::Done(d)) => ("ok", d),
            Ok(Outcome::Skipped(d)) => ("skipped", d),
            Ok(Outcome::Warning(d)) => ("warning", d),
            Err(f) => {
                let d = f.message.clone();
                failure = Some(f);
                ("failed", d)
            }
        };
        log(format!("{op}: {result} in {seconds:.1}s: {detail}"));
        mover.record.ops.push(OpRecord {
            op: op.clone(),
            result,
            seconds,
            detail: Some(detail),
        });
    }
    let code = match &failure {
        Some(f) => f.code,
        None => mover.deferred_code.unwrap_or(OK),
    };
    mover.record.exit_code = code;
    mover.record.error = failure.map(|f| f.message);
    let line = mover.record.result_line();
    println!("{line}");
    termination_message(&line);
    if let Some(path) = metrics_file {
        if let Err(e) = mover.record.write_textfile(&path, now_unix(), code == OK) {
            log(format!("writing the metrics file {}: {e}", path.display()));
        }
    }
    code
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty()
        || args
            .iter()
            .any(|a| a == "-h" || a == "--help" || a == "help")
    {
        println!("{USAGE_TEXT}");
        return ExitCode::from(if args.is_empty() { USAGE } else { OK });
    }
    if args.iter().any(|a| a == "--version" || a == "-V") {
        println!("lifeboat-mover {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if let Some(bad) = args.iter().find(|a| !OPS.contains(&a.as_str())) {
        log(format!("unknown op {bad:?}\n{USAGE_TEXT}"));
        return ExitCode::from(USAGE);
    }
    ExitCode::from(run(&args))
}
