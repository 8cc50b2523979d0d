//! The mover binary against a local repository, run as a VolSync Job would
//! run it: ops as arguments, settings in the environment. Each test checks
//! the exit code, the `MOVER_RESULT` line, and what the repository and the
//! volume hold afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Rng, assert_same_tree, mover, run, snapshots, tree_of, write_tree};

/// A repository location, a volume and a cache in one temporary folder.
struct Site {
    tmp: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let s = Site {
            tmp: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(s.data()).unwrap();
        s
    }
    fn repo(&self) -> String {
        self.tmp.path().join("repo").display().to_string()
    }
    fn data(&self) -> std::path::PathBuf {
        self.tmp.path().join("data")
    }
    fn cache(&self) -> std::path::PathBuf {
        self.tmp.path().join("cache")
    }
    fn dir(&self, name: &str) -> std::path::PathBuf {
        let p = self.tmp.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
    fn mover(&self) -> std::process::Command {
        mover(&self.repo(), &self.data(), &self.cache())
    }
    /// A mover restoring into `target` instead of the volume.
    fn mover_into(&self, target: &Path) -> std::process::Command {
        mover(&self.repo(), target, &self.cache())
    }
}

#[test]
fn backup_creates_the_repository_and_restore_brings_back_every_byte() {
    let site = Site::new();
    write_tree(&site.data(), 1);
    fs::create_dir(site.data().join("lost+found")).unwrap();
    let metrics = site.tmp.path().join("metrics/mover.prom");
    fs::create_dir_all(metrics.parent().unwrap()).unwrap();

    let r = run(site
        .mover()
        .arg("backup")
        .env("MOVER_METRICS_FILE", &metrics)
        .env("MOVER_NAME", "pvc-app"))
    .expect(0, "first backup");
    let res = r.result();
    assert_eq!(res["repository_created"], true);
    assert_eq!(res["exit_code"], 0);
    assert_eq!(r.op(0), ("backup".into(), "ok".into()));
    let id = res["snapshot"].as_str().unwrap().to_string();
    assert!(res["bytes_read"].as_u64().unwrap() >= 3 << 20);
    assert_eq!(res["files"], 5);
    let snaps = snapshots(&site.repo());
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].0.to_hex(), id);
    assert_eq!(snaps[0].1.hostname, "volsync");

    let text = fs::read_to_string(&metrics).unwrap();
    assert!(text.contains("mover_last_success_timestamp_seconds{name=\"pvc-app\",source=\"fs\"}"));
    assert!(text.contains(&format!(
        "mover_snapshot_info{{name=\"pvc-app\",source=\"fs\",id=\"{id}\"}} 1"
    )));
    assert!(text.contains(
        "mover_operation_duration_seconds{name=\"pvc-app\",source=\"fs\",op=\"backup\"}"
    ));

    // Restore into an empty volume: byte-identical, lost+found not part of it.
    let empty = site.dir("restored-empty");
    let r = run(site.mover_into(&empty).arg("restore")).expect(0, "restore into an empty volume");
    assert_eq!(r.result()["snapshot"].as_str(), Some(id.as_str()));
    assert!(!empty.join("lost+found").exists());
    assert_same_tree(&site.data(), &empty);

    // Restore over a volume with other content: it is replaced, and the
    // mover's staging folders are gone.
    let used = site.dir("restored-used");
    write_tree(&used, 99);
    fs::write(used.join("stale.txt"), b"not in the snapshot").unwrap();
    run(site.mover_into(&used).arg("restore")).expect(0, "restore over old content");
    assert_same_tree(&site.data(), &used);
    let names: Vec<String> = fs::read_dir(&used)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with(".lifeboat")),
        "{names:?}"
    );
}

#[test]
fn an_empty_volume_backs_up_nothing_and_touches_no_repository() {
    let site = Site::new();
    fs::create_dir(site.data().join("lost+found")).unwrap();
    let r = run(site.mover().arg("backup")).expect(0, "backup of an empty volume");
    assert_eq!(r.op(0), ("backup".into(), "skipped".into()));
    assert!(r.result().get("snapshot").is_none());
    assert!(
        !Path::new(&site.repo()).exists(),
        "the repository was created"
    );
}

