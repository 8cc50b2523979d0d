//! Restore drills: restore a snapshot into scratch space, prove the
//! restore equals the snapshot, measure how long it took, clean up, and
//! keep an encrypted record of it in the repository. See `docs/drill.md`.
//!
//! The restore is the ordinary one ([`Repository::restore`],
//! [`Repository::restore_block`], [`Repository::etcd_restore`]); the
//! verification reads the restored bytes back and hashes them against the
//! snapshot's blob ids (`lifeboat_core::Repository::verify_restored`), and
//! adds what each kind of source allows: the etcd snapshot's sha256 trailer
//! and bbolt meta pages (and with [`DrillOptions::etcd_server`] a throwaway
//! etcd serving it), a block image's size and, for ext2/3/4, `e2fsck -fn`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lifeboat_core::{MetadataChecks, Progress, RestoreOptions};
use lifeboat_etcd::meta_keys;
use lifeboat_format::{DrillRecord, Id, Node, NodeKind, Snapshot, SourceKind};

use crate::error::{Error, Result};
use crate::etcd_server::{self, ServedFacts};
use crate::repository::Repository;

/// Settings of [`Repository::drill`].
#[derive(Debug, Clone, Default)]
pub struct DrillOptions {
    /// Scratch space: the drill restores into a new folder inside it and
    /// removes that folder when done (created if missing).
    pub scratch: PathBuf,
    /// For etcd snapshots: also restore a data directory from the file and
    /// start a throwaway etcd on loopback on it, when `etcd` is installed,
    /// and compare its revision with the one recorded at backup.
    pub etcd_server: bool,
    /// Leave the restored data in scratch space.
    pub keep: bool,
    /// Do not write a drill record.
    pub no_record: bool,
    /// Time to record instead of now.
    pub time: Option<jiff::Timestamp>,
    /// Worker threads for the restore (default: one per core).
    pub threads: Option<usize>,
}

/// What a throwaway etcd served from a drilled etcd snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EtcdServed {
    /// The store revision it reported.
    pub revision: i64,
    /// Keys it served (the count of `get "" --prefix`).
    pub keys: u64,
    /// Its version.
    pub version: String,
}

/// The outcome of a drill: whether the restore was proven, and its times.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DrillReport {
    /// The snapshot drilled.
    pub snapshot_id: Id,
    /// It.
    pub snapshot: Snapshot,
    /// Whether the restore succeeded and every check passed.
    pub ok: bool,
    /// What failed, one line each (path first where there is one).
    pub problems: Vec<String>,
    /// The checks that ran.
    pub checks: Vec<String>,
    /// Checks that could not run here, and why (not failures).
    pub notes: Vec<String>,
    /// Entries restored.
    pub entries: u64,
    /// Content bytes restored.
    pub bytes: u64,
    /// From the start of the restore to its first content byte.
    pub time_to_first_byte: Duration,
    /// The restore, start to end: the recovery time achieved.
    pub restore_time: Duration,
    /// The verification.
    pub verify_time: Duration,
    /// What a throwaway etcd served, with [`DrillOptions::etcd_server`].
    pub etcd: Option<EtcdServed>,
    /// Where the data was restored (removed unless [`DrillOptions::keep`]).
    pub restored_to: PathBuf,
    /// The drill record written, unless [`DrillOptions::no_record`].
    pub record: Option<Id>,
}

impl DrillReport {
    /// Restored bytes per second of restore time.
    pub fn throughput(&self) -> f64 {
        let s = self.restore_time.as_secs_f64();
        if s > 0.0 { self.bytes as f64 / s } else { 0.0 }
    }
}

/// What [`Repository::verify_restore`] found in an existing restore.
pub use lifeboat_core::{Mismatch, RestoreCheck};

