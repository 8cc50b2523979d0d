//! The memory budget: a cap on content bytes held by all backup workers
//! at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// Content bytes held in memory by all workers together, per worker
/// thread (the cap is at least two full batches, see [`Budget::new`]).
pub(super) const MEMORY_PER_THREAD: usize = 8 << 20;

/// How long a worker waits for room while nothing moves (no bytes given
/// back, no pool job to help with) before it goes over the cap: see
/// [`Budget`].
const STALL: Duration = Duration::from_millis(50);

/// A cap on content bytes held by all workers at once. A worker waits for
/// room only while it holds none itself: a worker already holding some
/// may go over (it is in the middle of a file and other work may depend
/// on it), and the overshoot is at most one batch per thread. A stream
/// takes its two batch buffers (see `stream_reader`) for as long as it
/// runs; where that is more than the cap (two threads, default chunker:
/// 32 MiB against 16 MiB), the stream waits until nothing else is held and
/// then runs with the others helping it.
///
/// Waiting can never deadlock. The workers are one rayon pool, and a
/// holder waiting in a `join` may need a job that a waiting worker stole
/// and holds lower on its stack (a holder streams a large file, sealing
/// its batch in parallel; a third worker steals part of that work, finds
/// a file under it and waits for room that only the holder can give
/// back). So a wait lasts only while something moves: bytes given back, or
/// a pool job run by the waiter to help. After [`STALL`] with neither, the
/// worker goes over the cap (counted in [`Budget::stalls`]). The bound is
/// then one file per worker above the cap: a file read whole is at most
/// two maximum chunks, a stream its two batch buffers.
pub(super) struct Budget {
    state: Mutex<State>,
    room: Condvar,
    cap: usize,
    stall: Duration,
    /// Threads waiting for room; releases wake them only if there are any
    /// (a wake is a system call, and releases happen once per chunk).
    waiting: AtomicU64,
    /// Waits that ended over the cap because nothing moved for `stall`.
    stalls: AtomicU64,
}

struct State {
    /// Bytes held.
    used: usize,
    /// Grants given back so far: a waiter that sees it change knows the
    /// holders are moving.
    releases: u64,
}

thread_local! {
    static HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Bytes taken from a [`Budget`], given back when dropped.
pub(super) struct Grant<'a> {
    budget: &'a Budget,
    n: usize,
}

impl Budget {
    /// A budget of `cap` bytes.
    pub(super) fn new(cap: usize) -> Budget {
        Budget::with_stall(cap, STALL)
    }

    /// A budget of `cap` bytes whose waits give up after `stall` without
    /// progress.
    pub(super) fn with_stall(cap: usize, stall: Duration) -> Budget {
        Budget {
            state: Mutex::new(State {
                used: 0,
                releases: 0,
            }),
            room: Condvar::new(),
            cap,
            stall,
            waiting: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
        }
    }

    /// Waits that went over the cap because nothing moved (see [`Budget`]).
    #[cfg(test)]
    pub(super) fn stalls(&self) -> u64 {
        self.stalls.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take `n` bytes, waiting (or helping the pool) for room if this
    /// thread holds none, for as long as the holders make progress.
    pub(super) fn take(&self, n: usize) -> Grant<'_> {
        let mut st = self.lock();
        if HELD.get() == 0 {
            let mut seen = st.releases;
            let mut moved = Instant::now();
            while st.used > 0 && st.used + n > self.cap {
                // Rather than idle, help: run a pending job of the pool
                // (often a chunk of the batch that holds the budget).
                drop(st);
                let helped = matches!(rayon::yield_now(), Some(rayon::Yield::Executed));
                st = self.lock();
                if helped || st.releases != seen {
                    seen = st.releases;
                    moved = Instant::now();
                    continue;
                }
                if moved.elapsed() >= self.stall {
                    self.stalls.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                self.waiting.fetch_add(1, Ordering::SeqCst);
                st = self
                    .room
                    .wait_timeout(st, Duration::from_millis(2))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                self.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
        st.used += n;
        HELD.set(HELD.get() + n);
        Grant { budget: self, n }
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut st = self.budget.lock();
        st.used -= self.n;
        st.releases += 1;
        HELD.set(HELD.get().saturating_sub(self.n));
        if self.budget.waiting.load(Ordering::SeqCst) > 0 {
            self.budget.room.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::sync::mpsc;

    fn pool(threads: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    }

    /// The cycle a backup with three workers hit on a real tree: a holder
    /// waits in `join` for a job that another worker stole, and that job
    /// needs room only the holder can give back. The wait must end.
    #[test]
    fn a_holder_waiting_on_a_waiter_does_not_deadlock() {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let budget = Budget::with_stall(10, Duration::from_millis(20));
            let stolen = AtomicBool::new(false);
            pool(2).install(|| {
                let _held = budget.take(8);
                rayon::join(
                    // The holder waits until the other worker has taken the
                    // second half, so it cannot run that half itself.
                    || {
                        while !stolen.load(Ordering::SeqCst) {
                            std::hint::spin_loop();
                        }
                    },
                    || {
                        stolen.store(true, Ordering::SeqCst);
                        drop(budget.take(8));
                    },
                );
            });
            tx.send(budget.stalls()).unwrap();
        });
        let stalls = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the holder and the waiter deadlocked");
        assert_eq!(stalls, 1);
    }

    /// While the holder makes progress, a waiter does wait: the cap holds.
    #[test]
    fn a_waiter_gets_room_only_when_bytes_come_back() {
        let budget = Budget::with_stall(10, Duration::from_secs(600));
        let held = budget.take(8);
        let max_used = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _g = budget.take(8);
                max_used.fetch_max(budget.lock().used, Ordering::SeqCst);
            });
            while budget.waiting.load(Ordering::SeqCst) == 0 {
                std::thread::yield_now();
            }
            assert_eq!(budget.lock().used, 8, "the waiter went ahead");
            drop(held);
        });
        assert_eq!(max_used.load(Ordering::SeqCst), 8);
        assert_eq!(budget.lock().used, 0);
        assert_eq!(budget.stalls(), 0);
    }

    /// A thread that already holds bytes never waits.
    #[test]
    fn a_holder_goes_over_without_waiting() {
        let budget = Budget::with_stall(10, Duration::from_secs(600));
        let a = budget.take(8);
        let b = budget.take(8);
        assert_eq!(budget.lock().used, 16);
        drop((a, b));
        assert_eq!(budget.lock().used, 0);
    }
}
