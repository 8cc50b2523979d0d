//! Index scale benchmark: a synthetic repository whose index holds millions
//! of blobs, for measuring what a backup costs in memory against it.
//!
//! ```text
//! index_scale gen REPO BLOBS   # init REPO and write index segments for BLOBS random blobs
//! index_scale open REPO        # open it (builds or refreshes the local table); time and peak RSS
//! index_scale prunable REPO UNUSED_EVERY   # make a `gen` repository prunable (below)
//! ```
//!
//! `gen` writes real encrypted index segments through `write_segment`, 64
//! packs of 16 blobs each per segment (what a backup writes), for fake packs
//! that are not in the store: a backup deduplicates against them (random ids
//! never match new data) but `check` would report them missing. The
//! password is taken from `LIFEBOAT_PASSWORD`; key derivation is cheap. The
//! measurement procedure and results are in docs/index.md.
//!
//! `prunable` turns a `gen` repository into one that `prune` plans over in
//! full: it writes one snapshot whose real trees (in real packs, indexed)
//! reference every blob of every fake data pack except each
//! `UNUSED_EVERY`-th pack and the fake tree packs, and an empty placeholder
//! object in `data/` for every fake pack, so that the listing finds them.
//! A prune then walks all used blobs, computes the usage of every pack,
//! deletes (or marks) the unused placeholders and rewrites every index
//! segment; no pack needs repacking (each is wholly used or unused), so the
//! placeholders are never read. Results in docs/benchmarks.md ("Prune").

use lifeboat_core::internals::RepositoryInternals as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use lifeboat_core::{InitOptions, Repository};
use lifeboat_format::layout::{Folder, object_path};
use lifeboat_format::{
    BlobFlags, BlobType, ContentPart, Id, IndexEntry, IndexPack, IndexSegment, KdfParams, Node,
    NodeKind, PackBuilder, Snapshot, SourceKind, Tree, seal_blob,
};

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

/// Tree blobs packed into real packs, as a backup would write them.
struct TreePacks<'a> {
    repo: &'a Repository,
    open: Option<PackBuilder>,
    written: Vec<IndexPack>,
}

impl TreePacks<'_> {
    fn add(&mut self, tree: &Tree) -> Result<Id> {
        let plain = tree.encode()?;
        let blob = seal_blob(
            self.repo.master_key(),
            BlobType::Tree,
            &plain,
            self.repo.config().compression_level,
        )?;
        let pack_size = self.repo.config().pack_size as usize;
        let b = self
            .open
            .get_or_insert_with(|| PackBuilder::new(BlobType::Tree, pack_size + (1 << 20)));
        b.add(&blob)?;
        if b.len() >= pack_size {
            self.flush()?;
        }
        Ok(blob.id)
    }

    fn flush(&mut self) -> Result<()> {
        let Some(b) = self.open.take().filter(|b| !b.is_empty()) else {
            return Ok(());
        };
        let (bytes, id, entries) = b.finish(self.repo.master_key())?;
        let size = bytes.len() as u64;
        self.repo
            .backend()
            .put(&object_path(Folder::Data, &id), bytes.into())?;
        self.written.push(IndexPack {
            id,
            blob_type: BlobType::Tree,
            size,
            blobs: entries.iter().map(IndexEntry::from).collect(),
        });
        Ok(())
    }
}

fn prunable(repo: &str, unused_every: u64) -> Result<()> {
    let root = std::path::PathBuf::from(repo);
    let backend = lifeboat_store::Location::parse(repo)?.open(false)?;
    let t = Instant::now();
    let r = Repository::open(backend, password()?.as_bytes())?;
    let blobs = r.index().len() as u64;
    let seed = splitmix(r.config().id.0[0] as u64 ^ 0x1dc0);
    let segments = blobs.div_ceil(BLOBS_PER_PACK * PACKS_PER_SEGMENT);
    let mut trees = TreePacks {
        repo: &r,
        open: None,
        written: Vec::new(),
    };
    let (mut used_packs, mut used_blobs, mut placeholders) = (0u64, 0u64, 0u64);
    let mut dirs = Vec::new();
    for i in 0..segments {
        let seg = segment(seed, i, blobs);
        let mut files = Vec::new();
        for (k, p) in seg.packs.iter().enumerate() {
            let path = root.join(object_path(Folder::Data, &p.id));
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::File::create(&path).with_context(|| path.display().to_string())?;
            placeholders += 1;
            let n = i * PACKS_PER_SEGMENT + k as u64;
            if p.blob_type == BlobType::Tree || n.is_multiple_of(unused_every) {
                continue;
            }
            let mut f = Node::new(format!("p{n}"), NodeKind::File);
            f.content = p
                .blobs
                .iter()
                .map(|b| ContentPart::Blob {
                    id: b.id,
                    len: b.raw_len,
                })
                .collect();
            f.size = p.blobs.iter().map(|b| u64::from(b.raw_len)).sum();
            files.push(f);
            used_packs += 1;
            used_blobs += p.blobs.len() as u64;
        }
        let mut d = Node::new(format!("s{i:07}"), NodeKind::Dir);
        d.subtree = Some(trees.add(&Tree::new(files))?);
        dirs.push(d);
    }
    let root_tree = trees.add(&Tree::new(dirs))?;
    trees.flush()?;
    let mut seg = IndexSegment::new();
    seg.packs = std::mem::take(&mut trees.written);
    lifeboat_index::write_segment(r.backend(), r.master_key(), &seg)?;
    let snap = Snapshot {
        version: 1,
        time: "2026-01-01T00:00:00Z".into(),
        tree: root_tree,
        paths: vec!["/synthetic".into()],
        hostname: "index-scale".into(),
        username: String::new(),
        tags: Vec::new(),
        source: SourceKind::Fs,
        source_meta: Default::default(),
        parent: None,
        excludes: Vec::new(),
        incomplete: Vec::new(),
        summary: None,
        program: "index_scale".into(),
    };
    let sid = r.save_snapshot(&snap)?;
    println!(
        "{}",
        serde_json::json!({
            "snapshot": sid.to_string(),
            "fake_packs": placeholders,
            "used_packs": used_packs,
            "used_blobs": used_blobs,
            "tree_packs": seg.packs.len(),
            "tree_pack_bytes": seg.packs.iter().map(|p| p.size).sum::<u64>(),
            "seconds": t.elapsed().as_secs_f64(),
        })
    );
    Ok(())
}

/// Peak RSS of listing `data/` alone (a prune lists it whole).
fn list_data(repo: &str) -> Result<()> {
    let backend = lifeboat_store::Location::parse(repo)?.open(false)?;
    let before = peak_rss_kib();
    let t = Instant::now();
    let objects = backend.list(&Folder::Data.prefix())?;
    println!(
        "{}",
        serde_json::json!({
            "objects": objects.len(),
            "seconds": t.elapsed().as_secs_f64(),
            "peak_rss_kib_before": before,
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
        ["list", repo] => list_data(repo),
        ["prunable", repo, every] => prunable(repo, every.parse().context("UNUSED_EVERY")?),
        _ => bail!(
            "usage: index_scale gen REPO BLOBS | index_scale open REPO | \
             index_scale prunable REPO UNUSED_EVERY"
        ),
    }
}
