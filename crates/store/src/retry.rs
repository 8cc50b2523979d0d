//! [`RetryBackend`]: exponential backoff on transient errors.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::{Backend, Error, ObjectInfo, Result, Retried};

/// When and how often to try a failed request again.
///
/// Only errors that [`Error::is_transient`] calls transient are retried
/// (HTTP 5xx, 429, 408, timeouts, refused or dropped connections); not-found, already-exists, permission
/// errors and other 4xx answers are returned at once. The n-th retry waits a
/// random time between half and all of `first_delay * 2^(n-1)`, capped at
/// `max_delay`. Retrying stops after `max_retries` retries or once
/// `max_elapsed` has passed since the first attempt, whichever comes first.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// Wait before the first retry.
    pub first_delay: Duration,
    /// Longest wait between two attempts.
    pub max_delay: Duration,
    /// No retry starts after this much time since the first attempt.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 8,
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(16),
            max_elapsed: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// No retries.
    pub fn none() -> RetryPolicy {
        RetryPolicy {
            max_retries: 0,
            ..Default::default()
        }
    }

    /// The wait before retry number `n` (1-based), given a random `u` in [0, 1).
    fn delay(&self, n: u32, u: f64) -> Duration {
        let exp = self
            .first_delay
            .saturating_mul(1u32 << n.saturating_sub(1).min(20));
        let d = exp.min(self.max_delay);
        d.mul_f64(0.5 + 0.5 * u)
    }
}

/// A [`Backend`] that retries transient errors of the one below it with
/// backoff, per its [`RetryPolicy`].
///
/// Safe because every operation may be repeated (see the [`Backend`]
/// contract). One case needs care: a `create` whose first attempt reached
/// the store but whose answer was lost comes back as `AlreadyExists` on the
/// retry. Then the object is read back, and if it holds exactly our bytes the
/// create counts as done.
pub struct RetryBackend {
    inner: Arc<dyn Backend>,
    policy: RetryPolicy,
    retries: AtomicU64,
    seed: AtomicU64,
}

impl fmt::Debug for RetryBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RetryBackend({:?})", self.inner)
    }
}

impl RetryBackend {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Backend>, policy: RetryPolicy) -> RetryBackend {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9E37_79B9);
        RetryBackend {
            inner,
            policy,
            retries: AtomicU64::new(0),
            seed: AtomicU64::new(seed | 1),
        }
    }

    /// Retries made so far, over all operations.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// A jitter value in [0, 1) (splitmix64 over a shared counter).
    fn jitter(&self) -> f64 {
        let mut z = self
            .seed
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// After transient error `e` on `attempt`, `elapsed` into the retries:
    /// give up with `e` if the policy's limits are reached, else count a
    /// retry and wait before the next attempt.
    fn back_off(&self, e: Error, attempt: &mut u32, elapsed: Duration) -> Result<()> {
        if *attempt >= self.policy.max_retries || elapsed >= self.policy.max_elapsed {
            return Err(gave_up(e, *attempt, elapsed));
        }
        *attempt += 1;
        self.retries.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(self.policy.delay(*attempt, self.jitter()));
        Ok(())
    }

    /// Run `op`, retrying transient failures. `op` gets the attempt number
    /// (0 for the first).
    fn run<T>(&self, mut op: impl FnMut(u32) -> Result<T>) -> Result<T> {
        let start = Instant::now();
        let mut attempt = 0u32;
        loop {
            match op(attempt) {
                Err(e) if e.is_transient() => self.back_off(e, &mut attempt, start.elapsed())?,
                r => return r,
            }
        }
    }
}

/// A ranged read's reply, or a transient error when it holds fewer bytes
/// than asked for. A store answers with every byte, or with an error
/// (`Truncated` when the object is shorter): fewer bytes and no error is a
/// body cut off on the way, tried again and named as such rather than left
/// to fail authentication later.
fn whole(path: &str, range: &Range<u64>, got: Result<Bytes>) -> Result<Bytes> {
    let got = got?;
    let want = range.end.saturating_sub(range.start);
    if (got.len() as u64) < want {
        return Err(Error::unavailable(
            path,
            format!(
                "short read: got {} of the {want} bytes at {}..{}",
                got.len(),
                range.start,
                range.end
            ),
        ));
    }
    Ok(got)
}

