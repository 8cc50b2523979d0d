//! Round trips through the CLI: back up, restore, and compare content and
//! metadata of every entry; a 200 MiB stdin stream; deduplication of a
//! slightly changed second backup.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::{
    MixedStream, TestRepo, assert_streams_equal, bpath, compare_trees, count_files, is_root,
    random_bytes, restored_path, run, run_with_stdin, user_xattrs,
};
use filetime::FileTime;

fn as_u64(v: &serde_json::Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no number {key:?} in {v}"))
}

// ---- tree 1: a real tree ----------------------------------------------------------

/// Back up /usr/share/doc (and more system trees if it holds fewer than 2000
/// files), restore, and compare every entry.
#[test]
fn tree1_system_documentation_round_trip() {
    let mut sources: Vec<PathBuf> = Vec::new();
    let mut files = 0;
    for cand in [
        "/usr/share/doc",
        "/usr/include",
        "/usr/share/locale",
        "/usr/lib",
    ] {
        let p = Path::new(cand);
        if files >= 2000 || !p.is_dir() {
            continue;
        }
        files += count_files(p);
        sources.push(p.to_path_buf());
    }
    assert!(
        files >= 2000,
        "need a system tree of at least 2000 files, found {files} in {sources:?}"
    );

    let repo = TestRepo::new();
    let src: Vec<&Path> = sources.iter().map(PathBuf::as_path).collect();
    let summary = repo.backup(&src, &[]);
    assert_eq!(
        as_u64(&summary, "files_new"),
        files,
        "files backed up: {summary}"
    );
    assert!(
        summary["errors"].as_array().unwrap().is_empty(),
        "{summary}"
    );

    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    let mut restored_files = 0;
    for s in &sources {
        let c = compare_trees(s, &restored_path(&target, s));
        assert!(c.dirs > 1 && c.bytes > 0, "{}: {c:?}", s.display());
        restored_files += c.files;
    }
    assert_eq!(restored_files, files);
}

// ---- tree 2: every kind of entry ------------------------------------------------

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
}

fn chmod(p: &Path, mode: u32) {
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    assert_eq!(
        fs::symlink_metadata(p).unwrap().mode() & 0o7777,
        mode,
        "{}",
        p.display()
    );
}

fn symlink(target: impl AsRef<OsStr>, link: &Path) {
    fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target.as_ref(), link).unwrap();
}

/// Set an xattr; false if the filesystem does not support them.
fn set_xattr(p: &Path, name: &str, value: &[u8]) -> bool {
    match xattr::set(p, name, value) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => false,
        Err(e) => panic!("{}: setxattr {name}: {e}", p.display()),
    }
}

/// Every entry below `dir` (not following symlinks), parents first.
fn all_entries(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let p = dir.join(n);
        out.push(p.clone());
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            all_entries(&p, out);
        }
    }
}

/// What the generated tree should contain, to check that the generator (and
/// then the restore) really produced each case.
struct Built {
    xattrs: bool,
    chowned: bool,
}

