//! Formatting for people and for scripts, and the progress display.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lifeboat::{Node, NodeKind, Progress};
use serde_json::{Value, json};

/// `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// Print one JSON value on its own line.
pub fn print_json(v: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, v);
    let _ = writeln!(out);
}

fn kind_name(k: NodeKind) -> &'static str {
    match k {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::Socket => "socket",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
    }
}

fn ts(t: lifeboat::format::Timestamp) -> String {
    jiff::Timestamp::new(t.sec, t.nsec as i32)
        .map(|x| x.to_string())
        .unwrap_or_else(|_| format!("{}.{:09}", t.sec, t.nsec))
}

/// A node as JSON. Names that are not UTF-8 also come as hex.
pub fn node_json(n: &Node, path: Option<&str>) -> Value {
    let mut v = json!({
        "name": n.name_lossy(),
        "type": kind_name(n.kind),
        "mode": format!("{:o}", n.mode),
        "uid": n.uid,
        "gid": n.gid,
        "user": n.user,
        "group": n.group,
        "size": n.size,
        "mtime": ts(n.mtime),
        "atime": ts(n.atime),
        "ctime": ts(n.ctime),
        "inode": n.inode,
        "links": n.links,
    });
    if std::str::from_utf8(&n.name).is_err() {
        v["name_hex"] = json!(hex::encode(&n.name));
    }
    if let Some(p) = path {
        v["path"] = json!(p);
    }
    if let Some(t) = &n.symlink_target {
        v["symlink_target"] = json!(String::from_utf8_lossy(t));
    }
    if let Some(s) = &n.subtree {
        v["subtree"] = json!(s.to_hex());
    }
    if !n.xattrs.is_empty() {
        v["xattrs"] = n
            .xattrs
            .iter()
            .map(|x| json!({"name": String::from_utf8_lossy(&x.name), "value_hex": hex::encode(&x.value)}))
            .collect();
    }
    if !n.content.is_empty() {
        v["content"] = n
            .content
            .iter()
            .map(|c| match c {
                lifeboat::format::ContentPart::Blob { id, len } => {
                    json!({"blob": id.to_hex(), "len": len})
                }
                lifeboat::format::ContentPart::Hole { len } => json!({"hole": len}),
            })
            .collect();
    }
    if matches!(n.kind, NodeKind::CharDevice | NodeKind::BlockDevice) {
        v["rdev"] = json!(n.rdev);
    }
    v
}

/// `-rw-r--r--` style mode string.
pub fn mode_string(n: &Node) -> String {
    let t = match n.kind {
        NodeKind::Dir => 'd',
        NodeKind::Symlink => 'l',
        NodeKind::Fifo => 'p',
        NodeKind::Socket => 's',
        NodeKind::CharDevice => 'c',
        NodeKind::BlockDevice => 'b',
        NodeKind::File => '-',
    };
    let mut s = String::from(t);
    for shift in [6, 3, 0] {
        let b = (n.mode >> shift) & 7;
        s.push(if b & 4 != 0 { 'r' } else { '-' });
        s.push(if b & 2 != 0 { 'w' } else { '-' });
        s.push(if b & 1 != 0 { 'x' } else { '-' });
    }
    s
}

/// Prints progress every second while an operation runs: a one-line bar on
/// a terminal, JSON status lines with `--json`, nothing otherwise.
pub struct ProgressReporter {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl ProgressReporter {
    pub fn start(
        progress: Arc<Progress>,
        verb: &'static str,
        json: bool,
        quiet: bool,
        total: Option<u64>,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tty = std::io::stderr().is_terminal();
        let handle = if quiet || (!json && !tty) {
            None
        } else {
            let stop2 = stop.clone();
            Some(std::thread::spawn(move || {
                let t0 = Instant::now();
                let mut last = Instant::now();
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last.elapsed() < Duration::from_secs(1) {
                        continue;
                    }
                    last = Instant::now();
                    let secs = t0.elapsed().as_secs_f64();
                    let b = progress.bytes.load(Ordering::Relaxed);
                    let f = progress.files.load(Ordering::Relaxed);
                    let e = progress.errors.load(Ordering::Relaxed);
                    let rate = b as f64 / secs.max(0.001);
                    if json {
                        let mut v = json!({"message_type": "status", "action": verb, "seconds_elapsed": secs,
                            "files_done": f, "bytes_done": b, "errors": e, "bytes_per_second": rate});
                        if let Some(t) = total {
                            v["total_bytes"] = json!(t);
                            v["percent_done"] =
                                json!(if t > 0 { b as f64 / t as f64 } else { 1.0 });
                        }
                        print_json(&v);
                    } else {
                        let eta = total
                            .filter(|t| *t > b && rate > 0.0)
                            .map(|t| format!(" ETA {:.0}s", (t - b) as f64 / rate))
                            .unwrap_or_default();
                        let pct = total
                            .filter(|t| *t > 0)
                            .map(|t| format!(" {:.1}%", 100.0 * b as f64 / t as f64))
                            .unwrap_or_default();
                        eprint!(
                            "\r[{:>4.0}s] {verb}: {f} files, {}{pct}, {}/s{eta}, {e} errors   ",
                            secs,
                            bytes(b),
                            bytes(rate as u64)
                        );
                    }
                }
                if !json {
                    eprint!("\r\x1b[K");
                }
            }))
        };
        ProgressReporter { stop, handle }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
