//! `lifeboat index rebuild|compact` and the local index table, end to end
//! through the binary on real directories.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use common::{PASSWORD, TestRepo, compare_trees, random_bytes, restored_path};
use lifeboat_format::layout::Folder;

/// A repository with `--pack-size 1` (MiB), so that little data makes many
/// packs and index segments.
fn small_pack_repo() -> TestRepo {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    let r = TestRepo {
        tmp,
        path,
        password: PASSWORD.to_string(),
    };
    r.run([
        "init",
        "--kdf-memory-kib",
        "1024",
        "--kdf-iterations",
        "1",
        "--pack-size",
        "1",
    ])
    .ok("init");
    r
}

/// A source tree of `files` random files of up to `max` bytes, plus a file
/// shared by every tree built with the same `shared` seed (deduplicated).
fn make_tree(root: &Path, seed: u64, files: u64, max: usize, shared: u64) -> PathBuf {
    fs::create_dir_all(root.join("sub/deeper")).unwrap();
    for i in 0..files {
        let len = (random_bytes(seed * 1000 + i, 8)[0] as usize * max) / 255 + 1;
        let dir = match i % 3 {
            0 => root.to_path_buf(),
            1 => root.join("sub"),
            _ => root.join("sub/deeper"),
        };
        fs::write(
            dir.join(format!("f{i}.bin")),
            random_bytes(seed * 1000 + i, len),
        )
        .unwrap();
    }
    fs::write(root.join("shared.bin"), random_bytes(shared, 3 << 20)).unwrap();
    fs::write(root.join("small.txt"), format!("tree {seed}\n")).unwrap();
    root.to_path_buf()
}

fn snapshot_ids(repo: &TestRepo) -> Vec<String> {
    repo.snapshots()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect()
}

fn check_clean(repo: &TestRepo, what: &str) {
    let o = repo.run(["--json", "check", "--read-data"]).ok(what);
    let v = o.json();
    assert_eq!(v["problems"].as_array().unwrap().len(), 0, "{what}: {v}");
}

/// Restore snapshot `id` and compare it with `src`, byte for byte.
fn restore_matches(repo: &TestRepo, id: &str, src: &Path, name: &str) {
    let target = repo.tmp.path().join(format!("restore-{name}"));
    repo.restore(id, &target, &[]);
    let c = compare_trees(src, &restored_path(&target, src));
    assert!(c.files > 3, "{name}: {c:?}");
}

fn segment_count(repo: &TestRepo) -> usize {
    repo.objects(Folder::Index).len()
}

/// Acceptance 3: every index segment deleted (and a damaged one left in
/// their place), `index rebuild` recovers the index from the pack headers
/// alone and every snapshot restores byte-identical.
#[test]
fn rebuild_after_losing_every_segment_restores_every_snapshot() {
    let repo = small_pack_repo();
    let mut sources = Vec::new();
    for s in 0..3u64 {
        let src = make_tree(&repo.scratch(&format!("src{s}")), s + 1, 9, 900 << 10, 77);
        repo.backup(&[&src], &[]);
        sources.push(src);
    }
    let ids = snapshot_ids(&repo);
    assert_eq!(ids.len(), 3);
    let packs = repo.objects(Folder::Data).len();
    assert!(packs >= 6, "{packs} packs");
    assert!(segment_count(&repo) >= 3);

    for seg in repo.objects(Folder::Index) {
        fs::remove_file(seg).unwrap();
    }
    // A damaged segment under a valid name.
    let junk = random_bytes(5, 300);
    let name = lifeboat_format::Id::of_object(&junk).to_hex();
    fs::write(repo.path.join(Folder::Index.name()).join(name), &junk).unwrap();
    // The repository is still readable through the packs' own headers, and
    // says so: the cached local table must not hide that its segments are
    // gone, and the warnings name the fix.
    let o = repo.run(["ls", "latest"]).ok("ls before rebuild");
    for phrase in [
        "damaged index segment skipped",
        "pack in no index segment",
        "index rebuild",
    ] {
        assert!(
            o.stderr.contains(phrase),
            "{phrase:?} not in:\n{}",
            o.stderr
        );
    }

    let o = repo.run(["--json", "index", "rebuild"]).ok("index rebuild");
    let v = o
        .json_lines()
        .into_iter()
        .rfind(|v| v["message_type"] == "index_rebuild")
        .unwrap();
    assert_eq!(v["packs_listed"].as_u64().unwrap(), packs as u64, "{v}");
    assert_eq!(v["packs_indexed"].as_u64().unwrap(), packs as u64, "{v}");
    assert_eq!(v["segments_superseded"].as_array().unwrap().len(), 1, "{v}");
    assert!(v["unreadable_packs"].as_array().unwrap().is_empty());
    // The damaged segment is gone; only the new ones are left.
    assert_eq!(
        segment_count(&repo),
        v["segments_written"].as_array().unwrap().len()
    );

    check_clean(&repo, "check after rebuild");
    for (i, (id, src)) in ids.iter().zip(&sources).enumerate() {
        restore_matches(&repo, id, src, &format!("s{i}"));
    }
    // A new backup deduplicates against the rebuilt index.
    let sum = repo.backup(&[&sources[0]], &["--force"]);
    assert_eq!(sum["data_blobs"].as_u64(), Some(0), "{sum}");
}

