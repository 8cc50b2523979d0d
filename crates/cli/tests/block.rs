//! Block volumes: `backup --block` of a raw ext4 image (sparse, made with
//! `mkfs.ext4 -d` from real files), `restore --block` into a fresh file
//! (byte-identical, sparse, `e2fsck -fn` clean) and onto a file with
//! content, and `--changed-ranges` incrementals compared with a full read.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const MIB: u64 = 1 << 20;

fn allocated(p: &Path) -> u64 {
    fs::metadata(p).unwrap().blocks() * 512
}

/// A sparse ext4 image of `size` bytes holding about `content` bytes of
/// real files.
fn ext4_image(t: &TestRepo, name: &str, size: u64, content: u64) -> PathBuf {
    let src = t.scratch(&format!("{name}-src"));
    copy_real_files(&src, content, &["/usr/share", "/usr/lib"]);
    let img = t.scratch("images").join(format!("{name}.img"));
    fs::File::create(&img).unwrap().set_len(size).unwrap();
    let o = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "lazy_itable_init=1", "-d"])
        .arg(&src)
        .arg(&img)
        .output()
        .expect("mkfs.ext4 (Debian package e2fsprogs) is needed for this test");
    assert!(o.status.success(), "mkfs.ext4: {o:?}");
    fs::remove_dir_all(&src).unwrap();
    img
}

fn assert_same(a: &Path, b: &Path) {
    let cmp = Command::new("cmp").arg(a).arg(b).output().unwrap();
    assert!(
        cmp.status.success(),
        "{} and {} differ: {cmp:?}",
        a.display(),
        b.display()
    );
}

/// `backup --json --block IMG <extra>`: the summary.
fn block_backup(t: &TestRepo, img: &Path, extra: &[&str]) -> serde_json::Value {
    let mut c = t.cmd();
    c.args(["--json", "backup", "--block"]).arg(img).args(extra);
    run(&mut c).ok("backup --block").summary()
}

/// `restore --json --block SNAPSHOT --target TARGET`: the summary.
fn block_restore(t: &TestRepo, snapshot: &str, target: &Path) -> serde_json::Value {
    let mut c = t.cmd();
    c.args(["--json", "restore", "--block", snapshot, "--target"])
        .arg(target);
    run(&mut c).ok("restore --block").summary()
}

/// The 4 KiB blocks that differ between two files of equal size, merged
/// into ranges, as a changed-ranges JSON list (what a CSI
/// GetMetadataDelta with 4 KiB blocks reports).
fn changed_ranges(old: &Path, new: &Path) -> (String, u64) {
    let (mut a, mut b) = (fs::File::open(old).unwrap(), fs::File::open(new).unwrap());
    let len = b.metadata().unwrap().len();
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    let (mut ba, mut bb) = (vec![0u8; MIB as usize], vec![0u8; MIB as usize]);
    let mut pos = 0u64;
    while pos < len {
        let n = read_full(&mut b, &mut bb).unwrap();
        let m = read_full(&mut a, &mut ba[..n]).unwrap();
        ba[m..n].fill(0);
        for k in (0..n).step_by(4096) {
            let e = (k + 4096).min(n);
            if ba[k..e] != bb[k..e] {
                let off = pos + k as u64;
                match ranges.last_mut() {
                    Some(l) if l.0 + l.1 == off => l.1 += (e - k) as u64,
                    _ => ranges.push((off, (e - k) as u64)),
                }
            }
        }
        pos += n as u64;
    }
    let bytes = ranges.iter().map(|r| r.1).sum();
    let json: Vec<String> = ranges
        .iter()
        .map(|(o, l)| format!("{{\"byte_offset\":{o},\"size_bytes\":{l}}}"))
        .collect();
    (format!("[{}]", json.join(",")), bytes)
}

fn debugfs_w(img: &Path, request: &str) {
    let o = Command::new("debugfs")
        .args(["-w", "-R", request])
        .arg(img)
        .output()
        .unwrap();
    assert!(o.status.success(), "debugfs {request}: {o:?}");
}

