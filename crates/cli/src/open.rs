//! How every command opens its repository: the location, the store options
//! from the environment, the local cache and the password.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use lifeboat::{Backend, Location, OpenOptions, Repository};

use crate::args::{FromRepoArgs, Global};
use crate::password;

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
pub fn repository(g: &Global) -> Result<Repository> {
    let backend = backend(g, &location(g)?, false)?;
    let pw = password::get(g)?;
    Ok(Repository::open_with_cache(backend, &pw, cache_root(g))?)
}

/// The repository of `-r` without its index, for index maintenance.
pub fn repository_without_index(g: &Global) -> Result<Repository> {
    let backend = backend(g, &location(g)?, false)?;
    let pw = password::get(g)?;
    Ok(Repository::open_without_index(backend, &pw)?)
}

/// The repository of `--from-repo`.
pub fn source_repository(g: &Global, a: &FromRepoArgs) -> Result<Repository> {
    let Some(loc) = &a.from_repo else {
        bail!("no source repository given: use --from-repo or set LIFEBOAT_FROM_REPOSITORY");
    };
    let backend = backend(g, loc, false)?;
    let pw = password::get_source(a)?;
    Repository::open(backend, &pw).context("opening the source repository")
}
