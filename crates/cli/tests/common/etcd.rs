//! A single-member etcd on loopback for the tests that need one.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use std::net::TcpListener;

use super::{Output, run};

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `etcdctl` (API v3) against `endpoint`.
pub fn etcdctl(endpoint: &str) -> Command {
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .stdin(Stdio::null());
    c
}

/// A single-member etcd on loopback with its own data directory, killed
/// on drop.
pub struct Etcd {
    pub child: Child,
    pub url: String,
}

impl Etcd {
    /// Start a member named `name` on `data_dir` (new, or restored by
    /// `etcdctl snapshot restore` with the same name and `peer_port`).
    pub fn start(data_dir: &Path, name: &str, peer_port: u16) -> Etcd {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let child = Command::new("etcd")
            .arg("--name")
            .arg(name)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen-client-urls")
            .arg(&url)
            .arg("--advertise-client-urls")
            .arg(&url)
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(format!("{name}={peer}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd is installed (scripts/setup.sh)");
        let mut e = Etcd { child, url };
        e.wait_healthy(data_dir);
        e
    }

    pub fn wait_healthy(&mut self, data_dir: &Path) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(data_dir.with_extension("log")).unwrap();
                panic!("etcd exited ({status}):\n{log}");
            }
            let o = run(etcdctl(&self.url).args(["endpoint", "health"]));
            if o.code == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "etcd not healthy: {}", o.stderr);
            thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn ctl<const N: usize>(&self, args: [&str; N]) -> Output {
        run(etcdctl(&self.url).args(args))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