impl Repository {
    /// Drill `snapshot`: restore it under `opts.scratch`, verify it, time
    /// it, remove it and record the drill. A restore or check that fails is
    /// in the report (`ok` false) and in the record, not an error; an error
    /// means the drill could not run (scratch space, repository, record).
    pub fn drill(
        &self,
        id: &Id,
        snapshot: &Snapshot,
        opts: &DrillOptions,
        progress: &Progress,
    ) -> Result<DrillReport> {
        let started = opts.time.unwrap_or_else(jiff::Timestamp::now);
        std::fs::create_dir_all(&opts.scratch).map_err(|e| io(&opts.scratch, e))?;
        let dir = opts.scratch.join(format!(
            "lifeboat-drill-{}-{}-{}",
            id.short(),
            std::process::id(),
            jiff::Timestamp::now().as_nanosecond() % 1_000_000_000
        ));
        std::fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
        let mut report = DrillReport {
            snapshot_id: *id,
            snapshot: snapshot.clone(),
            ok: false,
            problems: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            entries: 0,
            bytes: 0,
            time_to_first_byte: Duration::ZERO,
            restore_time: Duration::ZERO,
            verify_time: Duration::ZERO,
            etcd: None,
            restored_to: dir.clone(),
            record: None,
        };
        let result = match snapshot.source {
            SourceKind::Etcd => self.drill_etcd(snapshot, &dir, opts, progress, &mut report),
            SourceKind::Block => self.drill_block(snapshot, &dir, opts, progress, &mut report),
            SourceKind::Fs | SourceKind::Stdin => {
                self.drill_tree(snapshot, &dir, opts, progress, &mut report)
            }
        };
        if !opts.keep
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            report
                .problems
                .push(format!("{}: cannot clean up: {e}", dir.display()));
        }
        result?;
        report.ok = report.problems.is_empty();
        if !opts.no_record {
            let record = DrillRecord {
                version: lifeboat_format::DRILL_RECORD_VERSION,
                time: started.to_string(),
                snapshot: *id,
                snapshot_time: snapshot.time.clone(),
                hostname: snapshot.hostname.clone(),
                paths: snapshot.paths.clone(),
                tags: snapshot.tags.clone(),
                source: snapshot.source,
                drill_host: host_name(),
                ok: report.ok,
                problems: report.problems.clone(),
                checks: report.checks.clone(),
                entries: report.entries,
                bytes: report.bytes,
                ttfb_secs: report.time_to_first_byte.as_secs_f64(),
                restore_secs: report.restore_time.as_secs_f64(),
                verify_secs: report.verify_time.as_secs_f64(),
                program: format!("lifeboat {}", env!("CARGO_PKG_VERSION")),
            };
            report.record = Some(self.core().save_drill(&record)?);
        }
        Ok(report)
    }

    /// Compare a restore of the whole of `snapshot` already in `target`
    /// with the snapshot (what a drill checks after its restore): content
    /// hashes, sizes, kinds, metadata, and nothing extra.
    pub fn verify_restore(&self, snapshot: &Snapshot, target: &Path) -> Result<RestoreCheck> {
        Ok(self
            .core()
            .verify_restored(snapshot, target, MetadataChecks::default())?)
    }

    /// Every readable drill record, oldest first, and the records skipped as
    /// damaged or stray.
    pub fn drills(&self) -> Result<lifeboat_core::Listing<(Id, DrillRecord)>> {
        Ok(self.core().drills()?)
    }

    fn drill_tree(
        &self,
        snapshot: &Snapshot,
        dir: &Path,
        opts: &DrillOptions,
        progress: &Progress,
        report: &mut DrillReport,
    ) -> Result<()> {
        let target = dir.join("tree");
        let ropts = RestoreOptions {
            target: target.clone(),
            threads: opts.threads,
            ..Default::default()
        };
        let restored = timed(progress, report, || {
            self.core().restore(snapshot, &ropts, progress)
        });
        match restored {
            Ok(r) => {
                report.entries = r.files + r.dirs + r.others;
                report.bytes = r.bytes;
                for e in r.errors {
                    report
                        .problems
                        .push(format!("{}: not restored: {}", e.path, e.message));
                }
            }
            Err(e) => {
                report.problems.push(format!("restore failed: {e}"));
                return Ok(());
            }
        }
        let t = Instant::now();
        let check = self
            .core()
            .verify_restored(snapshot, &target, MetadataChecks::default())?;
        report.verify_time = t.elapsed();
        report.checks.extend(["content".into(), "metadata".into()]);
        report.problems.extend(
            check
                .mismatches
                .into_iter()
                .map(|m| format!("{}: {}", m.path, m.what)),
        );
        Ok(())
    }

    fn drill_block(
        &self,
        snapshot: &Snapshot,
        dir: &Path,
        opts: &DrillOptions,
        progress: &Progress,
        report: &mut DrillReport,
    ) -> Result<()> {
        let Some(node) = one_file(self, snapshot, report) else {
            return Ok(());
        };
        let image = dir.join("image");
        let bopts = lifeboat_core::BlockRestoreOptions {
            target: image.clone(),
            threads: opts.threads,
        };
        let restored = timed(progress, report, || {
            self.core().restore_block(snapshot, &bopts, progress)
        });
        match restored {
            Ok(r) => {
                report.entries = 1;
                report.bytes = r.size;
            }
            Err(e) => {
                report.problems.push(format!("restore failed: {e}"));
                return Ok(());
            }
        }
        let t = Instant::now();
        report.checks.push("size".into());
        let size = std::fs::metadata(&image).map(|m| m.len()).unwrap_or(0);
        let recorded = snapshot
            .source_meta
            .get(lifeboat_core::META_SIZE)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(node.size);
        if size != recorded || size != node.size {
            report.problems.push(format!(
                "image is {size} bytes, the snapshot records {recorded} (content {})",
                node.size
            ));
        }
        report.checks.push("content".into());
        if let (_, Some(what)) = self.core().verify_content(&image, &node) {
            report.problems.push(format!("image: {what}"));
        }
        if is_ext(&image) {
            match run_e2fsck(&image) {
                Ok(None) => report.checks.push("e2fsck".into()),
                Ok(Some(out)) => {
                    report.checks.push("e2fsck".into());
                    report
                        .problems
                        .push(format!("e2fsck -fn found errors: {out}"));
                }
                Err(why) => report.notes.push(format!("e2fsck not run: {why}")),
            }
        }
        report.verify_time = t.elapsed();
        Ok(())
    }

    fn drill_etcd(
        &self,
        snapshot: &Snapshot,
        dir: &Path,
        opts: &DrillOptions,
        progress: &Progress,
        report: &mut DrillReport,
    ) -> Result<()> {
        let Some(node) = one_file(self, snapshot, report) else {
            return Ok(());
        };
        let file = dir.join("snapshot.db");
        // etcd_restore verifies from the disk: meta pages, size, trailer and
        // the sha256 recorded at backup.
        let restored = timed(progress, report, || {
            self.etcd_restore(snapshot, &file, progress)
        });
        match restored {
            Ok(r) => {
                report.entries = 1;
                report.bytes = r.bytes;
            }
            Err(e) => {
                report.problems.push(format!("restore failed: {e}"));
                return Ok(());
            }
        }
        let t = Instant::now();
        report.checks.extend([
            "etcd-bbolt-meta".into(),
            "etcd-sha256-trailer".into(),
            "etcd-sha256-recorded".into(),
            "content".into(),
        ]);
        if let (_, Some(what)) = self.core().verify_content(&file, &node) {
            report.problems.push(format!("snapshot file: {what}"));
        }
        if opts.etcd_server {
            match etcd_server::serve(&file, &dir.join("etcd")) {
                Ok(served) => {
                    report.checks.push("etcd-server".into());
                    check_served(snapshot, &served, report);
                    report.etcd = Some(EtcdServed {
                        revision: served.revision,
                        keys: served.keys,
                        version: served.version,
                    });
                }
                Err(etcd_server::ServeError::NotInstalled(why)) => report
                    .notes
                    .push(format!("etcd server check not run: {why}")),
                Err(etcd_server::ServeError::Failed(why)) => {
                    report.checks.push("etcd-server".into());
                    report.problems.push(format!(
                        "a throwaway etcd could not serve the snapshot: {why}"
                    ));
                }
            }
        }
        report.verify_time = t.elapsed();
        Ok(())
    }
}

