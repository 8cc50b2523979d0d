//! The CLI against a real 3-node Garage cluster: a 500 MiB round trip, a
//! node killed mid-backup, injected faults, the metadata cache, and secrets
//! kept out of every output. Skipped only with `LIFEBOAT_SKIP_S3=1`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod s3_common;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{MixedStream, compare_trees, random_bytes, restored_path, run};
use lifeboat_format::layout::Folder;
use lifeboat_store::{Location, OpenOptions};
use s3_common::{S3Repo, cluster, own_cluster, read_stats};

/// Whether a path under a cache folder lies in the store folder `folder`.
fn in_folder(path: &str, folder: Folder) -> bool {
    path.contains(&format!("/{}", folder.prefix()))
}

/// `big_files` files of `file_len` bytes of mixed data (random,
/// compressible, zero runs) and 200 small files, under `dir`.
fn make_tree(dir: &Path, seed: u64, big_files: u64, file_len: u64) {
    fs::create_dir_all(dir.join("small")).unwrap();
    for i in 0..big_files {
        let mut f = fs::File::create(dir.join(format!("big-{i}.img"))).unwrap();
        std::io::copy(&mut MixedStream::new(seed + i, file_len), &mut f).unwrap();
    }
    for i in 0..200u64 {
        fs::write(
            dir.join("small").join(format!("f{i:03}")),
            random_bytes(seed * 1000 + i, (i as usize * 97) % 5000),
        )
        .unwrap();
    }
}

#[test]
fn s3_round_trip_of_500_mib_is_byte_identical() {
    let c = cluster();
    let r = S3Repo::new(&c, "big");
    let src = r.scratch("src");
    make_tree(&src, 1, 4, 126 << 20);
    let s = r.backup(&[&src]);
    assert!(s["bytes_read"].as_u64().unwrap() >= 500 << 20, "{s}");
    let target = r.scratch("restored");
    r.restore("latest", &target);
    let counts = compare_trees(&src, &restored_path(&target, &src));
    assert!(counts.bytes >= 500 << 20, "{counts:?}");
    assert_eq!(counts.files, 204);
    let v = r.check(true);
    assert_eq!(v["verdict"], "clean", "{v}");
    assert!(v["data"]["blobs_read"].as_u64().unwrap() > 300, "{v}");
    assert_eq!(v["data"]["packs_read"], v["packs"], "{v}");
    // The metadata cache was filled, with content-addressed names only.
    let cache_index: Vec<_> = walk_files(&r.cache_dir())
        .into_iter()
        .filter(|p| in_folder(p, Folder::Index) || in_folder(p, Folder::Snapshots))
        .collect();
    assert!(cache_index.len() >= 2, "{cache_index:?}");
}