/// Build a tree with every case the format has to carry.
fn build_tree(r: &Path, chown: bool) -> Built {
    // Regular files of several sizes.
    write(&r.join("files/empty"), b"");
    write(&r.join("files/one"), b"x");
    let text: Vec<u8> = (0..)
        .flat_map(|i| format!("line {i} of a compressible text file\n").into_bytes())
        .take(100 << 10)
        .collect();
    write(&r.join("files/k100"), &text);
    write(&r.join("files/m3"), &random_bytes(3, 3 << 20));
    let mut mixed = Vec::with_capacity(20 << 20);
    for i in 0..20u64 {
        if i % 3 == 1 {
            mixed.resize(mixed.len() + (1 << 20), 0);
        } else {
            mixed.extend_from_slice(&random_bytes(1000 + i, 1 << 20));
        }
    }
    write(&r.join("files/m20"), &mixed);
    drop(mixed);

    // Nesting and empty directories.
    write(
        &r.join("deep/l1/l2/l3/l4/l5/l6/l7/l8/leaf.txt"),
        b"deep leaf\n",
    );
    fs::create_dir_all(r.join("emptydir")).unwrap();
    fs::create_dir_all(r.join("emptydir2/nested-empty")).unwrap();

    // Names: not UTF-8, spaces, newline, unicode, glob characters, 255 bytes.
    write(&bpath(r, b"names/caf\xe9"), b"latin-1 file name");
    write(
        &bpath(r, b"names/dir\xff\xfe/inner\xe9.bin"),
        b"inside a non-UTF-8 directory",
    );
    write(&r.join("names/with  spaces .txt"), b"spaces");
    write(&r.join("names/new\nline"), b"newline in the name");
    write(
        &r.join("names/\u{fc}n\u{ef}c\u{f8}d\u{e9} \u{65e5}\u{672c}\u{8a9e} \u{1f680}.txt"),
        b"unicode",
    );
    write(&r.join("names/-dash"), b"dash");
    write(&r.join("names/star*[x]?.txt"), b"glob characters");
    let long = format!("{}.long", "L".repeat(250));
    assert_eq!(long.len(), 255);
    write(&r.join("names").join(&long), b"a 255-byte name");

    // Symlinks: relative, absolute, dangling, to a directory, non-UTF-8 target.
    symlink("../files/one", &r.join("links/rel"));
    symlink(r.join("files/k100"), &r.join("links/abs"));
    symlink("/usr/share", &r.join("links/abs_dir"));
    symlink("does/not/exist", &r.join("links/dangling"));
    symlink("../deep/l1", &r.join("links/to_dir"));
    symlink(
        OsStr::from_bytes(b"caf\xe9-nowhere"),
        &r.join("links/nonutf8_target"),
    );

    // Hard links: three names in different directories; a pair; and a file
    // with the same content as the pair that must stay a separate inode.
    write(&r.join("hl/a/h1"), b"three names, one inode\n");
    fs::create_dir_all(r.join("hl/b")).unwrap();
    fs::hard_link(r.join("hl/a/h1"), r.join("hl/b/h2")).unwrap();
    fs::hard_link(r.join("hl/a/h1"), r.join("h3")).unwrap();
    assert_eq!(fs::metadata(r.join("h3")).unwrap().nlink(), 3);
    write(&r.join("hl/pair1"), b"same content\n");
    fs::hard_link(r.join("hl/pair1"), r.join("hl/pair2")).unwrap();
    write(&r.join("hl/solo"), b"same content\n");

    // Special files.
    fs::create_dir_all(r.join("special")).unwrap();
    nix::unistd::mkfifo(
        &r.join("special/fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();

    // Ownership (before modes: chown clears set-id bits).
    write(&r.join("owner/file"), b"owned by 1234:5678");
    fs::create_dir_all(r.join("owner/dir")).unwrap();
    symlink("file", &r.join("owner/link"));
    write(&r.join("modes/setuid"), b"#!/bin/sh\n");
    let chowned = chown;
    if chowned {
        for p in ["owner/file", "owner/dir", "owner/link", "modes/setuid"] {
            std::os::unix::fs::lchown(r.join(p), Some(1234), Some(5678)).unwrap();
        }
        std::os::unix::fs::lchown(r.join("special/fifo"), Some(4321), Some(8765)).unwrap();
        let md = fs::symlink_metadata(r.join("owner/link")).unwrap();
        assert_eq!((md.uid(), md.gid()), (1234, 5678));
    }

    // Modes.
    chmod(&r.join("modes/setuid"), 0o4755);
    write(&r.join("modes/setgid"), b"setgid");
    chmod(&r.join("modes/setgid"), 0o2755);
    write(&r.join("modes/m600"), b"private");
    chmod(&r.join("modes/m600"), 0o600);
    write(&r.join("modes/m755"), b"#!/bin/sh\nexit 0\n");
    chmod(&r.join("modes/m755"), 0o755);
    if chowned {
        // Only root can back up (read) a file with no permissions; the
        // unreadable case for other users is in bad_input.rs.
        write(&r.join("modes/m000"), b"no permissions at all");
        chmod(&r.join("modes/m000"), 0o000);
    }
    write(&r.join("modes/sticky/inside"), b"in a sticky directory");
    chmod(&r.join("modes/sticky"), 0o1777);
    write(&r.join("modes/rodir/inside"), b"in a read-only directory");
    write(&r.join("modes/private/inside"), b"in a private directory");
    chmod(&r.join("modes/private"), 0o700);
    chmod(&r.join("special/fifo"), 0o640);

    // Extended attributes on a file and a directory.
    write(&r.join("xattr/file"), b"has xattrs");
    fs::create_dir_all(r.join("xattr/dir")).unwrap();
    let mut xattrs = set_xattr(&r.join("xattr/file"), "user.comment", b"hello, lifeboat");
    if xattrs {
        assert!(set_xattr(
            &r.join("xattr/file"),
            "user.binary",
            &[0, 1, 2, 0xff, 0xfe, 0, b'\n']
        ));
        assert!(set_xattr(
            &r.join("xattr/file"),
            "user.big",
            &random_bytes(9, 2000)
        ));
        assert!(set_xattr(&r.join("xattr/file"), "user.empty", b""));
        assert!(set_xattr(
            &r.join("xattr/dir"),
            "user.dirattr",
            b"on a directory"
        ));
        assert!(set_xattr(
            &r.join("hl/a/h1"),
            "user.linked",
            b"shared by three names"
        ));
        assert_eq!(user_xattrs(&r.join("xattr/file")).len(), 4);
    }
    xattrs &= !user_xattrs(&r.join("xattr/dir")).is_empty();

    // The read-only directory last among modes: nothing is created in it
    // after this.
    chmod(&r.join("modes/rodir"), 0o555);

    // Times with nanoseconds: everything but directories, then directories
    // deepest first, the root last.
    let mut entries = Vec::new();
    all_entries(r, &mut entries);
    let (dirs, others): (Vec<PathBuf>, Vec<PathBuf>) = entries
        .into_iter()
        .partition(|p| fs::symlink_metadata(p).unwrap().is_dir());
    let time = |i: usize| {
        let i = i as i64;
        FileTime::from_unix_time(
            1_234_567_890 + i * 3_601,
            ((i * 987_654_321 + 123_456_789) % 1_000_000_000) as u32,
        )
    };
    for (i, p) in others.iter().enumerate() {
        filetime::set_symlink_file_times(p, time(i + 7), time(i)).unwrap();
    }
    // Before 1970 and far in the future.
    filetime::set_symlink_file_times(
        r.join("files/one"),
        FileTime::from_unix_time(0, 0),
        FileTime::from_unix_time(-123_456_789, 987_654_321),
    )
    .unwrap();
    filetime::set_symlink_file_times(
        r.join("files/empty"),
        FileTime::from_unix_time(0, 0),
        FileTime::from_unix_time(4_102_444_800, 999_999_999),
    )
    .unwrap();
    let mut dirs = dirs;
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    dirs.push(r.to_path_buf());
    for (i, p) in dirs.iter().enumerate() {
        filetime::set_symlink_file_times(p, time(i + 1000), time(i + 500)).unwrap();
    }
    let md = fs::symlink_metadata(r.join("links/dangling")).unwrap();
    assert!(
        md.mtime_nsec() != 0 || md.mtime() != 0,
        "symlink time was not set"
    );
    Built { xattrs, chowned }
}

/// A generated tree with every kind of entry and metadata round-trips
/// exactly.
#[test]
fn tree2_every_case_round_trip() {
    tree2_round_trip(false);
}

/// The same with files owned by other users, which only root can make.
#[test]
fn tree2_every_case_round_trip_with_owners_as_root() {
    assert!(
        is_root(),
        "needs root to chown (scripts/test.sh leaves *_as_root out when not root)"
    );
    tree2_round_trip(true);
}

fn tree2_round_trip(chown: bool) {
    let repo = TestRepo::new();
    let src = repo.scratch("source");
    let built = build_tree(&src, chown);

    let summary = repo.backup(&[&src], &[]);
    assert!(
        summary["errors"].as_array().unwrap().is_empty(),
        "{summary}"
    );
    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    let dst = restored_path(&target, &src);

    let c = compare_trees(&src, &dst);
    // 3 names for h1 (2 extra), pair2: 3 entries that are links of earlier ones.
    assert_eq!(c.hard_links, 3, "{c:?}");
    assert_eq!(c.symlinks, 7, "{c:?}");
    assert_eq!(c.others, 1, "{c:?}");
    assert_eq!(fs::metadata(dst.join("hl/b/h2")).unwrap().nlink(), 3);
    assert_ne!(
        fs::metadata(dst.join("hl/pair1")).unwrap().ino(),
        fs::metadata(dst.join("hl/solo")).unwrap().ino()
    );
    let m = fs::symlink_metadata(dst.join("files/one")).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (-123_456_789, 987_654_321));
    assert_eq!(
        fs::metadata(dst.join("modes/setuid")).unwrap().mode() & 0o7777,
        0o4755
    );
    assert_eq!(fs::metadata(dst.join("files/m20")).unwrap().len(), 20 << 20);
    if built.chowned {
        let m = fs::symlink_metadata(dst.join("owner/link")).unwrap();
        assert_eq!((m.uid(), m.gid()), (1234, 5678));
    }
    if built.xattrs {
        assert_eq!(user_xattrs(&dst.join("xattr/file")).len(), 4);
        assert_eq!(
            xattr::get(dst.join("xattr/dir"), "user.dirattr")
                .unwrap()
                .as_deref(),
            Some(&b"on a directory"[..])
        );
    }
}

// ---- tree 3: a large stdin stream --------------------------------------------------

/// 200 MiB (and a bit) from stdin: restore and dump give it back byte-exact.
#[test]
fn tree3_stdin_stream_round_trip() {
    const LEN: u64 = (200 << 20) + 12_345;
    const SEED: u64 = 0x5eed_11fe_b0a7;
    let repo = TestRepo::new();

    let mut cmd = repo.cmd();
    cmd.args([
        "--json",
        "backup",
        "--stdin",
        "--stdin-filename",
        "stream.bin",
    ]);
    let (out, written) = run_with_stdin(&mut cmd, MixedStream::new(SEED, LEN));
    let out = out.ok("backup --stdin");
    assert_eq!(written, LEN);
    let s = out.summary();
    assert_eq!(as_u64(&s, "bytes_read"), LEN, "{s}");
    assert_eq!(as_u64(&s, "files_new"), 1, "{s}");
    // About 30% of the blocks are zeros and are not stored.
    assert!(as_u64(&s, "bytes_stored") < LEN, "{s}");
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0]["source"], "stdin");

    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    let restored = target.join("stream.bin");
    assert_eq!(fs::metadata(&restored).unwrap().len(), LEN);
    let n = assert_streams_equal(
        fs::File::open(&restored).unwrap(),
        MixedStream::new(SEED, LEN),
        "restored stream",
    );
    assert_eq!(n, LEN);
    fs::remove_file(&restored).unwrap();

    // dump: compare standard output as it arrives.
    let mut child = repo
        .cmd()
        .args(["dump", "latest", "stream.bin"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut s).unwrap();
        s
    });
    let stdout = child.stdout.take().unwrap();
    let n = assert_streams_equal(stdout, MixedStream::new(SEED, LEN), "dump output");
    let status = child.wait().unwrap();
    let err = err_reader.join().unwrap();
    assert!(status.success(), "dump failed: {status}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(n, LEN);
}

