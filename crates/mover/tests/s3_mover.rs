//! The mover against the Garage S3 cluster (`scripts/garage.sh`; found
//! through `LIFEBOAT_TEST_GARAGE_DIR`), with the environment a VolSync
//! Secret gives: `RESTIC_REPOSITORY=s3://...`, `RESTIC_PASSWORD` and the
//! `AWS_*` credentials. Every test is named `s3_*`, so that
//! scripts/test.sh leaves them out (as skipped) where no cluster runs;
//! without a cluster they fail, never pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{PASSWORD, Rng, assert_same_tree, mover, run, tree_of, write_tree};
use lifeboat::{Backend, OpenOptions};
use lifeboat_store::testing::garage::GarageCluster;

fn cluster() -> GarageCluster {
    GarageCluster::shared().unwrap_or_else(|e| {
        panic!(
            "no Garage cluster ({e}); the S3 tests need one: scripts/test.sh starts it, and with \
             LIFEBOAT_SKIP_S3=1 leaves these tests out, so the runner shows them as skipped"
        )
    })
}

/// A repository location in the cluster, a volume and a cache.
struct Site<'c> {
    cluster: &'c GarageCluster,
    url: String,
    tmp: tempfile::TempDir,
}

impl<'c> Site<'c> {
    fn new(cluster: &'c GarageCluster, name: &str) -> Site<'c> {
        let s = Site {
            cluster,
            url: cluster.unique_url(name),
            tmp: tempfile::tempdir().unwrap(),
        };
        fs::create_dir(s.data()).unwrap();
        s
    }
    fn data(&self) -> std::path::PathBuf {
        self.tmp.path().join("data")
    }
    fn dir(&self, name: &str) -> std::path::PathBuf {
        let p = self.tmp.path().join(name);
        fs::create_dir_all(&p).unwrap();
        p
    }
    /// The mover with the cluster's `AWS_*` credentials, on `data`.
    fn mover_on(&self, data: &Path) -> std::process::Command {
        let mut c = mover(&self.url, data, &self.tmp.path().join("cache"));
        for (k, v) in self.cluster.env() {
            c.env(k, v);
        }
        c
    }
    fn mover(&self) -> std::process::Command {
        self.mover_on(&self.data())
    }
    fn backend(&self) -> Arc<dyn Backend> {
        let mut o = OpenOptions::default();
        o.settings = self.cluster.settings();
        lifeboat::open_location_with(&self.url, false, &o).unwrap()
    }
    fn repo(&self) -> lifeboat::Repository {
        lifeboat::Repository::open_with_cache(self.backend(), PASSWORD.as_bytes(), None).unwrap()
    }
    fn snapshot_count(&self) -> usize {
        self.repo().snapshots().unwrap().items.len()
    }
    fn has_config(&self) -> bool {
        self.backend().get("config").is_ok()
    }
    /// Lock objects in the repository. A Garage listing may still show an
    /// object for a moment after its delete, while a read already says it
    /// is gone (docs/storage.md, "Listings may lag deletes"): as every
    /// reader of the repository does, an object listed but not found counts
    /// as deleted.
    fn locks(&self) -> usize {
        let b = self.backend();
        b.list(&lifeboat::layout::Folder::Locks.prefix())
            .unwrap()
            .iter()
            .filter(|o| b.head(&o.path).is_ok())
            .count()
    }
}

#[test]
fn s3_backup_forget_prune_restore_and_check() {
    let cluster = cluster();
    let site = Site::new(&cluster, "mover-cycle");
    let mut versions = Vec::new();
    for seed in 1..=3 {
        write_tree(&site.data(), seed);
        let copy = site.dir(&format!("v{seed}"));
        write_tree(&copy, seed);
        versions.push(copy);
        let r = run(site
            .mover()
            .args(["backup", "forget"])
            .env("FORGET_OPTIONS", "--keep-last 2"))
        .expect(0, "backup forget on S3");
        assert_eq!(r.result()["repository_created"], seed == 1);
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(site.snapshot_count(), 2);

    // Garage 2.x ignores conditional writes (If-None-Match), so prune
    // cannot take its lock exclusively there and refuses, deleting nothing.
    let r = run(site.mover().arg("prune")).expect(1, "prune on a store without exclusive create");
    assert!(
        r.stderr.contains("cannot create objects exclusively"),
        "{}",
        r.stderr
    );
    assert_eq!(site.snapshot_count(), 2);
    // Told to trust the server's conditional writes (one prune at a time
    // here), it prunes.
    let r = run(site
        .mover()
        .args(["prune", "check"])
        .env("LIFEBOAT_S3_CONDITIONAL_PUT", "yes")
        .env("MOVER_PRUNE_INSTANT_DELETE", "true")
        .env("MOVER_CHECK_READ_DATA", "100%"))
    .expect(0, "prune check on S3");
    assert!(r.result()["prune_deleted_bytes"].as_u64().unwrap() > 0);

    // Latest, then the one before it (SELECT_PREVIOUS), then as of the
    // second snapshot's time: each byte-identical to what was backed up.
    let empty = site.dir("latest");
    run(site.mover_on(&empty).arg("restore")).expect(0, "restore");
    assert_same_tree(&versions[2], &empty);
    let prev = site.dir("previous");
    run(site
        .mover_on(&prev)
        .arg("restore")
        .env("SELECT_PREVIOUS", "1"))
    .expect(0, "restore previous");
    assert_same_tree(&versions[1], &prev);
    let mut snaps = site.repo().snapshots().unwrap().items;
    snaps.sort_by(|a, b| a.1.time.cmp(&b.1.time));
    let as_of = site.dir("as-of");
    run(site
        .mover_on(&as_of)
        .arg("restore")
        .env("RESTORE_AS_OF", &snaps[0].1.time))
    .expect(0, "restore as of");
    assert_same_tree(&versions[1], &as_of);
}

#[test]
fn s3_wrong_credentials_exit_3_and_a_missing_repository_is_never_created_by_restore() {
    let cluster = cluster();
    let site = Site::new(&cluster, "mover-auth");
    write_tree(&site.data(), 1);

    // Bad secret key: the store answers 403, which is not "no repository".
    let r = run(site.mover().arg("backup").env(
        "AWS_SECRET_ACCESS_KEY",
        "0000000000000000000000000000000000000000000000000000000000000000",
    ))
    .expect(3, "backup with a wrong secret key");
    assert_eq!(r.result()["repository_created"], false);
    assert!(
        !site.has_config(),
        "a repository was created with bad credentials"
    );

    // With good credentials: restore, forget and prune skip, check fails
    // with 10, and still nothing is created.
    let target = site.dir("target");
    fs::write(target.join("keep.txt"), b"volume content").unwrap();
    for op in ["restore", "forget", "prune", "unlock"] {
        let r = run(site
            .mover_on(&target)
            .arg(op)
            .env("FORGET_OPTIONS", "--keep-last 1"))
        .expect(0, op);
        assert_eq!(r.op(0).1, "skipped", "{op}");
    }
    run(site.mover_on(&target).arg("check")).expect(10, "check without a repository");
    assert!(!site.has_config());
    assert_eq!(
        fs::read(target.join("keep.txt")).unwrap(),
        b"volume content"
    );

    // Backup creates it; then a wrong password is 12.
    run(site.mover().arg("backup")).expect(0, "backup");
    assert!(site.has_config());
    run(site.mover().arg("backup").env("RESTIC_PASSWORD", "wrong")).expect(12, "wrong password");
}

#[test]
fn s3_killed_prune_lock_and_failed_restore() {
    let cluster = cluster();
    let site = Site::new(&cluster, "mover-lock");
    let mut rng = Rng::new(5);
    for i in 0..6 {
        fs::write(site.data().join(format!("f{i}.bin")), rng.bytes(700 << 10)).unwrap();
    }
    run(site.mover().arg("backup")).expect(0, "backup");

    // A prune killed after taking its lock; the next waits it out. (Garage
    // ignores conditional writes: the prunes are told to trust them.)
    let r = run(site
        .mover()
        .arg("prune")
        .env("LIFEBOAT_S3_CONDITIONAL_PUT", "yes")
        .env("MOVER_PRUNE_LOCK_TTL", "4s")
        .env("LIFEBOAT_FAULTS", "kill_at=2,kill_on=writes"));
    assert_eq!(
        r.code, -1,
        "prune was not killed:\n{}\n{}",
        r.stdout, r.stderr
    );
    assert_eq!(site.locks(), 1);
    let t = Instant::now();
    run(site
        .mover()
        .arg("prune")
        .env("LIFEBOAT_S3_CONDITIONAL_PUT", "yes")
        .env("MOVER_LOCK_WAIT", "60s"))
    .expect(0, "prune after a killed one");
    assert!(t.elapsed() < Duration::from_secs(30));
    assert_eq!(site.locks(), 0);

    // Reads of packs come back damaged (a byte flipped): the restore fails
    // part way and the volume keeps its content.
    let volume = site.dir("volume");
    write_tree(&volume, 7);
    let before = tree_of(&volume);
    run(site
        .mover_on(&volume)
        .arg("restore")
        .env("LIFEBOAT_FAULTS", "flip=1,prefix=data/"))
    .expect(13, "restore with damaged reads");
    assert_eq!(tree_of(&volume), before, "the volume changed");
    // Undamaged, the same restore succeeds.
    run(site.mover_on(&volume).arg("restore")).expect(0, "restore");
    assert_same_tree(&site.data(), &volume);
}
