//! Test support: a fault-injecting backend, request counters, and the
//! storage conformance suite. Compiled only with the `testing` feature
//! (and for this crate's unit tests); [`crate::OpenOptions::from_env`]
//! stacks a [`FaultyBackend`] only then, when `LIFEBOAT_FAULTS` is set.

use std::collections::HashMap;
use std::fmt;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;

use crate::{Backend, Error, ObjectInfo, Result};

pub mod garage;

/// What [`FaultyBackend`] does to requests.
///
/// Written `key=value,...`, e.g. `seed=7,transient=0.2,latency_ms=20,latency=0.5`:
/// - `seed`: makes the choice of failing requests reproducible (default 0);
/// - `transient`: fraction of requests failing with [`Error::Unavailable`];
/// - `permanent`: fraction failing with [`Error::PermissionDenied`];
/// - `after`: inject nothing into the first N requests (default 0);
/// - `latency_ms` and `latency`: delay that fraction of requests (default
///   all of them when `latency_ms` is given) by that many milliseconds;
/// - `prefix`: only requests for objects under this prefix (default all);
/// - `lost_replies`: fraction of transient faults on writes that happen
///   after the write landed, as when an answer is lost (default 0);
/// - `stats`: append the request counters as one JSON line to this file
///   when the backend is dropped;
/// - `trace`: append one line per request to this file as it starts:
///   `<request> <write> <op> <path>`, where `<request>` numbers every
///   request from 1, `<write>` counts the writes (put, create, delete) up
///   to and including this request, and `<op>` is `put`, `create`, `get`,
///   `get_range`, `head`, `list` or `delete` (each line is one `write(2)`
///   to a file opened for appending, so it survives a kill);
/// - `kill_at`: the process sends itself SIGKILL at the start of its N-th
///   request (counted from 1, after its `trace` line and before it reaches
///   the store): a crash at a chosen point, with no unwinding, no `Drop`
///   and no flushing;
/// - `kill_on`: which requests `kill_at` counts: `requests` (every one, the
///   default) or `writes` (puts, creates and deletes only, which do not
///   depend on what a cache or a parallel reader happened to fetch);
/// - `kill_before`: the process sends itself SIGKILL at the start of its
///   first put or create of an object whose name starts with this prefix
///   (after its `trace` line): a crash just before a chosen kind of object
///   is written, wherever it falls in the run (how many packs come before
///   an index segment, for one, differs from run to run);
/// - `dropped`: fraction of requests that fail as a connection reset by
///   the peer would ([`Error::Unavailable`] whose cause is an
///   `io::Error` of kind `ConnectionReset`); on a write, half of them strike
///   after the write landed, as when the connection drops before the answer;
/// - `short_reads`: fraction of successful reads (`get`, `get_range`) whose
///   reply is cut short to half its length, as a body cut off by a proxy
///   that still said 200 would be;
/// - `flip`: fraction of successful reads of at least one byte with one
///   byte of the reply flipped (`^ 0x01` at a position that depends on the
///   seed), as a bad disk, cable or memory might.
///
/// Faults are drawn in this order from one number per request:
/// `permanent`, `transient`, `dropped` (their sum may not exceed 1); the
/// read damage (`short_reads`, `flip`) is drawn independently of them.
///
/// `kill_at`, `kill_on`, `kill_before` and `trace` see every request,
/// whatever `after` and `prefix` say.
///
/// Whether a request fails depends only on the seed, the operation, the
/// object name and how many times that name was asked for before, not on
/// thread timing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultConfig {
    /// Seed.
    pub seed: u64,
    /// Fraction of requests failing with a transient error.
    pub transient: f64,
    /// Fraction of requests failing with a permanent error.
    pub permanent: f64,
    /// Requests left alone before injection starts.
    pub after: u64,
    /// Added latency.
    pub latency: Duration,
    /// Fraction of requests delayed.
    pub latency_rate: f64,
    /// Only names under this prefix.
    pub prefix: Option<String>,
    /// Fraction of write faults that strike after the write.
    pub lost_replies: f64,
    /// Where to write the counters.
    pub stats_file: Option<PathBuf>,
    /// Where to trace every request.
    pub trace_file: Option<PathBuf>,
    /// SIGKILL the process at the start of this request (from 1).
    pub kill_at: Option<u64>,
    /// Which requests `kill_at` counts.
    pub kill_on: KillOn,
    /// SIGKILL the process at the start of its first put or create under
    /// this prefix.
    pub kill_before: Option<String>,
    /// Fraction of requests failing as a dropped connection.
    pub dropped: f64,
    /// Fraction of successful reads cut short.
    pub short_reads: f64,
    /// Fraction of successful reads with one byte flipped.
    pub flip: f64,
}

/// Which requests [`FaultConfig::kill_at`] counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum KillOn {
    /// Every request.
    #[default]
    Requests,
    /// Puts, creates and deletes.
    Writes,
}

fn bad(spec: &str, why: impl fmt::Display) -> Error {
    Error::InvalidLocation {
        location: format!("LIFEBOAT_FAULTS={spec}"),
        reason: why.to_string(),
        source: None,
    }
}

