//! The command line: the global options, one subcommand per command module,
//! and the dispatch to them.

use anyhow::Result;
use clap::{CommandFactory, Parser, Subcommand};

use crate::args::Global;
use crate::commands::{
    backup, cat, check, completions, copy, diff, dump, etcd, forget, index, init, key, ls, man,
    prune, repair, restore, snapshots, stats,
};
use crate::commands::{drill, status};

/// Lifeboat: deduplicating, encrypted backups of volumes, file trees and etcd.
#[derive(Debug, Parser)]
#[command(name = "lifeboat", version, about, long_about = None, max_term_width = 100)]
pub struct Cli {
    /// Global options.
    #[command(flatten)]
    pub global: Global,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init(init::InitArgs),
    /// Copy snapshots from another repository into this one, sending only the blobs it lacks.
    Copy(copy::CopyArgs),
    /// Back up files, directories or standard input.
    Backup(backup::BackupArgs),
    /// List snapshots.
    Snapshots(snapshots::SnapshotsArgs),
    /// List the files in a snapshot.
    Ls(ls::LsArgs),
    /// Print a repository object as JSON.
    Cat(cat::CatArgs),
    /// Back up and restore etcd snapshots.
    Etcd(etcd::EtcdArgs),
    /// Show the differences between two snapshots.
    Diff(diff::DiffArgs),
    /// Show sizes and counts.
    Stats(stats::StatsArgs),
    /// Restore a snapshot into a directory.
    Restore(restore::RestoreArgs),
    /// Write one file from a snapshot to standard output.
    Dump(dump::DumpArgs),
    /// Remove snapshots by retention policy or by id (their data stays until prune).
    Forget(forget::ForgetArgs),
    /// Delete the data no snapshot uses (safe while backups run: unused packs are marked first).
    Prune(prune::PruneArgs),
    /// Verify the repository's structure, and with --read-data every byte.
    #[command(after_help = check::AFTER_HELP)]
    Check(check::CheckArgs),
    /// Repair a damaged repository.
    Repair(repair::RepairArgs),
    /// Maintain the index: rebuild it from pack headers, or compact it.
    Index(index::IndexArgs),
    /// Manage the passwords (key slots) of the repository.
    Key(key::KeyArgs),
    /// Print a shell completion script.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff), generated from this definition.
    #[command(name = "generate-man")]
    GenerateMan,
    /// Prove snapshots restorable: restore into scratch space, verify, time, record.
    Drill(drill::DrillArgs),
    /// List the drill records: when each source was last proven restorable.
    Drills(drill::DrillsArgs),
    /// Recovery readiness per source: snapshot age against RPO, drills against RTO.
    #[command(after_help = status::AFTER_HELP)]
    Status(status::StatusArgs),
}

/// Run the parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Init(a) => init::run(g, a),
        Command::Copy(a) => copy::run(g, a),
        Command::Backup(a) => backup::run(g, a),
        Command::Snapshots(a) => snapshots::run(g, a),
        Command::Ls(a) => ls::run(g, a),
        Command::Cat(a) => cat::run(g, a),
        Command::Etcd(a) => etcd::run(g, a),
        Command::Diff(a) => diff::run(g, a),
        Command::Stats(a) => stats::run(g, a),
        Command::Restore(a) => restore::run(g, a),
        Command::Dump(a) => dump::run(g, a),
        Command::Forget(a) => forget::run(g, a),
        Command::Prune(a) => prune::run(g, a),
        Command::Check(a) => check::run(g, a),
        Command::Repair(a) => repair::run(g, a),
        Command::Index(a) => index::run(g, a),
        Command::Key(a) => key::run(g, a),
        Command::Completions(a) => completions::run(a, Cli::command()),
        Command::GenerateMan => man::run(Cli::command()),
        Command::Drill(a) => drill::run(g, a),
        Command::Drills(a) => drill::run_list(g, a),
        Command::Status(a) => status::run(g, a),
    }
}
