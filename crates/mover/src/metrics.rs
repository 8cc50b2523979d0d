//! What a run reports: one `MOVER_RESULT {json}` line on stdout, and a
//! Prometheus textfile (for node-exporter's textfile collector), written to
//! a temporary file, synced and renamed so a scrape never sees half of it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use serde::Serialize;

/// One op of the run.
#[derive(Debug, Clone, Serialize)]
pub struct OpRecord {
    /// The op's name.
    pub op: String,
    /// `ok`, `skipped`, `warning` or `failed`.
    pub result: &'static str,
    /// How long it took.
    pub seconds: f64,
    /// What it did or why it failed, for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunRecord {
    /// `MOVER_NAME` (default the host name): the label alerts group by.
    pub name: String,
    /// `fs`, `block` or `etcd`.
    pub source: String,
    /// Unix time the run started.
    pub started: i64,
    /// The process's exit code.
    pub exit_code: u8,
    /// The ops, in order.
    pub ops: Vec<OpRecord>,
    /// Whether a backup or init created the repository.
    pub repository_created: bool,
    /// The snapshot saved or restored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// Bytes read by the backup.
    pub bytes_read: u64,
    /// Bytes the backup added to the repository (before compression).
    pub bytes_added: u64,
    /// Files backed up or restored.
    pub files: u64,
    /// Entries that could not be read.
    pub errors: u64,
    /// The etcd revision of the snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etcd_revision: Option<i64>,
    /// Snapshots forgotten.
    pub forgotten: u64,
    /// Stale prune locks removed.
    pub stale_locks_removed: u64,
    /// Bytes prune deleted.
    pub prune_deleted_bytes: u64,
    /// Why the run failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The previous file's last success time, so a failed run keeps it.
fn previous_success(path: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .find(|l| l.starts_with("mover_last_success_timestamp_seconds"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

impl RunRecord {
    /// The `MOVER_RESULT` line.
    pub fn result_line(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        format!("MOVER_RESULT {json}")
    }

    /// The textfile's content; `last_success` is the time of the latest
    /// successful run (this one's end, or an earlier run's), if any.
    pub fn prometheus(&self, now: f64, last_success: Option<f64>) -> String {
        let labels = format!(
            "name=\"{}\",source=\"{}\"",
            escape(&self.name),
            escape(&self.source)
        );
        let mut s = String::new();
        let mut metric = |name: &str, help: &str, kind: &str, rows: &[(String, f64)]| {
            let _ = writeln!(s, "# HELP {name} {help}");
            let _ = writeln!(s, "# TYPE {name} {kind}");
            for (extra, v) in rows {
                let _ = writeln!(s, "{name}{{{labels}{extra}}} {v}");
            }
        };
        let one = |v: f64| vec![(String::new(), v)];
        metric(
            "mover_last_run_timestamp_seconds",
            "Unix time the last mover run ended.",
            "gauge",
            &one(now),
        );
        if let Some(t) = last_success {
            metric(
                "mover_last_success_timestamp_seconds",
                "Unix time the last successful mover run ended.",
                "gauge",
                &one(t),
            );
        }
        metric(
            "mover_exit_code",
            "Exit code of the last run (0 is success; docs/mover.md lists the rest).",
            "gauge",
            &one(f64::from(self.exit_code)),
        );
        let durations: Vec<(String, f64)> = self
            .ops
            .iter()
            .map(|o| (format!(",op=\"{}\"", escape(&o.op)), o.seconds))
            .collect();
        metric(
            "mover_operation_duration_seconds",
            "Seconds each op of the last run took.",
            "gauge",
            &durations,
        );
        let results: Vec<(String, f64)> = self
            .ops
            .iter()
            .map(|o| {
                (
                    format!(",op=\"{}\",result=\"{}\"", escape(&o.op), o.result),
                    1.0,
                )
            })
            .collect();
        metric(
            "mover_operation_result",
            "Outcome of each op of the last run.",
            "gauge",
            &results,
        );
        metric(
            "mover_bytes_read_total",
            "Bytes the last backup read.",
            "gauge",
            &one(self.bytes_read as f64),
        );
        metric(
            "mover_bytes_added_total",
            "Bytes the last backup added to the repository.",
            "gauge",
            &one(self.bytes_added as f64),
        );
        metric(
            "mover_files_total",
            "Files the last backup or restore processed.",
            "gauge",
            &one(self.files as f64),
        );
        metric(
            "mover_entry_errors_total",
            "Entries the last backup could not read.",
            "gauge",
            &one(self.errors as f64),
        );
        metric(
            "mover_snapshots_forgotten_total",
            "Snapshots the last forget removed.",
            "gauge",
            &one(self.forgotten as f64),
        );
        metric(
            "mover_stale_locks_removed_total",
            "Expired prune locks the last run removed.",
            "gauge",
            &one(self.stale_locks_removed as f64),
        );
        metric(
            "mover_prune_deleted_bytes",
            "Bytes the last prune deleted.",
            "gauge",
            &one(self.prune_deleted_bytes as f64),
        );
        if let Some(id) = &self.snapshot {
            metric(
                "mover_snapshot_info",
                "The snapshot the last run saved or restored.",
                "gauge",
                &[(format!(",id=\"{}\"", escape(id)), 1.0)],
            );
        }
        if let Some(r) = self.etcd_revision {
            metric(
                "mover_etcd_snapshot_revision",
                "etcd revision of the last etcd snapshot.",
                "gauge",
                &one(r as f64),
            );
        }
        s
    }

    /// Write the textfile at `path` atomically. `success` says whether
    /// this run succeeded; otherwise the previous success time is kept.
    pub fn write_textfile(&self, path: &Path, now: f64, success: bool) -> std::io::Result<()> {
        let last_success = if success {
            Some(now)
        } else {
            previous_success(path)
        };
        let text = self.prometheus(now, last_success);
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "mover.prom".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)?;
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
            Ok(())
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_run_keeps_the_last_success() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.prom");
        let mut r = RunRecord {
            name: "pvc-a".into(),
            source: "fs".into(),
            ..Default::default()
        };
        r.write_textfile(&path, 1000.0, true).unwrap();
        r.exit_code = 3;
        r.write_textfile(&path, 2000.0, false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains(
                "mover_last_success_timestamp_seconds{name=\"pvc-a\",source=\"fs\"} 1000\n"
            )
        );
        assert!(
            text.contains("mover_last_run_timestamp_seconds{name=\"pvc-a\",source=\"fs\"} 2000\n")
        );
        assert!(text.contains("mover_exit_code{name=\"pvc-a\",source=\"fs\"} 3\n"));
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left");
    }

    #[test]
    fn label_values_are_escaped() {
        let r = RunRecord {
            name: "a\"b".into(),
            ..Default::default()
        };
        assert!(r.prometheus(1.0, None).contains("name=\"a\\\"b\""));
    }
}
