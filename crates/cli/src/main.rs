//! The `lifeboat` command-line program.

mod args;
mod commands;
mod copy_cmd;
mod output;
mod password;

use std::process::ExitCode;

use clap::Parser;

/// Exit codes, as restic's.
pub(crate) mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any failure.
    pub const ERROR: u8 = 1;
    /// Backup finished but some entries could not be read.
    pub const INCOMPLETE: u8 = 3;
    /// No repository at the location.
    pub const NO_REPOSITORY: u8 = 10;
    /// The password opened no key.
    pub const WRONG_PASSWORD: u8 = 12;
    /// Stopped by a signal.
    pub const INTERRUPTED: u8 = 130;
}

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

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    match commands::run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("lifeboat: error: {}", message(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}
