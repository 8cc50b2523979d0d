//! [`ObjectStoreBackend`]: the [`Backend`] over any `object_store` store.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path as ObjPath;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart,
};

use crate::local::{LocalRoot, Placement, is_plain_name};
use crate::redact::cause;
use crate::traffic::Traffic;
use crate::{Backend, Error, ObjectInfo, Result};

/// Settings for remote stores.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Requests in flight at once, over all threads.
    pub connections: usize,
    /// Limit for one request, transfer included.
    pub timeout: Duration,
    /// Limit for opening a connection.
    pub connect_timeout: Duration,
    /// Objects at least this large are uploaded in parts.
    pub multipart_threshold: usize,
    /// Size of one part.
    pub part_size: usize,
    /// Parts of one object uploaded at once.
    pub part_concurrency: usize,
    /// How [`Backend::create`] keeps from overwriting.
    pub create_mode: CreateMode,
    /// A ranged read shorter than this fetches this much from its start and
    /// keeps it for the reads that follow (0: off).
    pub read_ahead: usize,
    /// Read-ahead windows kept in memory.
    pub read_ahead_windows: usize,
    /// Append the store's request counters (requests by kind, bytes, the
    /// latency of ranged reads) as one JSON line to this file when the
    /// store is dropped (`LIFEBOAT_STORE_STATS`).
    pub stats_file: Option<PathBuf>,
}

/// How a remote store does create-if-absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum CreateMode {
    /// Find out on the first create: write a probe object twice, the second
    /// time conditionally, and see whether the server refuses.
    #[default]
    Auto,
    /// A conditional write (`If-None-Match: *` on S3): exclusive.
    Conditional,
    /// Look (HEAD), then write: refuses to overwrite an object that is
    /// there, but two racing creators can both succeed. For S3 servers that
    /// ignore `If-None-Match` (Garage 2.x).
    HeadThenPut,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            connections: 8,
            timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            multipart_threshold: 32 << 20,
            part_size: 8 << 20,
            part_concurrency: 4,
            create_mode: CreateMode::Auto,
            read_ahead: 4 << 20,
            read_ahead_windows: 8,
            stats_file: None,
        }
    }
}

/// A counting semaphore for blocking callers.
#[derive(Debug)]
struct Limiter {
    max: usize,
    used: Mutex<usize>,
    freed: Condvar,
}

struct Permit<'a>(&'a Limiter);

