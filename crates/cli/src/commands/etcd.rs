//! `lifeboat etcd backup` and `lifeboat etcd restore`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use lifeboat::{EtcdBackupOptions, EtcdEndpoint, EtcdSource, Progress, SourceKind, etcd_meta_keys};
use serde_json::json;

use crate::args::{Global, SnapshotFilterArgs};
use crate::output::{bytes, print_json};
use crate::{exit, open, progress};

/// Options of `lifeboat etcd`.
#[derive(Debug, Args)]
pub struct EtcdArgs {
    /// etcd command.
    #[command(subcommand)]
    command: EtcdCommand,
}

/// etcd commands.
#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    /// Back up an etcd snapshot, streamed from one member (or read from a file), verified as it
    /// passes.
    Backup(BackupArgs),
    /// Write an etcd snapshot to a file for `etcdutl snapshot restore` or
    /// `--cluster-reset-restore-path`.
    Restore(RestoreArgs),
}

/// Options of `lifeboat etcd backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The member to snapshot: one URL, http://host:port or https://host:port.
    #[arg(long, value_name = "URL", required_unless_present = "file")]
    endpoint: Option<String>,
    /// Back up this snapshot file (as `etcdctl snapshot save` writes) instead.
    #[arg(long, value_name = "PATH", conflicts_with = "endpoint")]
    file: Option<PathBuf>,
    /// CA certificate (PEM) to verify the member with.
    #[arg(long, env = "ETCDCTL_CACERT", value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Client certificate (PEM).
    #[arg(long, env = "ETCDCTL_CERT", value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Client key (PEM).
    #[arg(long, env = "ETCDCTL_KEY", value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// etcd user, as NAME or NAME:PASSWORD (else the password comes from ETCDCTL_PASSWORD).
    #[arg(
        long,
        env = "ETCDCTL_USER",
        value_name = "NAME[:PASSWORD]",
        hide_env_values = true
    )]
    user: Option<String>,
    /// First part of the snapshot's name, `<name>-<node>-<unix time>` as K3s and RKE2 name
    /// theirs; also a tag.
    #[arg(long, env = "ETCD_SNAPSHOT_NAME", default_value = "etcd-snapshot")]
    name: String,
    /// Node name for the snapshot's name and host (default: this machine's host name).
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Add a tag (repeatable, or comma-separated).
    #[arg(long = "tag", value_delimiter = ',')]
    tags: Vec<String>,
    /// Time to record instead of now (RFC 3339 with an offset).
    #[arg(long)]
    time: Option<jiff::Timestamp>,
    /// Seconds to wait for connecting, for each request, and for each next part of the snapshot
    /// stream before giving up (a stalled stream fails the backup instead of hanging it).
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0)]
    timeout: f64,
}

/// Options of `lifeboat etcd restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Snapshot id, id prefix, or "latest" (of the etcd snapshots).
    snapshot: String,
    /// The snapshot file to write; it must not exist.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Filters.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// Run an etcd command.
pub fn run(g: &Global, a: &EtcdArgs) -> Result<u8> {
    match &a.command {
        EtcdCommand::Backup(b) => backup(g, b),
        EtcdCommand::Restore(r) => restore(g, r),
    }
}

fn endpoint(a: &BackupArgs, url: &str) -> Result<EtcdEndpoint> {
    let user = match &a.user {
        None => None,
        Some(u) => match u.split_once(':') {
            Some((name, pw)) => Some((name.to_string(), pw.to_string())),
            None => match std::env::var("ETCDCTL_PASSWORD") {
                Ok(pw) => Some((u.clone(), pw)),
                Err(_) => {
                    bail!("--user {u} has no password: give NAME:PASSWORD or set ETCDCTL_PASSWORD")
                }
            },
        },
    };
    Ok(EtcdEndpoint {
        url: url.to_string(),
        cacert: a.cacert.clone(),
        cert: a.cert.clone(),
        key: a.key.clone(),
        user,
        timeout: Some(timeout(a.timeout)?),
    })
}

