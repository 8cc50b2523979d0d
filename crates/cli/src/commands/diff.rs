//! `lifeboat diff`.

use anyhow::Result;
use clap::Args;
use lifeboat::{Change, SnapshotFilter};
use serde_json::json;

use crate::args::Global;
use crate::output::print_json;
use crate::{exit, open};

/// Options of `lifeboat diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// First snapshot.
    a: String,
    /// Second snapshot.
    b: String,
}

/// Print what changed from one snapshot to the other.
pub fn run(g: &Global, a: &DiffArgs) -> Result<u8> {
    let repo = open::repository(g)?;
    let none = SnapshotFilter::default();
    let (ia, sa) = repo.find_snapshot(&a.a, &none)?;
    let (ib, sb) = repo.find_snapshot(&a.b, &none)?;
    let d = repo.diff(&sa.tree, &sb.tree)?;
    if g.json {
        print_json(&json!({"from": ia.to_hex(), "to": ib.to_hex(), "changes": d}));
    } else {
        println!("comparing snapshot {} to {}:", ia.short(), ib.short());
        for e in &d {
            let c = match e.change {
                Change::Added => '+',
                Change::Removed => '-',
                Change::Modified => 'M',
                Change::Metadata => 'U',
                Change::TypeChanged => 'T',
            };
            println!("{c}    {}", e.path);
        }
        println!("{} changes", d.len());
    }
    Ok(exit::OK)
}
