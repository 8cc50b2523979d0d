//! Repository storage for Lifeboat.
//!
//! Owns the [`Backend`] trait (a flat namespace of immutable objects with
//! slash-separated names), its implementation over the `object_store` crate
//! (local directories, S3-compatible servers, Google Cloud Storage, Azure
//! Blob Storage, and memory for tests), and the layers stacked on it:
//! [`RetryBackend`] (backoff on transient errors), [`CachedBackend`] (a local,
//! verified cache of content-addressed metadata) and, for tests,
//! [`testing::FaultyBackend`]. [`Location::open_with`] builds the stack.
//!
//! It knows nothing of encryption or of what the objects mean;
//! `lifeboat-core` decides names and contents. The one thing it assumes is
//! the naming rule of the repository format: an object whose last name
//! component is 64 hex digits is named by the BLAKE3 hash of its bytes, which
//! is how the cache verifies what it holds.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

mod cache;
mod cloud;
mod object;
mod retry;
#[doc(hidden)]
pub mod testing;

pub use cache::{CacheStats, CachedBackend, cache_dir_for};
pub use object::{CreateMode, ObjectStoreBackend, RemoteOptions};
pub use retry::{RetryBackend, RetryPolicy};

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
    /// Access was refused (HTTP 401/403, file permissions). Not retried.
    #[error("{path}: permission denied: {reason}")]
    PermissionDenied {
        /// Object name.
        path: String,
        /// Backend message.
        reason: String,
    },
    /// The store could not be reached or answered with a temporary failure
    /// (HTTP 5xx, 429, 408, a timeout, a dropped connection). [`RetryBackend`]
    /// retries these; the caller sees one only once retries are used up.
    #[error("{path}: store unavailable: {reason}")]
    Unavailable {
        /// Object name.
        path: String,
        /// Backend message.
        reason: String,
    },
    /// Any other failure of the store (I/O, full disk, a request the server
    /// rejects). Not retried.
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

    /// Whether trying again later may succeed ([`Error::Unavailable`]).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// The object name the error is about.
    pub fn path(&self) -> &str {
        match self {
            Error::NotFound { path }
            | Error::AlreadyExists { path }
            | Error::Truncated { path, .. }
            | Error::PermissionDenied { path, .. }
            | Error::Unavailable { path, .. }
            | Error::Backend { path, .. } => path,
            Error::InvalidLocation { location, .. } => location,
        }
    }
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
/// Contract, which every implementation must keep and the conformance suite
/// ([`testing::conformance`]) checks:
/// - [`put`](Backend::put) and [`create`](Backend::create) are atomic: a reader
///   sees either no object or the whole object, never a prefix, also after a
///   crash. When they return `Ok`, the object is durable.
/// - [`create`](Backend::create) fails with [`Error::AlreadyExists`] if the
///   name is taken, and never overwrites an object that exists when it
///   starts; where [`exclusive_create`](Backend::exclusive_create) is true,
///   two concurrent creates of one name let exactly one succeed.
/// - Reading a missing object fails with [`Error::NotFound`].
/// - [`get_range`](Backend::get_range) returns exactly the bytes asked for or
///   fails ([`Error::Truncated`] when the object is shorter).
/// - [`list`](Backend::list) issues one listing (paginated by the store), not
///   one request per object.
/// - [`delete`](Backend::delete) of a missing object succeeds. Reads see a
///   delete at once; a listing may still show the object for a moment
///   (Garage filters each replica's part of a listing before merging them),
///   so a caller treats an object that is listed but not found as deleted.
/// - Every call may be repeated after an error: objects are content-addressed,
///   so a repeated put writes the same bytes. [`Error::Unavailable`] means
///   trying again may succeed; other errors are permanent.
/// - Implementations are called from many threads at once and bound their
///   own number of requests in flight.
pub trait Backend: Send + Sync + fmt::Debug {
    /// Store `data` under `path`, replacing any object there.
    fn put(&self, path: &str, data: Bytes) -> Result<()>;
    /// A new object to be written piece by piece, for stores that can hold
    /// an unfinished object outside the repository's names (a local
    /// directory); `None` where objects are sent whole, as with
    /// [`put`](Backend::put). Lets a writer build a large object without
    /// holding it in memory. It must keep `put`'s contract: the object
    /// appears only on [`StagedObject::commit`], whole and durable.
    fn stage(&self) -> Result<Option<Box<dyn StagedObject>>> {
        Ok(None)
    }
    /// Store `data` under `path` only if nothing is there.
    fn create(&self, path: &str, data: Bytes) -> Result<()>;
    /// Read a whole object.
    fn get(&self, path: &str) -> Result<Bytes>;
    /// Read `range` of an object.
    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes>;
    /// Read `range` of an object that holds repository metadata (a pack of
    /// tree blobs). Same contract as [`get_range`](Backend::get_range); a
    /// caching layer may fetch and keep the whole object.
    fn get_metadata_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.get_range(path, range)
    }
    /// Whether [`create`](Backend::create) is exclusive against concurrent
    /// creators. False for S3 servers without conditional writes (Garage
    /// 2.x), where create looks first and then writes: it still refuses to
    /// overwrite an object that is there, but two racing creators can both
    /// succeed. May ask the store once.
    fn exclusive_create(&self) -> Result<bool> {
        Ok(true)
    }
    /// Size of an object.
    fn head(&self, path: &str) -> Result<ObjectInfo>;
    /// All objects whose names start with `prefix` (a folder like `keys/`),
    /// sorted by name.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    /// Remove an object.
    fn delete(&self, path: &str) -> Result<()>;
    /// Where the repository lives, for messages; never includes credentials.
    fn location(&self) -> String;
}

