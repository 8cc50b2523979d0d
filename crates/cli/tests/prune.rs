//! `lifeboat prune` and `lifeboat forget --prune` end to end: dry runs,
//! marking with the grace period, instant deletion, restores and a clean
//! `check --read-data` afterwards, JSON, the lock, exit codes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{PASSWORD, TestRepo, compare_trees, random_bytes, restored_path};
use lifeboat_format::layout::Folder;
use serde_json::Value;

/// Random (incompressible) bytes in each backed-up tree.
const TREE_BYTES: usize = 2 << 20;

/// A repository with `n` snapshots, each of its own tree of distinct random
/// data; returns it, the trees and the snapshot ids, oldest first.
fn repo_with_trees(n: u64) -> (TestRepo, Vec<PathBuf>, Vec<String>) {
    let repo = TestRepo::new();
    let mut trees = Vec::new();
    let mut ids = Vec::new();
    for i in 0..n {
        let src = repo.scratch(&format!("tree{i}"));
        std::fs::write(src.join("big"), random_bytes(1000 + i, TREE_BYTES)).unwrap();
        std::fs::write(src.join("small"), format!("tree {i}")).unwrap();
        let s = repo.backup(&[&src], &[]);
        ids.push(s["snapshot_id"].as_str().unwrap().to_string());
        trees.push(src);
    }
    (repo, trees, ids)
}

/// Bytes of the files under `folder`.
fn folder_bytes(repo: &TestRepo, folder: Folder) -> u64 {
    repo.objects(folder)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// The value after `label` on its line of prune's summary.
fn row<'a>(out: &'a str, label: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {label:?} row in:\n{out}"))
}

/// `N objects, ...` -> N.
fn objects_in(value: &str) -> u64 {
    value
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {value:?}"))
}

#[test]
fn prune_marks_first_then_instant_delete_shrinks_and_kept_snapshots_restore() {
    let (repo, trees, ids) = repo_with_trees(4);
    // Forget the older half.
    repo.run(["forget", &ids[0], &ids[1]]).ok("forget");
    let data_before = repo.objects(Folder::Data);
    let bytes_before = folder_bytes(&repo, Folder::Data);

    let dry = repo.run(["prune", "--dry-run"]).ok("prune --dry-run");
    let out = dry.out();
    assert_eq!(row(&out, "snapshots:"), "2", "{out}");
    assert!(objects_in(row(&out, "marked now:")) >= 2, "{out}");
    assert_eq!(objects_in(row(&out, "delete now:")), 0, "{out}");
    for label in [
        "used blobs:",
        "packs before:",
        "keep:",
        "repack:",
        "still marked:",
    ] {
        row(&out, label);
    }
    assert!(
        out.contains("size after:") && out.contains("unused left:"),
        "{out}"
    );
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert_eq!(
        repo.objects(Folder::Data),
        data_before,
        "a dry run deleted packs"
    );
    assert!(
        repo.objects(Folder::Marks).is_empty(),
        "a dry run wrote marks"
    );

    // The default grace period: unused packs are only marked.
    let mark = repo.run(["prune"]).ok("prune");
    let out = mark.out();
    let marked = objects_in(row(&out, "marked now:"));
    assert!(marked >= 2, "{out}");
    assert_eq!(objects_in(row(&out, "delete now:")), 0, "{out}");
    assert!(out.contains("wrote mark object"), "{out}");
    assert!(out.contains("run prune again after 1day"), "{out}");
    // Each marked object is listed by name.
    let listed = out
        .lines()
        .filter(|l| l.trim_start().starts_with(&Folder::Data.prefix()))
        .count() as u64;
    assert!(listed >= 2 && listed <= marked, "{out}");
    assert_eq!(
        repo.objects(Folder::Data),
        data_before,
        "marking deleted packs"
    );
    assert_eq!(folder_bytes(&repo, Folder::Data), bytes_before);
    assert_eq!(repo.objects(Folder::Marks).len(), 1);

    // A second run within the grace period finds them still marked.
    let again = repo.run(["prune"]).ok("prune again");
    let out = again.out();
    assert_eq!(objects_in(row(&out, "still marked:")), marked, "{out}");
    assert_eq!(objects_in(row(&out, "delete now:")), 0, "{out}");

    let now = repo
        .run(["prune", "--instant-delete"])
        .ok("prune --instant-delete");
    let out = now.out();
    assert!(objects_in(row(&out, "delete now:")) >= marked, "{out}");
    let bytes_after = folder_bytes(&repo, Folder::Data);
    // The forgotten trees' random data is gone (it does not compress and
    // is stored once, in packs of its own backups); the kept trees' stays.
    let forgotten = 2 * TREE_BYTES as u64;
    let kept = 2 * TREE_BYTES as u64;
    assert!(
        bytes_before - bytes_after >= forgotten,
        "data/ went from {bytes_before} to {bytes_after}, less than {forgotten} freed\n{out}"
    );
    assert!(
        bytes_after >= kept,
        "data/ is {bytes_after}, kept data is {kept}"
    );

    for (i, id) in ids.iter().enumerate().skip(2) {
        let target = repo.scratch(&format!("restore{i}"));
        repo.restore(id, &target, &[]);
        compare_trees(&trees[i], &restored_path(&target, &trees[i]));
    }
    repo.run(["check", "--read-data"])
        .ok("check --read-data after prune");
    // Nothing is left to do.
    let idle = repo.run(["prune", "--instant-delete"]).ok("prune, idle");
    assert!(idle.out().contains("nothing to do"), "{}", idle.out());
}

