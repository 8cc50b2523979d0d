//! Chunking for Lifeboat.
//!
//! Owns how a byte stream is cut into chunks: content-defined chunking with
//! FastCDC v2020 over a secret gear table, fixed-size chunking for block
//! images, and zero-chunk detection. It does not hash, compress, encrypt or
//! store anything.
//!
//! Two gear tables exist ([`GearTable`]): the *keyed* table of new
//! repositories, all 256 entries derived from the repository key by BLAKE3,
//! and the *seeded* table of repositories made before it, FastCDC's public
//! table with a 64-bit seed XORed in. Chunk boundaries still show chunk sizes
//! to whoever sees the stored blobs; `docs/security.md` says what that
//! reveals.

use std::io::{self, Read};
use std::sync::Arc;

use fastcdc::v2020::{Normalization, cut_gear, get_gear_with_seed, select_masks};
use zeroize::Zeroize;

/// Chunk size limits accepted by the chunker.
pub const MIN_CHUNK: usize = fastcdc::v2020::MINIMUM_MIN;
/// Largest maximum chunk size FastCDC accepts.
pub const MAX_CHUNK: usize = fastcdc::v2020::MAXIMUM_MAX;

/// BLAKE3 `derive_key` context that turns the repository's chunking secret
/// into the chunker key (see [`GearTable::keyed`]).
pub const CHUNKER_KEY_CONTEXT: &str = "lifeboat 2026-12-02 chunker gear table key v1";

/// Input hashed under the chunker key to give the keyed gear table.
pub const GEAR_TABLE_INPUT: &[u8] = b"gear table";

/// Errors from configuring the chunker or reading its source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Sizes outside FastCDC's limits or out of order.
    #[error("invalid chunk sizes min={min} avg={avg} max={max}: {reason}")]
    InvalidSizes {
        /// Minimum.
        min: usize,
        /// Average.
        avg: usize,
        /// Maximum.
        max: usize,
        /// Why.
        reason: &'static str,
    },
    /// Reading the source failed.
    #[error("reading input: {0}")]
    Io(#[from] io::Error),
}

/// The gear table of the FastCDC hash: one 64-bit value per byte value,
/// added into the rolling hash for each byte. Who knows the table can
/// compute every chunk boundary, so it is secret and zeroized on drop; its
/// `Debug` form does not show it.
#[derive(Clone)]
pub struct GearTable {
    gear: [u64; 256],
    /// `gear[b] << 1`, for the crate's two-bytes-per-step loop.
    gear_ls: [u64; 256],
}

impl std::fmt::Debug for GearTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GearTable(<redacted>)")
    }
}

impl Drop for GearTable {
    fn drop(&mut self) {
        self.gear.zeroize();
        self.gear_ls.zeroize();
    }
}

impl GearTable {
    /// FastCDC's public table with `seed` XORed into every entry (seed 0:
    /// the public table itself), as `fastcdc::v2020::FastCDC::with_level_and_seed`
    /// builds it. Repositories made before keyed tables chunk with this.
    pub fn seeded(seed: u64) -> GearTable {
        let (public, _) = get_gear_with_seed(seed);
        let mut gear = [0u64; 256];
        for (g, p) in gear.iter_mut().zip(public.iter()) {
            *g = *p;
        }
        GearTable::from_entries(gear)
    }

    /// The keyed table: all 256 entries from `secret` (the repository's
    /// chunking secret) by a PRF. The chunker key is BLAKE3 `derive_key`
    /// with [`CHUNKER_KEY_CONTEXT`] over `secret`; entry `b` is bytes
    /// `8b..8b+8`, little-endian, of the BLAKE3 keyed-hash extended output
    /// of [`GEAR_TABLE_INPUT`] under that key (2048 bytes in all).
    pub fn keyed(secret: &[u8]) -> GearTable {
        let mut key = blake3::derive_key(CHUNKER_KEY_CONTEXT, secret);
        let mut bytes = [0u8; 8 * 256];
        blake3::Hasher::new_keyed(&key)
            .update(GEAR_TABLE_INPUT)
            .finalize_xof()
            .fill(&mut bytes);
        key.zeroize();
        let mut gear = [0u64; 256];
        for (g, b) in gear.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(b);
            *g = u64::from_le_bytes(word);
            word.zeroize();
        }
        bytes.zeroize();
        let table = GearTable::from_entries(gear);
        gear.zeroize();
        table
    }

    fn from_entries(gear: [u64; 256]) -> GearTable {
        let mut gear_ls = [0u64; 256];
        for (l, g) in gear_ls.iter_mut().zip(gear.iter()) {
            *l = g << 1;
        }
        GearTable { gear, gear_ls }
    }

    /// The 256 entries, for test vectors.
    pub fn entries(&self) -> &[u64; 256] {
        &self.gear
    }
}

