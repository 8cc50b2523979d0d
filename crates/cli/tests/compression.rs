//! `--compression` on `init` and `backup`: the default mode is stored by
//! name, bad values are refused, and backups written in every mode into one
//! repository all restore byte-identical and pass `check --read-data`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;

use common::{Rng, TestRepo, compare_trees, random_bytes};

/// Text-like bytes: words drawn from a small vocabulary.
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "lifeboat",
        "pack",
        "blob",
        "snapshot",
        "restore",
        "volume",
        "etcd",
        "tree",
        "index",
        "chunk",
        "key",
        "data",
        "zstd",
        "level",
        "probe",
        "repository",
    ];
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[(rng.next_u64() % WORDS.len() as u64) as usize].as_bytes());
        out.push(if rng.next_u64() % 9 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// A source tree of text (small and probed sizes), random bytes (which the
/// probe skips) and a file that is half of each.
fn make_source(dir: &Path, seed: u64) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("small.txt"), text(seed, 3_000)).unwrap();
    fs::write(dir.join("big.txt"), text(seed + 1, 400_000)).unwrap();
    fs::write(dir.join("sub/random.bin"), random_bytes(seed + 2, 300_000)).unwrap();
    let mut half = random_bytes(seed + 3, 150_000);
    half.extend(text(seed + 4, 150_000));
    fs::write(dir.join("sub/half.bin"), half).unwrap();
    fs::write(dir.join("empty"), b"").unwrap();
}

fn num(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

#[test]
fn init_stores_auto_by_default_and_refuses_unknown_modes() {
    let r = TestRepo::new();
    let cfg = r.run(["--json", "cat", "config"]).ok("cat config").json();
    assert_eq!(cfg["compression"], "auto", "{cfg}");
    assert!(
        cfg["compression_level"].as_i64().unwrap() > 0,
        "an older build reading this repository must still compress: {cfg}"
    );

    let named = TestRepo::with_init_args(&["--compression", "max"]);
    let cfg = named.run(["--json", "cat", "config"]).ok("cat").json();
    assert_eq!(cfg["compression"], "max", "{cfg}");
    let level = TestRepo::with_init_args(&["--compression", "7"]);
    let cfg = level.run(["--json", "cat", "config"]).ok("cat").json();
    assert_eq!(cfg["compression"], "7", "{cfg}");
    assert_eq!(cfg["compression_level"], 7, "{cfg}");

    let tmp = tempfile::tempdir().unwrap();
    for bad in ["zstd", "23", "-8", "1.5", ""] {
        let repo = tmp.path().join(format!("repo{}", bad.len()));
        common::run(
            common::base_cmd()
                .env("LIFEBOAT_PASSWORD", "pw")
                .arg("-r")
                .arg(&repo)
                .args(["init", "--compression", bad]),
        )
        .fails("init with a bad mode", 2, &["compression"]);
        assert!(!repo.join("config").exists(), "{bad:?} made a repository");
    }
    let src = r.scratch("src");
    fs::write(src.join("f"), b"x").unwrap();
    r.run(["backup", "--compression", "fast", src.to_str().unwrap()])
        .fails("backup with a bad mode", 2, &["compression"]);
    assert!(r.snapshots().is_empty());
}

#[test]
fn backups_in_every_mode_share_one_repository() {
    let r = TestRepo::with_init_args(&["--compression", "fastest"]);
    let modes = [
        "auto", "fastest", "better", "max", "off", "0", "-3", "9", "2",
    ];
    let mut runs = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let src = r.scratch(&format!("src-{i}"));
        make_source(&src, 100 * i as u64);
        let summary = r.backup(&[&src], &["--compression", mode]);
        runs.push((mode, src, summary));
    }
    // No run stored its new data compressed when told not to, and every
    // other run did: text is over half of each source.
    for (mode, _, s) in &runs {
        let (added, stored) = (num(s, "bytes_added"), num(s, "bytes_stored"));
        if matches!(**mode, "off" | "0") {
            assert!(stored >= added, "{mode}: {stored} < {added}");
        } else {
            assert!(stored < added * 3 / 4, "{mode}: {stored} of {added}");
        }
    }
    let stored = |m: &str| num(&runs.iter().find(|r| *r.0 == m).unwrap().2, "bytes_stored");
    assert!(stored("max") < stored("fastest"));

    // A fresh cache, so that reading goes to the packs.
    let copy = r.copy();
    copy.run(["check", "--read-data"]).ok("check --read-data");
    for (mode, src, s) in &runs {
        let id = s["snapshot_id"].as_str().unwrap();
        let target = copy.scratch(&format!("restored-{mode}"));
        copy.restore(id, &target, &[]);
        let counts = compare_trees(src, &common::restored_path(&target, src));
        assert!(counts.files >= 5, "{mode}: {counts:?}");
    }
}
