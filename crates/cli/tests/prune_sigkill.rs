//! `lifeboat prune` killed by SIGKILL at 20 points of a run that deletes
//! and repacks, chosen by counting its store requests (issue 16,
//! acceptance 3). After each kill `check --read-data` passes and every kept
//! snapshot restores byte-identical; a rerun then completes, checks clean
//! and leaves the repository as small as an uninterrupted prune did.
//!
//! The kill comes from the binary itself: `LIFEBOAT_FAULTS=kill_at=N` (the
//! store's `testing` feature, on in the binary these tests run) makes it
//! send itself SIGKILL at the start of its N-th store request, and
//! `trace=FILE` records each request, so the test knows which one it was.
//! The points chosen for a kind of write count writes instead
//! (`kill_on=writes`): the repack reads packs ahead while three writers
//! upload, so the request at a given number may be a read in one run and a
//! write in the next, whereas the N-th write is of the same kind in every
//! run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};

use common::{TestRepo, compare_trees, random_bytes, restored_path};
use lifeboat_format::layout::Folder;

/// Kill points.
const KILLS: usize = 20;
/// The kinds of write a whole prune makes (`<op> <folder>`), each of
/// which the reference run must make and some trial must be killed at.
const WRITE_KINDS: [&str; 8] = [
    "create locks",
    "put data",
    "put index",
    "delete index",
    "put marks",
    "delete marks",
    "delete data",
    "delete locks",
];
/// Trials run at once.
const WORKERS: usize = 4;
/// Bytes per source file: below the chunker's minimum, so one blob each,
/// and about four to a 1 MiB pack.
const FILE_BYTES: usize = 300_000;
/// The prune under test: deletes the marked packs and the repacked ones
/// in the run, and repacks every partly used pack.
const PRUNE: [&str; 4] = ["prune", "--instant-delete", "--max-unused", "0"];

/// One line of a `trace=FILE`.
#[derive(Debug, Clone, PartialEq)]
struct Request {
    /// Its number, from 1.
    n: u64,
    /// The writes up to and including it.
    w: u64,
    op: String,
    path: String,
}

impl Request {
    fn is_write(&self) -> bool {
        matches!(self.op.as_str(), "put" | "create" | "delete")
    }

    /// The operation and top folder: `put data`, `delete marks`, ...
    fn kind(&self) -> String {
        format!("{} {}", self.op, self.path.split('/').next().unwrap_or(""))
    }
}

fn read_trace(path: &Path) -> Vec<Request> {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.splitn(4, ' ').collect();
            assert_eq!(f.len(), 4, "trace line {l:?}");
            Request {
                n: f[0].parse().unwrap(),
                w: f[1].parse().unwrap(),
                op: f[2].to_string(),
                path: f[3].to_string(),
            }
        })
        .collect()
}

/// Replace the files in `dir` by `files` (name, seed).
fn write_tree(dir: &Path, files: &[(String, u64)]) {
    for e in fs::read_dir(dir).unwrap() {
        fs::remove_file(e.unwrap().path()).unwrap();
    }
    for (name, seed) in files {
        fs::write(dir.join(name), random_bytes(*seed, FILE_BYTES)).unwrap();
    }
}

fn named(prefix: &str, range: std::ops::Range<u64>, seed: u64) -> Vec<(String, u64)> {
    range.map(|i| (format!("{prefix}{i}"), seed + i)).collect()
}

struct Base {
    repo: TestRepo,
    /// Kept snapshots and the trees they hold.
    kept: Vec<(String, PathBuf)>,
}

