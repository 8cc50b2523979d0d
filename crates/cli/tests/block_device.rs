//! Block volumes on a real block device: an ext4 image made with
//! `mkfs.ext4 -d` from real files, attached as a loop device, backed up
//! with `backup --block /dev/loopN`, restored into a file (byte-identical,
//! `e2fsck -fn` clean) and onto a second, larger loop device full of other
//! data (which then holds the image exactly, and its tail untouched).
//! Needs root (loop devices): named `*_as_root`, which scripts/test.sh
//! leaves out when not root, and leaves out where no loop device can be
//! attached.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

const MIB: u64 = 1 << 20;

/// A loop device attached to a file; detached on drop, so that a failing
/// test leaves none behind.
struct LoopDevice {
    path: PathBuf,
}

impl LoopDevice {
    fn attach(file: &Path) -> LoopDevice {
        let o = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .expect("losetup (util-linux) is needed for the block device tests");
        assert!(
            o.status.success(),
            "losetup -f --show {}: {}",
            file.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let dev = LoopDevice {
            path: PathBuf::from(String::from_utf8(o.stdout).unwrap().trim()),
        };
        assert!(
            dev.path.to_string_lossy().starts_with("/dev/loop"),
            "losetup gave {:?}",
            dev.path
        );
        dev
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        match Command::new("losetup").arg("-d").arg(&self.path).output() {
            Ok(o) if o.status.success() => {}
            o => eprintln!("losetup -d {}: {o:?}", self.path.display()),
        }
    }
}

fn assert_same_prefix(a: &Path, b: &Path, len: u64) {
    let (mut fa, mut fb) = (fs::File::open(a).unwrap(), fs::File::open(b).unwrap());
    let what = format!(
        "the first {len} bytes of {} and {}",
        a.display(),
        b.display()
    );
    let n = assert_streams_equal((&mut fa).take(len), (&mut fb).take(len), &what);
    assert_eq!(n, len, "{what}: one is shorter");
}

#[test]
fn block_device_loop_round_trips_and_restores_over_other_data_as_root() {
    let t = TestRepo::new();
    // A 64 MiB ext4 image holding about 12 MiB of real files.
    let size = 64 * MIB;
    let src = t.scratch("src");
    copy_real_files(&src, 12 * MIB, &["/usr/share"]);
    let img = t.scratch("images").join("volume.img");
    fs::File::create(&img).unwrap().set_len(size).unwrap();
    let o = Command::new("mkfs.ext4")
        .args(["-q", "-F", "-E", "lazy_itable_init=1", "-d"])
        .arg(&src)
        .arg(&img)
        .output()
        .expect("mkfs.ext4 (Debian package e2fsprogs) is needed for this test");
    assert!(o.status.success(), "mkfs.ext4: {o:?}");
    let image_bytes = fs::read(&img).unwrap();

    let dev = LoopDevice::attach(&img);
    let mut c = t.cmd();
    c.args(["--json", "backup", "--block"]).arg(&dev.path);
    let s = run(&mut c).ok("backup --block /dev/loopN").summary();
    assert_eq!(s["source"], "block");
    assert_eq!(s["device_size"].as_u64().unwrap(), size);
    // A device is one extent: every chunk is read.
    assert_eq!(s["bytes_read"].as_u64().unwrap(), size);
    let dev_id = s["snapshot_id"].as_str().unwrap().to_string();
    let snaps = t.snapshots();
    assert_eq!(snaps[0]["paths"], serde_json::json!([dev.path]));
    assert_eq!(snaps[0]["source_meta"]["block.size"], size.to_string());

    // The image file, backed up on its own (holes skipped), gives the same
    // content list: the device was read as the bytes of the image.
    let mut c = t.cmd();
    c.args(["--json", "backup", "--block"]).arg(&img);
    let s = run(&mut c).ok("backup --block IMAGE").summary();
    let img_id = s["snapshot_id"].as_str().unwrap().to_string();
    assert_eq!(content_list(&t, &dev_id), content_list(&t, &img_id));

    // Restored into a new file: the image, byte for byte, and clean.
    let restored = t.scratch("restore").join("restored.img");
    let mut c = t.cmd();
    c.args(["--json", "restore", "--block", &dev_id, "--target"])
        .arg(&restored);
    let r = run(&mut c).ok("restore --block to a file").summary();
    assert_eq!(r["fresh"], true);
    assert_eq!(fs::read(&restored).unwrap(), image_bytes);
    fsck_clean(&restored);

    // Restored onto a second loop device, 8 MiB larger and full of random
    // bytes: the device then holds the image (its zeros included), and
    // the 8 MiB past the image are left as they were.
    let other = t.scratch("images").join("other.img");
    let noise = random_bytes(11, (size + 8 * MIB) as usize);
    fs::write(&other, &noise).unwrap();
    let target = LoopDevice::attach(&other);
    let mut c = t.cmd();
    c.args(["--json", "restore", "--block", &dev_id, "--target"])
        .arg(&target.path);
    let r = run(&mut c).ok("restore --block to /dev/loopN").summary();
    eprintln!(
        "restore onto {}: {} bytes written, {} zeroed",
        target.path.display(),
        r["bytes_written"],
        r["bytes_zeroed"]
    );
    assert_eq!(r["device"], true, "{r}");
    assert_eq!(r["fresh"], false, "{r}");
    assert!(
        r["bytes_zeroed"].as_u64().unwrap() >= size / 2,
        "the image is mostly zeros, but {r}"
    );
    assert_same_prefix(&img, &target.path, size);
    let mut tail = vec![0u8; 8 * MIB as usize];
    fs::File::open(&target.path)
        .unwrap()
        .read_exact_at(&mut tail, size)
        .unwrap();
    assert!(
        tail == noise[size as usize..],
        "the bytes past the image changed"
    );
    fsck_clean(&target.path);
    drop(target);
    // And the backing file holds what the device showed.
    assert_same_prefix(&img, &other, size);
    drop(dev);
}
