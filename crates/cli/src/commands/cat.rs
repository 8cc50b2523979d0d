//! `lifeboat cat`: a repository object as JSON.

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use lifeboat::internals::{BlobType, IndexSegment, KeySlot, RepositoryInternals as _};
use lifeboat::layout::Folder;
use lifeboat::{Id, Repository, SnapshotFilter};
use serde_json::json;

use crate::args::Global;
use crate::output::{node_json, print_json, snapshot_json};
use crate::{exit, open};

/// Options of `lifeboat cat`.
#[derive(Debug, Args)]
pub struct CatArgs {
    /// What to print.
    #[arg(value_enum)]
    kind: CatKind,
    /// Object id (not for config). Snapshots accept "latest" and prefixes.
    id: Option<String>,
}

/// Objects `cat` can print.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CatKind {
    /// The repository config.
    Config,
    /// A snapshot.
    Snapshot,
    /// A tree blob.
    Tree,
    /// An index segment.
    Index,
    /// A key slot (the wrapped key only; never the master key).
    Key,
}

/// Print the object.
pub fn run(g: &Global, a: &CatArgs) -> Result<u8> {
    let kind = a.kind;
    if matches!(kind, CatKind::Config) {
        let repo = open::repository(g)?;
        print_json(repo.config());
        return Ok(exit::OK);
    }
    let Some(id) = &a.id else {
        bail!("cat {kind:?} needs an id");
    };
    let repo = open::repository(g)?;
    match kind {
        CatKind::Config => {}
        CatKind::Snapshot => {
            let (sid, s) = repo.find_snapshot(id, &SnapshotFilter::default())?;
            print_json(&snapshot_json(&sid, &s));
        }
        CatKind::Tree => {
            let tid = resolve_tree(&repo, id)?;
            let t = repo.load_tree(&tid)?;
            let nodes: Vec<_> = t.nodes.iter().map(|n| node_json(n, None)).collect();
            print_json(&json!({"id": tid.to_hex(), "version": t.version, "nodes": nodes}));
        }
        CatKind::Index => {
            let path = resolve_object(&repo, Folder::Index, id)?;
            let bytes = repo.backend().get(&path)?;
            let seg = IndexSegment::decode(repo.master_key(), &bytes)
                .with_context(|| format!("decoding {path}"))?;
            print_json(&seg);
        }
        CatKind::Key => {
            let path = resolve_object(&repo, Folder::Keys, id)?;
            let bytes = repo.backend().get(&path)?;
            let slot = KeySlot::from_json(&bytes)?;
            print_json(&slot);
        }
    }
    Ok(exit::OK)
}

/// Resolve an object id prefix in `folder` (index segments, key slots).
fn resolve_object(repo: &Repository, folder: Folder, spec: &str) -> Result<String> {
    let spec = spec.to_ascii_lowercase();
    let dir = folder.prefix();
    let m: Vec<String> = repo
        .backend()
        .list(&dir)?
        .into_iter()
        .map(|o| o.path)
        .filter(|p| p.strip_prefix(&dir).unwrap_or(p).starts_with(&spec))
        .collect();
    match m.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no object {dir}{spec}*"),
        _ => bail!("{spec:?} matches {} objects in {dir}", m.len()),
    }
}

/// A full tree id, or a unique prefix among indexed tree blobs.
fn resolve_tree(repo: &Repository, spec: &str) -> Result<Id> {
    if let Ok(id) = spec.parse::<Id>() {
        return Ok(id);
    }
    let spec = spec.to_ascii_lowercase();
    let idx = repo.index();
    let m: Vec<Id> = idx
        .iter()
        .filter(|(id, l)| l.blob_type == BlobType::Tree && id.to_hex().starts_with(&spec))
        .map(|(id, _)| id)
        .collect();
    match m.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no tree {spec}*"),
        _ => bail!("{spec:?} matches {} trees", m.len()),
    }
}