/// Five snapshots of 1 MiB packs; the first and third forgotten. The
/// first's packs are partly used (the second keeps half its files), the
/// third's too (the fifth shares two of its files); the rest of them is
/// unused. A prune has marked the wholly unused packs (repacking nothing),
/// so the prune under test deletes marked packs, repacks, rewrites the
/// index and the marks, and deletes the repacked packs.
fn base() -> Base {
    let repo = TestRepo::with_init_args(&["--pack-size", "1"]);
    let backup = |dir: &Path| {
        repo.backup(&[dir], &[])["snapshot_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a = repo.scratch("a");
    write_tree(&a, &named("a", 0..8, 100));
    let s1 = backup(&a);
    let mut files = named("a", 0..4, 100);
    files.extend(named("b", 0..4, 200));
    write_tree(&a, &files);
    let s2 = backup(&a);
    let c = repo.scratch("c");
    write_tree(&c, &named("c", 0..8, 300));
    let s3 = backup(&c);
    let d = repo.scratch("d");
    write_tree(&d, &named("d", 0..4, 400));
    let s4 = backup(&d);
    let e = repo.scratch("e");
    let mut files = named("c", 0..2, 300);
    files.extend(named("e", 0..3, 500));
    write_tree(&e, &files);
    let s5 = backup(&e);

    repo.run(["forget", &s1, &s3]).ok("forget");
    repo.run(["prune", "--max-unused", "unlimited"])
        .ok("the marking prune");
    assert_eq!(repo.objects(Folder::Marks).len(), 1);
    Base {
        repo,
        kept: vec![(s2, a), (s4, d), (s5, e)],
    }
}

/// `check --read-data` passes and every kept snapshot restores
/// byte-identical.
fn assert_sound(repo: &TestRepo, kept: &[(String, PathBuf)], what: &str) {
    repo.run(["check", "--read-data"])
        .ok(&format!("{what}: check --read-data"));
    for (i, (id, src)) in kept.iter().enumerate() {
        let target = repo.tmp.path().join(format!("restore{i}"));
        repo.restore(id, &target, &[]);
        compare_trees(src, &restored_path(&target, src));
        fs::remove_dir_all(&target).unwrap();
    }
}

/// Where a trial kills the prune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Point {
    /// At this write (counting puts, creates and deletes), which must be of
    /// the same kind as the reference run's.
    Write(u64),
    /// At this request, whatever it is.
    Request(u64),
}

/// 20 points: the first write of each kind (lock, new packs, index
/// segment, superseded segments, mark object, old mark objects, deleted
/// packs, lock release) and the last pack deletion, each by its write
/// number, then the rest by request number, spread evenly over the whole
/// run and apart from the requests of those writes in the reference run.
fn kill_points(reference: &[Request]) -> Vec<Point> {
    let total = reference.len() as u64;
    let mut points = BTreeSet::new();
    let mut taken = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let writes = || reference.iter().filter(|r| r.is_write());
    let first_of_each = writes().filter(|r| kinds.insert(r.kind()));
    let last_delete = writes().rfind(|r| r.kind() == "delete data");
    for r in first_of_each.chain(last_delete) {
        taken.insert(r.n);
        points.insert(Point::Write(r.w));
    }
    let rest = KILLS - points.len();
    for i in 0..rest as u64 {
        let mut n = 1 + (2 * i + 1) * total / (2 * rest as u64);
        while taken.contains(&n) {
            n = n % total + 1;
        }
        taken.insert(n);
        points.insert(Point::Request(n));
    }
    points.into_iter().collect()
}

/// Kill the prune at `at` on a copy of the base repository, check what it
/// left, rerun it and check again; returns the kind of request it was
/// killed at.
fn trial(base: &Base, requests: &[Request], reference_data: u64, at: Point) -> String {
    let repo = base.repo.copy();
    let trace = repo.tmp.path().join("trace");
    let kill = match at {
        Point::Write(w) => format!("kill_at={w},kill_on=writes"),
        Point::Request(n) => format!("kill_at={n}"),
    };
    let out = repo
        .cmd()
        .env(
            "LIFEBOAT_FAULTS",
            format!("{kill},trace={}", trace.display()),
        )
        .args(PRUNE)
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "prune with {kill}: {:?}, stderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let is_it = |r: &Request| match at {
        Point::Write(w) => r.is_write() && r.w == w,
        Point::Request(n) => r.n == n,
    };
    let killed = read_trace(&trace)
        .into_iter()
        .find(is_it)
        .unwrap_or_else(|| panic!("{kill}: not in the trace"));
    // A point chosen for a kind of write stopped at a write of that kind:
    // it hit what it was chosen for.
    if let Point::Write(_) = at {
        let want = requests.iter().find(|r| is_it(r)).unwrap();
        assert_eq!(killed.kind(), want.kind(), "{kill}");
    }
    let what = format!(
        "killed at request {} of {} ({} {}, {kill})",
        killed.n,
        requests.len(),
        killed.op,
        killed.path
    );
    eprintln!("{what}");

    // A killed prune's lock holds off the next until it expires.
    let locks = repo.objects(Folder::Locks);
    if !locks.is_empty() {
        repo.run(PRUNE).fails(
            &format!("{what}: prune beside the lock"),
            1,
            &["another prune holds the lock until"],
        );
        // As its expiry (after the 1 h time to live) would.
        for l in locks {
            fs::remove_file(l).unwrap();
        }
    }
    assert_sound(&repo, &base.kept, &what);

    repo.run(PRUNE).ok(&format!("{what}: the rerun"));
    repo.run(["check", "--read-data"])
        .ok(&format!("{what}: check --read-data after the rerun"));
    assert!(
        repo.objects(Folder::Locks).is_empty(),
        "{what}: a lock stayed"
    );
    let data = repo.bytes_in(Folder::Data);
    assert!(
        data <= reference_data + reference_data / 100,
        "{what}: the rerun left {data} bytes of data, an uninterrupted prune {reference_data}"
    );
    killed.kind()
}

