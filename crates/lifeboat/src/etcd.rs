//! etcd snapshots: back one up from a member's snapshot stream (or from a
//! snapshot file) straight into the repository, and restore one to a file
//! that `etcdutl snapshot restore` accepts. The etcd logic is in
//! `lifeboat-etcd`; this module wires it to the backup engine.

use std::io::Write;
use std::path::{Path, PathBuf};

use lifeboat_core::{BackupOptions, BackupReport, BackupSource, Progress};
use lifeboat_etcd::{SnapshotFacts, SnapshotFile, SnapshotReader, meta_keys};
use lifeboat_format::{NodeKind, Snapshot, SourceKind};

pub use lifeboat_etcd::{Endpoint as EtcdEndpoint, ServerStatus as EtcdServerStatus};
pub use lifeboat_etcd::{Error as EtcdError, VerifyError as EtcdVerifyError};

use crate::error::{Error, Result};
use crate::repository::Repository;

/// Where the snapshot comes from.
#[derive(Debug, Clone)]
pub enum EtcdSource {
    /// One member's `Maintenance.Snapshot` stream.
    Endpoint(EtcdEndpoint),
    /// A snapshot file, as `etcdctl snapshot save` writes.
    File(PathBuf),
}

/// Settings of [`Repository::etcd_backup`].
#[derive(Debug, Clone)]
pub struct EtcdBackupOptions {
    /// The snapshot's source.
    pub source: EtcdSource,
    /// First part of the name (K3s and RKE2: `etcd-snapshot` for scheduled
    /// snapshots, `on-demand` for the others); also recorded as a tag.
    pub name: String,
    /// The node name, the middle of the name; also the snapshot's host.
    pub node: String,
    /// Further tags.
    pub tags: Vec<String>,
    /// Snapshot time to record instead of now; the name's unix time is
    /// taken from it.
    pub time: Option<jiff::Timestamp>,
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
}

/// The outcome of [`Repository::etcd_backup`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EtcdBackupReport {
    /// The snapshot's name: `<name>-<node>-<unix time>`, also the name of
    /// its one file.
    pub name: String,
    /// What was verified and recorded.
    pub facts: SnapshotFacts,
    /// The backup.
    pub backup: BackupReport,
}

/// The outcome of [`Repository::etcd_restore`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EtcdRestoreReport {
    /// The file written.
    pub path: PathBuf,
    /// Its bytes (the database and its 32-byte sha256).
    pub bytes: u64,
    /// The sha256 of its database, verified from the disk.
    pub sha256: String,
    /// The revision recorded with the snapshot, if any.
    pub revision: Option<i64>,
}

/// `<name>-<node>-<unix time>`, as K3s and RKE2 name their snapshots.
pub fn etcd_snapshot_name(name: &str, node: &str, unix: i64) -> String {
    format!("{name}-{node}-{unix}")
}

/// `/<name>-<node>`: the path recorded for every etcd snapshot of one
/// node and name, so that `forget` groups them together (the file in each
/// snapshot carries the full, unique name).
pub fn etcd_snapshot_path(name: &str, node: &str) -> String {
    format!("/{name}-{node}")
}