#[test]
fn forget_applies_the_policy_and_prune_and_check_follow() {
    let site = Site::new();
    for seed in 1..=3 {
        write_tree(&site.data(), seed);
        // FORGET_OPTIONS as VolSync builds it from `retain`.
        let r = run(site
            .mover()
            .args(["backup", "forget"])
            .env("FORGET_OPTIONS", " --keep-last 2"))
        .expect(0, "backup forget");
        assert_eq!(r.op(1).1, "ok");
        if seed == 3 {
            assert_eq!(r.result()["forgotten"], 1);
        }
    }
    let snaps = snapshots(&site.repo());
    assert_eq!(snaps.len(), 2, "keep-last 2 of 3");

    // No policy: forget leaves everything (VolSync's default policy is its
    // controller's business).
    let r = run(site.mover().arg("forget")).expect(0, "forget without a policy");
    assert_eq!(r.op(0).1, "skipped");
    assert_eq!(snapshots(&site.repo()).len(), 2);

    let before = common::open_repo(&site.repo()).pack_totals().bytes;
    let r = run(site
        .mover()
        .args(["prune", "check"])
        .env("MOVER_PRUNE_INSTANT_DELETE", "true")
        .env("MOVER_CHECK_READ_DATA", "100%"))
    .expect(0, "prune check");
    assert!(r.result()["prune_deleted_bytes"].as_u64().unwrap() > 0);
    let after = common::open_repo(&site.repo()).pack_totals().bytes;
    assert!(after < before, "prune freed nothing: {before} -> {after}");
    assert_eq!(r.op(1), ("check".into(), "ok".into()));

    // The two kept snapshots still restore.
    let target = site.dir("restored");
    run(site.mover_into(&target).arg("restore")).expect(0, "restore after prune");
    assert_same_tree(&site.data(), &target);
}

#[test]
fn restore_as_of_a_time_and_select_previous() {
    let site = Site::new();
    let mut versions = Vec::new();
    for seed in [10, 20, 30] {
        write_tree(&site.data(), seed);
        let copy = site.dir(&format!("v{seed}"));
        write_tree(&copy, seed);
        versions.push(copy);
        run(site.mover().arg("backup")).expect(0, "backup");
        std::thread::sleep(Duration::from_millis(1100));
    }
    let snaps = snapshots(&site.repo());
    assert_eq!(snaps.len(), 3);
    // As of the second snapshot's time (inclusive), and as of one second
    // after it: both the second.
    let second: lifeboat::jiff::Timestamp = snaps[1].1.time.parse().unwrap();
    for as_of in [
        second,
        second + lifeboat::jiff::SignedDuration::from_millis(500),
    ] {
        let target = site.dir(&format!("as-of-{}", as_of.as_millisecond()));
        run(site
            .mover_into(&target)
            .arg("restore")
            .env("RESTORE_AS_OF", as_of.to_string()))
        .expect(0, "restore as of");
        assert_same_tree(&versions[1], &target);
    }
    // Latest, one before it, and one before the as-of point.
    let cases = [(None, "0", 2), (None, "1", 1), (Some(second), "1", 0)];
    for (i, (as_of, previous, want)) in cases.into_iter().enumerate() {
        let target = site.dir(&format!("case-{i}"));
        let mut c = site.mover_into(&target);
        c.arg("restore").env("SELECT_PREVIOUS", previous);
        if let Some(t) = as_of {
            c.env("RESTORE_AS_OF", t.to_string());
        }
        run(&mut c).expect(0, "restore");
        assert_same_tree(&versions[want], &target);
    }
    // Before the first snapshot: nothing to restore, which is not an error
    // (VolSync's behaviour) unless MOVER_RESTORE_REQUIRE says so.
    let early = "2001-01-01T00:00:00Z";
    let target = site.dir("too-early");
    let r = run(site
        .mover_into(&target)
        .arg("restore")
        .env("RESTORE_AS_OF", early))
    .expect(0, "restore before any snapshot");
    assert_eq!(r.op(0).1, "skipped");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    run(site
        .mover_into(&target)
        .arg("restore")
        .env("RESTORE_AS_OF", early)
        .env("MOVER_RESTORE_REQUIRE", "true"))
    .expect(10, "required restore with no snapshot");
}