impl Limiter {
    fn new(max: usize) -> Limiter {
        Limiter {
            max: max.max(1),
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used >= self.max {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= 1;
        self.0.freed.notify_one();
    }
}

/// Recently read stretches of objects, for ranged reads that come in order.
///
/// Restore reads a pack's blobs one after another, each a small ranged read;
/// on S3 every request costs a round trip (and on Garage, often a 40 ms
/// delayed ACK). So a short read of a remote object fetches `window` bytes
/// from its start (the server clips at the end of the object) and later
/// reads inside that stretch are served from memory. Objects are immutable,
/// so a window never goes stale; the last `max` windows are kept.
#[derive(Debug)]
struct ReadAhead {
    window: u64,
    max: usize,
    /// (object, start, bytes), most recently used last.
    windows: Mutex<Vec<(String, u64, Bytes)>>,
}

impl ReadAhead {
    fn find(&self, path: &str, r: &Range<u64>) -> Option<Bytes> {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let i = w.iter().rposition(|(p, start, b)| {
            p == path && *start <= r.start && r.end <= *start + b.len() as u64
        })?;
        let hit = w.remove(i);
        let (s, e) = ((r.start - hit.1) as usize, (r.end - hit.1) as usize);
        let out = hit.2.slice(s..e);
        w.push(hit);
        Some(out)
    }

    fn keep(&self, path: &str, start: u64, b: Bytes) {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() >= self.max.max(1) {
            w.remove(0);
        }
        w.push((path.to_string(), start, b));
    }
}

/// A [`Backend`] over any `object_store` implementation.
pub struct ObjectStoreBackend {
    store: Arc<dyn ObjectStore>,
    runtime: Arc<tokio::runtime::Runtime>,
    /// For local directories: the root, which writes go to directly (see
    /// [`LocalRoot`]) rather than through `store`, so they are durable.
    local_root: Option<Arc<LocalRoot>>,
    location: String,
    /// For remote stores: the bound on requests in flight.
    limiter: Option<Limiter>,
    /// For remote stores: multipart settings.
    remote: Option<RemoteOptions>,
    /// Whether create is a conditional write, once known.
    conditional: OnceLock<bool>,
    /// For remote stores: recently read windows.
    read_ahead: Option<ReadAhead>,
    /// Credential values given in settings rather than the environment,
    /// to keep out of messages.
    secrets: Vec<String>,
    /// What the requests cost so far.
    traffic: Traffic,
}

impl Drop for ObjectStoreBackend {
    fn drop(&mut self) {
        let Some(file) = self.remote.as_ref().and_then(|r| r.stats_file.as_ref()) else {
            return;
        };
        use std::io::Write;
        let line = format!("{}\n", self.traffic.to_json());
        // Best effort: these are measurements, not results.
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
        {
            let _ = f.write_all(line.as_bytes());
        }
    }
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
        .enable_all()
        .build()
        .map(Arc::new)
        .map_err(|e| Error::backend("<I/O runtime>", e))
}

/// Whether an `object_store` error is worth retrying: transport failures
/// (connect, send, timeout, dropped connection, truncated body) and the
/// statuses S3 and its kin use for "try again" (5xx, 429, 408, and S3's
/// 200-with-an-error-body).
fn is_transient(e: &object_store::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cur {
        if c.downcast_ref::<object_store::client::HttpError>()
            .is_some()
        {
            return true;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind as K;
            if matches!(
                io.kind(),
                K::ConnectionReset
                    | K::ConnectionAborted
                    | K::ConnectionRefused
                    | K::TimedOut
                    | K::BrokenPipe
                    | K::UnexpectedEof
            ) {
                return true;
            }
        }
        cur = c.source();
    }
    // The status of a failed request is only in the message: the error type
    // that carries it is private to object_store.
    let msg = e.to_string();
    if let Some(i) = msg.find("status code: ") {
        let code = &msg[i + 13..];
        return code.starts_with('5') || code.starts_with("429") || code.starts_with("408");
    }
    msg.contains("Server returned error response")
}

impl Error {
    /// The error for `e` from a request for `path`; the cause is kept,
    /// as text without `secrets` if it would show one.
    pub(crate) fn from_store(path: &str, e: object_store::Error, secrets: &[String]) -> Error {
        let path = path.to_string();
        match e {
            object_store::Error::NotFound { .. } => Error::NotFound { path },
            object_store::Error::AlreadyExists { .. }
            | object_store::Error::Precondition { .. } => Error::AlreadyExists { path },
            object_store::Error::PermissionDenied { .. }
            | object_store::Error::Unauthenticated { .. } => {
                Error::permission_denied(path, cause(e, secrets))
            }
            other if is_transient(&other) => Error::unavailable(path, cause(other, secrets)),
            other => Error::backend(path, cause(other, secrets)),
        }
    }

    /// The error for a failed local file operation on `path`.
    pub(crate) fn from_io(path: &str, e: std::io::Error) -> Error {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::NotFound => Error::NotFound {
                path: path.to_string(),
            },
            K::PermissionDenied => Error::permission_denied(path, e),
            _ => Error::backend(path, e),
        }
    }
}

impl ObjectStoreBackend {
    /// Wrap an object store; `location` is shown in messages. No bound on
    /// requests in flight, no multipart uploads.
    pub fn new(store: Arc<dyn ObjectStore>, location: String) -> Result<ObjectStoreBackend> {
        Ok(ObjectStoreBackend {
            store,
            runtime: runtime()?,
            local_root: None,
            location,
            limiter: None,
            remote: None,
            conditional: OnceLock::new(),
            read_ahead: None,
            secrets: Vec::new(),
            traffic: Traffic::default(),
        })
    }