/// Content-defined chunker settings: sizes and the gear table. Cheap to
/// clone (the table is shared).
#[derive(Debug, Clone)]
pub struct Chunker {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
    table: Arc<GearTable>,
    /// Length of the chunk that starts a run of at least `max` zero bytes:
    /// a function of the sizes and table only, so a zero run is cut without
    /// hashing it (see [`Chunker::next_cut`]).
    zero_cut: usize,
}

impl Chunker {
    /// A chunker with the given sizes (bytes, even) over the seeded table
    /// [`GearTable::seeded`]`(seed)`: the chunker of repositories made
    /// before keyed tables.
    pub fn new(min: usize, avg: usize, max: usize, seed: u64) -> Result<Chunker, Error> {
        Chunker::with_table(min, avg, max, GearTable::seeded(seed))
    }

    /// A chunker with the given sizes (bytes, even) over `table`.
    pub fn with_table(
        min: usize,
        avg: usize,
        max: usize,
        table: GearTable,
    ) -> Result<Chunker, Error> {
        let bad = |reason| Error::InvalidSizes {
            min,
            avg,
            max,
            reason,
        };
        if !(min <= avg && avg <= max) {
            return Err(bad("need min <= avg <= max"));
        }
        if !(fastcdc::v2020::MINIMUM_MIN..=fastcdc::v2020::MINIMUM_MAX).contains(&min) {
            return Err(bad("min outside 64 B..1 MiB"));
        }
        if !(fastcdc::v2020::AVERAGE_MIN..=fastcdc::v2020::AVERAGE_MAX).contains(&avg) {
            return Err(bad("avg outside 256 B..4 MiB"));
        }
        if !(fastcdc::v2020::MAXIMUM_MIN..=fastcdc::v2020::MAXIMUM_MAX).contains(&max) {
            return Err(bad("max outside 1 KiB..16 MiB"));
        }
        if min % 2 != 0 || avg % 2 != 0 || max % 2 != 0 {
            return Err(bad("sizes must be even"));
        }
        let (mask_s, mask_l) = select_masks(avg, Normalization::Level1);
        let mut c = Chunker {
            min,
            avg,
            max,
            mask_s,
            mask_l,
            table: Arc::new(table),
            zero_cut: max,
        };
        // Untouched zeroed pages: the scan reads the shared zero page.
        let zeros = vec![0u8; max];
        c.zero_cut = c.hashed_cut(&zeros);
        Ok(c)
    }

    /// Largest chunk this chunker emits.
    pub fn max_size(&self) -> usize {
        self.max
    }

    /// Smallest chunk (except the last of a stream).
    pub fn min_size(&self) -> usize {
        self.min
    }

    /// Target average chunk size.
    pub fn avg_size(&self) -> usize {
        self.avg
    }

    /// Length of the first chunk of `data`. When `eof` is false and `data`
    /// is shorter than the maximum chunk, the answer is only final if it is
    /// less than `data.len()`; see [`Chunker::next_cut`].
    ///
    /// A chunk that starts with zero bytes up to and including the byte
    /// where the zero-run cut falls is cut there without hashing: FastCDC
    /// scans forward from the start and decides each position from the
    /// bytes before it, so such input cuts exactly where all-zero input
    /// does. That makes a zero run cost one memory scan.
    fn cut(&self, data: &[u8]) -> usize {
        if data.len() >= self.max && data.first() == Some(&0) {
            let seen = (self.zero_cut + 1).min(self.max);
            if is_zero(&data[..seen]) {
                return self.zero_cut;
            }
        }
        self.hashed_cut(data)
    }