/// The lock objects of the repository.
fn locks(repo: &str) -> Vec<String> {
    match fs::read_dir(Path::new(repo).join("locks")) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Run `prune` and have it killed (SIGKILL) at its second write, after it
/// took the lock: the lock of a dead mover stays behind.
fn killed_prune(site: &Site, ttl: &str) {
    let r = run(site
        .mover()
        .arg("prune")
        .env("MOVER_PRUNE_LOCK_TTL", ttl)
        .env("LIFEBOAT_FAULTS", "kill_at=2,kill_on=writes"));
    assert_eq!(
        r.code, -1,
        "prune was not killed:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert_eq!(
        locks(&site.repo()).len(),
        1,
        "the killed prune left no lock"
    );
}

#[test]
fn a_lock_left_by_a_killed_mover_never_wedges_the_repository() {
    let site = Site::new();
    write_tree(&site.data(), 1);
    run(site.mover().arg("backup")).expect(0, "backup");

    // Backups take no lock: a dead prune's lock does not stop them.
    killed_prune(&site, "4s");
    write_tree(&site.data(), 2);
    run(site.mover().arg("backup")).expect(0, "backup beside a dead prune's lock");

    // The next prune waits for the lock to expire and goes on.
    let t = Instant::now();
    let r = run(site.mover().arg("prune").env("MOVER_LOCK_WAIT", "60s"))
        .expect(0, "prune after a killed prune");
    assert_eq!(r.op(0).1, "ok");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert!(locks(&site.repo()).is_empty(), "{:?}", locks(&site.repo()));

    // A lock that is still live (an hour) makes prune give up after
    // MOVER_LOCK_WAIT with the lock code, and `unlock` with
    // MOVER_UNLOCK_FORCE clears it for a prune that runs at once.
    killed_prune(&site, "1h");
    run(site.mover().arg("prune").env("MOVER_LOCK_WAIT", "1s"))
        .expect(11, "prune against a live lock");
    let r = run(site.mover().arg("unlock")).expect(0, "unlock without force");
    assert_eq!(
        locks(&site.repo()).len(),
        1,
        "a live lock was removed without force"
    );
    assert_eq!(r.result()["stale_locks_removed"], 0);
    let r = run(site
        .mover()
        .args(["unlock", "prune"])
        .env("MOVER_UNLOCK_FORCE", "true")
        .env("MOVER_LOCK_WAIT", "0s"))
    .expect(0, "unlock prune");
    assert_eq!(r.result()["stale_locks_removed"], 1);
    assert!(locks(&site.repo()).is_empty());

    // An expired lock is litter that a plain `unlock` clears.
    killed_prune(&site, "4s");
    std::thread::sleep(Duration::from_millis(4500));
    let r = run(site.mover().arg("unlock")).expect(0, "unlock of an expired lock");
    assert_eq!(r.result()["stale_locks_removed"], 1);
    assert!(locks(&site.repo()).is_empty());
}

#[test]
fn a_missing_repository_is_created_by_backup_only() {
    let site = Site::new();
    write_tree(&site.data(), 1);
    let target = site.dir("target");
    fs::write(target.join("keep.txt"), b"volume content").unwrap();

    // Restore, forget, prune and unlock skip; check and a required restore
    // fail with 10; none of them creates anything.
    for op in ["restore", "forget", "prune", "unlock"] {
        let r = run(site
            .mover_into(&target)
            .arg(op)
            .env("FORGET_OPTIONS", "--keep-last 1"))
        .expect(0, op);
        assert_eq!(r.op(0).1, "skipped", "{op}");
    }
    run(site.mover_into(&target).arg("check")).expect(10, "check");
    run(site
        .mover_into(&target)
        .arg("restore")
        .env("MOVER_RESTORE_REQUIRE", "1"))
    .expect(10, "required restore");
    assert!(
        !Path::new(&site.repo()).exists(),
        "a repository was created"
    );
    assert_eq!(
        fs::read(target.join("keep.txt")).unwrap(),
        b"volume content"
    );

    // Backup with MOVER_INIT_IF_MISSING=false does not create it either.
    run(site
        .mover()
        .arg("backup")
        .env("MOVER_INIT_IF_MISSING", "false"))
    .expect(10, "backup without init");
    assert!(!Path::new(&site.repo()).join("config").exists());

    // `init` creates it once, then finds it there.
    let r = run(site.mover().args(["init"])).expect(0, "init");
    assert_eq!(r.op(0).1, "ok");
    let r = run(site.mover().args(["init", "backup"])).expect(0, "init backup");
    assert_eq!(r.op(0).1, "skipped");
    assert_eq!(r.result()["repository_created"], false);
}

#[test]
fn refused_credentials_exit_with_the_store_code_and_never_init() {
    let site = Site::new();
    write_tree(&site.data(), 1);
    // The location exists but every request is refused, as a store does
    // with a bad access key (HTTP 403): that is not a missing repository.
    fs::create_dir(site.repo()).unwrap();
    let r = run(site
        .mover()
        .arg("backup")
        .env("LIFEBOAT_FAULTS", "permanent=1"))
    .expect(3, "backup with refused credentials");
    assert_eq!(r.result()["repository_created"], false);
    assert_eq!(
        fs::read_dir(site.repo()).unwrap().count(),
        0,
        "something was written"
    );
}

#[test]
fn a_wrong_password_exits_12() {
    let site = Site::new();
    write_tree(&site.data(), 1);
    run(site.mover().arg("backup")).expect(0, "backup");
    for op in ["backup", "restore", "check"] {
        run(site
            .mover()
            .arg(op)
            .env("RESTIC_PASSWORD", "not the password"))
        .expect(12, op);
    }
    // The password from a file, VolSync's other way.
    let pw = site.tmp.path().join("pw");
    fs::write(&pw, format!("{}\n", common::PASSWORD)).unwrap();
    run(site
        .mover()
        .arg("check")
        .env_remove("RESTIC_PASSWORD")
        .env("RESTIC_PASSWORD_FILE", &pw))
    .expect(0, "password from a file");
}

#[test]
fn a_restore_that_fails_midway_leaves_the_volume_as_it_was() {
    let site = Site::new();
    // Several files, so that one damaged blob fails some of them and the
    // others restore: the restore gets midway.
    let mut rng = Rng::new(5);
    for i in 0..6 {
        fs::write(site.data().join(format!("f{i}.bin")), rng.bytes(700 << 10)).unwrap();
    }
    run(site.mover().arg("backup")).expect(0, "backup");

    // Damage the middle of the data pack (the larger of the two packs).
    let mut packs = Vec::new();
    for d in fs::read_dir(Path::new(&site.repo()).join("data")).unwrap() {
        for p in fs::read_dir(d.unwrap().path()).unwrap() {
            let p = p.unwrap().path();
            packs.push((fs::metadata(&p).unwrap().len(), p));
        }
    }
    packs.sort();
    let (len, pack) = packs.last().unwrap().clone();
    let mut bytes = fs::read(&pack).unwrap();
    let mid = (len / 2) as usize;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0xff;
    }
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&pack, fs::Permissions::from_mode(0o600)).unwrap();
    }
    fs::write(&pack, &bytes).unwrap();

    let volume = site.dir("volume");
    write_tree(&volume, 7);
    let before = tree_of(&volume);
    let r = run(site.mover_into(&volume).arg("restore")).expect(13, "restore of damaged data");
    assert!(r.stderr.contains("could not be restored"), "{}", r.stderr);
    assert_eq!(tree_of(&volume), before, "the volume changed");
}