// ---- deduplication ---------------------------------------------------------------

/// A second backup of slightly changed data stores only the new chunks.
#[test]
fn dedup_second_backup_adds_only_changed_chunks() {
    // 128 MiB rather than 64: what a change adds is a few whole chunks (about
    // 1 MiB each, up to 8 MiB, boundaries depend on the repository's random
    // chunker seed); with 64 MiB, 10% was exceeded now and then (8.6% seen).
    const FILE: usize = 16 << 20;
    const FILES: u64 = 8;
    let repo = TestRepo::new();
    let src = repo.scratch("data");
    for i in 0..FILES {
        write(&src.join(format!("f{i}.bin")), &random_bytes(100 + i, FILE));
    }
    let total = FILES * FILE as u64;

    let s1 = repo.backup(&[&src], &[]);
    let (read1, added1) = (as_u64(&s1, "bytes_read"), as_u64(&s1, "bytes_added"));
    assert_eq!(read1, total, "{s1}");
    // Random data: everything is new (plus a few small tree blobs).
    assert!(
        added1 >= total && added1 < total + (64 << 10),
        "first backup added {added1} of {total}: {s1}"
    );

    // Change 4 KiB in the middle of one file, append 8 KiB to another.
    let f = fs::OpenOptions::new()
        .write(true)
        .open(src.join("f1.bin"))
        .unwrap();
    f.write_all_at(&random_bytes(7, 4096), (FILE / 2) as u64)
        .unwrap();
    drop(f);
    let mut f = fs::OpenOptions::new()
        .append(true)
        .open(src.join("f2.bin"))
        .unwrap();
    f.write_all(&random_bytes(8, 8192)).unwrap();
    drop(f);

    let s2 = repo.backup(&[&src], &[]);
    let (read2, added2) = (as_u64(&s2, "bytes_read"), as_u64(&s2, "bytes_added"));
    eprintln!(
        "second backup: read {read2}, added {added2} ({:.2}%)",
        added2 as f64 * 100.0 / read2 as f64
    );
    assert!(added2 > 0, "the changes were not stored: {s2}");
    // The parent snapshot tells which files are unchanged: only the two
    // changed ones are read.
    assert_eq!(as_u64(&s2, "files_unchanged"), FILES - 2, "{s2}");
    assert_eq!(as_u64(&s2, "files_changed"), 2, "{s2}");
    assert_eq!(read2, 2 * FILE as u64 + 8192, "{s2}");
    // No bound against bytes read here: only the two changed files are read,
    // and the whole chunks around the edits (up to 8 MiB each, placed by the
    // repository's random seed) can be a sizeable share of them. The bound
    // that matters is against the total, below.

    // --force reads everything again, and dedup still stores (almost) nothing.
    let s3 = repo.backup(&[&src], &["--force"]);
    let (read3, added3) = (as_u64(&s3, "bytes_read"), as_u64(&s3, "bytes_added"));
    assert_eq!(as_u64(&s3, "files_unchanged"), 0, "{s3}");
    assert_eq!(read3, total + 8192, "{s3}");
    assert!(
        added3 < 64 << 10,
        "a forced re-read of unchanged data added {added3}: {s3}"
    );
    assert!(
        added2 * 10 < total,
        "second backup added {added2}, total {total}: {s2}"
    );

    // The second snapshot restores to the changed data.
    let id = s2["snapshot_id"].as_str().unwrap().to_string();
    let target = repo.scratch("restore");
    repo.restore(&id, &target, &[]);
    let c = compare_trees(&src, &restored_path(&target, &src));
    assert_eq!(c.files, FILES);
    assert_eq!(c.bytes, total + 8192);

    // And the first snapshot still restores to the original data.
    let first = s1["snapshot_id"].as_str().unwrap().to_string();
    let target1 = repo.scratch("restore1");
    let o = run(repo
        .cmd()
        .args(["restore", &first, "--target"])
        .arg(&target1)
        .args(["--include", "f1.bin"]));
    let o = o.ok("restore first snapshot");
    drop(o);
    let f1 = restored_path(&target1, &src.join("f1.bin"));
    assert_eq!(fs::read(&f1).unwrap(), random_bytes(101, FILE));
    assert!(!restored_path(&target1, &src.join("f0.bin")).exists());
}