/// An object being written before its name is known; see
/// [`Backend::stage`]. Dropped without a commit, it leaves nothing behind.
pub trait StagedObject: Send + fmt::Debug {
    /// Append `data`.
    fn write(&mut self, data: &[u8]) -> Result<()>;
    /// Bytes written so far.
    fn len(&self) -> u64;
    /// Whether nothing was written.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Make the object durable and visible under `path`, replacing any
    /// object there (as [`Backend::put`]). On error nothing partial
    /// appears under `path`.
    fn commit(self: Box<Self>, path: &str) -> Result<()>;
}

/// How a repository location string is understood.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Location {
    /// A local directory (`/path`, `relative/path` or `file:///path`).
    Local(PathBuf),
    /// A fresh in-memory store (`memory://`), for tests only.
    Memory,
    /// An S3 bucket: `s3://bucket/prefix`, or restic's
    /// `s3:http(s)://host:port/bucket/prefix` which names the endpoint too.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Folder inside the bucket (may be empty).
        prefix: String,
        /// Endpoint given in the location itself.
        endpoint: Option<String>,
    },
    /// A Google Cloud Storage bucket: `gs://bucket/prefix`.
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Folder inside the bucket (may be empty).
        prefix: String,
    },
    /// An Azure Blob Storage container: `az://container/prefix` (the account
    /// comes from `AZURE_STORAGE_ACCOUNT_NAME`).
    Azure {
        /// Container name.
        container: String,
        /// Folder inside the container (may be empty).
        prefix: String,
    },
}

fn invalid(location: &str, reason: impl Into<String>) -> Error {
    Error::InvalidLocation {
        location: cloud::strip_userinfo(location),
        reason: reason.into(),
    }
}

/// Split `bucket/some/prefix` into a bucket and a prefix without slashes at
/// either end.
fn bucket_and_prefix(s: &str, rest: &str, what: &str) -> Result<(String, String)> {
    let rest = rest.trim_matches('/');
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid(s, format!("no {what} name")));
    }
    let prefix = prefix.trim_matches('/');
    if prefix.split('/').any(|c| c == "." || c == "..") {
        return Err(invalid(s, "the prefix may not contain . or .. components"));
    }
    Ok((bucket.to_string(), prefix.to_string()))
}

impl Location {
    /// Parse a repository location.
    pub fn parse(s: &str) -> Result<Location> {
        if s.is_empty() {
            return Err(invalid(s, "empty"));
        }
        if let Some(rest) = s.strip_prefix("file://") {
            return Ok(Location::Local(PathBuf::from(rest)));
        }
        if s.starts_with("memory://") {
            return Ok(Location::Memory);
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = bucket_and_prefix(s, rest, "bucket")?;
            return Ok(Location::S3 {
                bucket,
                prefix,
                endpoint: None,
            });
        }
        if let Some(url) = s.strip_prefix("s3:") {
            // restic's form: s3:https://host[:port]/bucket[/prefix]
            let (scheme, rest) = url
                .split_once("://")
                .filter(|(sc, _)| *sc == "http" || *sc == "https")
                .ok_or_else(|| {
                    invalid(
                        s,
                        "expected s3://bucket/prefix or s3:http(s)://host/bucket/prefix",
                    )
                })?;
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            if host.is_empty() {
                return Err(invalid(s, "no host"));
            }
            let (bucket, prefix) = bucket_and_prefix(s, path, "bucket")?;
            return Ok(Location::S3 {
                bucket,
                prefix,
                endpoint: Some(format!("{scheme}://{host}")),
            });
        }
        if let Some(rest) = s.strip_prefix("gs://") {
            let (bucket, prefix) = bucket_and_prefix(s, rest, "bucket")?;
            return Ok(Location::Gcs { bucket, prefix });
        }
        if let Some(rest) = s.strip_prefix("az://") {
            let (container, prefix) = bucket_and_prefix(s, rest, "container")?;
            return Ok(Location::Azure { container, prefix });
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(invalid(
                s,
                format!(
                    "unsupported scheme {scheme:?} (supported: a plain path, file://, s3://, \
                     s3:http(s)://, gs://, az://, memory://)"
                ),
            ));
        }
        Ok(Location::Local(PathBuf::from(s)))
    }

