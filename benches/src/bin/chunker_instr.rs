//! Chunk a fixed 32 MiB input once, for counting instructions with
//! `valgrind --tool=callgrind --toggle-collect='*chunk_all*'`:
//!
//! ```text
//! chunker_instr seeded[:SEED]|keyed[:SECRET]|crate mixed|random [MIN AVG MAX]
//! ```
//!
//! `seeded`: the seeded gear table (repositories made before keyed tables,
//! seed 7 unless given); `keyed`: the keyed table of new repositories
//! (secret `bench secret` unless given); `crate`: the fastcdc crate's
//! iterator over the seeded table (seed 7). `mixed` is the input of the
//! `chunker` bench (random and repeated text in 64 KiB stretches),
//! `random` all random. Prints the chunk count.

use fastcdc::v2020::{FastCDC, Normalization};
use lifeboat_chunker::{Chunker, GearTable};

fn data(n: usize, text: bool) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if !text || (i >> 16) % 2 == 0 {
                x as u8
            } else {
                b"lifeboat backup "[i % 16]
            }
        })
        .collect()
}

#[inline(never)]
fn chunk_all(c: &Chunker, d: &[u8]) -> usize {
    c.chunks(d).count()
}

#[inline(never)]
fn chunk_all_crate(d: &[u8], min: usize, avg: usize, max: usize) -> usize {
    FastCDC::with_level_and_seed(d, min, avg, max, Normalization::Level1, 7).count()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map(String::as_str).unwrap_or("keyed");
    let text = match args.get(2).map(String::as_str).unwrap_or("mixed") {
        "mixed" => true,
        "random" => false,
        other => anyhow::bail!("unknown input {other}: mixed or random"),
    };
    let size = |i: usize, d: usize| -> anyhow::Result<usize> {
        Ok(match args.get(i) {
            Some(s) => s.parse()?,
            None => d,
        })
    };
    let (min, avg, max) = (size(3, 512 << 10)?, size(4, 1 << 20)?, size(5, 8 << 20)?);
    let d = data(32 << 20, text);
    let (kind, arg) = mode.split_once(':').unwrap_or((mode, ""));
    let n = match kind {
        "seeded" => {
            let seed = if arg.is_empty() { 7 } else { arg.parse()? };
            chunk_all(&Chunker::new(min, avg, max, seed)?, &d)
        }
        "keyed" => {
            let secret = if arg.is_empty() { "bench secret" } else { arg };
            let table = GearTable::keyed(secret.as_bytes());
            chunk_all(&Chunker::with_table(min, avg, max, table)?, &d)
        }
        "crate" => chunk_all_crate(&d, min, avg, max),
        other => anyhow::bail!("unknown mode {other}: seeded, keyed or crate"),
    };
    println!("{mode} {min}/{avg}/{max}: {n} chunks");
    Ok(())
}