// ---- the checker itself ----------------------------------------------------------

/// `compare_trees` is not vacuous: each kind of difference in a restored
/// tree makes it fail.
#[test]
fn compare_trees_catches_each_kind_of_difference() {
    compare_trees_catches(false);
}

/// The same, with an owner difference among them (only root can chown).
#[test]
fn compare_trees_catches_an_owner_difference_as_root() {
    assert!(
        is_root(),
        "needs root to chown (scripts/test.sh leaves *_as_root out when not root)"
    );
    compare_trees_catches(true);
}

fn compare_trees_catches(owner: bool) {
    let repo = TestRepo::new();
    let src = repo.scratch("source");
    write(&src.join("dir/file"), b"content");
    write(&src.join("dir/other"), b"other");
    symlink("file", &src.join("dir/link"));
    write(&src.join("pair1"), b"same");
    fs::hard_link(src.join("pair1"), src.join("pair2")).unwrap();
    write(&src.join("solo"), b"same");
    let xattrs = set_xattr(&src.join("dir/file"), "user.x", b"1");
    for p in [
        "dir/file",
        "dir/other",
        "dir/link",
        "pair1",
        "solo",
        "dir",
        "",
    ] {
        let t = FileTime::from_unix_time(1_500_000_000, 123_456_789);
        filetime::set_symlink_file_times(src.join(p), t, t).unwrap();
    }
    repo.backup(&[&src], &[]);

    let t = |sec: i64, nsec: u32| FileTime::from_unix_time(sec, nsec);
    let keep = move |d: &Path, p: &str| {
        filetime::set_symlink_file_times(d.join(p), t(0, 0), t(1_500_000_000, 123_456_789))
            .unwrap();
    };
    type Mutation = Box<dyn Fn(&Path)>;
    // (what, phrase the failure must contain, mutation)
    let mut mutations: Vec<(&str, &str, Mutation)> = vec![
        (
            "content",
            "content differs",
            Box::new(move |d: &Path| {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(d.join("dir/file"))
                    .unwrap();
                f.write_all_at(b"C", 0).unwrap();
                keep(d, "dir/file");
            }),
        ),
        (
            "file mtime nanoseconds",
            "mtime",
            Box::new(move |d: &Path| {
                filetime::set_symlink_file_times(
                    d.join("dir/file"),
                    t(0, 0),
                    t(1_500_000_000, 123_456_788),
                )
                .unwrap();
            }),
        ),
        (
            "dir mtime",
            "mtime",
            Box::new(move |d: &Path| {
                filetime::set_symlink_file_times(
                    d.join("dir"),
                    t(0, 0),
                    t(1_500_000_001, 123_456_789),
                )
                .unwrap();
            }),
        ),
        (
            "symlink mtime",
            "mtime",
            Box::new(move |d: &Path| {
                filetime::set_symlink_file_times(d.join("dir/link"), t(0, 0), t(1_400_000_000, 0))
                    .unwrap();
            }),
        ),
        (
            "mode",
            "permission bits",
            Box::new(|d: &Path| chmod(&d.join("dir/other"), 0o640)),
        ),
        (
            "symlink target",
            "symlink target",
            Box::new(move |d: &Path| {
                fs::remove_file(d.join("dir/link")).unwrap();
                std::os::unix::fs::symlink("other", d.join("dir/link")).unwrap();
                keep(d, "dir/link");
                keep(d, "dir");
            }),
        ),
        (
            "hard link broken",
            "hard link to an earlier entry",
            Box::new(move |d: &Path| {
                fs::remove_file(d.join("pair2")).unwrap();
                fs::copy(d.join("pair1"), d.join("pair2")).unwrap();
                keep(d, "pair2");
                keep(d, "");
            }),
        ),
        (
            "distinct inodes merged",
            "hard link of an unrelated file",
            Box::new(move |d: &Path| {
                fs::remove_file(d.join("solo")).unwrap();
                fs::hard_link(d.join("pair1"), d.join("solo")).unwrap();
                keep(d, "");
            }),
        ),
        (
            "extra entry",
            "directory entries differ",
            Box::new(move |d: &Path| {
                write(&d.join("dir/extra"), b"");
                keep(d, "dir");
            }),
        ),
    ];
    if owner {
        mutations.push((
            "owner",
            "uid/gid",
            Box::new(|d: &Path| {
                std::os::unix::fs::lchown(d.join("dir/link"), Some(1), Some(1)).unwrap()
            }),
        ));
    }
    if xattrs {
        mutations.push((
            "xattr",
            "xattrs",
            Box::new(|d: &Path| assert!(set_xattr(&d.join("dir/file"), "user.x", b"2"))),
        ));
    }
    for (i, (what, phrase, mutate)) in mutations.iter().enumerate() {
        let target = repo.scratch(&format!("restore{i}"));
        repo.restore("latest", &target, &[]);
        let dst = restored_path(&target, &src);
        compare_trees(&src, &dst);
        mutate(&dst);
        let caught = std::panic::catch_unwind(|| compare_trees(&src, &dst));
        let payload = caught.expect_err(&format!("compare_trees missed a difference in {what}"));
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        assert!(
            msg.contains(phrase),
            "{what}: compare_trees failed for another reason: {msg}"
        );
    }
}