    /// Whether the store is reached over the network.
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            Location::S3 { .. } | Location::Gcs { .. } | Location::Azure { .. }
        )
    }

    /// Open the store with default options (retries, no cache). With
    /// `create`, a missing local directory is created; otherwise it must
    /// exist.
    pub fn open(&self, create: bool) -> Result<Arc<dyn Backend>> {
        self.open_with(create, &OpenOptions::default())
    }

    /// Open the store and stack the layers `opts` asks for: the store itself
    /// (bounded requests in flight, multipart uploads), fault injection when
    /// configured, [`RetryBackend`], and [`CachedBackend`] when a cache
    /// directory is given.
    pub fn open_with(&self, create: bool, opts: &OpenOptions) -> Result<Arc<dyn Backend>> {
        let base: Arc<dyn Backend> = match self {
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
                Arc::new(ObjectStoreBackend::local(dir)?)
            }
            Location::Memory => Arc::new(ObjectStoreBackend::memory()?),
            Location::S3 {
                bucket,
                prefix,
                endpoint,
            } => Arc::new(cloud::s3(bucket, prefix, endpoint.as_deref(), opts)?),
            Location::Gcs { bucket, prefix } => Arc::new(cloud::gcs(bucket, prefix, opts)?),
            Location::Azure { container, prefix } => {
                Arc::new(cloud::azure(container, prefix, opts)?)
            }
        };
        let mut b = base;
        if let Some(f) = &opts.faults {
            b = Arc::new(testing::FaultyBackend::new(b, f.clone()));
        }
        b = Arc::new(RetryBackend::new(b, opts.retry.clone()));
        if let Some(root) = &opts.cache_dir {
            let dir = cache_dir_for(root, &b.location());
            b = Arc::new(CachedBackend::new(b, dir)?);
        }
        Ok(b)
    }
}

/// How [`Location::open_with`] builds the backend stack.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// Root of the metadata cache (the repository gets a folder inside it);
    /// `None` for no cache.
    pub cache_dir: Option<PathBuf>,
    /// Retries of transient errors.
    pub retry: RetryPolicy,
    /// Connections, timeouts and multipart uploads of remote stores.
    pub remote: RemoteOptions,
    /// Fault injection, for tests only.
    pub faults: Option<testing::FaultConfig>,
    /// Settings for the cloud store's builder, applied after its
    /// environment variables: `object_store` configuration keys such as
    /// `aws_access_key_id` or `aws_endpoint`, for callers that pass
    /// credentials without the environment. Values of keys naming secrets
    /// are kept out of messages like the environment's.
    pub settings: Vec<(String, String)>,
}

/// Names of the environment variables [`OpenOptions::from_env`] reads
/// (besides each cloud's own credential variables).
pub const ENV_VARS: &[&str] = &[
    "LIFEBOAT_STORE_CONNECTIONS",
    "LIFEBOAT_STORE_TIMEOUT",
    "LIFEBOAT_STORE_READ_AHEAD",
    "LIFEBOAT_RETRIES",
    "LIFEBOAT_RETRY_DELAY_MS",
    "LIFEBOAT_S3_CONDITIONAL_PUT",
    "LIFEBOAT_FAULTS",
];

fn env_num<T: std::str::FromStr>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim()
                .parse()
                .map(Some)
                .map_err(|_| Error::InvalidLocation {
                    location: name.to_string(),
                    reason: format!("{name} must be a number, got {v:?}"),
                })
        }
        _ => Ok(None),
    }
}

