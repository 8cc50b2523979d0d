//! The mover's settings, all from the environment. VolSync's names
//! (`RESTIC_REPOSITORY`, `RESTIC_PASSWORD`, `DATA_DIR`, `RESTIC_CACHE_DIR`,
//! `FORGET_OPTIONS`, `RESTORE_AS_OF`, `SELECT_PREVIOUS`, `CUSTOM_CA`) are
//! read as aliases of Lifeboat's, so that a VolSync Secret works as it is;
//! the cloud credential variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`) go to the
//! store unchanged.

use std::path::PathBuf;
use std::time::Duration;

use lifeboat::{EtcdEndpoint, KdfParams, Subset};
use zeroize::Zeroizing;

use crate::error::Failure;

/// A variable, unset when empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The first of `names` that is set.
fn first(names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| var(n))
}

fn flag(name: &str, default: bool) -> Result<bool, Failure> {
    match var(name).as_deref().map(str::trim) {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on" | "TRUE" | "True") => Ok(true),
        Some("0" | "false" | "no" | "off" | "FALSE" | "False") => Ok(false),
        Some(v) => Err(Failure::config(format!(
            "{name} must be true or false, not {v:?}"
        ))),
    }
}

fn number<T: std::str::FromStr>(name: &str) -> Result<Option<T>, Failure> {
    match var(name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Failure::config(format!("{name} must be a number, not {v:?}"))),
    }
}

/// A duration: `90`, `90s`, `15m`, `2h`, `1d`.
pub fn parse_duration(name: &str, v: &str) -> Result<Duration, Failure> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| Failure::config(format!("{name}: {v:?} is not a duration like 90s or 15m")))?;
    let secs = match unit {
        "" | "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86400),
        _ => {
            return Err(Failure::config(format!(
                "{name}: unit {unit:?} unknown (use s, m, h or d)"
            )));
        }
    };
    Ok(Duration::from_secs(secs))
}

fn duration(name: &str, default: Duration) -> Result<Duration, Failure> {
    match var(name) {
        None => Ok(default),
        Some(v) => parse_duration(name, &v),
    }
}

/// What `backup` reads, and what `restore` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The file tree under the data directory.
    Fs,
    /// A block device (a PVC with `volumeMode: Block`).
    Block,
    /// An etcd member's snapshot stream.
    Etcd,
}