fn gave_up(e: Error, retries: u32, elapsed: Duration) -> Error {
    match e {
        Error::Unavailable { path, source, .. } if retries > 0 => Error::Unavailable {
            path,
            retried: Some(Retried { retries, elapsed }),
            source,
        },
        e => e,
    }
}

impl Backend for RetryBackend {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.run(|_| self.inner.put(path, data.clone()))
    }

    fn stage(&self) -> Result<Option<Box<dyn crate::StagedObject>>> {
        self.inner.stage()
    }

    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        self.run(|attempt| match self.inner.create(path, data.clone()) {
            Err(Error::AlreadyExists { .. }) if attempt > 0 => {
                // Did an earlier attempt of ours land? Then we are done.
                match self.inner.get(path) {
                    Ok(b) if b == data => Ok(()),
                    Ok(_) => Err(Error::AlreadyExists { path: path.into() }),
                    Err(e) => Err(e),
                }
            }
            r => r,
        })
    }

    fn get(&self, path: &str) -> Result<Bytes> {
        self.run(|_| self.inner.get(path))
    }

    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.run(|_| whole(path, &range, self.inner.get_range(path, range.clone())))
    }

    /// A retry asks only for what was not handed over yet. A reply that
    /// ends early with no error is a body cut off on the way (see
    /// [`whole`]), tried again like one. An attempt that failed after
    /// handing something over is tried again at once, and the policy's
    /// limits count from there: a long range read by a slow consumer may
    /// time out more than once and still complete, while one that stops
    /// moving fails as any other request.
    fn get_range_streamed(
        &self,
        path: &str,
        range: Range<u64>,
        sink: &mut dyn FnMut(Bytes) -> bool,
    ) -> Result<()> {
        let mut next = range.start;
        let mut stopped = false;
        let mut since = Instant::now();
        let mut attempt = 0u32;
        loop {
            let rest = next..range.end;
            let res = self.inner.get_range_streamed(path, rest.clone(), &mut |b| {
                next += b.len() as u64;
                stopped = !sink(b);
                !stopped
            });
            let e = match res {
                Ok(()) if stopped || next >= range.end => return Ok(()),
                Ok(()) => Error::unavailable(
                    path,
                    format!(
                        "short read: got {} of the {} bytes at {}..{}",
                        next - rest.start,
                        rest.end - rest.start,
                        rest.start,
                        rest.end
                    ),
                ),
                Err(e) if e.is_transient() && !stopped => e,
                Err(e) => return Err(e),
            };
            if next > rest.start {
                self.retries.fetch_add(1, Ordering::Relaxed);
                since = Instant::now();
                attempt = 0;
                continue;
            }
            self.back_off(e, &mut attempt, since.elapsed())?;
        }
    }

    fn streams_ranges(&self) -> bool {
        self.inner.streams_ranges()
    }

    fn upload_parallelism(&self) -> usize {
        self.inner.upload_parallelism()
    }

    fn get_metadata_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.run(|_| {
            whole(
                path,
                &range,
                self.inner.get_metadata_range(path, range.clone()),
            )
        })
    }

    fn exclusive_create(&self) -> Result<bool> {
        self.run(|_| self.inner.exclusive_create())
    }

    fn head(&self, path: &str) -> Result<ObjectInfo> {
        self.run(|_| self.inner.head(path))
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.run(|_| self.inner.list(prefix))
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.run(|_| self.inner.delete(path))
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{FaultConfig, FaultyBackend};
    use crate::{Location, ObjectStoreBackend};

    fn fast() -> RetryPolicy {
        RetryPolicy {
            max_retries: 6,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            max_elapsed: Duration::from_secs(30),
        }
    }

    #[test]
    fn the_store_s_upload_parallelism_is_passed_on() {
        let remote = ObjectStoreBackend::remote(
            Arc::new(object_store::memory::InMemory::new()),
            "test".into(),
            &crate::RemoteOptions::default(),
        )
        .unwrap();
        let retry = RetryBackend::new(Arc::new(remote), RetryPolicy::default());
        assert_eq!(retry.upload_parallelism(), 4);
        let local = RetryBackend::new(
            Arc::new(ObjectStoreBackend::memory().unwrap()),
            RetryPolicy::default(),
        );
        assert_eq!(local.upload_parallelism(), 2);
    }
    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, 0.999_999).as_millis(), 249);
        assert_eq!(p.delay(1, 0.0).as_millis(), 125);
        assert_eq!(p.delay(3, 0.0).as_millis(), 500);
        assert_eq!(p.delay(30, 0.0), Duration::from_secs(8));
        assert!(p.delay(30, 0.999) <= Duration::from_secs(16));
    }

    #[test]
    fn dropped_connections_are_retried_until_success() {
        // A third of requests dropped (half the dropped writes land): every
        // write and read succeeds and reads back what was written.
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let cfg = FaultConfig::parse("seed=6,dropped=0.3").unwrap();
        let faulty: Arc<dyn Backend> = Arc::new(FaultyBackend::new(mem, cfg));
        let r = RetryBackend::new(faulty, fast());
        for i in 0..100u64 {
            r.put(
                &format!("r/{i}"),
                Bytes::from(crate::testing::pattern(i, 64)),
            )
            .unwrap();
        }
        for i in 0..100u64 {
            assert_eq!(
                r.get(&format!("r/{i}")).unwrap().as_ref(),
                crate::testing::pattern(i, 64)
            );
        }
        assert!(r.retries() > 20, "only {} retries", r.retries());
    }

    #[test]
    fn transient_faults_are_retried_until_success() {
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let cfg = FaultConfig::parse("seed=7,transient=0.3").unwrap();
        let faulty = Arc::new(FaultyBackend::new(mem, cfg));
        let b = RetryBackend::new(faulty.clone(), fast());
        for i in 0..200 {
            let p = format!("a/{i:03}");
            b.put(&p, Bytes::from(vec![i as u8; 10])).unwrap();
            assert_eq!(b.get(&p).unwrap(), Bytes::from(vec![i as u8; 10]));
            b.create(&format!("b/{i:03}"), Bytes::from_static(b"x"))
                .unwrap();
        }
        assert_eq!(b.list("a/").unwrap().len(), 200);
        let st = faulty.stats();
        assert!(st.transient_faults() > 50, "{}", st.to_json());
        assert_eq!(b.retries(), st.transient_faults());
    }

    #[test]
    fn short_ranges_are_retried_and_named() {
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let data = Bytes::from(crate::testing::pattern(3, 4096));
        mem.put("data/p", data.clone()).unwrap();
        // Half the reads cut off: every range still comes back whole.
        let cfg = FaultConfig::parse("seed=4,short_reads=0.5").unwrap();
        let faulty = Arc::new(FaultyBackend::new(mem.clone(), cfg));
        let b = RetryBackend::new(faulty.clone(), fast());
        for i in 0..50u64 {
            let r = i * 48..i * 48 + 1000;
            assert_eq!(
                b.get_range("data/p", r.clone()).unwrap(),
                data.slice(r.start as usize..r.end as usize)
            );
        }
        assert!(faulty.stats().short_reads() > 5);
        assert_eq!(b.retries(), faulty.stats().short_reads());
        // Every read cut off: a transient error that says so.
        let cfg = FaultConfig::parse("seed=4,short_reads=1").unwrap();
        let b = RetryBackend::new(Arc::new(FaultyBackend::new(mem.clone(), cfg)), fast());
        let e = b.get_range("data/p", 0..1000).unwrap_err();
        assert!(e.is_transient(), "{e}");
        assert!(e.to_string().contains("short read"), "{e}");
        assert!(e.to_string().contains("data/p"), "{e}");
        // Pack headers come through get_metadata_range: the same check.
        let e = b.get_metadata_range("data/p", 0..1000).unwrap_err();
        assert!(e.to_string().contains("short read"), "{e}");
        // A truly shorter object is not retried: `Truncated` at once.
        let b = RetryBackend::new(mem, fast());
        let e = b.get_range("data/p", 4000..5000).unwrap_err();
        assert!(matches!(e, Error::Truncated { .. }), "{e}");
        assert_eq!(b.retries(), 0);
    }

    #[test]
    fn permanent_errors_are_not_retried() {
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let cfg = FaultConfig::parse("seed=1,permanent=1").unwrap();
        let faulty = Arc::new(FaultyBackend::new(mem, cfg));
        let b = RetryBackend::new(faulty.clone(), fast());
        let e = b.put("a/x", Bytes::from_static(b"x")).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{e}");
        assert_eq!(faulty.stats().requests(), 1);
        assert_eq!(b.retries(), 0);
        // Not-found is permanent too.
        let mem = Location::Memory.open(true).unwrap();
        let b = RetryBackend::new(mem, fast());
        assert!(b.get("nothing").unwrap_err().is_not_found());
        assert_eq!(b.retries(), 0);
    }

    #[test]
    fn retries_give_up_with_a_clear_message() {
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let cfg = FaultConfig::parse("seed=1,transient=1").unwrap();
        let faulty = Arc::new(FaultyBackend::new(mem, cfg));
        let b = RetryBackend::new(faulty.clone(), fast());
        let e = b.get("config").unwrap_err();
        assert!(e.is_transient());
        assert!(e.to_string().contains("gave up after 6 retries"), "{e}");
        assert_eq!(faulty.stats().requests(), 7);
    }

    #[test]
    fn an_error_given_up_on_keeps_its_cause() {
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let cfg = FaultConfig::parse("seed=1,transient=1").unwrap();
        let b = RetryBackend::new(Arc::new(FaultyBackend::new(mem, cfg)), fast());
        let e = b.get("a/x").unwrap_err();
        assert!(matches!(
            e,
            Error::Unavailable {
                retried: Some(Retried { retries: 6, .. }),
                ..
            }
        ));
        let cause = std::error::Error::source(&e).unwrap();
        let fault = cause.downcast_ref::<crate::testing::InjectedFault>();
        assert!(fault.is_some_and(|f| f.transient && f.op == "get"), "{e:?}");
        assert!(e.to_string().ends_with(&cause.to_string()), "{e}");
    }

    #[test]
    fn a_create_whose_answer_was_lost_succeeds_on_retry() {
        // After-the-fact faults: the write lands, the answer is lost.
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let cfg = FaultConfig::parse("seed=3,transient=0.5,lost_replies=1").unwrap();
        let faulty = Arc::new(FaultyBackend::new(mem.clone(), cfg));
        let b = RetryBackend::new(faulty, fast());
        for i in 0..50 {
            b.create(&format!("k/{i}"), Bytes::from(format!("k{i}")))
                .unwrap();
        }
        // A real conflict is still reported.
        mem.put("a/taken", Bytes::from_static(b"theirs")).unwrap();
        let plain = RetryBackend::new(mem, fast());
        assert!(matches!(
            plain.create("a/taken", Bytes::from_static(b"ours")),
            Err(Error::AlreadyExists { .. })
        ));
    }
    /// What [`Pieces`] does on one call.
    #[derive(Debug, Clone, Copy)]
    enum Step {
        /// Hand over this many pieces, then fail (transient).
        Fail(usize),
        /// Hand over this many pieces, then end as if done.
        Short(usize),
        /// Hand over the whole range.
        Whole,
    }

    /// Streams ranges of one object in 10-byte pieces, following a plan
    /// (the last step repeats), and records the ranges asked for.
    #[derive(Debug)]
    struct Pieces {
        data: Vec<u8>,
        plan: std::sync::Mutex<std::collections::VecDeque<Step>>,
        asked: std::sync::Mutex<Vec<Range<u64>>>,
    }

    impl Pieces {
        fn new(plan: &[Step]) -> Pieces {
            Pieces {
                data: crate::testing::pattern(9, 1000),
                plan: std::sync::Mutex::new(plan.iter().copied().collect()),
                asked: std::sync::Mutex::new(Vec::new()),
            }
        }

        fn asked(&self) -> Vec<Range<u64>> {
            self.asked.lock().unwrap().clone()
        }
    }

    fn unused<T>(path: &str) -> Result<T> {
        Err(Error::backend(path, "not used in this test"))
    }

    impl Backend for Pieces {
        fn put(&self, path: &str, _: Bytes) -> Result<()> {
            unused(path)
        }
        fn create(&self, path: &str, _: Bytes) -> Result<()> {
            unused(path)
        }
        fn get(&self, path: &str) -> Result<Bytes> {
            unused(path)
        }
        fn get_range(&self, path: &str, _: Range<u64>) -> Result<Bytes> {
            unused(path)
        }
        fn get_range_streamed(
            &self,
            path: &str,
            range: Range<u64>,
            sink: &mut dyn FnMut(Bytes) -> bool,
        ) -> Result<()> {
            self.asked.lock().unwrap().push(range.clone());
            let step = {
                let mut plan = self.plan.lock().unwrap();
                let s = plan[0];
                if plan.len() > 1 {
                    plan.pop_front();
                }
                s
            };
            let want = &self.data[range.start as usize..range.end as usize];
            for (i, piece) in want.chunks(10).enumerate() {
                match step {
                    Step::Fail(n) if i == n => {
                        return Err(Error::unavailable(path, "connection reset"));
                    }
                    Step::Short(n) if i == n => return Ok(()),
                    _ => {}
                }
                if !sink(Bytes::copy_from_slice(piece)) {
                    return Ok(());
                }
            }
            Ok(())
        }
        fn head(&self, path: &str) -> Result<ObjectInfo> {
            unused(path)
        }
        fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
            unused(prefix)
        }
        fn delete(&self, path: &str) -> Result<()> {
            unused(path)
        }
        fn location(&self) -> String {
            "pieces".into()
        }
    }

    fn joined(b: &RetryBackend, r: Range<u64>) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        b.get_range_streamed("data/p", r, &mut |p| {
            out.extend_from_slice(&p);
            true
        })?;
        Ok(out)
    }

    #[test]
    fn a_streamed_read_resumes_where_it_stopped() {
        let p = Arc::new(Pieces::new(&[Step::Fail(3), Step::Short(2), Step::Whole]));
        let b = RetryBackend::new(p.clone(), fast());
        let got = joined(&b, 100..400).unwrap();
        // Every byte once, in order, though three requests brought them.
        assert_eq!(got.as_slice(), &p.data[100..400]);
        assert_eq!(p.asked(), vec![100..400, 130..400, 150..400]);
        assert_eq!(b.retries(), 2);
    }

    #[test]
    fn progress_renews_the_retry_budget_and_a_stall_does_not() {
        // No retries allowed, yet a read that moves on every attempt completes.
        let none = RetryPolicy {
            max_retries: 0,
            ..fast()
        };
        let p = Arc::new(Pieces::new(&[
            Step::Fail(1),
            Step::Fail(4),
            Step::Fail(1),
            Step::Whole,
        ]));
        let b = RetryBackend::new(p.clone(), none);
        assert_eq!(joined(&b, 0..200).unwrap().as_slice(), &p.data[..200]);
        assert_eq!(p.asked(), vec![0..200, 10..200, 50..200, 60..200]);
        // One that stops moving fails once its retries are used up.
        let p = Arc::new(Pieces::new(&[Step::Fail(2), Step::Fail(0)]));
        let b = RetryBackend::new(p.clone(), fast());
        let e = joined(&b, 0..200).unwrap_err();
        assert!(e.to_string().contains("gave up after 6 retries"), "{e}");
        // The first attempt, then the rest tried at once and 6 times more.
        assert_eq!(p.asked().len(), 8);
        assert!(p.asked()[1..].iter().all(|r| *r == (20..200)));
        assert_eq!(b.retries(), 7);
    }

    #[test]
    fn a_stopped_stream_is_not_retried() {
        let p = Arc::new(Pieces::new(&[Step::Whole]));
        let b = RetryBackend::new(p.clone(), fast());
        let mut n = 0;
        b.get_range_streamed("data/p", 0..500, &mut |_| {
            n += 1;
            n < 3
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(p.asked(), vec![0..500]);
        assert_eq!(b.retries(), 0);
    }
}
