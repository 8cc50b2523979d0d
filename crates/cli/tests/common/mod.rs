//! Shared helpers for the CLI integration tests: a repository in a temporary
//! directory with cheap key derivation, running the binary, a deterministic
//! PRNG and stream generator, and a recursive comparison of two file trees.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod etcd;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lifeboat_format::layout::Folder;
use tempfile::TempDir;

/// The password of test repositories; distinctive, so a leak is easy to spot.
pub const PASSWORD: &str = "lb-test-pw-7Qx9zK2m-do-not-print";

/// Environment variables the binary reads; removed from every child so the
/// tests do not depend on the caller's environment.
const LIFEBOAT_VARS: &[&str] = &[
    "LIFEBOAT_REPOSITORY",
    "LIFEBOAT_PASSWORD",
    "LIFEBOAT_PASSWORD_FILE",
    "LIFEBOAT_PASSWORD_COMMAND",
    "LIFEBOAT_NEW_PASSWORD",
    "LIFEBOAT_NEW_PASSWORD_FILE",
];

/// Path of the `lifeboat` binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lifeboat")
}

/// Remove the LIFEBOAT_* variables from `c`'s environment and close its stdin.
pub fn clean_env(c: &mut Command) -> &mut Command {
    for v in LIFEBOAT_VARS {
        c.env_remove(v);
    }
    c.stdin(Stdio::null())
}

/// A `lifeboat` command with no LIFEBOAT_* variables and stdin closed.
pub fn base_cmd() -> Command {
    let mut c = Command::new(bin());
    clean_env(&mut c);
    c
}

/// The outcome of one run of the binary.
#[derive(Debug)]
pub struct Output {
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: Vec<u8>,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// Standard output as (lossy) text.
    pub fn out(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// Assert success; `what` names the command in the failure message.
    pub fn ok(self, what: &str) -> Output {
        assert_eq!(
            self.code,
            0,
            "{what}: exit code {} (want 0)\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.out(),
            self.stderr
        );
        self
    }

    /// Assert a failure with exit code `code` whose stderr contains every
    /// one of `phrases`.
    pub fn fails(self, what: &str, code: i32, phrases: &[&str]) -> Output {
        assert_eq!(
            self.code,
            code,
            "{what}: exit code {} (want {code})\nstdout:\n{}\nstderr:\n{}",
            self.code,
            self.out(),
            self.stderr
        );
        for p in phrases {
            assert!(
                self.stderr.contains(p),
                "{what}: stderr lacks {p:?}:\n{}",
                self.stderr
            );
        }
        self
    }

    /// Standard output parsed as one JSON value.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.out()))
    }

    /// Standard output parsed as JSON lines (every non-empty line).
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.out()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("line is not JSON ({e}): {l:?}"))
            })
            .collect()
    }

    /// The backup summary (the JSON line with "message_type":"summary").
    pub fn summary(&self) -> serde_json::Value {
        self.json_lines()
            .into_iter()
            .rfind(|v| v["message_type"] == "summary")
            .unwrap_or_else(|| panic!("no summary line in:\n{}", self.out()))
    }
}

