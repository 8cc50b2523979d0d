//! `lifeboat etcd backup` and `lifeboat etcd restore` against real etcd
//! 3.4 processes on loopback: a backup streamed over gRPC, restored to a
//! file byte-identical to what `etcdctl snapshot save` writes, which
//! `etcdctl snapshot restore` accepts and from which a second etcd serves
//! every key; deduplication across backups with 5% churn; and corruption of
//! the stream (by a proxy between Lifeboat and etcd) or of a file, which
//! fails the backup with no snapshot written; a member over TLS with client
//! certificates (a throwaway PKI made with `openssl`) and one with users
//! and roles, with each wrong certificate, CA or password failing clearly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::etcd::{Etcd, Pki, etcdctl, free_port};
use common::{Output, Rng, TestRepo, run};

impl Etcd {
    /// Put `keys` with values of `len` random hex characters, 100 per
    /// transaction.
    fn put_random(&self, keys: &[usize], len: usize, rng: &mut Rng) {
        for batch in keys.chunks(100) {
            let mut ops = String::from("\n");
            for k in batch {
                let mut v = vec![0u8; len / 2];
                rng.fill(&mut v);
                ops.push_str(&format!("put {} {}\n", key(*k), hex(&v)));
            }
            ops.push_str("\n\n");
            let mut child = self
                .etcdctl()
                .arg("txn")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(ops.as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "etcdctl txn: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Every key and value.
    fn all(&self) -> BTreeMap<String, String> {
        let o = self.ctl(["get", "", "--prefix"]).ok("etcdctl get");
        let text = o.out();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len() % 2, 0, "key/value lines: {text}");
        lines
            .chunks(2)
            .map(|kv| (kv[0].to_string(), kv[1].to_string()))
            .collect()
    }

    /// The member's store revision.
    fn revision(&self) -> i64 {
        let v: serde_json::Value =
            serde_json::from_slice(&self.ctl(["endpoint", "status", "-w", "json"]).stdout).unwrap();
        v[0]["Status"]["header"]["revision"].as_i64().unwrap()
    }

    /// `etcdctl snapshot save` to `path`.
    fn save(&self, path: &Path) {
        run(self.etcdctl().args(["snapshot", "save"]).arg(path)).ok("etcdctl snapshot save");
    }
}

fn key(i: usize) -> String {
    format!("/registry/k{i:06}")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A new etcd in `dir` with `n` keys of `len`-character values.
fn loaded_etcd(dir: &Path, n: usize, len: usize, seed: u64) -> Etcd {
    let etcd = Etcd::start(&dir.join("etcd-a"), "a", free_port());
    let keys: Vec<usize> = (0..n).collect();
    etcd.put_random(&keys, len, &mut Rng::new(seed));
    etcd
}

/// etcdctl's variables, which `lifeboat etcd backup` reads too; removed
/// from its environment so that the tests do not depend on the caller's.
const ETCDCTL_VARS: [&str; 5] = [
    "ETCDCTL_CACERT",
    "ETCDCTL_CERT",
    "ETCDCTL_KEY",
    "ETCDCTL_USER",
    "ETCDCTL_PASSWORD",
];

/// `lifeboat etcd backup --node-name node-1 <args>`.
fn etcd_backup_cmd(repo: &TestRepo, args: &[&str]) -> Command {
    let mut c = repo.cmd();
    for v in ETCDCTL_VARS {
        c.env_remove(v);
    }
    c.args(["etcd", "backup", "--node-name", "node-1"])
        .args(args);
    c
}

/// `lifeboat --json etcd backup <args>`, asserting success; the summary.
fn etcd_backup(repo: &TestRepo, args: &[&str]) -> serde_json::Value {
    run(etcd_backup_cmd(repo, args).arg("--json"))
        .ok("etcd backup")
        .summary()
}

/// Run `c`, an etcd backup, asserting a failure that names `phrase` and
/// that no snapshot was written; its output.
fn backup_fails(repo: &TestRepo, c: &mut Command, phrase: &str, snapshots_before: usize) -> Output {
    let o = run(c);
    assert_ne!(o.code, 0, "etcd backup succeeded: {}", o.out());
    assert!(
        o.stderr.contains(phrase),
        "stderr lacks {phrase:?}:\n{}",
        o.stderr
    );
    assert_eq!(
        repo.snapshots().len(),
        snapshots_before,
        "a snapshot was written by a failed etcd backup"
    );
    o
}

/// `lifeboat etcd backup <args>`, asserting a failure that names `phrase`
/// and that no snapshot was written.
fn etcd_backup_fails(repo: &TestRepo, args: &[&str], phrase: &str, snapshots_before: usize) {
    backup_fails(
        repo,
        &mut etcd_backup_cmd(repo, args),
        phrase,
        snapshots_before,
    );
}

/// A new member `name` in `dir`, on a data directory that etcdctl 3.4
/// restored (checking its sha256) from the snapshot file `db`.
fn member_from_snapshot(db: &Path, dir: &Path, name: &str) -> Etcd {
    let peer = free_port();
    let data = dir.join(format!("etcd-{name}"));
    let mut c = Command::new("etcdctl");
    c.env("ETCDCTL_API", "3")
        .args(["snapshot", "restore"])
        .arg(db)
        .arg("--data-dir")
        .arg(&data)
        .args(["--name", name, "--initial-cluster"])
        .arg(format!("{name}=http://127.0.0.1:{peer}"))
        .arg("--initial-advertise-peer-urls")
        .arg(format!("http://127.0.0.1:{peer}"));
    run(&mut c).ok("etcdctl snapshot restore");
    Etcd::start(&data, name, peer)
}

#[test]
fn etcd_backup_restores_into_a_new_member_with_every_key() {
    let repo = TestRepo::new();
    let dir = repo.scratch("etcd");
    let etcd = loaded_etcd(&dir, 400, 300, 1);
    let revision = etcd.revision();

    let before = etcd_now();
    let s = etcd_backup(&repo, &["--endpoint", &etcd.url, "--tag", "nightly"]);
    let name = s["name"].as_str().unwrap().to_string();
    let unix: i64 = name
        .strip_prefix("etcd-snapshot-node-1-")
        .unwrap()
        .parse()
        .unwrap();
    assert!(unix >= before - 1 && unix <= etcd_now() + 1, "{name}");
    assert_eq!(s["revision"], revision);
    assert_eq!(s["server_version"], "3.4.23");
    let sha = s["sha256"].as_str().unwrap().to_string();

    // What `etcdctl snapshot save` writes of the same (unchanged) member.
    let saved = dir.join("etcdctl.db");
    etcd.save(&saved);
    let saved_bytes = std::fs::read(&saved).unwrap();
    assert_eq!(s["db_size"], saved_bytes.len() as u64 - 32);
    assert_eq!(hex(&saved_bytes[saved_bytes.len() - 32..]), sha);

    // Listed with its revision, name, tags and host.
    let snaps = repo.snapshots();
    assert_eq!(snaps.len(), 1);
    let snap = &snaps[0];
    assert_eq!(snap["source"], "etcd");
    assert_eq!(snap["hostname"], "node-1");
    // The path leaves out the time, so that forget groups one node's
    // snapshots together.
    assert_eq!(snap["paths"], serde_json::json!(["/etcd-snapshot-node-1"]));
    assert_eq!(
        snap["tags"],
        serde_json::json!(["etcd-snapshot", "nightly"])
    );
    let meta = &snap["source_meta"];
    assert_eq!(meta["revision"], revision.to_string());
    assert_eq!(meta["sha256"], sha);
    assert_eq!(meta["db_size"], (saved_bytes.len() - 32).to_string());
    assert_eq!(meta["server_version"], "3.4.23");
    assert_eq!(meta["name"], name);
    assert!(!meta["member_id"].as_str().unwrap().is_empty());
    let table = repo.run(["snapshots"]).ok("snapshots").out();
    assert!(table.contains("Revision"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains(&revision.to_string()) && l.contains("/etcd-snapshot-node-1")),
        "{table}"
    );

    // Restored: the exact bytes etcdctl wrote.
    let restored = dir.join("restored.db");
    let mut c = repo.cmd();
    c.args(["--json", "etcd", "restore", "latest", "--output"])
        .arg(&restored);
    let r = run(&mut c).ok("etcd restore").summary();
    assert_eq!(r["sha256"], sha);
    assert_eq!(std::fs::read(&restored).unwrap(), saved_bytes);
    // Never over an existing file.
    let mut c = repo.cmd();
    c.args(["etcd", "restore", "latest", "--output"])
        .arg(&restored);
    run(&mut c).fails("etcd restore over a file", 1, &["exists"]);

    // etcdctl 3.4 restores it (checking the sha256), and a new member
    // serves every key with its value.
    let original = etcd.all();
    assert_eq!(original.len(), 400);
    drop(etcd);
    let second = member_from_snapshot(&restored, &dir, "b");
    assert_eq!(second.all(), original);
}

fn etcd_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn etcd_backup_of_a_file_is_stored_exactly_and_corrupt_files_are_refused() {
    let repo = TestRepo::new();
    let dir = repo.scratch("etcd");
    let etcd = loaded_etcd(&dir, 100, 200, 2);
    let saved = dir.join("saved.db");
    etcd.save(&saved);
    drop(etcd);
    let bytes = std::fs::read(&saved).unwrap();

    // One flipped byte in the data, in a meta page, in the trailer; a
    // truncated file.
    let cases: [(usize, &str); 3] = [
        (bytes.len() / 2, "sha256 mismatch"),
        (4096 + 20, "meta page 1"),
        (bytes.len() - 5, "sha256 mismatch"),
    ];
    for (at, phrase) in cases {
        let mut bad = bytes.clone();
        bad[at] ^= 0x20;
        let path = dir.join(format!("bad-{at}.db"));
        std::fs::write(&path, &bad).unwrap();
        etcd_backup_fails(&repo, &["--file", path.to_str().unwrap()], phrase, 0);
    }
    let short = dir.join("short.db");
    std::fs::write(&short, &bytes[..bytes.len() - 1]).unwrap();
    etcd_backup_fails(&repo, &["--file", short.to_str().unwrap()], "32 more", 0);

    let s = etcd_backup(
        &repo,
        &["--file", saved.to_str().unwrap(), "--name", "on-demand"],
    );
    assert!(s["name"].as_str().unwrap().starts_with("on-demand-node-1-"));
    assert_eq!(
        s["revision"],
        serde_json::Value::Null,
        "a file has no status"
    );
    let out = dir.join("out.db");
    let mut c = repo.cmd();
    c.args(["etcd", "restore", "latest", "--output"]).arg(&out);
    run(&mut c).ok("etcd restore");
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("lifeboat-part"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");

    // A file-tree snapshot is not an etcd snapshot.
    let tree = repo.scratch("tree");
    std::fs::write(tree.join("f"), b"x").unwrap();
    let fs_snap = repo.backup(&[tree.as_path()], &[]);
    let id = fs_snap["snapshot_id"].as_str().unwrap();
    let mut c = repo.cmd();
    c.args(["etcd", "restore", id, "--output"])
        .arg(dir.join("x.db"));
    run(&mut c).fails("etcd restore of a file tree", 1, &["not an etcd snapshot"]);
}

#[test]
fn etcd_backups_with_five_percent_churn_add_little() {
    let repo = TestRepo::new();
    let dir = repo.scratch("etcd");
    // 10,000 keys of 2 KiB: a database of about 41 MB.
    let n = 10_000;
    let etcd = loaded_etcd(&dir, n, 2048, 3);
    let first = etcd_backup(&repo, &["--endpoint", &etcd.url]);
    // Each repository cuts at its own keyed boundaries, and one chunk of
    // up to 8 MiB around a rewritten page decides much of what a second
    // backup adds; so the bound is checked on the median of three
    // repositories, each backed up before and after the same churn.
    let others = [TestRepo::new(), TestRepo::new()];
    for r in &others {
        etcd_backup(r, &["--endpoint", &etcd.url]);
    }
    // 5% of the keys, picked at random, get new values.
    let mut rng = Rng::new(4);
    let mut churn: Vec<usize> = (0..n).collect();
    for i in (1..churn.len()).rev() {
        churn.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    churn.truncate(n / 20);
    etcd.put_random(&churn, 2048, &mut rng);
    let second = etcd_backup(&repo, &["--endpoint", &etcd.url]);

    let db = second["db_size"].as_u64().unwrap();
    let added = second["bytes_added"].as_u64().unwrap();
    let first_added = first["bytes_added"].as_u64().unwrap();
    eprintln!(
        "etcd churn: db {} -> {db} bytes; first backup added {first_added}, second added {added} ({:.1}% of the db)",
        first["db_size"],
        100.0 * added as f64 / db as f64
    );
    assert!(first_added >= first["db_size"].as_u64().unwrap() / 2);
    // bbolt is copy-on-write and etcd keys its data by revision: the
    // churn appends ~1 MB of new revisions at the end and rewrites a few
    // pages (the meta pages, the tree's right edge). Measured: see
    // docs/etcd.md; the bound leaves room for chunk boundaries.
    let mut adds = vec![added];
    for r in &others {
        let s = etcd_backup(r, &["--endpoint", &etcd.url]);
        adds.push(s["bytes_added"].as_u64().unwrap());
    }
    adds.sort_unstable();
    eprintln!("second backups in three repositories added {adds:?} bytes");
    assert!(
        adds[1] < db / 3,
        "second backups added {adds:?} bytes (median of three) of {db}"
    );

    // One node's snapshots are one group: `forget --keep-last 1` keeps
    // only the second.
    repo.run(["forget", "--keep-last", "1"]).ok("forget");
    let left = repo.snapshots();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["id"], second["snapshot_id"], "{left:?}");
}

/// How the proxy corrupts the server-to-client stream.
#[derive(Clone)]
enum Flip {
    /// Pass everything.
    Nothing,
    /// Flip the byte at this offset of the stream.
    At(u64),
    /// Flip a byte inside the first occurrence of this pattern.
    Inside(Vec<u8>),
    /// Forward nothing from this offset on, holding the connection open.
    StallAt(u64),
}

/// A TCP proxy to `target` that corrupts one byte from the server once.
struct Proxy {
    url: String,
    flipped: Arc<AtomicBool>,
    passed: Arc<AtomicU64>,
}

fn proxy(target: SocketAddr, flip: Flip) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let flipped = Arc::new(AtomicBool::new(false));
    let passed = Arc::new(AtomicU64::new(0));
    let (f2, p2) = (flipped.clone(), passed.clone());
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let server = TcpStream::connect(target).unwrap();
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            thread::spawn(move || pipe(c2, s2, |_, _| {}));
            let (flip, flipped, passed) = (flip.clone(), f2.clone(), p2.clone());
            thread::spawn(move || {
                let mut offset = 0u64;
                let mut window: Vec<u8> = Vec::new();
                pipe(server, client, |buf, n| {
                    let data = &mut buf[..n];
                    if !flipped.load(Ordering::SeqCst) {
                        match &flip {
                            Flip::Nothing => {}
                            Flip::StallAt(at) => {
                                if offset + n as u64 > *at {
                                    flipped.store(true, Ordering::SeqCst);
                                    thread::sleep(Duration::from_secs(600));
                                }
                            }
                            Flip::At(at) => {
                                if *at >= offset && *at < offset + n as u64 {
                                    data[(*at - offset) as usize] ^= 0x01;
                                    flipped.store(true, Ordering::SeqCst);
                                }
                            }
                            Flip::Inside(pat) => {
                                // Look across the previous read's end too.
                                let keep = window.len();
                                window.extend_from_slice(data);
                                if let Some(p) =
                                    window.windows(pat.len()).position(|w| w == &pat[..])
                                {
                                    // The match's last byte is in this read
                                    // (else the last read would have matched).
                                    let at = p + pat.len() - 1;
                                    if at >= keep {
                                        data[at - keep] ^= 0x01;
                                        flipped.store(true, Ordering::SeqCst);
                                    }
                                }
                                let tail = window.len().saturating_sub(pat.len());
                                window.drain(..tail);
                            }
                        }
                    }
                    offset += n as u64;
                    passed.fetch_add(n as u64, Ordering::SeqCst);
                });
            });
        }
    });
    Proxy {
        url,
        flipped,
        passed,
    }
}