/// The cause of an error [`FaultyBackend`] makes up.
#[derive(Debug, thiserror::Error)]
#[error("injected {} fault in {op} (LIFEBOAT_FAULTS)", if *.transient { "transient" } else { "permanent" })]
pub struct InjectedFault {
    /// The operation that failed.
    pub op: &'static str,
    /// Whether it is reported as transient.
    pub transient: bool,
}

impl FaultConfig {
    /// Parse the `key=value,...` form.
    pub fn parse(spec: &str) -> Result<FaultConfig> {
        let mut c = FaultConfig::default();
        let mut latency_rate = None;
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(spec, format!("{part:?} is not key=value")))?;
            let rate = || -> Result<f64> {
                v.parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| bad(spec, format!("{k} must be a fraction in [0, 1]")))
            };
            let num = || -> Result<u64> {
                v.parse::<u64>()
                    .map_err(|_| bad(spec, format!("{k} must be a whole number")))
            };
            match k {
                "seed" => c.seed = num()?,
                "transient" => c.transient = rate()?,
                "permanent" => c.permanent = rate()?,
                "after" => c.after = num()?,
                "latency_ms" => c.latency = Duration::from_millis(num()?),
                "latency" => latency_rate = Some(rate()?),
                "prefix" => c.prefix = Some(v.to_string()),
                "lost_replies" => c.lost_replies = rate()?,
                "dropped" => c.dropped = rate()?,
                "short_reads" => c.short_reads = rate()?,
                "flip" => c.flip = rate()?,
                "stats" => c.stats_file = Some(PathBuf::from(v)),
                "trace" => c.trace_file = Some(PathBuf::from(v)),
                "kill_at" => match num()? {
                    0 => return Err(bad(spec, "kill_at counts from 1")),
                    n => c.kill_at = Some(n),
                },
                "kill_before" if !v.is_empty() => c.kill_before = Some(v.to_string()),
                "kill_before" => return Err(bad(spec, "kill_before needs a prefix")),
                "kill_on" => {
                    c.kill_on = match v {
                        "requests" => KillOn::Requests,
                        "writes" => KillOn::Writes,
                        _ => return Err(bad(spec, "kill_on must be requests or writes")),
                    }
                }
                _ => return Err(bad(spec, format!("unknown key {k:?}"))),
            }
        }
        if c.transient + c.permanent + c.dropped > 1.0 {
            return Err(bad(spec, "transient + permanent + dropped exceeds 1"));
        }
        c.latency_rate = latency_rate.unwrap_or(if c.latency.is_zero() { 0.0 } else { 1.0 });
        Ok(c)
    }
}

/// Operations, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Op {
    Put,
    Create,
    Get,
    GetRange,
    Head,
    List,
    Delete,
}

const OPS: [Op; 7] = [
    Op::Put,
    Op::Create,
    Op::Get,
    Op::GetRange,
    Op::Head,
    Op::List,
    Op::Delete,
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Put => "put",
            Op::Create => "create",
            Op::Get => "get",
            Op::GetRange => "get_range",
            Op::Head => "head",
            Op::List => "list",
            Op::Delete => "delete",
        }
    }

    fn is_write(self) -> bool {
        matches!(self, Op::Put | Op::Create | Op::Delete)
    }
}

/// Counters of the requests that reached a [`FaultyBackend`].
#[derive(Debug, Default)]
pub struct RequestStats {
    counts: [AtomicU64; 7],
    /// Writes per top-level folder (`data`, `index`, ...).
    writes_by_folder: Mutex<HashMap<String, u64>>,
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    transient: AtomicU64,
    permanent: AtomicU64,
    dropped: AtomicU64,
    short_reads: AtomicU64,
    flipped: AtomicU64,
}

impl RequestStats {
    fn count(&self, op: Op, path: &str) {
        let i = OPS.iter().position(|o| *o == op).unwrap_or(0);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        if matches!(op, Op::Put | Op::Create) {
            let folder = path.split('/').next().unwrap_or("").to_string();
            *self
                .writes_by_folder
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(folder)
                .or_default() += 1;
        }
    }

    /// Requests of one kind.
    pub fn of(&self, op: Op) -> u64 {
        let i = OPS.iter().position(|o| *o == op).unwrap_or(0);
        self.counts[i].load(Ordering::Relaxed)
    }

