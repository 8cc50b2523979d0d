//! The ops a run is made of. Each one reads its settings, opens the
//! repository when it needs it (creating it only where the op says so),
//! and adds what it did to the run's record.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lifeboat::{
    BackupOptions, BackupReport, BackupSource, BlockRestoreOptions, CheckOptions, CheckProgress,
    DEFAULT_BLOCK_CHUNKING, EtcdBackupOptions, EtcdSource, InitOptions, Location, NodeKind,
    OpenOptions, Progress, PruneClock, PruneOptions, PruneProgress, Repository, Snapshot, Verdict,
};

use crate::error::{Failure, INTEGRITY, INTERRUPTED, LOCKED, NO_REPOSITORY, PARTIAL, STORE};
use crate::metrics::RunRecord;
use crate::retention;
use crate::settings::{Settings, SourceKind, password};
use crate::swap;

/// What to do when there is no repository at the location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Create it.
    Create,
    /// Fail with exit code 10.
    Fail,
    /// Nothing to do: the op is skipped.
    Skip,
}

/// How an op ended when it did not fail.
pub enum Outcome {
    /// It did its work.
    Done(String),
    /// It had nothing to do.
    Skipped(String),
    /// It failed in a way that does not fail the run (a forget after a
    /// saved backup).
    Warning(String),
}

