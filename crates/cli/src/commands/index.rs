//! `lifeboat index rebuild|compact`.

use std::sync::Arc;

use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat::layout::{self, Folder};
use lifeboat::{CompactOptions, IndexProgress, RebuildOptions};
use serde_json::json;

use crate::args::Global;
use crate::output::print_json;
use crate::{exit, open, progress};

/// Options of `lifeboat index`.
#[derive(Debug, Args)]
pub struct IndexArgs {
    /// Index command.
    #[command(subcommand)]
    command: IndexCommand,
}

/// Index maintenance commands.
#[derive(Debug, Subcommand)]
pub enum IndexCommand {
    /// Rebuild the index from the pack headers, for when index segments are
    /// lost or damaged. Reads only the end of each pack.
    Rebuild {
        /// Pack headers read at once.
        #[arg(long, default_value_t = 16, value_name = "N")]
        read_concurrency: usize,
    },
    /// Merge small index segments into larger ones and delete the merged
    /// ones. Safe while backups run.
    Compact {
        /// Blobs per new segment; segments with at least half as many are kept.
        #[arg(long, default_value_t = 65536, value_name = "N")]
        target_blobs: usize,
    },
}

/// Run an index command; returns the exit code.
pub fn run(g: &Global, a: &IndexArgs) -> Result<u8> {
    let repo = open::repository_without_index(g)?;
    repo.core().require_delete("index maintenance")?;
    let progress = Arc::new(IndexProgress::default());
    match &a.command {
        IndexCommand::Rebuild { read_concurrency } => {
            let opts = RebuildOptions {
                read_concurrency: (*read_concurrency).max(1),
                ..RebuildOptions::default()
            };
            let display = progress::index(progress.clone(), "index rebuild", "packs", g);
            let r = repo.rebuild_index(&opts, &progress);
            display.finish();
            let r = r?;
            if g.json {
                print_json(&json!({
                    "message_type": "index_rebuild",
                    "packs_listed": r.packs_listed,
                    "packs_indexed": r.packs_indexed,
                    "blobs": r.blobs,
                    "segments_written": r.written.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "segments_superseded": r.superseded.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "junk_removed": r.junk,
                    "delete_errors": r.delete_errors.iter()
                        .map(|(p, e)| json!({"path": p, "error": e.to_string()})).collect::<Vec<_>>(),
                    "unreadable_packs": r.unreadable.iter()
                        .map(|u| json!({"path": u.path, "error": u.reason.to_string()})).collect::<Vec<_>>(),
                }));
            } else {
                for u in &r.unreadable {
                    eprintln!(
                        "lifeboat: warning: {}: {} (its blobs are not indexed)",
                        u.path, u.reason
                    );
                }
                for (p, e) in &r.delete_errors {
                    eprintln!("lifeboat: warning: could not delete {p}: {e}");
                }
                if !g.quiet {
                    println!(
                        "indexed {} blobs in {} of {} packs: wrote {} segments, superseded {}",
                        r.blobs,
                        r.packs_indexed,
                        r.packs_listed,
                        r.written.len(),
                        r.superseded.len()
                    );
                }
            }
            Ok(if r.unreadable.is_empty() {
                exit::OK
            } else {
                exit::ERROR
            })
        }
        IndexCommand::Compact { target_blobs } => {
            let opts = CompactOptions {
                target_blobs: (*target_blobs).max(1),
                ..CompactOptions::default()
            };
            let display = progress::index(progress.clone(), "index compact", "segments", g);
            let r = repo.compact_index(&opts, &progress);
            display.finish();
            let r = r?;
            if g.json {
                print_json(&json!({
                    "message_type": "index_compact",
                    "segments_listed": r.segments_listed,
                    "segments_merged": r.segments_merged,
                    "segments_kept": r.segments_kept,
                    "segments_written": r.written.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "segments_deleted": r.deleted.iter().map(|i| i.to_hex()).collect::<Vec<_>>(),
                    "delete_errors": r.delete_errors.iter()
                        .map(|(i, e)| json!({"segment": i.to_hex(), "error": e.to_string()})).collect::<Vec<_>>(),
                    "packs": r.packs,
                    "blobs": r.blobs,
                }));
            } else {
                for (i, e) in &r.delete_errors {
                    eprintln!(
                        "lifeboat: warning: could not delete {}: {e}",
                        layout::object_path(Folder::Index, i)
                    );
                }
                if !g.quiet {
                    if r.written.is_empty() && r.deleted.is_empty() {
                        println!(
                            "nothing to compact: {} segments, none small enough to merge",
                            r.segments_listed
                        );
                    } else {
                        println!(
                            "merged {} segments ({} packs, {} blobs) into {}, deleted {}, kept {}",
                            r.segments_merged,
                            r.packs,
                            r.blobs,
                            r.written.len(),
                            r.deleted.len(),
                            r.segments_kept
                        );
                    }
                }
            }
            Ok(exit::OK)
        }
    }
}