/// Copy `from` to `to` through `edit` until either side closes.
fn pipe(mut from: TcpStream, mut to: TcpStream, mut edit: impl FnMut(&mut [u8], usize)) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        edit(&mut buf, n);
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

#[test]
fn etcd_stream_corrupted_in_data_or_trailer_saves_no_snapshot() {
    let repo = TestRepo::new();
    let dir = repo.scratch("etcd");
    // About 2.5 MB of database.
    let etcd = loaded_etcd(&dir, 600, 3000, 5);
    let target: SocketAddr = etcd.url.strip_prefix("http://").unwrap().parse().unwrap();
    let saved = dir.join("saved.db");
    etcd.save(&saved);
    let bytes = std::fs::read(&saved).unwrap();
    let sha = bytes[bytes.len() - 32..].to_vec();

    // A byte far into the payload.
    let p = proxy(target, Flip::At(bytes.len() as u64 / 2));
    etcd_backup_fails(&repo, &["--endpoint", &p.url], "etcd", 0);
    assert!(
        p.flipped.load(Ordering::SeqCst),
        "the proxy flipped nothing"
    );

    // A byte of the sha256 trailer (found in the stream by its value: the
    // member is unchanged, so its snapshot is the one etcdctl saved).
    let p = proxy(target, Flip::Inside(sha));
    etcd_backup_fails(&repo, &["--endpoint", &p.url], "etcd", 0);
    assert!(
        p.flipped.load(Ordering::SeqCst),
        "the proxy did not find the trailer in the stream"
    );

    // The same proxy, flipping nothing, passes a good backup.
    let p = proxy(target, Flip::Nothing);
    let s = etcd_backup(&repo, &["--endpoint", &p.url]);
    assert_eq!(s["sha256"], hex(&bytes[bytes.len() - 32..]));
    assert!(p.passed.load(Ordering::SeqCst) > bytes.len() as u64);
    assert_eq!(repo.snapshots().len(), 1);
}

