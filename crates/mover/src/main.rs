//! The Lifeboat mover: one static binary run by a Kubernetes Job, in the
//! style of VolSync's movers. It takes its operation from the environment
//! and works on the volume mounted at `/data` (or `MOVER_DATA_DIR`).
//!
//! - `DIRECTION=source`: back up the data directory into the repository.
//! - `DIRECTION=destination`: restore the latest snapshot into it.
//!
//! The repository and password come from `LIFEBOAT_REPOSITORY` and
//! `LIFEBOAT_PASSWORD` (or `LIFEBOAT_PASSWORD_FILE`), as for the CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use lifeboat::{BackupOptions, BackupSource, Progress, Repository, RestoreOptions, SnapshotFilter};

fn password() -> Result<Vec<u8>> {
    if let Ok(p) = std::env::var("LIFEBOAT_PASSWORD") {
        return Ok(p.into_bytes());
    }
    if let Ok(f) = std::env::var("LIFEBOAT_PASSWORD_FILE") {
        let text = std::fs::read(&f).with_context(|| format!("reading {f}"))?;
        let line = text.split(|b| *b == b'\n').next().unwrap_or_default();
        return Ok(line.to_vec());
    }
    bail!("set LIFEBOAT_PASSWORD or LIFEBOAT_PASSWORD_FILE")
}

fn run() -> Result<u8> {
    let repo_loc =
        std::env::var("LIFEBOAT_REPOSITORY").context("LIFEBOAT_REPOSITORY is not set")?;
    let data = PathBuf::from(std::env::var("MOVER_DATA_DIR").unwrap_or_else(|_| "/data".into()));
    let direction = std::env::var("DIRECTION").unwrap_or_default();
    let pw = password()?;
    let progress = Progress::default();
    match direction.as_str() {
        "source" => {
            let backend = lifeboat::open_location(&repo_loc, false)?;
            let repo = Repository::open(backend, &pw)?;
            let report = repo.backup(
                BackupSource::Paths(vec![data]),
                &BackupOptions::default(),
                &progress,
            )?;
            println!("lifeboat-mover: snapshot {} saved", report.id);
            Ok(if report.is_complete() { 0 } else { 3 })
        }
        "destination" => {
            let backend = lifeboat::open_location(&repo_loc, false)?;
            let repo = Repository::open(backend, &pw)?;
            let (id, snap) = repo.find_snapshot("latest", &SnapshotFilter::default())?;
            let path = snap.paths.first().cloned().unwrap_or_default();
            let tmp = data.join(".lifeboat-restore");
            let opts = RestoreOptions {
                target: tmp.clone(),
                ..Default::default()
            };
            let report = repo.restore(&snap, &opts, &progress)?;
            // Move the restored tree's contents into the volume root.
            let restored = tmp.join(path.trim_start_matches('/'));
            for e in std::fs::read_dir(&restored)
                .with_context(|| format!("reading {}", restored.display()))?
            {
                let e = e?;
                let dst = data.join(e.file_name());
                let _ = std::fs::remove_dir_all(&dst);
                let _ = std::fs::remove_file(&dst);
                std::fs::rename(e.path(), &dst)?;
            }
            std::fs::remove_dir_all(&tmp)?;
            println!("lifeboat-mover: restored snapshot {id}");
            Ok(if report.errors.is_empty() { 0 } else { 1 })
        }
        other => bail!("DIRECTION must be source or destination, not {other:?}"),
    }
}

fn main() -> ExitCode {
    match run() {
        Ok(c) => ExitCode::from(c),
        Err(e) => {
            eprintln!("lifeboat-mover: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
