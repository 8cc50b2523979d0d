//! A Garage cluster for tests: three nodes on loopback ports, replication
//! factor 3, a bucket and a key, run by `scripts/garage.sh`.
//!
//! [`GarageCluster::shared`] uses the cluster named by
//! `LIFEBOAT_TEST_GARAGE_DIR` (which `scripts/test.sh` starts once for the
//! whole run) or, without it, starts one of its own for the calling process.
//! [`GarageCluster::private`] always starts a new one (for tests that kill
//! nodes). A test never skips itself: without a cluster it fails.
//! `scripts/test.sh` with `LIFEBOAT_SKIP_S3=1` leaves the S3 tests out of the
//! run by a nextest filter, so the runner's summary counts them as skipped.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a cluster could not be started, found or asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GarageError {
    /// `scripts/garage.sh` could not be run.
    #[error("cannot run {}: {source}", script.display())]
    Spawn {
        /// The script.
        script: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// `scripts/garage.sh` failed.
    #[error("scripts/garage.sh {args} failed ({status}):\n{output}")]
    Script {
        /// Its arguments.
        args: String,
        /// How it exited.
        status: ExitStatus,
        /// What it printed.
        output: String,
    },
    /// `LIFEBOAT_TEST_GARAGE_DIR` names no cluster.
    #[error("LIFEBOAT_TEST_GARAGE_DIR={dir}: no cluster there: {source}")]
    NoCluster {
        /// The folder named.
        dir: String,
        /// Why its `env` file could not be read.
        source: std::io::Error,
    },
    /// A node's metrics could not be read.
    #[error("metrics of node {node}: {source}")]
    Metrics {
        /// The node.
        node: u32,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A running cluster and the environment that reaches it.
#[derive(Debug)]
pub struct GarageCluster {
    dir: PathBuf,
    env: Vec<(String, String)>,
    owned: bool,
}

/// `scripts/garage.sh` of this workspace.
pub fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage.sh")
}

fn parse_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run_script(args: &[&str]) -> Result<String, GarageError> {
    let out = Command::new("bash")
        .arg(script())
        .args(args)
        .output()
        .map_err(|source| GarageError::Spawn {
            script: script(),
            source,
        })?;
    if !out.status.success() {
        return Err(GarageError::Script {
            args: args.join(" "),
            status: out.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl GarageCluster {
    /// The run's shared cluster, or a new one for this process.
    pub fn shared() -> Result<GarageCluster, GarageError> {
        match std::env::var("LIFEBOAT_TEST_GARAGE_DIR") {
            Ok(dir) if !dir.is_empty() => {
                let text =
                    std::fs::read_to_string(Path::new(&dir).join("env")).map_err(|source| {
                        GarageError::NoCluster {
                            dir: dir.clone(),
                            source,
                        }
                    })?;
                Ok(GarageCluster {
                    dir: dir.into(),
                    env: parse_env(&text),
                    owned: false,
                })
            }
            _ => GarageCluster::private(),
        }
    }

    /// A new cluster, stopped when this value is dropped or the process ends.
    pub fn private() -> Result<GarageCluster, GarageError> {
        static N: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id().to_string();
        let mut last = None;
        // Ports are picked at random; two clusters starting at once can
        // collide, so try again on other ports.
        for _ in 0..3 {
            let dir = std::env::temp_dir().join(format!(
                "lifeboat-garage-{pid}-{}",
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let d = dir.to_string_lossy().into_owned();
            match run_script(&["start", &d, "--watch", &pid]) {
                Ok(text) => {
                    return Ok(GarageCluster {
                        dir,
                        env: parse_env(&text),
                        owned: true,
                    });
                }
                Err(e) => last = Some(e),
            }
        }
        // Three tries ran, so `last` holds the third one's error.
        Err(last.unwrap_or_else(|| GarageError::Script {
            args: "start".into(),
            status: ExitStatus::default(),
            output: String::new(),
        }))
    }

    /// The environment variables that reach the cluster (`AWS_*` and
    /// `LIFEBOAT_TEST_*`).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// One variable of [`env`](Self::env), or "".
    pub fn var(&self, name: &str) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// Node 1's S3 endpoint.
    pub fn endpoint(&self) -> &str {
        self.var("AWS_ENDPOINT_URL")
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        self.var("LIFEBOAT_TEST_S3_BUCKET")
    }

    /// A repository URL in the bucket under a folder unique to this call.
    pub fn unique_url(&self, name: &str) -> String {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!(
            "s3://{}/{name}-{}-{nanos}-{}",
            self.bucket(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// The object_store settings for [`crate::OpenOptions::settings`] (for
    /// tests that open the store in-process, where the environment cannot
    /// be changed).
    pub fn settings(&self) -> Vec<(String, String)> {
        [
            ("aws_access_key_id", "AWS_ACCESS_KEY_ID"),
            ("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY"),
            ("aws_region", "AWS_REGION"),
            ("aws_endpoint", "AWS_ENDPOINT_URL"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), self.var(v).to_string()))
        .collect()
    }

    /// Kill node `n` (1 to 3) with SIGKILL.
    pub fn kill_node(&self, n: u32) -> Result<(), GarageError> {
        run_script(&["kill-node", &self.dir.to_string_lossy(), &n.to_string()]).map(|_| ())
    }

    /// Start node `n` again and wait until it is healthy.
    pub fn start_node(&self, n: u32) -> Result<(), GarageError> {
        run_script(&["start-node", &self.dir.to_string_lossy(), &n.to_string()]).map(|_| ())
    }

    /// The cluster's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// S3 requests node `n` has served since it started, by API endpoint
    /// (`ListObjectsV2`, `GetObject`, ...), from its metrics.
    pub fn s3_requests(&self, n: u32) -> Result<HashMap<String, u64>, GarageError> {
        let err = |source: Box<dyn std::error::Error + Send + Sync>| GarageError::Metrics {
            node: n,
            source,
        };
        let base: u32 = std::fs::read_to_string(self.dir.join("base_port"))
            .map_err(|e| err(e.into()))?
            .trim()
            .parse()
            .map_err(|e: std::num::ParseIntError| err(e.into()))?;
        let port = base + (n - 1) * 3 + 2;
        let mut s = TcpStream::connect(("127.0.0.1", port as u16)).map_err(|e| err(e.into()))?;
        write!(
            s,
            "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer lifeboat-test-metrics\r\n\r\n"
        )
        .map_err(|e| err(e.into()))?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(|e| err(e.into()))?;
        let mut out = HashMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("api_s3_request_counter{") else {
                continue;
            };
            let Some((labels, value)) = rest.split_once("} ") else {
                continue;
            };
            let Some(ep) = labels
                .split(',')
                .find_map(|l| l.strip_prefix("api_endpoint=\""))
                .map(|v| v.trim_end_matches('"'))
            else {
                continue;
            };
            let v: u64 = value.trim().parse().unwrap_or(0);
            *out.entry(ep.to_string()).or_default() += v;
        }
        Ok(out)
    }
}

impl Drop for GarageCluster {
    fn drop(&mut self) {
        if self.owned {
            let _ = run_script(&["stop", &self.dir.to_string_lossy()]);
        }
    }
}
