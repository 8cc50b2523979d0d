//! Restoring over a target that already holds data: existing files are
//! replaced whole or not at all, the overwrite modes keep what they say
//! they keep, and a symlink planted in the target is never followed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::noise;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lifeboat_core::format::{ChunkerParams, KdfParams, Snapshot};
use lifeboat_core::store::ObjectStoreBackend;
use lifeboat_core::{
    BackupOptions, BackupSource, FailPoints, InitOptions, Overwrite, Progress, RESTORE_TEMP_PREFIX,
    Repository, RestoreOptions, RestoreReport, Stage,
};

const PASSWORD: &[u8] = b"over-existing";
/// The mtime every source file gets, so the tests can set older and newer ones.
const T0: i64 = 1_700_000_000;

fn set_mtime(p: &Path, sec: i64) {
    let t = filetime::FileTime::from_unix_time(sec, 0);
    filetime::set_file_times(p, t, t).unwrap();
}

/// A repository in `work/repo` with one snapshot of `src`.
fn back_up(work: &Path, src: &Path) -> (Repository, Snapshot) {
    let repo_dir = work.join("repo");
    std::fs::create_dir_all(&repo_dir).unwrap();
    let backend = Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap());
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        // Small chunks: a large file is many blobs, so many writes.
        chunker: ChunkerParams {
            min_size: 4 << 10,
            avg_size: 16 << 10,
            max_size: 64 << 10,
        },
        ..InitOptions::default()
    };
    Repository::init(backend.clone(), PASSWORD, &opts).unwrap();
    let repo = Repository::open(backend, PASSWORD).unwrap();
    repo.backup(
        BackupSource::Paths(vec![src.to_path_buf()]),
        &BackupOptions::default(),
        &Progress::default(),
    )
    .unwrap();
    let (_, snap) = repo.find_snapshot("latest", &Default::default()).unwrap();
    (repo, snap)
}

fn restore(repo: &Repository, snap: &Snapshot, opts: RestoreOptions) -> RestoreReport {
    repo.restore(snap, &opts, &Progress::default()).unwrap()
}

/// Where `src` lands under `target`.
fn restored_root(target: &Path, src: &Path) -> PathBuf {
    target.join(src.strip_prefix("/").unwrap())
}

/// Every regular file under `dir` (not following symlinks) and its bytes.
fn files_under(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let ft = std::fs::symlink_metadata(&p).unwrap().file_type();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Temporary files a restore left under `dir`.
fn leftovers(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_name()
                .to_string_lossy()
                .starts_with(RESTORE_TEMP_PREFIX)
            {
                out.push(e.path());
            }
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

/// Small files, an empty one, and a large many-blob file, in nested directories.
fn make_tree(src: &Path) {
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    for i in 0..6u64 {
        std::fs::write(
            src.join(format!("small-{i}")),
            noise(i, 3000 + i as usize * 500),
        )
        .unwrap();
    }
    std::fs::write(src.join("sub/empty"), b"").unwrap();
    std::fs::write(src.join("sub/text"), "text ".repeat(10_000)).unwrap();
    std::fs::write(src.join("sub/deeper/large"), noise(99, 600_000)).unwrap();
}

/// The same paths as `src` under `dest`, each with different content
/// (some longer, some shorter than the snapshot's).
fn plant_different(src: &Path, dest: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut planted = BTreeMap::new();
    for (i, (rel, new)) in files_under(src).into_iter().enumerate() {
        let old = noise(
            1000 + i as u64,
            if i % 2 == 0 { new.len() + 777 } else { 100 },
        );
        let p = dest.join(&rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, &old).unwrap();
        planted.insert(rel, old);
    }
    planted
}

#[test]
fn restore_over_a_tree_where_every_file_differs_is_byte_identical() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let (repo, snap) = back_up(work.path(), &src);
    let target = work.path().join("target");
    let root = restored_root(&target, &src);
    let planted = plant_different(&src, &root);
    assert!(
        planted
            .iter()
            .all(|(rel, old)| std::fs::read(src.join(rel)).unwrap() != *old)
    );

    let report = restore(
        &repo,
        &snap,
        RestoreOptions {
            target: target.clone(),
            ..Default::default()
        },
    );
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.files, planted.len() as u64);
    assert_eq!(report.skipped, 0);
    assert_eq!(files_under(&root), files_under(&src));
    assert_eq!(leftovers(&target), Vec::<PathBuf>::new());
}

