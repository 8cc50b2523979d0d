//! The `lifeboat` command-line program: argument parsing (one module per
//! command under `commands/`) and printing over the `lifeboat` facade. It
//! holds no engine logic; what it cannot do through the facade it does
//! through the facade's `internals` (raw objects for `cat`).

mod args;
mod cli;
mod commands;
mod exit;
mod open;
mod output;
mod password;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn exit_code(e: &anyhow::Error) -> u8 {
    for cause in e.chain() {
        if let Some(err) = cause.downcast_ref::<lifeboat::Error>() {
            return match err {
                lifeboat::Error::RepositoryNotFound { .. } => exit::NO_REPOSITORY,
                lifeboat::Error::WrongPassword => exit::WRONG_PASSWORD,
                lifeboat::Error::Interrupted => exit::INTERRUPTED,
                _ => exit::ERROR,
            };
        }
    }
    exit::ERROR
}

/// The error and its causes, `: `-separated like `{e:#}`, but without a
/// cause whose text the level above already ends with (errors such as
/// `Error::Io` print their source and also return it from `source()`).
fn message(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut prev = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !prev.ends_with(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
        prev = s;
    }
    out
}

/// Allocations of at least this size are mapped and unmapped directly.
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: libc::c_int = 4 << 20;

/// Free memory an arena keeps instead of returning it to the system.
/// glibc's default (128 KiB) hands back the top of the heap after almost
/// every blob, and the next blob faults the same pages in again. 4 MiB
/// keeps a few blobs' worth per arena. (32 MiB, tried first, held up to
/// 32 MiB in each of the half-dozen arenas: 266 MB peak on a backup of
/// 2 GiB of mixed files.)
#[cfg(target_env = "gnu")]
const TRIM_THRESHOLD: libc::c_int = 4 << 20;

/// Have glibc map big buffers (packs, read windows: 4 MiB and up) and give
/// them back when freed. By default glibc raises its mapping threshold to
/// the largest block freed (up to 32 MiB), after which 16 MiB packs and
/// windows come from per-thread arenas and stay resident after use. With
/// many threads handing such buffers to each other that cost 40-60 MiB of
/// peak memory on a backup (docs/benchmarks.md, "Peak memory").
#[cfg(target_env = "gnu")]
#[allow(unsafe_code)]
fn tune_allocator() {
    // SAFETY: mallopt only sets a tuning parameter of the C allocator; it
    // is called once, before any other thread exists, and its arguments
    // are a valid option and value. Its result (0 on failure) is ignored:
    // a failure leaves glibc's defaults, which are correct, only larger.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Other C libraries (musl) have no such knob.
#[cfg(not(target_env = "gnu"))]
fn tune_allocator() {}

fn main() -> ExitCode {
    tune_allocator();
    match cli::run(cli::Cli::parse()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lifeboat: error: {}", message(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}