    /// All requests.
    pub fn requests(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Puts and creates of objects in `folder` (`data`, `index`, ...).
    pub fn writes_in(&self, folder: &str) -> u64 {
        self.writes_by_folder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(folder)
            .copied()
            .unwrap_or(0)
    }

    /// Transient faults injected.
    pub fn transient_faults(&self) -> u64 {
        self.transient.load(Ordering::Relaxed)
    }

    /// Permanent faults injected.
    pub fn permanent_faults(&self) -> u64 {
        self.permanent.load(Ordering::Relaxed)
    }

    /// Dropped connections injected.
    pub fn dropped_connections(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Reads cut short.
    pub fn short_reads(&self) -> u64 {
        self.short_reads.load(Ordering::Relaxed)
    }

    /// Reads with a byte flipped.
    pub fn flipped_reads(&self) -> u64 {
        self.flipped.load(Ordering::Relaxed)
    }

    /// The counters as one line of JSON.
    pub fn to_json(&self) -> String {
        let mut s = String::from("{");
        for (op, c) in OPS.iter().zip(&self.counts) {
            let _ = write!(s, "\"{}\":{},", op.name(), c.load(Ordering::Relaxed));
        }
        let mut folders: Vec<(String, u64)> = self
            .writes_by_folder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        folders.sort();
        s.push_str("\"writes_by_folder\":{");
        let f: Vec<String> = folders
            .iter()
            .map(|(k, v)| format!("\"{}\":{v}", k.escape_default()))
            .collect();
        s.push_str(&f.join(","));
        let _ = write!(
            s,
            "}},\"bytes_written\":{},\"bytes_read\":{},\"transient_faults\":{},\"permanent_faults\":{},\
             \"dropped_connections\":{},\"short_reads\":{},\"flipped_reads\":{}}}",
            self.bytes_written.load(Ordering::Relaxed),
            self.bytes_read.load(Ordering::Relaxed),
            self.transient.load(Ordering::Relaxed),
            self.permanent.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.short_reads.load(Ordering::Relaxed),
            self.flipped.load(Ordering::Relaxed),
        );
        s
    }
}

/// A [`Backend`] that injects errors and latency into the requests it passes
/// on, per its [`FaultConfig`], and counts them. For tests only.
pub struct FaultyBackend {
    inner: Arc<dyn Backend>,
    cfg: FaultConfig,
    stats: Arc<RequestStats>,
    seen: Mutex<HashMap<(Op, String), u64>>,
    total: AtomicU64,
    writes: AtomicU64,
    /// The open `trace` file; `None` until the first request, or when it
    /// cannot be opened.
    trace: Mutex<Option<std::fs::File>>,
}

impl fmt::Debug for FaultyBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyBackend({:?})", self.inner)
    }
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

enum Fate {
    Pass,
    Transient { after: bool },
    Permanent,
    Dropped { after: bool },
}

/// What happens to a successful read's reply.
#[derive(Clone, Copy)]
enum ReadDamage {
    None,
    Short,
    /// Flip the byte at this position modulo the reply's length.
    Flip(u64),
}

/// The cause of a dropped connection [`FaultyBackend`] makes up.
fn connection_reset(op: Op) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        format!(
            "connection reset by peer during {} (injected by LIFEBOAT_FAULTS)",
            op.name()
        ),
    )
}