#[test]
fn block_ext4_image_round_trips_sparse_and_fsck_clean() {
    let t = TestRepo::new();
    let img = ext4_image(&t, "volume", 2 << 30, 200 * MIB);
    let original = allocated(&img);
    assert!(
        original < 400 * MIB,
        "the image should be sparse: {original} bytes allocated"
    );

    let s = block_backup(&t, &img, &[]);
    assert_eq!(s["source"], "block");
    assert_eq!(s["device_size"].as_u64().unwrap(), 2 << 30);
    assert_eq!(s["chunking"], "fixed:1048576");
    assert_eq!(s["bytes_total"].as_u64().unwrap(), 2 << 30);
    let read = s["bytes_read"].as_u64().unwrap();
    // Holes are skipped without reading: what is read is what is
    // allocated, rounded out to 1 MiB chunks (plus merged small holes).
    assert!(
        read <= original + original / 2 + 64 * MIB,
        "{read} bytes read for an image with {original} bytes allocated"
    );
    let snaps = t.snapshots();
    let meta = &snaps[0]["source_meta"];
    assert_eq!(meta["block.size"], "2147483648", "{}", snaps[0]);
    assert_eq!(meta["block.chunking"], "fixed:1048576");

    let target = t.scratch("restore").join("restored.img");
    let r = block_restore(&t, "latest", &target);
    assert_eq!(r["size"].as_u64().unwrap(), 2 << 30);
    assert_eq!(r["fresh"], true);
    assert_eq!(r["bytes_zeroed"].as_u64().unwrap(), 0);
    assert_eq!(fs::metadata(&target).unwrap().len(), 2 << 30);
    assert_same(&img, &target);
    let after = allocated(&target);
    eprintln!(
        "2 GiB image: {original} bytes allocated, {read} read by backup, {after} allocated after restore"
    );
    // Only data is written: holes and zero chunks stay holes (the slack
    // is the file system's own blocks for the file's extent tree).
    assert!(
        after <= read + (1 << 20) && after < 400 * MIB,
        "restored image takes {after} bytes on disk ({read} were read)"
    );
    fsck_clean(&target);
    fs::remove_file(&target).unwrap();

    // The same image with content-defined chunks round-trips too.
    let s = block_backup(&t, &img, &["--chunker", "cdc"]);
    assert_eq!(s["chunking"], "cdc");
    let id = s["snapshot_id"].as_str().unwrap().to_string();
    block_restore(&t, &id, &target);
    assert_same(&img, &target);
    assert!(allocated(&target) < 400 * MIB);
}