/// Run `cmd` to completion, capturing its output. Fails the test if the
/// program panicked.
pub fn run(cmd: &mut Command) -> Output {
    let o = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let out = Output {
        code: o.status.code().unwrap_or(-1),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(
        !out.stderr.contains("panicked") && out.code != 101,
        "{cmd:?} panicked (code {}):\n{}",
        out.code,
        out.stderr
    );
    out
}

/// A repository in its own temporary directory.
pub struct TestRepo {
    /// Holds the directory; removed on drop.
    pub tmp: TempDir,
    /// The repository directory (inside `tmp`).
    pub path: PathBuf,
    /// Its password.
    pub password: String,
}

impl TestRepo {
    /// A new repository with [`PASSWORD`] and cheap key derivation.
    pub fn new() -> TestRepo {
        TestRepo::with_password(PASSWORD)
    }

    /// A new repository with `password` and cheap key derivation.
    pub fn with_password(password: &str) -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        let r = TestRepo {
            tmp,
            path,
            password: password.to_string(),
        };
        let o = r
            .run(["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
            .ok("init");
        assert!(
            !o.out().contains(password) && !o.stderr.contains(password),
            "init printed the password"
        );
        assert!(
            r.path.join(lifeboat_format::layout::CONFIG).is_file(),
            "init wrote no config"
        );
        r
    }

    /// A scratch directory inside the repository's temporary directory.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// A command for this repository: LIFEBOAT_REPOSITORY and
    /// LIFEBOAT_PASSWORD set.
    pub fn cmd(&self) -> Command {
        let mut c = base_cmd();
        c.env("LIFEBOAT_REPOSITORY", &self.path)
            .env("LIFEBOAT_PASSWORD", &self.password)
            .env("XDG_CACHE_HOME", self.tmp.path().join("cache"));
        c
    }

    /// Run with `args`.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.cmd().args(args))
    }

    /// Run with `args` and password `pw` instead of the repository's.
    pub fn run_pw<I, S>(&self, pw: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.cmd().env("LIFEBOAT_PASSWORD", pw).args(args))
    }

    /// `backup --json <extra...> <paths...>`, asserting success; returns the
    /// summary line.
    pub fn backup(&self, paths: &[&Path], extra: &[&str]) -> serde_json::Value {
        let mut c = self.cmd();
        c.arg("--json").arg("backup").args(extra).args(paths);
        let o = run(&mut c).ok("backup");
        o.summary()
    }

    /// `restore <snapshot> --target <target>`, asserting success.
    pub fn restore(&self, snapshot: &str, target: &Path, extra: &[&str]) -> Output {
        let mut c = self.cmd();
        c.args(["restore", snapshot, "--target"])
            .arg(target)
            .args(extra);
        run(&mut c).ok("restore")
    }

    /// All snapshots (`snapshots --json`).
    pub fn snapshots(&self) -> Vec<serde_json::Value> {
        let o = self.run(["--json", "snapshots"]).ok("snapshots");
        o.json()
            .as_array()
            .cloned()
            .unwrap_or_else(|| panic!("not an array: {}", o.out()))
    }

    /// Files in a repository folder (packs are two levels deep).
    pub fn objects(&self, folder: Folder) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.path.join(folder.name())];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    stack.push(e.path());
                } else {
                    out.push(e.path());
                }
            }
        }
        out.sort();
        out
    }
}

/// Where a source path lands inside a restore target (absolute paths are
/// kept, like restic: /a/b restored into T is T/a/b).
pub fn restored_path(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap_or(source))
}

/// A path from raw bytes (names need not be UTF-8).
pub fn bpath(base: &Path, rel: &[u8]) -> PathBuf {
    base.join(OsStr::from_bytes(rel))
}

// ---- deterministic data -------------------------------------------------------

