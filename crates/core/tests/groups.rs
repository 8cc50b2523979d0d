//! Groups of small blobs (docs/format.md §8.1) in real backups to a local
//! repository: small files are stored in shared envelopes and restored byte
//! for byte; a damaged group costs exactly the files whose content is in
//! it; stats count a group once; `off` groups nothing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::noise;
use lifeboat_core::format::layout::{self, Folder};
use lifeboat_core::format::{BlobType, Compression, Id, KdfParams, Snapshot};
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_core::store::{Backend, ObjectStoreBackend, RemoteOptions};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions,
};

const KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// Source-like text: lines drawn from a small vocabulary.
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: [&str; 8] = [
        "let ", "pack ", "group ", "= ", "blob;\n", "fn ", "restore(", ");\n",
    ];
    let mut out = Vec::with_capacity(len + 8);
    for b in noise(seed, len) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[b as usize % WORDS.len()].as_bytes());
    }
    out.truncate(len);
    out
}

/// 600 small files (text of 1 byte to 20 KiB, some random, one empty, some
/// the same) in 6 folders, and two large ones.
fn make_source(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for i in 0..600u64 {
        let data = match i % 10 {
            0 => noise(i + 7, 3000),
            1 if i == 1 => Vec::new(),
            2 => text(2, 5000), // the same content, many times
            _ => text(i, 1 + (i as usize * 331) % 20_000),
        };
        files.insert(PathBuf::from(format!("d{}/f{i}.rs", i % 6)), data);
    }
    files.insert(PathBuf::from("big.txt"), text(99, 3 << 20));
    files.insert(PathBuf::from("noise.bin"), noise(98, 1 << 20));
    for (p, d) in &files {
        let p = dir.join(p);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, d).unwrap();
    }
    files
}

fn init(dir: &Path, compression: Compression) -> Repository {
    fs::create_dir_all(dir).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(dir).unwrap());
    let opts = InitOptions {
        kdf: KDF,
        compression,
        ..InitOptions::default()
    };
    Repository::init(backend, b"pw", &opts).unwrap()
}

fn reopen(dir: &Path) -> Repository {
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(dir).unwrap());
    Repository::open_with_cache(backend, b"pw", None).unwrap()
}

