//! A throwaway single-member etcd on loopback, started on a restored
//! snapshot file for a drill: `etcdutl snapshot restore` (or, for etcd
//! 3.4, `etcdctl snapshot restore`) into a new data directory, `etcd` on
//! free loopback ports, then `etcdctl` for its revision and key count.
//! The process is killed and waited for before [`serve`] returns.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the throwaway etcd served.
#[derive(Debug, Clone)]
pub(crate) struct ServedFacts {
    pub revision: i64,
    pub keys: u64,
    pub version: String,
}

/// Why no facts came back.
#[derive(Debug)]
pub(crate) enum ServeError {
    /// A tool is missing: the check cannot run here.
    NotInstalled(String),
    /// The tools ran and the snapshot did not come up.
    Failed(String),
}

/// How long etcd may take to become healthy.
const START_TIMEOUT: Duration = Duration::from_secs(60);

const NAME: &str = "lifeboat-drill";

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn free_port() -> Result<u16, ServeError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ServeError::Failed(format!("no free loopback port: {e}")))
}

fn etcdctl(url: &str) -> Command {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(url)
        .stdin(Stdio::null());
    c
}

fn output(c: &mut Command, what: &str) -> Result<Vec<u8>, ServeError> {
    let o = c
        .output()
        .map_err(|e| ServeError::Failed(format!("{what}: {e}")))?;
    if !o.status.success() {
        return Err(ServeError::Failed(format!(
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )));
    }
    Ok(o.stdout)
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Restore `file` into `work/data` and serve it; the facts it reports.
pub(crate) fn serve(file: &Path, work: &Path) -> Result<ServedFacts, ServeError> {
    if !installed("etcd") || !installed("etcdctl") {
        return Err(ServeError::NotInstalled(
            "etcd and etcdctl are not both installed".into(),
        ));
    }
    std::fs::create_dir_all(work)
        .map_err(|e| ServeError::Failed(format!("{}: {e}", work.display())))?;
    let data = work.join("data");
    let peer = format!("http://127.0.0.1:{}", free_port()?);
    let client = format!("http://127.0.0.1:{}", free_port()?);
    let cluster = format!("{NAME}={peer}");
    // etcd 3.5 moved the offline restore to etcdutl; 3.4 has only etcdctl's.
    let mut restore = if installed("etcdutl") {
        Command::new("etcdutl")
    } else {
        let mut c = Command::new("etcdctl");
        c.env("ETCDCTL_API", "3");
        c
    };
    restore
        .args(["snapshot", "restore"])
        .arg(file)
        .arg("--data-dir")
        .arg(&data)
        .args(["--name", NAME, "--initial-cluster", &cluster])
        .args(["--initial-advertise-peer-urls", &peer])
        .stdin(Stdio::null());
    output(&mut restore, "snapshot restore")?;
    let log_path = work.join("etcd.log");
    let log = std::fs::File::create(&log_path)
        .map_err(|e| ServeError::Failed(format!("{}: {e}", log_path.display())))?;
    let log2 = log
        .try_clone()
        .map_err(|e| ServeError::Failed(e.to_string()))?;
    let child = Command::new("etcd")
        .args(["--name", NAME])
        .arg("--data-dir")
        .arg(&data)
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &cluster])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2)
        .spawn()
        .map_err(|e| ServeError::Failed(format!("cannot start etcd: {e}")))?;
    let mut etcd = Killed(child);
    let deadline = Instant::now() + START_TIMEOUT;
    let status = loop {
        if let Ok(Some(st)) = etcd.0.try_wait() {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(3).collect();
            return Err(ServeError::Failed(format!(
                "etcd exited ({st}): {}",
                tail.join(" | ")
            )));
        }
        if let Ok(out) = output(
            etcdctl(&client).args(["endpoint", "status", "-w", "json"]),
            "etcdctl endpoint status",
        ) {
            break out;
        }
        if Instant::now() > deadline {
            return Err(ServeError::Failed(format!(
                "etcd did not become healthy within {}s",
                START_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let status: serde_json::Value = serde_json::from_slice(&status)
        .map_err(|e| ServeError::Failed(format!("etcdctl endpoint status: {e}")))?;
    let version = status[0]["Status"]["version"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let count = output(
        // `count` is of the whole range whatever the limit (etcd 3.4 has
        // no --count-only).
        etcdctl(&client).args([
            "get",
            "",
            "--prefix",
            "--keys-only",
            "--limit",
            "1",
            "-w",
            "json",
        ]),
        "etcdctl get",
    )?;
    let count: serde_json::Value = serde_json::from_slice(&count)
        .map_err(|e| ServeError::Failed(format!("etcdctl get: {e}")))?;
    drop(etcd);
    Ok(ServedFacts {
        revision: count["header"]["revision"].as_i64().unwrap_or(0),
        keys: count["count"].as_u64().unwrap_or(0),
        version,
    })
}
