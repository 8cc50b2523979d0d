//! Repositories in the test Garage cluster (see
//! `lifeboat_store::testing::garage`): the bucket and key come from the
//! cluster's environment, each repository gets its own prefix and cache.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use lifeboat_store::testing::garage::GarageCluster;
use tempfile::TempDir;

use crate::common::{Output, PASSWORD, base_cmd, run};

/// Variables that change how the binary reaches a store; removed from every
/// child so the caller's environment does not leak in.
const STORE_VARS: &[&str] = &[
    "LIFEBOAT_CACHE_DIR",
    "LIFEBOAT_FAULTS",
    "LIFEBOAT_RETRIES",
    "LIFEBOAT_RETRY_DELAY_MS",
    "LIFEBOAT_STORE_CONNECTIONS",
    "LIFEBOAT_STORE_TIMEOUT",
    "LIFEBOAT_STORE_READ_AHEAD",
    "LIFEBOAT_STORE_STATS",
    "LIFEBOAT_S3_ENDPOINT",
    "LIFEBOAT_S3_CONDITIONAL_PUT",
    "LIFEBOAT_FROM_REPOSITORY",
    "LIFEBOAT_FROM_PASSWORD",
    "LIFEBOAT_FROM_PASSWORD_FILE",
    "LIFEBOAT_FROM_PASSWORD_COMMAND",
];

/// The run's shared cluster. Without one the test fails: it never passes
/// without a server.
pub fn cluster() -> GarageCluster {
    GarageCluster::shared().unwrap_or_else(|e| panic!("no Garage cluster ({e}); the S3 tests need one: scripts/test.sh starts it, and with LIFEBOAT_SKIP_S3=1 it leaves these tests out, so the runner shows them as skipped"))
}

/// A cluster of the test's own (for tests that kill nodes or count
/// requests). Without one the test fails.
pub fn own_cluster() -> GarageCluster {
    GarageCluster::private().unwrap_or_else(|e| panic!("no Garage cluster ({e}); the S3 tests need one: scripts/test.sh starts it, and with LIFEBOAT_SKIP_S3=1 it leaves these tests out, so the runner shows them as skipped"))
}

/// A `lifeboat` command that reaches `c`: the cluster's AWS_* variables,
/// quick retries, nothing else from the caller's store settings.
pub fn s3_cmd(c: &GarageCluster) -> Command {
    let mut cmd = base_cmd();
    for v in STORE_VARS {
        cmd.env_remove(v);
    }
    for (k, v) in c.env() {
        cmd.env(k, v);
    }
    cmd.env("LIFEBOAT_RETRY_DELAY_MS", "20")
        // Nothing of the tests in the real ~/.cache.
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("lifeboat-test-xdg-cache"),
        );
    cmd
}

/// A repository under its own prefix in the cluster's bucket.
pub struct S3Repo<'c> {
    /// The cluster.
    pub cluster: &'c GarageCluster,
    /// `s3://bucket/prefix`.
    pub url: String,
    /// Its password.
    pub password: String,
    /// Scratch space and the cache folder.
    pub tmp: TempDir,
}

impl<'c> S3Repo<'c> {
    /// A new repository (`init` with cheap key derivation).
    pub fn new(cluster: &'c GarageCluster, name: &str) -> S3Repo<'c> {
        S3Repo::with_init_args(cluster, name, &[])
    }

    /// A new repository, `init` given `extra` arguments too.
    pub fn with_init_args(cluster: &'c GarageCluster, name: &str, extra: &[&str]) -> S3Repo<'c> {
        let r = S3Repo::uninit(cluster, name);
        run(r
            .cmd()
            .args(["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"])
            .args(extra))
        .ok("init on S3");
        r
    }

    /// A location for a repository, not initialised.
    pub fn uninit(cluster: &'c GarageCluster, name: &str) -> S3Repo<'c> {
        S3Repo {
            cluster,
            url: cluster.unique_url(name),
            password: PASSWORD.to_string(),
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    /// The cache folder given to every command.
    pub fn cache_dir(&self) -> PathBuf {
        self.tmp.path().join("cache")
    }

    /// A scratch folder.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let p = self.tmp.path().join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// A command for this repository.
    pub fn cmd(&self) -> Command {
        let mut c = s3_cmd(self.cluster);
        c.env("LIFEBOAT_REPOSITORY", &self.url)
            .env("LIFEBOAT_PASSWORD", &self.password)
            .env("LIFEBOAT_CACHE_DIR", self.cache_dir());
        c
    }

    /// Run with `args`.
    pub fn run<I, S>(&self, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        run(self.cmd().args(args))
    }

    /// `backup --json <paths>`, asserting success; the summary.
    pub fn backup(&self, paths: &[&Path]) -> serde_json::Value {
        run(self.cmd().arg("--json").arg("backup").args(paths))
            .ok("backup to S3")
            .summary()
    }

    /// `restore <snapshot> --target <target>`, asserting success.
    pub fn restore(&self, snapshot: &str, target: &Path) -> Output {
        run(self
            .cmd()
            .args(["restore", snapshot, "--target"])
            .arg(target))
        .ok("restore from S3")
    }

    /// `check --json [--read-data]`, asserting a clean report.
    pub fn check(&self, read_data: bool) -> serde_json::Value {
        let mut c = self.cmd();
        c.args(["--json", "check"]);
        if read_data {
            c.arg("--read-data");
        }
        let o = run(&mut c).ok("check on S3");
        let v = o.json();
        assert_eq!(
            v["problems"].as_array().map(Vec::len),
            Some(0),
            "check found problems: {v}"
        );
        v
    }

    /// Snapshot ids, oldest first.
    pub fn snapshot_ids(&self) -> Vec<String> {
        let o = self.run(["--json", "snapshots"]).ok("snapshots");
        o.json()
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// The JSON lines a `stats=FILE` fault configuration (or
/// `LIFEBOAT_STORE_STATS=FILE`) wrote, one per backend.
pub fn read_stats(file: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
