//! Formatting for people and for scripts.

use std::io::Write;

use bytesize::ByteSize;
use lifeboat::{ContentPart, Id, Node, NodeKind, Snapshot, Timestamp, Warning};
use serde_json::{Value, json};

/// `1.50 GiB`; below 1 KiB, `512 B`.
pub fn bytes(n: u64) -> String {
    format!("{:.2}", ByteSize(n).display().iec())
}

/// Report what was skipped as damaged or stray, on stderr: one line each,
/// as a JSON object with `--json` (`message_type` "warning"), so that
/// standard output stays the command's result.
pub fn print_warnings(json: bool, warnings: &[Warning]) {
    for w in warnings {
        if json {
            let line = json!({
                "message_type": "warning",
                "object": w.object,
                "kind": w.kind.name(),
                "message": w.to_string(),
            });
            eprintln!("{line}");
        } else {
            eprintln!("lifeboat: warning: {w}");
        }
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

fn ts(t: Timestamp) -> String {
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
                ContentPart::Blob { id, len } => {
                    json!({"blob": id.to_hex(), "len": len})
                }
                ContentPart::Hole { len } => json!({"hole": len}),
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

/// A snapshot as JSON, with its id and short id.
pub fn snapshot_json(id: &Id, s: &Snapshot) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["id"] = json!(id.to_hex());
    v["short_id"] = json!(id.short());
    v
}