impl FaultyBackend {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Backend>, cfg: FaultConfig) -> FaultyBackend {
        FaultyBackend {
            inner,
            cfg,
            stats: Arc::new(RequestStats::default()),
            seen: Mutex::new(HashMap::new()),
            total: AtomicU64::new(0),
            writes: AtomicU64::new(0),
            trace: Mutex::new(None),
        }
    }

    /// The counters.
    pub fn stats(&self) -> Arc<RequestStats> {
        self.stats.clone()
    }

    /// Trace the request and, when it is the one `kill_at` names, kill the
    /// process.
    fn trace_and_kill(&self, n: u64, op: Op, path: &str) {
        let w = if op.is_write() {
            self.writes.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            self.writes.load(Ordering::Relaxed)
        };
        if let Some(f) = &self.cfg.trace_file {
            use std::io::Write;
            let mut t = self.trace.lock().unwrap_or_else(|p| p.into_inner());
            if t.is_none() {
                *t = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(f)
                    .ok();
            }
            if let Some(file) = t.as_mut() {
                let line = format!("{n} {w} {} {}\n", op.name(), path.escape_default());
                let _ = file.write_all(line.as_bytes());
            }
        }
        let counted = match self.cfg.kill_on {
            KillOn::Requests => Some(n),
            KillOn::Writes => op.is_write().then_some(w),
        };
        if let (Some(at), Some(c)) = (self.cfg.kill_at, counted)
            && c >= at
        {
            kill_self();
        }
        if let Some(p) = &self.cfg.kill_before
            && matches!(op, Op::Put | Op::Create)
            && path.starts_with(p.as_str())
        {
            kill_self();
        }
    }

    fn decide(&self, op: Op, path: &str) -> (Fate, ReadDamage) {
        self.stats.count(op, path);
        let n = self.total.fetch_add(1, Ordering::Relaxed);
        self.trace_and_kill(n + 1, op, path);
        if n < self.cfg.after {
            return (Fate::Pass, ReadDamage::None);
        }
        if let Some(p) = &self.cfg.prefix {
            if !path.starts_with(p.as_str()) {
                return (Fate::Pass, ReadDamage::None);
            }
        }
        let k = {
            let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
            let e = seen.entry((op, path.to_string())).or_default();
            *e += 1;
            *e
        };
        let h = mix(self.cfg.seed ^ mix(blake3_u64(path) ^ mix(op as u64 ^ (k << 8))));
        let (u_fault, u_latency, u_after) = (unit(h), unit(mix(h)), unit(mix(h ^ 1)));
        if u_latency < self.cfg.latency_rate && !self.cfg.latency.is_zero() {
            std::thread::sleep(self.cfg.latency);
        }
        let damage = if !matches!(op, Op::Get | Op::GetRange) {
            ReadDamage::None
        } else if unit(mix(h ^ 2)) < self.cfg.short_reads {
            ReadDamage::Short
        } else if unit(mix(h ^ 3)) < self.cfg.flip {
            ReadDamage::Flip(mix(h ^ 4))
        } else {
            ReadDamage::None
        };
        let (permanent, transient) = (self.cfg.permanent, self.cfg.transient);
        let fate = if u_fault < permanent {
            self.stats.permanent.fetch_add(1, Ordering::Relaxed);
            Fate::Permanent
        } else if u_fault < permanent + transient {
            self.stats.transient.fetch_add(1, Ordering::Relaxed);
            Fate::Transient {
                after: op.is_write() && u_after < self.cfg.lost_replies,
            }
        } else if u_fault < permanent + transient + self.cfg.dropped {
            self.stats.dropped.fetch_add(1, Ordering::Relaxed);
            Fate::Dropped {
                after: op.is_write() && u_after < 0.5,
            }
        } else {
            Fate::Pass
        };
        (fate, damage)
    }

    /// Apply `damage` to a read's reply.
    fn damage(&self, damage: ReadDamage, b: Bytes) -> Bytes {
        match damage {
            ReadDamage::Short if !b.is_empty() => {
                self.stats.short_reads.fetch_add(1, Ordering::Relaxed);
                b.slice(..b.len() / 2)
            }
            ReadDamage::Flip(at) if !b.is_empty() => {
                self.stats.flipped.fetch_add(1, Ordering::Relaxed);
                let mut v = b.to_vec();
                let i = (at % v.len() as u64) as usize;
                v[i] ^= 0x01;
                Bytes::from(v)
            }
            _ => b,
        }
    }

    fn call<T>(
        &self,
        op: Op,
        path: &str,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<(T, ReadDamage)> {
        let transient = || {
            Error::unavailable(
                path,
                InjectedFault {
                    op: op.name(),
                    transient: true,
                },
            )
        };
        let (fate, damage) = self.decide(op, path);
        let r = match fate {
            Fate::Pass => f(),
            Fate::Permanent => Err(Error::permission_denied(
                path,
                InjectedFault {
                    op: op.name(),
                    transient: false,
                },
            )),
            Fate::Transient { after: false } => Err(transient()),
            Fate::Transient { after: true } => {
                f()?;
                Err(transient())
            }
            Fate::Dropped { after } => {
                if after {
                    f()?;
                }
                Err(Error::unavailable(path, connection_reset(op)))
            }
        };
        r.map(|v| (v, damage))
    }

    /// [`call`](FaultyBackend::call) for a read, with its reply damaged
    /// as the configuration says.
    fn read(&self, op: Op, path: &str, f: impl FnOnce() -> Result<Bytes>) -> Result<Bytes> {
        let (b, damage) = self.call(op, path, f)?;
        Ok(self.damage(damage, b))
    }
}

/// SIGKILL this process: it ends at once, with no unwinding, no `Drop` and
/// no flushing of its own buffers (what it already wrote to files stays, as
/// the kernel holds it).
fn kill_self() -> ! {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    if kill(Pid::this(), Signal::SIGKILL).is_err() {
        // Not reached on Linux; a test that asserts the signal sees this.
        std::process::abort();
    }
    // The signal is pending; nothing more may happen in this thread.
    loop {
        std::thread::park();
    }
}

fn blake3_u64(s: &str) -> u64 {
    let h = blake3::hash(s.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b)
}

impl Drop for FaultyBackend {
    fn drop(&mut self) {
        if let Some(f) = &self.cfg.stats_file {
            use std::io::Write;
            let line = format!(
                "{{\"location\":\"{}\",\"stats\":{}}}\n",
                self.inner.location().escape_default(),
                self.stats.to_json()
            );
            if let Ok(mut file) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)
            {
                let _ = file.write_all(line.as_bytes());
            }
        }
    }
}

impl Backend for FaultyBackend {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        let n = data.len() as u64;
        self.call(Op::Put, path, || self.inner.put(path, data))?;
        self.stats.bytes_written.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        let n = data.len() as u64;
        self.call(Op::Create, path, || self.inner.create(path, data))?;
        self.stats.bytes_written.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    fn get(&self, path: &str) -> Result<Bytes> {
        let b = self.read(Op::Get, path, || self.inner.get(path))?;
        self.stats
            .bytes_read
            .fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }

    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let b = self.read(Op::GetRange, path, || self.inner.get_range(path, range))?;
        self.stats
            .bytes_read
            .fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }

    fn exclusive_create(&self) -> Result<bool> {
        self.inner.exclusive_create()
    }

    fn head(&self, path: &str) -> Result<ObjectInfo> {
        self.call(Op::Head, path, || self.inner.head(path))
            .map(|(h, _)| h)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.call(Op::List, prefix, || self.inner.list(prefix))
            .map(|(l, _)| l)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.call(Op::Delete, path, || self.inner.delete(path))
            .map(|(d, _)| d)
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

// ---- conformance --------------------------------------------------------------

/// A break of the [`Backend`] contract found by [`conformance`].
#[derive(Debug, thiserror::Error)]
#[error("{what}{}", .source.as_ref().map(|e| format!(": unexpected error: {e}")).unwrap_or_default())]
pub struct Violation {
    /// What the backend did wrong, or the step that failed.
    pub what: String,
    /// The backend's error, where a step failed.
    pub source: Option<Error>,
}

impl From<&str> for Violation {
    fn from(what: &str) -> Violation {
        Violation {
            what: what.to_string(),
            source: None,
        }
    }
}

macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(Violation { what: format!($($msg)+), source: None });
        }
    };
}

