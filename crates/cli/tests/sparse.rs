//! Sparse data: a raw 2 GiB ext4 image, mostly holes, goes in without its
//! holes being read and comes back byte-identical, taking about the disk
//! space the original did.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::*;

fn allocated(p: &std::path::Path) -> u64 {
    std::fs::metadata(p).unwrap().blocks() * 512
}

#[test]
fn sparse_ext4_image_round_trip_keeps_its_holes() {
    let t = TestRepo::new();
    // Some content for the file system: random and text files.
    let content = t.scratch("content");
    std::fs::create_dir_all(content.join("data")).unwrap();
    for i in 0..6u64 {
        std::fs::write(
            content.join(format!("data/blob-{i}")),
            random_bytes(i, 2 << 20),
        )
        .unwrap();
    }
    std::fs::write(content.join("notes.txt"), "lifeboat ".repeat(200_000)).unwrap();

    let img_dir = t.scratch("img");
    std::fs::create_dir_all(&img_dir).unwrap();
    let img = img_dir.join("volume.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let o = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-d"])
        .arg(&content)
        .arg(&img)
        .output()
        .expect("mkfs.ext4 (Debian package e2fsprogs) is needed for this test");
    assert!(o.status.success(), "mkfs.ext4: {o:?}");
    let original = allocated(&img);
    assert!(
        original < 256 << 20,
        "the image should be sparse: {original} bytes allocated"
    );

    let summary = t.backup(&[&img], &[]);
    let read = summary["bytes_read"].as_u64().unwrap();
    assert_eq!(summary["bytes_total"].as_u64().unwrap(), 2 << 30);
    // Holes found with SEEK_DATA/SEEK_HOLE are not read.
    assert!(
        read <= original + (64 << 20),
        "{read} bytes read for an image with {original} bytes allocated"
    );

    let target = t.scratch("restore");
    t.restore("latest", &target, &[]);
    let restored = restored_path(&target, &img);
    assert_eq!(std::fs::metadata(&restored).unwrap().len(), 2 << 30);
    let cmp = Command::new("cmp")
        .arg(&img)
        .arg(&restored)
        .output()
        .unwrap();
    assert!(cmp.status.success(), "restored image differs: {cmp:?}");
    let after = allocated(&restored);
    eprintln!(
        "image 2 GiB: {original} bytes allocated, {read} bytes read by backup, {after} bytes allocated after restore"
    );
    assert!(
        after <= original + original / 10 + (4 << 20),
        "restored image takes {after} bytes on disk, the original {original}"
    );

    // `dump` streams the same bytes, holes as zeros; compared as a stream,
    // so the test does not need 2 GiB of free disk for a copy.
    let mut c = t.cmd();
    c.args(["dump", "latest"])
        .arg(&img)
        .stdout(std::process::Stdio::piped());
    let mut dump = c.spawn().unwrap();
    let stream = dump.stdout.take().unwrap();
    let cmp = Command::new("cmp")
        .arg(&img)
        .arg("-")
        .stdin(std::process::Stdio::from(stream))
        .output()
        .unwrap();
    assert!(dump.wait().unwrap().success(), "dump failed");
    assert!(cmp.status.success(), "dumped image differs: {cmp:?}");
}