#[test]
fn etcd_stream_that_stalls_fails_the_backup_instead_of_hanging() {
    let repo = TestRepo::new();
    let dir = repo.scratch("etcd");
    let etcd = loaded_etcd(&dir, 300, 3000, 6);
    let target: SocketAddr = etcd.url.strip_prefix("http://").unwrap().parse().unwrap();
    // Part of the way into the snapshot the proxy stops forwarding but
    // keeps the connection open, as a member stuck mid-stream would.
    let p = proxy(target, Flip::StallAt(300_000));
    let start = Instant::now();
    etcd_backup_fails(
        &repo,
        &["--endpoint", &p.url, "--timeout", "2"],
        "stalled",
        0,
    );
    assert!(p.flipped.load(Ordering::SeqCst), "the proxy never stalled");
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "gave up only after {took:?}"
    );
    // The same member through a proxy that passes everything backs up.
    let p = proxy(target, Flip::Nothing);
    etcd_backup(&repo, &["--endpoint", &p.url, "--timeout", "2"]);
    assert_eq!(repo.snapshots().len(), 1);
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn etcd_tls_backup_with_a_client_certificate_restores_every_key() {
    let repo = TestRepo::new();
    let dir = repo.scratch("etcd");
    let pki = Pki::new(&dir.join("pki"));
    let etcd = Etcd::start_tls(&dir.join("etcd-a"), "a", free_port(), &pki);
    assert!(etcd.url.starts_with("https://127.0.0.1:"), "{}", etcd.url);
    let keys: Vec<usize> = (0..300).collect();
    etcd.put_random(&keys, 300, &mut Rng::new(7));
    // The member does require a client certificate: etcdctl with the CA
    // alone is refused.
    let mut c = etcdctl(&etcd.url);
    c.args(["--cacert", path_str(&pki.ca), "get", "", "--prefix"]);
    let o = run(&mut c);
    assert_ne!(o.code, 0, "etcd served a client without a certificate");

    let (ca, cert, key) = (
        path_str(&pki.ca),
        path_str(&pki.client),
        path_str(&pki.client_key),
    );
    let url = etcd.url.as_str();
    let revision = etcd.revision();
    let s = etcd_backup(
        &repo,
        &[
            "--endpoint",
            url,
            "--cacert",
            ca,
            "--cert",
            cert,
            "--key",
            key,
        ],
    );
    assert_eq!(s["revision"], revision);
    // Restored: what etcdctl saved over the same TLS connection, and a new
    // member on it serves every key.
    let restored = restores_as_etcdctl_saved(&repo, &etcd, &dir, &s);
    let original = etcd.all();
    assert_eq!(original.len(), 300);
    let second = member_from_snapshot(&restored, &dir, "b");
    assert_eq!(second.all(), original);
    drop(second);

    // What a wrong TLS setup gets: a non-zero exit naming the problem,
    // soon (the timeout bounds every wait), and no snapshot.
    let other = path_str(&pki.other_ca);
    let (server_cert, server_key) = (path_str(&pki.server), path_str(&pki.server_key));
    let cases: [(&[&str], &str); 5] = [
        // No --cacert: nothing to trust the member's certificate with.
        (
            &["--cert", cert, "--key", key],
            "no CA certificate was given",
        ),
        // A CA that did not sign the member's certificate.
        (
            &["--cacert", other, "--cert", cert, "--key", key],
            "is not signed by the CA certificate",
        ),
        // No client certificate, which the member requires.
        (
            &["--cacert", ca],
            "it requires a client certificate and none was given",
        ),
        // A certificate for servers only, refused as a client's.
        (
            &["--cacert", ca, "--cert", server_cert, "--key", server_key],
            "it did not accept the client certificate",
        ),
        // Plain HTTP to a TLS port.
        (&[], "if it serves TLS, give an https:// URL"),
    ];
    for (tls, phrase) in cases {
        let plain = url.replace("https://", "http://");
        let endpoint = if tls.is_empty() { plain.as_str() } else { url };
        let mut args = vec!["--endpoint", endpoint, "--timeout", "5"];
        args.extend_from_slice(tls);
        let start = Instant::now();
        etcd_backup_fails(&repo, &args, phrase, 1);
        let took = start.elapsed();
        assert!(
            took < Duration::from_secs(30),
            "{args:?} failed only after {took:?}"
        );
    }
}