/// Compare what the throwaway etcd served with the revision recorded at
/// backup: equal when it came from the snapshot's own header, at least it
/// when it came from the member's status just before.
fn check_served(snapshot: &Snapshot, served: &ServedFacts, report: &mut DrillReport) {
    let recorded = snapshot
        .source_meta
        .get(meta_keys::REVISION)
        .and_then(|r| r.parse::<i64>().ok());
    let exact = snapshot
        .source_meta
        .get(meta_keys::REVISION_SOURCE)
        .is_some_and(|s| s == "snapshot-header");
    match recorded {
        Some(r) if exact && served.revision != r => report.problems.push(format!(
            "etcd serves revision {}, the snapshot recorded {r}",
            served.revision
        )),
        Some(r) if served.revision < r => report.problems.push(format!(
            "etcd serves revision {}, older than the {r} recorded before the snapshot",
            served.revision
        )),
        Some(_) => {}
        None => report
            .notes
            .push("no revision recorded with the snapshot to compare with".into()),
    }
}

/// Run `f`, timing it into `report`, with the time to the first byte taken
/// from `progress` by a watcher thread.
fn timed<T>(progress: &Progress, report: &mut DrillReport, f: impl FnOnce() -> T) -> T {
    let done = AtomicBool::new(false);
    let base = progress.bytes.load(Ordering::Relaxed);
    let start = Instant::now();
    let (out, first) = std::thread::scope(|s| {
        let watcher = s.spawn(|| {
            loop {
                if progress.bytes.load(Ordering::Relaxed) > base {
                    return Some(start.elapsed());
                }
                if done.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        let out = f();
        done.store(true, Ordering::Relaxed);
        (out, watcher.join().ok().flatten())
    });
    report.restore_time = start.elapsed();
    report.time_to_first_byte = first.unwrap_or(report.restore_time);
    out
}

/// The one regular file of an etcd or block snapshot; `None`, with the
/// problem in `report`, when there is not exactly one.
fn one_file(repo: &Repository, snapshot: &Snapshot, report: &mut DrillReport) -> Option<Node> {
    let problem = match repo.load_tree(&snapshot.tree) {
        Err(e) => format!("cannot read the snapshot's tree: {e}"),
        Ok(tree) => match tree.nodes.as_slice() {
            [n] if n.kind == NodeKind::File => return Some(n.clone()),
            _ => "the snapshot should hold exactly one file and does not".into(),
        },
    };
    report.problems.push(problem);
    None
}

/// Whether the image holds an ext2/3/4 file system (superblock magic).
fn is_ext(image: &Path) -> bool {
    use std::os::unix::fs::FileExt;
    let mut magic = [0u8; 2];
    std::fs::File::open(image)
        .and_then(|f| f.read_exact_at(&mut magic, 1024 + 56))
        .is_ok()
        && magic == [0x53, 0xef]
}

/// `e2fsck -fn`: `Ok(None)` when clean, `Ok(Some(output))` when it found
/// errors, `Err` when it could not run.
fn run_e2fsck(image: &Path) -> std::result::Result<Option<String>, String> {
    let out = Command::new("e2fsck")
        .arg("-fn")
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run e2fsck: {e}"))?;
    if out.status.success() {
        return Ok(None);
    }
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    let tail: Vec<&str> = text.lines().rev().take(6).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    Ok(Some(format!(
        "exit {} ({})",
        out.status.code().unwrap_or(-1),
        tail.join("; ")
    )))
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}