/// A pack whose header is damaged is reported and makes `index rebuild`
/// exit 1; the other packs are indexed.
#[test]
fn rebuild_reports_a_damaged_pack() {
    let repo = small_pack_repo();
    let src = make_tree(&repo.scratch("src"), 9, 6, 600 << 10, 78);
    repo.backup(&[&src], &[]);
    let packs = repo.objects(Folder::Data);
    let victim = &packs[0];
    let mut bytes = fs::read(victim).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0xff; // inside the sealed header
    fs::write(victim, &bytes).unwrap();
    let o =
        repo.run(["index", "rebuild"])
            .fails("rebuild with a damaged pack", 1, &["not indexed"]);
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(o.stderr.contains(&name), "{}", o.stderr);
    assert!(
        o.out().contains(&format!("of {} packs", packs.len())),
        "{}",
        o.out()
    );
}

/// Acceptance 4: `index compact` runs in a loop while backups write new
/// segments; nothing is lost: check passes and every snapshot restores.
#[test]
fn compact_during_concurrent_backups_loses_nothing() {
    let repo = small_pack_repo();
    // Earlier snapshots: several small segments to merge.
    let mut sources = Vec::new();
    for s in 0..4u64 {
        let src = make_tree(&repo.scratch(&format!("old{s}")), 10 + s, 4, 300 << 10, 79);
        repo.backup(&[&src], &[]);
        sources.push(src);
    }
    assert!(segment_count(&repo) >= 4);
    // New data for the concurrent backups; the big one writes an index
    // segment part-way (every 64 packs) as well as at the end.
    let mut new_sources = Vec::new();
    for s in 0..3u64 {
        let (files, max) = if s == 0 {
            (20, 8 << 20)
        } else {
            (5, 600 << 10)
        };
        new_sources.push(make_tree(
            &repo.scratch(&format!("new{s}")),
            20 + s,
            files,
            max,
            80,
        ));
    }

    let done = AtomicBool::new(false);
    let (merged_while_running, rounds) = std::thread::scope(|sc| {
        let backups = sc.spawn(|| {
            for src in &new_sources {
                repo.backup(&[src], &[]);
            }
            done.store(true, Ordering::SeqCst);
        });
        let mut merged = 0u64;
        let mut rounds = 0u64;
        while !done.load(Ordering::SeqCst) {
            let o = repo
                .run(["--json", "index", "compact", "--target-blobs", "100000"])
                .ok("compact during backup");
            let v = o
                .json_lines()
                .into_iter()
                .rfind(|v| v["message_type"] == "index_compact")
                .unwrap();
            merged += v["segments_merged"].as_u64().unwrap();
            rounds += 1;
        }
        backups.join().unwrap();
        (merged, rounds)
    });
    assert!(rounds >= 2, "compaction ran {rounds} times");
    assert!(merged_while_running >= 2, "merged {merged_while_running}");
    // Once more after the backups: everything ends in one segment.
    repo.run(["index", "compact"]).ok("final compact");
    assert_eq!(segment_count(&repo), 1);

    check_clean(&repo, "check after concurrent compaction");
    let ids = snapshot_ids(&repo);
    assert_eq!(ids.len(), 7);
    // Snapshots come oldest first, and every backup ran after the previous one.
    for (i, (id, src)) in ids
        .iter()
        .zip(sources.iter().chain(&new_sources))
        .enumerate()
    {
        restore_matches(&repo, id, src, &format!("c{i}"));
    }
}

