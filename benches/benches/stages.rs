//! Per-stage throughput: chunking, sealing (hash + zstd + encrypt), opening.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lifeboat_chunker::Chunker;
use lifeboat_format::{BlobType, MasterKey, open_blob, seal_blob};

fn data(n: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Half random bytes, half text-like bytes.
            if (i >> 16) % 2 == 0 {
                x as u8
            } else {
                b"lifeboat backup "[i % 16]
            }
        })
        .collect()
}

fn stages(c: &mut Criterion) {
    let buf = data(64 << 20);
    let key = MasterKey::generate().unwrap();
    let mut g = c.benchmark_group("stages");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(buf.len() as u64));
    let chunker = Chunker::new(512 << 10, 1 << 20, 8 << 20, 7).unwrap();
    g.bench_function("fastcdc_chunk", |b| b.iter(|| chunker.chunks(&buf).count()));
    g.bench_function("keyed_blake3", |b| b.iter(|| key.blob_id(&buf)));
    let chunk = &buf[..1 << 20];
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    g.bench_function("seal_blob_1MiB", |b| {
        b.iter(|| seal_blob(&key, BlobType::Data, chunk, 3).unwrap())
    });
    let sealed = seal_blob(&key, BlobType::Data, chunk, 3).unwrap();
    g.bench_function("open_blob_1MiB", |b| {
        b.iter(|| {
            open_blob(
                &key,
                BlobType::Data,
                &sealed.id,
                sealed.flags,
                sealed.raw_len,
                &sealed.bytes,
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