#[test]
fn block_changed_ranges_match_a_full_read() {
    let t = TestRepo::new();
    let img = ext4_image(&t, "vol", 512 * MIB, 60 * MIB);
    let chunk = ["--chunker", "fixed:1MiB"];
    let base = block_backup(&t, &img, &chunk);
    let base_id = base["snapshot_id"].as_str().unwrap().to_string();

    // Change the file system in place, as a running workload would: add
    // a file and a directory, and write raw bytes into the middle.
    let before = t.scratch("images").join("before.img");
    let o = Command::new("cp")
        .arg("--sparse=always")
        .arg(&img)
        .arg(&before)
        .output()
        .unwrap();
    assert!(o.status.success(), "cp: {o:?}");
    let new_file = t.scratch("newfile").join("new.bin");
    fs::write(&new_file, random_bytes(7, 3 * MIB as usize)).unwrap();
    debugfs_w(&img, &format!("write {} new.bin", new_file.display()));
    debugfs_w(&img, "mkdir new-dir");
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&random_bytes(8, 10_000), 300 * MIB + 123)
        .unwrap();
    drop(f);
    fsck_clean(&img);

    let (ranges, changed) = changed_ranges(&before, &img);
    assert!(changed > 3 * MIB, "{changed} bytes changed");
    let ranges_file = t.scratch("ranges").join("delta.json");
    fs::write(&ranges_file, &ranges).unwrap();

    let mut args = chunk.to_vec();
    args.extend(["--changed-ranges", ranges_file.to_str().unwrap()]);
    let inc = block_backup(&t, &img, &args);
    assert_eq!(inc["parent"].as_str().unwrap(), base_id);
    let inc_id = inc["snapshot_id"].as_str().unwrap().to_string();
    let read = inc["bytes_read"].as_u64().unwrap();
    // Only the changed chunks are read: never more than each range rounded
    // out to 1 MiB on both sides.
    let bound: u64 = serde_json::from_str::<serde_json::Value>(&ranges)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["size_bytes"].as_u64().unwrap() + 2 * MIB)
        .sum();
    assert!(
        read <= bound,
        "incremental read {read} bytes, bound {bound}"
    );
    assert!(read < 128 * MIB, "incremental read {read} bytes");

    // A full read of the same image gives the same content list.
    let full = block_backup(&t, &img, &["--chunker", "fixed:1MiB", "--force"]);
    let full_id = full["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(content_list(&t, &inc_id), content_list(&t, &full_id));
    assert_ne!(content_list(&t, &inc_id), content_list(&t, &base_id));

    // Both restore byte-identical.
    let out = t.scratch("out");
    for (name, id) in [("inc.img", &inc_id), ("full.img", &full_id)] {
        block_restore(&t, id, &out.join(name));
        assert_same(&img, &out.join(name));
    }
    fsck_clean(&out.join("inc.img"));

    // The device grew: the new tail is read with no range naming it.
    let f = fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.set_len(600 * MIB + 4096).unwrap();
    f.write_all_at(b"tail data", 600 * MIB).unwrap();
    drop(f);
    fs::write(&ranges_file, "[]").unwrap();
    let grown = block_backup(&t, &img, &args);
    assert_eq!(grown["device_size"].as_u64().unwrap(), 600 * MIB + 4096);
    assert!(grown["bytes_read"].as_u64().unwrap() <= 89 * MIB);
    let id = grown["snapshot_id"].as_str().unwrap().to_string();
    let full = block_backup(&t, &img, &["--chunker", "fixed:1MiB", "--force"]);
    assert_eq!(
        content_list(&t, &id),
        content_list(&t, full["snapshot_id"].as_str().unwrap())
    );
    block_restore(&t, &id, &out.join("grown.img"));
    assert_same(&img, &out.join("grown.img"));
}