    /// Wrap a remote object store: at most `opts.connections` requests in
    /// flight, large objects uploaded in parts.
    pub fn remote(
        store: Arc<dyn ObjectStore>,
        location: String,
        opts: &RemoteOptions,
    ) -> Result<ObjectStoreBackend> {
        let mut b = ObjectStoreBackend::new(store, location)?;
        b.limiter = Some(Limiter::new(opts.connections));
        b.remote = Some(opts.clone());
        if opts.read_ahead > 0 && opts.read_ahead_windows > 0 {
            b.read_ahead = Some(ReadAhead {
                window: opts.read_ahead as u64,
                max: opts.read_ahead_windows,
                windows: Mutex::new(Vec::new()),
            });
        }
        match opts.create_mode {
            CreateMode::Auto => {}
            CreateMode::Conditional => {
                let _ = b.conditional.set(true);
            }
            CreateMode::HeadThenPut => {
                let _ = b.conditional.set(false);
            }
        }
        Ok(b)
    }

    pub(crate) fn set_secrets(&mut self, secrets: Vec<String>) {
        self.secrets = secrets;
    }

    fn err(&self, path: &str, e: object_store::Error) -> Error {
        Error::from_store(path, e, &self.secrets)
    }

    /// Whether the store refuses a conditional write over an existing
    /// object; asks it once (see [`CreateMode::Auto`]).
    fn conditional_create(&self) -> Result<bool> {
        if let Some(c) = self.conditional.get() {
            return Ok(*c);
        }
        let probe = format!(
            ".lifeboat-probe/{}",
            blake3::hash(
                format!(
                    "{}-{:?}-{:?}",
                    std::process::id(),
                    std::time::SystemTime::now(),
                    std::thread::current().id()
                )
                .as_bytes()
            )
            .to_hex()
        );
        self.put_mode(&probe, Bytes::from_static(b"1"), PutMode::Overwrite)?;
        let res = self.put_mode(&probe, Bytes::from_static(b"2"), PutMode::Create);
        let _ = self.delete(&probe);
        let supported = match res {
            Err(Error::AlreadyExists { .. }) => true,
            Ok(()) => false,
            // Servers that reject the header outright.
            Err(Error::Backend { .. }) => false,
            Err(e) => return Err(e),
        };
        Ok(*self.conditional.get_or_init(|| supported))
    }

    /// A repository in a local directory, which must exist.
    pub fn local(dir: &Path) -> Result<ObjectStoreBackend> {
        let root = std::fs::canonicalize(dir).map_err(|e| Error::InvalidLocation {
            location: dir.display().to_string(),
            reason: "cannot resolve the directory".into(),
            source: Some(e.into()),
        })?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(&root).map_err(|e| {
            Error::InvalidLocation {
                location: dir.display().to_string(),
                reason: "cannot open the directory".into(),
                source: Some(e.into()),
            }
        })?;
        let mut b = ObjectStoreBackend::new(Arc::new(fs), root.display().to_string())?;
        b.local_root = Some(Arc::new(LocalRoot::new(root)));
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

    /// Run `fut` on the I/O runtime, holding a request slot.
    fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
        self.timed(fut).0
    }

    /// [`Self::block_on`], and how long `fut` took once it had its slot.
    fn timed<F: std::future::Future>(&self, fut: F) -> (F::Output, Duration) {
        let asked = Instant::now();
        let _permit = self.limiter.as_ref().map(Limiter::acquire);
        let started = Instant::now();
        self.traffic.waited(started - asked);
        let _counted = self.traffic.start();
        let out = self.runtime.block_on(fut);
        (out, started.elapsed())
    }