#[test]
fn json_prints_the_plan_and_what_was_done_as_one_document() {
    let (repo, _, ids) = repo_with_trees(2);
    repo.run(["forget", &ids[0]]).ok("forget");

    let dry = repo
        .run(["--json", "prune", "--dry-run"])
        .ok("prune --json -n");
    let v = dry.json();
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["executed"], Value::Null);
    assert_eq!(v["plan"]["snapshots"], 1);
    assert!(v["plan"]["used_blobs"].as_u64().unwrap() > 0);
    let marks = v["plan"]["mark"].as_array().unwrap();
    assert!(!marks.is_empty(), "{v}");
    for m in marks {
        assert!(
            m["path"]
                .as_str()
                .unwrap()
                .starts_with(&Folder::Data.prefix())
        );
        assert!(m["size"].as_u64().unwrap() > 0);
        assert!(m["indexed"].is_boolean());
    }
    for key in ["before", "keep"] {
        assert!(v["plan"][key]["count"].is_u64() && v["plan"][key]["bytes"].is_u64());
    }
    for key in [
        "repack",
        "still_marked",
        "delete",
        "recovered",
        "missing_packs",
    ] {
        assert!(v["plan"][key].is_array(), "{key} in {v}");
    }

    let done = repo
        .run(["--json", "prune", "--instant-delete"])
        .ok("prune --json --instant-delete");
    let v = done.json();
    assert_eq!(v["dry_run"], false);
    let deleted = v["plan"]["delete"].as_array().unwrap();
    let planned: u64 = deleted.iter().map(|d| d["size"].as_u64().unwrap()).sum();
    assert!(planned >= TREE_BYTES as u64, "{v}");
    assert_eq!(v["plan"]["bytes_deleted_now"], planned);
    assert_eq!(v["executed"]["deleted"], deleted.len());
    assert_eq!(v["executed"]["bytes_deleted"], planned);
}

