//! Repository storage for Lifeboat.
//!
//! Owns the [`Backend`] trait (a flat namespace of immutable objects with
//! slash-separated names), its implementation over the `object_store` crate
//! (local directories, S3-compatible servers, Google Cloud Storage, Azure
//! Blob Storage, and memory for tests), and the layers stacked on it:
//! [`RetryBackend`] (backoff on transient errors), [`CachedBackend`] (a local,
//! verified cache of content-addressed metadata) and, for tests (the
//! `testing` feature), `testing::FaultyBackend`. [`Location::open_with`]
//! builds the stack.
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
mod local;
mod nodelete;
mod object;
mod redact;
mod retry;
/// Test machinery: fault injection, request counters, the conformance
/// suite and a Garage launcher. Built only with the `testing` feature (and
/// for this crate's own unit tests), so production builds carry none of it.
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod testing;
mod traffic;

pub use cache::{CacheStats, CachedBackend, cache_dir_for, default_cache_root};
pub use local::STAGING_DIR;
pub use nodelete::{NoDeleteBackend, NoDeleteRefusal, RefusedOperation};
pub use object::{CreateMode, ObjectStoreBackend, RemoteOptions};
pub use redact::{RedactedCause, error_chain};
pub use retry::{RetryBackend, RetryPolicy};

/// The underlying error a storage [`Error`] keeps as its `source()`: an
/// `object_store::Error`, a `std::io::Error`, or, where its text would show
/// a credential, a [`RedactedCause`] holding that text with the credential
/// taken out. Downcast it to look inside.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How often [`RetryBackend`] tried before it gave up on a transient error.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retried {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Time from the first attempt to giving up.
    pub elapsed: Duration,
}

impl fmt::Display for Retried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " (gave up after {} retries in {:.1}s)",
            self.retries,
            self.elapsed.as_secs_f64()
        )
    }
}

/// ": cause" when there is a cause, for messages that end with their cause.
fn colon_cause(c: &Option<Cause>) -> String {
    c.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
}

fn retried_note(r: &Option<Retried>) -> String {
    r.map(|r| r.to_string()).unwrap_or_default()
}

/// Errors from a storage backend.
///
/// Every message ends with the text of its cause, which `source()` returns
/// as well.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object at that name.
    #[error("{path}: not found")]
    NotFound {
        /// Object name.
        path: String,
    },
    /// A create-if-absent found the object already there (or the store
    /// refused a write on a failed precondition).
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
    /// The repository location, or a setting for opening it, could not be
    /// understood or used.
    #[error("invalid repository location {location:?}: {reason}{}", colon_cause(.source))]
    InvalidLocation {
        /// What was given.
        location: String,
        /// Why it was rejected.
        reason: String,
        /// The error behind it, if any.
        source: Option<Cause>,
    },
    /// Access was refused (HTTP 401/403, file permissions). Not retried.
    #[error("{path}: permission denied: {source}")]
    PermissionDenied {
        /// Object name.
        path: String,
        /// What the store said.
        source: Cause,
    },
    /// The store could not be reached or answered with a temporary failure
    /// (HTTP 5xx, 429, 408, a timeout, a dropped connection). [`RetryBackend`]
    /// retries these; the caller sees one only once retries are used up.
    #[error("{path}: store unavailable{}: {source}", retried_note(.retried))]
    Unavailable {
        /// Object name.
        path: String,
        /// Set by [`RetryBackend`] when it gave up.
        retried: Option<Retried>,
        /// What failed.
        source: Cause,
    },
    /// Any other failure of the store (I/O, full disk, a request the server
    /// rejects). Not retried.
    #[error("{path}: storage error: {source}")]
    Backend {
        /// Object name.
        path: String,
        /// What failed.
        source: Cause,
    },
}

impl Error {
    /// [`Error::Unavailable`]: a failure that may pass if tried again.
    pub fn unavailable(path: impl Into<String>, source: impl Into<Cause>) -> Error {
        Error::Unavailable {
            path: path.into(),
            retried: None,
            source: source.into(),
        }
    }

    /// [`Error::PermissionDenied`].
    pub fn permission_denied(path: impl Into<String>, source: impl Into<Cause>) -> Error {
        Error::PermissionDenied {
            path: path.into(),
            source: source.into(),
        }
    }

    /// [`Error::Backend`]: a permanent failure of the store.
    pub fn backend(path: impl Into<String>, source: impl Into<Cause>) -> Error {
        Error::Backend {
            path: path.into(),
            source: source.into(),
        }
    }