// ---- ownership under a set-group-id target ------------------------------------------

/// Restore skips chown for files that get their recorded owner by being
/// created; under a set-group-id directory a new file takes the
/// directory's group instead, so ownership must still be set. Root only.
#[test]
fn ownership_is_restored_under_a_setgid_target_as_root() {
    assert!(
        is_root(),
        "needs root to chown (scripts/test.sh leaves *_as_root out when not root)"
    );
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    write(&src.join("top.txt"), b"top\n");
    write(&src.join("sub/inner.txt"), b"inner\n");
    write(&src.join("other/theirs.txt"), b"theirs\n");
    std::os::unix::fs::lchown(src.join("other/theirs.txt"), Some(1234), Some(5678)).unwrap();
    let me = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    repo.backup(&[src.as_path()], &[]);

    // 1. The target itself is set-group-id, owned by another group.
    let target = repo.scratch("setgid-target");
    fs::create_dir_all(&target).unwrap();
    std::os::unix::fs::chown(&target, None, Some(4242)).unwrap();
    chmod(&target, 0o2775);
    repo.restore("latest", &target, &[]);
    let base = restored_path(&target, &src);
    // 2. A directory already there is set-group-id (the target is not).
    let target2 = repo.scratch("setgid-subdir");
    let sub2 = restored_path(&target2, &src).join("sub");
    fs::create_dir_all(&sub2).unwrap();
    std::os::unix::fs::chown(&sub2, None, Some(4242)).unwrap();
    chmod(&sub2, 0o2775);
    repo.restore("latest", &target2, &[]);
    let base2 = restored_path(&target2, &src);

    for (p, want) in [
        (base.join("top.txt"), me),
        (base.join("sub/inner.txt"), me),
        (base.join("other/theirs.txt"), (1234, 5678)),
        (base2.join("sub/inner.txt"), me),
        (base2.join("top.txt"), me),
    ] {
        let md = fs::symlink_metadata(&p).unwrap();
        assert_eq!((md.uid(), md.gid()), want, "{}", p.display());
    }
    assert_eq!(fs::read(base2.join("sub/inner.txt")).unwrap(), b"inner\n");
}
