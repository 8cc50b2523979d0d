//! The rest of the command line: keys, password sources, JSON output, `cat`,
//! tags and hosts, include/exclude, diff, stats, completions and the man
//! page. No password ever shows in any output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::path::Path;
use std::process::Command;

use common::{Output, TestRepo, base_cmd, restored_path};
use lifeboat_format::layout::Folder;
use serde_json::Value;

/// Distinctive passwords; none may appear in any output.
const PW: &str = "misc-pw-Hq83vLw0-first";
const PW2: &str = "misc-pw-Zt51mBx7-second";
const PW3: &str = "misc-pw-Kr26pNc4-third";

fn check_no_leak(o: &Output) {
    let out = o.out();
    for pw in [PW, PW2, PW3, common::PASSWORD] {
        assert!(!out.contains(pw), "password {pw:?} on stdout:\n{out}");
        assert!(
            !o.stderr.contains(pw),
            "password {pw:?} on stderr:\n{}",
            o.stderr
        );
    }
}

/// Run, then check that no password leaked.
fn run(cmd: &mut Command) -> Output {
    let o = common::run(cmd);
    check_no_leak(&o);
    o
}

fn repo() -> TestRepo {
    TestRepo::with_password(PW)
}

/// `args` against `repo` with password `pw`.
fn rp<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(repo: &TestRepo, pw: &str, args: I) -> Output {
    run(repo.cmd().env("LIFEBOAT_PASSWORD", pw).args(args))
}

fn r<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(repo: &TestRepo, args: I) -> Output {
    rp(repo, PW, args)
}

fn backup(repo: &TestRepo, paths: &[&Path], extra: &[&str]) -> Value {
    let mut c = repo.cmd();
    c.arg("--json").arg("backup").args(extra).args(paths);
    run(&mut c).ok("backup").summary()
}

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

