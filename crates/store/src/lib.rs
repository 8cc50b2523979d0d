//! Repository storage for Lifeboat.
//!
//! Owns the [`Backend`] trait (a flat namespace of immutable objects with
//! slash-separated names) and its implementation over the `object_store`
//! crate: local directories now, cloud stores later. It knows nothing of
//! encryption or of what the objects mean; `lifeboat-core` decides names and
//! contents.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

/// Errors from a storage backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object at that name.
    #[error("{path}: not found")]
    NotFound {
        /// Object name.
        path: String,
    },
    /// A create-if-absent found the object already there.
    #[error("{path}: already exists")]
    AlreadyExists {
        /// Object name.
        path: String,
    },
    /// The object is shorter than the range asked for.
    #[error("{path}: truncated: wanted bytes {start}..{end}, object has {len}")]
    Truncated {
        /// Object name.
        path: String,
        /// Range start.
        start: u64,
        /// Range end.
        end: u64,
        /// Object length.
        len: u64,
    },
    /// The repository location could not be understood.
    #[error("invalid repository location {location:?}: {reason}")]
    InvalidLocation {
        /// What was given.
        location: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Access was refused.
    #[error("{path}: permission denied: {reason}")]
    PermissionDenied {
        /// Object name.
        path: String,
        /// Backend message.
        reason: String,
    },
    /// Any other failure of the store (I/O, network, full disk).
    #[error("{path}: storage error: {reason}")]
    Backend {
        /// Object name.
        path: String,
        /// Backend message.
        reason: String,
    },
}

impl Error {
    /// Whether this error means the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    fn from_store(path: &str, e: object_store::Error) -> Error {
        let path = path.to_string();
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound { path },
            object_store::Error::AlreadyExists { .. } => Error::AlreadyExists { path },
            object_store::Error::PermissionDenied { source, .. }
            | object_store::Error::Unauthenticated { source, .. } => Error::PermissionDenied {
                path,
                reason: source.to_string(),
            },
            other => Error::Backend {
                path,
                reason: error_chain(&other),
            },
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An object's name and size, from a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Full object name, e.g. `data/ab/ab12...`.
    pub path: String,
    /// Size in bytes.
    pub size: u64,
}

/// Storage for a repository: named, immutable objects.
///
/// Contract, which every implementation must keep and the conformance tests check:
/// - [`put`](Backend::put) and [`create`](Backend::create) are atomic: a reader
///   sees either no object or the whole object, never a prefix, also after a
///   crash. When they return `Ok`, the object is durable.
/// - [`create`](Backend::create) fails with [`Error::AlreadyExists`] if the
///   name is taken, and never overwrites; two concurrent creates of one name
///   let exactly one succeed.
/// - Reading a missing object fails with [`Error::NotFound`].
/// - [`get_range`](Backend::get_range) returns exactly the bytes asked for or
///   fails ([`Error::Truncated`] when the object is shorter).
/// - [`list`](Backend::list) issues a listing, not one request per object.
/// - [`delete`](Backend::delete) of a missing object succeeds.
/// - All calls may be retried after an error other than `NotFound` or
///   `AlreadyExists`: objects are content-addressed, so a repeated put writes
///   the same bytes.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Store `data` under `path`, replacing any object there.
    fn put(&self, path: &str, data: Bytes) -> Result<()>;
    /// Store `data` under `path` only if nothing is there.
    fn create(&self, path: &str, data: Bytes) -> Result<()>;
    /// Read a whole object.
    fn get(&self, path: &str) -> Result<Bytes>;
    /// Read `range` of an object.
    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes>;
    /// Size of an object.
    fn head(&self, path: &str) -> Result<ObjectInfo>;
    /// All objects whose names start with `prefix` (a folder like `keys/`).
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Remove an object.
    fn delete(&self, path: &str) -> Result<()>;
    /// Where the repository lives, for messages; never includes credentials.
    fn location(&self) -> String;
}

/// A [`Backend`] over any `object_store` implementation.
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    runtime: Arc<tokio::runtime::Runtime>,
    /// For local directories: the root, so writes can be fsynced.
    local_root: Option<PathBuf>,
    location: String,
}

impl fmt::Debug for ObjectStoreBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectStoreBackend({})", self.location)
    }
}