/// Everything the ops read from the environment.
#[derive(Debug)]
pub struct Settings {
    /// `LIFEBOAT_REPOSITORY` or `RESTIC_REPOSITORY`.
    pub repository: Option<String>,
    /// The volume's mount: `DATA_DIR` or `MOVER_DATA_DIR` (default `/data`).
    pub data_dir: PathBuf,
    /// `LIFEBOAT_CACHE_DIR` or `RESTIC_CACHE_DIR`.
    pub cache_dir: Option<PathBuf>,
    /// Host name recorded and filtered on (`MOVER_HOST`, default `volsync`).
    pub host: String,
    /// What the data is.
    pub source: SourceKind,
    /// `BLOCK_DEVICE` (default `/dev/block`).
    pub block_device: PathBuf,
    /// The etcd member, from `ETCDCTL_*` (first endpoint only).
    pub etcd: Option<EtcdEndpoint>,
    /// `ETCD_SNAPSHOT_NAME` (default `etcd-snapshot`).
    pub etcd_name: String,
    /// `NODE_NAME` (default the host name).
    pub node_name: String,
    /// Tags for new snapshots (`MOVER_TAGS`, comma separated).
    pub tags: Vec<String>,
    /// `RESTORE_AS_OF`: restore the newest snapshot at or before it.
    pub restore_as_of: Option<lifeboat::jiff::Timestamp>,
    /// `SELECT_PREVIOUS`: then go back this many more.
    pub select_previous: usize,
    /// `MOVER_RESTORE_REQUIRE`: no snapshot to restore is an error (10).
    pub restore_require: bool,
    /// `MOVER_INIT_IF_MISSING` (default true): backup creates the repository.
    pub init_if_missing: bool,
    /// `MOVER_SKIP_EMPTY` (default true): an empty data directory is no backup.
    pub skip_empty: bool,
    /// `MOVER_STRICT`: a failed forget after a saved backup fails the run.
    pub strict: bool,
    /// `MOVER_PARTIAL_OK`: unreadable entries in a saved backup still exit 0.
    pub partial_ok: bool,
    /// `MOVER_UNLOCK_FORCE`: `unlock` removes live prune locks too.
    pub unlock_all: bool,
    /// `MOVER_LOCK_WAIT` (default 65m, longer than the lock's life): how
    /// long prune waits for another's lock.
    pub lock_wait: Duration,
    /// `MOVER_PRUNE_LOCK_TTL` (default 1h): how long a killed prune's lock
    /// blocks; a running prune renews it.
    pub prune_lock_ttl: Duration,
    /// `MOVER_PRUNE_GRACE` (default 24h).
    pub prune_grace: Duration,
    /// `MOVER_PRUNE_INSTANT_DELETE`: delete unused packs at once.
    pub prune_instant: bool,
    /// `MOVER_CHECK_READ_DATA`: the subset `check` reads (`10%`, `1/7`, `all`).
    pub check_subset: Option<Subset>,
    /// `MOVER_METRICS_FILE`: the Prometheus textfile.
    pub metrics_file: Option<PathBuf>,
    /// Key derivation for a repository `backup` or `init` creates.
    pub kdf: Option<KdfParams>,
    /// `MOVER_THREADS`: worker threads (default one per core).
    pub threads: Option<usize>,
    /// `RESTIC_PACK_SIZE` (MiB): target pack size of a repository the
    /// mover creates.
    pub pack_size_mib: Option<u32>,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl Settings {
    /// Read the environment.
    pub fn from_env() -> Result<Settings, Failure> {
        let block_device =
            PathBuf::from(var("BLOCK_DEVICE").unwrap_or_else(|| "/dev/block".into()));
        let etcd = first(&["ETCDCTL_ENDPOINTS", "ETCD_ENDPOINTS"]).map(|eps| {
            let url = eps.split(',').next().unwrap_or_default().trim().to_string();
            let user = var("ETCDCTL_USER").map(|u| match u.split_once(':') {
                Some((name, pw)) => (name.to_string(), pw.to_string()),
                None => (u, var("ETCDCTL_PASSWORD").unwrap_or_default()),
            });
            EtcdEndpoint {
                url,
                cacert: var("ETCDCTL_CACERT").map(PathBuf::from),
                cert: var("ETCDCTL_CERT").map(PathBuf::from),
                key: var("ETCDCTL_KEY").map(PathBuf::from),
                user,
                timeout: None,
            }
        });
        let source = match var("MOVER_SOURCE").as_deref().unwrap_or("auto") {
            "fs" => SourceKind::Fs,
            "block" => SourceKind::Block,
            "etcd" => SourceKind::Etcd,
            "auto" => {
                if etcd.is_some() {
                    SourceKind::Etcd
                } else if var("BLOCK_DEVICE").is_some() {
                    SourceKind::Block
                } else {
                    SourceKind::Fs
                }
            }
            other => {
                return Err(Failure::config(format!(
                    "MOVER_SOURCE must be auto, fs, block or etcd, not {other:?}"
                )));
            }
        };
        let restore_as_of = match var("RESTORE_AS_OF") {
            None => None,
            Some(t) => Some(t.trim().parse().map_err(|e| {
                Failure::config(format!(
                    "RESTORE_AS_OF must be an RFC 3339 time such as 2026-01-02T03:04:05Z, not {t:?}: {e}"
                ))
            })?),
        };
        let kdf = match (
            number::<u32>("MOVER_KDF_MEMORY_KIB")?,
            number::<u32>("MOVER_KDF_ITERATIONS")?,
        ) {
            (None, None) => None,
            (m, i) => {
                let d = KdfParams::default();
                Some(KdfParams {
                    memory_kib: m.unwrap_or(d.memory_kib),
                    iterations: i.unwrap_or(d.iterations),
                    parallelism: d.parallelism,
                })
            }
        };
        let check_subset = match var("MOVER_CHECK_READ_DATA") {
            None => None,
            Some(s) if s.trim() == "all" => Some(Subset::All),
            Some(s) => Some(
                s.trim()
                    .parse()
                    .map_err(|e| Failure::config(format!("MOVER_CHECK_READ_DATA {s:?}: {e}")))?,
            ),
        };
        Ok(Settings {
            repository: first(&["LIFEBOAT_REPOSITORY", "RESTIC_REPOSITORY"]),
            data_dir: PathBuf::from(
                first(&["DATA_DIR", "MOVER_DATA_DIR"]).unwrap_or_else(|| "/data".into()),
            ),
            cache_dir: first(&["LIFEBOAT_CACHE_DIR", "RESTIC_CACHE_DIR"]).map(PathBuf::from),
            host: var("MOVER_HOST").unwrap_or_else(|| "volsync".into()),
            source,
            block_device,
            etcd,
            etcd_name: var("ETCD_SNAPSHOT_NAME").unwrap_or_else(|| "etcd-snapshot".into()),
            node_name: var("NODE_NAME").unwrap_or_else(hostname),
            tags: var("MOVER_TAGS")
                .map(|t| {
                    t.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default(),
            restore_as_of,
            select_previous: number("SELECT_PREVIOUS")?.unwrap_or(0),
            restore_require: flag("MOVER_RESTORE_REQUIRE", false)?,
            init_if_missing: flag("MOVER_INIT_IF_MISSING", true)?,
            skip_empty: flag("MOVER_SKIP_EMPTY", true)?,
            strict: flag("MOVER_STRICT", false)?,
            partial_ok: flag("MOVER_PARTIAL_OK", false)?,
            unlock_all: flag("MOVER_UNLOCK_FORCE", false)?,
            lock_wait: duration("MOVER_LOCK_WAIT", Duration::from_secs(65 * 60))?,
            prune_lock_ttl: duration("MOVER_PRUNE_LOCK_TTL", Duration::from_secs(3600))?,
            prune_grace: duration("MOVER_PRUNE_GRACE", Duration::from_secs(86400))?,
            prune_instant: flag("MOVER_PRUNE_INSTANT_DELETE", false)?,
            check_subset,
            metrics_file: var("MOVER_METRICS_FILE").map(PathBuf::from),
            kdf,
            threads: number("MOVER_THREADS")?,
            pack_size_mib: number("RESTIC_PACK_SIZE")?,
        })
    }

    /// The repository location, required by every op.
    pub fn repository(&self) -> Result<&str, Failure> {
        self.repository.as_deref().ok_or_else(|| {
            Failure::config("set RESTIC_REPOSITORY (or LIFEBOAT_REPOSITORY) to the repository")
        })
    }
}

/// The repository password: `LIFEBOAT_PASSWORD` or `RESTIC_PASSWORD`, else
/// the first line of `LIFEBOAT_PASSWORD_FILE` or `RESTIC_PASSWORD_FILE`.
/// Zeroed when dropped.
pub fn password() -> Result<Zeroizing<Vec<u8>>, Failure> {
    for name in ["LIFEBOAT_PASSWORD", "RESTIC_PASSWORD"] {
        if let Some(p) = std::env::var_os(name).filter(|p| !p.is_empty()) {
            use std::os::unix::ffi::OsStringExt;
            return Ok(Zeroizing::new(p.into_vec()));
        }
    }
    for name in ["LIFEBOAT_PASSWORD_FILE", "RESTIC_PASSWORD_FILE"] {
        if let Some(f) = var(name) {
            let bytes = std::fs::read(&f)
                .map_err(|e| Failure::config(format!("{name}: reading {f}: {e}")))?;
            return Ok(lifeboat::password_line(bytes));
        }
    }
    Err(Failure::config(
        "set RESTIC_PASSWORD (or LIFEBOAT_PASSWORD, or a *_PASSWORD_FILE) to the repository password",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("x", "90").ok(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            parse_duration("x", "15m").ok(),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            parse_duration("x", "2h").ok(),
            Some(Duration::from_secs(7200))
        );
        assert!(parse_duration("x", "2w").is_err());
        assert!(parse_duration("x", "m").is_err());
    }

    #[test]
    fn password_file_keeps_its_first_line() {
        let line = lifeboat::password_line(b"secret\r\nrest".to_vec());
        assert_eq!(line.as_slice(), b"secret");
    }
}