#[test]
fn sigterm_stops_a_backup_without_a_snapshot() {
    let site = Site::new();
    let mut rng = Rng::new(9);
    for i in 0..12 {
        fs::write(site.data().join(format!("f{i}.bin")), rng.bytes(2 << 20)).unwrap();
    }
    // Small packs whose uploads each take a second: the backup runs for
    // many seconds, and cannot write its snapshot before they are done.
    let child = site
        .mover()
        .arg("backup")
        .env("RESTIC_PACK_SIZE", "1")
        .env("LIFEBOAT_FAULTS", "latency_ms=1000,prefix=data/")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the repository exists and the backup is under way.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !Path::new(&site.repo()).join("config").exists() {
        assert!(Instant::now() < deadline, "the backup never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stdout.contains("\"exit_code\":130"), "{stdout}");
    assert!(snapshots(&site.repo()).is_empty(), "a snapshot was written");
    // The next run backs up normally.
    run(site.mover().arg("backup")).expect(0, "backup after SIGTERM");
    assert_eq!(snapshots(&site.repo()).len(), 1);
}

#[test]
fn a_block_volume_backs_up_and_restores() {
    let site = Site::new();
    // A raw image stands in for the device (a PVC with volumeMode: Block).
    let device = site.tmp.path().join("block.img");
    let mut image = vec![0u8; 8 << 20];
    let mut rng = Rng::new(3);
    image[1 << 20..2 << 20].copy_from_slice(&rng.bytes(1 << 20));
    image[5 << 20..(5 << 20) + 4096].copy_from_slice(&rng.bytes(4096));
    fs::write(&device, &image).unwrap();
    let r = run(site.mover().arg("backup").env("BLOCK_DEVICE", &device)).expect(0, "block backup");
    assert_eq!(r.result()["source"], "block");
    let snaps = snapshots(&site.repo());
    assert_eq!(snaps[0].1.source, lifeboat::SourceKind::Block);

    // Restore onto a "device" with other content: every byte as backed up.
    let target = site.tmp.path().join("target.img");
    fs::write(&target, vec![0x5au8; 8 << 20]).unwrap();
    run(site.mover().arg("restore").env("BLOCK_DEVICE", &target)).expect(0, "block restore");
    assert!(
        fs::read(&target).unwrap() == image,
        "the restored image differs"
    );
}

