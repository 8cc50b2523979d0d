//! Index scale benchmark: a synthetic repository whose index holds millions
//! of blobs, for measuring what a backup costs in memory against it.
//!
//! ```text
//! index_scale gen REPO BLOBS   # init REPO and write index segments for BLOBS random blobs
//! index_scale open REPO        # open it (builds or refreshes the local table); time and peak RSS
//! ```
//!
//! `gen` writes real encrypted index segments through `write_segment`, 64
//! packs of 16 blobs each per segment (what a backup writes), for fake packs
//! that are not in the store: a backup deduplicates against them (random ids
//! never match new data) but `check` would report them missing. The
//! password is taken from `LIFEBOAT_PASSWORD`; key derivation is cheap. The
//! measurement procedure and results are in docs/index.md.

use lifeboat_core::internals::RepositoryInternals as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use lifeboat_core::{InitOptions, Repository};
use lifeboat_format::{BlobFlags, BlobType, Id, IndexEntry, IndexPack, IndexSegment, KdfParams};

const BLOBS_PER_PACK: u64 = 16;
const PACKS_PER_SEGMENT: u64 = 64;
/// restic's in-memory index: about 58 bytes per blob (research/prior-art.md).
const RESTIC_BYTES_PER_BLOB: u64 = 58;

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn id(stream: u64, i: u64) -> Id {
    let mut out = [0u8; 32];
    for (k, c) in out.chunks_mut(8).enumerate() {
        c.copy_from_slice(&splitmix(stream ^ (i * 4 + k as u64)).to_le_bytes());
    }
    Id(out)
}

fn segment(seed: u64, seg: u64, blobs: u64) -> IndexSegment {
    let mut s = IndexSegment::new();
    let first_pack = seg * PACKS_PER_SEGMENT;
    for p in first_pack..first_pack + PACKS_PER_SEGMENT {
        let first = p * BLOBS_PER_PACK;
        if first >= blobs {
            break;
        }
        let last = (first + BLOBS_PER_PACK).min(blobs);
        s.packs.push(IndexPack {
            id: id(seed ^ 0x7061_636b, p),
            blob_type: if p % 64 == 63 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            size: (last - first) << 20,
            blobs: (first..last)
                .map(|i| IndexEntry {
                    id: id(seed, i),
                    flags: BlobFlags(1),
                    offset: ((i - first) << 20) as u32,
                    stored_len: (1 << 20) - 1000,
                    raw_len: 1 << 20,
                })
                .collect(),
        });
    }
    s
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn password() -> Result<String> {
    std::env::var("LIFEBOAT_PASSWORD").context("set LIFEBOAT_PASSWORD")
}

fn gen_repo(repo: &str, blobs: u64) -> Result<()> {
    let backend = lifeboat_store::Location::parse(repo)?.open(true)?;
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    let r = Repository::init(backend, password()?.as_bytes(), &opts)?;
    let seed = splitmix(r.config().id.0[0] as u64 ^ 0x1dc0);
    let segments = blobs.div_ceil(BLOBS_PER_PACK * PACKS_PER_SEGMENT);
    let t = Instant::now();
    let next = AtomicU64::new(0);
    let bytes = AtomicU64::new(0);
    std::thread::scope(|s| -> Result<()> {
        let workers: Vec<_> = (0..std::thread::available_parallelism().map_or(2, |n| n.get()))
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= segments {
                            return Ok(());
                        }
                        let seg = segment(seed, i, blobs);
                        let sid = lifeboat_index::write_segment(r.backend(), r.master_key(), &seg)?;
                        let size = r
                            .backend()
                            .head(&lifeboat_format::layout::object_path(
                                lifeboat_format::layout::Folder::Index,
                                &sid,
                            ))?
                            .size;
                        bytes.fetch_add(size, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow::anyhow!("writer panicked"))??;
        }
        Ok(())
    })?;
    println!(
        "{}",
        serde_json::json!({
            "repository": repo,
            "blobs": blobs,
            "packs": blobs.div_ceil(BLOBS_PER_PACK),
            "segments": segments,
            "segment_bytes": bytes.load(Ordering::Relaxed),
            "seconds": t.elapsed().as_secs_f64(),
            "restic_index_estimate_bytes": blobs * RESTIC_BYTES_PER_BLOB,
        })
    );
    Ok(())
}

fn open_repo(repo: &str) -> Result<()> {
    let backend = lifeboat_store::Location::parse(repo)?.open(false)?;
    let t = Instant::now();
    let r = Repository::open(backend, password()?.as_bytes())?;
    let secs = t.elapsed().as_secs_f64();
    let idx = r.index();
    let st = idx.load_stats();
    println!(
        "{}",
        serde_json::json!({
            "blobs": idx.len(),
            "packs": idx.pack_count(),
            "segments_listed": st.segments_listed,
            "segments_read": st.segments_read,
            "full_build": st.full_build,
            "cache_used": st.cache_used,
            "table": st.table_path,
            "table_bytes": st.table_path.as_ref().and_then(|p| std::fs::metadata(p).ok()).map(|m| m.len()),
            "seconds": secs,
            "peak_rss_kib": peak_rss_kib(),
        })
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["gen", repo, blobs] => gen_repo(repo, blobs.parse().context("BLOBS")?),
        ["open", repo] => open_repo(repo),
        _ => bail!("usage: index_scale gen REPO BLOBS | index_scale open REPO"),
    }
}
