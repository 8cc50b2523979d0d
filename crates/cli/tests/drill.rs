//! `lifeboat drill` end to end on the three kinds of source: a file tree, a
//! block image holding ext4 and an etcd snapshot streamed from a real etcd
//! 3.4 on loopback (with `--etcd-verify`, a second, throwaway etcd serves
//! the restored snapshot). Each passes, is recorded and cleans up; each
//! fails with a non-zero exit and a report naming what went wrong when a
//! blob is corrupted, and the verification fails when restored data
//! differ from the snapshot (`--verify-only` on a tampered restore, and an
//! image whose file system `e2fsck` finds broken).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::etcd::{Etcd, etcdctl, free_port};
use common::*;
use lifeboat_format::layout::Folder;

/// A small tree: nested folders, an empty file, a symlink, a file of
/// random data spanning several chunks and one with a zero run.
fn tree(t: &TestRepo) -> PathBuf {
    let src = t.scratch("src");
    fs::create_dir_all(src.join("a/b/c")).unwrap();
    fs::write(src.join("a/b/c/deep.txt"), b"deep").unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    fs::write(src.join("random.bin"), random_bytes(7, 3 << 20)).unwrap();
    let mut zeros = random_bytes(8, 64 << 10);
    zeros.extend(vec![0u8; 2 << 20]);
    zeros.extend(random_bytes(9, 4096));
    fs::write(src.join("zeros.bin"), zeros).unwrap();
    std::os::unix::fs::symlink("a/b/c/deep.txt", src.join("link")).unwrap();
    fs::set_permissions(src.join("a/b"), fs::Permissions::from_mode(0o750)).unwrap();
    src
}

/// `drill --json <args>`: the exit code, the drill lines and stderr.
fn drill(t: &TestRepo, args: &[&str]) -> (i32, Vec<serde_json::Value>, String) {
    let o = t.run(["--json", "drill"].iter().chain(args));
    let lines = o
        .json_lines()
        .into_iter()
        .filter(|v| v["message_type"] == "drill")
        .collect();
    (o.code, lines, o.stderr)
}

fn drills(t: &TestRepo) -> Vec<serde_json::Value> {
    t.run(["--json", "drills"])
        .ok("drills")
        .json()
        .as_array()
        .cloned()
        .unwrap()
}

/// Flip one byte early in the largest pack and in every pack over 64 KiB
/// (the data packs: these trees are far smaller), inside its first blob.
/// Returns what to put back.
fn corrupt_data_pack(t: &TestRepo) -> Vec<(PathBuf, Vec<u8>)> {
    let packs = t.objects(Folder::Data);
    let largest = packs
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .cloned()
        .unwrap();
    let mut saved = Vec::new();
    for pack in packs {
        if pack == largest || fs::metadata(&pack).unwrap().len() > 64 << 10 {
            let b = fs::read(&pack).unwrap();
            let mut c = b.clone();
            c[100] ^= 0x40;
            fs::write(&pack, c).unwrap();
            saved.push((pack, b));
        }
    }
    saved
}

fn is_empty_dir(p: &Path) -> bool {
    fs::read_dir(p).unwrap().next().is_none()
}