fn timeout(secs: f64) -> Result<std::time::Duration> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 86_400.0) {
        bail!("--timeout must be a number of seconds above 0 and at most 86400, not {secs}");
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn node_name(a: &BackupArgs) -> Result<String> {
    let node = match &a.node_name {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()?.to_string_lossy().into_owned(),
    };
    if node.is_empty() || node.contains('/') {
        bail!("invalid node name {node:?}");
    }
    Ok(node)
}

fn backup(g: &Global, a: &BackupArgs) -> Result<u8> {
    if a.name.is_empty() || a.name.contains('/') {
        bail!("invalid snapshot name {:?}", a.name);
    }
    let source = match (&a.endpoint, &a.file) {
        (Some(url), None) => EtcdSource::Endpoint(endpoint(a, url)?),
        (None, Some(f)) => EtcdSource::File(f.clone()),
        _ => bail!("give --endpoint or --file"),
    };
    let opts = EtcdBackupOptions {
        source,
        name: a.name.clone(),
        node: node_name(a)?,
        tags: a.tags.clone(),
        time: a.time,
        threads: None,
    };
    let repo = open::repository(g)?;
    let progress = Arc::new(Progress::default());
    let display = progress::transfer(progress.clone(), "etcd backup", g, None);
    let res = repo.etcd_backup(&opts, &progress);
    display.finish();
    let report = res?;
    let s = report.backup.snapshot.summary.clone().unwrap_or_default();
    let meta = &report.backup.snapshot.source_meta;
    let get = |k: &str| meta.get(k).cloned();
    if g.json {
        print_json(&json!({
            "message_type": "summary",
            "snapshot_id": report.backup.id.to_hex(),
            "name": report.name,
            "revision": report.facts.revision,
            "revision_source": get(etcd_meta_keys::REVISION_SOURCE),
            "db_size": report.facts.verified.db_size,
            "sha256": report.facts.verified.sha256_hex(),
            "server_version": get(etcd_meta_keys::SERVER_VERSION),
            "member_id": get(etcd_meta_keys::MEMBER_ID),
            "bytes_total": s.bytes_total, "bytes_read": s.bytes_read, "bytes_added": s.bytes_added,
            "bytes_stored": s.bytes_stored, "data_blobs": s.data_blobs, "tree_blobs": s.tree_blobs,
            "duration_secs": s.duration_secs,
        }));
    } else if !g.quiet {
        let revision = report
            .facts
            .revision
            .map(|r| format!(" at revision {r}"))
            .unwrap_or_default();
        println!(
            "etcd snapshot {}{}: {} database, sha256 {} verified",
            report.name,
            revision,
            bytes(report.facts.verified.db_size),
            report.facts.verified.sha256_hex()
        );
        println!(
            "Added to the repository: {} ({} stored) in {:.2}s",
            bytes(s.bytes_added),
            bytes(s.bytes_stored),
            s.duration_secs
        );
        println!("snapshot {} saved", report.backup.id.short());
    }
    Ok(exit::OK)
}

fn restore(g: &Global, a: &RestoreArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let filter = a.filter.filter();
    // "latest" means the latest etcd snapshot: select among those only.
    let (all, _) = repo.readable_snapshots()?;
    let etcd_ids: Vec<_> = all
        .iter()
        .filter(|(_, s)| s.source == SourceKind::Etcd && filter.matches(s))
        .map(|(id, _)| *id)
        .collect();
    if etcd_ids.is_empty() {
        bail!("no etcd snapshot in the repository matches");
    }
    let (id, snap) = if a.snapshot == "latest" {
        all.into_iter()
            .filter(|(id, _)| etcd_ids.contains(id))
            .max_by_key(|(_, s)| s.time.parse::<jiff::Timestamp>().ok())
            .ok_or_else(|| anyhow::anyhow!("no etcd snapshot in the repository matches"))?
    } else {
        repo.find_snapshot(&a.snapshot, &filter)?
    };
    let total = snap.summary.as_ref().map(|s| s.bytes_total);
    let progress = Arc::new(Progress::default());
    let display = progress::transfer(progress.clone(), "etcd restore", g, total);
    let res = repo.etcd_restore(&snap, &a.output, &progress);
    display.finish();
    let report = res?;
    if g.json {
        print_json(&json!({
            "message_type": "summary",
            "snapshot_id": id.to_hex(),
            "path": report.path,
            "bytes": report.bytes,
            "sha256": report.sha256,
            "revision": report.revision,
        }));
    } else if !g.quiet {
        println!(
            "restored etcd snapshot {} to {}: {}, sha256 {} verified",
            id.short(),
            report.path.display(),
            bytes(report.bytes),
            report.sha256
        );
    }
    Ok(exit::OK)
}