fn ok<T>(r: Result<T>, what: &str) -> Result<T, Violation> {
    r.map_err(|e| Violation {
        what: what.to_string(),
        source: Some(e),
    })
}

/// A deterministic, incompressible byte pattern.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    let mut z = seed;
    while v.len() < len {
        z = mix(z);
        v.extend_from_slice(&z.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// How long a listing may go on showing an object after its delete was
/// acknowledged (reads may not lag at all).
pub const LISTING_CATCHES_UP: std::time::Duration = std::time::Duration::from_secs(30);

/// [`Backend::get_range_streamed`]'s pieces joined; an empty piece is a
/// violation of its contract, reported as a backend error.
fn streamed(b: &dyn Backend, path: &str, r: Range<u64>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut empty = false;
    b.get_range_streamed(path, r, &mut |piece| {
        empty |= piece.is_empty();
        out.extend_from_slice(&piece);
        true
    })?;
    if empty {
        return Err(Error::backend(
            path,
            "get_range_streamed handed over an empty piece",
        ));
    }
    Ok(out)
}

/// The storage contract of [`Backend`], checked against `b`. Objects are
/// written under `root` (e.g. `"conformance/run-1/"`, or `""`), which should
/// be empty; they are deleted again at the end. Returns the first violation.
///
/// Covers: not-found on reads of a missing object; put, get and overwrite;
/// create-if-absent (refuses to overwrite, and where the backend says its
/// creates are exclusive, of 8 threads racing to create one name exactly
/// one wins); ranged reads, plain and streamed, including past the end;
/// head; listing (sorted, by folder, no neighbours with a shared name
/// prefix, more objects than one listing page of S3); a large object (40
/// MiB: multipart for remote stores) read back whole and in ranges (also
/// streamed, and a stream stopped by its reader);
/// parallel puts; delete, also of a missing object, seen by reads at once
/// and by listings within [`LISTING_CATCHES_UP`].
pub fn conformance(b: &dyn Backend, root: &str) -> Result<(), Violation> {
    let p = |s: &str| format!("{root}{s}");

    // Not found.
    for r in [
        b.get(&p("a/none")).map(|_| ()),
        b.get_range(&p("a/none"), 0..1).map(|_| ()),
        b.get_range_streamed(&p("a/none"), 0..1, &mut |_| true),
        b.head(&p("a/none")).map(|_| ()),
    ] {
        ensure!(
            matches!(r, Err(Error::NotFound { .. })),
            "reading a missing object: want NotFound, got {r:?}"
        );
    }
    ensure!(
        ok(b.list(&p("d/")), "list of an empty folder")?.is_empty(),
        "an empty folder lists objects"
    );

    // Put, get, overwrite.
    ok(b.put(&p("a/a"), Bytes::from_static(b"hello")), "put")?;
    ensure!(
        ok(b.get(&p("a/a")), "get")? == Bytes::from_static(b"hello"),
        "get returns other bytes than were put"
    );
    ok(b.put(&p("a/a"), Bytes::from_static(b"hello!")), "overwrite")?;
    ensure!(
        ok(b.get(&p("a/a")), "get")? == Bytes::from_static(b"hello!"),
        "put does not replace"
    );
    ok(b.put(&p("a/empty"), Bytes::new()), "put of an empty object")?;
    ensure!(
        ok(b.get(&p("a/empty")), "get of an empty object")?.is_empty(),
        "empty object reads back non-empty"
    );

    // Create-if-absent.
    let r = b.create(&p("a/a"), Bytes::from_static(b"x"));
    ensure!(
        matches!(r, Err(Error::AlreadyExists { .. })),
        "create over an existing object: want AlreadyExists, got {r:?}"
    );
    ensure!(
        ok(b.get(&p("a/a")), "get")? == Bytes::from_static(b"hello!"),
        "a refused create changed the object"
    );
    ok(b.create(&p("a/b"), Bytes::from_static(b"world!")), "create")?;
    ensure!(
        ok(b.get(&p("a/b")), "get")? == Bytes::from_static(b"world!"),
        "create wrote other bytes"
    );
    let race = p("f/race");
    if !ok(b.exclusive_create(), "exclusive_create")? {
        // Only the non-overwriting half of the contract holds; checked above.
        return conformance_rest(b, root);
    }
    let wins: Vec<Result<()>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..8u8)
            .map(|i| {
                let race = &race;
                s.spawn(move || b.create(race, Bytes::from(vec![i; 64])))
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::backend(
                        race.as_str(),
                        std::io::Error::other("thread panicked"),
                    ))
                })
            })
            .collect()
    });
    let won: Vec<usize> = wins
        .iter()
        .enumerate()
        .filter(|(_, r)| r.is_ok())
        .map(|(i, _)| i)
        .collect();
    ensure!(
        won.len() == 1,
        "{} of 8 racing creates succeeded (want exactly 1): {wins:?}",
        won.len()
    );
    for r in &wins {
        ensure!(
            r.is_ok() || matches!(r, Err(Error::AlreadyExists { .. })),
            "a losing create failed with {r:?}, not AlreadyExists"
        );
    }
    ensure!(
        ok(b.get(&race), "get")? == vec![won[0] as u8; 64],
        "the object is not the winner's"
    );
    conformance_rest(b, root)
}

