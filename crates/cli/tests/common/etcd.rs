//! A single-member etcd on loopback for the tests that need one, over
//! plain HTTP or over TLS with client certificates from a throwaway PKI.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
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

/// A throwaway PKI made with `openssl` in one folder: a CA, a server
/// certificate for 127.0.0.1 (SAN IP:127.0.0.1), a client certificate
/// (CN `lifeboat-test-client`, not an etcd user name, so that it never
/// authenticates as one), and a second CA that signed none of them. The
/// server certificate is for servers only (extended key usage
/// serverAuth): a member refuses it as a client's.
pub struct Pki {
    pub ca: PathBuf,
    pub server: PathBuf,
    pub server_key: PathBuf,
    pub client: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let p = |name: &str| dir.join(name);
        let pki = Pki {
            ca: p("ca.pem"),
            server: p("server.pem"),
            server_key: p("server-key.pem"),
            client: p("client.pem"),
            client_key: p("client-key.pem"),
            other_ca: p("other-ca.pem"),
        };
        let cas = [
            (&pki.ca, p("ca-key.pem"), "/CN=lifeboat-test-ca"),
            (
                &pki.other_ca,
                p("other-ca-key.pem"),
                "/CN=lifeboat-other-ca",
            ),
        ];
        for (ca, key, subject) in cas {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                subject,
                "-keyout",
                s(&key),
                "-out",
                s(ca),
            ]);
        }
        let leaves = [
            (
                &pki.server,
                &pki.server_key,
                "127.0.0.1",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            (
                &pki.client,
                &pki.client_key,
                "lifeboat-test-client",
                "extendedKeyUsage=clientAuth\n",
            ),
        ];
        for (cert, key, cn, ext) in leaves {
            let (csr, extfile) = (cert.with_extension("csr"), cert.with_extension("ext"));
            std::fs::write(&extfile, ext).unwrap();
            openssl(&[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                s(key),
                "-out",
                s(&csr),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-days",
                "2",
                "-in",
                s(&csr),
                "-CA",
                s(&pki.ca),
                "-CAkey",
                s(&p("ca-key.pem")),
                "-CAcreateserial",
                "-extfile",
                s(&extfile),
                "-out",
                s(cert),
            ]);
        }
        pki
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn openssl(args: &[&str]) {
    let o = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect(
            "openssl is needed for the etcd TLS tests (scripts/test.sh leaves them out without it)",
        );
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A single-member etcd on loopback with its own data directory, killed
/// on drop.
pub struct Etcd {
    pub child: Child,
    pub url: String,
    /// Flags every `etcdctl` against this member takes (TLS files, user).
    pub ctl_flags: Vec<OsString>,
}

impl Etcd {
    /// Start a member named `name` on `data_dir` (new, or restored by
    /// `etcdctl snapshot restore` with the same name and `peer_port`).
    pub fn start(data_dir: &Path, name: &str, peer_port: u16) -> Etcd {
        Etcd::launch(data_dir, name, peer_port, None)
    }

    /// The same, serving clients over TLS only (https) with `pki`'s server
    /// certificate, and requiring a client certificate signed by its CA.
    pub fn start_tls(data_dir: &Path, name: &str, peer_port: u16, pki: &Pki) -> Etcd {
        Etcd::launch(data_dir, name, peer_port, Some(pki))
    }

    fn launch(data_dir: &Path, name: &str, peer_port: u16, tls: Option<&Pki>) -> Etcd {
        let port = free_port();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let log = std::fs::File::create(data_dir.with_extension("log")).unwrap();
        let mut cmd = Command::new("etcd");
        cmd.arg("--name")
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
            .arg(format!("{name}={peer}"));
        let mut ctl_flags: Vec<OsString> = Vec::new();
        if let Some(pki) = tls {
            cmd.arg("--cert-file")
                .arg(&pki.server)
                .arg("--key-file")
                .arg(&pki.server_key)
                .arg("--trusted-ca-file")
                .arg(&pki.ca)
                .arg("--client-cert-auth");
            for (flag, path) in [
                ("--cacert", &pki.ca),
                ("--cert", &pki.client),
                ("--key", &pki.client_key),
            ] {
                ctl_flags.push(flag.into());
                ctl_flags.push(path.into());
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("etcd is installed (scripts/setup.sh)");
        let mut e = Etcd {
            child,
            url,
            ctl_flags,
        };
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
            let o = run(self.etcdctl().args(["endpoint", "health"]));
            if o.code == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "etcd not healthy: {}", o.stderr);
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// `etcdctl` against this member, with its TLS files and user.
    pub fn etcdctl(&self) -> Command {
        let mut c = etcdctl(&self.url);
        c.args(&self.ctl_flags);
        c
    }

    pub fn ctl<const N: usize>(&self, args: [&str; N]) -> Output {
        run(self.etcdctl().args(args))
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