#[test]
fn drill_of_a_file_tree_passes_is_recorded_and_cleans_up() {
    let t = TestRepo::new();
    let src = tree(&t);
    let snap = t.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let scratch = t.scratch("scratch");

    let (code, lines, stderr) = drill(&t, &["latest", "--scratch", scratch.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    let d = &lines[0];
    assert_eq!(d["ok"], true, "{d}");
    assert_eq!(d["snapshot_id"], snap.as_str());
    assert_eq!(d["source"], "fs");
    assert_eq!(d["checks"], serde_json::json!(["content", "metadata"]));
    assert_eq!(d["problems"], serde_json::json!([]));
    let size = 4 + (3 << 20) + (64 << 10) + (2 << 20) + 4096;
    assert_eq!(d["bytes"], size);
    let (ttfb, rto) = (
        d["ttfb_secs"].as_f64().unwrap(),
        d["restore_secs"].as_f64().unwrap(),
    );
    assert!(ttfb > 0.0 && ttfb <= rto, "ttfb {ttfb}, rto {rto}");
    assert!(d["throughput_bytes_per_sec"].as_f64().unwrap() > 0.0);
    assert!(is_empty_dir(&scratch), "the drill left its restore behind");

    // Recorded, encrypted, in drills/.
    let record = d["record_id"].as_str().unwrap();
    let objects = t.objects(Folder::Drills);
    assert_eq!(objects.len(), 1);
    assert!(objects[0].ends_with(record));
    let raw = fs::read(&objects[0]).unwrap();
    assert!(
        !raw.windows(6).any(|w| w == b"random"),
        "the record is not encrypted"
    );
    let list = drills(&t);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["ok"], true);
    assert_eq!(list[0]["snapshot"], snap.as_str());
    assert_eq!(list[0]["restore_secs"], d["restore_secs"]);
    assert_eq!(list[0]["paths"], serde_json::json!([src.to_str().unwrap()]));

    // --keep leaves a restore equal to the source.
    let (code, lines, _) = drill(
        &t,
        &[
            "latest",
            "--scratch",
            scratch.to_str().unwrap(),
            "--keep",
            "--no-record",
        ],
    );
    assert_eq!(code, 0);
    let kept = PathBuf::from(lines[0]["restored_to"].as_str().unwrap());
    assert!(lines[0]["record_id"].is_null());
    assert_eq!(
        fs::read(restored_path(&kept.join("tree"), &src).join("random.bin")).unwrap(),
        fs::read(src.join("random.bin")).unwrap()
    );
    assert_eq!(drills(&t).len(), 1, "--no-record wrote a record");
}

#[test]
fn drill_fails_when_a_blob_is_corrupted() {
    let t = TestRepo::new();
    let src = tree(&t);
    t.backup(&[&src], &[]);
    corrupt_data_pack(&t);
    let scratch = t.scratch("scratch");
    let (code, lines, stderr) = drill(&t, &["latest", "--scratch", scratch.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(lines[0]["ok"], false);
    // Which file the flipped byte lands in depends on the order of blobs in the pack.
    assert!(
        stderr.contains("random.bin: not restored") || stderr.contains("zeros.bin: not restored"),
        "{stderr}"
    );
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(stderr.contains("drills failed"), "{stderr}");
    assert!(
        is_empty_dir(&scratch),
        "a failed drill left its restore behind"
    );
    // The failure is recorded too.
    let list = drills(&t);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["ok"], false);
    assert!(
        list[0]["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str().unwrap().contains(".bin: not restored")),
        "{}",
        list[0]
    );
    // `drills --failed` lists it.
    let failed = t
        .run(["--json", "drills", "--failed"])
        .ok("drills --failed");
    assert_eq!(failed.json().as_array().unwrap().len(), 1);
}

#[test]
fn verify_only_fails_when_restored_data_differ() {
    let t = TestRepo::new();
    let src = tree(&t);
    t.backup(&[&src], &[]);
    let target = t.scratch("restored");
    t.restore("latest", &target, &[]);
    let verify = |what: &str| {
        t.run(["drill", "latest", "--verify-only", target.to_str().unwrap()])
            .fails(what, 1, &[])
    };
    let o = t
        .run([
            "--json",
            "drill",
            "latest",
            "--verify-only",
            target.to_str().unwrap(),
        ])
        .ok("verify-only of an exact restore");
    assert_eq!(o.summary()["ok"], true);
    assert!(
        t.objects(Folder::Drills).is_empty(),
        "--verify-only records nothing"
    );

    let r = restored_path(&target, &src);
    // Same size, one byte changed.
    let mut b = fs::read(r.join("random.bin")).unwrap();
    b[(2 << 20) + 5] ^= 1;
    fs::write(r.join("random.bin"), &b).unwrap();
    let o = verify("a changed byte");
    assert!(
        o.stderr.contains("random.bin: content differs at bytes"),
        "{}",
        o.stderr
    );
    // A hole that is not zero any more, a missing file, an extra one, a mode.
    let mut z = fs::read(r.join("zeros.bin")).unwrap();
    z[(64 << 10) + 10] = 1;
    fs::write(r.join("zeros.bin"), &z).unwrap();
    fs::remove_file(r.join("a/b/c/deep.txt")).unwrap();
    fs::write(r.join("stray"), b"x").unwrap();
    fs::set_permissions(r.join("a/b"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(r.join("empty"), b"now not").unwrap();
    let o = verify("several differences");
    assert!(
        o.stderr.contains("zeros.bin: content differs")
            || o.stderr
                .contains("zeros.bin: bytes 65536..2162688 should be zero"),
        "{}",
        o.stderr
    );
    for phrase in [
        "deep.txt: missing from the restore",
        "stray: present in the restore but not in the snapshot",
        "a/b: mode 755, the snapshot has 750",
        "empty: size 7 bytes, the snapshot has 0",
    ] {
        assert!(
            o.stderr.contains(phrase),
            "stderr lacks {phrase:?}:\n{}",
            o.stderr
        );
    }
}

// ---------------------------------------------------------------------------
// Block images.

fn ext4_image(t: &TestRepo) -> PathBuf {
    let files = tree(t);
    let img = t.scratch("images").join("vol.img");
    fs::File::create(&img).unwrap().set_len(32 << 20).unwrap();
    let o = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&files)
        .arg(&img)
        .output()
        .expect("mkfs.ext4 (Debian package e2fsprogs) is needed for this test");
    assert!(o.status.success(), "mkfs.ext4: {o:?}");
    img
}

#[test]
fn drill_of_an_ext4_block_image_runs_e2fsck_and_fails_on_damage() {
    let t = TestRepo::new();
    let img = ext4_image(&t);
    let mut c = t.cmd();
    c.args(["--json", "backup", "--block"]).arg(&img);
    run(&mut c).ok("backup --block");
    let scratch = t.scratch("scratch");
    let s = scratch.to_str().unwrap();
    let (code, lines, stderr) = drill(&t, &["latest", "--scratch", s]);
    assert_eq!(code, 0, "{stderr}");
    let d = &lines[0];
    assert_eq!(d["source"], "block");
    assert_eq!(
        d["checks"],
        serde_json::json!(["size", "content", "e2fsck"])
    );
    assert_eq!(d["bytes"], 32 << 20);
    assert!(is_empty_dir(&scratch));

    // A corrupted blob: the block restore stops, naming it.
    let saved = corrupt_data_pack(&t);
    let (code, lines, stderr) = drill(&t, &["latest", "--scratch", s]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(lines[0]["ok"], false);
    assert!(stderr.contains("restore failed"), "{stderr}");
    assert!(stderr.contains("authentication failed"), "{stderr}");
    assert!(is_empty_dir(&scratch));
    for (p, b) in saved {
        fs::write(p, b).unwrap();
    }

    // A faithful image of a broken file system: the restore is exact, and
    // e2fsck says the data are not usable.
    let o = Command::new("debugfs")
        .args(["-w", "-R", "clri <2>"])
        .arg(&img)
        .output()
        .expect("debugfs (e2fsprogs)");
    assert!(o.status.success(), "debugfs: {o:?}");
    let mut c = t.cmd();
    c.args(["--json", "backup", "--block"]).arg(&img);
    run(&mut c).ok("backup --block of the broken image");
    let (code, lines, stderr) = drill(&t, &["latest", "--scratch", s]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(lines[0]["ok"], false);
    assert_eq!(
        lines[0]["checks"],
        serde_json::json!(["size", "content", "e2fsck"])
    );
    assert!(stderr.contains("e2fsck -fn found errors"), "{stderr}");
    assert!(is_empty_dir(&scratch));
    let list = drills(&t);
    let oks: Vec<bool> = list.iter().map(|d| d["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [true, false, false]);
}

// ---------------------------------------------------------------------------
// etcd.

#[test]
fn drill_of_an_etcd_snapshot_serves_every_key_and_fails_on_damage() {
    let t = TestRepo::new();
    let dir = t.scratch("etcd");
    let etcd = Etcd::start(&dir.join("member"), "a", free_port());
    for i in 0..120 {
        run(etcdctl(&etcd.url).args(["put", &format!("/registry/k{i:04}"), &"v".repeat(200 + i)]))
            .ok("etcdctl put");
    }
    // History: 20 keys rewritten and 10 deleted, so the revision is not the key count.
    for i in 0..20 {
        run(etcdctl(&etcd.url).args(["put", &format!("/registry/k{i:04}"), "new"])).ok("put");
    }
    for i in 100..110 {
        run(etcdctl(&etcd.url).args(["del", &format!("/registry/k{i:04}")])).ok("del");
    }
    let mut c = t.cmd();
    c.args([
        "--json",
        "etcd",
        "backup",
        "--node-name",
        "node-1",
        "--endpoint",
        &etcd.url,
    ]);
    let s = run(&mut c).ok("etcd backup").summary();
    let revision = s["revision"].as_i64().unwrap();
    assert_eq!(revision, 1 + 120 + 20 + 10);
    drop(etcd);

    let scratch = t.scratch("scratch");
    let sc = scratch.to_str().unwrap();
    let (code, lines, stderr) = drill(&t, &["latest", "--scratch", sc, "--etcd-verify"]);
    assert_eq!(code, 0, "{stderr}");
    let d = &lines[0];
    assert_eq!(d["source"], "etcd");
    let checks: Vec<&str> = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    for c in [
        "etcd-bbolt-meta",
        "etcd-sha256-trailer",
        "etcd-sha256-recorded",
        "content",
        "etcd-server",
    ] {
        assert!(checks.contains(&c), "{c} not in {checks:?}");
    }
    assert_eq!(d["etcd"]["keys"], 110, "{d}");
    assert_eq!(d["etcd"]["revision"], revision, "{d}");
    assert_eq!(d["etcd"]["version"], "3.4.23");
    assert!(
        is_empty_dir(&scratch),
        "the throwaway etcd's data was left behind"
    );

    corrupt_data_pack(&t);
    let (code, lines, stderr) = drill(&t, &["latest", "--scratch", sc, "--etcd-verify"]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(lines[0]["ok"], false);
    assert!(stderr.contains("restore failed"), "{stderr}");
    assert!(is_empty_dir(&scratch));
}

#[test]
fn drill_latest_per_source_drills_each_source_once() {
    let t = TestRepo::new();
    let a = t.scratch("one");
    let b = t.scratch("two");
    fs::write(a.join("f"), b"one").unwrap();
    fs::write(b.join("f"), b"two").unwrap();
    t.backup(&[&a], &["--time", "2026-01-01T00:00:00Z"]);
    let newest_a = t.backup(&[&a], &["--time", "2026-01-02T00:00:00Z"])["snapshot_id"].clone();
    let newest_b = t.backup(&[&b], &[])["snapshot_id"].clone();
    let scratch = t.scratch("scratch");
    let (code, lines, stderr) = drill(
        &t,
        &[
            "--latest-per-source",
            "--scratch",
            scratch.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let mut drilled: Vec<_> = lines.iter().map(|l| l["snapshot_id"].clone()).collect();
    drilled.sort_by_key(|v| v.to_string());
    let mut want = vec![newest_a, newest_b];
    want.sort_by_key(|v| v.to_string());
    assert_eq!(drilled, want);
    assert_eq!(drills(&t).len(), 2);
}
