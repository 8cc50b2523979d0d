//! `lifeboat copy`, `init --copy-params`, and how a location becomes a
//! backend stack (cache folder, retries, test-only fault injection).

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use lifeboat::store::{Location, OpenOptions};
use lifeboat::{Backend, Id, InitOptions, Progress, Repository, Snapshot, SnapshotFilter};
use serde_json::json;
use zeroize::Zeroizing;

use crate::args::{FromRepoArgs, Global};
use crate::exit;
use crate::output::{ProgressReporter, bytes, print_json};
use crate::password;

/// `$XDG_CACHE_HOME/lifeboat`, or `~/.cache/lifeboat`.
fn default_cache_root() -> Option<PathBuf> {
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|h| PathBuf::from(h).join(".cache"))
    })
    .map(|d| d.join("lifeboat"))
}

/// The root of the local caches: none with `--no-cache`, else
/// `--cache-dir`/`LIFEBOAT_CACHE_DIR`, else the XDG cache folder. The store's
/// metadata cache and the index's table both live below it (each repository
/// in its own folders).
pub fn cache_root(g: &Global) -> Option<PathBuf> {
    if g.no_cache {
        None
    } else if let Some(d) = &g.cache_dir {
        Some(d.clone())
    } else {
        default_cache_root()
    }
}

/// The options for opening `location`: the environment's (retries,
/// connections, `LIFEBOAT_FAULTS` for tests), and the metadata cache under
/// [`cache_root`]: for remote stores, or any store when `--cache-dir` is
/// given (a local repository is otherwise its own cache).
pub fn store_options(g: &Global, location: &str) -> Result<OpenOptions> {
    let mut o = OpenOptions::from_env()?;
    let remote = Location::parse(location)?.is_remote();
    o.cache_dir = if remote || g.cache_dir.is_some() {
        cache_root(g)
    } else {
        None
    };
    Ok(o)
}

/// Open the store at `location` with [`store_options`].
pub fn open_backend(g: &Global, location: &str, create: bool) -> Result<Arc<dyn Backend>> {
    let opts = store_options(g, location)?;
    Ok(lifeboat::open_location_with(location, create, &opts)?)
}

/// The source repository's password: LIFEBOAT_FROM_PASSWORD, a file, a
/// command, or a prompt.
fn source_password(a: &FromRepoArgs) -> Result<Zeroizing<Vec<u8>>> {
    if let Ok(p) = std::env::var("LIFEBOAT_FROM_PASSWORD") {
        return Ok(Zeroizing::new(p.into_bytes()));
    }
    if let Some(f) = &a.from_password_file {
        return password::from_file(f);
    }
    if let Some(c) = &a.from_password_command {
        return password::from_command(c);
    }
    if let Some(p) = password::prompt("enter password for the source repository: ")? {
        return Ok(p);
    }
    bail!(
        "no password for the source repository: set LIFEBOAT_FROM_PASSWORD, \
         LIFEBOAT_FROM_PASSWORD_FILE or LIFEBOAT_FROM_PASSWORD_COMMAND, or use \
         --from-password-file / --from-password-command"
    )
}

fn open_source(g: &Global, a: &FromRepoArgs) -> Result<Repository> {
    let Some(loc) = &a.from_repo else {
        bail!("no source repository given: use --from-repo or set LIFEBOAT_FROM_REPOSITORY");
    };
    let backend = open_backend(g, loc, false)?;
    let pw = source_password(a)?;
    Repository::open(backend, &pw).context("opening the source repository")
}

/// `init --from-repo SRC --copy-params`.
pub fn init_with_params(
    g: &Global,
    from: &FromRepoArgs,
    backend: Arc<dyn Backend>,
    password: &[u8],
    opts: &InitOptions,
) -> Result<Repository> {
    let src = open_source(g, from)?;
    Ok(lifeboat::init_with_params_from(
        backend, password, opts, &src,
    )?)
}

/// `copy --from-repo SRC [SNAPSHOT...]`.
pub fn run(
    g: &Global,
    from: &FromRepoArgs,
    specs: &[String],
    filter: &SnapshotFilter,
) -> Result<u8> {
    let src = open_source(g, from)?;
    let dst = crate::commands::open_repo(g)?;
    let snaps: Vec<(Id, Snapshot)> = if specs.is_empty() {
        src.snapshots()?
            .into_iter()
            .filter(|(_, s)| filter.matches(s))
            .collect()
    } else {
        let mut v = Vec::new();
        for s in specs {
            let found = src.find_snapshot(s, filter)?;
            if !v.iter().any(|(id, _): &(Id, Snapshot)| *id == found.0) {
                v.push(found);
            }
        }
        v
    };
    let progress = Arc::new(Progress::default());
    let reporter = ProgressReporter::start(progress.clone(), "copy", g.json, g.quiet, None);
    let res = lifeboat::copy_snapshots(&src, &dst, &snaps, &progress);
    reporter.finish();
    let r = res?;
    if g.json {
        let copied: Vec<_> = r
            .copied
            .iter()
            .map(|(s, t)| json!({"source": s.to_hex(), "target": t.to_hex()}))
            .collect();
        let skipped: Vec<_> = r.skipped.iter().map(Id::to_hex).collect();
        print_json(&json!({
            "message_type": "summary",
            "snapshots_copied": r.copied.len(),
            "snapshots_skipped": r.skipped.len(),
            "data_blobs_copied": r.data_blobs_copied,
            "tree_blobs_copied": r.tree_blobs_copied,
            "bytes_copied": r.bytes_copied,
            "blobs_present": r.blobs_present,
            "copied": copied,
            "skipped": skipped,
        }));
    } else if !g.quiet {
        for (s, t) in &r.copied {
            println!("snapshot {} copied as {}", s.short(), t.short());
        }
        for s in &r.skipped {
            println!("snapshot {} is already in the target", s.short());
        }
        println!(
            "copied {} snapshots ({} skipped): {} data and {} tree blobs, {}; {} blobs were there already",
            r.copied.len(),
            r.skipped.len(),
            r.data_blobs_copied,
            r.tree_blobs_copied,
            bytes(r.bytes_copied),
            r.blobs_present
        );
    }
    Ok(exit::OK)
}