#[test]
fn prune_killed_by_sigkill_at_20_points_leaves_a_sound_repository_and_a_rerun_completes() {
    let base = base();
    let base_data = base.repo.bytes_in(Folder::Data);

    // An uninterrupted run, traced: what it asks of the store, and where it
    // leaves the repository.
    let reference = base.repo.copy();
    let trace = reference.tmp.path().join("trace");
    common::run(
        reference
            .cmd()
            .env("LIFEBOAT_FAULTS", format!("trace={}", trace.display()))
            .args(PRUNE),
    )
    .ok("the reference prune");
    let requests = read_trace(&trace);
    let kinds: BTreeSet<String> = requests.iter().map(Request::kind).collect();
    for want in WRITE_KINDS.iter().chain(&["get data"]) {
        assert!(
            kinds.contains(*want),
            "the reference prune made no {want:?}: {kinds:?}"
        );
    }
    let reference_data = reference.bytes_in(Folder::Data);
    assert!(
        reference_data < base_data,
        "prune left {reference_data} bytes of {base_data}"
    );
    assert_sound(&reference, &base.kept, "the reference prune");
    let writes = requests.iter().filter(|r| r.is_write()).count();
    eprintln!(
        "a whole prune makes {} store requests, {writes} of them writes; data {base_data} -> {reference_data} bytes",
        requests.len()
    );

    let points = kill_points(&requests);
    assert_eq!(points.len(), KILLS);
    // Trials in parallel: each on its own copy with its own cache.
    let killed_kinds: BTreeSet<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (base, requests, points) = (&base, &requests, &points);
                s.spawn(move || {
                    points
                        .iter()
                        .skip(w)
                        .step_by(WORKERS)
                        .map(|&at| trial(base, requests, reference_data, at))
                        .collect::<Vec<String>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|h| h.join().expect("a trial failed (its message is above)"))
            .collect()
    });
    for want in WRITE_KINDS {
        assert!(
            killed_kinds.contains(want),
            "no kill at a {want:?}: {killed_kinds:?}"
        );
    }
}
