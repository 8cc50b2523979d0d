//! The memory budget: a cap on content bytes held by all backup workers
//! at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};

/// Content bytes held in memory by all workers together, per worker
/// thread (the cap is at least two full batches, see [`Budget::new`]).
pub(super) const MEMORY_PER_THREAD: usize = 8 << 20;

/// A cap on content bytes held by all workers at once. A worker waits for
/// room only while it holds none itself: a worker already holding some
/// may go over (it is in the middle of a file and other work may depend
/// on it), which rules out deadlock, and the overshoot is at most one
/// batch per thread. A stream takes its two batch buffers (see
/// `stream_reader`) for as long as it runs; where that is more than the
/// cap (two threads, default chunker: 32 MiB against 16 MiB), the stream
/// waits until nothing else is held and then runs alone.
pub(super) struct Budget {
    used: Mutex<usize>,
    room: Condvar,
    cap: usize,
    /// Threads waiting for room; releases wake them only if there are any
    /// (a wake is a system call, and releases happen once per chunk).
    waiting: AtomicU64,
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
        Budget {
            used: Mutex::new(0),
            room: Condvar::new(),
            cap,
            waiting: AtomicU64::new(0),
        }
    }

    /// Take `n` bytes, waiting (or helping the pool) for room if this
    /// thread holds none.
    pub(super) fn take(&self, n: usize) -> Grant<'_> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        if HELD.get() == 0 {
            while *used > 0 && *used + n > self.cap {
                // Rather than idle, help: run a pending job of the pool
                // (often a chunk of the batch that holds the budget).
                drop(used);
                let helped = matches!(rayon::yield_now(), Some(rayon::Yield::Executed));
                used = self.used.lock().unwrap_or_else(|p| p.into_inner());
                if !helped && *used > 0 && *used + n > self.cap {
                    self.waiting.fetch_add(1, Ordering::SeqCst);
                    used = self
                        .room
                        .wait_timeout(used, std::time::Duration::from_millis(2))
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    self.waiting.fetch_sub(1, Ordering::SeqCst);
                }
            }
        }
        *used += n;
        HELD.set(HELD.get() + n);
        Grant { budget: self, n }
    }
}

impl Drop for Grant<'_> {
    fn drop(&mut self) {
        let mut used = self.budget.used.lock().unwrap_or_else(|p| p.into_inner());
        *used -= self.n;
        HELD.set(HELD.get().saturating_sub(self.n));
        if self.budget.waiting.load(Ordering::SeqCst) > 0 {
            self.budget.room.notify_all();
        }
    }
}
