//! `lifeboat copy`: local to S3 (Garage) and back, incremental, refusing
//! repositories whose blob ids differ.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod s3_common;

use std::fs;
use std::path::Path;

use common::{Output, PASSWORD, TestRepo, compare_trees, random_bytes, restored_path, run};
use lifeboat_format::layout::Folder;
use s3_common::{S3Repo, cluster, read_stats};

fn make_tree(dir: &Path, seed: u64) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..20u64 {
        fs::write(
            dir.join(format!("f{i}")),
            random_bytes(seed + i, 1000 + (i as usize) * 50_000),
        )
        .unwrap();
    }
    fs::write(dir.join("sub/big"), random_bytes(seed + 99, 6 << 20)).unwrap();
    std::os::unix::fs::symlink("f1", dir.join("link")).unwrap();
}

/// `copy --json` from `from` (location, password) with `cmd` set up for the
/// target; the summary.
fn copy(
    mut cmd: std::process::Command,
    from: &str,
    pw: &str,
    extra: &[&str],
) -> (serde_json::Value, Output) {
    cmd.env("LIFEBOAT_FROM_PASSWORD", pw)
        .args(["--json", "copy", "--from-repo", from])
        .args(extra);
    let o = run(&mut cmd).ok("copy");
    (o.summary(), o)
}

fn restore_and_compare(cmd: std::process::Command, snapshot: &str, src: &Path, target: &Path) {
    let mut cmd = cmd;
    run(cmd.args(["restore", snapshot, "--target"]).arg(target)).ok("restore");
    compare_trees(src, &restored_path(target, src));
}