fn conformance_rest(b: &dyn Backend, root: &str) -> Result<(), Violation> {
    let p = |s: &str| format!("{root}{s}");

    // Ranged reads.
    ok(
        b.put(&p("b/ab/abcd"), Bytes::from_static(b"0123456789")),
        "put",
    )?;
    let r = ok(b.get_range(&p("b/ab/abcd"), 2..5), "get_range")?;
    ensure!(r == Bytes::from_static(b"234"), "get_range 2..5 gave {r:?}");
    let r = ok(b.get_range(&p("b/ab/abcd"), 0..10), "get_range")?;
    ensure!(r.len() == 10, "get_range of the whole object gave {r:?}");
    let r = ok(b.get_range(&p("b/ab/abcd"), 9..10), "get_range")?;
    ensure!(
        r == Bytes::from_static(b"9"),
        "get_range of the last byte gave {r:?}"
    );
    for range in [5..50, 10..11, 20..30] {
        let r = b.get_range(&p("b/ab/abcd"), range.clone());
        ensure!(
            matches!(r, Err(Error::Truncated { len: 10, .. })),
            "get_range {range:?} of a 10-byte object: want Truncated, got {r:?}"
        );
        let r = streamed(b, &p("b/ab/abcd"), range.clone());
        ensure!(
            matches!(r, Err(Error::Truncated { len: 10, .. })),
            "get_range_streamed {range:?} of a 10-byte object: want Truncated, got {r:?}"
        );
    }
    let r = ok(streamed(b, &p("b/ab/abcd"), 2..5), "get_range_streamed")?;
    ensure!(r == b"234", "get_range_streamed 2..5 gave {r:?}");
    let h = ok(b.head(&p("a/b")), "head")?;
    ensure!(h.size == 6, "head says {} bytes, want 6", h.size);

    // Listing.
    ok(b.put(&p("ax"), Bytes::from_static(b"n")), "put")?;
    ok(b.put(&p("a-other/z"), Bytes::from_static(b"n")), "put")?;
    let keys = ok(b.list(&p("a/")), "list")?;
    let want = vec![
        ObjectInfo {
            path: p("a/a"),
            size: 6,
        },
        ObjectInfo {
            path: p("a/b"),
            size: 6,
        },
        ObjectInfo {
            path: p("a/empty"),
            size: 0,
        },
    ];
    ensure!(keys == want, "list a/ gave {keys:?}, want {want:?}");
    let n = 1100;
    let names: Vec<String> = (0..n).map(|i| p(&format!("c/{i:05x}"))).collect();
    std::thread::scope(|s| -> Result<(), Violation> {
        let hs: Vec<_> = names
            .chunks(n / 8)
            .map(|c| {
                s.spawn(move || -> Result<(), Violation> {
                    for name in c {
                        ok(
                            b.put(name, Bytes::from(name.clone().into_bytes())),
                            "parallel put",
                        )?;
                    }
                    Ok(())
                })
            })
            .collect();
        for h in hs {
            h.join()
                .map_err(|_| Violation::from("put thread panicked"))??;
        }
        Ok(())
    })?;
    let listed = ok(b.list(&p("c/")), "list")?;
    let got: Vec<&str> = listed.iter().map(|o| o.path.as_str()).collect();
    let want: Vec<&str> = names.iter().map(String::as_str).collect();
    ensure!(
        got == want,
        "listing {n} objects gave {} names (sorted, complete: {})",
        got.len(),
        got == want
    );
    ensure!(
        listed
            .iter()
            .zip(&names)
            .all(|(o, n)| o.size == n.len() as u64),
        "listing reports wrong sizes"
    );

    // A large object, whole and in ranges.
    let big = pattern(42, 40 << 20);
    ok(
        b.put(&p("b/bi/big"), Bytes::from(big.clone())),
        "put of 40 MiB",
    )?;
    let back = ok(b.get(&p("b/bi/big")), "get of 40 MiB")?;
    ensure!(
        back.len() == big.len(),
        "40 MiB object reads back {} bytes",
        back.len()
    );
    ensure!(
        back.as_ref() == big.as_slice(),
        "40 MiB object reads back different bytes"
    );
    for r in [
        0..1,
        (8 << 20) - 3..(8 << 20) + 5,
        (40 << 20) - 100..40 << 20,
    ] {
        let got = ok(
            b.get_range(&p("b/bi/big"), r.clone()),
            "get_range of the big object",
        )?;
        let (s, e) = (r.start as usize, r.end as usize);
        ensure!(
            got.as_ref() == &big[s..e],
            "range {r:?} of the big object differs"
        );
    }
    // Streamed: the pieces joined are the range, and a sink that says stop
    // gets no more.
    let r = 3..(40 << 20) - 7;
    let got = ok(
        streamed(b, &p("b/bi/big"), r.clone()),
        "get_range_streamed of the big object",
    )?;
    ensure!(
        got.as_slice() == &big[r.start as usize..r.end as usize],
        "streamed range {r:?} of the big object differs ({} bytes)",
        got.len()
    );
    let mut pieces = 0;
    ok(
        b.get_range_streamed(&p("b/bi/big"), r, &mut |_| {
            pieces += 1;
            false
        }),
        "get_range_streamed stopped by its sink",
    )?;
    ensure!(pieces == 1, "a stopped stream went on: {pieces} pieces");

    // Staged objects, where the store has them: written in pieces, seen
    // only once committed, and gone without a trace if dropped.
    if let Some(mut st) = ok(b.stage(), "stage")? {
        ok(st.write(b"stag"), "staged write")?;
        let dropped = ok(b.stage(), "stage")?;
        ok(st.write(b"ed!"), "staged write")?;
        ensure!(st.len() == 7, "a staged object counts {} bytes", st.len());
        ensure!(
            matches!(b.get(&p("b/cd/cdef")), Err(Error::NotFound { .. })),
            "a staged object is visible before its commit"
        );
        ok(st.commit(&p("b/cd/cdef")), "commit of a staged object")?;
        ensure!(
            ok(b.get(&p("b/cd/cdef")), "get of a committed object")?
                == Bytes::from_static(b"staged!"),
            "a committed object reads back other bytes"
        );
        let mut dropped = dropped.ok_or(Violation::from("stage gave an object, then none"))?;
        ok(dropped.write(b"never committed"), "staged write")?;
        drop(dropped);
    }

    // Delete.
    ok(b.delete(&p("a/a")), "delete")?;
    ok(b.delete(&p("a/a")), "delete of a missing object")?;
    ensure!(
        matches!(b.get(&p("a/a")), Err(Error::NotFound { .. })),
        "a deleted object can still be read"
    );
    let all = ok(b.list(root), "list")?;
    for o in &all {
        ok(b.delete(&o.path), "cleanup")?;
    }
    for o in &all {
        ensure!(
            matches!(b.head(&o.path), Err(Error::NotFound { .. })),
            "{} is still there after its delete",
            o.path
        );
    }
    // Reads see a delete at once (checked above); a listing may lag it
    // briefly. Garage filters a listing on each replica before merging the
    // replies, so a replica that has not yet applied a delete acknowledged
    // by the other two can still list the object. Callers treat an object
    // listed but not found as deleted; the listing must catch up.
    let deadline = std::time::Instant::now() + LISTING_CATCHES_UP;
    loop {
        let left = ok(b.list(root), "list")?;
        if left.is_empty() {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "{} objects still listed {LISTING_CATCHES_UP:?} after deleting all: {:?}",
            left.len(),
            left.iter().take(5).map(|o| &o.path).collect::<Vec<_>>()
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectStoreBackend;

    #[test]
    fn fault_specs_parse() {
        let c = FaultConfig::parse("seed=9, transient=0.25,latency_ms=5,prefix=b/").unwrap();
        assert_eq!(c.seed, 9);
        assert_eq!(c.transient, 0.25);
        assert_eq!(c.latency, Duration::from_millis(5));
        assert_eq!(c.latency_rate, 1.0);
        assert_eq!(c.prefix.as_deref(), Some("b/"));
        for bad in [
            "x",
            "transient=2",
            "seed=-1",
            "nope=1",
            "transient=0.6,permanent=0.6",
        ] {
            assert!(FaultConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn kill_and_trace_specs_parse() {
        let c = FaultConfig::parse("kill_at=12,kill_on=writes,trace=/tmp/t").unwrap();
        assert_eq!(c.kill_at, Some(12));
        assert_eq!(c.kill_on, KillOn::Writes);
        assert_eq!(
            c.trace_file.as_deref(),
            Some(std::path::Path::new("/tmp/t"))
        );
        let c = FaultConfig::parse("kill_at=1").unwrap();
        assert_eq!((c.kill_at, c.kill_on), (Some(1), KillOn::Requests));
        assert_eq!(FaultConfig::parse("").unwrap().kill_at, None);
        let c = FaultConfig::parse("kill_before=index/").unwrap();
        assert_eq!(c.kill_before.as_deref(), Some("index/"));
        for bad in [
            "kill_at=0",
            "kill_at=x",
            "kill_on=reads",
            "kill_on=",
            "kill_before=",
        ] {
            assert!(FaultConfig::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_trace_numbers_requests_and_writes() {
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("trace");
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        // Far beyond the requests made: counts, never kills.
        let spec = format!("kill_at=1000,kill_on=writes,trace={}", trace.display());
        let f = FaultyBackend::new(mem, FaultConfig::parse(&spec).unwrap());
        f.put("a/x", Bytes::from_static(b"1")).unwrap();
        f.get("a/x").unwrap();
        f.create("b/y", Bytes::new()).unwrap();
        f.list("a/").unwrap();
        f.head("a/x").unwrap();
        f.delete("a/x").unwrap();
        assert!(f.get("a/x").is_err());
        drop(f);
        let got = std::fs::read_to_string(&trace).unwrap();
        assert_eq!(
            got,
            "1 1 put a/x\n2 1 get a/x\n3 2 create b/y\n4 2 list a/\n\
             5 2 head a/x\n6 3 delete a/x\n7 3 get a/x\n"
        );
    }

    #[test]
    fn faults_are_reproducible_and_near_the_rate() {
        let run = || {
            let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
            let f = FaultyBackend::new(mem, FaultConfig::parse("seed=5,transient=0.2").unwrap());
            (0..2000)
                .map(|i| f.put(&format!("x/{i}"), Bytes::new()).is_err())
                .collect::<Vec<bool>>()
        };
        let a = run();
        assert_eq!(a, run());
        let n = a.iter().filter(|x| **x).count();
        assert!((300..500).contains(&n), "{n} of 2000 failed at rate 0.2");
    }

    #[test]
    fn read_damage_and_dropped_connection_specs_parse() {
        let c = FaultConfig::parse("dropped=0.1,short_reads=0.2,flip=0.3").unwrap();
        assert_eq!((c.dropped, c.short_reads, c.flip), (0.1, 0.2, 0.3));
        for bad in ["dropped=2", "flip=-0.1", "transient=0.5,dropped=0.6"] {
            assert!(FaultConfig::parse(bad).is_err(), "{bad}");
        }
    }

    fn memory_with(spec: &str, objects: usize) -> FaultyBackend {
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        for i in 0..objects {
            mem.put(&format!("d/{i}"), Bytes::from(pattern(i as u64, 100)))
                .unwrap();
        }
        FaultyBackend::new(mem, FaultConfig::parse(spec).unwrap())
    }

    #[test]
    fn flipped_reads_differ_in_exactly_one_bit() {
        let f = memory_with("seed=3,flip=1", 50);
        for i in 0..50 {
            let want = pattern(i as u64, 100);
            let got = f.get(&format!("d/{i}")).unwrap();
            assert_eq!(got.len(), want.len());
            let bits: u32 = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a ^ b).count_ones())
                .sum();
            assert_eq!(bits, 1, "object {i}");
            let r = f.get_range(&format!("d/{i}"), 10..20).unwrap();
            assert_ne!(r.as_ref(), &want[10..20]);
        }
        assert_eq!(f.stats().flipped_reads(), 100);
        // Writes and listings are left alone.
        f.put("d/new", Bytes::from_static(b"abc")).unwrap();
        assert_eq!(f.list("d/").unwrap().len(), 51);
    }

    #[test]
    fn short_reads_return_half_and_only_at_the_rate() {
        let f = memory_with("seed=4,short_reads=0.5", 400);
        let mut short = 0;
        for i in 0..400 {
            let want = pattern(i as u64, 100);
            let got = f.get(&format!("d/{i}")).unwrap();
            if got.len() == 50 {
                assert_eq!(got.as_ref(), &want[..50]);
                short += 1;
            } else {
                assert_eq!(got.as_ref(), want.as_slice());
            }
        }
        assert!((150..250).contains(&short), "{short} of 400 short");
        assert_eq!(f.stats().short_reads(), short);
    }

    #[test]
    fn dropped_connections_are_transient_and_retried_to_success() {
        let f = memory_with("seed=5,dropped=1", 1);
        let e = f.get("d/0").unwrap_err();
        assert!(e.is_transient(), "{e}");
        let cause = std::error::Error::source(&e)
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .map(std::io::Error::kind);
        assert_eq!(cause, Some(std::io::ErrorKind::ConnectionReset), "{e}");
        // About half the dropped writes landed anyway.
        for i in 0..200 {
            assert!(f.put(&format!("w/{i}"), Bytes::from_static(b"x")).is_err());
        }
        let landed = f.inner.list("w/").unwrap().len();
        assert!((60..140).contains(&landed), "{landed} of 200 landed");
    }

    #[test]
    fn stats_count_requests_and_writes_by_folder() {
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let f = FaultyBackend::new(mem, FaultConfig::default());
        f.put("a/ab/x", Bytes::from_static(b"123")).unwrap();
        f.create("b/y", Bytes::from_static(b"1")).unwrap();
        f.get("a/ab/x").unwrap();
        f.list("a/").unwrap();
        let s = f.stats();
        assert_eq!(s.requests(), 4);
        assert_eq!(s.writes_in("a"), 1);
        assert_eq!(s.writes_in("b"), 1);
        assert_eq!(s.of(Op::List), 1);
        let j = s.to_json();
        assert!(
            j.contains("\"put\":1") && j.contains("\"bytes_written\":4"),
            "{j}"
        );
    }
}
