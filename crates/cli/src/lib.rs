//! Lifeboat: content-addressed, deduplicating, encrypted backups.
//!
//! This crate is the facade for tools that embed Lifeboat, and the home of
//! the `lifeboat` command-line program. It re-exports a small typed API; the
//! engine lives in `lifeboat-core`, the byte formats in `lifeboat-format`.
//!
//! A whole round trip: create a repository, back up a directory, restore it.
//!
//! ```
//! use lifeboat::{BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let work = tempfile::tempdir()?;
//! let source = work.path().join("data");
//! std::fs::create_dir(&source)?;
//! std::fs::write(source.join("hello.txt"), b"hello, lifeboat")?;
//!
//! // A local repository; cheap key derivation keeps the example fast.
//! let backend = lifeboat::open_location(work.path().join("repo").to_str().unwrap(), true)?;
//! let mut opts = InitOptions::default();
//! opts.kdf = lifeboat::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
//! let repo = Repository::init(backend, b"correct horse", &opts)?;
//!
//! let report = repo.backup(
//!     BackupSource::Paths(vec![source.clone()]),
//!     &BackupOptions::default(),
//!     &Progress::default(),
//! )?;
//! assert!(report.is_complete());
//!
//! let backend = lifeboat::open_location(work.path().join("repo").to_str().unwrap(), false)?;
//! let repo = Repository::open(backend, b"correct horse")?;
//! let (_, snap) = repo.find_snapshot("latest", &Default::default())?;
//! let target = work.path().join("restored");
//! let restore = RestoreOptions { target: target.clone(), ..Default::default() };
//! repo.restore(&snap, &restore, &Progress::default())?;
//!
//! let restored = target.join(source.strip_prefix("/")?).join("hello.txt");
//! assert_eq!(std::fs::read(restored)?, b"hello, lifeboat");
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

pub use lifeboat_core::{
    BackupOptions, BackupReport, BackupSource, Change, CopyReport, DiffEntry, EntryError, Error,
    InitOptions, KeyInfo, PathFilter, Progress, Repository, RestoreOptions, RestoreReport, Result,
    SnapshotFilter, Stats, copy_snapshots, init_with_params_from,
};
pub use lifeboat_format::{Id, KdfParams, Node, NodeKind, Snapshot};
pub use lifeboat_store::Backend;

/// Byte formats (ids, trees, snapshots, index segments, key slots).
pub use lifeboat_format as format;

/// Storage: locations, the backend stack and its options.
pub use lifeboat_store as store;

/// Open the store at `location` (a path, `file://...`, or `memory://` for
/// tests). With `create`, a missing local directory is created.
pub fn open_location(location: &str, create: bool) -> Result<Arc<dyn Backend>> {
    open_location_with(location, create, &store::OpenOptions::default())
}

/// [`open_location`] with options: cache, retries, connections (see
/// [`store::OpenOptions`]). `location` may also be `s3://bucket/prefix`,
/// `gs://bucket/prefix` or `az://container/prefix`, with credentials from
/// each cloud's environment variables.
pub fn open_location_with(
    location: &str,
    create: bool,
    opts: &store::OpenOptions,
) -> Result<Arc<dyn Backend>> {
    let loc = lifeboat_store::Location::parse(location)?;
    match loc.open_with(create, opts) {
        Ok(b) => Ok(b),
        Err(e) if e.is_not_found() => Err(Error::RepositoryNotFound {
            location: location.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}
