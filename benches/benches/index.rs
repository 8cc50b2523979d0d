//! Lookups in the local index table at scale (default 10 M blobs; set
//! `LIFEBOAT_BENCH_INDEX_BLOBS` to change it). One thread, so the figures are
//! lookups per second on one core. The table is built once, outside the
//! timings, in a temporary directory. First through the memory map with
//! nothing released (`Lookups::Mapped`), then with the mapping released every
//! 256 lookups, then with one `pread` per lookup (`Lookups::Read`, the
//! default).
//!
//! `cargo bench -p lifeboat-bench --bench index`
#![allow(missing_docs, clippy::unwrap_used)]

use std::time::Instant;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use lifeboat_format::{BlobFlags, BlobType, Id, IndexEntry, IndexPack, MasterKey};
use lifeboat_index::{Index, IndexOptions, Lookups};

const SEED: u64 = 0x5eed_1dc0_ffee_0001;
const BLOBS_PER_PACK: u64 = 16;
const BATCH: u64 = 4096;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Uniformly distributed id number `i` of stream `s`.
fn id(s: u64, i: u64) -> Id {
    let mut out = [0u8; 32];
    for (k, c) in out.chunks_mut(8).enumerate() {
        c.copy_from_slice(&splitmix(s ^ (i * 4 + k as u64)).to_le_bytes());
    }
    Id(out)
}

fn packs(blobs: u64) -> impl Iterator<Item = IndexPack> {
    (0..blobs.div_ceil(BLOBS_PER_PACK)).map(move |p| {
        let first = p * BLOBS_PER_PACK;
        let last = (first + BLOBS_PER_PACK).min(blobs);
        IndexPack {
            id: id(SEED ^ 0xffff, p),
            blob_type: if p % 64 == 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            size: 16 << 20,
            blobs: (first..last)
                .map(|i| IndexEntry {
                    id: id(SEED, i),
                    flags: BlobFlags((i % 2) as u8),
                    offset: ((i - first) << 20) as u32,
                    stored_len: 1 << 20,
                    raw_len: 1 << 20,
                })
                .collect(),
        }
    })
}

fn lookups(c: &mut Criterion) {
    // Run as a test (`cargo test`/`nextest --all-targets`: no `--bench`),
    // a small table is enough to check that the bench works.
    let benching = std::env::args().any(|a| a == "--bench");
    let blobs: u64 = std::env::var("LIFEBOAT_BENCH_INDEX_BLOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000_000 } else { 100_000 });
    let key = MasterKey::generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = IndexOptions {
        cache_dir: Some(dir.path().to_path_buf()),
        lookups: Lookups::Mapped,
        ..IndexOptions::default()
    };
    let t = Instant::now();
    let mut idx = Index::from_packs(packs(blobs), &key, &opts).unwrap();
    eprintln!(
        "built a table of {} blobs in {:.1} s",
        idx.len(),
        t.elapsed().as_secs_f64()
    );
    assert_eq!(idx.len() as u64, blobs);

    let mut g = c.benchmark_group(if blobs >= 1_000_000 {
        format!("index_{}M", blobs / 1_000_000)
    } else {
        format!("index_{}k", blobs / 1000)
    });
    g.throughput(Throughput::Elements(BATCH));
    let mut x = 1u64;
    let mut next = move || {
        x = splitmix(x);
        x
    };
    // Ids known to be in the table, drawn at random.
    let mut hits = || -> Vec<Id> { (0..BATCH).map(|_| id(SEED, next() % blobs)).collect() };
    g.bench_function("contains_hit", |b| {
        b.iter_batched(
            &mut hits,
            |ids| assert!(ids.iter().all(|i| idx.contains(i))),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("get_hit", |b| {
        b.iter_batched(
            &mut hits,
            |ids| ids.iter().filter_map(|i| idx.get(i)).count(),
            BatchSize::SmallInput,
        )
    });
    let mut y = 7u64;
    let mut misses = || -> Vec<Id> {
        (0..BATCH)
            .map(|_| {
                y += 1;
                id(SEED ^ 0xabcd, y)
            })
            .collect()
    };
    g.bench_function("contains_miss", |b| {
        b.iter_batched(
            &mut misses,
            |ids| assert!(!ids.iter().any(|i| idx.contains(i))),
            BatchSize::SmallInput,
        )
    });
    // Mapped, dropping the table's pages every 256 lookups: a bounded
    // resident set, paid for with page faults.
    idx.set_lookups(Lookups::Mapped, 256);
    g.bench_function("contains_hit_mapped_release_256", |b| {
        b.iter_batched(
            &mut hits,
            |ids| assert!(ids.iter().all(|i| idx.contains(i))),
            BatchSize::SmallInput,
        )
    });
    // The default: one pread of a 4 KiB page per lookup, nothing resident.
    idx.set_lookups(Lookups::Read, 0);
    g.bench_function("contains_hit_read", |b| {
        b.iter_batched(
            &mut hits,
            |ids| assert!(ids.iter().all(|i| idx.contains(i))),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("get_hit_read", |b| {
        b.iter_batched(
            &mut hits,
            |ids| ids.iter().filter_map(|i| idx.get(i)).count(),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("contains_miss_read", |b| {
        b.iter_batched(
            &mut misses,
            |ids| assert!(!ids.iter().any(|i| idx.contains(i))),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = lookups
}
criterion_main!(benches);