fn backup(repo: &Repository, src: &Path) -> Snapshot {
    let r = repo
        .backup(
            BackupSource::Paths(vec![src.to_path_buf()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    r.snapshot
}

/// Restore `snap` into `target`; returns the paths that failed, relative
/// to the source.
fn restore(repo: &Repository, snap: &Snapshot, target: &Path, src: &Path) -> BTreeSet<PathBuf> {
    let opts = RestoreOptions {
        target: target.to_path_buf(),
        threads: Some(2),
        ..RestoreOptions::default()
    };
    let r = repo.restore(snap, &opts, &Progress::default()).unwrap();
    let prefix = src.strip_prefix("/").unwrap();
    r.errors
        .iter()
        .map(|e| {
            let p = PathBuf::from(e.path.trim_start_matches('/'));
            p.strip_prefix(prefix).map(Path::to_path_buf).unwrap_or(p)
        })
        .collect()
}

/// The grouped blobs of the index, by group: (pack, offset) to members.
fn groups(repo: &Repository) -> HashMap<(Id, u32), Vec<Id>> {
    let mut out: HashMap<(Id, u32), Vec<Id>> = HashMap::new();
    for (id, l) in repo.index().iter() {
        if l.flags.grouped() {
            out.entry((l.pack, l.offset)).or_default().push(id);
        }
    }
    out
}

#[test]
fn small_files_are_grouped_and_restored_byte_for_byte() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let files = make_source(&src);
    let repo = init(&work.path().join("repo"), Compression::Auto);
    let snap = backup(&repo, &src);
    let g = groups(&repo);
    let members: usize = g.values().map(Vec::len).sum();
    // Distinct small contents: 540 text files (less the repeats), 60 noise.
    assert!(members > 400, "{members} grouped blobs");
    assert!(
        g.len() < members / 20,
        "{} groups for {members} blobs",
        g.len()
    );
    // The large files are not grouped, nor are trees: only data blobs
    // under 64 KiB are.
    for (id, l) in repo.index().iter() {
        let small_data = l.blob_type == BlobType::Data && l.raw_len < 64 * 1024;
        assert_eq!(l.flags.grouped(), small_data, "blob {id}: {l:?}");
    }
    // Grouped text compresses together: far below one blob a file.
    let s = snap.summary.clone().unwrap();
    assert!(s.bytes_stored < s.bytes_added / 3, "{s:?}");
    // Stats count each group's envelope once.
    let st = repo.stats(std::slice::from_ref(&snap)).unwrap();
    let idx = repo.index();
    let distinct: u64 = idx
        .iter()
        .filter(|(_, l)| !l.flags.grouped())
        .map(|(_, l)| u64::from(l.stored_len))
        .sum::<u64>()
        + g.keys()
            .map(|k| u64::from(idx.get(&g[k][0]).unwrap().stored_len))
            .sum::<u64>();
    drop(idx);
    assert!(
        st.unique_stored_size <= distinct,
        "{} > {distinct}",
        st.unique_stored_size
    );
    // A fresh open (the index table rebuilt from the segments) restores it.
    drop(repo);
    let repo = reopen(&work.path().join("repo"));
    assert_eq!(groups(&repo).len(), g.len());
    let target = work.path().join("restored");
    assert!(restore(&repo, &snap, &target, &src).is_empty());
    let root = target.join(src.strip_prefix("/").unwrap());
    for (p, want) in &files {
        assert!(fs::read(root.join(p)).unwrap() == *want, "{}", p.display());
    }
}

#[test]
fn a_damaged_group_costs_only_the_files_in_it() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let files = make_source(&src);
    let dir = work.path().join("repo");
    let repo = init(&dir, Compression::Auto);
    let snap = backup(&repo, &src);
    let g = groups(&repo);
    let ((pack, offset), members) = g.iter().max_by_key(|(_, m)| m.len()).unwrap();
    let stored_len = repo.index().get(&members[0]).unwrap().stored_len;
    let key = repo.master_key().clone();
    drop(repo);
    // Flip one byte in the middle of that group's envelope.
    let path = dir.join(layout::object_path(Folder::Data, pack));
    let mut bytes = fs::read(&path).unwrap();
    bytes[*offset as usize + stored_len as usize / 2] ^= 0x40;
    fs::write(&path, bytes).unwrap();
    // The files whose content is a member of the group, and only those,
    // are reported; every other file is restored whole.
    let lost: BTreeSet<PathBuf> = files
        .iter()
        .filter(|(_, d)| members.contains(&key.blob_id(d)))
        .map(|(p, _)| p.clone())
        .collect();
    assert!(lost.len() > 5, "{lost:?}");
    let repo = reopen(&dir);
    let target = work.path().join("restored");
    let failed = restore(&repo, &snap, &target, &src);
    assert_eq!(failed, lost);
    let root = target.join(src.strip_prefix("/").unwrap());
    for (p, want) in files.iter().filter(|(p, _)| !lost.contains(*p)) {
        assert!(fs::read(root.join(p)).unwrap() == *want, "{}", p.display());
    }
}

#[test]
fn compression_off_groups_nothing() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_source(&src);
    let repo = init(&work.path().join("repo"), Compression::Off);
    backup(&repo, &src);
    assert!(groups(&repo).is_empty());
}

#[test]
fn groups_restore_from_a_store_that_streams_ranged_reads() {
    // A remote store reads each run of nearby blobs in one streamed request,
    // where a group's members share one envelope (restore_plan.rs).
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let files = make_source(&src);
    let store = Arc::new(object_store::memory::InMemory::new());
    let backend: Arc<dyn Backend> = Arc::new(
        ObjectStoreBackend::remote(store, "memory://".into(), &RemoteOptions::default()).unwrap(),
    );
    assert!(backend.streams_ranges());
    let opts = InitOptions {
        kdf: KDF,
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, b"pw", &opts).unwrap();
    let snap = backup(&repo, &src);
    assert!(!groups(&repo).is_empty());
    let target = work.path().join("restored");
    assert!(restore(&repo, &snap, &target, &src).is_empty());
    let root = target.join(src.strip_prefix("/").unwrap());
    for (p, want) in &files {
        assert!(fs::read(root.join(p)).unwrap() == *want, "{}", p.display());
    }
}
