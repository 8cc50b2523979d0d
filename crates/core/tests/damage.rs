//! Issue 15: one damaged, missing or stray object costs only what it holds.
//! Each test works on a copy of a golden repository (`testdata/golden/`,
//! described in its README): two snapshots, tagged `one` and `two`, whose
//! content is `testdata/golden/source/<tag>`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lifeboat_core::format::layout::{self, Folder};
use lifeboat_core::format::{BlobType, ContentPart, Id};
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_core::store::{Backend, ObjectStoreBackend};
use lifeboat_core::{
    BackupOptions, BackupSource, Error, Progress, Repository, RestoreOptions, SnapshotFilter,
    Warning, WarningKind,
};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

fn password(file: &str) -> Vec<u8> {
    let text = fs::read_to_string(golden().join(file)).unwrap();
    text.lines().next().unwrap().as_bytes().to_vec()
}

fn copy_dir(from: &Path, to: &Path) {
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

/// A copy of golden repository `variant` in a temporary directory.
fn copy_of(variant: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    copy_dir(&golden().join(variant), &path);
    (tmp, path)
}

fn open_with(path: &Path, password_file: &str) -> Result<Repository, Error> {
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(path).unwrap());
    Repository::open_with_cache(backend, &password(password_file), None)
}

fn open(path: &Path) -> Repository {
    open_with(path, "password").unwrap()
}

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

/// Restore `spec` and assert it is byte-identical to the golden source of
/// its tag; returns the tag.
fn assert_restores(repo: &Repository, spec: &str) -> String {
    let (_, snap) = repo
        .find_snapshot(spec, &SnapshotFilter::default())
        .unwrap();
    let tag = snap.tags[0].clone();
    let target = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: target.path().to_path_buf(),
        includes: Vec::new(),
        excludes: Vec::new(),
        threads: Some(2),
        ..Default::default()
    };
    let report = repo.restore(&snap, &opts, &Progress::default()).unwrap();
    assert!(report.errors.is_empty(), "{spec}: {:?}", report.errors);
    let root = target.path().join(snap.paths[0].trim_start_matches('/'));
    assert_eq!(
        fingerprint(&root),
        fingerprint(&golden().join("source").join(&tag)),
        "snapshot {spec} ({tag}) differs from its source"
    );
    tag
}

fn kinds(warnings: &[Warning]) -> Vec<(WarningKind, String)> {
    let mut v: Vec<_> = warnings
        .iter()
        .map(|w| (w.kind, w.object.clone()))
        .collect();
    v.sort_by(|a, b| a.1.cmp(&b.1));
    v
}

fn ids(repo: &Repository) -> Vec<Id> {
    repo.snapshots()
        .unwrap()
        .items
        .iter()
        .map(|(id, _)| *id)
        .collect()
}

