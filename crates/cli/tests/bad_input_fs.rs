//! Bad input from the file system (issue 18), each with an asserted message
//! and exit code, through the real binary: a file changing while it is
//! read; a full disk on restore and under a local repository during a
//! backup (a small tmpfs); a repository on a read-only file system; a
//! repository the user may not write. Unreadable source files and missing
//! paths are in `bad_input.rs`.
//!
//! Tests named `*_as_root` mount tmpfs file systems or drop privileges, so
//! they need root (scripts/test.sh leaves them out otherwise); they assert
//! that they run as root rather than skip.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{
    PASSWORD, TestRepo, bin, clean_env, compare_trees, is_root, random_bytes, restored_path, run,
};
use lifeboat_format::layout::Folder;

/// A tmpfs mounted for a test, unmounted (lazily) when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        assert!(
            is_root(),
            "mounting a tmpfs needs root (scripts/test.sh leaves *_as_root out when not root)"
        );
        fs::create_dir_all(at).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .unwrap();
        assert!(st.success(), "mount -t tmpfs at {}: {st}", at.display());
        Tmpfs(at.to_path_buf())
    }

    fn remount(&self, opts: &str) {
        let st = Command::new("mount")
            .args(["-o", &format!("remount,{opts}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(st.success(), "mount -o remount,{opts}: {st}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A repository at `path` (not yet there), initialised.
fn repo_at(tmp: tempfile::TempDir, path: PathBuf) -> TestRepo {
    let r = TestRepo {
        tmp,
        path,
        password: PASSWORD.to_string(),
    };
    r.run(["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
        .ok("init");
    r
}

fn small_tree(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..10u64 {
        fs::write(dir.join(format!("sub/f{i}")), random_bytes(i, 10_000)).unwrap();
    }
}

/// Files under `dir`, relative, with their sizes.
fn files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path().strip_prefix(dir).unwrap().to_path_buf(), md.len()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_file_changing_while_it_is_read_is_recorded_in_the_snapshot() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    small_tree(&src);
    let busy = src.join("busy.db");
    let len = 24u64 << 20;
    fs::write(&busy, random_bytes(7, len as usize)).unwrap();

    // A writer that keeps changing the file, in place, for the whole backup.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, busy) = (stop.clone(), busy.clone());
        std::thread::spawn(move || {
            let f = fs::OpenOptions::new().write(true).open(&busy).unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                f.write_at(&n.to_le_bytes(), (n * 4099) % (len - 8))
                    .unwrap();
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
            n
        })
    };
    let o = run(repo.cmd().arg("--json").arg("backup").arg(&src));
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 10, "the writer wrote {writes} times");
    let o = o.fails(
        "backup of a file changing while read",
        3,
        &["busy.db", "changed while read"],
    );
    let summary = o.summary();
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert!(
        errors[0]["path"].as_str().unwrap().ends_with("busy.db")
            && errors[0]["message"]
                .as_str()
                .unwrap()
                .contains("changed while read"),
        "{summary}"
    );
    // The snapshot records it, and holds the file (as read) and the rest.
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    let incomplete = snaps[0]["incomplete"].as_array().unwrap();
    assert!(
        incomplete.len() == 1 && incomplete[0].as_str().unwrap().contains("busy.db"),
        "{}",
        snaps[0]
    );
    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    let dst = restored_path(&target, &src);
    assert_eq!(fs::metadata(dst.join("busy.db")).unwrap().len(), len);
    for i in 0..10 {
        let f = format!("sub/f{i}");
        assert_eq!(
            fs::read(dst.join(&f)).unwrap(),
            fs::read(src.join(&f)).unwrap()
        );
    }

    // Once it is quiet, the next backup reads it again and is complete.
    let summary = repo.backup(&[&src], &[]);
    assert_eq!(summary["errors"].as_array().unwrap().len(), 0, "{summary}");
    let target = repo.scratch("restore-quiet");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &restored_path(&target, &src));
}

#[test]
fn a_full_disk_on_restore_fails_clearly_and_leaves_no_short_file_as_root() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    small_tree(&src);
    fs::write(src.join("big"), random_bytes(3, 6 << 20)).unwrap();
    repo.backup(&[&src], &[]);

    let target = repo.tmp.path().join("small-disk");
    let disk = Tmpfs::mount(&target, "2m");
    let o = run(repo
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&target));
    let o = o.fails("restore onto a full disk", 1, &["No space left on device"]);
    assert!(
        o.stderr.contains("big"),
        "the file is not named:\n{}",
        o.stderr
    );
    // What is there under a final name is whole: no short `big`.
    let dst = restored_path(&target, &src);
    for (rel, size) in files(&dst) {
        assert_eq!(
            size,
            fs::metadata(src.join(&rel))
                .map(|m| m.len())
                .unwrap_or(u64::MAX),
            "{} restored short, or is not a source file",
            rel.display()
        );
    }

    // With room, the same restore completes.
    disk.remount("size=64m");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &dst);
}

