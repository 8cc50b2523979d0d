//! Streams (standard input) through the backup pipeline: the same bytes
//! give the same chunks whether read whole as a file or as a stream in
//! batches, zero runs are stored as holes, a regular file on standard
//! input is read by data extent, and a read error mid-stream fails the
//! backup without a snapshot. Each test uses a local repository in a
//! temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use lifeboat_core::format::{ChunkerParams, ContentPart, KdfParams, Node, Snapshot};
use lifeboat_core::store::{Backend, ObjectStoreBackend};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions,
};

const KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// Small chunks, so a stream of a few MiB spans many chunks and batches.
const CHUNKER: ChunkerParams = ChunkerParams {
    min_size: 16 * 1024,
    avg_size: 64 * 1024,
    max_size: 256 * 1024,
};

struct Fixture {
    work: tempfile::TempDir,
    repo: Repository,
}

fn fixture(chunker: ChunkerParams) -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    fs::create_dir_all(&repo_dir).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap());
    let opts = InitOptions {
        kdf: KDF,
        chunker,
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, b"pw", &opts).unwrap();
    Fixture { work, repo }
}

fn random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Random bytes with zero runs of several sizes between them.
fn mixed() -> Vec<u8> {
    let mut d = random(1, 3 << 20);
    d.extend(std::iter::repeat_n(0u8, 9 << 20));
    d.extend(random(2, 5 << 20));
    d.extend(std::iter::repeat_n(0u8, 100_000));
    d.extend(random(3, 12 << 20));
    d.extend(std::iter::repeat_n(0u8, 3 << 20));
    d
}

/// A reader that gives odd-sized pieces, as a pipe does.
struct Dribble<'a>(&'a [u8]);

impl Read for Dribble<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = b.len().min(self.0.len()).min(65_521);
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

impl Fixture {
    fn stdin(&self, reader: &mut (dyn Read + Send)) -> lifeboat_core::Result<Snapshot> {
        let source = BackupSource::Stdin {
            filename: "image".into(),
            reader,
        };
        let r = self
            .repo
            .backup(source, &BackupOptions::default(), &Progress::default())?;
        Ok(r.snapshot)
    }

    fn stdin_file(&self, file: fs::File) -> lifeboat_core::Result<Snapshot> {
        let source = BackupSource::StdinFile {
            filename: "image".into(),
            file,
        };
        let r = self
            .repo
            .backup(source, &BackupOptions::default(), &Progress::default())?;
        Ok(r.snapshot)
    }

    fn file_node(&self, snap: &Snapshot) -> Node {
        let mut root = self.repo.load_tree(&snap.tree).unwrap();
        assert_eq!(root.nodes.len(), 1);
        root.nodes.remove(0)
    }

    /// Restore `snap` and return its one file's bytes.
    fn restored(&self, snap: &Snapshot, name: &str) -> Vec<u8> {
        let target = self
            .work
            .path()
            .join(format!("restore-{}", snap.tree.to_hex()));
        let opts = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        self.repo
            .restore(snap, &opts, &Progress::default())
            .unwrap();
        fs::read(target.join(name)).unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.work.path().join(name)
    }
}

fn holes(parts: &[ContentPart]) -> u64 {
    parts
        .iter()
        .map(|p| match p {
            ContentPart::Hole { len } => *len,
            _ => 0,
        })
        .sum()
}

/// The one file node of a `Paths` backup of `path`, however deep.
fn node_at(f: &Fixture, snap: &Snapshot, path: &std::path::Path) -> Node {
    let mut tree = f.repo.load_tree(&snap.tree).unwrap();
    let names: Vec<_> = path.iter().skip(1).collect();
    for (i, name) in names.iter().enumerate() {
        let node = tree
            .nodes
            .iter()
            .find(|n| n.name == name.as_encoded_bytes())
            .unwrap()
            .clone();
        if i + 1 == names.len() {
            return node;
        }
        tree = f.repo.load_tree(node.subtree.as_ref().unwrap()).unwrap();
    }
    panic!("{} not in the snapshot", path.display())
}

