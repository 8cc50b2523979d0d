//! One prune run, from lock to release.

use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_core::{Repository, WarningKind};
use lifeboat_format::{Id, Snapshot};
use lifeboat_index::UsedBlobs;

use super::execute::{Executed, execute};
use super::lock::HeldLock;
use super::marks;
use super::options::{Error, PruneOptions, PruneProgress, Result};
use super::plan::{PrunePlan, decide, mark_used, pack_usage};

/// What a prune did.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PruneReport {
    /// The plan it followed (with `dry_run`, all it did).
    pub plan: PrunePlan,
    /// What carrying it out did (`None` with `dry_run`).
    pub executed: Option<Executed>,
}

/// Prune `repo`: lock, plan, and unless `opts.dry_run`, carry the plan out.
/// Safe while other clients back up (`docs/prune.md`); stopped at any
/// point, it leaves a repository that checks clean, and a rerun finishes.
pub fn prune(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &PruneProgress,
) -> Result<PruneReport> {
    let (backend, key) = (repo.backend().clone(), repo.master_key().clone());
    let mut lock = if opts.dry_run {
        None
    } else {
        Some(HeldLock::acquire(
            &backend,
            &key,
            &opts.clock,
            opts.lock_ttl.as_secs(),
            &opts.hostname,
        )?)
    };
    let result = run(repo, opts, progress, lock.as_mut());
    if let Some(l) = lock {
        l.release();
    }
    result
}

fn run(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &PruneProgress,
    lock: Option<&mut HeldLock>,
) -> Result<PruneReport> {
    // The start time, taken before anything is listed: a mark is due only
    // if it was due before the snapshots were listed.
    let now = opts.clock.now();
    let (backend, key) = (repo.backend(), repo.master_key());
    let current_marks = marks::read(backend, key)?;
    // Snapshots before the index: a snapshot is written after the index
    // segments of what it references, so the index read next covers it.
    let listing = repo.snapshots()?;
    // A snapshot that cannot be read may use any pack: delete nothing.
    if let Some(w) = listing
        .skipped
        .iter()
        .find(|w| w.kind == WarningKind::DamagedSnapshot)
    {
        return Err(Error::DamagedSnapshot {
            object: w.object.clone(),
        });
    }
    let snapshots = listing.items;
    // What the index segments say, not what lookups recover from the
    // headers of packs no segment lists.
    repo.set_index_fallback(false);
    repo.reload_index()?;
    // Lookups stay `pread`s, not reads through the table's mapping: a
    // fault on a mapped page maps its cached neighbours too (fault-around,
    // 64 KiB), which took a 10 M-blob prune from 271 to 556 MiB.
    plan_and_execute(repo, opts, progress, lock, now, &current_marks, snapshots)
}

fn plan_and_execute(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &PruneProgress,
    lock: Option<&mut HeldLock>,
    now: u64,
    current_marks: &marks::Marks,
    snapshots: Vec<(Id, Snapshot)>,
) -> Result<PruneReport> {
    let (backend, key) = (repo.backend(), repo.master_key());
    let index = repo.index();
    let mut used = UsedBlobs::new(&index);
    let missing = mark_used(repo, &snapshots, &index, &mut used, progress)?;
    // A used blob no segment lists may sit in a pack no segment lists, which
    // would look unused: keep every such pack this run.
    let snapshots = snapshots.len() as u64;
    let usage = pack_usage(backend, key, &index, &used)?;
    let mut plan = decide(repo, opts, now, &usage, current_marks, missing > 0)?;
    // Not needed to carry the plan out (64 bytes a pack).
    drop(usage);
    plan.snapshots = snapshots;
    plan.missing_blobs = missing;
    plan.used_blobs = used.len();
    let executed = match lock {
        Some(lock) if !plan.is_empty() => {
            Some(execute(repo, opts, &plan, &index, &used, lock, progress)?)
        }
        Some(_) => Some(Executed::default()),
        None => None,
    };
    Ok(PruneReport { plan, executed })
}