#[test]
fn a_full_disk_under_a_local_repository_loses_nothing_committed_as_root() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "6m");
    let repo = repo_at(tmp, disk.0.join("repo"));
    let src = repo.scratch("src");
    small_tree(&src);
    let first = repo.backup(&[&src], &[]);
    let first_id = first["snapshot_id"].as_str().unwrap().to_string();
    let v1 = repo.scratch("v1");
    common::copy_dir(&src, &v1);

    fs::write(src.join("big"), random_bytes(4, 12 << 20)).unwrap();
    let o = run(repo.cmd().arg("backup").arg(&src));
    o.fails(
        "backup into a full repository",
        1,
        &["No space left on device"],
    );
    assert_eq!(repo.snapshots().len(), 1, "a snapshot appeared");
    // What was committed is all there.
    repo.run(["check", "--read-data"])
        .ok("check on the full disk");
    let target = repo.scratch("restore-1");
    repo.restore(&first_id, &target, &[]);
    for (rel, _) in files(&v1) {
        assert_eq!(
            fs::read(restored_path(&target, &src).join(&rel)).unwrap(),
            fs::read(v1.join(&rel)).unwrap()
        );
    }

    // Space is back: the next backup works, and everything restores.
    disk.remount("size=64m");
    repo.backup(&[&src], &[]);
    repo.run(["check", "--read-data"]).ok("check after");
    let target = repo.scratch("restore-2");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &restored_path(&target, &src));
}

#[test]
fn a_repository_on_a_read_only_file_system_as_root() {
    let tmp = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&tmp.path().join("disk"), "64m");
    let repo = repo_at(tmp, disk.0.join("repo"));
    let src = repo.scratch("src");
    small_tree(&src);
    repo.backup(&[&src], &[]);
    disk.remount("ro");

    // Reading works.
    assert_eq!(repo.snapshots().len(), 1);
    repo.run(["check", "--read-data"]).ok("check, read-only");
    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    compare_trees(&src, &restored_path(&target, &src));

    // Writing fails, saying why.
    fs::write(src.join("new"), b"new file").unwrap();
    let o = run(repo.cmd().arg("backup").arg(&src));
    o.fails("backup, read-only", 1, &["Read-only file system"]);
    repo.run(["forget", "latest"])
        .fails("forget, read-only", 1, &["Read-only file system"]);
    disk.remount("rw");
    assert_eq!(repo.snapshots().len(), 1, "something was forgotten");
    repo.backup(&[&src], &[]);
    assert_eq!(repo.snapshots().len(), 2);
}

#[test]
fn a_repository_the_user_may_not_write_as_root() {
    assert!(is_root(), "needs root to drop privileges with setpriv");
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    small_tree(&src);
    repo.backup(&[&src], &[]);
    // nobody may read everything (the source, the repository) and write
    // only its cache.
    for d in [repo.tmp.path().to_path_buf(), src.clone(), src.join("sub")] {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut stack = vec![repo.path.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let mode = if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                0o755
            } else {
                0o644
            };
            fs::set_permissions(e.path(), fs::Permissions::from_mode(mode)).unwrap();
        }
    }
    fs::set_permissions(&repo.path, fs::Permissions::from_mode(0o755)).unwrap();
    let cache = repo.scratch("nobody-cache");
    fs::set_permissions(&cache, fs::Permissions::from_mode(0o777)).unwrap();
    let as_nobody = |args: &[&str]| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        clean_env(&mut c);
        c.env("LIFEBOAT_REPOSITORY", &repo.path)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("LIFEBOAT_CACHE_DIR", &cache)
            .args(args);
        run(&mut c)
    };
    // Reading is allowed.
    as_nobody(&["snapshots"]).ok("snapshots as nobody");
    fs::write(src.join("new"), b"new").unwrap();
    fs::set_permissions(src.join("new"), fs::Permissions::from_mode(0o644)).unwrap();
    let o = as_nobody(&["backup", src.to_str().unwrap()]);
    o.fails("backup as nobody", 1, &["Permission denied"]);
    assert_eq!(repo.snapshots().len(), 1);
    assert!(repo.objects(Folder::Snapshots).len() == 1);
}

/// A backup looks each entry up relative to its open directory, but holds
/// only so many directories open (an eighth of the limit on open files):
/// a tree deeper than that, backed up under a limit of 64 open files, is
/// read whole, past the cap by path. Without the cap, 300 levels of open
/// directories ran out of descriptors and left the deep part out.
#[test]
fn a_tree_deeper_than_the_open_file_limit_is_backed_up_whole() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    let mut dir = src.clone();
    for level in 0..300 {
        dir = dir.join("d");
        fs::create_dir(&dir).unwrap();
        if level % 50 == 0 {
            fs::write(dir.join(format!("f{level}")), format!("level {level}\n")).unwrap();
        }
    }
    fs::write(dir.join("leaf"), b"the deepest file").unwrap();

    let lifeboat = repo.cmd();
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(lifeboat.get_program())
        .args(["--json", "backup"])
        .arg(&src)
        .stdin(std::process::Stdio::null());
    for (k, v) in lifeboat.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let o = run(&mut c).ok("backup of a 300-level tree with 64 open files allowed");
    let summary = o.summary();
    assert_eq!(summary["files_new"].as_u64(), Some(7), "{summary}");
    assert_eq!(
        summary["errors"].as_array().map(Vec::len),
        Some(0),
        "{summary}"
    );

    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    let counts = compare_trees(&src, &restored_path(&target, &src));
    assert_eq!((counts.files, counts.dirs), (7, 301));
}