#[test]
fn forget_prune_marks_and_forget_prune_instant_delete_deletes() {
    let (repo, _, ids) = repo_with_trees(3);
    let data_before = repo.objects(Folder::Data);

    // A dry run shows both plans and changes nothing.
    let dry = repo
        .run([
            "forget",
            "-g",
            "host",
            "--keep-last",
            "2",
            "--prune",
            "--dry-run",
        ])
        .ok("forget --prune --dry-run");
    let out = dry.out();
    assert!(out.contains("would remove 1 snapshots"), "{out}");
    assert!(out.contains("prune plan (dry run)"), "{out}");
    assert!(out.contains("dry run: nothing was changed"), "{out}");
    assert_eq!(repo.snapshots().len(), 3);
    assert_eq!(repo.objects(Folder::Data), data_before);
    assert!(repo.objects(Folder::Marks).is_empty());
    // With --json: forget's report, then prune's, one document per line.
    let docs = repo
        .run([
            "--json",
            "forget",
            "-g",
            "host",
            "--keep-last",
            "2",
            "--prune",
            "-n",
        ])
        .ok("forget --prune --dry-run --json")
        .json_lines();
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert!(docs[0]["plan"]["groups"].is_array(), "{}", docs[0]);
    assert_eq!(docs[1]["dry_run"], true);
    assert!(docs[1]["plan"]["snapshots"].is_u64(), "{}", docs[1]);

    let forget = repo
        .run(["forget", "-g", "host", "--keep-last", "2", "--prune"])
        .ok("forget --prune");
    let out = forget.out();
    assert!(
        out.contains(&format!("removed snapshot {}", &ids[0][..8])),
        "{out}"
    );
    assert!(objects_in(row(&out, "marked now:")) >= 1, "{out}");
    assert_eq!(objects_in(row(&out, "delete now:")), 0, "{out}");
    assert_eq!(
        repo.objects(Folder::Data),
        data_before,
        "forget --prune deleted packs"
    );
    assert_eq!(repo.objects(Folder::Marks).len(), 1);

    let bytes_before = folder_bytes(&repo, Folder::Data);
    let forget = repo
        .run([
            "forget",
            "-g",
            "host",
            "--keep-last",
            "1",
            "--prune",
            "--instant-delete",
        ])
        .ok("forget --prune --instant-delete");
    let out = forget.out();
    // The packs of both forgotten snapshots go: the one marked before and
    // the one forgotten now.
    assert!(objects_in(row(&out, "delete now:")) >= 2, "{out}");
    let freed = bytes_before - folder_bytes(&repo, Folder::Data);
    assert!(freed >= 2 * TREE_BYTES as u64, "freed {freed}\n{out}");
    assert_eq!(repo.snapshots().len(), 1);
    repo.run(["check", "--read-data"]).ok("check --read-data");

    // Nothing forgotten: prune does not run.
    let none = repo
        .run(["forget", "-g", "host", "--keep-last", "1", "--prune"])
        .ok("forget --prune, nothing to forget");
    assert!(none.out().contains("not running prune"), "{}", none.out());

    // --instant-delete belongs to --prune.
    repo.run([
        "forget",
        "-g",
        "host",
        "--keep-last",
        "1",
        "--instant-delete",
    ])
    .fails("--instant-delete without --prune", 2, &["--prune"]);
}

#[test]
fn a_second_prune_fails_while_the_first_holds_the_lock() {
    let (repo, _, ids) = repo_with_trees(2);
    repo.run(["forget", &ids[0]]).ok("forget");
    // The first prune takes the lock, then every data/ request of it is slow.
    let faults = format!("latency=1,latency_ms=1500,prefix={}", Folder::Data.prefix());
    let mut first = repo
        .cmd()
        .env("LIFEBOAT_FAULTS", faults)
        .arg("prune")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while repo.objects(Folder::Locks).is_empty() {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the first prune wrote no lock"
        );
        assert!(first.try_wait().unwrap().is_none(), "the first prune ended");
        std::thread::sleep(Duration::from_millis(20));
    }

    repo.run(["prune"])
        .fails("second prune", 1, &["another prune holds the lock until"]);
    // A dry run takes no lock.
    repo.run(["prune", "--dry-run"])
        .ok("dry run beside a prune");

    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the first prune failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(repo.objects(Folder::Locks).is_empty(), "the lock stayed");
    repo.run(["prune"]).ok("prune after the lock went");
}

#[test]
fn a_wrong_password_exits_12_and_bad_sizes_are_refused() {
    let (repo, _, _) = repo_with_trees(1);
    assert_ne!(PASSWORD, "wrong");
    repo.run_pw("wrong", ["prune"])
        .fails("prune, wrong password", 12, &["wrong password"]);
    for bad in [
        ["--max-unused", "150%"],
        ["--max-unused", "lots"],
        ["--max-repack-size", "big"],
        ["--grace", "soon"],
    ] {
        repo.run(["prune"].into_iter().chain(bad))
            .fails(bad[1], 2, &[bad[0]]);
    }
    let ok = repo
        .run([
            "prune",
            "--max-unused",
            "unlimited",
            "--max-repack-size",
            "1GiB",
            "--grace",
            "2h",
        ])
        .ok("prune with size and duration options");
    assert!(ok.out().contains("nothing to do"), "{}", ok.out());
    repo.run(["prune", "--repack-small", "--repack-uncompressed"])
        .ok("prune --repack-small --repack-uncompressed");
    repo.run(["check", "--read-data"])
        .ok("check --read-data after repacking");
}
