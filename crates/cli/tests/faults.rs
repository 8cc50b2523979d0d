//! Store faults injected under the real binary (issue 18): errors, latency,
//! dropped connections, short reads and flipped bytes, through the
//! `testing::FaultyBackend` that `LIFEBOAT_FAULTS` stacks under the retry
//! layer. Each fault ends in a retry that succeeds (the backup, check and
//! restore all pass and the restore is byte-identical) or in a clear error;
//! damaged bytes are never taken for data.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Output, TestRepo, compare_trees, random_bytes, restored_path, run};
use lifeboat_format::layout::Folder;

/// A repository, and a source tree of a few MiB: one file of several
/// chunks, some small ones, a compressible one.
fn setup() -> (TestRepo, PathBuf) {
    let repo = TestRepo::with_init_args(&["--pack-size", "1"]);
    let src = repo.scratch("src");
    fs::create_dir_all(src.join("d")).unwrap();
    fs::write(src.join("big"), random_bytes(1, 5 << 20)).unwrap();
    for i in 0..20u64 {
        fs::write(
            src.join(format!("d/small-{i}")),
            random_bytes(100 + i, 5000 + i as usize * 300),
        )
        .unwrap();
    }
    fs::write(src.join("text"), "a compressible line\n".repeat(20_000)).unwrap();
    (repo, src)
}

/// Run `args` with `LIFEBOAT_FAULTS=spec` (and its counters written to a
/// file), retries 1 ms apart; returns the output and the counters.
fn with_faults(repo: &TestRepo, spec: &str, args: &[&str]) -> (Output, serde_json::Value) {
    let stats = repo.tmp.path().join("fault-stats");
    let _ = fs::remove_file(&stats);
    let o = run(repo
        .cmd()
        .env(
            "LIFEBOAT_FAULTS",
            format!("{spec},stats={}", stats.display()),
        )
        .env("LIFEBOAT_RETRY_DELAY_MS", "1")
        .args(args));
    let text = fs::read_to_string(&stats).unwrap_or_default();
    // One line per backend dropped; the repository's is the last.
    let line = text.lines().last().unwrap_or("{}");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    (o, v["stats"].clone())
}

fn restore_with_faults(repo: &TestRepo, spec: &str, name: &str) -> (Output, PathBuf) {
    let target = repo.tmp.path().join(name);
    let (o, _) = with_faults(
        repo,
        spec,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    (o, target)
}

/// Every regular file under `restored` has the bytes of its source under
/// `src`: a failed restore may leave files out, never wrong ones.
fn no_wrong_bytes(src: &Path, restored: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(rd) = fs::read_dir(restored.join(&rel)) else {
            continue;
        };
        for e in rd {
            let e = e.unwrap();
            let r = rel.join(e.file_name());
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                stack.push(r);
            } else if ft.is_file() {
                assert_eq!(
                    fs::read(restored.join(&r)).unwrap(),
                    fs::read(src.join(&r)).unwrap_or_default(),
                    "{} was restored with other bytes than its source",
                    r.display()
                );
                n += 1;
            }
        }
    }
    n
}

/// The ids of the repository's packs.
fn pack_names(repo: &TestRepo) -> Vec<String> {
    repo.objects(Folder::Data)
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect()
}