impl OpenOptions {
    /// Defaults, adjusted by `LIFEBOAT_STORE_CONNECTIONS` (requests in flight
    /// to a remote store), `LIFEBOAT_STORE_TIMEOUT` (seconds per request),
    /// `LIFEBOAT_STORE_READ_AHEAD` (bytes fetched by a short ranged read of
    /// a remote object, 0 for none),
    /// `LIFEBOAT_RETRIES` (retries of a transient error),
    /// `LIFEBOAT_RETRY_DELAY_MS` (first backoff delay),
    /// `LIFEBOAT_S3_CONDITIONAL_PUT` (`auto`, `yes` or `no`: see
    /// [`CreateMode`]) and, for tests only,
    /// `LIFEBOAT_FAULTS` (see [`testing::FaultConfig::parse`]).
    pub fn from_env() -> Result<OpenOptions> {
        let mut o = OpenOptions::default();
        if let Some(n) = env_num::<usize>("LIFEBOAT_STORE_CONNECTIONS")? {
            o.remote.connections = n.max(1);
        }
        if let Some(n) = env_num::<usize>("LIFEBOAT_STORE_READ_AHEAD")? {
            o.remote.read_ahead = n;
        }
        if let Some(s) = env_num::<u64>("LIFEBOAT_STORE_TIMEOUT")? {
            o.remote.timeout = Duration::from_secs(s.max(1));
        }
        if let Some(n) = env_num::<u32>("LIFEBOAT_RETRIES")? {
            o.retry.max_retries = n;
        }
        if let Some(ms) = env_num::<u64>("LIFEBOAT_RETRY_DELAY_MS")? {
            o.retry.first_delay = Duration::from_millis(ms);
        }
        match std::env::var("LIFEBOAT_S3_CONDITIONAL_PUT").as_deref() {
            Err(_) | Ok("") | Ok("auto") => {}
            Ok("yes") => o.remote.create_mode = CreateMode::Conditional,
            Ok("no") => o.remote.create_mode = CreateMode::HeadThenPut,
            Ok(v) => {
                return Err(Error::InvalidLocation {
                    location: "LIFEBOAT_S3_CONDITIONAL_PUT".into(),
                    reason: format!("must be auto, yes or no, not {v:?}"),
                });
            }
        }
        if let Ok(spec) = std::env::var("LIFEBOAT_FAULTS") {
            if !spec.trim().is_empty() {
                o.faults = Some(testing::FaultConfig::parse(&spec)?);
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_backend_keeps_the_contract() {
        let b = Location::Memory.open(true).unwrap();
        testing::conformance(b.as_ref(), "conformance/").unwrap();
    }

    #[test]
    fn local_backend_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let b = Location::parse(dir.path().join("repo").to_str().unwrap())
            .unwrap()
            .open(true)
            .unwrap();
        testing::conformance(b.as_ref(), "").unwrap();
    }

    #[test]
    fn locations_parse() {
        assert_eq!(Location::parse("/x").unwrap(), Location::Local("/x".into()));
        assert_eq!(
            Location::parse("file:///x").unwrap(),
            Location::Local("/x".into())
        );
        assert_eq!(Location::parse("memory://").unwrap(), Location::Memory);
        assert_eq!(
            Location::parse("s3://bkt/a/b/").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                prefix: "a/b".into(),
                endpoint: None
            }
        );
        assert_eq!(
            Location::parse("s3:http://127.0.0.1:3900/bkt").unwrap(),
            Location::S3 {
                bucket: "bkt".into(),
                prefix: String::new(),
                endpoint: Some("http://127.0.0.1:3900".into())
            }
        );
        assert_eq!(
            Location::parse("gs://g/p").unwrap(),
            Location::Gcs {
                bucket: "g".into(),
                prefix: "p".into()
            }
        );
        assert_eq!(
            Location::parse("az://c").unwrap(),
            Location::Azure {
                container: "c".into(),
                prefix: String::new()
            }
        );
        assert!(Location::parse("s3://").is_err());
        assert!(Location::parse("s3://b/../x").is_err());
        assert!(Location::parse("s3:ftp://h/b").is_err());
        assert!(Location::parse("ftp://x").is_err());
        let e = Location::parse("ftp://user:secretpw@x/y").unwrap_err();
        assert!(!e.to_string().contains("secretpw"), "{e}");
        assert!(
            Location::parse("/definitely/not/here")
                .unwrap()
                .open(false)
                .unwrap_err()
                .is_not_found()
        );
    }
}
