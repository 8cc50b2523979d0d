//! How every command opens its repository: the location, the store options
//! from the environment, the local cache and the password.

use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use lifeboat::{Backend, Id, KeyInfo, Location, OpenOptions, Repository, Snapshot};

use crate::args::{FromRepoArgs, Global};
use crate::output::print_warnings;
use crate::password;

/// An open repository. What it skipped while the command used it (damaged
/// index segments, packs read from their headers, stray names) is printed
/// as warnings when the command is done with it: lookups find such things
/// as they go, so the end is the one place that sees them all.
pub struct Opened {
    repo: Repository,
    json: bool,
}

impl Opened {
    fn new(repo: Repository, g: &Global) -> Opened {
        Opened { repo, json: g.json }
    }

    /// The readable snapshots; each one skipped as damaged or stray is
    /// reported as a warning at once. Also returns how many were skipped.
    pub fn readable_snapshots(&self) -> Result<(Vec<(Id, Snapshot)>, usize)> {
        let list = self.repo.snapshots()?;
        print_warnings(self.json, &list.skipped);
        Ok((list.items, list.skipped.len()))
    }

    /// The readable key slots, reporting the skipped ones as warnings.
    pub fn readable_keys(&self) -> Result<Vec<KeyInfo>> {
        let list = self.repo.keys()?;
        print_warnings(self.json, &list.skipped);
        Ok(list.items)
    }
}

impl Deref for Opened {
    type Target = Repository;
    fn deref(&self) -> &Repository {
        &self.repo
    }
}

impl DerefMut for Opened {
    fn deref_mut(&mut self) -> &mut Repository {
        &mut self.repo
    }
}

impl Drop for Opened {
    fn drop(&mut self) {
        print_warnings(self.json, &self.repo.take_warnings());
    }
}

/// The repository location from `-r`/`LIFEBOAT_REPOSITORY`.
pub fn location(g: &Global) -> Result<String> {
    g.repo
        .clone()
        .ok_or_else(|| anyhow!("no repository given: use -r/--repo or set LIFEBOAT_REPOSITORY"))
}

/// The root of the local caches: none with `--no-cache`, else
/// `--cache-dir`/`LIFEBOAT_CACHE_DIR`, else the XDG cache folder. The store's
/// metadata cache and the index's table both live below it (each repository
/// in its own folders).
fn cache_root(g: &Global) -> Option<PathBuf> {
    if g.no_cache {
        None
    } else if let Some(d) = &g.cache_dir {
        Some(d.clone())
    } else {
        lifeboat::default_cache_root()
    }
}

/// The options for opening `location`: the environment's (retries,
/// connections, `LIFEBOAT_FAULTS` for tests), and the metadata cache under
/// [`cache_root`]: for remote stores, or any store when `--cache-dir` is
/// given (a local repository is otherwise its own cache).
fn store_options(g: &Global, location: &str) -> Result<OpenOptions> {
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
pub fn backend(g: &Global, location: &str, create: bool) -> Result<Arc<dyn Backend>> {
    let opts = store_options(g, location)?;
    Ok(lifeboat::open_location_with(location, create, &opts)?)
}

/// The repository of `-r`, with its index (its local table under the cache
/// root).
pub fn repository(g: &Global) -> Result<Opened> {
    let backend = backend(g, &location(g)?, false)?;
    let pw = password::get(g)?;
    let repo = Repository::open_with_cache(backend, &pw, cache_root(g))?;
    Ok(Opened::new(repo, g))
}

/// The repository of `-r` without its index, for index maintenance.
pub fn repository_without_index(g: &Global) -> Result<Opened> {
    let backend = backend(g, &location(g)?, false)?;
    let pw = password::get(g)?;
    let repo = Repository::open_without_index(backend, &pw)?;
    Ok(Opened::new(repo, g))
}

/// The repository of `--from-repo`.
pub fn source_repository(g: &Global, a: &FromRepoArgs) -> Result<Opened> {
    let Some(loc) = &a.from_repo else {
        bail!("no source repository given: use --from-repo or set LIFEBOAT_FROM_REPOSITORY");
    };
    let backend = backend(g, loc, false)?;
    let pw = password::get_source(a)?;
    let repo = Repository::open(backend, &pw).context("opening the source repository")?;
    Ok(Opened::new(repo, g))
}