    /// FastCDC's cut over this chunker's table, through the crate's own
    /// scan loop (`fastcdc::v2020::cut_gear`).
    fn hashed_cut(&self, data: &[u8]) -> usize {
        let t = &*self.table;
        let (_, end) = cut_gear(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
            &t.gear,
            &t.gear_ls,
        );
        end
    }

    /// The length of the next chunk at the start of `data`, or `None` if more
    /// input is needed to decide. Gives the same boundaries as chunking the
    /// whole input at once: a cut found before the end of `data` is final,
    /// because FastCDC decides each position from the bytes before it and
    /// the position alone (never from how much input follows); a chunk that
    /// runs to the end of `data` is final only at end of input or at the
    /// maximum size.
    pub fn next_cut(&self, data: &[u8], eof: bool) -> Option<usize> {
        if data.is_empty() {
            return None;
        }
        let n = self.cut(data);
        (n < data.len() || eof || data.len() >= self.max).then_some(n)
    }

    /// Chunk boundaries of a complete in-memory input, as (offset, length).
    pub fn chunks<'a>(&'a self, data: &'a [u8]) -> impl Iterator<Item = (usize, usize)> + 'a {
        let mut pos = 0usize;
        std::iter::from_fn(move || {
            if pos >= data.len() {
                return None;
            }
            let end = self.cut(&data[pos..]);
            let start = pos;
            pos += end;
            Some((start, end))
        })
    }

    /// Cut a reader in batches of about `step` bytes into buffers the
    /// caller owns and reuses; boundaries equal [`Chunker::chunks`] on the
    /// whole input. See [`StreamBatches::next_batch`].
    pub fn batches<R: Read>(&self, reader: R, step: usize) -> StreamBatches<'_, R> {
        StreamBatches {
            chunker: self,
            reader,
            step: step.max(1),
            eof: false,
        }
    }

    /// Bytes a buffer given to [`StreamBatches::next_batch`] comes to hold
    /// at most: the step plus one maximum chunk of undecided tail.
    pub fn batch_capacity(&self, step: usize) -> usize {
        step.max(1) + self.max
    }

    /// Chunk a reader, giving owned chunks; boundaries equal [`Chunker::chunks`]
    /// on the whole input. It reads [`STREAM_READ`] bytes at a time (or the
    /// average chunk size, if larger) and holds two buffers of at most that
    /// plus one maximum chunk (the batch being given and the next one).
    pub fn stream<R: Read>(&self, reader: R) -> StreamChunker<'_, R> {
        self.stream_with_step(reader, STREAM_READ.max(self.avg))
    }

    fn stream_with_step<R: Read>(&self, reader: R, step: usize) -> StreamChunker<'_, R> {
        StreamChunker {
            batches: self.batches(reader, step),
            buf: Vec::new(),
            spare: Vec::new(),
            cuts: Vec::new(),
            next: 0,
            tail_start: 0,
            started: false,
            failed: false,
        }
    }
}

/// Bytes a [`StreamChunker`] reads at a time.
pub const STREAM_READ: usize = 4 << 20;

/// Iterator of chunks from a [`Read`]; see [`Chunker::stream`]. It is
/// [`StreamBatches`] with each chunk copied out of the batch.
#[derive(Debug)]
pub struct StreamChunker<'c, R> {
    batches: StreamBatches<'c, R>,
    /// The current batch, and the buffer the next one is read into.
    buf: Vec<u8>,
    spare: Vec<u8>,
    cuts: Vec<(usize, usize)>,
    /// The next chunk of `cuts` to give.
    next: usize,
    /// Where the current batch's undecided tail begins.
    tail_start: usize,
    started: bool,
    failed: bool,
}