#[test]
fn copy_local_to_s3_and_back_is_incremental_and_byte_identical() {
    let c = cluster();
    let local = TestRepo::new();
    let src = local.scratch("src");
    make_tree(&src, 1);
    local.backup(&[&src], &[]);
    fs::write(src.join("f3"), random_bytes(777, 300_000)).unwrap();
    local.backup(&[&src], &[]);
    let local_url = local.path.to_str().unwrap().to_string();

    // The S3 target shares the local repository's blob ids; its password
    // and data key are its own.
    let s3 = S3Repo::uninit(&c, "copy-target");
    let s3_pw = "another-password-for-s3-9fQ2";
    let mut init = s3.cmd();
    init.env("LIFEBOAT_PASSWORD", s3_pw)
        .env("LIFEBOAT_FROM_PASSWORD", PASSWORD)
        .args(["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
        .args(["--from-repo", &local_url, "--copy-params"]);
    run(&mut init).ok("init --copy-params");
    let s3cmd = || {
        let mut cmd = s3.cmd();
        cmd.env("LIFEBOAT_PASSWORD", s3_pw);
        cmd
    };

    // First copy: both snapshots, every blob.
    let stats = s3.tmp.path().join("copy1.jsonl");
    let mut cmd = s3cmd();
    cmd.env("LIFEBOAT_FAULTS", format!("stats={}", stats.display()));
    let (s1, _) = copy(cmd, &local_url, PASSWORD, &[]);
    assert_eq!(s1["snapshots_copied"], 2, "{s1}");
    let sent = s1["data_blobs_copied"].as_u64().unwrap();
    assert!(sent >= 20, "{s1}");
    let target_writes = read_stats(&stats)
        .iter()
        .find(|l| l["location"].as_str().unwrap().starts_with("s3://"))
        .unwrap()["stats"]["writes_by_folder"][Folder::Data.name()]
    .as_u64()
    .unwrap();
    assert!(target_writes >= 1);

    // Restores from the target are byte-identical; check reads every blob.
    let t = s3.scratch("t1");
    restore_and_compare(s3cmd(), "latest", &src, &t);
    let o = run(s3cmd().args(["--json", "check", "--read-data"])).ok("check");
    assert_eq!(o.json()["problems"].as_array().unwrap().len(), 0);

    // Second copy: nothing to send. The store saw no data or index write.
    let stats = s3.tmp.path().join("copy2.jsonl");
    let mut cmd = s3cmd();
    cmd.env("LIFEBOAT_FAULTS", format!("stats={}", stats.display()));
    let (s2, _) = copy(cmd, &local_url, PASSWORD, &[]);
    assert_eq!(s2["snapshots_copied"], 0, "{s2}");
    assert_eq!(s2["snapshots_skipped"], 2, "{s2}");
    assert_eq!(s2["data_blobs_copied"], 0, "{s2}");
    assert_eq!(s2["tree_blobs_copied"], 0, "{s2}");
    let lines = read_stats(&stats);
    let target = lines
        .iter()
        .find(|l| l["location"].as_str().unwrap().starts_with("s3://"))
        .unwrap();
    assert_eq!(target["stats"]["put"], 0, "{target}");
    assert_eq!(target["stats"]["create"], 0, "{target}");

    // A third snapshot that changes one file: only its new blobs go.
    fs::write(src.join("f5"), random_bytes(4242, 200_000)).unwrap();
    local.backup(&[&src], &[]);
    let (s3s, _) = copy(s3cmd(), &local_url, PASSWORD, &[]);
    assert_eq!(s3s["snapshots_copied"], 1, "{s3s}");
    assert_eq!(s3s["snapshots_skipped"], 2, "{s3s}");
    let new_blobs = s3s["data_blobs_copied"].as_u64().unwrap();
    assert!(
        (1..=3).contains(&new_blobs),
        "one 200 KB file is 1 chunk: {s3s}"
    );
    assert!(s3s["blobs_present"].as_u64().unwrap() >= 20, "{s3s}");

    // And back: S3 to a new local repository.
    let back = tempfile::tempdir().unwrap();
    let back_repo = back.path().join("repo");
    let back_cmd = || {
        let mut cmd = common::base_cmd();
        cmd.env("LIFEBOAT_REPOSITORY", &back_repo)
            .env("LIFEBOAT_PASSWORD", "third-password")
            .env("LIFEBOAT_CACHE_DIR", back.path().join("cache"))
            .env("XDG_CACHE_HOME", back.path().join("xdg"));
        for (k, v) in c.env() {
            cmd.env(k, v);
        }
        cmd
    };
    let mut init = back_cmd();
    init.env("LIFEBOAT_FROM_PASSWORD", s3_pw)
        .args(["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
        .args(["--from-repo", &s3.url, "--copy-params"]);
    run(&mut init).ok("init from S3");
    let (s4, _) = copy(back_cmd(), &s3.url, s3_pw, &[]);
    assert_eq!(s4["snapshots_copied"], 3, "{s4}");
    let t = back.path().join("t");
    restore_and_compare(back_cmd(), "latest", &src, &t);
    let o = run(back_cmd().args(["--json", "check", "--read-data"])).ok("check");
    assert_eq!(o.json()["problems"].as_array().unwrap().len(), 0);
    let (s5, _) = copy(back_cmd(), &s3.url, s3_pw, &[]);
    assert_eq!(s5["snapshots_skipped"], 3, "{s5}");
    assert_eq!(s5["data_blobs_copied"], 0, "{s5}");
    // The first snapshot too, selected by id.
    let snaps = run(back_cmd().args(["--json", "snapshots"]))
        .ok("snapshots")
        .json();
    let first = snaps[0]["id"].as_str().unwrap().to_string();
    let t0 = back.path().join("t0");
    run(back_cmd().args(["restore", &first, "--target"]).arg(&t0)).ok("restore first");
    assert_eq!(
        fs::read(restored_path(&t0, &src).join("f3")).unwrap(),
        random_bytes(4, 1000 + 3 * 50_000)
    );
}

#[test]
fn copy_selects_snapshots_and_refuses_unrelated_repositories() {
    let a = TestRepo::new();
    let src = a.scratch("src");
    make_tree(&src, 7);
    let s1 = a.backup(&[&src], &["--tag", "one"]);
    fs::write(src.join("new"), b"new").unwrap();
    a.backup(&[&src], &["--tag", "two"]);

    // An unrelated repository: blob ids differ, so copy says how to fix it.
    let b = TestRepo::new();
    let mut cmd = b.cmd();
    cmd.env("LIFEBOAT_FROM_PASSWORD", PASSWORD).args([
        "copy",
        "--from-repo",
        a.path.to_str().unwrap(),
    ]);
    run(&mut cmd).fails("copy into an unrelated repository", 1, &["--copy-params"]);
    assert!(b.snapshots().is_empty());

    // A related one: one snapshot by id, then by tag.
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("repo");
    let tcmd = || {
        let mut cmd = common::base_cmd();
        cmd.env("LIFEBOAT_REPOSITORY", &target)
            .env("LIFEBOAT_PASSWORD", "target-pw")
            .env("XDG_CACHE_HOME", tmp.path().join("xdg"));
        cmd
    };
    let mut init = tcmd();
    init.env("LIFEBOAT_FROM_PASSWORD", PASSWORD)
        .args(["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
        .args(["--from-repo", a.path.to_str().unwrap(), "--copy-params"]);
    run(&mut init).ok("init --copy-params");
    let id = s1["snapshot_id"].as_str().unwrap();
    let (s, _) = copy(tcmd(), a.path.to_str().unwrap(), PASSWORD, &[&id[..8]]);
    assert_eq!(s["snapshots_copied"], 1, "{s}");
    assert_eq!(s["copied"][0]["source"], id);
    let (s, _) = copy(
        tcmd(),
        a.path.to_str().unwrap(),
        PASSWORD,
        &["--tag", "two"],
    );
    assert_eq!(s["snapshots_copied"], 1, "{s}");
    let (s, _) = copy(tcmd(), a.path.to_str().unwrap(), PASSWORD, &[]);
    assert_eq!(s["snapshots_copied"], 0, "{s}");
    assert_eq!(s["snapshots_skipped"], 2, "{s}");

    // The wrong source password is the source's error, with exit code 12.
    let mut cmd = tcmd();
    cmd.env("LIFEBOAT_FROM_PASSWORD", "wrong").args([
        "copy",
        "--from-repo",
        a.path.to_str().unwrap(),
    ]);
    run(&mut cmd).fails(
        "copy with a wrong source password",
        12,
        &["source repository", "wrong password"],
    );
    // No source password at all.
    let mut cmd = tcmd();
    cmd.args(["copy", "--from-repo", a.path.to_str().unwrap()]);
    run(&mut cmd).fails(
        "copy without a source password",
        1,
        &["LIFEBOAT_FROM_PASSWORD"],
    );
    // --copy-params needs --from-repo.
    let mut cmd = tcmd();
    cmd.args(["init", "--copy-params"]);
    let o = run(&mut cmd);
    assert_eq!(o.code, 2, "{}", o.stderr);
}
