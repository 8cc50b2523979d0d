//! `lifeboat backup --stdin` with a regular file as standard input
//! (`< image`): read by data extent with its holes skipped, where a pipe
//! (`cat image |`) is read byte by byte; both restore byte-identical.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::process::{Command, Stdio};

use common::*;

#[test]
fn stdin_regular_file_is_read_by_extent_and_a_pipe_in_full() {
    let t = TestRepo::new();
    let dir = t.scratch("img");
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("volume.img");
    let len: u64 = 256 << 20;
    let mut f = File::create(&img).unwrap();
    f.set_len(len).unwrap();
    let mut written = 0u64;
    for (i, at) in [0u64, 64 << 20, len - (2 << 20)].into_iter().enumerate() {
        f.seek(SeekFrom::Start(at)).unwrap();
        let data = random_bytes(i as u64, 2 << 20);
        f.write_all(&data).unwrap();
        written += data.len() as u64;
    }
    f.sync_all().unwrap();
    drop(f);

    let backup = |stdin: Stdio, name: &str| {
        let mut c = t.cmd();
        c.args(["--json", "backup", "--stdin", "--stdin-filename", name])
            .stdin(stdin);
        run(&mut c).ok("backup --stdin").summary()
    };
    // `< volume.img`
    let s = backup(Stdio::from(File::open(&img).unwrap()), "as-file.img");
    let read = s["bytes_read"].as_u64().unwrap();
    assert!(
        read >= written && read <= written + (16 << 20),
        "{read} bytes read for {written} bytes of data in a {len}-byte sparse file"
    );
    assert_eq!(s["bytes_total"].as_u64().unwrap(), len);

    // `cat volume.img |`
    let mut cat = Command::new("cat")
        .arg(&img)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let s = backup(Stdio::from(cat.stdout.take().unwrap()), "as-pipe.img");
    assert!(cat.wait().unwrap().success());
    assert_eq!(s["bytes_read"].as_u64().unwrap(), len);
    assert_eq!(s["bytes_total"].as_u64().unwrap(), len);

    for name in ["as-file.img", "as-pipe.img"] {
        let target = t.scratch(&format!("restore-{name}"));
        let snaps = t.snapshots();
        let snap = snaps
            .iter()
            .find(|s| s["paths"][0] == format!("/{name}"))
            .unwrap();
        t.restore(snap["id"].as_str().unwrap(), &target, &[]);
        let cmp = Command::new("cmp")
            .arg(&img)
            .arg(target.join(name))
            .output()
            .unwrap();
        assert!(cmp.status.success(), "{name} restored differs: {cmp:?}");
    }
}