/// The local table lives in the cache directory and is reused; a tampered
/// table is detected by its MAC and rebuilt, never trusted.
#[test]
fn local_table_is_cached_and_a_tampered_one_is_rebuilt() {
    let repo = small_pack_repo();
    let src = make_tree(&repo.scratch("src"), 30, 6, 500 << 10, 81);
    repo.backup(&[&src], &[]);
    // The backup's own segment is merged into the table by the next open.
    check_clean(&repo, "check");
    let cache = repo.tmp.path().join("cache/lifeboat");
    let repo_dirs: Vec<_> = fs::read_dir(&cache).unwrap().flatten().collect();
    assert_eq!(repo_dirs.len(), 1, "one repository cache directory");
    let table = repo_dirs[0]
        .path()
        .join(Folder::Index.name())
        .join("table-v1");
    assert!(table.is_file(), "no table at {}", table.display());

    // Flip bits in the offset of the last blob record (just before the
    // 128-byte footer).
    let mut bytes = fs::read(&table).unwrap();
    let n = bytes.len();
    for b in &mut bytes[n - 128 - 12..n - 128 - 8] {
        *b ^= 0x5a;
    }
    fs::write(&table, &bytes).unwrap();
    check_clean(&repo, "check with a tampered table");
    let id = snapshot_ids(&repo).pop().unwrap();
    restore_matches(&repo, &id, &src, "t");
    assert_ne!(fs::read(&table).unwrap(), bytes, "the table was rewritten");
}

/// `index rebuild` under injected transient read errors on the packs: it
/// stops with a transient error that names its cause, keeps the old
/// segments (none superseded, none deleted), and every snapshot still
/// restores byte-identical afterwards.
#[test]
fn rebuild_under_transient_read_errors_keeps_the_old_segments() {
    let repo = small_pack_repo();
    let base = repo.scratch("src");
    let mut sources = Vec::new();
    for i in 0..3u64 {
        let src = make_tree(&base.join(format!("t{i}")), 70 + i, 8, 300_000, 99);
        repo.backup(&[src.as_path()], &[]);
        sources.push(src);
    }
    let ids = snapshot_ids(&repo);
    assert_eq!(ids.len(), 3);
    let segments_before = repo.objects(Folder::Index);
    assert!(!segments_before.is_empty());

    // Every read of the packs in one `data/xx/` folder fails; the listing
    // of `data/` itself goes through, so the rebuild reaches the headers.
    let pack = repo.objects(Folder::Data)[0].clone();
    let sub = pack
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let prefix = format!("{}{sub}/", Folder::Data.prefix());
    let o = repo
        .cmd()
        .env(
            "LIFEBOAT_FAULTS",
            format!("seed=3,transient=1,prefix={prefix}"),
        )
        .env("LIFEBOAT_RETRIES", "1")
        .env("LIFEBOAT_RETRY_DELAY_MS", "1")
        .args(["index", "rebuild"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "rebuild under faults: {stderr}");
    assert!(
        stderr.contains("injected transient fault"),
        "the cause is lost: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        repo.objects(Folder::Index),
        segments_before,
        "a rebuild stopped by a transient error changed the index segments"
    );

    for (id, src) in ids.iter().zip(&sources) {
        let target = repo.scratch(&format!("restore-{}", &id[..8]));
        repo.restore(id, &target, &[]);
        compare_trees(src, &restored_path(&target, src));
    }
}
