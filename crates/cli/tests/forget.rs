//! `lifeboat forget` end to end: policies, dry runs, explicit ids, grouping,
//! JSON, refusals and exit codes, on snapshots given distinct times with
//! `backup --time`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::TestRepo;
use lifeboat_format::layout::Folder;
use serde_json::{Value, json};

/// A repository with one source directory; returns it and the directory.
fn repo_with_source() -> (TestRepo, std::path::PathBuf) {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    std::fs::write(src.join("file"), b"forget me not").unwrap();
    (repo, src)
}

/// Back up `src` as `host` at `time`; returns the snapshot id.
fn backup_at(repo: &TestRepo, src: &Path, host: &str, time: &str) -> String {
    let s = repo.backup(&[src], &["--host", host, "--time", time]);
    s["snapshot_id"].as_str().unwrap().to_string()
}

/// The ids of the repository's snapshots.
fn ids(repo: &TestRepo) -> BTreeSet<String> {
    repo.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn short(id: &str) -> &str {
    &id[..8]
}

/// Four snapshots of one host and path, a day apart, oldest first.
fn four_days(repo: &TestRepo, src: &Path) -> Vec<String> {
    (1..=4)
        .map(|d| backup_at(repo, src, "h1", &format!("2024-01-0{d}T10:00:00Z")))
        .collect()
}

#[test]
fn backup_time_is_recorded_as_given() {
    let (repo, src) = repo_with_source();
    let id = backup_at(&repo, &src, "h1", "2024-01-02T03:04:05+02:00");
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], id.as_str());
    assert_eq!(snaps[0]["time"], "2024-01-02T03:04:05+02:00");

    // A time without an offset, or no time at all, is refused by clap.
    for bad in ["2024-01-02T03:04:05", "yesterday"] {
        repo.run(["backup", "--time", bad, src.to_str().unwrap()])
            .fails(bad, 2, &["--time"]);
    }
    assert_eq!(repo.snapshots().len(), 1);
}

#[test]
fn a_dry_run_lists_keep_and_remove_with_reasons_and_deletes_nothing() {
    let (repo, src) = repo_with_source();
    let snaps = four_days(&repo, &src);
    let o = repo
        .run(["forget", "--dry-run", "--keep-last", "2"])
        .ok("forget --dry-run");
    let out = o.out();
    assert!(
        out.contains("Applying policy: keep 2 last snapshots"),
        "{out}"
    );
    assert!(out.contains("keep 2 snapshots:"), "{out}");
    assert!(out.contains("remove 2 snapshots:"), "{out}");
    assert!(out.contains("Reasons"), "{out}");
    // The kept rows carry their reason, the removed ones are listed as such.
    for kept in &snaps[2..] {
        let row = out
            .lines()
            .find(|l| l.starts_with(short(kept)))
            .unwrap_or_else(|| panic!("no row for {kept} in:\n{out}"));
        assert!(row.contains("last"), "{row}");
        assert!(row.contains("2024-01-0"), "{row}");
    }
    for gone in &snaps[..2] {
        assert!(
            out.contains(&format!("would remove snapshot {}", short(gone))),
            "{out}"
        );
    }
    assert!(out.contains("would remove 2 snapshots"), "{out}");
    assert_eq!(ids(&repo), snaps.iter().cloned().collect());
    assert_eq!(repo.objects(Folder::Snapshots).len(), 4);
}

#[test]
fn keep_last_removes_the_rest() {
    let (repo, src) = repo_with_source();
    let snaps = four_days(&repo, &src);
    let o = repo.run(["forget", "--keep-last", "2"]).ok("forget");
    let out = o.out();
    for gone in &snaps[..2] {
        assert!(
            out.contains(&format!("removed snapshot {}", short(gone))),
            "{out}"
        );
    }
    assert!(out.contains("removed 2 snapshots"), "{out}");
    assert_eq!(ids(&repo), set(&[&snaps[2], &snaps[3]]));
    assert_eq!(repo.objects(Folder::Snapshots).len(), 2);
    // The data stays for prune: the newest snapshot still restores.
    let target = repo.scratch("restored");
    repo.restore(&snaps[3], &target, &[]);
    let restored = common::restored_path(&target, &src).join("file");
    assert_eq!(std::fs::read(restored).unwrap(), b"forget me not");
}