#[test]
fn a_failed_write_leaves_that_files_old_content_and_restores_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let (repo, snap) = back_up(work.path(), &src);
    let target = work.path().join("target");
    let root = restored_root(&target, &src);
    let planted = plant_different(&src, &root);

    let report = restore(
        &repo,
        &snap,
        RestoreOptions {
            target: target.clone(),
            // One blob write among the many fails; the others succeed.
            fail: FailPoints::once(Stage::RestoreWrite, 3),
            ..Default::default()
        },
    );
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let failed = &report.errors[0];
    assert!(failed.message.contains("injected"), "{failed:?}");
    let failed_rel = Path::new(&failed.path)
        .strip_prefix(&src)
        .unwrap()
        .to_path_buf();
    let expected = files_under(&src);
    let now = files_under(&root);
    assert_eq!(now.len(), expected.len());
    for (rel, content) in &now {
        if *rel == failed_rel {
            assert_eq!(content, &planted[rel], "{rel:?} lost its old content");
        } else {
            assert_eq!(content, &expected[rel], "{rel:?} was not restored");
        }
    }
    assert_eq!(report.files, expected.len() as u64 - 1);
    assert_eq!(leftovers(&target), Vec::<PathBuf>::new());
}

#[test]
fn a_failed_write_of_a_new_file_leaves_nothing() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let (repo, snap) = back_up(work.path(), &src);
    let target = work.path().join("target");
    let report = restore(
        &repo,
        &snap,
        RestoreOptions {
            target: target.clone(),
            fail: FailPoints::once(Stage::RestoreWrite, 0),
            ..Default::default()
        },
    );
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    let failed = restored_root(&target, Path::new(&report.errors[0].path));
    assert!(
        std::fs::symlink_metadata(&failed).is_err(),
        "{failed:?} left behind"
    );
    assert_eq!(
        files_under(&restored_root(&target, &src)).len(),
        files_under(&src).len() - 1
    );
}

/// Snapshot content per file of the overwrite-mode tree.
const UNCHANGED: &[u8] = b"unchanged";
const OLDER: &[u8] = b"snapshot's version, newer than the target's";
const NEWER: &[u8] = b"snapshot's version, older than the target's";
const SAME_CONTENT: &[u8] = b"same bytes, another mtime";
const FRESH: &[u8] = b"only in the snapshot";

/// Restore the overwrite tree with `mode` over a target holding: the
/// unchanged file; one changed with an older mtime; one changed with a
/// newer mtime; one with the snapshot's content but a newer mtime; and
/// without the fresh file. Returns the report, the restored root and the
/// unchanged file's inode before the restore.
fn restore_with_mode(mode: Overwrite) -> (RestoreReport, PathBuf, u64, tempfile::TempDir) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    for (name, content) in [
        ("unchanged", UNCHANGED),
        ("changed-older", OLDER),
        ("changed-newer", NEWER),
        ("same-content", SAME_CONTENT),
        ("fresh", FRESH),
    ] {
        std::fs::write(src.join(name), content).unwrap();
        set_mtime(&src.join(name), T0);
    }
    let (repo, snap) = back_up(work.path(), &src);
    let target = work.path().join("target");
    let root = restored_root(&target, &src);
    std::fs::create_dir_all(&root).unwrap();
    for (name, content, mtime) in [
        ("unchanged", UNCHANGED, T0),
        ("changed-older", &b"target's, older"[..], T0 - 1000),
        ("changed-newer", &b"target's, newer"[..], T0 + 1000),
        ("same-content", SAME_CONTENT, T0 + 5),
    ] {
        std::fs::write(root.join(name), content).unwrap();
        set_mtime(&root.join(name), mtime);
    }
    let inode = std::fs::metadata(root.join("unchanged")).unwrap().ino();
    let report = restore(
        &repo,
        &snap,
        RestoreOptions {
            target: target.clone(),
            overwrite: mode,
            ..Default::default()
        },
    );
    assert!(report.errors.is_empty(), "{mode}: {:?}", report.errors);
    assert_eq!(leftovers(&target), Vec::<PathBuf>::new(), "{mode}");
    (report, root, inode, work)
}