    /// Whether this error means the object does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// Whether trying again later may succeed: a timeout, a dropped or
    /// refused connection, HTTP 5xx, throttling ([`Error::Unavailable`]).
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
/// (`testing::conformance`, with the `testing` feature) checks:
/// - [`put`](Backend::put) and [`create`](Backend::create) are atomic: a reader
///   sees either no object or the whole object, never a prefix, also after a
///   crash or power loss. When they return `Ok`, the object is durable.
///   (Local directories: a file in `staging/`, fsynced, renamed or linked
///   into place, its folder fsynced; docs/storage.md, "Crash model".)
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
    /// Read `range` of an object in order, handing it to `sink` piece by
    /// piece as it arrives, so that a long range is never held whole: the
    /// pieces are not empty and, joined, are the first bytes of the range.
    /// When `sink` returns `false` the read stops there and returns `Ok`.
    /// Otherwise `Ok` means the whole range was handed over; an error may
    /// come after some pieces were, and a caller that tries again asks for
    /// the rest only (as [`RetryBackend`] does). Errors as
    /// [`get_range`](Backend::get_range); a body cut short is
    /// [`Error::Unavailable`].
    ///
    /// The default reads the range with [`get_range`](Backend::get_range)
    /// and hands it over in one piece; see
    /// [`streams_ranges`](Backend::streams_ranges).
    fn get_range_streamed(
        &self,
        path: &str,
        range: Range<u64>,
        sink: &mut dyn FnMut(Bytes) -> bool,
    ) -> Result<()> {
        let b = self.get_range(path, range)?;
        if !b.is_empty() {
            sink(b);
        }
        Ok(())
    }
    /// Whether [`get_range_streamed`](Backend::get_range_streamed) hands a
    /// range over as it arrives, in one request (a remote store), so that a
    /// reader may ask for long ranges without holding them in memory; false
    /// where it reads the whole range first (the default).
    fn streams_ranges(&self) -> bool {
        false
    }
    /// How many objects a writer (a backup's uploaders) should send at
    /// once. A local disk gets 2: its writes and fsyncs gain little from
    /// more. A remote store gets more, so that the round trips and the
    /// server's own work (hashing, replicating) overlap.
    fn upload_parallelism(&self) -> usize {
        2
    }
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
        location: redact::strip_userinfo(location),
        reason: reason.into(),
        source: None,
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
                    local::create_dir_durably(dir).map_err(|e| Error::InvalidLocation {
                        location: dir.display().to_string(),
                        reason: "cannot create directory".into(),
                        source: Some(e.into()),
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
        #[cfg(any(test, feature = "testing"))]
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
    /// Fault injection, for tests only (the `testing` feature).
    #[cfg(any(test, feature = "testing"))]
    pub faults: Option<testing::FaultConfig>,
    /// Settings for the cloud store's builder, applied after its
    /// environment variables: `object_store` configuration keys such as
    /// `aws_access_key_id` or `aws_endpoint`, for callers that pass
    /// credentials without the environment. Values of keys naming secrets
    /// are kept out of messages like the environment's.
    pub settings: Vec<(String, String)>,
}

/// Names of the environment variables [`OpenOptions::from_env`] reads
/// (besides each cloud's own credential variables). `LIFEBOAT_FAULTS` is
/// among them only with the `testing` feature.
pub const ENV_VARS: &[&str] = &[
    "LIFEBOAT_STORE_CONNECTIONS",
    "LIFEBOAT_STORE_TIMEOUT",
    "LIFEBOAT_STORE_READ_AHEAD",
    "LIFEBOAT_RETRIES",
    "LIFEBOAT_RETRY_DELAY_MS",
    "LIFEBOAT_S3_CONDITIONAL_PUT",
    "LIFEBOAT_STORE_STATS",
    #[cfg(any(test, feature = "testing"))]
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
                    source: None,
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
    /// [`CreateMode`]), `LIFEBOAT_STORE_STATS` (a file to append a remote
    /// store's request counters to, see [`RemoteOptions::stats_file`]) and, with the `testing` feature only,
    /// `LIFEBOAT_FAULTS` (see `testing::FaultConfig::parse`).
    pub fn from_env() -> Result<OpenOptions> {
        let mut o = OpenOptions::default();
        if let Some(n) = env_num::<usize>("LIFEBOAT_STORE_CONNECTIONS")? {
            o.remote.connections = n.max(1);
        }
        if let Some(n) = env_num::<usize>("LIFEBOAT_STORE_READ_AHEAD")? {
            o.remote.read_ahead = n;
        }
        if let Some(f) = std::env::var_os("LIFEBOAT_STORE_STATS").filter(|f| !f.is_empty()) {
            o.remote.stats_file = Some(PathBuf::from(f));
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
                    source: None,
                });
            }
        }
        // Test builds only. The CLI's integration tests run the real binary
        // with LIFEBOAT_FAULTS set: the CLI turns `testing` on in its
        // [dev-dependencies], and cargo (resolver 3) unifies dev-dependency
        // features into the binary it builds for those tests, while
        // `cargo build --release` builds it without them.
        #[cfg(any(test, feature = "testing"))]
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
        testing::conformance(b.as_ref(), "suite/").unwrap();
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