    /// For a local repository, the file behind `path`, when the name is
    /// plain (what Lifeboat writes: hex names under a few folders), so that
    /// it maps to the same file as in `object_store`'s layout.
    fn local_file(&self, path: &str) -> Option<PathBuf> {
        let root = self.local_root.as_ref()?.path();
        is_plain_name(path).then(|| root.join(path))
    }

    /// A local read without the async runtime: open and `pread` on the
    /// calling thread. Through `object_store` each read is a task on
    /// tokio's blocking pool, and its hand-offs cost about 20 futex calls
    /// per read: 200k of them in a restore of 100k files.
    fn read_local(&self, path: &str, file: &Path, range: Option<Range<u64>>) -> Result<Bytes> {
        use std::os::unix::fs::FileExt;
        let io = |e: std::io::Error| Error::from_io(path, e);
        let f = std::fs::File::open(file).map_err(io)?;
        let len = f.metadata().map_err(io)?.len();
        let range = range.unwrap_or(0..len);
        if range.end > len {
            return Err(Error::Truncated {
                path: path.to_string(),
                start: range.start,
                end: range.end,
                len,
            });
        }
        let mut buf = vec![0u8; range.end.saturating_sub(range.start) as usize];
        if !buf.is_empty() {
            f.read_exact_at(&mut buf, range.start).map_err(io)?;
        }
        Ok(Bytes::from(buf))
    }

    fn put_mode(&self, path: &str, data: Bytes, mode: PutMode) -> Result<()> {
        let loc = ObjPath::from(path);
        Traffic::add(&self.traffic.put, 1);
        Traffic::add(&self.traffic.bytes_written, data.len() as u64);
        let multipart = self
            .remote
            .as_ref()
            .filter(|r| matches!(mode, PutMode::Overwrite) && data.len() >= r.multipart_threshold);
        let res = if let Some(r) = multipart {
            self.block_on(put_multipart(
                self.store.as_ref(),
                &loc,
                data,
                r.part_size,
                r.part_concurrency,
            ))
        } else {
            let opts = PutOptions {
                mode,
                ..Default::default()
            };
            self.block_on(
                self.store
                    .put_opts(&loc, PutPayload::from_bytes(data), opts),
            )
            .map(|_| ())
        };
        res.map_err(|e| self.err(path, e))
    }
}

async fn put_multipart(
    store: &dyn ObjectStore,
    loc: &ObjPath,
    data: Bytes,
    part_size: usize,
    concurrency: usize,
) -> object_store::Result<()> {
    let upload = store.put_multipart(loc).await?;
    let mut w = WriteMultipart::new_with_chunk_size(upload, part_size.max(5 << 20));
    let mut rest = data;
    while !rest.is_empty() {
        if let Err(e) = w.wait_for_capacity(concurrency.max(1)).await {
            // Best effort: the error that stopped us is the one to report.
            let _ = w.abort().await;
            return Err(e);
        }
        let n = rest.len().min(part_size);
        w.put(rest.split_to(n));
    }
    w.finish().await.map(|_| ())
}

impl Backend for ObjectStoreBackend {
    /// In a local directory, through `staging/` like a staged object (see
    /// `local.rs`); `object_store`'s own local writes rename without an
    /// fsync first.
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        if let Some(root) = &self.local_root {
            return root.write(path, &data, Placement::Replace);
        }
        self.put_mode(path, data, PutMode::Overwrite)
    }

    /// In a local directory: a new file under `staging/`, which no listing
    /// of the repository reads, renamed into place on commit.
    fn stage(&self) -> Result<Option<Box<dyn crate::StagedObject>>> {
        let Some(root) = &self.local_root else {
            return Ok(None);
        };
        root.stage()
            .map(|s| Some(Box::new(s) as Box<dyn crate::StagedObject>))
    }

