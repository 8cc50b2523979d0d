//! The check itself: every pass, in order, over one shared [`State`].

use lifeboat_core::Repository;

use crate::error::{Error, Result};
use crate::options::{CheckOptions, CheckProgress};
use crate::report::CheckReport;
use crate::state::State;
use crate::subset::Subset;
use crate::walk::Walk;
use crate::{data, structure, walk};

/// A finished check: what the passes recorded (its report complete) and
/// what the walk learnt, which repair works from.
pub(crate) struct Checked<'r> {
    pub state: State<'r>,
    pub walk: Walk,
}

/// Every pass of a check, in order: key slots, packs against the index,
/// orphan headers, duplicates, the data pass when asked, the snapshot walk,
/// then the report.
pub(crate) fn run<'r>(
    repo: &'r Repository,
    opts: &CheckOptions,
    progress: &CheckProgress,
) -> Result<Checked<'r>> {
    if opts.resume.is_some() && !opts.read_data {
        return Err(Error::ResumeWithoutReadData);
    }
    if opts.resume.is_some() && opts.subset != Subset::All {
        return Err(Error::ResumeWithSubset);
    }
    // Report what the segments say, not what lookups recover from pack headers.
    repo.set_index_fallback(false);
    let mut state = State::new(repo);
    structure::check_keys(&mut state)?;
    let segments = structure::check_packs(&mut state)?;
    structure::read_orphan_headers(&mut state);
    structure::check_duplicates(&mut state, &segments);
    if opts.read_data {
        data::read_data(&mut state, opts, progress)?;
    }
    let walk = walk::walk(&mut state, progress)?;
    state.finish(&walk.needed_orphans);
    Ok(Checked { state, walk })
}

/// Check `repo`. Damage is reported in the result; `Err` means the check
/// itself could not run. Reads only, except for the verification record in
/// resumable mode.
pub fn check(
    repo: &Repository,
    opts: &CheckOptions,
    progress: &CheckProgress,
) -> Result<CheckReport> {
    // Check looks up every blob, some several times: through the memory
    // map, not one `pread` each (4 per blob: a third of the system time of
    // `check --read-data`).
    let checked = repo.with_mapped_index(|| run(repo, opts, progress));
    Ok(checked?.state.report)
}
