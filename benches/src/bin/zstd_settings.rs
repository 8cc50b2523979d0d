//! The compression stage alone, per zstd setting, on a real tree:
//!
//! ```text
//! zstd_settings DIR SETTING...
//! SETTING: LEVEL[,h=HASH_LOG][,c=CHAIN_LOG][,m=MIN_MATCH][,w=WINDOW_LOG][,s=SEARCH_LOG]
//! ```
//!
//! Every regular file under DIR becomes blobs the way a backup with the
//! default chunker sizes them, roughly: a file up to 1.5 MiB is one blob, a
//! larger one is cut into 1 MiB pieces, all held in memory. Each SETTING
//! then compresses every blob in this one thread, three times, and prints
//! the compressed total (a blob is counted compressed only when that saves
//! more than 1/32 of it, the rule of `lifeboat_format::seal_blob`) and the
//! least thread CPU time of the three passes (`/proc/thread-self/schedstat`,
//! so other processes' load counts little).
//! `auto` is `3,h=15,c=15` (`docs/benchmarks.md`, "Compression modes").

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use zstd::zstd_safe::CParameter;

/// Nanoseconds this thread has run on a CPU.
fn thread_cpu_ns() -> Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    let first = s.split_whitespace().next().context("empty schedstat")?;
    Ok(first.parse()?)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let ft = e.file_type()?;
        if ft.is_dir() {
            walk(&e.path(), out)?;
        } else if ft.is_file() {
            out.push(e.path());
        }
    }
    Ok(())
}

fn compressor(setting: &str) -> Result<zstd::bulk::Compressor<'static>> {
    let mut parts = setting.split(',');
    let level: i32 = parts.next().unwrap_or_default().parse()?;
    let mut c = zstd::bulk::Compressor::new(level)?;
    for kv in parts {
        let (k, v) = kv.split_once('=').context("expected KEY=VALUE")?;
        let v: u32 = v.parse()?;
        let p = match k {
            "h" => CParameter::HashLog(v),
            "c" => CParameter::ChainLog(v),
            "m" => CParameter::MinMatch(v),
            "w" => CParameter::WindowLog(v),
            "s" => CParameter::SearchLog(v),
            _ => bail!("unknown key {k:?} in {setting:?}"),
        };
        c.set_parameter(p)?;
    }
    Ok(c)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        bail!("usage: zstd_settings DIR SETTING...");
    }
    let mut files = Vec::new();
    walk(Path::new(&args[1]), &mut files)?;
    files.sort();
    let mut blobs: Vec<Vec<u8>> = Vec::new();
    for f in &files {
        let mut d = Vec::new();
        std::fs::File::open(f)?.read_to_end(&mut d)?;
        if d.len() <= 1536 * 1024 {
            blobs.push(d);
        } else {
            blobs.extend(d.chunks(1 << 20).map(<[u8]>::to_vec));
        }
    }
    let raw: usize = blobs.iter().map(Vec::len).sum();
    println!("{} files, {} blobs, {raw} bytes", files.len(), blobs.len());
    println!(
        "{:<24} {:>14} {:>8} {:>9}",
        "setting", "bytes", "of raw", "CPU s"
    );
    let mut out = Vec::new();
    for setting in &args[2..] {
        let mut c = compressor(setting)?;
        let mut best = u64::MAX;
        let mut total = 0;
        for _ in 0..3 {
            total = 0;
            let t0 = thread_cpu_ns()?;
            for b in &blobs {
                out.clear();
                out.reserve(zstd::zstd_safe::compress_bound(b.len()));
                let n = c.compress_to_buffer(&b[..], &mut out)?;
                total += if n + b.len() / 32 < b.len() {
                    n
                } else {
                    b.len()
                };
            }
            best = best.min(thread_cpu_ns()? - t0);
        }
        println!(
            "{setting:<24} {total:>14} {:>7.3}% {:>9.3}",
            100.0 * total as f64 / raw as f64,
            best as f64 / 1e9
        );
    }
    Ok(())
}