/// One run: the settings, the open repository, the stop flags the signal
/// handler sets, and the record.
pub struct Mover {
    /// The settings.
    pub settings: Settings,
    /// Stops backup and restore.
    pub progress: Arc<Progress>,
    /// Stops check.
    pub check_progress: Arc<CheckProgress>,
    /// Set on SIGTERM; also stops waiting for a lock.
    pub stop: Arc<AtomicBool>,
    /// What the run did.
    pub record: RunRecord,
    /// An exit code for the end of a run whose ops all finished (4 for a
    /// partial backup).
    pub deferred_code: Option<u8>,
    repo: Option<Repository>,
    backup_saved: bool,
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("lifeboat-mover: {msg}");
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Mover {
    /// A run with `settings`.
    pub fn new(settings: Settings, record: RunRecord) -> Mover {
        Mover {
            settings,
            progress: Arc::new(Progress::default()),
            check_progress: Arc::new(CheckProgress::default()),
            stop: Arc::new(AtomicBool::new(false)),
            record,
            deferred_code: None,
            repo: None,
            backup_saved: false,
        }
    }

    fn store_options(&self, location: &str) -> Result<OpenOptions, Failure> {
        let mut o = OpenOptions::from_env()?;
        if Location::parse(location)?.is_remote() {
            o.cache_dir = self.settings.cache_dir.clone();
        }
        Ok(o)
    }

    /// Open the repository (once per run); false when there is none and
    /// `missing` says to skip.
    fn open(&mut self, missing: Missing) -> Result<bool, Failure> {
        if self.repo.is_none() {
            let location = self.settings.repository()?.to_string();
            let pw = password()?;
            let opts = self.store_options(&location)?;
            let cache = self.settings.cache_dir.clone();
            let opened = lifeboat::open_location_with(&location, false, &opts)
                .and_then(|b| Repository::open_with_cache(b, &pw, cache.clone()));
            let repo = match opened {
                Ok(r) => r,
                // Decided by the error's type: refused credentials and an
                // unreachable store are other variants and never get here.
                Err(lifeboat::Error::RepositoryNotFound { location: shown }) => match missing {
                    Missing::Skip => {
                        log(format!("no repository at {shown}"));
                        return Ok(false);
                    }
                    Missing::Fail => {
                        return Err(Failure::new(
                            NO_REPOSITORY,
                            format!("no repository at {shown}"),
                        ));
                    }
                    Missing::Create => {
                        let backend = lifeboat::open_location_with(&location, true, &opts)?;
                        let mut init = InitOptions::default();
                        if let Some(k) = self.settings.kdf {
                            init.kdf = k;
                        }
                        if let Some(mib) = self.settings.pack_size_mib {
                            init.pack_size = mib.saturating_mul(1 << 20);
                        }
                        match Repository::init(backend, &pw, &init) {
                            Ok(r) => {
                                log(format!("created repository {shown}"));
                                self.record.repository_created = true;
                                r
                            }
                            // Another mover created it meanwhile.
                            Err(lifeboat::Error::Repository(
                                lifeboat::RepositoryError::AlreadyInitialized { .. },
                            )) => {
                                let b = lifeboat::open_location_with(&location, false, &opts)?;
                                Repository::open_with_cache(b, &pw, cache)?
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                },
                Err(e) => return Err(e.into()),
            };
            self.repo = Some(repo);
        }
        Ok(true)
    }

    /// The open repository, beside the settings and the record.
    fn parts(&mut self) -> Result<(&Repository, &Settings, &mut RunRecord), Failure> {
        match &self.repo {
            Some(r) => Ok((r, &self.settings, &mut self.record)),
            None => Err(no_repo()),
        }
    }

    /// Run the op `name`.
    pub fn run_op(&mut self, name: &str) -> Result<Outcome, Failure> {
        match name {
            "init" => self.init(),
            "unlock" => self.unlock(),
            "backup" => self.backup(),
            "forget" => self.forget(),
            "prune" => {
                let r = self.prune();
                // Prune rewrote the index: the next op opens the repository
                // again rather than trust the index loaded before.
                self.repo = None;
                r
            }
            "restore" => self.restore(),
            "check" => self.check(),
            other => Err(Failure::new(
                crate::error::USAGE,
                format!("unknown op {other:?}"),
            )),
        }
    }

    fn init(&mut self) -> Result<Outcome, Failure> {
        self.open(Missing::Create)?;
        Ok(if self.record.repository_created {
            Outcome::Done("repository created".into())
        } else {
            Outcome::Skipped("the repository exists already".into())
        })
    }

    fn unlock(&mut self) -> Result<Outcome, Failure> {
        let all = self.settings.unlock_all;
        if !self.open(Missing::Skip)? {
            return Ok(Outcome::Skipped("no repository".into()));
        }
        let (repo, _, record) = self.parts()?;
        let report = repo.unlock(all, &PruneClock::system())?;
        record.stale_locks_removed += report.removed.len() as u64;
        Ok(Outcome::Done(format!(
            "{} prune locks removed, {} live ones left",
            report.removed.len(),
            report.live.len()
        )))
    }

    fn backup(&mut self) -> Result<Outcome, Failure> {
        let missing = if self.settings.init_if_missing {
            Missing::Create
        } else {
            Missing::Fail
        };
        match self.settings.source {
            SourceKind::Fs => self.backup_tree(missing),
            SourceKind::Block => {
                let device = self.settings.block_device.clone();
                if !device.exists() {
                    return Err(Failure::config(format!(
                        "BLOCK_DEVICE {} does not exist",
                        device.display()
                    )));
                }
                let opts = self.backup_options(Vec::new());
                let progress = self.progress.clone();
                self.open(missing)?;
                let repo = self.parts()?.0;
                let report = repo.backup(
                    BackupSource::Block {
                        path: device,
                        chunking: DEFAULT_BLOCK_CHUNKING,
                        changed_ranges: None,
                    },
                    &opts,
                    &progress,
                )?;
                self.saved(&report)
            }
            SourceKind::Etcd => {
                let endpoint =
                    self.settings.etcd.clone().ok_or_else(|| {
                        Failure::config("MOVER_SOURCE=etcd needs ETCDCTL_ENDPOINTS")
                    })?;
                let opts = EtcdBackupOptions {
                    source: EtcdSource::Endpoint(endpoint),
                    name: self.settings.etcd_name.clone(),
                    node: self.settings.node_name.clone(),
                    tags: self.settings.tags.clone(),
                    time: None,
                    threads: self.settings.threads,
                };
                let progress = self.progress.clone();
                self.open(missing)?;
                let repo = self.parts()?.0;
                let report = repo.etcd_backup(&opts, &progress)?;
                self.record.etcd_revision = report.facts.revision;
                let name = report.name.clone();
                self.saved(&report.backup)?;
                Ok(Outcome::Done(format!(
                    "etcd snapshot {name} saved as {}",
                    report.backup.id
                )))
            }
        }
    }

    fn backup_options(&self, excludes: Vec<String>) -> BackupOptions {
        BackupOptions {
            hostname: Some(self.settings.host.clone()),
            tags: self.settings.tags.clone(),
            excludes,
            threads: self.settings.threads,
            ..Default::default()
        }
    }

    fn backup_tree(&mut self, missing: Missing) -> Result<Outcome, Failure> {
        let dir = absolute(&self.settings.data_dir);
        let entries = std::fs::read_dir(&dir)
            .map_err(|e| Failure::config(format!("DATA_DIR {}: {e}", dir.display())))?;
        let mut any = false;
        for e in entries {
            let e = e.map_err(|e| Failure::config(format!("reading {}: {e}", dir.display())))?;
            if !swap::is_reserved(&e.file_name()) {
                any = true;
                break;
            }
        }
        if !any && self.settings.skip_empty {
            // As VolSync's mover: an empty volume is no backup, and the
            // repository is not touched.
            return Ok(Outcome::Skipped(format!(
                "{} is empty: nothing to back up",
                dir.display()
            )));
        }
        let base = dir.display().to_string();
        let base = base.trim_end_matches('/');
        let excludes = vec![
            format!("{base}/lost+found"),
            format!("{base}/{}*", swap::STAGING_PREFIX),
            format!("{base}/{}*", swap::PREVIOUS_PREFIX),
        ];
        let opts = self.backup_options(excludes);
        let progress = self.progress.clone();
        self.open(missing)?;
        let repo = self.parts()?.0;
        let report = repo.backup(BackupSource::Paths(vec![dir]), &opts, &progress)?;
        self.saved(&report)
    }

    fn saved(&mut self, report: &BackupReport) -> Result<Outcome, Failure> {
        self.backup_saved = true;
        let (files, _) = report.processed();
        self.record.snapshot = Some(report.id.to_hex());
        self.record.files += files;
        self.record.errors += report.errors.len() as u64;
        if let Some(s) = &report.snapshot.summary {
            self.record.bytes_read += s.bytes_read;
            self.record.bytes_added += s.bytes_added;
        }
        if report.is_complete() {
            return Ok(Outcome::Done(format!("snapshot {} saved", report.id)));
        }
        for e in report.errors.iter().take(20) {
            log(format!("could not read {}: {}", e.path, e.message));
        }
        if !self.settings.partial_ok {
            self.deferred_code = Some(PARTIAL);
        }
        Ok(Outcome::Warning(format!(
            "snapshot {} saved without {} unreadable entries",
            report.id,
            report.errors.len()
        )))
    }

    fn forget(&mut self) -> Result<Outcome, Failure> {
        // etcd snapshots carry the node's name as their host.
        let host = match self.settings.source {
            SourceKind::Etcd => &self.settings.node_name,
            _ => &self.settings.host,
        };
        let opts = retention::from_env(host)?;
        if opts.policy.is_empty() {
            return Ok(Outcome::Skipped(
                "no retention policy (FORGET_OPTIONS, MOVER_KEEP_*): nothing forgotten".into(),
            ));
        }
        let after_backup = self.backup_saved && !self.settings.strict;
        if !self.open(Missing::Skip)? {
            return Ok(Outcome::Skipped("no repository".into()));
        }
        let (repo, _, record) = self.parts()?;
        match repo.forget(&opts, lifeboat::jiff::Timestamp::now()) {
            Ok(report) => {
                record.forgotten += report.deleted.len() as u64;
                Ok(Outcome::Done(format!(
                    "{} snapshots forgotten ({})",
                    report.deleted.len(),
                    opts.policy
                )))
            }
            // The backup is saved; retention runs again next time.
            Err(e) if after_backup && !matches!(e, lifeboat::Error::Interrupted) => {
                Ok(Outcome::Warning(format!(
                    "forget failed, the backup stands: {}",
                    Failure::from(e)
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn prune(&mut self) -> Result<Outcome, Failure> {
        let s = &self.settings;
        let opts = PruneOptions {
            grace: s.prune_grace,
            instant_delete: s.prune_instant,
            lock_ttl: s.prune_lock_ttl,
            hostname: s.node_name.clone(),
            ..Default::default()
        };
        let wait = s.lock_wait;
        let stop = self.stop.clone();
        if !self.open(Missing::Skip)? {
            return Ok(Outcome::Skipped("no repository".into()));
        }
        let (repo, _, record) = self.parts()?;
        let start = Instant::now();
        let mut delay = Duration::from_millis(500);
        loop {
            match repo.prune(&opts, &PruneProgress::default()) {
                Ok(report) => {
                    let bytes = report.executed.map(|e| e.bytes_deleted).unwrap_or(0);
                    record.prune_deleted_bytes += bytes;
                    return Ok(Outcome::Done(format!(
                        "{} packs marked, {bytes} bytes deleted",
                        report.plan.mark.len()
                    )));
                }
                Err(lifeboat::Error::Prune(lifeboat::PruneError::Locked {
                    path,
                    hostname,
                    expires,
                })) => {
                    // A live lock: another prune runs, or one was killed
                    // and its lock has not expired yet. Wait for it.
                    let waited = start.elapsed();
                    if waited >= wait {
                        return Err(Failure::new(
                            LOCKED,
                            format!(
                                "another prune holds {path} (host {hostname:?}, until unix time \
                                 {expires}); waited {}s (MOVER_LOCK_WAIT)",
                                waited.as_secs()
                            ),
                        ));
                    }
                    log(format!(
                        "prune lock {path} held by {hostname:?} until unix time {expires}; waiting"
                    ));
                    let pause = delay.min(wait - waited);
                    let until = Instant::now() + pause;
                    while Instant::now() < until {
                        if stop.load(Ordering::Relaxed) {
                            return Err(Failure::new(INTERRUPTED, "interrupted"));
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    delay = (delay * 2).min(Duration::from_secs(15));
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn restore(&mut self) -> Result<Outcome, Failure> {
        let missing = if self.settings.restore_require {
            Missing::Fail
        } else {
            Missing::Skip
        };
        // Restore never creates a repository.
        if !self.open(missing)? {
            return Ok(Outcome::Skipped("no repository: nothing restored".into()));
        }
        let progress = self.progress.clone();
        let (repo, s, record) = self.parts()?;
        let Some((id, snap)) = pick(s, repo)? else {
            if s.restore_require {
                return Err(Failure::new(
                    NO_REPOSITORY,
                    "no eligible snapshot (MOVER_RESTORE_REQUIRE=true)",
                ));
            }
            return Ok(Outcome::Skipped(
                "no eligible snapshot: nothing restored".into(),
            ));
        };
        log(format!("restoring snapshot {id} of {}", snap.time));
        let detail = match s.source {
            SourceKind::Fs => {
                let r =
                    swap::restore_tree(repo, &snap, &absolute(&s.data_dir), s.threads, &progress)?;
                record.files += r.files;
                format!(
                    "snapshot {id} restored: {} files, {} bytes, {} entries verified, {} replaced",
                    r.files, r.bytes, r.verified, r.replaced
                )
            }
            SourceKind::Block => {
                // Read and verify every blob before the device is written:
                // a damaged snapshot must not half-overwrite it.
                let tree = repo.load_tree(&snap.tree)?;
                let node = match tree.nodes.as_slice() {
                    [n] if n.kind == NodeKind::File => n.clone(),
                    _ => {
                        return Err(Failure::new(
                            INTEGRITY,
                            format!("snapshot {id} does not hold one block image"),
                        ));
                    }
                };
                repo.dump_file(&node, &mut std::io::sink())?;
                let opts = BlockRestoreOptions {
                    target: s.block_device.clone(),
                    threads: s.threads,
                };
                let r = repo.restore_block(&snap, &opts, &progress)?;
                format!(
                    "snapshot {id} restored onto {}: {} bytes",
                    s.block_device.display(),
                    r.size
                )
            }
            SourceKind::Etcd => {
                let name = snap
                    .source_meta
                    .get(lifeboat::etcd_meta_keys::NAME)
                    .cloned()
                    .unwrap_or_else(|| format!("etcd-snapshot-{id}"));
                let out = absolute(&s.data_dir).join(&name);
                let r = repo.etcd_restore(&snap, &out, &progress)?;
                record.etcd_revision = r.revision;
                format!(
                    "etcd snapshot {id} written to {} ({} bytes, sha256 {})",
                    r.path.display(),
                    r.bytes,
                    r.sha256
                )
            }
        };
        record.snapshot = Some(id.to_hex());
        Ok(Outcome::Done(detail))
    }

    fn check(&mut self) -> Result<Outcome, Failure> {
        let subset = self.settings.check_subset;
        let opts = CheckOptions {
            read_data: subset.is_some(),
            subset: subset.unwrap_or_default(),
            ..Default::default()
        };
        let progress = self.check_progress.clone();
        self.open(Missing::Fail)?;
        let repo = self.parts()?.0;
        let report = repo.check(&opts, &progress)?;
        match report.verdict() {
            Verdict::Clean => Ok(Outcome::Done(format!(
                "clean: {} snapshots, {} packs",
                report.snapshots, report.packs
            ))),
            Verdict::Incomplete => Err(Failure::new(
                STORE,
                format!(
                    "no damage found, but {} objects could not be read",
                    report.unchecked.len()
                ),
            )),
            _ => {
                for p in report.problems.iter().take(20) {
                    log(format!("{p:?}"));
                }
                Err(Failure::new(
                    INTEGRITY,
                    format!(
                        "damage found: {} problems, damaged snapshots {:?}",
                        report.problems.len(),
                        report.damaged_snapshots
                    ),
                ))
            }
        }
    }
}

fn no_repo() -> Failure {
    Failure::new(NO_REPOSITORY, "no repository")
}

/// The snapshot to restore: the newest of this mover's host and
/// source kind at or before `RESTORE_AS_OF`, then `SELECT_PREVIOUS`
/// older. Times are compared as instants, not as text.
fn pick(s: &Settings, repo: &Repository) -> Result<Option<(lifeboat::Id, Snapshot)>, Failure> {
    let (kind, host) = match s.source {
        SourceKind::Fs => (lifeboat::SourceKind::Fs, &s.host),
        SourceKind::Block => (lifeboat::SourceKind::Block, &s.host),
        SourceKind::Etcd => (lifeboat::SourceKind::Etcd, &s.node_name),
    };
    let mut candidates: Vec<(lifeboat::jiff::Timestamp, lifeboat::Id, Snapshot)> = repo
        .snapshots()?
        .items
        .into_iter()
        .filter(|(_, snap)| snap.source == kind && &snap.hostname == host)
        .filter_map(|(id, snap)| {
            let t = snap.time.parse::<lifeboat::jiff::Timestamp>().ok()?;
            Some((t, id, snap))
        })
        .filter(|(t, _, _)| s.restore_as_of.is_none_or(|limit| *t <= limit))
        .collect();
    candidates.sort_by_key(|c| std::cmp::Reverse(c.0));
    Ok(candidates
        .into_iter()
        .nth(s.select_previous)
        .map(|(_, id, snap)| (id, snap)))
}