#[test]
fn damaged_snapshot_is_skipped_and_the_other_restores_and_backs_up() {
    let (_tmp, path) = copy_of("damaged_snapshot");
    let repo = open(&path);
    let list = repo.snapshots().unwrap();
    assert_eq!(list.items.len(), 1);
    assert_eq!(list.items[0].1.tags, ["one"]);
    assert_eq!(list.skipped.len(), 1);
    let warning = &list.skipped[0];
    assert_eq!(warning.kind, WarningKind::DamagedSnapshot);
    assert!(Folder::Snapshots.holds(&warning.object));
    assert!(std::error::Error::source(warning).is_some());
    assert!(
        warning.to_string().contains("repair snapshots"),
        "{warning}"
    );
    let damaged = warning.id().unwrap();

    let good = list.items[0].0.to_hex();
    assert_eq!(assert_restores(&repo, &good), "one");
    assert_eq!(assert_restores(&repo, &good[..8]), "one");
    assert_eq!(assert_restores(&repo, "latest"), "one");
    let by_id = repo.find_snapshot(&damaged.to_hex(), &SnapshotFilter::default());
    assert!(
        matches!(&by_id, Err(Error::DamagedSnapshot { object, .. }) if *object == warning.object),
        "{by_id:?}"
    );

    // The parent search lists every snapshot: it must pass over the damaged one.
    let src = tempfile::tempdir().unwrap();
    fs::write(src.path().join("new.txt"), b"after the damage").unwrap();
    let report = repo
        .backup(
            BackupSource::Paths(vec![src.path().to_path_buf()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    assert!(report.is_complete());
    let after = repo.snapshots().unwrap();
    assert_eq!(after.items.len(), 2);
    assert_eq!(after.skipped.len(), 1);
    assert!(after.items.iter().any(|(id, _)| *id == report.id));
}

/// The index segment that `missing_index_segment` lacks (snapshot two's).
fn lost_segment() -> String {
    let names = |v: &str| -> Vec<String> {
        fs::read_dir(golden().join(v).join(Folder::Index.name()))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let left = names("missing_index_segment");
    let mut lost: Vec<String> = names("valid")
        .into_iter()
        .filter(|n| !left.contains(n))
        .collect();
    assert_eq!(lost.len(), 1);
    lost.remove(0)
}

#[test]
fn missing_index_segment_leaves_every_snapshot_restorable() {
    let (_tmp, path) = copy_of("missing_index_segment");
    let repo = open(&path);
    assert!(repo.take_warnings().is_empty());
    let mut tags: Vec<String> = ids(&repo)
        .iter()
        .map(|id| assert_restores(&repo, &id.to_hex()))
        .collect();
    tags.sort();
    assert_eq!(tags, ["one", "two"]);
    // The lookups that missed read the unindexed packs (two's data and tree).
    let warnings = repo.take_warnings();
    assert_eq!(
        warnings
            .iter()
            .filter(|w| w.kind == WarningKind::UnindexedPack)
            .count(),
        2,
        "{warnings:?}"
    );
    assert!(warnings[0].to_string().contains("index rebuild"));

    // With the unindexed packs' blobs found, a backup of the same content
    // still stores them again: it never references a pack no segment lists.
    let src = tempfile::tempdir().unwrap();
    copy_dir(&golden().join("source").join("two"), src.path());
    let report = repo
        .backup(
            BackupSource::Paths(vec![src.path().to_path_buf()]),
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    // A fresh open, looking only at the segments.
    let fresh = open(&path);
    fresh.set_index_fallback(false);
    let mut trees = vec![report.snapshot.tree];
    let mut blobs = 0;
    while let Some(tree) = trees.pop() {
        assert!(fresh.index().contains(&tree));
        for node in fresh.load_tree(&tree).unwrap().nodes {
            trees.extend(node.subtree);
            for part in &node.content {
                if let ContentPart::Blob { id, .. } = part {
                    assert!(fresh.index().contains(id), "blob {id} is in no segment");
                    blobs += 1;
                }
            }
        }
    }
    assert!(blobs >= 2, "{blobs} blobs");
}

#[test]
fn emptied_index_segment_does_not_stop_the_open() {
    let (_tmp, path) = copy_of("valid");
    let segment = path.join(Folder::Index.name()).join(lost_segment());
    fs::write(&segment, b"").unwrap();
    let repo = open(&path);
    let warnings = repo.take_warnings();
    assert_eq!(
        kinds(&warnings),
        [(
            WarningKind::DamagedIndexSegment,
            format!("{}/{}", Folder::Index.name(), lost_segment())
        )]
    );
    assert!(warnings[0].to_string().contains("lifeboat index rebuild"));
    let mut tags: Vec<String> = ids(&repo)
        .iter()
        .map(|id| assert_restores(&repo, &id.to_hex()))
        .collect();
    tags.sort();
    assert_eq!(tags, ["one", "two"]);
}

#[test]
fn stray_files_warn_and_change_nothing() {
    let (_tmp, clean_path) = copy_of("valid");
    let clean = open(&clean_path);
    let (_tmp2, path) = copy_of("valid");
    let pack_dir = fs::read_dir(path.join(Folder::Data.name()))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let strays = [
        path.join(Folder::Keys.name()).join("README"),
        path.join(Folder::Snapshots.name()).join("README"),
        path.join(Folder::Index.name()).join("README"),
        pack_dir.join("README"),
    ];
    for s in &strays {
        fs::write(s, b"not an object").unwrap();
    }
    let repo = open(&path);
    let object = |p: &Path| p.strip_prefix(&path).unwrap().to_str().unwrap().to_string();

    let keys = repo.keys().unwrap();
    assert_eq!(keys.items.len(), clean.keys().unwrap().items.len());
    assert_eq!(
        kinds(&keys.skipped),
        [(WarningKind::StrayObject, object(&strays[0]))]
    );
    let list = repo.snapshots().unwrap();
    assert_eq!(ids(&repo), ids(&clean));
    assert_eq!(
        kinds(&list.skipped),
        [(WarningKind::StrayObject, object(&strays[1]))]
    );
    for id in ids(&repo) {
        assert_restores(&repo, &id.to_hex());
    }
    // A lookup that misses lists `data/` for unindexed packs: it finds the
    // stray there, and nothing else.
    let unknown = Id([0x5a; 32]);
    assert!(matches!(
        repo.read_blob(BlobType::Data, &unknown),
        Err(Error::BlobNotFound { .. })
    ));
    let mut warnings = repo.take_warnings();
    // The key slot stray is listed before the slots when opening; each
    // snapshot lookup (by id, in assert_restores) reports the snapshot stray.
    warnings.retain(|w| !Folder::Keys.holds(&w.object));
    let (from_lookups, warnings): (Vec<_>, Vec<_>) = warnings
        .into_iter()
        .partition(|w| Folder::Snapshots.holds(&w.object));
    assert!(!from_lookups.is_empty());
    for w in &from_lookups {
        assert_eq!(
            (w.kind, w.object.clone()),
            (WarningKind::StrayObject, object(&strays[1]))
        );
    }
    assert_eq!(
        kinds(&warnings),
        [
            (WarningKind::StrayObject, object(&strays[3])),
            (WarningKind::StrayObject, object(&strays[2])),
        ]
    );
}

/// The id of the slot that `password` opens.
fn slot_of_password(path: &Path) -> PathBuf {
    let repo = open(path);
    let id = repo
        .keys()
        .unwrap()
        .items
        .into_iter()
        .find(|k| k.current)
        .unwrap()
        .id;
    path.join(layout::object_path(Folder::Keys, &id))
}

#[test]
fn absurd_key_slot_costs_are_refused_before_hashing() {
    let (_tmp, path) = copy_of("valid");
    let slot = slot_of_password(&path);
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&slot).unwrap()).unwrap();
    // 1 TiB, in KiB.
    json["params"]["memory_kib"] = serde_json::json!(1u64 << 30);
    fs::write(&slot, serde_json::to_vec_pretty(&json).unwrap()).unwrap();

    let started = Instant::now();
    let refused = open_with(&path, "password");
    assert!(started.elapsed() < Duration::from_secs(1));
    match refused {
        Err(Error::KeySlotParameters { slot: named, .. }) => {
            assert_eq!(path.join(&named), slot);
        }
        other => panic!("expected the parameters error, got {other:?}"),
    }
    let repo = open_with(&path, "password2").unwrap();
    assert_eq!(ids(&repo).len(), 2);
}

#[test]
fn unparseable_key_slot_is_skipped() {
    let (_tmp, path) = copy_of("valid");
    let slot = slot_of_password(&path);
    fs::write(&slot, b"{ not json").unwrap();
    assert!(matches!(
        open_with(&path, "password"),
        Err(Error::WrongPassword)
    ));
    let repo = open_with(&path, "password2").unwrap();
    let keys = repo.keys().unwrap();
    assert_eq!(keys.items.len(), 1);
    assert_eq!(kinds(&keys.skipped)[0].0, WarningKind::DamagedKeySlot);
}
