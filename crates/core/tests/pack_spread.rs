//! Data blobs go to one of two open packs at random (docs/security.md,
//! "Pack layout"), so a file's consecutive chunks are not stored side by
//! side; a blob of pack size or more gets a pack of its own; two small
//! in-memory packs are merged when the backup ends.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use lifeboat_core::format::layout::Folder;
use lifeboat_core::format::{BlobType, ChunkerParams, ContentPart, Id, KdfParams};
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_core::store::ObjectStoreBackend;
use lifeboat_core::{BackupOptions, BackupSource, InitOptions, Progress, Repository};

/// Small chunks, so that a few MiB make many of them.
fn small_chunks(pack_size: u32) -> InitOptions {
    InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        pack_size,
        chunker: ChunkerParams {
            min_size: 16 << 10,
            avg_size: 32 << 10,
            max_size: 64 << 10,
        },
        ..InitOptions::default()
    }
}

/// Back up `src` and return the content of its file named `name`, in file
/// order.
fn backup_file(repo: &Repository, src: &Path, name: &[u8]) -> Vec<(Id, u32)> {
    let report = repo
        .backup(
            BackupSource::Paths(vec![src.to_path_buf()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let mut trees = vec![report.snapshot.tree];
    while let Some(tree) = trees.pop() {
        for node in repo.load_tree(&tree).unwrap().nodes {
            trees.extend(node.subtree);
            if node.name == name {
                return node
                    .content
                    .iter()
                    .map(|part| match part {
                        ContentPart::Blob { id, len } => (*id, *len),
                        ContentPart::Hole { .. } => panic!("noise has no holes"),
                    })
                    .collect();
            }
        }
    }
    panic!("no file {name:?} in the snapshot");
}

/// The data packs the index of `repo` names, and the packs in `data/`
/// (tree packs too).
fn packs(repo: &Repository) -> (HashSet<Id>, usize) {
    let data = repo
        .index()
        .iter()
        .filter(|(_, loc)| loc.blob_type == BlobType::Data)
        .map(|(_, loc)| loc.pack)
        .collect();
    let stored = repo.backend().list(&Folder::Data.prefix()).unwrap().len();
    (data, stored)
}

/// Whether some pack holds chunks `i < k` of the file and another pack
/// chunk `j` between them: the file's chunks are not stored as runs.
fn interleaved(packs: &[Id]) -> bool {
    (0..packs.len()).any(|k| {
        let back = packs[..k].iter().rposition(|p| *p == packs[k]);
        back.is_some_and(|i| packs[i + 1..k].iter().any(|p| *p != packs[k]))
    })
}

/// A file's chunks are spread over the two open data packs, interleaved.
///
/// The file (4 MiB) fits in one pack, and a local repository's packs are
/// staged files, which are not merged: both packs are written, and each
/// chunk is in the one its pick named. The picks are independent fair
/// coins whatever order the workers save the chunks in, so the chunks are
/// stored as at most two runs with probability 2n/2^n: under 2^-57 for the
/// n >= 64 chunks asserted (about 128 are expected). With one open pack, as
/// before, every chunk would be in one pack, in one run.
#[test]
fn a_files_chunks_are_interleaved_over_two_packs() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let src = work.path().join("src");
    std::fs::create_dir_all(&repo_dir).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    let content = common::noise(18, 4 << 20);
    std::fs::write(src.join("big"), &content).unwrap();

    let backend = Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap());
    let repo = Repository::init(backend.clone(), b"pw", &small_chunks(16 << 20)).unwrap();
    let chunks = backup_file(&repo, &src, b"big");
    assert!(chunks.len() >= 64, "only {} chunks", chunks.len());

    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let pack_of: Vec<Id> = chunks
        .iter()
        .map(|(id, _)| {
            repo.index()
                .get_indexed(id)
                .expect("chunk not indexed")
                .pack
        })
        .collect();
    let distinct: HashSet<Id> = pack_of.iter().copied().collect();
    assert_eq!(distinct.len(), 2, "chunks in {} packs", distinct.len());
    // Two data packs and one tree pack.
    assert_eq!(packs(&repo), (distinct, 3));
    assert!(interleaved(&pack_of), "chunks stored in runs: {pack_of:?}");

    let mut restored = Vec::with_capacity(content.len());
    for (id, len) in &chunks {
        let blob = repo.read_blob(BlobType::Data, id).unwrap();
        assert_eq!(blob.len(), *len as usize);
        restored.extend_from_slice(&blob);
    }
    assert!(restored == content, "the file's blobs do not give it back");
}

/// In memory (an object store), the two small packs left at the end are
/// merged into one. Without the merge both would be written unless every
/// pick named the same pack: probability 2^(1-n), n >= 64.
#[test]
fn small_packs_built_in_memory_are_merged_at_the_end() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    let content = common::noise(19, 4 << 20);
    std::fs::write(src.join("big"), &content).unwrap();

    let backend = Arc::new(ObjectStoreBackend::memory().unwrap());
    let repo = Repository::init(backend.clone(), b"pw", &small_chunks(16 << 20)).unwrap();
    let chunks = backup_file(&repo, &src, b"big");
    assert!(chunks.len() >= 64, "only {} chunks", chunks.len());

    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let (data, stored) = packs(&repo);
    assert_eq!((data.len(), stored), (1, 2), "data packs: {data:?}");
    let mut restored = Vec::with_capacity(content.len());
    for (id, _) in &chunks {
        assert!(repo.index().get_indexed(id).is_some(), "chunk not indexed");
        restored.extend_from_slice(&repo.read_blob(BlobType::Data, id).unwrap());
    }
    assert!(restored == content, "the file's blobs do not give it back");
}

/// A blob of pack size or more is alone in its pack, however the small
/// blobs saved around it were placed.
#[test]
fn a_blob_of_pack_size_gets_a_pack_of_its_own() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let src = work.path().join("src");
    std::fs::create_dir_all(&repo_dir).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    // Chunks of at least 1 MiB (bar a file's last) into 1 MiB packs, with
    // small files saved alongside.
    let big = common::noise(20, 6 << 20);
    std::fs::write(src.join("big"), &big).unwrap();
    for i in 0..32u64 {
        std::fs::write(
            src.join(format!("small{i}")),
            common::noise(100 + i, 20_000),
        )
        .unwrap();
    }
    let backend = Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap());
    let opts = InitOptions {
        chunker: ChunkerParams {
            min_size: 1 << 20,
            avg_size: 2 << 20,
            max_size: 4 << 20,
        },
        ..small_chunks(1 << 20)
    };
    let repo = Repository::init(backend.clone(), b"pw", &opts).unwrap();
    let chunks = backup_file(&repo, &src, b"big");

    let repo = Repository::open(backend.clone(), b"pw").unwrap();
    let index = repo.index();
    let mut per_pack = std::collections::HashMap::<Id, usize>::new();
    for (_, loc) in index.iter() {
        *per_pack.entry(loc.pack).or_default() += 1;
    }
    let mut large = 0;
    for (id, _) in &chunks {
        let loc = index.get_indexed(id).expect("chunk not indexed");
        if loc.stored_len >= 1 << 20 {
            large += 1;
            let blobs = per_pack[&loc.pack];
            assert_eq!(blobs, 1, "a {} B blob shares its pack", loc.stored_len);
        }
    }
    assert!(large >= 2, "only {large} blobs of pack size");
}
