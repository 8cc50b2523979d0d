//! Helpers of the mover's integration tests: running the real binary with
//! a VolSync-style environment (and nothing else of the caller's), file
//! trees to back up and compare, and a look into the repository through
//! the facade.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The password of test repositories; distinctive, so a leak is easy to spot.
pub const PASSWORD: &str = "mover-test-pw-4Rk8vN1q-do-not-print";

/// The mover binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_lifeboat-mover")
}

/// A mover command with an empty environment but for what a VolSync
/// Secret and controller give it: the repository, the password, the data
/// and cache folders, and cheap key derivation for the repository it
/// creates.
pub fn mover(repo: &str, data: &Path, cache: &Path) -> Command {
    let mut c = Command::new(bin());
    c.env_clear()
        .env("RESTIC_REPOSITORY", repo)
        .env("RESTIC_PASSWORD", PASSWORD)
        .env("DATA_DIR", data)
        .env("RESTIC_CACHE_DIR", cache)
        .env("PRIVILEGED_MOVER", "0")
        .env("MOVER_KDF_MEMORY_KIB", "1024")
        .env("MOVER_KDF_ITERATIONS", "1")
        .env("LIFEBOAT_RETRY_DELAY_MS", "20")
        .stdin(Stdio::null());
    c
}

/// One run of the mover.
#[derive(Debug)]
pub struct Run {
    /// Exit code; -1 when killed by a signal.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// The `MOVER_RESULT` summary.
    pub fn result(&self) -> serde_json::Value {
        let line = self
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("MOVER_RESULT "))
            .unwrap_or_else(|| {
                panic!("no MOVER_RESULT line in:\n{}\n{}", self.stdout, self.stderr)
            });
        serde_json::from_str(line).unwrap()
    }

    /// The result of op number `i`.
    pub fn op(&self, i: usize) -> (String, String) {
        let r = self.result();
        let op = &r["ops"][i];
        (
            op["op"].as_str().unwrap_or_default().to_string(),
            op["result"].as_str().unwrap_or_default().to_string(),
        )
    }

    /// Assert the exit code, showing the output when it differs.
    pub fn expect(self, code: i32, what: &str) -> Run {
        assert_eq!(
            self.code, code,
            "{what}: exit code {} (want {code})\nstdout:\n{}\nstderr:\n{}",
            self.code, self.stdout, self.stderr
        );
        assert!(
            !self.stdout.contains(PASSWORD) && !self.stderr.contains(PASSWORD),
            "{what}: the password was printed"
        );
        self
    }
}

/// Run `c` to its end.
pub fn run(c: &mut Command) -> Run {
    let o = c.output().expect("running lifeboat-mover");
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// A small deterministic generator.
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// Fill `dir` with a small tree, replacing what it held (but
/// `lost+found`): nested folders, files of several sizes (one empty, one
/// of a few chunks), a symlink, modes other than the default. `seed`
/// changes the content.
pub fn write_tree(dir: &Path, seed: u64) {
    fs::create_dir_all(dir).unwrap();
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.file_name() == Some(std::ffi::OsStr::new("lost+found")) {
            continue;
        }
        if fs::symlink_metadata(&p).unwrap().is_dir() {
            fs::remove_dir_all(&p).unwrap();
        } else {
            fs::remove_file(&p).unwrap();
        }
    }
    let mut rng = Rng::new(seed);
    fs::create_dir_all(dir.join("app/config")).unwrap();
    fs::create_dir_all(dir.join("app/data/deep/er")).unwrap();
    fs::write(
        dir.join("app/config/settings.yaml"),
        format!("seed: {seed}\n"),
    )
    .unwrap();
    fs::write(dir.join("app/data/empty"), b"").unwrap();
    fs::write(dir.join("app/data/small.bin"), rng.bytes(3000)).unwrap();
    fs::write(dir.join("app/data/deep/er/large.bin"), rng.bytes(3 << 20)).unwrap();
    fs::write(dir.join("top.txt"), format!("top level file {seed}\n")).unwrap();
    symlink("app/config/settings.yaml", dir.join("settings-link")).unwrap();
    fs::set_permissions(
        dir.join("app/config/settings.yaml"),
        fs::Permissions::from_mode(0o640),
    )
    .unwrap();
}

/// Every entry below `dir` (not `lost+found`): relative path to a
/// description of type, mode and content.
pub fn tree_of(dir: &Path) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
        for e in fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            if rel == Path::new("lost+found") {
                continue;
            }
            let md = fs::symlink_metadata(&p).unwrap();
            let mode = md.permissions().mode() & 0o7777;
            let desc = if md.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(root, &p, out);
                format!("dir {mode:o}")
            } else {
                let content = fs::read(&p).unwrap();
                format!("file {mode:o} {} {}", content.len(), fingerprint(&content))
            };
            out.insert(rel, desc);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// A content fingerprint (FNV-1a, 64 bits): enough to tell test files apart.
fn fingerprint(b: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Assert that two trees hold the same entries with the same content.
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    let a = tree_of(expected);
    let b = tree_of(actual);
    assert!(!a.is_empty(), "the expected tree is empty");
    assert_eq!(
        a,
        b,
        "{} and {} differ",
        expected.display(),
        actual.display()
    );
}

/// The repository at `location`, opened through the facade.
pub fn open_repo(location: &str) -> lifeboat::Repository {
    let backend = lifeboat::open_location(location, false).unwrap();
    lifeboat::Repository::open_with_cache(backend, PASSWORD.as_bytes(), None).unwrap()
}

/// Its snapshots, oldest first.
pub fn snapshots(location: &str) -> Vec<(lifeboat::Id, lifeboat::Snapshot)> {
    let mut v = open_repo(location).snapshots().unwrap().items;
    v.sort_by(|a, b| a.1.time.cmp(&b.1.time));
    v
}