/// xorshift64* — fast, deterministic, good enough to defeat compression and
/// deduplication.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed` (any value, zero included).
    pub fn new(seed: u64) -> Rng {
        Rng((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fill `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let v = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&v[..n]);
    }
}

/// `len` random bytes from `seed`.
pub fn random_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    Rng::new(seed).fill(&mut v);
    v
}

/// A deterministic stream of `len` bytes in 64 KiB blocks, each random,
/// compressible (a short random word over a small alphabet, repeated) or
/// zero: exercises compression, raw storage and zero runs at once.
#[derive(Debug)]
pub struct MixedStream {
    rng: Rng,
    left: u64,
    block: Vec<u8>,
    pos: usize,
}

const MIXED_BLOCK: usize = 64 << 10;

impl MixedStream {
    /// A stream of `len` bytes from `seed`.
    pub fn new(seed: u64, len: u64) -> MixedStream {
        MixedStream {
            rng: Rng::new(seed),
            left: len,
            block: vec![0u8; MIXED_BLOCK],
            pos: MIXED_BLOCK,
        }
    }

    fn refill(&mut self) {
        match self.rng.next_u64() % 10 {
            0..=4 => self.rng.fill(&mut self.block),
            5..=7 => {
                let mut word = [0u8; 251];
                self.rng.fill(&mut word);
                for b in &mut word {
                    *b = b"abcdefgh \n"[usize::from(*b) % 10];
                }
                for c in self.block.chunks_mut(word.len()) {
                    let n = c.len();
                    c.copy_from_slice(&word[..n]);
                }
            }
            _ => self.block.fill(0),
        }
        self.pos = 0;
    }
}

impl Read for MixedStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.pos == self.block.len() {
            self.refill();
        }
        let n = buf
            .len()
            .min(self.block.len() - self.pos)
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        buf[..n].copy_from_slice(&self.block[self.pos..self.pos + n]);
        self.pos += n;
        self.left -= n as u64;
        Ok(n)
    }
}

/// Read until `buf` is full or the reader ends; returns the bytes read.
pub fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Assert two readers give the same bytes, streaming (1 MiB at a time);
/// returns the length.
pub fn assert_streams_equal(mut a: impl Read, mut b: impl Read, what: &str) -> u64 {
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let na = read_full(&mut a, &mut ba).unwrap();
        let nb = read_full(&mut b, &mut bb).unwrap();
        if ba[..na.min(nb)] != bb[..na.min(nb)] {
            let i = ba.iter().zip(&bb).position(|(x, y)| x != y).unwrap_or(0);
            panic!("{what}: content differs at byte {}", off + i as u64);
        }
        assert_eq!(
            na,
            nb,
            "{what}: lengths differ (one ends at byte {})",
            off + na.min(nb) as u64
        );
        off += na as u64;
        if na < ba.len() {
            return off;
        }
    }
}

// ---- tree comparison -----------------------------------------------------------

/// What [`compare_trees`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TreeCounts {
    /// Regular files.
    pub files: u64,
    /// Directories, the root included.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// FIFOs, sockets, devices.
    pub others: u64,
    /// Content bytes of regular files.
    pub bytes: u64,
    /// Regular-file entries that share an inode with an earlier entry.
    pub hard_links: u64,
}

fn kind(md: &fs::Metadata) -> &'static str {
    let ft = md.file_type();
    if ft.is_dir() {
        "dir"
    } else if ft.is_file() {
        "file"
    } else if ft.is_symlink() {
        "symlink"
    } else if ft.is_fifo() {
        "fifo"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_char_device() {
        "chardev"
    } else if ft.is_block_device() {
        "blockdev"
    } else {
        "unknown"
    }
}

/// `user.*` extended attributes of `p` itself (symlinks not followed), sorted.
pub fn user_xattrs(p: &Path) -> Vec<(OsString, Vec<u8>)> {
    let names = match xattr::list(p) {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return Vec::new(),
        Err(e) => panic!("{}: listxattr: {e}", p.display()),
    };
    let mut v: Vec<(OsString, Vec<u8>)> = names
        .filter(|n| n.as_bytes().starts_with(b"user."))
        .map(|n| {
            let val = xattr::get(p, &n)
                .unwrap_or_else(|e| panic!("{}: getxattr {n:?}: {e}", p.display()))
                .unwrap_or_default();
            (n, val)
        })
        .collect();
    v.sort();
    v
}

fn sorted_names(dir: &Path) -> Vec<OsString> {
    let mut v: Vec<OsString> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: read_dir: {e}", dir.display()))
        .map(|e| e.unwrap().file_name())
        .collect();
    v.sort();
    v
}

struct Cmp {
    counts: TreeCounts,
    /// source (dev, ino) -> restored (dev, ino), and back.
    fwd: HashMap<(u64, u64), (u64, u64)>,
    back: HashMap<(u64, u64), (u64, u64)>,
}

impl Cmp {
    fn entry(&mut self, src: &Path, dst: &Path) {
        let sm =
            fs::symlink_metadata(src).unwrap_or_else(|e| panic!("{}: lstat: {e}", src.display()));
        let dm = fs::symlink_metadata(dst)
            .unwrap_or_else(|e| panic!("{}: missing in restore: {e}", dst.display()));
        let at = src.display();
        assert_eq!(kind(&sm), kind(&dm), "{at}: file type");
        assert_eq!(
            sm.mode() & 0o7777,
            dm.mode() & 0o7777,
            "{at}: permission bits (source {:o})",
            sm.mode() & 0o7777
        );
        assert_eq!((sm.uid(), sm.gid()), (dm.uid(), dm.gid()), "{at}: uid/gid");
        assert_eq!(
            (sm.mtime(), sm.mtime_nsec()),
            (dm.mtime(), dm.mtime_nsec()),
            "{at}: mtime (seconds, nanoseconds)"
        );
        assert_eq!(user_xattrs(src), user_xattrs(dst), "{at}: user.* xattrs");
        let ft = sm.file_type();
        if !ft.is_dir() {
            // Hard links: the map from source inodes to restored inodes must
            // be one-to-one.
            let (s, d) = ((sm.dev(), sm.ino()), (dm.dev(), dm.ino()));
            match self.fwd.entry(s) {
                Entry::Occupied(o) => {
                    assert_eq!(
                        *o.get(),
                        d,
                        "{at}: hard link to an earlier entry not preserved"
                    );
                    if ft.is_file() {
                        self.counts.hard_links += 1;
                    }
                }
                Entry::Vacant(v) => {
                    v.insert(d);
                }
            }
            match self.back.entry(d) {
                Entry::Occupied(o) => assert_eq!(
                    *o.get(),
                    s,
                    "{at}: restored as a hard link of an unrelated file"
                ),
                Entry::Vacant(v) => {
                    v.insert(s);
                }
            }
        }
        if ft.is_dir() {
            self.counts.dirs += 1;
            let (sn, dn) = (sorted_names(src), sorted_names(dst));
            assert_eq!(sn, dn, "{at}: directory entries differ");
            for n in &sn {
                self.entry(&src.join(n), &dst.join(n));
            }
            // Reading did not change anything; check the directory's times
            // again after its contents were compared.
            let dm2 = fs::symlink_metadata(dst).unwrap();
            assert_eq!(
                (sm.mtime(), sm.mtime_nsec()),
                (dm2.mtime(), dm2.mtime_nsec()),
                "{at}: dir mtime"
            );
        } else if ft.is_file() {
            self.counts.files += 1;
            assert_eq!(sm.len(), dm.len(), "{at}: size");
            let a = fs::File::open(src).unwrap_or_else(|e| panic!("{at}: open: {e}"));
            let b = fs::File::open(dst).unwrap_or_else(|e| panic!("{}: open: {e}", dst.display()));
            self.counts.bytes += assert_streams_equal(a, b, &at.to_string());
        } else if ft.is_symlink() {
            self.counts.symlinks += 1;
            assert_eq!(
                fs::read_link(src).unwrap(),
                fs::read_link(dst).unwrap(),
                "{at}: symlink target"
            );
        } else {
            self.counts.others += 1;
            if ft.is_char_device() || ft.is_block_device() {
                assert_eq!(sm.rdev(), dm.rdev(), "{at}: device number");
            }
        }
    }
}

/// Compare the trees at `src` and `restored` entry by entry (no symlink is
/// followed): names (as bytes), file types, content, symlink targets,
/// permission bits, owner, mtime (with nanoseconds, directories and symlinks
/// included), `user.*` xattrs, and hard links (entries sharing an inode in
/// the source share one in the restore; distinct inodes stay distinct).
/// atime and ctime are not compared. Panics on the first difference.
pub fn compare_trees(src: &Path, restored: &Path) -> TreeCounts {
    let mut c = Cmp {
        counts: TreeCounts::default(),
        fwd: HashMap::new(),
        back: HashMap::new(),
    };
    c.entry(src, restored);
    c.counts
}

/// Regular files below `dir` (symlinks not followed).
pub fn count_files(dir: &Path) -> u64 {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(e.path());
            } else if ft.is_file() {
                n += 1;
            }
        }
    }
    n
}

/// Whether the tests run as root (then ownership is restored too).
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Run `cmd` with `input` written to its stdin from a separate thread;
/// returns its output and the number of bytes written.
pub fn run_with_stdin(cmd: &mut Command, mut input: impl Read + Send + 'static) -> (Output, u64) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || io::copy(&mut input, &mut stdin));
    let o = child.wait_with_output().unwrap();
    let out = Output {
        code: o.status.code().unwrap_or(-1),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    };
    assert!(
        !out.stderr.contains("panicked"),
        "{cmd:?} panicked:\n{}",
        out.stderr
    );
    let written = writer.join().unwrap().unwrap_or_else(|e| {
        panic!(
            "writing to {cmd:?}: {e} (exit code {}); stderr:\n{}",
            out.code, out.stderr
        )
    });
    (out, written)
}

/// Copy the tree `from` to `to` (a golden repository into a scratch
/// directory), every file writable, so tests can damage the copy.
pub fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

impl TestRepo {
    /// A new repository like [`TestRepo::new`], with `extra` arguments to
    /// `init` (`--pack-size 1`, for instance).
    pub fn with_init_args(extra: &[&str]) -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        let r = TestRepo {
            tmp,
            path,
            password: PASSWORD.to_string(),
        };
        r.run(
            ["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"]
                .iter()
                .chain(extra),
        )
        .ok("init");
        r
    }

    /// A copy of this repository in a temporary directory of its own, so
    /// with a cache of its own too.
    pub fn copy(&self) -> TestRepo {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        copy_dir(&self.path, &path);
        TestRepo {
            tmp,
            path,
            password: self.password.clone(),
        }
    }

    /// Bytes of the files in a repository folder.
    pub fn bytes_in(&self, folder: Folder) -> u64 {
        self.objects(folder)
            .iter()
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }
}

/// Copy regular files from real system folders (`roots`, walked in
/// sorted order) into `to`, keeping their absolute paths below it, until
/// about `budget` bytes are copied. Panics if less than half was found.
pub fn copy_real_files(to: &Path, budget: u64, roots: &[&str]) -> u64 {
    let mut copied = 0u64;
    let mut stack: Vec<PathBuf> = roots.iter().map(PathBuf::from).rev().collect();
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        let mut entries: Vec<_> = rd.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        entries.sort();
        for p in entries.into_iter().rev() {
            let Ok(md) = fs::symlink_metadata(&p) else {
                continue;
            };
            if md.is_dir() {
                stack.push(p);
            } else if md.is_file() && md.len() > 0 && copied + md.len() <= budget {
                let dest = to.join(p.strip_prefix("/").unwrap());
                fs::create_dir_all(dest.parent().unwrap()).unwrap();
                if fs::copy(&p, &dest).is_ok() {
                    copied += md.len();
                }
            }
            if copied >= budget - budget / 20 {
                return copied;
            }
        }
    }
    assert!(
        copied > budget / 2,
        "only {copied} bytes of real files found"
    );
    copied
}

/// `e2fsck -fn` finds nothing wrong with the file system in `img`.
pub fn fsck_clean(img: &Path) {
    let o = Command::new("e2fsck").arg("-fn").arg(img).output().unwrap();
    assert!(
        o.status.success(),
        "e2fsck -fn {}: {}\n{}",
        img.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// The content list of the one file of a block snapshot (`cat tree`).
pub fn content_list(t: &TestRepo, snapshot: &str) -> serde_json::Value {
    let snap = t
        .run(["--json", "cat", "snapshot", snapshot])
        .ok("cat snapshot")
        .json();
    let tree = snap["tree"].as_str().unwrap().to_string();
    let tree = t
        .run(["--json", "cat", "tree", &tree])
        .ok("cat tree")
        .json();
    let nodes = tree["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1, "a block snapshot holds one file: {tree}");
    nodes[0]["content"].clone()
}