fn read(root: &Path, name: &str) -> Vec<u8> {
    std::fs::read(root.join(name)).unwrap()
}

fn mtime(root: &Path, name: &str) -> i64 {
    std::fs::metadata(root.join(name)).unwrap().mtime()
}

fn ino(root: &Path, name: &str) -> u64 {
    std::fs::metadata(root.join(name)).unwrap().ino()
}

#[test]
fn overwrite_always_replaces_every_existing_file() {
    let (report, root, inode, _work) = restore_with_mode(Overwrite::Always);
    assert_eq!((report.files, report.skipped), (5, 0));
    assert_eq!(read(&root, "unchanged"), UNCHANGED);
    assert_ne!(ino(&root, "unchanged"), inode, "not rewritten");
    assert_eq!(read(&root, "changed-older"), OLDER);
    assert_eq!(read(&root, "changed-newer"), NEWER);
    assert_eq!(read(&root, "same-content"), SAME_CONTENT);
    assert_eq!(read(&root, "fresh"), FRESH);
    for name in [
        "unchanged",
        "changed-older",
        "changed-newer",
        "same-content",
        "fresh",
    ] {
        assert_eq!(mtime(&root, name), T0, "{name}");
    }
}

#[test]
fn overwrite_if_changed_keeps_files_with_the_snapshots_content() {
    let (report, root, inode, _work) = restore_with_mode(Overwrite::IfChanged);
    // Kept: the unchanged file (size and mtime) and the one whose content matches.
    assert_eq!((report.files, report.skipped), (3, 2));
    assert_eq!(read(&root, "unchanged"), UNCHANGED);
    assert_eq!(ino(&root, "unchanged"), inode, "rewritten");
    assert_eq!(read(&root, "changed-older"), OLDER);
    assert_eq!(read(&root, "changed-newer"), NEWER);
    assert_eq!(read(&root, "same-content"), SAME_CONTENT);
    // A kept file still gets the snapshot's metadata.
    assert_eq!(mtime(&root, "same-content"), T0);
    assert_eq!(read(&root, "fresh"), FRESH);
}

#[test]
fn overwrite_if_newer_replaces_only_files_older_than_the_snapshots() {
    let (report, root, inode, _work) = restore_with_mode(Overwrite::IfNewer);
    assert_eq!((report.files, report.skipped), (2, 3));
    assert_eq!(read(&root, "unchanged"), UNCHANGED);
    assert_eq!(ino(&root, "unchanged"), inode, "rewritten");
    assert_eq!(read(&root, "changed-older"), OLDER);
    assert_eq!(read(&root, "changed-newer"), b"target's, newer");
    assert_eq!(mtime(&root, "changed-newer"), T0 + 1000);
    assert_eq!(mtime(&root, "same-content"), T0 + 5);
    assert_eq!(read(&root, "fresh"), FRESH);
}

#[test]
fn overwrite_never_touches_no_existing_file() {
    let (report, root, inode, _work) = restore_with_mode(Overwrite::Never);
    assert_eq!((report.files, report.skipped), (1, 4));
    assert_eq!(ino(&root, "unchanged"), inode, "rewritten");
    assert_eq!(read(&root, "changed-older"), b"target's, older");
    assert_eq!(mtime(&root, "changed-older"), T0 - 1000);
    assert_eq!(read(&root, "changed-newer"), b"target's, newer");
    assert_eq!(mtime(&root, "same-content"), T0 + 5);
    assert_eq!(read(&root, "fresh"), FRESH);
}

