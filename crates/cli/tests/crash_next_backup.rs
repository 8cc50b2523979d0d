//! After a backup killed by SIGKILL once it had uploaded packs but before
//! it indexed them (issue 18): the next backup says what it found and what
//! it does about it (in its text and `--json` output), works, and checks
//! clean; prune then removes the leftovers and the backup after says none.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::process::ExitStatusExt;

use common::{TestRepo, compare_trees, random_bytes, restored_path, run};
use lifeboat_format::layout::Folder;

#[test]
fn the_backup_after_a_crash_reports_unindexed_packs_and_leaves_them_to_prune() {
    let repo = TestRepo::with_init_args(&["--pack-size", "1"]);
    let src = repo.scratch("src");
    for i in 0..6u64 {
        fs::write(src.join(format!("f{i}")), random_bytes(i, 700_000)).unwrap();
    }
    let first = repo.backup(&[&src], &[]);
    assert_eq!(first["unindexed_packs"]["count"], 0, "{first}");
    assert_eq!(first["unindexed_packs"]["action"], "none", "{first}");
    for i in 6..12u64 {
        fs::write(src.join(format!("f{i}")), random_bytes(i, 700_000)).unwrap();
    }

    // Killed as it was about to write the index: its packs are uploaded
    // and indexed by nothing. (Where that falls differs from run to run:
    // the two open data packs take blobs at random, so the number of packs
    // does too.)
    let packs_first = repo.objects(Folder::Data);
    let trace = repo.tmp.path().join("trace");
    let out = repo
        .cmd()
        .env(
            "LIFEBOAT_FAULTS",
            format!("kill_before=index/,trace={}", trace.display()),
        )
        .arg("backup")
        .arg(&src)
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(9), "{out:?}");
    let lines = fs::read_to_string(&trace).unwrap();
    let at = lines
        .lines()
        .position(|l| l.contains(" put index/"))
        .unwrap_or_else(|| panic!("no index write in:\n{lines}"));
    let packs_before = lines
        .lines()
        .take(at)
        .filter(|l| l.contains(" put data/"))
        .count();
    assert!(packs_before >= 3, "{packs_before} packs before the index");
    assert_eq!(repo.snapshots().len(), 1);
    let orphans: Vec<_> = repo
        .objects(Folder::Data)
        .into_iter()
        .filter(|p| !packs_first.contains(p))
        .collect();
    assert!(orphans.len() >= packs_before, "{orphans:?}");

    // The next backup says so, and goes on.
    let o = run(repo.cmd().arg("--json").arg("backup").arg(&src)).ok("the next backup");
    let summary = o.summary();
    let left = &summary["unindexed_packs"];
    assert!(
        left["count"].as_u64().unwrap() >= packs_before as u64,
        "{summary}"
    );
    assert!(left["bytes"].as_u64().unwrap() > 3 * 700_000, "{summary}");
    assert_eq!(left["action"], "left_for_prune", "{summary}");
    assert!(
        o.stderr.contains("in no index segment") && o.stderr.contains("lifeboat prune"),
        "{}",
        o.stderr
    );
    // Not reused: the blobs were stored again.
    assert!(
        summary["bytes_added"].as_u64().unwrap() >= 6 * 700_000,
        "{summary}"
    );
    let o = repo
        .run(["backup", src.to_str().unwrap()])
        .ok("text output");
    assert!(
        o.stderr.contains("packs (") && o.stderr.contains("not reused"),
        "{}",
        o.stderr
    );

    repo.run(["check", "--read-data"])
        .ok("check after the crash");
    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &restored_path(&target, &src));

    // Prune (no backup running) deletes them; the next backup finds none.
    repo.run(["prune", "--instant-delete"]).ok("prune");
    for p in &orphans {
        assert!(!p.exists(), "prune left {}", p.display());
    }
    let summary = repo.backup(&[&src], &[]);
    assert_eq!(summary["unindexed_packs"]["count"], 0, "{summary}");
    repo.run(["check", "--read-data"]).ok("check after prune");
}