impl<R: Read> Iterator for StreamChunker<'_, R> {
    type Item = Result<Vec<u8>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(&(o, l)) = self.cuts.get(self.next) {
                self.next += 1;
                return Some(Ok(self.buf[o..o + l].to_vec()));
            }
            if self.failed || (self.started && self.batches.is_done()) {
                return None;
            }
            let tail = &self.buf[self.tail_start..];
            match self
                .batches
                .next_batch(tail, &mut self.spare, &mut self.cuts)
            {
                Ok(tail_start) => {
                    std::mem::swap(&mut self.buf, &mut self.spare);
                    self.tail_start = tail_start;
                    self.next = 0;
                    self.started = true;
                }
                Err(e) => {
                    self.failed = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// A stream cut into batches of chunks, each batch in a buffer the caller
/// owns, so that one pair of buffers serves a whole stream: no memory is
/// allocated per chunk or per batch. See [`Chunker::batches`].
#[derive(Debug)]
pub struct StreamBatches<'c, R> {
    chunker: &'c Chunker,
    reader: R,
    step: usize,
    eof: bool,
}

impl<R: Read> StreamBatches<'_, R> {
    /// Whether the input is used up: the last batch has been given.
    pub fn is_done(&self) -> bool {
        self.eof
    }

    /// Fill `buf` with `tail` (the undecided end of the previous batch,
    /// empty for the first) followed by input, up to
    /// [`Chunker::batch_capacity`] bytes or the end of input, and cut it:
    /// `cuts` gets the (offset, length) of every chunk that is final, in
    /// order, and the return value is where the undecided tail begins
    /// (`buf.len()` once the input is used up). The caller passes
    /// `&buf[tail_start..]` as the `tail` of the next call (into another
    /// buffer, so this one can be worked on meanwhile).
    ///
    /// `buf` keeps its capacity from call to call: it is cleared, never
    /// shrunk, and read into without being zeroed first.
    pub fn next_batch(
        &mut self,
        tail: &[u8],
        buf: &mut Vec<u8>,
        cuts: &mut Vec<(usize, usize)>,
    ) -> Result<usize, Error> {
        cuts.clear();
        buf.clear();
        let cap = self.chunker.batch_capacity(self.step);
        buf.reserve(cap);
        buf.extend_from_slice(tail);
        if !self.eof {
            let want = cap.saturating_sub(buf.len());
            // `read_to_end` on a `Take` retries on `Interrupted` and stops
            // at the limit or at end of input, without growing a buffer
            // that has room.
            let got = (&mut self.reader)
                .take(want as u64)
                .read_to_end(buf)
                .map_err(Error::Io)?;
            if got < want {
                self.eof = true;
            }
        }
        let mut pos = 0;
        while let Some(n) = self.chunker.next_cut(&buf[pos..], self.eof) {
            cuts.push((pos, n));
            pos += n;
        }
        Ok(pos)
    }
}

/// Fixed-size chunk boundaries, for block images where content does not
/// shift: (offset, length) pairs of `size` bytes (the last may be shorter).
pub fn fixed_chunks(len: usize, size: usize) -> impl Iterator<Item = (usize, usize)> {
    let size = size.max(1);
    (0..len.div_ceil(size)).map(move |i| (i * size, size.min(len - i * size)))
}