fn key_list(repo: &TestRepo, pw: &str) -> Vec<Value> {
    rp(repo, pw, ["--json", "key", "list"])
        .ok("key list")
        .json()
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn key_add_list_remove_passwd() {
    let repo = repo();
    let src = repo.scratch("src");
    write(&src.join("f"), b"key test");
    backup(&repo, &[&src], &[]);
    let pw2_file = repo.tmp.path().join("pw2");
    fs::write(&pw2_file, format!("{PW2}\n")).unwrap();

    let fast = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"];
    let o = r(
        &repo,
        [
            "--json",
            "key",
            "add",
            "--new-password-file",
            pw2_file.to_str().unwrap(),
        ]
        .iter()
        .chain(&fast),
    );
    let added = o.ok("key add").json()["id"].as_str().unwrap().to_string();
    assert_eq!(repo.objects(Folder::Keys).len(), 2);

    // Both passwords open it; each sees its own slot as current.
    rp(&repo, PW2, ["snapshots"]).ok("snapshots with the new password");
    for (pw, current_is_added) in [(PW, false), (PW2, true)] {
        let keys = key_list(&repo, pw);
        assert_eq!(keys.len(), 2, "{keys:?}");
        let current: Vec<&Value> = keys.iter().filter(|k| k["current"] == true).collect();
        assert_eq!(current.len(), 1, "exactly one current key: {keys:?}");
        assert_eq!(
            current[0]["id"] == added.as_str(),
            current_is_added,
            "{keys:?}"
        );
    }
    let first = key_list(&repo, PW)
        .into_iter()
        .find(|k| k["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();

    // The key in use cannot be removed (by full id or prefix).
    for spec in [&first[..], &first[..8]] {
        r(&repo, ["key", "remove", spec]).fails("key remove of the current key", 1, &["in use"]);
    }
    assert_eq!(repo.objects(Folder::Keys).len(), 2);
    r(&repo, ["key", "remove", "ffffffffffff"]).fails(
        "key remove of a missing key",
        1,
        &["not found"],
    );

    // The other one can; then its password no longer opens the repository.
    r(&repo, ["key", "remove", &added[..10]]).ok("key remove");
    assert_eq!(key_list(&repo, PW).len(), 1);
    rp(&repo, PW2, ["snapshots"]).fails("removed key's password", 12, &["wrong password"]);

    // passwd: the old password stops working, the new one works.
    let pw3_file = repo.tmp.path().join("pw3");
    fs::write(&pw3_file, PW3).unwrap();
    r(
        &repo,
        [
            "key",
            "passwd",
            "--new-password-file",
            pw3_file.to_str().unwrap(),
        ]
        .iter()
        .chain(&fast),
    )
    .ok("key passwd");
    rp(&repo, PW, ["snapshots"]).fails("old password after passwd", 12, &["wrong password"]);
    let keys = key_list(&repo, PW3);
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["current"], true);
    let target = repo.scratch("restore");
    rp(
        &repo,
        PW3,
        ["restore", "latest", "--target", target.to_str().unwrap()],
    )
    .ok("restore after passwd");
    assert_eq!(
        fs::read(restored_path(&target, &src.join("f"))).unwrap(),
        b"key test"
    );

    // The new password can also come from LIFEBOAT_NEW_PASSWORD.
    let o = run(repo
        .cmd()
        .env("LIFEBOAT_PASSWORD", PW3)
        .env("LIFEBOAT_NEW_PASSWORD", PW2)
        .args(["key", "add"])
        .args(fast));
    o.ok("key add from LIFEBOAT_NEW_PASSWORD");
    rp(&repo, PW2, ["snapshots"]).ok("snapshots with the password from LIFEBOAT_NEW_PASSWORD");
}

#[test]
fn password_sources() {
    let repo = repo();
    let pw_file = repo.tmp.path().join("password");
    fs::write(&pw_file, format!("{PW}\nsecond line is ignored\n")).unwrap();
    let plain = || {
        let mut c = base_cmd();
        c.env("LIFEBOAT_REPOSITORY", &repo.path);
        c
    };

    let o = run(plain()
        .arg("--password-file")
        .arg(&pw_file)
        .args(["--json", "snapshots"]));
    assert!(o.ok("--password-file").json().is_array());
    run(plain()
        .env("LIFEBOAT_PASSWORD_FILE", &pw_file)
        .arg("snapshots"))
    .ok("LIFEBOAT_PASSWORD_FILE");
    run(plain().args(["--password-command", &format!("echo {PW}"), "snapshots"]))
        .ok("--password-command");
    run(plain()
        .env("LIFEBOAT_PASSWORD_COMMAND", format!("echo {PW}"))
        .arg("snapshots"))
    .ok("LIFEBOAT_PASSWORD_COMMAND");
    // A wrong password from each source is still a wrong password.
    run(plain().args(["--password-command", "echo nope", "snapshots"])).fails(
        "wrong password from a command",
        12,
        &["wrong password"],
    );
    // A failing command is an error of its own.
    run(plain().args(["--password-command", "exit 3", "snapshots"])).fails(
        "failing password command",
        1,
        &["password command failed"],
    );
    run(plain()
        .arg("--password-file")
        .arg(repo.tmp.path().join("missing"))
        .arg("snapshots"))
    .fails("missing password file", 1, &["password file"]);
    // No password at all, no terminal: a clear error, not a hang.
    run(plain().arg("snapshots")).fails("no password", 1, &["no password given"]);
}

#[test]
fn json_output_and_cat() {
    let repo = repo();
    let src = repo.scratch("src");
    write(&src.join("a.txt"), b"alpha");
    write(&src.join("sub/b.txt"), b"beta");
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    let summary = backup(&repo, &[&src], &[]);
    let snap_id = summary["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(snap_id.len(), 64);

    let snaps = r(&repo, ["--json", "snapshots"]).ok("snapshots").json();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["id"], snap_id.as_str());
    assert_eq!(snaps[0]["paths"][0], src.to_str().unwrap());
    let tree = snaps[0]["tree"].as_str().unwrap().to_string();

    // ls --json: NDJSON, one snapshot line, then one line per node.
    let lines = r(&repo, ["--json", "ls", "latest"]).ok("ls").json_lines();
    assert_eq!(lines[0]["message_type"], "snapshot");
    let paths: Vec<&str> = lines[1..]
        .iter()
        .map(|l| {
            assert_eq!(l["message_type"], "node", "{l}");
            l["path"].as_str().unwrap()
        })
        .collect();
    let p = |rel: &str| format!("{}/{rel}", src.display());
    for rel in ["a.txt", "sub", "sub/b.txt", "link"] {
        assert!(
            paths.contains(&p(rel).as_str()),
            "{} missing from {paths:?}",
            p(rel)
        );
    }
    let link = lines
        .iter()
        .find(|l| l["path"] == p("link").as_str())
        .unwrap();
    assert_eq!(link["type"], "symlink");
    assert_eq!(link["symlink_target"], "a.txt");

    let config = r(&repo, ["cat", "config"]).ok("cat config").json();
    assert_eq!(config["version"], 1, "{config}");
    let snap = r(&repo, ["cat", "snapshot", "latest"])
        .ok("cat snapshot")
        .json();
    assert_eq!(snap["id"], snap_id.as_str());
    assert_eq!(snap["tree"], tree.as_str());
    let by_prefix = r(&repo, ["cat", "snapshot", &snap_id[..6]])
        .ok("cat snapshot prefix")
        .json();
    assert_eq!(by_prefix["id"], snap_id.as_str());

    let t = r(&repo, ["cat", "tree", &tree]).ok("cat tree").json();
    assert_eq!(t["id"], tree.as_str());
    assert!(!t["nodes"].as_array().unwrap().is_empty(), "{t}");

    // cat index (by prefix): together, the segments list exactly the packs
    // in data/.
    let mut indexed: Vec<String> = Vec::new();
    for seg in repo.objects(Folder::Index) {
        let name = seg.file_name().unwrap().to_str().unwrap().to_string();
        let seg = r(&repo, ["cat", "index", &name[..8]])
            .ok("cat index")
            .json();
        for p in seg["packs"]
            .as_array()
            .unwrap_or_else(|| panic!("no packs in {seg}"))
        {
            indexed.push(p["id"].as_str().unwrap().to_string());
        }
    }
    indexed.sort();
    let packs: Vec<String> = repo
        .objects(Folder::Data)
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert!(!packs.is_empty());
    assert_eq!(indexed, packs);

    let keys = repo.objects(Folder::Keys);
    let key_name = keys[0].file_name().unwrap().to_str().unwrap().to_string();
    let key = r(&repo, ["cat", "key", &key_name[..8]])
        .ok("cat key")
        .json();
    assert_eq!(key["kdf"], "argon2id", "{key}");
    assert!(key.get("wrapped_key").is_some(), "{key}");
    for k in ["master_key", "encryption_key", "mac_key", "id_key"] {
        assert!(key.get(k).is_none(), "cat key shows {k}: {key}");
    }

    // Errors for cat.
    r(&repo, ["cat", "tree"]).fails("cat tree without an id", 1, &["needs an id"]);
    r(&repo, ["cat", "index", "zzzz"]).fails("cat index of nothing", 1, &["no object"]);
}

#[test]
fn tags_and_hosts() {
    let repo = repo();
    let src = repo.scratch("src");
    write(&src.join("which"), b"from h1");
    backup(
        &repo,
        &[&src],
        &[
            "--tag",
            "x,daily",
            "--host",
            "h1",
            "--time",
            "2024-01-01T00:00:00Z",
        ],
    );
    write(&src.join("which"), b"from h2");
    backup(
        &repo,
        &[&src],
        &[
            "--tag",
            "y",
            "--host",
            "h2",
            "--time",
            "2024-01-02T00:00:00Z",
        ],
    );

    let snaps = |extra: &[&str]| -> Vec<Value> {
        let o = r(&repo, ["--json", "snapshots"].iter().chain(extra)).ok("snapshots");
        o.json().as_array().unwrap().clone()
    };
    assert_eq!(snaps(&[]).len(), 2);
    let x = snaps(&["--tag", "x"]);
    assert_eq!(x.len(), 1);
    assert_eq!(x[0]["hostname"], "h1");
    assert_eq!(x[0]["tags"], serde_json::json!(["x", "daily"]));
    assert_eq!(snaps(&["--tag", "x,daily"]).len(), 1);
    assert_eq!(snaps(&["--tag", "x,y"]).len(), 0, "comma means all of");
    assert_eq!(
        snaps(&["--tag", "x", "--tag", "y"]).len(),
        2,
        "repeating means any of"
    );
    let h2 = snaps(&["--host", "h2"]);
    assert_eq!(h2.len(), 1);
    assert_eq!(h2[0]["tags"], serde_json::json!(["y"]));
    assert_eq!(snaps(&["--host", "nowhere"]).len(), 0);

    // latest is per filter.
    for (host, want) in [("h1", &b"from h1"[..]), ("h2", b"from h2")] {
        let target = repo.scratch(&format!("restore-{host}"));
        r(
            &repo,
            [
                "restore",
                "latest",
                "--host",
                host,
                "--target",
                target.to_str().unwrap(),
            ],
        )
        .ok("restore --host");
        assert_eq!(
            fs::read(restored_path(&target, &src.join("which"))).unwrap(),
            want
        );
    }
    let target = repo.scratch("restore-latest");
    r(
        &repo,
        ["restore", "latest", "--target", target.to_str().unwrap()],
    )
    .ok("restore latest");
    assert_eq!(
        fs::read(restored_path(&target, &src.join("which"))).unwrap(),
        b"from h2"
    );
}

#[test]
fn include_and_exclude() {
    let repo = repo();
    let src = repo.scratch("src");
    for rel in [
        "keep.txt",
        "debug.log",
        "sub/inner.log",
        "sub/inner.txt",
        "other/o.txt",
        "other/deep/d.txt",
    ] {
        write(&src.join(rel), rel.as_bytes());
    }
    backup(&repo, &[&src], &["--exclude", "*.log"]);
    let listed = r(&repo, ["ls", "latest"]).ok("ls").out();
    assert!(!listed.contains(".log"), "excluded files listed:\n{listed}");
    for rel in ["keep.txt", "sub/inner.txt", "other/deep/d.txt"] {
        assert!(
            listed.contains(&format!("{}/{rel}", src.display())),
            "{rel} missing:\n{listed}"
        );
    }

    // --include: only the matching subtree (and the directories above it).
    let target = repo.scratch("restore-include");
    let pattern = format!("{}/other", src.display());
    r(
        &repo,
        [
            "restore",
            "latest",
            "--include",
            &pattern,
            "--target",
            target.to_str().unwrap(),
        ],
    )
    .ok("restore --include");
    let dst = restored_path(&target, &src);
    assert_eq!(fs::read(dst.join("other/o.txt")).unwrap(), b"other/o.txt");
    assert_eq!(
        fs::read(dst.join("other/deep/d.txt")).unwrap(),
        b"other/deep/d.txt"
    );
    assert!(!dst.join("keep.txt").exists());
    assert!(!dst.join("sub").exists());

    // --exclude: everything else.
    let target = repo.scratch("restore-exclude");
    r(
        &repo,
        [
            "restore",
            "latest",
            "--exclude",
            "*.txt",
            "--exclude",
            "deep",
            "--target",
            target.to_str().unwrap(),
        ],
    )
    .ok("restore --exclude");
    let dst = restored_path(&target, &src);
    assert!(dst.join("sub").is_dir());
    assert!(dst.join("other").is_dir());
    assert!(!dst.join("keep.txt").exists());
    assert!(!dst.join("sub/inner.txt").exists());
    assert!(!dst.join("other/deep").exists());
    assert!(!dst.join("debug.log").exists(), "excluded at backup time");

    // A bad pattern is an error, not a panic.
    r(
        &repo,
        [
            "restore",
            "latest",
            "--include",
            "[",
            "--target",
            target.to_str().unwrap(),
        ],
    )
    .fails("bad pattern", 1, &["pattern"]);
}

#[test]
fn diff_between_snapshots() {
    let repo = repo();
    let src = repo.scratch("src");
    write(&src.join("same.txt"), b"unchanged");
    write(&src.join("gone.txt"), b"will be removed");
    write(&src.join("mod.txt"), b"before");
    let a = backup(&repo, &[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    fs::remove_file(src.join("gone.txt")).unwrap();
    write(&src.join("mod.txt"), b"after, and longer");
    write(&src.join("new.txt"), b"added");
    let b = backup(&repo, &[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();

    let out = r(&repo, ["diff", &a[..8], &b[..8]]).ok("diff").out();
    let line = |c: char, rel: &str| {
        let path = format!("{}/{rel}", src.display());
        out.lines()
            .any(|l| l.starts_with(c) && l.trim_start_matches(c).trim() == path)
    };
    assert!(line('+', "new.txt"), "no + for new.txt:\n{out}");
    assert!(line('-', "gone.txt"), "no - for gone.txt:\n{out}");
    assert!(line('M', "mod.txt"), "no M for mod.txt:\n{out}");
    assert!(!out.contains("same.txt"), "unchanged file listed:\n{out}");

    let j = r(&repo, ["--json", "diff", &a, &b])
        .ok("diff --json")
        .json();
    let changes = j["changes"].as_array().unwrap();
    let has = |rel: &str, change: &str| {
        let path = format!("{}/{rel}", src.display());
        changes
            .iter()
            .any(|c| c["path"] == path.as_str() && c["change"] == change)
    };
    assert!(
        has("new.txt", "added") && has("gone.txt", "removed") && has("mod.txt", "modified"),
        "{j}"
    );
}

#[test]
fn stats_restore_size() {
    let repo = repo();
    let src = repo.scratch("src");
    let sizes = [0usize, 1, 1000, 100_000, 1 << 20, (3 << 20) + 7];
    for (i, n) in sizes.iter().enumerate() {
        write(
            &src.join(format!("d{}/f{i}", i % 2)),
            &common::random_bytes(i as u64, *n),
        );
    }
    // A zero run (stored as a hole) counts as what a restore writes.
    write(&src.join("zeros"), &vec![0u8; 2 << 20]);
    let total: u64 = sizes.iter().map(|n| *n as u64).sum::<u64>() + (2 << 20);
    backup(&repo, &[&src], &[]);

    let st = r(&repo, ["--json", "stats"]).ok("stats").json();
    assert_eq!(st["restore_size"], total, "{st}");
    assert_eq!(st["snapshots"], 1, "{st}");
    assert_eq!(st["files"], sizes.len() as u64 + 1, "{st}");
    // Same data again: restore size doubles over two snapshots, stored data does not.
    backup(&repo, &[&src], &[]);
    let st2 = r(&repo, ["--json", "stats"]).ok("stats").json();
    assert_eq!(st2["restore_size"], 2 * total, "{st2}");
    assert_eq!(st2["unique_raw_size"], st["unique_raw_size"], "{st2}");
    let one = r(&repo, ["--json", "stats", "latest"])
        .ok("stats latest")
        .json();
    assert_eq!(one["restore_size"], total, "{one}");
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(base_cmd().args(["completions", shell])).ok(&format!("completions {shell}"));
        let out = o.out();
        assert!(out.len() > 100, "{shell}: {out}");
        assert!(
            out.contains("lifeboat"),
            "{shell} completions do not mention lifeboat"
        );
        assert!(
            out.contains("snapshots") && out.contains("restore"),
            "{shell}: subcommands missing"
        );
    }
    let o = run(base_cmd().arg("generate-man")).ok("generate-man");
    let man = o.out();
    assert!(man.contains(".TH"), "not a man page:\n{man}");
    assert!(man.contains("lifeboat"));
    let o = run(base_cmd().arg("completions").arg("tcsh"));
    assert_ne!(o.code, 0, "unknown shell accepted");
}

/// An unchanged re-backup counts its files as processed, as restic does,
/// instead of "processed 0 B"; only the read bytes are zero.
#[test]
fn unchanged_files_count_as_processed() {
    let r = TestRepo::new();
    let src = r.scratch("src");
    for (name, len) in [("a", 1000usize), ("b", 20_000), ("c", 300_000)] {
        fs::write(src.join(name), vec![7u8; len]).unwrap();
    }
    let first = r.backup(&[&src], &[]);
    assert_eq!(first["total_files_processed"], 3);
    assert_eq!(first["total_bytes_processed"], 321_000);
    let second = r.backup(&[&src], &[]);
    assert_eq!(second["files_unchanged"], 3);
    assert_eq!(second["bytes_read"], 0);
    assert_eq!(second["total_files_processed"], 3);
    assert_eq!(second["total_bytes_processed"], 321_000);
    let o = r.run(["backup", src.to_str().unwrap()]).ok("backup");
    let out = o.out();
    assert!(
        out.contains("processed 3 files, 313.48 KiB in"),
        "human summary of an unchanged backup:\n{out}"
    );
}