#[test]
fn a_stream_cuts_where_the_whole_file_cuts() {
    let f = fixture(ChunkerParams::default());
    // Below two maximum chunks (16 MiB), a file is read whole and cut in
    // one go; the stream reads and cuts it in batches of 8 MiB.
    let mut data = random(1, 1 << 20);
    data.extend(std::iter::repeat_n(0u8, 13 << 20));
    data.extend(random(2, 1 << 20));
    data.extend(std::iter::repeat_n(0u8, 100_000));
    data.extend(random(3, 777_777));
    assert!(data.len() < 16 << 20);
    let src = f.path("whole");
    fs::write(&src, &data).unwrap();
    let r = f
        .repo
        .backup(
            BackupSource::Paths(vec![src.clone()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    let whole = node_at(&f, &r.snapshot, &src).content;
    // Over one maximum chunk (8 MiB), so at least two parts; how many more
    // depends on the repository's chunker key (with no cut in the first
    // random MiB nor in the random tail, about 2% of keys, there are two).
    assert!(whole.len() >= 2, "{whole:?}");

    let streamed = f.stdin(&mut Dribble(&data)).unwrap();
    let node = f.file_node(&streamed);
    assert_eq!(node.size, data.len() as u64);
    assert_eq!(node.content, whole, "stream and whole file cut alike");
    let as_file = f.stdin_file(fs::File::open(&src).unwrap()).unwrap();
    assert_eq!(f.file_node(&as_file).content, whole, "stdin as a file");
    assert_eq!(f.restored(&streamed, "image"), data);
}

#[test]
fn a_long_stream_restores_and_its_zero_runs_are_holes() {
    let f = fixture(CHUNKER);
    let data = mixed();
    let snap = f.stdin(&mut Dribble(&data)).unwrap();
    let node = f.file_node(&snap);
    assert_eq!(node.size, data.len() as u64);
    let zero = (9 << 20) + 100_000 + (3 << 20);
    // Only chunks that reach into data around a run are not holes.
    let held = holes(&node.content);
    assert!(
        held >= zero - 6 * u64::from(CHUNKER.max_size) && held <= zero,
        "{held} bytes of holes for {zero} zero bytes"
    );
    let s = snap.summary.as_ref().unwrap();
    assert_eq!(s.bytes_read, data.len() as u64);
    assert!(s.bytes_added < (23 << 20), "{} bytes added", s.bytes_added);
    assert_eq!(f.restored(&snap, "image"), data);
    // The same stream again: every chunk deduplicates (only the new
    // root tree, with its new times, is added).
    let again = f.stdin(&mut Dribble(&data)).unwrap();
    assert_eq!(f.file_node(&again).content, node.content);
    let s = again.summary.unwrap();
    assert_eq!(s.data_blobs, 0);
    assert!(s.bytes_added < 64 << 10, "{} bytes added", s.bytes_added);
}

#[test]
fn a_regular_file_on_stdin_is_read_by_extent() {
    let f = fixture(CHUNKER);
    let path = f.path("sparse.img");
    let mut file = fs::File::create(&path).unwrap();
    let len: u64 = 512 << 20;
    file.set_len(len).unwrap();
    let pieces = [
        (0u64, 3usize << 20),
        (200 << 20, 5 << 20),
        (len - (1 << 20), 1 << 20),
    ];
    for (i, &(at, n)) in pieces.iter().enumerate() {
        file.seek(SeekFrom::Start(at)).unwrap();
        file.write_all(&random(10 + i as u64, n)).unwrap();
    }
    file.sync_all().unwrap();
    drop(file);
    let written: u64 = pieces.iter().map(|p| p.1 as u64).sum();

    let snap = f.stdin_file(fs::File::open(&path).unwrap()).unwrap();
    let node = f.file_node(&snap);
    assert_eq!(node.size, len);
    let s = snap.summary.as_ref().unwrap();
    // Holes found with SEEK_DATA/SEEK_HOLE are not read (a file system
    // may allocate a little around what was written).
    assert!(
        s.bytes_read >= written && s.bytes_read <= written + (8 << 20),
        "{} bytes read for {written} bytes of data",
        s.bytes_read
    );
    assert_eq!(s.bytes_total, len);
    assert!(holes(&node.content) >= len - written - (8 << 20));
    let restored = f.restored(&snap, "image");
    assert!(
        restored == fs::read(&path).unwrap(),
        "restores byte-identical"
    );

    // At a position other than the start: from there to the end.
    let mut file = fs::File::open(&path).unwrap();
    file.seek(SeekFrom::Start(1 << 20)).unwrap();
    let snap = f.stdin_file(file).unwrap();
    assert_eq!(f.file_node(&snap).size, len - (1 << 20));
    let restored = f.restored(&snap, "image");
    assert!(
        restored == fs::read(&path).unwrap()[1 << 20..],
        "the rest of the file"
    );
}

/// Gives `good` bytes, then fails.
struct FailingReader {
    data: Vec<u8>,
    pos: usize,
}

impl Read for FailingReader {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.data.len() {
            return Err(io::Error::other("device went away"));
        }
        let n = b.len().min(self.data.len() - self.pos).min(1 << 20);
        b[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_read_error_mid_stream_fails_the_backup_without_a_snapshot() {
    let f = fixture(CHUNKER);
    for good in [0usize, 100_000, 20 << 20] {
        let mut reader = FailingReader {
            data: random(7, good),
            pos: 0,
        };
        let err = f.stdin(&mut reader).unwrap_err();
        let msg = format!("{err}");
        assert!(msg.contains("<stdin>"), "{msg}");
        assert!(format!("{err:?}").contains("device went away"), "{err:?}");
    }
    assert!(f.repo.snapshots().unwrap().items.is_empty());
}