/// Whether every byte of `data` is zero. Compares word-sized pieces so it
/// runs at memory speed; used to skip hashing and storing zero runs.
pub fn is_zero(data: &[u8]) -> bool {
    let mut words = data.chunks_exact(16);
    words
        .by_ref()
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0)
        && words.remainder().iter().all(|b| *b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fastcdc::v2020::FastCDC;

    fn data(n: usize) -> Vec<u8> {
        let mut x = 0x1234_5678_9abc_def0u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn stream_matches_whole_input_and_covers_it() {
        let c = Chunker::new(4096, 16384, 65536, 42).unwrap();
        let d = data(1_000_000);
        let whole: Vec<_> = c.chunks(&d).map(|(o, l)| d[o..o + l].to_vec()).collect();
        assert!(whole.len() > 20);
        assert_eq!(whole.concat(), d);
        // A reader that returns odd-sized pieces.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                let n = b.len().min(self.0.len()).min(7919);
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let streamed: Vec<_> = c.stream(Dribble(&d)).map(|r| r.unwrap()).collect();
        assert_eq!(streamed, whole);
        for ch in &whole[..whole.len() - 1] {
            assert!(ch.len() >= 4096 && ch.len() <= 65536);
        }
    }

    #[test]
    fn small_reads_give_the_same_boundaries() {
        let c = Chunker::new(4096, 16384, 65536, 7).unwrap();
        // Random data, then a zero run long enough to force cuts at the
        // maximum size, then random again.
        let mut d = data(600_000);
        d.extend(std::iter::repeat_n(0u8, 300_001));
        d.extend(data(400_000));
        let whole: Vec<_> = c.chunks(&d).map(|(o, l)| d[o..o + l].to_vec()).collect();
        assert!(whole.iter().filter(|ch| ch.len() == 65536).count() >= 4);
        // Steps smaller than a minimum chunk, between minimum and average,
        // and between average and maximum.
        for step in [1000, 5003, 20_000, 70_000] {
            let streamed: Vec<_> = c
                .stream_with_step(&d[..], step)
                .map(|r| r.unwrap())
                .collect();
            assert_eq!(streamed, whole, "step {step}");
        }
    }

    /// Boundaries from the fastcdc crate itself (its own iterator and
    /// seeded table), without the zero-run shortcut.
    fn reference(c: &Chunker, seed: u64, d: &[u8]) -> Vec<(usize, usize)> {
        FastCDC::with_level_and_seed(
            d,
            c.min_size(),
            c.avg_size(),
            c.max_size(),
            Normalization::Level1,
            seed,
        )
        .map(|ch| (ch.offset, ch.length))
        .collect()
    }

    /// Boundaries from repeated hashed cuts, without the zero-run shortcut
    /// (for tables the crate cannot build).
    fn hashed(c: &Chunker, d: &[u8]) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < d.len() {
            let n = c.hashed_cut(&d[pos..]);
            out.push((pos, n));
            pos += n;
        }
        out
    }

    /// Random data, zero runs of several lengths, and short pieces.
    fn mixed(n: usize) -> Vec<u8> {
        let mut d = data(n);
        d.extend(std::iter::repeat_n(0u8, 70_001));
        d.extend(data(n / 3));
        d.extend(std::iter::repeat_n(0u8, 1023));
        d.push(1);
        d.extend(b"lifeboat ".repeat(n / 9));
        d
    }

    #[test]
    fn own_loop_is_pinned_to_the_crate_on_its_tables() {
        // The crate's default (public) table, and seeded ones, at several
        // sizes: our cuts must be the crate's.
        let d = mixed(700_000);
        for (min, avg, max) in [(64, 256, 1024), (4096, 16384, 65536), (2048, 8192, 1 << 20)] {
            let c = Chunker::with_table(min, avg, max, GearTable::seeded(0)).unwrap();
            let crate_cuts: Vec<_> = FastCDC::new(&d, min, avg, max)
                .map(|ch| (ch.offset, ch.length))
                .collect();
            assert!(crate_cuts.len() > 10);
            assert_eq!(
                c.chunks(&d).collect::<Vec<_>>(),
                crate_cuts,
                "{min}/{avg}/{max}"
            );
            for seed in [1u64, 0xdead_beef, u64::MAX] {
                let c = Chunker::new(min, avg, max, seed).unwrap();
                assert_eq!(
                    c.chunks(&d).collect::<Vec<_>>(),
                    reference(&c, seed, &d),
                    "{min}/{avg}/{max} seed {seed}"
                );
            }
        }
        // The public table is FastCDC's (GEAR[0], GEAR[255] of docs/format.md).
        let t = GearTable::seeded(0);
        assert_eq!(t.entries()[0], 0x3b5d_3c7d_207e_37dc);
        assert_eq!(t.entries()[255], 0xaabd_2b2a_4515_04e1);
        assert_eq!(GearTable::seeded(5).entries()[0], 0x3b5d_3c7d_207e_37dc ^ 5);
    }

    #[test]
    fn keyed_table_depends_on_the_whole_secret_and_cuts_alike_everywhere() {
        let a = GearTable::keyed(b"secret one");
        let b = GearTable::keyed(b"secret one");
        let c = GearTable::keyed(b"secret two");
        assert_eq!(a.entries(), b.entries());
        assert_ne!(a.entries(), c.entries());
        // Every entry differs between the two keys, and none is the public one.
        let public = GearTable::seeded(0);
        for i in 0..256 {
            assert_ne!(a.entries()[i], c.entries()[i], "entry {i}");
            assert_ne!(a.entries()[i], public.entries()[i], "entry {i}");
        }
        // Not a seeded table: the XOR with the public table is not constant.
        let x0 = a.entries()[0] ^ public.entries()[0];
        assert!((1..256).any(|i| a.entries()[i] ^ public.entries()[i] != x0));
        // Shifted twin.
        for i in 0..256 {
            assert_eq!(a.gear_ls[i], a.gear[i] << 1);
        }
        assert_eq!(format!("{a:?}"), "GearTable(<redacted>)");

        let d = mixed(1_500_000);
        let ka = Chunker::with_table(4096, 16384, 65536, a).unwrap();
        let kc = Chunker::with_table(4096, 16384, 65536, c).unwrap();
        let cuts = ka.chunks(&d).collect::<Vec<_>>();
        assert_eq!(cuts, hashed(&ka, &d), "zero-run shortcut");
        assert_ne!(cuts, kc.chunks(&d).collect::<Vec<_>>());
        let seeded = Chunker::new(4096, 16384, 65536, 7).unwrap();
        assert_ne!(cuts, seeded.chunks(&d).collect::<Vec<_>>());
        // Sizes within bounds and an average near the target on random data.
        let r = data(4_000_000);
        let rc: Vec<_> = ka.chunks(&r).collect();
        for &(_, l) in &rc[..rc.len() - 1] {
            assert!((4096..=65536).contains(&l));
        }
        let mean = r.len() / rc.len();
        assert!((12_000..=28_000).contains(&mean), "mean chunk {mean}");
        // Streaming gives the same boundaries.
        for step in [1000, 20_000, 70_000] {
            let streamed: Vec<usize> = ka
                .stream_with_step(&d[..], step)
                .map(|r| r.unwrap().len())
                .collect();
            let whole: Vec<usize> = cuts.iter().map(|&(_, l)| l).collect();
            assert_eq!(streamed, whole, "step {step}");
        }
    }

    #[test]
    fn keyed_zero_runs_cut_where_the_hash_cuts() {
        let mut early = 0;
        for k in 0..300u32 {
            let c = Chunker::with_table(64, 256, 1024, GearTable::keyed(&k.to_le_bytes())).unwrap();
            if c.zero_cut < c.max_size() {
                early += 1;
            }
            let mut d = data(3000);
            d.extend(std::iter::repeat_n(0u8, 5000 + k as usize));
            d.extend(data(700));
            assert_eq!(c.chunks(&d).collect::<Vec<_>>(), hashed(&c, &d), "key {k}");
        }
        assert!(early > 0, "some key cuts inside a zero run");
    }

    #[test]
    fn zero_runs_cut_where_fastcdc_cuts() {
        // Small sizes and many seeds, so that some zero-run cuts fall
        // before the maximum (the gear hash can match inside a zero run).
        let mut early = 0;
        for seed in 0..300u64 {
            let c = Chunker::new(64, 256, 1024, seed).unwrap();
            if c.zero_cut < c.max_size() {
                early += 1;
            }
            let mut d = data(3000);
            d.extend(std::iter::repeat_n(0u8, 5000 + seed as usize));
            d.extend(data(700));
            d.extend(std::iter::repeat_n(0u8, 1023));
            d.push(1);
            d.extend(std::iter::repeat_n(0u8, 4096));
            let got: Vec<_> = c.chunks(&d).collect();
            assert_eq!(got, reference(&c, seed, &d), "seed {seed}");
            let mut parts = Vec::new();
            let mut stream = c.batches(&d[..], 700);
            let (mut buf, mut next, mut cuts) = (Vec::new(), Vec::new(), Vec::new());
            let mut tail_start = 0;
            loop {
                let t = stream
                    .next_batch(&buf[tail_start..], &mut next, &mut cuts)
                    .unwrap();
                let base: usize = parts.iter().map(|(_, l): &(usize, usize)| *l).sum();
                parts.extend(cuts.iter().map(|&(o, l)| (base + o, l)));
                std::mem::swap(&mut buf, &mut next);
                tail_start = t;
                if stream.is_done() {
                    break;
                }
            }
            assert_eq!(parts, got, "seed {seed}: batches");
        }
        assert!(early > 0, "some seed cuts inside a zero run");
        let c = Chunker::new(4096, 16384, 65536, 3).unwrap();
        let z = vec![0u8; 1 << 20];
        assert_eq!(c.chunks(&z).collect::<Vec<_>>(), reference(&c, 3, &z));
    }

    #[test]
    fn batches_match_whole_input_and_reuse_buffers() {
        let c = Chunker::new(4096, 16384, 65536, 11).unwrap();
        let mut d = data(900_000);
        d.extend(std::iter::repeat_n(0u8, 400_000));
        d.extend(data(300_001));
        let whole: Vec<_> = c.chunks(&d).collect();
        for step in [1, 1000, 20_000, 70_000, 1 << 20, 4 << 20] {
            let mut stream = c.batches(&d[..], step);
            let mut bufs = [Vec::new(), Vec::new()];
            let mut cuts = Vec::new();
            let mut got = Vec::new();
            let (mut base, mut tail_start, mut i) = (0usize, 0usize, 0usize);
            let mut ptrs = Vec::new();
            loop {
                let (a, b) = bufs.split_at_mut(1);
                let (prev, cur) = if i % 2 == 0 {
                    (&b[0], &mut a[0])
                } else {
                    (&a[0], &mut b[0])
                };
                let tail = &prev[tail_start.min(prev.len())..];
                let t = stream.next_batch(tail, cur, &mut cuts).unwrap();
                assert!(cur.len() <= c.batch_capacity(step));
                got.extend(cuts.iter().map(|&(o, l)| (base + o, l)));
                base += t;
                tail_start = t;
                ptrs.push(cur.as_ptr());
                i += 1;
                if stream.is_done() {
                    break;
                }
            }
            assert_eq!(got, whole, "step {step}");
            // Each of the two buffers is allocated once and reused.
            for w in ptrs.windows(3) {
                assert_eq!(w[0], w[2], "step {step}");
            }
        }
    }

    #[test]
    fn seed_changes_boundaries_and_edit_is_local() {
        let d = data(2_000_000);
        let a = Chunker::new(4096, 16384, 65536, 1).unwrap();
        let b = Chunker::new(4096, 16384, 65536, 2).unwrap();
        let ca: Vec<_> = a.chunks(&d).collect();
        let cb: Vec<_> = b.chunks(&d).collect();
        assert_ne!(ca, cb);
        let mut e = d.clone();
        e[1_000_000] ^= 0xff;
        let ce: Vec<_> = a.chunks(&e).collect();
        let same = ca.iter().filter(|x| ce.contains(x)).count();
        assert!(same + 3 >= ca.len(), "an edit changes only nearby chunks");
    }

    #[test]
    fn sizes_are_validated_and_helpers_work() {
        assert!(Chunker::new(100, 50, 1000, 0).is_err());
        assert!(Chunker::new(64, 256, 1 << 30, 0).is_err());
        assert_eq!(
            fixed_chunks(10, 4).collect::<Vec<_>>(),
            vec![(0, 4), (4, 4), (8, 2)]
        );
        assert!(is_zero(&[0u8; 1000]));
        let mut z = vec![0u8; 1000];
        z[999] = 1;
        assert!(!is_zero(&z));
        z[999] = 0;
        z[3] = 1;
        assert!(!is_zero(&z));
        assert!(is_zero(&[]));
        assert_eq!(
            Chunker::new(512, 1024, 4096, 0)
                .unwrap()
                .stream(&[][..])
                .count(),
            0
        );
    }
}
