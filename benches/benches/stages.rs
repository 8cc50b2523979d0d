//! Per-stage throughput: chunking, keyed hashing, compression, encryption,
//! sealing (hash + zstd + encrypt), opening, pack assembly, and the whole
//! backup and restore pipeline on an in-memory repository.
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lifeboat_chunker::Chunker;
use lifeboat_core::format::{ChunkerParams, KdfParams};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions,
};
use lifeboat_format::{BlobType, MasterKey, PackBuilder, open_blob, seal_blob};
use lifeboat_store::ObjectStoreBackend;

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
    let text = &buf[1 << 16..(1 << 16) + (1 << 20)];
    g.bench_function("zstd3_compress_1MiB_half_text", |b| {
        b.iter(|| zstd::bulk::compress(text, 3).unwrap())
    });
    g.bench_function("xchacha20poly1305_seal_1MiB", |b| {
        b.iter(|| key.seal(b"bench", chunk).unwrap())
    });
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
    let blobs: Vec<_> = buf
        .chunks(1 << 20)
        .map(|c| seal_blob(&key, BlobType::Data, c, 3).unwrap())
        .take(16)
        .collect();
    let pack_bytes: usize = blobs.iter().map(|b| b.bytes.len()).sum();
    g.throughput(Throughput::Bytes(pack_bytes as u64));
    g.bench_function("pack_assemble_16_blobs", |b| {
        b.iter(|| {
            let mut p = PackBuilder::new(BlobType::Data, pack_bytes + 4096);
            for blob in &blobs {
                p.add(blob).unwrap();
            }
            p.finish(&key).unwrap()
        })
    });
    g.finish();
}

/// Backup and restore of 64 MiB through the whole pipeline, into an
/// in-memory repository (no disk, no network: the CPU path alone).
fn pipeline(c: &mut Criterion) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let buf = data(64 << 20);
    for (i, part) in buf.chunks(4 << 20).enumerate() {
        std::fs::write(src.join(format!("f{i}")), part).unwrap();
    }
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        chunker: ChunkerParams::default(),
        ..InitOptions::default()
    };
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(buf.len() as u64));
    g.bench_function("backup_64MiB_memory_repo", |b| {
        b.iter(|| {
            let backend = std::sync::Arc::new(ObjectStoreBackend::memory().unwrap());
            let repo = Repository::init(backend, b"bench", &opts).unwrap();
            repo.backup(
                BackupSource::Paths(vec![src.clone()]),
                &BackupOptions::default(),
                &Progress::default(),
            )
            .unwrap()
        })
    });
    let backend = std::sync::Arc::new(ObjectStoreBackend::memory().unwrap());
    let repo = Repository::init(backend, b"bench", &opts).unwrap();
    let report = repo
        .backup(
            BackupSource::Paths(vec![src.clone()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    let target = work.path().join("restore");
    g.bench_function("restore_64MiB_memory_repo", |b| {
        b.iter(|| {
            let _ = std::fs::remove_dir_all(&target);
            repo.restore(
                &report.snapshot,
                &RestoreOptions {
                    target: target.clone(),
                    ..Default::default()
                },
                &Progress::default(),
            )
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, stages, pipeline);
criterion_main!(benches);
