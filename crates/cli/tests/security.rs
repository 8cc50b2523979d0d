//! No-delete mode and key rotation, end to end through the `lifeboat`
//! binary: an append-only key and an append-only repository back up but
//! refuse forget, prune and the key commands that delete (asserted message
//! and exit code), and send the store nothing but creates; `key rotate`
//! keeps old snapshots readable, new ones sealed under the new key, and
//! every key slot (also the golden repository's version-1 slots) open.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use common::{Output, TestRepo, run};
use lifeboat_format::layout::Folder;

const AO_PASSWORD: &str = "lb-append-only-pw-3Kd8";
const KDF: [&str; 4] = ["--kdf-memory-kib", "1024", "--kdf-iterations", "1"];

/// Every file under the repository, relative names.
fn all_objects(repo: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![repo.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(e.path().strip_prefix(repo).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// Add an append-only key with [`AO_PASSWORD`]; returns its short id.
fn add_append_only_key(repo: &TestRepo) -> String {
    let pwfile = repo.tmp.path().join("ao-pw");
    fs::write(&pwfile, AO_PASSWORD).unwrap();
    let mut args = vec![
        "--json",
        "key",
        "add",
        "--append-only",
        "--new-password-file",
    ];
    let p = pwfile.to_str().unwrap().to_string();
    args.push(&p);
    args.extend(KDF);
    let o = repo.run(&args).ok("key add --append-only");
    o.json()["id"].as_str().unwrap()[..8].to_string()
}

fn source(repo: &TestRepo, name: &str, content: &[u8]) -> PathBuf {
    let src = repo.scratch(name);
    fs::write(src.join("file"), content).unwrap();
    fs::write(src.join("other"), common::random_bytes(7, 300_000)).unwrap();
    src
}

fn refused(o: Output, what: &str, why: &str) {
    o.fails(
        what,
        1,
        &[
            &format!("{what} deletes or replaces objects, which is refused"),
            why,
        ],
    );
}

/// The ops in a `LIFEBOAT_FAULTS` trace file.
fn traced_ops(trace: &Path) -> BTreeSet<String> {
    fs::read_to_string(trace)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').nth(2).unwrap().to_string())
        .collect()
}

#[test]
fn append_only_key_backs_up_but_refuses_to_delete() {
    let repo = TestRepo::new();
    let src = source(&repo, "src", b"first");
    let s1 = repo.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let ao = add_append_only_key(&repo);
    let listed = repo.run(["--json", "key", "list"]).ok("key list").json();
    let kinds: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "append-only").count(), 1);
    let before = all_objects(&repo.path);

    // A backup with the append-only key: the store sees creates, never a
    // delete or an overwriting put (what an S3 put-only policy allows).
    fs::write(src.join("file"), b"second").unwrap();
    let trace = repo.tmp.path().join("trace");
    let o = run(repo
        .cmd()
        .env("LIFEBOAT_PASSWORD", AO_PASSWORD)
        .env("LIFEBOAT_FAULTS", format!("trace={}", trace.display()))
        .args(["--json", "backup"])
        .arg(&src))
    .ok("append-only backup");
    let s2 = o.summary()["snapshot_id"].as_str().unwrap().to_string();
    let ops = traced_ops(&trace);
    assert!(ops.contains("create"), "{ops:?}");
    assert!(!ops.contains("delete") && !ops.contains("put"), "{ops:?}");

    // It reads and restores what anyone wrote.
    for (id, want) in [(&s1, &b"first"[..]), (&s2, &b"second"[..])] {
        let target = repo.scratch(&format!("restore-{}", &id[..8]));
        let o = run(repo
            .cmd()
            .env("LIFEBOAT_PASSWORD", AO_PASSWORD)
            .args(["restore", id, "--target"])
            .arg(&target));
        o.ok("append-only restore");
        let restored = common::restored_path(&target, &src).join("file");
        assert_eq!(fs::read(restored).unwrap(), want);
    }
    repo.run_pw(AO_PASSWORD, ["check", "--read-data"])
        .ok("append-only check");

    // Everything that deletes or replaces refuses before it starts.
    let why = "opened with an append-only key";
    refused(
        repo.run_pw(AO_PASSWORD, ["forget", "--keep-last", "1"]),
        "forget",
        why,
    );
    refused(repo.run_pw(AO_PASSWORD, ["forget", &s1]), "forget", why);
    refused(repo.run_pw(AO_PASSWORD, ["prune"]), "prune", why);
    refused(
        repo.run_pw(AO_PASSWORD, ["forget", "--keep-last", "1", "--prune"]),
        "forget",
        why,
    );
    let full = repo.run(["--json", "key", "list"]).ok("key list").json();
    let full_id = full
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "full")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    refused(
        repo.run_pw(AO_PASSWORD, ["key", "remove", &full_id[..8]]),
        "key remove",
        why,
    );
    refused(
        repo.run_pw(AO_PASSWORD, ["key", "rotate"]),
        "key rotate",
        why,
    );
    refused(
        repo.run_pw(AO_PASSWORD, ["index", "compact"]),
        "index maintenance",
        why,
    );
    // Nor can it make itself a full key.
    let pwfile = repo.tmp.path().join("escalate");
    fs::write(&pwfile, "escalate").unwrap();
    let mut args = vec![
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
    ];
    args.extend(KDF);
    repo.run_pw(AO_PASSWORD, &args).fails(
        "key add (full) with an append-only key",
        1,
        &["an append-only key can add only append-only keys"],
    );
    // A dry run deletes nothing and is allowed.
    repo.run_pw(AO_PASSWORD, ["forget", "--keep-last", "1", "--dry-run"])
        .ok("append-only forget --dry-run");

    // Nothing that was there before the append-only client came is gone.
    let after = all_objects(&repo.path);
    let lost: Vec<_> = before.difference(&after).collect();
    assert!(lost.is_empty(), "removed: {lost:?}");
    assert_eq!(repo.snapshots().len(), 2);

    // The full key still forgets and prunes; the append-only key is not
    // the one in use, so it can be removed.
    repo.run(["forget", "--keep-last", "1", "--prune"])
        .ok("full-key forget --prune");
    assert_eq!(repo.snapshots().len(), 1);
    repo.run(["key", "remove", &ao])
        .ok("remove the append-only key");
}