/// Backup, `check --read-data` and restore all under `spec`, each passing;
/// the restore is byte-identical. Returns the sum of the three runs'
/// `counter` (a fault counter).
fn survives(spec: &str, counter: &str) -> u64 {
    let (repo, src) = setup();
    let (o, backup) = with_faults(&repo, spec, &["--json", "backup", src.to_str().unwrap()]);
    o.ok(&format!("backup under {spec}"));
    let (o, check) = with_faults(&repo, spec, &["check", "--read-data"]);
    o.ok(&format!("check --read-data under {spec}"));
    let target = repo.tmp.path().join("restore");
    let (o, restore) = with_faults(
        &repo,
        spec,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    o.ok(&format!("restore under {spec}"));
    compare_trees(&src, &restored_path(&target, &src));
    // And without faults, the repository is whole.
    repo.run(["check", "--read-data"])
        .ok("check without faults");
    [backup, check, restore]
        .iter()
        .map(|s| s[counter].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn transient_errors_are_retried_to_success() {
    let n = survives("seed=1,transient=0.2,lost_replies=0.5", "transient_faults");
    assert!(n >= 5, "{n} faults: too few to mean anything");
}

#[test]
fn dropped_connections_are_retried_to_success() {
    let n = survives("seed=2,dropped=0.25", "dropped_connections");
    assert!(n >= 5, "{n} faults: too few to mean anything");
}

#[test]
fn latency_slows_requests_and_changes_nothing() {
    let (repo, src) = setup();
    // Every snapshot request 300 ms late: a backup writes one snapshot and
    // lists the folder to find a parent, so it takes at least 600 ms.
    let t = Instant::now();
    let (o, stats) = with_faults(
        &repo,
        "latency_ms=300,prefix=snapshots/",
        &["--json", "backup", src.to_str().unwrap()],
    );
    o.ok("backup with latency");
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "the latency was not applied: {:?}, {stats}",
        t.elapsed()
    );
    survives("seed=3,latency_ms=2,latency=0.5", "get");
}

#[test]
fn a_permanent_error_fails_the_backup_clearly_and_commits_nothing() {
    let (repo, src) = setup();
    repo.backup(&[&src], &[]);
    fs::write(src.join("new"), random_bytes(9, 200_000)).unwrap();
    let (o, stats) = with_faults(
        &repo,
        "permanent=1,prefix=data/",
        &["backup", src.to_str().unwrap()],
    );
    o.fails(
        "backup whose pack uploads are refused",
        1,
        &["permission denied", "injected permanent fault"],
    );
    assert!(stats["permanent_faults"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(
        repo.snapshots().len(),
        1,
        "a failed backup wrote a snapshot"
    );
    // Without the fault the next backup works and everything restores.
    repo.backup(&[&src], &[]);
    repo.run(["check", "--read-data"]).ok("check");
    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &restored_path(&target, &src));
}

#[test]
fn a_flipped_byte_on_read_is_never_taken_for_data() {
    let (repo, src) = setup();
    repo.backup(&[&src], &[]);
    let packs = pack_names(&repo);

    // Every read of a pack comes back with one byte flipped.
    let (o, target) = restore_with_faults(&repo, "seed=4,flip=1,prefix=data/", "restore");
    let o = o.fails("restore with flipped bytes", 1, &[]);
    assert!(
        packs.iter().any(|p| o.stderr.contains(p)),
        "the error names no pack:\n{}",
        o.stderr
    );
    no_wrong_bytes(&src, &restored_path(&target, &src));

    let (o, stats) = with_faults(
        &repo,
        "seed=4,flip=1,prefix=data/",
        &["check", "--read-data"],
    );
    o.fails("check --read-data with flipped bytes", 4, &[]);
    assert!(stats["flipped_reads"].as_u64().unwrap() >= 1, "{stats}");

    // The repository itself is whole: the damage was on the way.
    repo.run(["check", "--read-data"])
        .ok("check without faults");
    let target = repo.scratch("restore-clean");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &restored_path(&target, &src));
}

#[test]
fn a_short_read_is_never_taken_for_data() {
    let (repo, src) = setup();
    repo.backup(&[&src], &[]);

    let (o, target) = restore_with_faults(&repo, "seed=5,short_reads=1,prefix=data/", "restore");
    assert_ne!(
        o.code, 0,
        "a restore from cut-off reads succeeded:\n{}",
        o.stderr
    );
    // Retried, then given up on as a short read, naming the pack.
    assert!(o.stderr.contains("short read"), "{}", o.stderr);
    assert!(
        pack_names(&repo).iter().any(|p| o.stderr.contains(p)),
        "the error names no pack:\n{}",
        o.stderr
    );
    no_wrong_bytes(&src, &restored_path(&target, &src));

    let (o, stats) = with_faults(
        &repo,
        "seed=5,short_reads=1,prefix=data/",
        &["check", "--read-data"],
    );
    assert!(
        o.code == 4 || o.code == 1 || o.code == 3,
        "check --read-data over cut-off reads: exit {}\n{}",
        o.code,
        o.stderr
    );
    assert!(stats["short_reads"].as_u64().unwrap() >= 1, "{stats}");

    // Half the reads cut short: whatever passes is right.
    let (_, target) = restore_with_faults(&repo, "seed=6,short_reads=0.5,prefix=data/", "half");
    no_wrong_bytes(&src, &restored_path(&target, &src));

    repo.run(["check", "--read-data"])
        .ok("check without faults");
    let target = repo.scratch("restore-clean");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &restored_path(&target, &src));
}
