//! Argument groups that several commands share. Verbs, flags and variables
//! follow restic.

use std::path::PathBuf;

use clap::Args;
use lifeboat::{KdfParams, SnapshotFilter};

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

impl SnapshotFilterArgs {
    /// The filter these arguments describe.
    pub fn filter(&self) -> SnapshotFilter {
        SnapshotFilter {
            hosts: self.hosts.clone(),
            paths: self.paths.clone(),
            tags: self
                .tags
                .iter()
                .map(|t| {
                    t.split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .collect(),
        }
    }
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
    /// argon2id lanes, hashed in parallel on as many cores (RFC 9106 recommends 4).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub kdf_parallelism: u32,
}

impl KdfArgs {
    /// The key derivation parameters these arguments describe.
    pub fn params(&self) -> KdfParams {
        KdfParams {
            memory_kib: self.kdf_memory_kib,
            iterations: self.kdf_iterations,
            parallelism: self.kdf_parallelism,
        }
    }
}