#[test]
fn usage_and_settings_errors_have_their_codes() {
    let site = Site::new();
    run(site.mover().arg("bogus")).expect(2, "unknown op");
    run(std::process::Command::new(common::bin()).env_clear()).expect(2, "no op");
    run(site.mover().arg("check").env_remove("RESTIC_REPOSITORY")).expect(1, "no repository set");
    run(site
        .mover()
        .arg("restore")
        .env("RESTORE_AS_OF", "yesterday"))
    .expect(1, "bad time");
    run(site
        .mover()
        .arg("forget")
        .env("FORGET_OPTIONS", "--keep-daily"))
    .expect(1, "bad policy");
}

/// A free loopback port.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single-member etcd on loopback, killed on drop.
struct Etcd {
    child: std::process::Child,
    url: String,
}

impl Etcd {
    fn start(dir: &Path) -> Etcd {
        let (port, peer) = (free_port(), free_port());
        let url = format!("http://127.0.0.1:{port}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let log = fs::File::create(dir.join("etcd.log")).unwrap();
        let child = std::process::Command::new("etcd")
            .args(["--name", "m1", "--data-dir"])
            .arg(dir.join("etcd"))
            .args([
                "--listen-client-urls",
                &url,
                "--advertise-client-urls",
                &url,
            ])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("m1={peer_url}")])
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd is installed (scripts/setup.sh)");
        let etcd = Etcd { child, url };
        let deadline = Instant::now() + Duration::from_secs(60);
        while etcd.ctl(&["endpoint", "health"]).status.code() != Some(0) {
            assert!(Instant::now() < deadline, "etcd did not become healthy");
            std::thread::sleep(Duration::from_millis(200));
        }
        etcd
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.url)
            .args(args)
            .output()
            .expect("etcdctl is installed (scripts/setup.sh)")
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn an_etcd_snapshot_streams_in_and_restores_to_a_verified_file() {
    let site = Site::new();
    let etcd = Etcd::start(site.tmp.path());
    for i in 0..50 {
        let o = etcd.ctl(&["put", &format!("/registry/k{i}"), &"v".repeat(200 + i)]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let r = run(site
        .mover()
        .args(["backup", "forget"])
        .env(
            "ETCDCTL_ENDPOINTS",
            format!("{},http://127.0.0.1:1", etcd.url),
        )
        .env("NODE_NAME", "server-1")
        .env("FORGET_OPTIONS", "--keep-last 1"))
    .expect(0, "etcd backup");
    let res = r.result();
    assert_eq!(res["source"], "etcd");
    let revision = res["etcd_revision"].as_i64().unwrap();
    assert!(revision >= 51, "revision {revision}");
    let snaps = snapshots(&site.repo());
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].1.hostname, "server-1");
    assert_eq!(snaps[0].1.source, lifeboat::SourceKind::Etcd);
    // Forget keeps the node's own snapshots per its policy: a second
    // backup, then one left.
    run(site
        .mover()
        .args(["backup", "forget"])
        .env("ETCDCTL_ENDPOINTS", &etcd.url)
        .env("NODE_NAME", "server-1")
        .env("FORGET_OPTIONS", "--keep-last 1"))
    .expect(0, "second etcd backup");
    let snaps = snapshots(&site.repo());
    assert_eq!(snaps.len(), 1, "keep-last 1 of the node's etcd snapshots");

    // Restore writes the file etcdctl would have saved, into DATA_DIR.
    let out = site.dir("etcd-restore");
    run(site
        .mover_into(&out)
        .arg("restore")
        .env("MOVER_SOURCE", "etcd")
        .env("NODE_NAME", "server-1"))
    .expect(0, "etcd restore");
    let files: Vec<_> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("etcd-snapshot-server-1-"), "{name}");
    assert_eq!(
        fs::metadata(&files[0]).unwrap().len() % 512,
        32,
        "db + sha256"
    );
    let status = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&files[0])
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert!(status["revision"].as_i64().unwrap() >= 51);
    assert!(status["totalKey"].as_i64().unwrap() >= 50);
}

