//! Input of the `chunker` target: chunk sizes, seed, batch step, how reads
//! are split, and a short program that expands into the data (so that a
//! small input can make data many maximum chunks long, with zero runs).
//!
//! Layout: `min_sel ‖ avg_sel ‖ max_sel ‖ seed (u64 LE) ‖ step (u32 LE) ‖
//! n ‖ n read sizes ‖ ops`, where each op is one byte `kk llllll`:
//! `00` copies the next `l + 1` input bytes, `01` appends `(l + 1) × 256`
//! zero bytes, `10` appends `(l + 1) × 256` pseudo-random bytes seeded by the
//! next input byte, `11` appends `(l + 1) × 64` copies of the next byte.

use std::io::{self, Read};

/// Most data an input expands to.
pub const MAX_DATA: usize = 256 << 10;

/// A decoded `chunker` input.
#[derive(Debug, Clone)]
pub struct ChunkerInput {
    /// Smallest chunk.
    pub min: usize,
    /// Average chunk.
    pub avg: usize,
    /// Largest chunk.
    pub max: usize,
    /// Gear seed.
    pub seed: u64,
    /// Batch step for `Chunker::batches`.
    pub step: usize,
    /// Sizes of successive reads (0: an `Interrupted` error), cycled.
    pub reads: Vec<usize>,
    /// The data to chunk.
    pub data: Vec<u8>,
}

impl ChunkerInput {
    /// Decode; `None` if the input is shorter than its head.
    pub fn parse(input: &[u8]) -> Option<ChunkerInput> {
        let (head, rest) = input.split_at_checked(16)?;
        let min = 64 * (1 + usize::from(head[0] % 16));
        let avg = min.max(256) * (1 + usize::from(head[1] % 4));
        let max = avg.max(1024) * (1 + usize::from(head[2] % 4));
        let seed = u64::from_le_bytes(head[3..11].try_into().ok()?);
        let step = 1 + u32::from_le_bytes(head[11..15].try_into().ok()?) as usize % 70_000;
        let n = 1 + usize::from(head[15] % 8);
        let (sizes, mut ops) = rest.split_at_checked(n).unwrap_or((rest, &[]));
        let reads = if sizes.is_empty() {
            vec![4096]
        } else {
            sizes.iter().map(|b| usize::from(*b) * 67).collect()
        };
        let mut data = Vec::new();
        while let Some((&op, tail)) = ops.split_first() {
            ops = tail;
            let l = usize::from(op & 63) + 1;
            match op >> 6 {
                0 => {
                    let (lit, tail) = ops.split_at(l.min(ops.len()));
                    data.extend_from_slice(lit);
                    ops = tail;
                }
                1 => data.resize(data.len() + l * 256, 0),
                2 => {
                    let (s, tail) = ops.split_first().map_or((0, ops), |(s, t)| (*s, t));
                    ops = tail;
                    let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ u64::from(s);
                    data.extend((0..l * 256).map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        (x >> 32) as u8
                    }));
                }
                _ => {
                    let (b, tail) = ops.split_first().map_or((0, ops), |(b, t)| (*b, t));
                    ops = tail;
                    data.resize(data.len() + l * 64, b);
                }
            }
            if data.len() >= MAX_DATA {
                data.truncate(MAX_DATA);
                break;
            }
        }
        Some(ChunkerInput {
            min,
            avg,
            max,
            seed,
            step,
            reads,
            data,
        })
    }

    /// A reader over `data` whose reads follow `reads`.
    pub fn reader(&self) -> SplitReader<'_> {
        SplitReader {
            data: &self.data,
            reads: &self.reads,
            i: 0,
        }
    }
}

/// A reader that returns at most the next planned size per call, and
/// `Interrupted` where the plan says 0 (callers must retry those).
#[derive(Debug)]
pub struct SplitReader<'a> {
    data: &'a [u8],
    reads: &'a [usize],
    i: usize,
}

impl Read for SplitReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = self.reads[self.i % self.reads.len()];
        self.i += 1;
        if want == 0 {
            // Only every other call, so that a plan of zeros still ends.
            if self.i % 2 == 1 {
                return Err(io::Error::from(io::ErrorKind::Interrupted));
            }
        }
        let n = want.max(1).min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// Encode an input (for the seed corpus): sizes are chosen by selector
/// bytes, `reads` (1 to 8 bytes) are read-size selectors (× 67 bytes), and
/// `ops` is the raw op program.
pub fn encode(sel: [u8; 3], seed: u64, step: u32, reads: &[u8], ops: &[u8]) -> Vec<u8> {
    assert!((1..=8).contains(&reads.len()), "1 to 8 read sizes");
    let mut v = sel.to_vec();
    v.extend_from_slice(&seed.to_le_bytes());
    v.extend_from_slice(&step.to_le_bytes());
    v.push((reads.len() - 1) as u8);
    v.extend_from_slice(reads);
    v.extend_from_slice(ops);
    v
}