#[test]
fn keep_daily_keeps_the_newest_of_each_day() {
    let (repo, src) = repo_with_source();
    let early = backup_at(&repo, &src, "h1", "2024-01-01T08:00:00Z");
    let late = backup_at(&repo, &src, "h1", "2024-01-01T20:00:00Z");
    let second = backup_at(&repo, &src, "h1", "2024-01-02T09:00:00Z");
    let third = backup_at(&repo, &src, "h1", "2024-01-03T09:00:00Z");
    let o = repo
        .run(["--json", "forget", "--keep-daily", "3"])
        .ok("forget --keep-daily");
    let report = o.json();
    let keep = report["plan"]["groups"][0]["keep"].as_array().unwrap();
    let kept: Vec<&str> = keep.iter().map(|k| k["id"].as_str().unwrap()).collect();
    assert_eq!(kept, [third.as_str(), second.as_str(), late.as_str()]);
    assert!(keep.iter().all(|k| k["reasons"] == json!(["daily"])));
    assert_eq!(report["deleted"], json!([early]));
    assert_eq!(ids(&repo), set(&[&late, &second, &third]));
}

#[test]
fn named_snapshots_are_removed_whatever_the_policy() {
    let (repo, src) = repo_with_source();
    let snaps = four_days(&repo, &src);
    // A prefix names a snapshot; no policy is needed then.
    let o = repo.run(["forget", short(&snaps[3])]).ok("forget <id>");
    assert!(o.out().contains("named explicitly"), "{}", o.out());
    // Without a policy only the removal is listed, not every kept snapshot.
    assert!(!o.out().contains(short(&snaps[0])), "{}", o.out());
    assert!(
        o.out()
            .contains(&format!("removed snapshot {}", short(&snaps[3]))),
        "{}",
        o.out()
    );
    assert_eq!(ids(&repo), set(&[&snaps[0], &snaps[1], &snaps[2]]));

    // With a policy, the policy decides over the rest of the group.
    repo.run(["forget", "--keep-last", "1", &snaps[2]])
        .ok("forget --keep-last 1 <id>");
    assert_eq!(ids(&repo), set(&[&snaps[1]]));

    // An id the repository does not hold fails before anything is deleted.
    repo.run(["forget", "--keep-last", "0", &snaps[0]]).fails(
        "forget <gone id>",
        1,
        &["no snapshot", &snaps[0]],
    );
    assert_eq!(ids(&repo), set(&[&snaps[1]]));
}

#[test]
fn json_prints_the_report_as_one_document() {
    let (repo, src) = repo_with_source();
    let snaps = four_days(&repo, &src);
    let o = repo
        .run(["--json", "forget", "--dry-run", "--keep-last", "1"])
        .ok("forget --json");
    let report = o.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["deleted"], json!([]));
    assert_eq!(report["already_gone"], json!([]));
    let plan = &report["plan"];
    assert_eq!(plan["policy"], json!({"keep_last": 1}));
    assert_eq!(plan["explicit"], json!([]));
    assert!(plan["now"].as_str().unwrap().ends_with('Z'), "{plan}");
    let groups = plan["groups"].as_array().unwrap();
    assert_eq!(groups.len(), 1);
    let src_path = src.to_str().unwrap();
    assert_eq!(
        groups[0]["key"],
        json!({"hostname": "h1", "paths": [src_path]})
    );
    assert_eq!(
        groups[0]["keep"],
        json!([{
            "id": snaps[3], "time": "2024-01-04T10:00:00Z", "hostname": "h1",
            "paths": [src_path], "tags": [], "reasons": ["last"],
        }])
    );
    let removed: Vec<&Value> = groups[0]["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(
        removed,
        [&json!(snaps[2]), &json!(snaps[1]), &json!(snaps[0])]
    );
    assert_eq!(ids(&repo).len(), 4, "a dry run deleted something");
}

