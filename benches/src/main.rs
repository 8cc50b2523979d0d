//! Dataset benchmark runner (first cut): times backup and restore of a
//! generated dataset through the library and prints MB/s as JSON.
//!
//! Usage: `cargo run -p lifeboat-bench --release -- [SIZE_MIB]`

use std::time::Instant;

use anyhow::Result;
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions,
};

fn main() -> Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(256);
    let dir = std::env::temp_dir().join(format!("lifeboat-bench-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(&src)?;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for f in 0..mib.div_ceil(16) {
        let mut buf = vec![0u8; 16 << 20];
        for (i, b) in buf.iter_mut().enumerate() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = if (i >> 20) % 2 == 0 {
                x as u8
            } else {
                b"etcd bbolt page "[i % 16]
            };
        }
        std::fs::write(src.join(format!("file{f}")), &buf)?;
    }
    let total = (mib.div_ceil(16) * 16) as f64 * 1.048_576;
    let backend = lifeboat_store::Location::parse(dir.join("repo").to_str().unwrap_or("/tmp/x"))?
        .open(true)?;
    let repo = Repository::init(backend, b"bench", &InitOptions::default())?;
    let t = Instant::now();
    let rep = repo.backup(
        BackupSource::Paths(vec![src.clone()]),
        &BackupOptions::default(),
        &Progress::default(),
    )?;
    let backup_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let opts = RestoreOptions {
        target: dir.join("out"),
        ..Default::default()
    };
    repo.restore(&rep.snapshot, &opts, &Progress::default())?;
    let restore_s = t.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({"dataset_mb": total, "backup_mb_s": total / backup_s, "restore_mb_s": total / restore_s})
    );
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