impl Repository {
    /// Back up an etcd snapshot as one file named per
    /// [`etcd_snapshot_name`]. The snapshot is verified as it streams into
    /// the chunker (bbolt meta pages, size, sha256 trailer); one that fails
    /// is an [`Error::EtcdVerify`] and no snapshot is written. The
    /// snapshot's `source_meta` holds the facts (keys in
    /// `lifeboat_etcd::meta_keys`).
    pub fn etcd_backup(
        &self,
        opts: &EtcdBackupOptions,
        progress: &Progress,
    ) -> Result<EtcdBackupReport> {
        let time = opts.time.unwrap_or_else(jiff::Timestamp::now);
        let name = etcd_snapshot_name(&opts.name, &opts.node, time.as_second());
        let mut reader = match &opts.source {
            EtcdSource::Endpoint(ep) => SnapshotReader::connect(ep)?,
            EtcdSource::File(p) => SnapshotReader::open_file(p)?,
        };
        let outcome = reader.outcome();
        let facts_at_end = outcome.clone();
        let node = opts.node.clone();
        let meta_name = name.clone();
        let source = BackupSource::Stream {
            filename: name.clone(),
            path: etcd_snapshot_path(&opts.name, &opts.node),
            reader: &mut reader,
            kind: SourceKind::Etcd,
            meta: Box::new(move || match facts_at_end.get() {
                Some(Ok(f)) => {
                    let mut m = f.to_meta();
                    m.insert(meta_keys::NAME.into(), meta_name);
                    m.insert(meta_keys::NODE.into(), node);
                    Ok(m)
                }
                Some(Err(e)) => Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
                None => Err(std::io::Error::other(
                    "the snapshot was not read to its end",
                )),
            }),
        };
        let mut tags = vec![opts.name.clone()];
        tags.extend(opts.tags.iter().filter(|t| **t != opts.name).cloned());
        let bopts = BackupOptions {
            hostname: Some(opts.node.clone()),
            tags,
            time: Some(time.to_string()),
            threads: opts.threads,
            ..Default::default()
        };
        let res = self.core().backup(source, &bopts, progress);
        let what = match &opts.source {
            EtcdSource::Endpoint(ep) => ep.url.clone(),
            EtcdSource::File(p) => p.display().to_string(),
        };
        match (res, outcome.get()) {
            (_, Some(Err(source))) => Err(Error::EtcdVerify { what, source }),
            (Err(e), _) => Err(e.into()),
            (Ok(backup), Some(Ok(facts))) => Ok(EtcdBackupReport {
                name,
                facts,
                backup,
            }),
            // The backup reads to the end, where the outcome is set.
            (Ok(_), None) => Err(Error::Etcd(EtcdError::Io {
                path: PathBuf::from(what),
                source: std::io::Error::other("the snapshot was not read to its end"),
            })),
        }
    }

    /// Write the etcd snapshot `snapshot` to `output`, which must not
    /// exist: into a temporary file beside it, synced, verified again from
    /// the disk (meta pages, size, sha256 trailer, and the sha256 recorded
    /// at backup), then renamed. The file is what `etcdctl snapshot save`
    /// would have written.
    pub fn etcd_restore(
        &self,
        snapshot: &Snapshot,
        output: &Path,
        progress: &Progress,
    ) -> Result<EtcdRestoreReport> {
        if snapshot.source != SourceKind::Etcd {
            return Err(Error::InvalidArgument(format!(
                "not an etcd snapshot (its source is {:?})",
                snapshot.source
            )));
        }
        let tree = self.load_tree(&snapshot.tree)?;
        let node = match tree.nodes.as_slice() {
            [n] if n.kind == NodeKind::File => n,
            _ => {
                return Err(Error::InvalidArgument(
                    "an etcd snapshot holds one file; this one does not".into(),
                ));
            }
        };
        let mut file = SnapshotFile::create(output)?;
        let mut counted = CountingWriter {
            inner: std::io::BufWriter::with_capacity(1 << 20, &mut file),
            progress,
        };
        let bytes = self.dump_file(node, &mut counted)?;
        counted.inner.flush().map_err(|source| EtcdError::Io {
            path: output.to_path_buf(),
            source,
        })?;
        drop(counted);
        let recorded = snapshot
            .source_meta
            .get(meta_keys::SHA256)
            .map(String::as_str);
        let verified = file.commit_expecting(recorded)?;
        Ok(EtcdRestoreReport {
            path: output.to_path_buf(),
            bytes,
            sha256: verified.sha256_hex(),
            revision: snapshot
                .source_meta
                .get(meta_keys::REVISION)
                .and_then(|r| r.parse().ok()),
        })
    }
}

/// Counts restored bytes into the progress.
struct CountingWriter<'p, W> {
    inner: W,
    progress: &'p Progress,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.progress
            .bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
