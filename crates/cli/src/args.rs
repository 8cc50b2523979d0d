//! Command-line definition. Verbs, flags and variables follow restic.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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

/// Options for every command.
#[derive(Debug, Args)]
pub struct Global {
    /// Repository location: a directory, file:///dir, s3://bucket/prefix, gs://bucket/prefix,
    /// az://container/prefix, or memory:// (tests only). See docs/storage.md.
    #[arg(short = 'r', long = "repo", env = "LIFEBOAT_REPOSITORY", global = true)]
    pub repo: Option<String>,
    /// Cache metadata of remote repositories here (default: $XDG_CACHE_HOME/lifeboat or
    /// ~/.cache/lifeboat; given explicitly, local repositories are cached too).
    #[arg(long, env = "LIFEBOAT_CACHE_DIR", global = true, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Use no local metadata cache (overrides --cache-dir).
    #[arg(long, global = true)]
    pub no_cache: bool,
    /// Read the password from this file (first line).
    #[arg(long, env = "LIFEBOAT_PASSWORD_FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the password.
    #[arg(long, env = "LIFEBOAT_PASSWORD_COMMAND", global = true)]
    pub password_command: Option<String>,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Print less: no progress, no summaries on success.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Choose among snapshots.
#[derive(Debug, Args, Clone, Default)]
pub struct SnapshotFilterArgs {
    /// Only snapshots from this host (repeatable).
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    /// Only snapshots that include this path (repeatable).
    #[arg(long = "path", value_name = "PATH")]
    pub paths: Vec<String>,
    /// Only snapshots with these tags, comma-separated for "all of"; repeat for "any of".
    #[arg(long = "tag", value_name = "TAG[,TAG]")]
    pub tags: Vec<String>,
}

/// A second repository to read from (`copy`, `init --copy-params`).
#[derive(Debug, Args, Clone, Default)]
pub struct FromRepoArgs {
    /// Source repository location.
    #[arg(long, env = "LIFEBOAT_FROM_REPOSITORY", value_name = "URL")]
    pub from_repo: Option<String>,
    /// Read the source repository's password from this file (or set LIFEBOAT_FROM_PASSWORD).
    #[arg(long, env = "LIFEBOAT_FROM_PASSWORD_FILE", value_name = "FILE")]
    pub from_password_file: Option<PathBuf>,
    /// Run this shell command and use its output as the source repository's password.
    #[arg(long, env = "LIFEBOAT_FROM_PASSWORD_COMMAND", value_name = "COMMAND")]
    pub from_password_command: Option<String>,
}

/// argon2id costs for a new key slot.
#[derive(Debug, Args, Clone)]
pub struct KdfArgs {
    /// argon2id memory in KiB.
    #[arg(long, default_value_t = 65536, value_name = "KIB")]
    pub kdf_memory_kib: u32,
    /// argon2id passes.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub kdf_iterations: u32,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new repository.
    Init {
        /// Key derivation costs.
        #[command(flatten)]
        kdf: KdfArgs,
        /// zstd level for new data, 0 to disable compression. The default,
        /// 1, makes repositories about 4% larger than restic's on real
        /// trees and backs up 9% faster than level 2, which matches
        /// restic's size (docs/benchmarks.md).
        #[arg(long, default_value_t = 1)]
        compression: i32,
        /// Target pack size in MiB.
        #[arg(long, default_value_t = 16, value_name = "MIB")]
        pack_size: u32,
        /// Take the blob id key, chunker seed and chunk sizes of --from-repo, so that
        /// `copy` between the two moves blobs as they are (the data key stays new).
        #[arg(long, requires = "from_repo")]
        copy_params: bool,
        /// The repository to take parameters from.
        #[command(flatten)]
        from: FromRepoArgs,
    },
    /// Copy snapshots from another repository into this one, sending only the blobs it lacks.
    Copy {
        /// Snapshots to copy (ids, prefixes or "latest"; default: all that pass the filters).
        snapshots: Vec<String>,
        /// The source repository.
        #[command(flatten)]
        from: FromRepoArgs,
        /// Filters on the source's snapshots.
        #[command(flatten)]
        filter: SnapshotFilterArgs,
    },
    /// Back up files, directories or standard input.
    Backup {
        /// Files and directories to back up.
        paths: Vec<PathBuf>,
        /// Read the data to back up from standard input.
        #[arg(long)]
        stdin: bool,
        /// File name for data read from standard input.
        #[arg(long, default_value = "stdin", requires = "stdin")]
        stdin_filename: String,
        /// Add a tag (repeatable, or comma-separated).
        #[arg(long = "tag", value_delimiter = ',')]
        tags: Vec<String>,
        /// Host name to record.
        #[arg(long = "host")]
        host: Option<String>,
        /// Exclude a pattern (repeatable).
        #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
        excludes: Vec<String>,
        /// Read exclude patterns from a file, one per line.
        #[arg(long = "exclude-file", value_name = "FILE")]
        exclude_files: Vec<PathBuf>,
        /// Time to record for the snapshot (RFC 3339) instead of now.
        #[arg(long)]
        time: Option<String>,
        /// Compare against this snapshot (default: the latest with the same host and paths).
        #[arg(long, value_name = "SNAPSHOT")]
        parent: Option<String>,
        /// Read every file, trusting no parent snapshot.
        #[arg(long, conflicts_with = "parent")]
        force: bool,
    },
    /// List snapshots.
    Snapshots {
        /// Filters.
        #[command(flatten)]
        filter: SnapshotFilterArgs,
    },
    /// List the files in a snapshot.
    Ls {
        /// Snapshot id, id prefix, or "latest".
        snapshot: String,
        /// Only entries at or below this path.
        path: Option<String>,
        /// Long listing (mode, owner, size, time).
        #[arg(short, long)]
        long: bool,
        /// Filters.
        #[command(flatten)]
        filter: SnapshotFilterArgs,
    },
    /// Print a repository object as JSON.
    Cat {
        /// What to print.
        #[arg(value_enum)]
        kind: CatKind,
        /// Object id (not for config). Snapshots accept "latest" and prefixes.
        id: Option<String>,
    },
    /// Show the differences between two snapshots.
    Diff {
        /// First snapshot.
        a: String,
        /// Second snapshot.
        b: String,
    },
    /// Show sizes and counts.
    Stats {
        /// Snapshots to count (default: all).
        snapshots: Vec<String>,
        /// Filters.
        #[command(flatten)]
        filter: SnapshotFilterArgs,
    },
    /// Restore a snapshot into a directory.
    Restore {
        /// Snapshot id, id prefix, or "latest".
        snapshot: String,
        /// Directory to restore into.
        #[arg(short, long)]
        target: PathBuf,
        /// Restore only entries matching this pattern (repeatable).
        #[arg(short = 'i', long = "include", value_name = "PATTERN")]
        includes: Vec<String>,
        /// Skip entries matching this pattern (repeatable).
        #[arg(short = 'e', long = "exclude", value_name = "PATTERN")]
        excludes: Vec<String>,
        /// Filters.
        #[command(flatten)]
        filter: SnapshotFilterArgs,
    },
    /// Write one file from a snapshot to standard output.
    Dump {
        /// Snapshot id, id prefix, or "latest".
        snapshot: String,
        /// Path of the file in the snapshot (for stdin backups, its name).
        path: String,
        /// Filters.
        #[command(flatten)]
        filter: SnapshotFilterArgs,
    },
    /// Verify the repository's structure, and with --read-data every byte.
    #[command(after_help = crate::check_cmd::CHECK_AFTER_HELP)]
    Check(crate::check_cmd::CheckArgs),
    /// Repair a damaged repository.
    Repair {
        /// What to repair.
        #[command(subcommand)]
        command: crate::check_cmd::RepairCommand,
    },
    /// Maintain the index: rebuild it from pack headers, or compact it.
    Index {
        /// Index command.
        #[command(subcommand)]
        command: crate::index_cmd::IndexCommand,
    },
    /// Manage the passwords (key slots) of the repository.
    Key {
        /// Key command.
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Print a shell completion script.
    Completions {
        /// Shell.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff), generated from this definition.
    #[command(name = "generate-man")]
    GenerateMan,
}

/// Key slot commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List key slots.
    List,
    /// Add a key slot for a new password.
    Add {
        /// Read the new password from this file.
        #[arg(long, env = "LIFEBOAT_NEW_PASSWORD_FILE")]
        new_password_file: Option<PathBuf>,
        /// Key derivation costs.
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a key slot (not the one in use).
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the password of the key slot in use.
    Passwd {
        /// Read the new password from this file.
        #[arg(long, env = "LIFEBOAT_NEW_PASSWORD_FILE")]
        new_password_file: Option<PathBuf>,
        /// Key derivation costs.
        #[command(flatten)]
        kdf: KdfArgs,
    },
}

/// Objects `cat` can print.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CatKind {
    /// The repository config.
    Config,
    /// A snapshot.
    Snapshot,
    /// A tree blob.
    Tree,
    /// An index segment.
    Index,
    /// A key slot (the wrapped key only; never the master key).
    Key,
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