/// Passwords of the auth test's etcd users; distinctive, so that a leak is
/// easy to spot.
const ROOT_PW: &str = "lb-etcd-root-pw-3vN8qW";
const BACKUP_PW: &str = "lb-etcd-backup-pw-Zt5Lm2";
const READER_PW: &str = "lb-etcd-reader-pw-Hy7Pc4";
const WRONG_PW: &str = "lb-etcd-wrong-pw-Qd6Rx1";

/// Assert that no password of the auth test is in `o`'s output.
fn no_password_in(o: &Output, what: &str) {
    let out = o.out();
    for pw in [ROOT_PW, BACKUP_PW, READER_PW, WRONG_PW] {
        assert!(
            !out.contains(pw) && !o.stderr.contains(pw),
            "{what} printed a password:\n{out}\n{}",
            o.stderr
        );
    }
}

#[test]
fn etcd_auth_backup_as_a_user_with_the_root_role_and_wrong_passwords_fail_clearly() {
    let repo = TestRepo::new();
    let dir = repo.scratch("etcd");
    let mut etcd = loaded_etcd(&dir, 200, 300, 8);
    // root; `lifeboat-backup` with the root role (a snapshot needs it);
    // `reader`, with a role that may only read /registry/.
    let setup: [&[&str]; 9] = [
        &["user", "add", "root", "--interactive=false"],
        &["user", "grant-role", "root", "root"],
        &["user", "add", "lifeboat-backup", "--interactive=false"],
        &["user", "grant-role", "lifeboat-backup", "root"],
        &["role", "add", "readonly"],
        &[
            "role",
            "grant-permission",
            "readonly",
            "--prefix=true",
            "read",
            "/registry/",
        ],
        &["user", "add", "reader", "--interactive=false"],
        &["user", "grant-role", "reader", "readonly"],
        &["auth", "enable"],
    ];
    for args in setup {
        let mut c = etcd.etcdctl();
        c.args(args);
        match args {
            ["user", "add", "root", ..] => c.arg(format!("--new-user-password={ROOT_PW}")),
            ["user", "add", "lifeboat-backup", ..] => {
                c.arg(format!("--new-user-password={BACKUP_PW}"))
            }
            ["user", "add", "reader", ..] => c.arg(format!("--new-user-password={READER_PW}")),
            _ => &mut c,
        };
        run(&mut c).ok(&format!("etcdctl {}", args.join(" ")));
    }
    etcd.ctl_flags
        .extend(["--user".into(), format!("root:{ROOT_PW}").into()]);
    // Auth is on: etcdctl without a user is refused.
    let o = run(etcdctl(&etcd.url).args(["get", "/registry/", "--prefix"]));
    assert_ne!(o.code, 0, "etcd served a client without a user");
    let url = etcd.url.as_str();

    // Without a user: refused, no snapshot.
    etcd_backup_fails(
        &repo,
        &["--endpoint", url],
        "authentication failed: the member has authentication enabled and no user was given",
        0,
    );

    // The user, with the password from ETCDCTL_PASSWORD.
    let o = run(etcd_backup_cmd(
        &repo,
        &["--json", "--endpoint", url, "--user", "lifeboat-backup"],
    )
    .env("ETCDCTL_PASSWORD", BACKUP_PW))
    .ok("etcd backup --user");
    no_password_in(&o, "etcd backup --user");
    let s = o.summary();
    restores_as_etcdctl_saved(&repo, &etcd, &dir, &s);

    // A wrong password, from ETCDCTL_PASSWORD or as NAME:PASSWORD: a clear
    // failure, no snapshot, the password not printed.
    let mut c = etcd_backup_cmd(&repo, &["--endpoint", url, "--user", "lifeboat-backup"]);
    c.env("ETCDCTL_PASSWORD", WRONG_PW);
    let o = backup_fails(
        &repo,
        &mut c,
        "authentication failed: user \"lifeboat-backup\": wrong user name or password",
        1,
    );
    no_password_in(&o, "etcd backup with a wrong password");
    let user = format!("lifeboat-backup:{WRONG_PW}");
    let mut c = etcd_backup_cmd(&repo, &["--endpoint", url, "--user", &user]);
    let o = backup_fails(&repo, &mut c, "authentication failed", 1);
    no_password_in(&o, "etcd backup with a wrong NAME:PASSWORD");
    // An unknown user fails the same way.
    let mut c = etcd_backup_cmd(&repo, &["--endpoint", url, "--user", "nobody"]);
    c.env("ETCDCTL_PASSWORD", BACKUP_PW);
    let o = backup_fails(&repo, &mut c, "authentication failed", 1);
    no_password_in(&o, "etcd backup as an unknown user");
    // A user whose role may not take snapshots.
    let mut c = etcd_backup_cmd(&repo, &["--endpoint", url, "--user", "reader"]);
    c.env("ETCDCTL_PASSWORD", READER_PW);
    let o = backup_fails(&repo, &mut c, "user \"reader\" may not take snapshots", 1);
    no_password_in(&o, "etcd backup as a reader");
    // A member that accepts the connection and never answers fails the
    // backup after the timeout instead of holding authentication forever.
    let target: SocketAddr = url.strip_prefix("http://").unwrap().parse().unwrap();
    let p = proxy(target, Flip::StallAt(0));
    let mut c = etcd_backup_cmd(
        &repo,
        &[
            "--endpoint",
            &p.url,
            "--user",
            "lifeboat-backup",
            "--timeout",
            "2",
        ],
    );
    c.env("ETCDCTL_PASSWORD", BACKUP_PW);
    let start = Instant::now();
    backup_fails(
        &repo,
        &mut c,
        "connecting and authenticating: no answer within 2 s",
        1,
    );
    assert!(p.flipped.load(Ordering::SeqCst), "the proxy never stalled");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "gave up only after {:?}",
        start.elapsed()
    );
    // A user with no password anywhere.
    let mut c = etcd_backup_cmd(&repo, &["--endpoint", url, "--user", "lifeboat-backup"]);
    backup_fails(&repo, &mut c, "ETCDCTL_PASSWORD", 1);
}

/// Checks a backup (its summary `s`) against what `etcdctl snapshot save`
/// writes of `etcd` now: the same sha256, and `etcd restore latest` gives
/// back exactly those bytes. Returns the restored file.
fn restores_as_etcdctl_saved(
    repo: &TestRepo,
    etcd: &Etcd,
    dir: &Path,
    s: &serde_json::Value,
) -> PathBuf {
    let saved = dir.join("etcdctl.db");
    etcd.save(&saved);
    let saved_bytes = std::fs::read(&saved).unwrap();
    assert_eq!(s["sha256"], hex(&saved_bytes[saved_bytes.len() - 32..]));
    let restored = dir.join("restored.db");
    let mut c = repo.cmd();
    c.args(["etcd", "restore", "latest", "--output"])
        .arg(&restored);
    run(&mut c).ok("etcd restore");
    assert_eq!(std::fs::read(&restored).unwrap(), saved_bytes);
    restored
}