fn runtime() -> Result<Arc<tokio::runtime::Runtime>> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lifeboat-io")
        .build()
        .map(Arc::new)
        .map_err(|e| Error::Backend {
            path: String::new(),
            reason: format!("starting I/O runtime: {e}"),
        })
}

impl ObjectStoreBackend {
    /// Wrap an object store; `location` is shown in messages.
    pub fn new(store: Arc<dyn ObjectStore>, location: String) -> Result<ObjectStoreBackend> {
        Ok(ObjectStoreBackend {
            store,
            runtime: runtime()?,
            local_root: None,
            location,
        })
    }

    /// A repository in a local directory, which must exist.
    pub fn local(dir: &Path) -> Result<ObjectStoreBackend> {
        let root = std::fs::canonicalize(dir).map_err(|e| Error::InvalidLocation {
            location: dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            Error::InvalidLocation {
                location: dir.display().to_string(),
                reason: e.to_string(),
            }
        })?;
        let mut b = ObjectStoreBackend::new(Arc::new(fs), root.display().to_string())?;
        b.local_root = Some(root);
        Ok(b)
    }

    /// An in-memory store, for unit tests only: it is empty when created and
    /// gone when dropped.
    pub fn memory() -> Result<ObjectStoreBackend> {
        ObjectStoreBackend::new(
            Arc::new(object_store::memory::InMemory::new()),
            "memory://".into(),
        )
    }