    /// In a local directory, as [`put`](Backend::put) but linked into
    /// place, which fails if the name is taken.
    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        if let Some(root) = &self.local_root {
            return root.write(path, &data, Placement::CreateNew);
        }
        if self.remote.is_none() || self.conditional_create()? {
            return self.put_mode(path, data, PutMode::Create);
        }
        match self.head(path) {
            Ok(_) => Err(Error::AlreadyExists { path: path.into() }),
            Err(e) if e.is_not_found() => self.put_mode(path, data, PutMode::Overwrite),
            Err(e) => Err(e),
        }
    }

    fn exclusive_create(&self) -> Result<bool> {
        if self.remote.is_none() {
            return Ok(true);
        }
        self.conditional_create()
    }

    fn get(&self, path: &str) -> Result<Bytes> {
        if let Some(file) = self.local_file(path) {
            return self.read_local(path, &file, None);
        }
        let loc = ObjPath::from(path);
        Traffic::add(&self.traffic.get, 1);
        let b = self
            .block_on(async { self.store.get(&loc).await?.bytes().await })
            .map_err(|e| self.err(path, e))?;
        Traffic::add(&self.traffic.get_bytes, b.len() as u64);
        Ok(b)
    }

    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        if let Some(file) = self.local_file(path) {
            return self.read_local(path, &file, Some(range));
        }
        let loc = ObjPath::from(path);
        let want = range.end.saturating_sub(range.start);
        if want == 0 {
            let h = self.head(path)?;
            if h.size < range.end {
                return Err(Error::Truncated {
                    path: path.to_string(),
                    start: range.start,
                    end: range.end,
                    len: h.size,
                });
            }
            return Ok(Bytes::new());
        }
        let truncated = |len| Error::Truncated {
            path: path.to_string(),
            start: range.start,
            end: range.end,
            len,
        };
        if let Some(ra) = self.read_ahead.as_ref().filter(|ra| want < ra.window) {
            if let Some(b) = ra.find(path, &range) {
                Traffic::add(&self.traffic.read_ahead_hits, 1);
                return Ok(b);
            }
            let window = range.start..range.start + ra.window;
            let (res, took) = self.timed(self.store.get_range(&loc, window));
            let got = res.as_ref().map_or(0, |b| b.len() as u64);
            self.traffic.range_read(got, took);
            match res {
                // The server clips the window at the end of the object.
                Ok(b) if b.len() as u64 >= want => {
                    let out = b.slice(..want as usize);
                    ra.keep(path, range.start, b);
                    return Ok(out);
                }
                Ok(b) => return Err(truncated(range.start + b.len() as u64)),
                Err(e) => {
                    let err = self.err(path, e);
                    if err.is_not_found() || err.is_transient() {
                        return Err(err);
                    }
                    // A start past the end, for one: the plain read below
                    // tells it apart.
                }
            }
        }
        let (res, took) = self.timed(self.store.get_range(&loc, range.clone()));
        let got = res.as_ref().map_or(0, |b| b.len() as u64);
        self.traffic.range_read(got, took);
        match res {
            Ok(b) if b.len() as u64 == want => Ok(b),
            Ok(_) => Err(truncated(self.head(path)?.size)),
            Err(e) => {
                let err = self.err(path, e);
                if err.is_not_found() || err.is_transient() {
                    return Err(err);
                }
                // A range past the end is an error for most stores; tell
                // "too short" apart from other failures.
                match self.head(path) {
                    Ok(h) if h.size < range.end => Err(truncated(h.size)),
                    _ => Err(err),
                }
            }
        }
    }

    /// On a remote store: one request, its body handed over as it comes
    /// in. The request slot is held until the body is read or `sink` stops.
    fn get_range_streamed(
        &self,
        path: &str,
        range: Range<u64>,
        sink: &mut dyn FnMut(Bytes) -> bool,
    ) -> Result<()> {
        let want = range.end.saturating_sub(range.start);
        if self.remote.is_none() || want == 0 {
            let b = self.get_range(path, range)?;
            if !b.is_empty() {
                sink(b);
            }
            return Ok(());
        }
        let loc = ObjPath::from(path);
        let mut got = 0u64;
        let (res, took) = self.timed(async {
            let opts = GetOptions {
                range: Some(range.clone().into()),
                ..Default::default()
            };
            let mut body = self.store.get_opts(&loc, opts).await?.into_stream();
            while let Some(piece) = body.try_next().await? {
                // Never more than asked for, whatever the server sends.
                let n = (piece.len() as u64).min(want - got);
                if n == 0 {
                    continue;
                }
                got += n;
                if !sink(piece.slice(..n as usize)) {
                    return Ok(false);
                }
                if got == want {
                    break;
                }
            }
            Ok::<bool, object_store::Error>(true)
        });
        self.traffic.range_read(got, took);
        let truncated = |len| Error::Truncated {
            path: path.to_string(),
            start: range.start,
            end: range.end,
            len,
        };
        match res {
            Ok(false) => Ok(()),
            Ok(true) if got == want => Ok(()),
            // The server clips a range at the end of the object; a body
            // that ends early from a long enough object was cut off.
            Ok(true) => match self.head(path)?.size {
                len if len < range.end => Err(truncated(len)),
                _ => Err(Error::unavailable(
                    path,
                    format!("short read: got {got} of the {want} bytes at {range:?}"),
                )),
            },
            Err(e) => {
                let err = self.err(path, e);
                if got > 0 || err.is_not_found() || err.is_transient() {
                    return Err(err);
                }
                match self.head(path) {
                    Ok(h) if h.size < range.end => Err(truncated(h.size)),
                    _ => Err(err),
                }
            }
        }
    }

    fn streams_ranges(&self) -> bool {
        self.remote.is_some()
    }

    fn upload_parallelism(&self) -> usize {
        match &self.remote {
            // Half the connections (the other half for reads, index
            // segments and the like), 2 to 4: each upload holds a pack of
            // memory.
            Some(r) => (r.connections / 2).clamp(2, 4),
            None => 2,
        }
    }

    fn head(&self, path: &str) -> Result<ObjectInfo> {
        let loc = ObjPath::from(path);
        Traffic::add(&self.traffic.head, 1);
        let meta = self
            .block_on(self.store.head(&loc))
            .map_err(|e| self.err(path, e))?;
        Ok(ObjectInfo {
            path: path.to_string(),
            size: meta.size,
        })
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let p = prefix.trim_end_matches('/');
        let loc = (!p.is_empty()).then(|| ObjPath::from(p));
        Traffic::add(&self.traffic.list, 1);
        let metas: Vec<object_store::ObjectMeta> = self
            .block_on(self.store.list(loc.as_ref()).try_collect())
            .map_err(|e| self.err(prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| ObjectInfo {
                path: m.location.to_string(),
                size: m.size,
            })
            .filter(|o| o.path.starts_with(prefix))
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn delete(&self, path: &str) -> Result<()> {
        let loc = ObjPath::from(path);
        Traffic::add(&self.traffic.delete, 1);
        match self.block_on(self.store.delete(&loc)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(path, e)),
        }
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_leave_nothing_in_staging() {
        let dir = tempfile::tempdir().unwrap();
        let b = ObjectStoreBackend::local(dir.path()).unwrap();
        b.put("a/aa", bytes::Bytes::from_static(b"one")).unwrap();
        b.create("b/ab/abcd", bytes::Bytes::from_static(b"two"))
            .unwrap();
        let refused = b.create("a/aa", bytes::Bytes::from_static(b"other"));
        assert!(
            matches!(refused, Err(Error::AlreadyExists { .. })),
            "{refused:?}"
        );
        let escaping = b.put("a/../../outside", bytes::Bytes::from_static(b"x"));
        assert!(escaping.is_err(), "{escaping:?}");
        assert!(!dir.path().parent().unwrap().join("outside").exists());
        assert_eq!(b.get("a/aa").unwrap().as_ref(), b"one");
        assert_eq!(b.get("b/ab/abcd").unwrap().as_ref(), b"two");
        let staged: Vec<_> = std::fs::read_dir(dir.path().join(crate::STAGING_DIR))
            .unwrap()
            .collect();
        assert!(staged.is_empty(), "left in staging: {staged:?}");
    }

    #[test]
    fn remote_stores_take_more_uploads_at_once_than_a_local_disk() {
        let dir = tempfile::tempdir().unwrap();
        let local = ObjectStoreBackend::local(dir.path()).unwrap();
        assert_eq!(local.upload_parallelism(), 2);
        let mem = || Arc::new(object_store::memory::InMemory::new()) as Arc<dyn ObjectStore>;
        let remote = |connections| {
            let opts = RemoteOptions {
                connections,
                ..RemoteOptions::default()
            };
            ObjectStoreBackend::remote(mem(), "test".into(), &opts)
                .unwrap()
                .upload_parallelism()
        };
        // Half the connections, from 2 to 4.
        assert_eq!(remote(8), 4);
        assert_eq!(remote(32), 4);
        assert_eq!(remote(6), 3);
        assert_eq!(remote(1), 2);
    }

    #[test]
    fn limiter_bounds_concurrency() {
        let l = Arc::new(Limiter::new(3));
        let peak = Arc::new(Mutex::new((0usize, 0usize)));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (l, peak) = (l.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _p = l.acquire();
                    {
                        let mut g = peak.lock().unwrap();
                        g.0 += 1;
                        g.1 = g.1.max(g.0);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                    peak.lock().unwrap().0 -= 1;
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let g = peak.lock().unwrap();
        assert_eq!(g.0, 0);
        assert!(g.1 <= 3 && g.1 >= 1, "peak {}", g.1);
    }

    #[test]
    fn store_errors_keep_their_cause() {
        let timeout = object_store::Error::Generic {
            store: "S3",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut)),
        };
        let e = Error::from_store("a/x", timeout, &[]);
        assert!(e.is_transient(), "{e:?}");
        let cause = std::error::Error::source(&e).unwrap();
        assert!(
            cause.downcast_ref::<object_store::Error>().is_some(),
            "{cause:?}"
        );
        let io = cause
            .source()
            .and_then(|c| c.downcast_ref::<std::io::Error>());
        assert_eq!(
            io.map(std::io::Error::kind),
            Some(std::io::ErrorKind::TimedOut)
        );
        // A cause that would show a credential is kept as redacted text.
        let leaky = object_store::Error::Generic {
            store: "S3",
            source: "rejected key s3cr3t-value-123".into(),
        };
        let e = Error::from_store("a/x", leaky, &["s3cr3t-value-123".to_string()]);
        assert!(!format!("{e} {e:?}").contains("s3cr3t"), "{e:?}");
        assert!(e.to_string().contains("rejected key <redacted>"), "{e}");
    }

    #[test]
    fn status_codes_are_classified() {
        let mk = |msg: &str| object_store::Error::Generic {
            store: "S3",
            source: msg.to_string().into(),
        };
        assert!(is_transient(&mk(
            "Error performing PUT x - Server returned non-2xx status code: 503 Service Unavailable: "
        )));
        assert!(is_transient(&mk(
            "Server returned non-2xx status code: 429 Too Many Requests"
        )));
        assert!(!is_transient(&mk(
            "Server returned non-2xx status code: 400 Bad Request: <Error>"
        )));
        assert!(!is_transient(&mk("Operation not supported")));
        let io = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert!(is_transient(&io));
    }
}