#[test]
fn the_policy_applies_per_host_and_the_filter_limits_it() {
    let (repo, src) = repo_with_source();
    let a1 = backup_at(&repo, &src, "alpha", "2024-01-01T10:00:00Z");
    let b1 = backup_at(&repo, &src, "beta", "2024-01-02T10:00:00Z");
    let a2 = backup_at(&repo, &src, "alpha", "2024-01-03T10:00:00Z");
    let b2 = backup_at(&repo, &src, "beta", "2024-01-04T10:00:00Z");

    // One group for everything: only the newest overall survives.
    let o = repo
        .run([
            "--json",
            "forget",
            "-n",
            "--keep-last",
            "1",
            "--group-by",
            "",
        ])
        .ok("forget --group-by ''");
    let groups = o.json()["plan"]["groups"].clone();
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["key"], json!({}));
    assert_eq!(groups[0]["keep"][0]["id"], b2.as_str());
    let removed: Vec<&str> = groups[0]["remove"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(removed, [a2.as_str(), b1.as_str(), a1.as_str()]);

    // By host: each host keeps its newest.
    let o = repo
        .run(["forget", "--keep-last", "1", "--group-by", "host"])
        .ok("forget --group-by host");
    let out = o.out();
    assert!(out.contains("snapshots for (host [alpha]):"), "{out}");
    assert!(out.contains("snapshots for (host [beta]):"), "{out}");
    assert_eq!(ids(&repo), set(&[&a2, &b2]));

    // --host: the other host's snapshots are neither kept nor removed.
    let b3 = backup_at(&repo, &src, "beta", "2024-01-05T10:00:00Z");
    let o = repo
        .run(["--json", "forget", "--keep-last", "1", "--host", "alpha"])
        .ok("forget --host alpha");
    let groups = o.json()["plan"]["groups"].clone();
    assert_eq!(groups.as_array().unwrap().len(), 1);
    assert_eq!(groups[0]["key"]["hostname"], "alpha");
    assert_eq!(ids(&repo), set(&[&a2, &b2, &b3]));
}

#[test]
fn a_snapshot_in_the_future_is_kept_with_a_warning() {
    let (repo, src) = repo_with_source();
    let past = four_days(&repo, &src);
    let future = backup_at(&repo, &src, "h1", "2999-01-01T00:00:00Z");
    let o = repo.run(["forget", "--keep-last", "1"]).ok("forget");
    assert!(
        o.stderr.contains(&format!(
            "snapshot {} has a time in the future",
            short(&future)
        )),
        "{}",
        o.stderr
    );
    let row = o
        .out()
        .lines()
        .find(|l| l.starts_with(short(&future)))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no row for {future}:\n{}", o.out()));
    assert!(row.contains("in future"), "{row}");
    // The future snapshot took no --keep-last slot.
    assert_eq!(ids(&repo), set(&[&past[3], &future]));
}

#[test]
fn no_policy_and_no_ids_is_refused() {
    let (repo, src) = repo_with_source();
    let snaps = four_days(&repo, &src);
    for args in [
        &["forget"][..],
        &["forget", "--keep-last", "0"],
        &["forget", "-n"],
    ] {
        repo.run(args).fails(
            &format!("{args:?}"),
            1,
            &["no policy was specified, no snapshots removed"],
        );
    }
    assert_eq!(ids(&repo), snaps.into_iter().collect());
}

#[test]
fn bad_arguments_and_a_wrong_password_fail_with_their_codes() {
    let (repo, src) = repo_with_source();
    four_days(&repo, &src);
    repo.run_pw("not-the-password", ["forget", "--keep-last", "1"])
        .fails("wrong password", 12, &["wrong password"]);
    repo.run(["forget", "--keep-last", "lots"])
        .fails("bad count", 2, &["invalid count"]);
    repo.run(["forget", "--keep-within", "1w"])
        .fails("bad duration", 2, &["--keep-within"]);
    repo.run(["forget", "--group-by", "user", "--keep-last", "1"])
        .fails("bad group-by", 2, &["unknown group-by field"]);
    let missing = repo.tmp.path().join("no-repo");
    common::run(
        common::base_cmd()
            .env("LIFEBOAT_PASSWORD", &repo.password)
            .arg("-r")
            .arg(&missing)
            .args(["forget", "--keep-last", "1"]),
    )
    .fails("no repository", 10, &["does not exist"]);
    assert_eq!(ids(&repo).len(), 4);
}