#[test]
fn block_restore_onto_a_file_with_content_zeroes_what_must_be_zero() {
    let t = TestRepo::new();
    // 24 MiB image: data, a hole, a written zero run, data, a hole.
    let img = t.scratch("images").join("small.img");
    let f = fs::File::create(&img).unwrap();
    f.set_len(24 * MIB).unwrap();
    f.write_all_at(&random_bytes(1, 3 * MIB as usize), 0)
        .unwrap();
    f.write_all_at(&vec![0u8; 4 * MIB as usize], 8 * MIB)
        .unwrap();
    f.write_all_at(&random_bytes(2, MIB as usize + 17), 16 * MIB - 5)
        .unwrap();
    drop(f);
    let s = block_backup(&t, &img, &["--chunker", "fixed:1MiB"]);
    assert_eq!(s["device_size"].as_u64().unwrap(), 24 * MIB);

    // Targets full of 0xff: one larger than the image, one smaller.
    for (name, len) in [("big", 40 * MIB), ("small", 5 * MIB)] {
        let target = t.scratch("targets").join(name);
        fs::write(&target, vec![0xffu8; len as usize]).unwrap();
        let r = block_restore(&t, "latest", &target);
        assert_eq!(r["fresh"], false);
        assert!(r["bytes_zeroed"].as_u64().unwrap() >= 16 * MIB, "{r}");
        assert_same(&img, &target);
    }

    // A stdin snapshot is one file too, and restores the same way.
    let mut c = t.cmd();
    c.args([
        "--json",
        "backup",
        "--stdin",
        "--stdin-filename",
        "small.img",
    ]);
    let (o, _) = run_with_stdin(&mut c, fs::File::open(&img).unwrap());
    let id = o.ok("backup --stdin").summary()["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let target = t.scratch("targets").join("from-stdin");
    block_restore(&t, &id, &target);
    assert_same(&img, &target);

    // A directory snapshot is not a block snapshot.
    let dir = t.scratch("dir");
    fs::write(dir.join("a"), "a").unwrap();
    fs::write(dir.join("b"), "b").unwrap();
    let id = t.backup(&[&dir], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = t.cmd();
    c.args(["restore", "--block", &id, "--target"])
        .arg(t.scratch("targets").join("nope"));
    run(&mut c).fails(
        "restore --block of a directory",
        1,
        &["not a block snapshot"],
    );
}

#[test]
fn block_bad_changed_ranges_are_refused() {
    let t = TestRepo::new();
    let img = t.scratch("images").join("r.img");
    let f = fs::File::create(&img).unwrap();
    f.set_len(8 * MIB).unwrap();
    f.write_all_at(&random_bytes(3, MIB as usize), MIB).unwrap();
    drop(f);
    let ranges = t.scratch("ranges").join("r.json");
    let try_ranges = |json: &str, extra: &[&str], phrases: &[&str]| {
        fs::write(&ranges, json).unwrap();
        let mut c = t.cmd();
        c.args(["backup", "--block"])
            .arg(&img)
            .args(extra)
            .arg("--changed-ranges")
            .arg(&ranges);
        run(&mut c).fails(json, 1, phrases);
    };
    // No parent yet.
    try_ranges(r#"[{"offset":0,"length":4096}]"#, &[], &["need a parent"]);
    block_backup(&t, &img, &["--chunker", "fixed:1MiB"]);
    let fixed = ["--chunker", "fixed:1MiB"];
    try_ranges(r#"{"offset":0}"#, &fixed, &["changed ranges", "JSON list"]);
    try_ranges(r#"[{"offset":0,"length":0}]"#, &fixed, &["length is 0"]);
    try_ranges(
        r#"[{"offset":8388000,"length":4096}]"#,
        &fixed,
        &["past the end of the device (8388608 bytes)"],
    );
    try_ranges(
        r#"[{"offset":8192,"length":4096},{"offset":0,"length":4096}]"#,
        &fixed,
        &["sorted"],
    );
    try_ranges(
        r#"[{"offset":0,"length":8192},{"offset":4096,"length":4096}]"#,
        &fixed,
        &["overlap"],
    );
    try_ranges(r#"[]"#, &["--chunker", "cdc"], &["need fixed chunking"]);
    // The parent was cut in 1 MiB chunks; these are 4 MiB.
    try_ranges(
        r#"[{"offset":0,"length":4096}]"#,
        &["--chunker", "fixed:4MiB"],
        &["chunked fixed:1048576, this backup fixed:4194304"],
    );
    let mut c = t.cmd();
    c.args(["backup", "--block"])
        .arg(&img)
        .args(["--chunker", "fixed:1000"]);
    run(&mut c).fails("bad chunk size", 2, &["multiple of 4096"]);
    // Still exactly one snapshot: nothing was written by the refusals.
    assert_eq!(t.snapshots().len(), 1);

    // A valid empty list: nothing changed, nothing read.
    fs::write(&ranges, "[]").unwrap();
    let s = block_backup(
        &t,
        &img,
        &[
            "--chunker",
            "fixed:1MiB",
            "--changed-ranges",
            ranges.to_str().unwrap(),
        ],
    );
    assert_eq!(s["bytes_read"].as_u64().unwrap(), 0);
    let target = t.scratch("out").join("r.img");
    block_restore(&t, "latest", &target);
    assert_same(&img, &target);
    let mut buf = Vec::new();
    fs::File::open(&target)
        .unwrap()
        .read_to_end(&mut buf)
        .unwrap();
    assert_eq!(buf.len() as u64, 8 * MIB);
}