#[test]
fn append_only_repository_refuses_every_key() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = TestRepo {
        path: tmp.path().join("repo"),
        tmp,
        password: common::PASSWORD.to_string(),
    };
    let mut args = vec!["init", "--append-only"];
    args.extend(KDF);
    repo.run(&args).ok("init --append-only");
    let src = source(&repo, "src", b"kept");
    repo.backup(&[&src], &[]);
    fs::write(src.join("file"), b"kept too").unwrap();
    repo.backup(&[&src], &[]);
    let before = all_objects(&repo.path);
    let why = "the repository is append-only (created with `init --append-only`)";
    refused(repo.run(["forget", "--keep-last", "1"]), "forget", why);
    refused(repo.run(["prune"]), "prune", why);
    refused(repo.run(["key", "rotate"]), "key rotate", why);
    repo.run(["check"]).ok("check");
    assert_eq!(all_objects(&repo.path), before);
    assert_eq!(repo.snapshots().len(), 2);
}

/// Names of the key slots.
fn slot_names(repo: &Path) -> BTreeSet<String> {
    fs::read_dir(repo.join(Folder::Keys.name()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn restore_and_compare(repo: &TestRepo, pw: &str, snapshot: &str, src: &Path, want: &[u8]) {
    let target = repo.scratch(&format!("r-{}-{}", &snapshot[..8], pw.len()));
    run(repo
        .cmd()
        .env("LIFEBOAT_PASSWORD", pw)
        .args(["restore", snapshot, "--target"])
        .arg(&target))
    .ok("restore");
    let restored = common::restored_path(&target, src);
    assert_eq!(fs::read(restored.join("file")).unwrap(), want);
    assert_eq!(
        fs::read(restored.join("other")).unwrap(),
        fs::read(src.join("other")).unwrap()
    );
}

#[test]
fn key_rotate_keeps_old_data_and_every_slot() {
    let repo = TestRepo::new();
    let second_pw = "lb-second-pw-q8Zt";
    let pwfile = repo.tmp.path().join("pw2");
    fs::write(&pwfile, second_pw).unwrap();
    let mut args = vec![
        "key",
        "add",
        "--new-password-file",
        pwfile.to_str().unwrap(),
    ];
    args.extend(KDF);
    repo.run(&args).ok("key add");
    let src = source(&repo, "src", b"before rotation");
    let s1 = repo.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let slots_before = slot_names(&repo.path);

    let o = repo.run(["--json", "key", "rotate"]).ok("key rotate");
    let v = o.json();
    assert_eq!(v["retired_keys"], 1);
    assert_eq!(v["slots"].as_array().unwrap().len(), 2);
    let slots_after = slot_names(&repo.path);
    assert_eq!(slots_after.len(), 2);
    assert!(
        slots_after.is_disjoint(&slots_before),
        "every slot rewritten"
    );

    // The second password, whose slot rotate could not open, gets the new
    // key too: what it writes after the rotation the first one reads.
    fs::write(src.join("file"), b"after rotation").unwrap();
    let o = run(repo
        .cmd()
        .env("LIFEBOAT_PASSWORD", second_pw)
        .args(["--json", "backup"])
        .arg(&src))
    .ok("backup after rotation");
    let s2 = o.summary()["snapshot_id"].as_str().unwrap().to_string();
    let listed = repo.run(["--json", "key", "list"]).ok("key list").json();
    for k in listed.as_array().unwrap() {
        assert_eq!(k["rotations"], 1, "{k}");
        assert_eq!(k["version"], 2, "{k}");
    }
    for pw in [common::PASSWORD, second_pw] {
        restore_and_compare(&repo, pw, &s1, &src, b"before rotation");
        restore_and_compare(&repo, pw, &s2, &src, b"after rotation");
        run(repo
            .cmd()
            .env("LIFEBOAT_PASSWORD", pw)
            .args(["check", "--read-data"]))
        .ok("check after rotation");
    }

    // A second rotation keeps both older keys.
    let o = repo.run(["--json", "key", "rotate"]).ok("second rotation");
    assert_eq!(o.json()["retired_keys"], 2);
    restore_and_compare(&repo, second_pw, &s1, &src, b"before rotation");
    restore_and_compare(&repo, common::PASSWORD, &s2, &src, b"after rotation");
    repo.run(["--json", "prune"]).ok("prune after rotation");
    repo.run(["check", "--read-data"]).ok("check after prune");
}

/// Copy `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

fn golden_password(name: &str) -> String {
    fs::read_to_string(golden().join(name))
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .to_string()
}

/// The golden repository was written before rotation existed: its two
/// version-1 slots. Rotation is refused while a slot it cannot reach is
/// there; once that slot's password is changed (which rewrites it as
/// version 2), rotation goes through and both passwords open old and new
/// snapshots.
#[test]
fn golden_repository_rotates_after_its_old_slots_are_rewritten() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    copy_dir(&golden().join("valid"), &path);
    let pw1 = golden_password("password");
    let pw2 = golden_password("password2");
    let repo = TestRepo {
        tmp,
        path,
        password: pw1.clone(),
    };
    let snaps_before: Vec<String> = repo
        .snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(snaps_before.len(), 2);

    let o = repo.run(["key", "rotate"]);
    o.fails(
        "rotate with a version-1 slot it cannot open",
        1,
        &["predate key rotation", "lifeboat key passwd"],
    );
    assert_eq!(
        slot_names(&repo.path).len(),
        2,
        "a refused rotation writes nothing"
    );

    // Rewrite the second slot with its own password (kept the same).
    let pwfile = repo.tmp.path().join("pw2");
    fs::write(&pwfile, &pw2).unwrap();
    let mut args = vec![
        "key",
        "passwd",
        "--new-password-file",
        pwfile.to_str().unwrap(),
    ];
    args.extend(KDF);
    repo.run_pw(&pw2, &args)
        .ok("key passwd with the second password");
    repo.run(["--json", "key", "rotate"]).ok("key rotate");

    let src = repo.scratch("new");
    fs::write(
        src.join("file"),
        b"written after rotating the golden repository",
    )
    .unwrap();
    fs::write(src.join("other"), common::random_bytes(9, 100_000)).unwrap();
    let s3 = repo.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    for pw in [&pw1, &pw2] {
        let ids: BTreeSet<String> = run(repo
            .cmd()
            .env("LIFEBOAT_PASSWORD", pw)
            .args(["--json", "snapshots"]))
        .ok("snapshots")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
        assert_eq!(ids.len(), 3);
        run(repo
            .cmd()
            .env("LIFEBOAT_PASSWORD", pw)
            .args(["check", "--read-data"]))
        .ok("check golden after rotation");
        restore_and_compare(
            &repo,
            pw,
            &s3,
            &src,
            b"written after rotating the golden repository",
        );
    }
    // The golden snapshots still restore byte for byte.
    for (id, part) in snaps_before.iter().zip(["one", "two"]) {
        let snap = repo
            .snapshots()
            .into_iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap();
        let target = repo.scratch(&format!("golden-{part}"));
        run(repo
            .cmd()
            .env("LIFEBOAT_PASSWORD", &pw2)
            .args(["restore", id, "--target"])
            .arg(&target))
        .ok("restore golden snapshot");
        let orig = snap["paths"][0].as_str().unwrap();
        let restored = common::restored_path(&target, Path::new(orig));
        let name = Path::new(orig).file_name().unwrap();
        let expected = golden().join("source").join(name);
        for e in fs::read_dir(&expected).unwrap() {
            let e = e.unwrap();
            if !e.file_type().unwrap().is_file() {
                continue;
            }
            assert_eq!(
                fs::read(restored.join(e.file_name())).unwrap(),
                fs::read(e.path()).unwrap(),
                "{part}/{:?}",
                e.file_name()
            );
        }
    }
}