    fn sync_local(&self, path: &str) -> Result<()> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let full = root.join(path);
        let io = |e: std::io::Error| Error::Backend {
            path: path.to_string(),
            reason: format!("fsync: {e}"),
        };
        std::fs::File::open(&full)
            .and_then(|f| f.sync_all())
            .map_err(io)?;
        if let Some(parent) = full.parent() {
            std::fs::File::open(parent)
                .and_then(|f| f.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }

    fn put_mode(&self, path: &str, data: Bytes, mode: PutMode) -> Result<()> {
        let loc = ObjPath::from(path);
        let opts = PutOptions {
            mode,
            ..Default::default()
        };
        self.runtime
            .block_on(
                self.store
                    .put_opts(&loc, PutPayload::from_bytes(data), opts),
            )
            .map_err(|e| Error::from_store(path, e))?;
        self.sync_local(path)
    }
}

impl Backend for ObjectStoreBackend {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.put_mode(path, data, PutMode::Overwrite)
    }

    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        self.put_mode(path, data, PutMode::Create)
    }

    fn get(&self, path: &str) -> Result<Bytes> {
        let loc = ObjPath::from(path);
        self.runtime
            .block_on(async { self.store.get(&loc).await?.bytes().await })
            .map_err(|e| Error::from_store(path, e))
    }

    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let loc = ObjPath::from(path);
        let want = range.end.saturating_sub(range.start);
        let res = self
            .runtime
            .block_on(self.store.get_range(&loc, range.clone()));
        let truncated = |len| Error::Truncated {
            path: path.to_string(),
            start: range.start,
            end: range.end,
            len,
        };
        match res {
            Ok(b) if b.len() as u64 == want => Ok(b),
            Ok(_) => Err(truncated(self.head(path).map(|h| h.size).unwrap_or(0))),
            Err(object_store::Error::NotFound { .. }) => Err(Error::NotFound { path: path.into() }),
            Err(e) => match self.head(path) {
                Ok(h) if h.size < range.end => Err(truncated(h.size)),
                _ => Err(Error::from_store(path, e)),
            },
        }
    }

    fn head(&self, path: &str) -> Result<ObjectInfo> {
        let loc = ObjPath::from(path);
        let meta = self
            .runtime
            .block_on(self.store.head(&loc))
            .map_err(|e| Error::from_store(path, e))?;
        Ok(ObjectInfo {
            path: path.to_string(),
            size: meta.size,
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let p = prefix.trim_end_matches('/');
        let loc = (!p.is_empty()).then(|| ObjPath::from(p));
        let metas: Vec<object_store::ObjectMeta> = self
            .runtime
            .block_on(self.store.list(loc.as_ref()).try_collect())
            .map_err(|e| Error::from_store(prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| ObjectInfo {
                path: m.location.to_string(),
                size: m.size,
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, path: &str) -> Result<()> {
        let loc = ObjPath::from(path);
        match self.runtime.block_on(self.store.delete(&loc)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::from_store(path, e)),
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

/// How a repository location string is understood.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A local directory (`/path`, `relative/path` or `file:///path`).
    Local(PathBuf),
    /// A fresh in-memory store (`memory://`), for tests only.
    Memory,
}

impl Location {
    /// Parse a repository location.
    pub fn parse(s: &str) -> Result<Location> {
        if s.is_empty() {
            return Err(Error::InvalidLocation {
                location: s.into(),
                reason: "empty".into(),
            });
        }
        if let Some(rest) = s.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if s == "memory://" || s.starts_with("memory://") {
            return Ok(Location::Memory);
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(Error::InvalidLocation {
                location: s.into(),
                reason: format!(
                    "unsupported scheme {scheme:?} (supported: file://, a plain path, memory://)"
                ),
            });
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// Open the store. With `create`, a missing local directory is created;
    /// otherwise it must exist.
    pub fn open(&self, create: bool) -> Result<Arc<dyn Backend>> {
        match self {
            Location::Local(dir) => {
                if create {
                    std::fs::create_dir_all(dir).map_err(|e| Error::InvalidLocation {
                        location: dir.display().to_string(),
                        reason: format!("cannot create directory: {e}"),
                    })?;
                } else if !dir.is_dir() {
                    return Err(Error::NotFound {
                        path: dir.display().to_string(),
                    });
                }
                Ok(Arc::new(ObjectStoreBackend::local(dir)?))
            }
            Location::Memory => Ok(Arc::new(ObjectStoreBackend::memory()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contract(b: &dyn Backend) {
        assert!(b.get("keys/none").unwrap_err().is_not_found());
        b.put("keys/a", Bytes::from_static(b"hello")).unwrap();
        assert_eq!(b.get("keys/a").unwrap(), Bytes::from_static(b"hello"));
        assert!(matches!(
            b.create("keys/a", Bytes::from_static(b"x")),
            Err(Error::AlreadyExists { .. })
        ));
        assert_eq!(b.get("keys/a").unwrap(), Bytes::from_static(b"hello"));
        b.create("keys/b", Bytes::from_static(b"world!")).unwrap();
        b.put("data/ab/abcd", Bytes::from_static(b"0123456789"))
            .unwrap();
        assert_eq!(
            b.get_range("data/ab/abcd", 2..5).unwrap(),
            Bytes::from_static(b"234")
        );
        assert!(matches!(
            b.get_range("data/ab/abcd", 5..50),
            Err(Error::Truncated { len: 10, .. })
        ));
        let keys = b.list("keys/").unwrap();
        assert_eq!(
            keys,
            vec![
                ObjectInfo {
                    path: "keys/a".into(),
                    size: 5
                },
                ObjectInfo {
                    path: "keys/b".into(),
                    size: 6
                }
            ]
        );
        assert_eq!(b.list("data/").unwrap().len(), 1);
        assert_eq!(b.list("snapshots/").unwrap(), vec![]);
        assert_eq!(b.head("keys/b").unwrap().size, 6);
        b.delete("keys/a").unwrap();
        b.delete("keys/a").unwrap();
        assert!(b.get("keys/a").unwrap_err().is_not_found());
    }

    #[test]
    fn memory_backend_keeps_the_contract() {
        contract(&ObjectStoreBackend::memory().unwrap());
    }

    #[test]
    fn local_backend_keeps_the_contract() {
        let dir = std::env::temp_dir().join(format!("lb-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let b = Location::parse(dir.to_str().unwrap())
            .unwrap()
            .open(true)
            .unwrap();
        contract(b.as_ref());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn locations_parse() {
        assert_eq!(Location::parse("/x").unwrap(), Location::Local("/x".into()));
        assert_eq!(
            Location::parse("file:///x").unwrap(),
            Location::Local("/x".into())
        );
        assert_eq!(Location::parse("memory://").unwrap(), Location::Memory);
        assert!(Location::parse("ftp://x").is_err());
        assert!(
            Location::parse("/definitely/not/here")
                .unwrap()
                .open(false)
                .unwrap_err()
                .is_not_found()
        );
    }
}
