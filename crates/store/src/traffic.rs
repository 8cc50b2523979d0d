//! What a remote store's requests cost: how many of each kind, the bytes
//! they moved, how long ranged reads took and how long callers waited for a
//! request slot. A few relaxed atomic adds per request, in every build;
//! written as one JSON line to the file `LIFEBOAT_STORE_STATS` names when
//! the store is dropped (see [`crate::RemoteOptions::stats_file`]), to
//! measure a restore without a debugger.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (ms) of the latency buckets; the last bucket is open.
const BUCKETS_MS: [u64; 11] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// Request counters of one [`crate::ObjectStoreBackend`].
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    /// Whole-object reads sent.
    pub get: AtomicU64,
    /// Ranged reads sent to the store.
    pub get_range: AtomicU64,
    /// Ranged reads answered from a read-ahead window, with no request.
    pub read_ahead_hits: AtomicU64,
    pub head: AtomicU64,
    pub list: AtomicU64,
    pub put: AtomicU64,
    pub delete: AtomicU64,
    /// Bytes the whole-object reads brought.
    pub get_bytes: AtomicU64,
    /// Bytes the ranged reads brought.
    range_bytes: AtomicU64,
    pub bytes_written: AtomicU64,
    /// Ranged reads by how long they took, body included.
    range_ms: [AtomicU64; BUCKETS_MS.len() + 1],
    /// Sum of the ranged reads' durations.
    range_us: AtomicU64,
    /// Sum of the time callers waited for a request slot.
    pub wait_us: AtomicU64,
    in_flight: AtomicU64,
    /// Most requests in flight at once.
    peak_in_flight: AtomicU64,
}

/// One request in flight, counted until dropped.
pub(crate) struct InFlight<'a>(&'a Traffic);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

fn us(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Traffic {
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// A request starts.
    pub fn start(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(self)
    }

    /// A ranged read of `bytes` bytes took `took`.
    pub fn range_read(&self, bytes: u64, took: Duration) {
        Traffic::add(&self.get_range, 1);
        Traffic::add(&self.range_bytes, bytes);
        Traffic::add(&self.range_us, us(took));
        let ms = took.as_millis();
        let i = BUCKETS_MS
            .iter()
            .position(|&b| ms < u128::from(b))
            .unwrap_or(BUCKETS_MS.len());
        Traffic::add(&self.range_ms[i], 1);
    }

    /// A caller waited `d` for a request slot.
    pub fn waited(&self, d: Duration) {
        Traffic::add(&self.wait_us, us(d));
    }

    /// The counters as one line of JSON.
    pub fn to_json(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut s = format!(
            "{{\"get\":{},\"get_range\":{},\"read_ahead_hits\":{},\"head\":{},\"list\":{},\
             \"put\":{},\"delete\":{},\"get_bytes\":{},\"range_bytes\":{},\"bytes_written\":{},\
             \"range_ms_total\":{},\"slot_wait_ms_total\":{},\"peak_in_flight\":{},\
             \"range_ms_histogram\":{{",
            g(&self.get),
            g(&self.get_range),
            g(&self.read_ahead_hits),
            g(&self.head),
            g(&self.list),
            g(&self.put),
            g(&self.delete),
            g(&self.get_bytes),
            g(&self.range_bytes),
            g(&self.bytes_written),
            g(&self.range_us) / 1000,
            g(&self.wait_us) / 1000,
            g(&self.peak_in_flight),
        );
        let mut first = true;
        for (i, c) in self.range_ms.iter().enumerate() {
            let label = match BUCKETS_MS.get(i) {
                Some(b) => format!("<{b}"),
                None => format!(">={}", BUCKETS_MS[BUCKETS_MS.len() - 1]),
            };
            if g(c) > 0 {
                let _ = write!(s, "{}\"{label}\":{}", if first { "" } else { "," }, g(c));
                first = false;
            }
        }
        s.push_str("}}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_buckets() {
        let t = Traffic::default();
        t.range_read(10, Duration::from_micros(500));
        t.range_read(20, Duration::from_millis(45));
        t.range_read(30, Duration::from_secs(3));
        {
            let _a = t.start();
            let _b = t.start();
        }
        let _c = t.start();
        let v = t.to_json();
        assert!(v.contains("\"get_range\":3,"), "{v}");
        assert!(v.contains("\"range_bytes\":60,"), "{v}");
        assert!(v.contains("\"peak_in_flight\":2,"), "{v}");
        assert!(
            v.ends_with("\"range_ms_histogram\":{\"<1\":1,\"<64\":1,\">=1024\":1}}"),
            "{v}"
        );
    }
}
