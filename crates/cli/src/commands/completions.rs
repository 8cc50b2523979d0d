//! `lifeboat completions`.

use anyhow::Result;
use clap::{Args, ValueEnum};

use crate::exit;

/// Options of `lifeboat completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// Shells for completions.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Shell {
    /// bash
    Bash,
    /// zsh
    Zsh,
    /// fish
    Fish,
}

/// Print the completion script for the command line `cli`.
pub fn run(a: &CompletionsArgs, mut cli: clap::Command) -> Result<u8> {
    let shell = match a.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cli, "lifeboat", &mut std::io::stdout());
    Ok(exit::OK)
}