fn walk_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.push(e.path().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// The objects of the store's cache under `root` (its folders are named by
/// 32 hex digits; other components keep their own folders beside them).
fn store_cache_objects(root: &Path) -> Vec<String> {
    walk_files(root)
        .into_iter()
        .filter(|p| {
            let rel = Path::new(p).strip_prefix(root).unwrap();
            let top = rel.components().next().unwrap().as_os_str().len();
            let name = rel.file_name().unwrap().len();
            top == 32 && name == 64
        })
        .collect()
}

/// Kill the node the client talks to (node 1: its S3 endpoint) while a
/// backup is proven running, and bring it back a few seconds later. The
/// backup either completes through its retries or fails with one clear
/// error and no snapshot; a rerun then completes, `check --read-data` is
/// clean, and the earlier snapshot is still there and restores.
#[test]
fn s3_a_node_killed_mid_backup_leaves_a_consistent_repository() {
    let c = own_cluster();
    let r = S3Repo::new(&c, "kill");
    let first = r.scratch("first");
    make_tree(&first, 10, 1, 8 << 20);
    r.backup(&[&first]);
    let second = r.scratch("second");
    make_tree(&second, 20, 3, 60 << 20);

    let puts = || {
        c.s3_requests(1)
            .unwrap()
            .get("PutObject")
            .copied()
            .unwrap_or(0)
    };
    let baseline = puts();
    let mut child = r
        .cmd()
        .args(["--json", "backup"])
        .arg(&second)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill node 1 once the backup has uploaded something, while it runs.
    let start = Instant::now();
    while puts() < baseline + 3 {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the backup uploaded nothing in 120 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    c.kill_node(1).unwrap();
    assert!(
        child.try_wait().unwrap().is_none(),
        "the backup ended before its node was killed: the test proves nothing"
    );
    std::thread::sleep(Duration::from_secs(3));
    c.start_node(1).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    let completed = out.status.success();
    let ids = r.snapshot_ids();
    if completed {
        assert_eq!(ids.len(), 2, "{ids:?}");
    } else {
        // A clean failure: one clear message, no partial snapshot.
        assert!(stderr.contains("lifeboat: error:"), "{stderr}");
        assert_eq!(ids.len(), 1, "a failed backup left a snapshot: {ids:?}");
        eprintln!("backup failed cleanly while node 1 was down: {stderr}");
        r.backup(&[&second]);
    }
    // Node 1 back: consistent, every byte readable, nothing lost. Packs the
    // failed backup uploaded but never indexed are reported as orphans (a
    // notice: prune removes them); nothing else may be found.
    let o = r
        .run(["--json", "check", "--read-data"])
        .ok("check after the kill");
    let v = o.json();
    for p in v["problems"].as_array().unwrap() {
        assert!(
            !completed && p["category"] == "orphan_pack",
            "check found more than the failed backup's orphan packs: {v}"
        );
    }
    let ids = r.snapshot_ids();
    assert_eq!(ids.len(), 2, "{ids:?}");
    let t1 = r.scratch("t1");
    r.restore(&ids[0], &t1);
    compare_trees(&first, &restored_path(&t1, &first));
    let t2 = r.scratch("t2");
    r.restore(&ids[1], &t2);
    compare_trees(&second, &restored_path(&t2, &second));
}

/// A big file restores from S3 byte-identical in one request per pack:
/// restore reads each pack's run of needed blobs in one streamed ranged
/// GET (split only at gaps over 1 MiB or after 1024 blobs, neither of
/// which a fresh backup of two files leaves), and the tree packs come from
/// the cache the backup filled. So the ranged GETs number at most the data
/// packs, and the bytes read at most what they hold; the server (a cluster
/// of the test's own) counts exactly the GETs the store says it sent. Then
/// a pack of the first file is cut in half on the server: that file fails,
/// named with the pack, and the second, in packs of its own, restores.
#[test]
fn s3_a_big_file_restores_in_one_request_per_pack() {
    let c = own_cluster();
    let r = S3Repo::new(&c, "bigfile");
    let src = r.scratch("src");
    let big = src.join("big.img");
    std::io::copy(
        &mut MixedStream::new(7, 48 << 20),
        &mut fs::File::create(&big).unwrap(),
    )
    .unwrap();
    r.backup(&[&src]);
    let store = {
        let mut o = OpenOptions::default();
        o.settings = c.settings();
        Location::parse(&r.url)
            .unwrap()
            .open_with(false, &o)
            .unwrap()
    };
    let first_packs = store.list("data/").unwrap();
    // The second file, added in a second backup, lands in packs of its own.
    let other = src.join("other.bin");
    fs::write(&other, random_bytes(8, 8 << 20)).unwrap();
    r.backup(&[&src]);
    let packs = store.list("data/").unwrap();
    let pack_bytes: u64 = packs.iter().map(|p| p.size).sum();

    let gets = || {
        c.s3_requests(1)
            .unwrap()
            .get("GetObject")
            .copied()
            .unwrap_or(0)
    };
    let stats = r.tmp.path().join("stats.jsonl");
    let restore = |target: &Path| {
        let before = gets();
        let o = run(r
            .cmd()
            .env("LIFEBOAT_STORE_STATS", &stats)
            .args(["--json", "restore", "latest", "--target"])
            .arg(target));
        let s = read_stats(&stats).pop();
        let _ = fs::remove_file(&stats);
        (o, s, gets() - before)
    };
    let target = r.scratch("restored");
    let (o, s, served) = restore(&target);
    o.ok("restore from S3");
    let s = s.expect("the store wrote its counters");
    let counts = compare_trees(&src, &restored_path(&target, &src));
    assert_eq!(counts.files, 2);
    let ranged = s["get_range"].as_u64().unwrap();
    assert!(
        (1..=packs.len() as u64).contains(&ranged),
        "{ranged} ranged GETs for {} packs: {s}",
        packs.len()
    );
    assert!(s["range_bytes"].as_u64().unwrap() <= pack_bytes, "{s}");
    assert_eq!(served, ranged + s["get"].as_u64().unwrap(), "{s}");

    // Cut the largest pack of the first backup (a data pack: tree packs are
    // small) in half.
    let cut = first_packs.iter().max_by_key(|p| p.size).unwrap();
    assert!(cut.size > 4 << 20, "{cut:?}");
    let bytes = store.get(&cut.path).unwrap();
    store
        .put(&cut.path, bytes.slice(..bytes.len() / 2))
        .unwrap();
    let name = cut.path.rsplit('/').next().unwrap();
    let target = r.scratch("damaged");
    let (o, _, _) = restore(&target);
    let o = o.fails("restore with a truncated pack", 1, &[name, "truncated"]);
    let summary = o.summary();
    assert_eq!(summary["files"], 1, "{summary}");
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert_eq!(errors[0]["path"], big.to_str().unwrap(), "{summary}");
    assert!(!restored_path(&target, &big).exists());
    assert_eq!(
        fs::read(restored_path(&target, &other)).unwrap(),
        random_bytes(8, 8 << 20)
    );
}

#[test]
fn s3_transient_faults_are_retried_and_the_backup_completes() {
    let c = cluster();
    // Small packs: more requests to fail.
    let r = S3Repo::with_init_args(&c, "transient", &["--pack-size", "1"]);
    let src = r.scratch("src");
    make_tree(&src, 30, 3, 16 << 20);
    let stats = r.tmp.path().join("stats.jsonl");
    let o = run(r
        .cmd()
        .env(
            "LIFEBOAT_FAULTS",
            format!(
                "seed=4,transient=0.3,lost_replies=0.5,latency_ms=30,latency=0.2,stats={}",
                stats.display()
            ),
        )
        .args(["--json", "backup"])
        .arg(&src))
    .ok("backup with transient faults");
    assert!(o.summary()["bytes_read"].as_u64().unwrap() >= 48 << 20);
    let st = read_stats(&stats);
    assert_eq!(st.len(), 1, "{st:?}");
    // About 40 requests at 30%: fewer than 3 faults in 1 of ~5000 runs.
    let faults = st[0]["stats"]["transient_faults"].as_u64().unwrap();
    assert!(
        faults >= 3,
        "too few faults injected to mean anything: {st:?}"
    );
    // Without faults, the data is all there.
    let target = r.scratch("t");
    r.restore("latest", &target);
    compare_trees(&src, &restored_path(&target, &src));
    r.check(true);
}

#[test]
fn s3_a_permanent_error_fails_fast_with_a_clear_message() {
    let c = cluster();
    let r = S3Repo::new(&c, "permanent");
    let src = r.scratch("src");
    make_tree(&src, 40, 1, 20 << 20);
    let stats = r.tmp.path().join("stats.jsonl");
    let o = run(r
        .cmd()
        .env(
            "LIFEBOAT_FAULTS",
            format!("permanent=1,prefix=data/,stats={}", stats.display()),
        )
        .arg("backup")
        .arg(&src))
    .fails(
        "backup with a permanent error",
        1,
        &["permission denied", "injected permanent fault"],
    );
    assert_eq!(
        o.stderr.matches("lifeboat: error:").count(),
        1,
        "one error message: {}",
        o.stderr
    );
    let st = read_stats(&stats);
    let s = &st[0]["stats"];
    // No retries: one request under data/ before the uploads failed (the
    // backup counts packs left by interrupted backups there first; that
    // count is informative, so its failure is not fatal), then each backup
    // thread's first pack upload failed once, and nothing went on after it.
    let puts = s["put"].as_u64().unwrap();
    assert!((1..=4).contains(&puts), "{s}");
    assert_eq!(s["permanent_faults"].as_u64(), Some(puts + 1), "{s}");
    assert_eq!(s["transient_faults"], 0, "{s}");
    assert!(r.snapshot_ids().is_empty());
}

#[test]
fn s3_the_cache_saves_requests_and_a_corrupt_entry_is_refetched() {
    let c = cluster();
    let r = S3Repo::new(&c, "cache");
    let src = r.scratch("src");
    make_tree(&src, 50, 1, 2 << 20);
    r.backup(&[&src]);
    let counted = |name: &str, args: &[&str]| {
        let f = r.tmp.path().join(format!("{name}.jsonl"));
        run(r
            .cmd()
            .env("LIFEBOAT_FAULTS", format!("stats={}", f.display()))
            .args(args))
        .ok(name);
        read_stats(&f).remove(0)["stats"].clone()
    };
    // The backup filled the cache with what it wrote; the first `ls`
    // fetches only the tree packs, the second nothing but config and keys.
    let first = counted("ls1", &["ls", "latest"]);
    let tree_packs = store_cache_objects(&r.cache_dir())
        .iter()
        .filter(|p| in_folder(p, Folder::Data))
        .count() as u64;
    assert!(tree_packs >= 1);
    assert_eq!(first["get"], 2 + tree_packs, "{first}");
    let second = counted("ls2", &["ls", "latest"]);
    assert_eq!(
        second["get_range"], 0,
        "tree blobs from the cache: {second}"
    );
    assert_eq!(second["get"], 2, "only config and the key slot: {second}");
    assert!(
        first["get"].as_u64().unwrap() > second["get"].as_u64().unwrap(),
        "{first} vs {second}"
    );
    // Corrupt every object in the store's cache: each one `ls` needs (the
    // snapshot, the tree packs) is detected and fetched again. (Index
    // segments are read only when the index's own table needs them.)
    let files = store_cache_objects(&r.cache_dir());
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let mut b = fs::read(f).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x40;
        fs::write(f, b).unwrap();
    }
    let needed = files
        .iter()
        .filter(|f| in_folder(f, Folder::Snapshots) || in_folder(f, Folder::Data))
        .count() as u64;
    let third = counted("ls3", &["ls", "latest"]);
    assert!(third["get"].as_u64().unwrap() >= needed + 2, "{third}");
    let t = r.scratch("t");
    r.restore("latest", &t);
    compare_trees(&src, &restored_path(&t, &src));
    // Repaired: the next run reads from the cache again.
    let fourth = counted("ls4", &["ls", "latest"]);
    assert_eq!(fourth["get"], 2, "{fourth}");
    // --no-cache: trees are read by range from the store, and the cache
    // folder is left alone.
    let before = walk_files(&r.cache_dir());
    let nocache = counted("ls5", &["--no-cache", "ls", "latest"]);
    assert!(nocache["get_range"].as_u64().unwrap() >= 1, "{nocache}");
    assert!(nocache["get"].as_u64().unwrap() > 2, "{nocache}");
    assert_eq!(walk_files(&r.cache_dir()), before);
}

#[test]
fn s3_secrets_never_appear_in_any_output() {
    let c = cluster();
    let secret = c.var("AWS_SECRET_ACCESS_KEY").to_string();
    let key_id = c.var("AWS_ACCESS_KEY_ID").to_string();
    assert!(secret.len() >= 32 && key_id.len() >= 16);
    let r = S3Repo::new(&c, "secrets");
    let src = r.scratch("src");
    fs::write(src.join("a"), b"some data").unwrap();
    let mut outputs = Vec::new();
    let mut keep = |o: common::Output| outputs.push(format!("{}\n{}", o.out(), o.stderr));
    keep(r.run(["--json", "backup", src.to_str().unwrap()]));
    keep(r.run(["backup", src.to_str().unwrap()]));
    for args in [
        &["--json", "snapshots"][..],
        &["snapshots"],
        &["--json", "check", "--read-data"],
        &["check"],
        &["--json", "ls", "latest"],
        &["--json", "stats"],
        &["--json", "key", "list"],
        &["cat", "config"],
        &["--json", "cat", "snapshot", "latest"],
        &["ls", "nonexistent-snapshot"],
        &["--json", "ls", "nonexistent-snapshot"],
    ] {
        keep(r.run(args));
    }
    // Failures that involve the credentials themselves.
    let wrong = format!("{}x", &secret[..secret.len() - 1]);
    for (k, v) in [
        ("AWS_SECRET_ACCESS_KEY", wrong.as_str()),
        ("AWS_ACCESS_KEY_ID", "GK000000000000000000000000"),
    ] {
        for json in [true, false] {
            let mut cmd = r.cmd();
            cmd.env(k, v).env("LIFEBOAT_RETRIES", "0");
            if json {
                cmd.arg("--json");
            }
            let o = run(cmd.arg("snapshots"));
            assert_ne!(o.code, 0, "snapshots with a wrong {k} succeeded");
            assert!(o.stderr.contains("permission denied"), "{}", o.stderr);
            assert!(!o.stderr.contains(v), "{k} printed: {}", o.stderr);
            keep(o);
        }
    }
    // An endpoint with user:password in it.
    let mut cmd = r.cmd();
    cmd.env(
        "AWS_ENDPOINT_URL",
        c.endpoint()
            .replace("http://", &format!("http://{key_id}:{secret}@")),
    )
    .env("LIFEBOAT_RETRIES", "0");
    keep(run(cmd.arg("snapshots")));
    for o in &outputs {
        assert!(!o.contains(&secret), "the secret key was printed:\n{o}");
        assert!(!o.contains(&key_id), "the access key id was printed:\n{o}");
        assert!(!o.contains(&r.password), "the password was printed:\n{o}");
    }
    assert!(outputs.len() >= 17);
}

#[test]
fn s3_unreadable_locations_fail_clearly() {
    let c = cluster();
    // A bucket that does not exist.
    let mut cmd = s3_common::s3_cmd(&c);
    cmd.env("LIFEBOAT_PASSWORD", "x")
        .env("LIFEBOAT_RETRIES", "0")
        .args(["-r", "s3://no-such-bucket-here/x", "snapshots"]);
    let o = run(&mut cmd);
    assert_ne!(o.code, 0);
    assert!(o.stderr.starts_with("lifeboat: error:"), "{}", o.stderr);
    // An empty prefix in an existing bucket: no repository there.
    let mut cmd = s3_common::s3_cmd(&c);
    cmd.env("LIFEBOAT_PASSWORD", "x")
        .args(["-r", &c.unique_url("nothing-here"), "snapshots"]);
    run(&mut cmd).fails("snapshots of an empty prefix", 10, &["does not exist"]);
    // Plain http to another host is refused unless allowed.
    let mut cmd = s3_common::s3_cmd(&c);
    cmd.env("LIFEBOAT_PASSWORD", "x")
        .env("AWS_ENDPOINT_URL", "http://192.0.2.1:3900")
        .args(["-r", "s3://b/p", "snapshots"]);
    run(&mut cmd).fails("plain http", 1, &["AWS_ALLOW_HTTP"]);
    let _ = std::io::stderr().flush();
}
