//! Chunker throughput: the seeded gear table of repositories made before
//! keyed tables, the keyed table of new ones, and the fastcdc crate's own
//! iterator over the seeded table (what `Chunker` called before it kept its
//! own table), at the default sizes and at 16/64/256 KiB.
//!
//! `nice -n 19 cargo bench -p lifeboat-bench --bench chunker`
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fastcdc::v2020::{FastCDC, Normalization};
use lifeboat_chunker::{Chunker, GearTable};

/// Half random bytes, half repeated text, in 64 KiB stretches (as the
/// `stages` bench).
fn data(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (i >> 16) % 2 == 0 {
                x as u8
            } else {
                b"lifeboat backup "[i % 16]
            }
        })
        .collect()
}

fn chunker(c: &mut Criterion) {
    let buf = data(64 << 20);
    let mut g = c.benchmark_group("chunker");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(buf.len() as u64));
    for (label, (min, avg, max)) in [
        ("1MiB", (512usize << 10, 1usize << 20, 8usize << 20)),
        ("64KiB", (16 << 10, 64 << 10, 256 << 10)),
    ] {
        let seeded = Chunker::new(min, avg, max, 7).unwrap();
        let keyed = Chunker::with_table(min, avg, max, GearTable::keyed(b"bench secret")).unwrap();
        g.bench_function(format!("seeded_{label}"), |b| {
            b.iter(|| seeded.chunks(&buf).count())
        });
        g.bench_function(format!("keyed_{label}"), |b| {
            b.iter(|| keyed.chunks(&buf).count())
        });
        g.bench_function(format!("crate_seeded_{label}"), |b| {
            b.iter(|| {
                FastCDC::with_level_and_seed(&buf, min, avg, max, Normalization::Level1, 7).count()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chunker);
criterion_main!(benches);