#[test]
fn the_manifests_pass_the_kubernetes_schemas() {
    // scripts/validate-manifests.sh installs kubernetes-validate (PyPI)
    // into a virtualenv on first use, then checks deploy/ offline.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/validate-manifests.sh");
    let o = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains(" 0 errors"), "{out}");
}

#[test]
fn every_path_of_a_snapshot_is_restored() {
    let site = Site::new();
    write_tree(&site.data(), 1);
    run(site.mover().arg("backup")).expect(0, "backup");
    // A snapshot of two folders, taken with the library as another tool
    // (the CLI) would, under the mover's host name.
    let a = site.dir("src/a");
    let b = site.dir("src/b");
    write_tree(&a, 2);
    write_tree(&b, 3);
    let repo = common::open_repo(&site.repo());
    std::thread::sleep(Duration::from_millis(1100));
    let opts = lifeboat::BackupOptions {
        hostname: Some("volsync".into()),
        ..Default::default()
    };
    repo.backup(
        lifeboat::BackupSource::Paths(vec![a.clone(), b.clone()]),
        &opts,
        &lifeboat::Progress::default(),
    )
    .unwrap();
    let target = site.dir("target");
    run(site.mover_into(&target).arg("restore")).expect(0, "restore of two paths");
    for p in [&a, &b] {
        assert_same_tree(p, &target.join(p.strip_prefix("/").unwrap()));
    }
}

#[test]
fn custom_ca_is_taken_and_a_missing_one_is_a_settings_error() {
    let site = Site::new();
    write_tree(&site.data(), 1);
    let ca = site.tmp.path().join("ca.crt");
    fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    // The mover runs itself again trusting the CA; the run works as before.
    let r = run(site
        .mover()
        .arg("backup")
        .env("CUSTOM_CA", &ca)
        .env("TMPDIR", site.tmp.path()))
    .expect(0, "backup with CUSTOM_CA");
    assert_eq!(r.stdout.matches("MOVER_RESULT").count(), 1, "{}", r.stdout);
    let bundles: Vec<_> = fs::read_dir(site.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("lifeboat-mover-ca-"))
        .collect();
    assert_eq!(bundles.len(), 1, "{bundles:?}");
    let bundle = fs::read_to_string(site.tmp.path().join(&bundles[0])).unwrap();
    assert!(bundle.ends_with("-----END CERTIFICATE-----\n"));
    run(site
        .mover()
        .arg("backup")
        .env("CUSTOM_CA", site.tmp.path().join("nope.crt")))
    .expect(1, "backup with a missing CUSTOM_CA");
}

#[test]
fn a_failing_forget_never_fails_a_saved_backup() {
    let site = Site::new();
    // An append-only repository refuses every delete: forget fails there
    // while backups work, as with credentials that may write but not delete.
    let backend = lifeboat::open_location(&site.repo(), true).unwrap();
    let init = lifeboat::InitOptions {
        kdf: lifeboat::KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        append_only: true,
        ..Default::default()
    };
    lifeboat::Repository::init(backend, common::PASSWORD.as_bytes(), &init).unwrap();
    for seed in 1..=2 {
        write_tree(&site.data(), seed);
        let r = run(site
            .mover()
            .args(["backup", "forget"])
            .env("FORGET_OPTIONS", "--keep-last 1"))
        .expect(0, "backup forget in an append-only repository");
        assert_eq!(r.op(0).1, "ok");
        if seed == 2 {
            assert_eq!(r.op(1).1, "warning", "{}", r.stdout);
        }
    }
    assert_eq!(snapshots(&site.repo()).len(), 2, "both backups stand");
    // MOVER_STRICT makes it fail the run; forget alone fails as it should.
    write_tree(&site.data(), 3);
    let r = run(site
        .mover()
        .args(["backup", "forget"])
        .env("FORGET_OPTIONS", "--keep-last 1")
        .env("MOVER_STRICT", "true"));
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_eq!(r.op(1).1, "failed");
    let r = run(site
        .mover()
        .arg("forget")
        .env("FORGET_OPTIONS", "--keep-last 1"));
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert_eq!(snapshots(&site.repo()).len(), 3);
}
