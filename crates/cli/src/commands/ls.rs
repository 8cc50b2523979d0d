//! `lifeboat ls`.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use serde_json::json;

use crate::args::{Global, SnapshotFilterArgs};
use crate::output::{mode_string, node_json, print_json, snapshot_json};
use crate::{exit, open};

/// Options of `lifeboat ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// Snapshot id, id prefix, or "latest".
    snapshot: String,
    /// Only entries at or below this path.
    path: Option<String>,
    /// Long listing (mode, owner, size, time).
    #[arg(short, long)]
    long: bool,
    /// Filters.
    #[command(flatten)]
    filter: SnapshotFilterArgs,
}

/// List the snapshot's entries.
pub fn run(g: &Global, a: &LsArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let (id, snap) = repo.find_snapshot(&a.snapshot, &a.filter.filter())?;
    let prefix = a
        .path
        .as_deref()
        .map(|p| p.trim_end_matches('/').to_string());
    if g.json {
        let mut v = snapshot_json(&id, &snap);
        v["message_type"] = json!("snapshot");
        print_json(&v);
    }
    let mut out = std::io::stdout().lock();
    repo.walk(&snap.tree, &mut |p, n| {
        let ps = p.display().to_string();
        if let Some(pre) = &prefix {
            let inside = ps == *pre || ps.starts_with(&format!("{pre}/"));
            let above = pre.starts_with(&format!("{ps}/"));
            if !inside {
                return Ok(above);
            }
        }
        if g.json {
            let mut v = node_json(n, Some(&ps));
            v["message_type"] = json!("node");
            serde_json::to_writer(&mut out, &v).map_err(std::io::Error::other)?;
            writeln!(out)?;
        } else if a.long {
            writeln!(
                out,
                "{} {:>8} {:>8} {:>12} {} {}",
                mode_string(n),
                n.user.clone().unwrap_or_else(|| n.uid.to_string()),
                n.group.clone().unwrap_or_else(|| n.gid.to_string()),
                n.size,
                jiff::Timestamp::new(n.mtime.sec, 0)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                ps
            )?;
        } else {
            writeln!(out, "{ps}")?;
        }
        Ok(true)
    })?;
    Ok(exit::OK)
}