#[test]
fn overwrite_modes_parse_from_their_restic_names() {
    for mode in [
        Overwrite::Always,
        Overwrite::IfChanged,
        Overwrite::IfNewer,
        Overwrite::Never,
    ] {
        assert_eq!(mode.as_str().parse::<Overwrite>().unwrap(), mode);
    }
    assert!("sometimes".parse::<Overwrite>().is_err());
    assert_eq!(Overwrite::default(), Overwrite::Always);
}

/// Everything under `dir`, symlinks as their targets, for before/after comparison.
fn listing(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let md = std::fs::symlink_metadata(&p).unwrap();
            let what = if md.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", md.mode())
            } else if md.file_type().is_symlink() {
                format!("link {:?}", std::fs::read_link(&p).unwrap())
            } else {
                format!("file {:o} {:?}", md.mode(), std::fs::read(&p).unwrap())
            };
            out.insert(p, what);
        }
    }
    out
}

/// A target whose `sub` directory and `top` file are symlinks planted to
/// point outside it; returns (work, repo, snapshot, src, target, outside).
fn planted_symlinks() -> (
    tempfile::TempDir,
    Repository,
    Snapshot,
    PathBuf,
    PathBuf,
    PathBuf,
) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    std::fs::create_dir_all(src.join("sub/inner")).unwrap();
    std::fs::write(src.join("sub/f"), b"belongs inside sub").unwrap();
    std::fs::write(src.join("sub/inner/g"), b"belongs deeper inside").unwrap();
    std::fs::write(src.join("top"), b"belongs at the top").unwrap();
    let (repo, snap) = back_up(work.path(), &src);

    let outside = work.path().join("outside");
    std::fs::create_dir_all(outside.join("inner")).unwrap();
    std::fs::write(outside.join("f"), b"outside, keep me").unwrap();
    std::fs::write(outside.join("victim"), b"outside, keep me too").unwrap();
    let target = work.path().join("target");
    let root = restored_root(&target, &src);
    std::fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
    std::os::unix::fs::symlink(outside.join("victim"), root.join("top")).unwrap();
    (work, repo, snap, src, target, outside)
}

#[test]
fn a_planted_symlink_is_replaced_and_nothing_is_written_outside() {
    let (_work, repo, snap, src, target, outside) = planted_symlinks();
    let before = listing(&outside);
    let report = restore(
        &repo,
        &snap,
        RestoreOptions {
            target: target.clone(),
            ..Default::default()
        },
    );
    assert_eq!(listing(&outside), before, "written outside the target");
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let root = restored_root(&target, &src);
    assert!(
        std::fs::symlink_metadata(root.join("sub"))
            .unwrap()
            .is_dir()
    );
    assert!(
        std::fs::symlink_metadata(root.join("top"))
            .unwrap()
            .is_file()
    );
    assert_eq!(files_under(&root), files_under(&src));
}

#[test]
fn under_overwrite_never_a_planted_symlink_is_reported_not_followed() {
    let (_work, repo, snap, src, target, outside) = planted_symlinks();
    let before = listing(&outside);
    let report = restore(
        &repo,
        &snap,
        RestoreOptions {
            target: target.clone(),
            overwrite: Overwrite::Never,
            ..Default::default()
        },
    );
    assert_eq!(listing(&outside), before, "written outside the target");
    let sub = src.join("sub");
    assert!(
        report.errors.iter().any(|e| Path::new(&e.path) == sub),
        "{:?}",
        report.errors
    );
    let root = restored_root(&target, &src);
    // Both symlinks are left as they were.
    assert!(
        std::fs::symlink_metadata(root.join("sub"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::symlink_metadata(root.join("top"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
}
