//! [`Repository`]: one opened repository and everything an embedding tool
//! does with it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLockReadGuard};

use lifeboat_check::{CheckOptions, CheckProgress, CheckReport, RepairOptions, RepairReport};
use lifeboat_core::internals::RepositoryInternals;
use lifeboat_core::{
    BackupOptions, BackupReport, BackupSource, BlockRestoreOptions, BlockRestoreReport, CopyReport,
    DiffEntry, InitOptions, KeyInfo, Listing, Progress, RestoreOptions, RestoreReport,
    SnapshotFilter, SnapshotList, Stats, Warning,
};
use lifeboat_format::{Config, Id, KdfParams, MasterKey, Node, Snapshot, Tree};
use lifeboat_index::{
    CompactOptions, CompactReport, Index, IndexProgress, RebuildOptions, RebuildReport,
};
use lifeboat_prune::gc::{Clock as PruneClock, UnlockReport};
use lifeboat_prune::{
    ForgetOptions, ForgetPlan, ForgetReport, PruneOptions, PruneProgress, PruneReport,
};
use lifeboat_store::Backend;

use crate::error::{Error, Result};

/// An opened repository: its store, its master key and its index.
///
/// Open one with [`Repository::open`] on a store from
/// [`open_location`](crate::open_location) (or any [`Backend`]), or create
/// one with [`Repository::init`]. Every method takes `&self` except
/// [`change_password`](Repository::change_password); a `Repository` can be
/// shared between threads.
#[derive(Debug)]
pub struct Repository {
    inner: lifeboat_core::Repository,
}

/// What the repository's index lists: the stored size of the repository.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PackTotals {
    /// Packs.
    pub packs: usize,
    /// Bytes in those packs.
    pub bytes: u64,
    /// Blobs in those packs.
    pub blobs: usize,
}

impl Repository {
    /// Create a repository in an empty store, protected by `password`.
    /// Refuses if a repository is already there.
    pub fn init(backend: Arc<dyn Backend>, password: &[u8], opts: &InitOptions) -> Result<Self> {
        Ok(Self::from(lifeboat_core::Repository::init(
            backend, password, opts,
        )?))
    }

    /// Create a repository that names blobs as `source` does (same blob id
    /// key, chunker seed and chunk sizes), so that
    /// [`copy_from`](Repository::copy_from) moves blobs as they are. The
    /// data key and the password are its own.
    pub fn init_with_params_from(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
        source: &Repository,
    ) -> Result<Self> {
        Ok(Self::from(lifeboat_core::init_with_params_from(
            backend,
            password,
            opts,
            &source.inner,
        )?))
    }

    /// Open the repository in `backend` with `password`. The index's local
    /// table is kept under the user's cache folder (`$XDG_CACHE_HOME/lifeboat`).
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        Ok(Self::from(lifeboat_core::Repository::open(
            backend, password,
        )?))
    }

    /// [`open`](Repository::open), keeping the index's local table under
    /// `cache_root`; with `None`, in a temporary file rebuilt on every open.
    pub fn open_with_cache(
        backend: Arc<dyn Backend>,
        password: &[u8],
        cache_root: Option<PathBuf>,
    ) -> Result<Self> {
        Ok(Self::from(lifeboat_core::Repository::open_with_cache(
            backend, password, cache_root,
        )?))
    }

    /// [`open`](Repository::open) without reading the index, for
    /// [`rebuild_index`](Repository::rebuild_index) and
    /// [`compact_index`](Repository::compact_index), which must work when
    /// the index is damaged. Nothing else works on such a repository.
    pub fn open_without_index(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Self> {
        Ok(Self::from(lifeboat_core::Repository::open_without_index(
            backend, password,
        )?))
    }

    /// The repository's settings.
    pub fn config(&self) -> &Config {
        self.inner.config()
    }

    /// Where the repository is, as its store names it.
    pub fn location(&self) -> String {
        self.inner.backend().location()
    }

    /// Every readable key slot, and the slots skipped as damaged or stray.
    pub fn keys(&self) -> Result<Listing<KeyInfo>> {
        Ok(self.inner.keys()?)
    }

    /// Add a key slot for `password`; returns its id.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<Id> {
        Ok(self.inner.add_key(password, kdf)?)
    }

    /// Remove the key slot `spec` (an id or a unique prefix); not the one in
    /// use. Returns its id.
    pub fn remove_key(&self, spec: &str) -> Result<Id> {
        Ok(self.inner.remove_key(spec)?)
    }

    /// Replace the key slot in use by one for `new_password`; returns the
    /// new slot's id.
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<Id> {
        Ok(self.inner.change_password(new_password, kdf)?)
    }

    /// Back up `source` and write a snapshot. Unreadable entries are listed
    /// in the report, not errors.
    pub fn backup(
        &self,
        source: BackupSource<'_>,
        opts: &BackupOptions,
        progress: &Progress,
    ) -> Result<BackupReport> {
        Ok(self.inner.backup(source, opts, progress)?)
    }

    /// Restore `snapshot` into `opts.target`. A damaged file is listed in
    /// the report and the restore goes on with the rest.
    pub fn restore(
        &self,
        snapshot: &Snapshot,
        opts: &RestoreOptions,
        progress: &Progress,
    ) -> Result<RestoreReport> {
        Ok(self.inner.restore(snapshot, opts, progress)?)
    }

    /// Restore a block snapshot (or any whose root holds one regular file)
    /// onto a block device or into a file, `opts.target`. A new file stays
    /// sparse; on a device or a file with content, what must be zero is
    /// zeroed or discarded. Fails on the first damaged blob, naming it.
    pub fn restore_block(
        &self,
        snapshot: &Snapshot,
        opts: &BlockRestoreOptions,
        progress: &Progress,
    ) -> Result<BlockRestoreReport> {
        Ok(self.inner.restore_block(snapshot, opts, progress)?)
    }

    /// Every readable snapshot, with its id, and the objects skipped as
    /// damaged or stray (one bad snapshot costs only itself).
    pub fn snapshots(&self) -> Result<SnapshotList> {
        Ok(self.inner.snapshots()?)
    }

    /// What was skipped since the last call because it is damaged or does
    /// not belong (index segments, unindexed packs read from their headers,
    /// key slots, stray names). Lookups add to it as they go, so take it
    /// when an operation is done.
    pub fn take_warnings(&self) -> Vec<Warning> {
        self.inner.take_warnings()
    }

    /// The snapshot `spec` names (`latest`, an id or a unique prefix) among
    /// those that pass `filter`.
    pub fn find_snapshot(&self, spec: &str, filter: &SnapshotFilter) -> Result<(Id, Snapshot)> {
        Ok(self.inner.find_snapshot(spec, filter)?)
    }

    /// The tree blob `id`.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        Ok(self.inner.load_tree(id)?)
    }

    /// Visit every entry below the tree `tree`, depth first, with its path.
    /// `visit` returns whether to descend into a directory; an error from it
    /// stops the walk and comes back as [`Error::Visit`].
    pub fn walk(
        &self,
        tree: &Id,
        visit: &mut dyn FnMut(&Path, &Node) -> std::io::Result<bool>,
    ) -> Result<()> {
        let mut failed = None;
        let walked = self
            .inner
            .walk(tree, &mut |path, node| match visit(path, node) {
                Ok(descend) => Ok(descend),
                Err(e) => {
                    failed = Some(e);
                    Err(lifeboat_core::Error::Interrupted)
                }
            });
        match failed {
            Some(e) => Err(Error::Visit(e)),
            None => Ok(walked?),
        }
    }

    /// The entry at `path` (absolute, `/`-separated) below the tree `root`.
    pub fn find_node(&self, root: &Id, path: &str) -> Result<Node> {
        Ok(self.inner.find_node(root, path)?)
    }

    /// Write the content of the file `node` to `out`; returns the bytes
    /// written.
    pub fn dump_file(&self, node: &Node, out: &mut dyn Write) -> Result<u64> {
        Ok(self.inner.dump_file(node, out)?)
    }

    /// What changed from the tree `a` to the tree `b`.
    pub fn diff(&self, a: &Id, b: &Id) -> Result<Vec<DiffEntry>> {
        Ok(self.inner.diff(a, b)?)
    }

    /// Sizes and counts of `snapshots`.
    pub fn stats(&self, snapshots: &[Snapshot]) -> Result<Stats> {
        Ok(self.inner.stats(snapshots)?)
    }

    /// Packs, bytes and blobs the index lists.
    pub fn pack_totals(&self) -> PackTotals {
        let index = self.inner.index();
        PackTotals {
            packs: index.pack_count(),
            bytes: index.packs().map(|(_, size)| size).sum(),
            blobs: index.len(),
        }
    }

    /// Copy `snapshots` of `source` into this repository, sending only the
    /// blobs it lacks. Both must name blobs alike (see
    /// [`init_with_params_from`](Repository::init_with_params_from)).
    pub fn copy_from(
        &self,
        source: &Repository,
        snapshots: &[(Id, Snapshot)],
        progress: &Progress,
    ) -> Result<CopyReport> {
        Ok(lifeboat_core::copy_snapshots(
            &source.inner,
            &self.inner,
            snapshots,
            progress,
        )?)
    }

    /// Apply a retention policy: group the snapshots, decide which of each
    /// group `opts.policy` keeps, add the snapshots named in `opts.ids`, and
    /// unless `opts.dry_run` delete the others' snapshot objects (their data
    /// stays until prune). Snapshots whose time is after `now` are kept and
    /// counted in no rule; pass [`jiff::Timestamp::now()`] outside tests.
    /// See docs/forget.md for the rules.
    ///
    /// ```
    /// use lifeboat::{
    ///     BackupOptions, BackupSource, ForgetOptions, InitOptions, KeepCount, KeepReason,
    ///     Progress, Repository, RetentionPolicy,
    /// };
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let work = tempfile::tempdir()?;
    /// let source = work.path().join("photos");
    /// std::fs::create_dir(&source)?;
    /// std::fs::write(source.join("hello.txt"), b"hello, lifeboat")?;
    /// let backend = lifeboat::open_location(work.path().join("repo").to_str().unwrap(), true)?;
    /// let mut opts = InitOptions::default();
    /// opts.kdf = lifeboat::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
    /// let repo = Repository::init(backend, b"correct horse", &opts)?;
    /// // Three daily backups.
    /// for day in ["2026-01-01", "2026-01-02", "2026-01-03"] {
    ///     let opts = BackupOptions { time: Some(format!("{day}T03:00:00Z")), ..Default::default() };
    ///     repo.backup(BackupSource::Paths(vec![source.clone()]), &opts, &Progress::default())?;
    /// }
    ///
    /// let keep_two = ForgetOptions {
    ///     policy: RetentionPolicy { keep_last: Some(KeepCount::Newest(2)), ..Default::default() },
    ///     ..Default::default()
    /// };
    /// let now = lifeboat::jiff::Timestamp::now();
    /// // Plan first: nothing is deleted.
    /// let plan = repo.plan_forget(&keep_two, now)?;
    /// assert_eq!(plan.groups[0].keep[0].reasons, vec![KeepReason::Last]);
    /// assert_eq!(plan.groups[0].remove[0].time, "2026-01-01T03:00:00Z");
    /// assert_eq!(repo.snapshots()?.items.len(), 3);
    ///
    /// let report = repo.forget(&keep_two, now)?;
    /// assert_eq!(report.deleted, plan.to_forget());
    /// assert_eq!(repo.snapshots()?.items.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn forget(&self, opts: &ForgetOptions, now: jiff::Timestamp) -> Result<ForgetReport> {
        if !opts.dry_run {
            self.inner.require_delete("forget")?;
        }
        Ok(lifeboat_prune::forget(&self.inner, opts, now)?)
    }

    /// What [`forget`](Repository::forget) would do with `opts` against the
    /// repository's snapshots now; deletes nothing, whatever `opts.dry_run`.
    pub fn plan_forget(&self, opts: &ForgetOptions, now: jiff::Timestamp) -> Result<ForgetPlan> {
        let snapshots = self.inner.snapshots()?.items;
        Ok(lifeboat_prune::plan_forget(&snapshots, opts, now)?)
    }

    /// Garbage-collect the packs no snapshot uses, safely while other
    /// clients back up: lock, plan, and unless `opts.dry_run` carry the plan
    /// out. Unused packs are first marked and deleted by a later prune once
    /// `opts.grace` has passed (or at once with `opts.instant_delete`, only
    /// when no backup runs); partly used packs are repacked per
    /// `opts.max_unused`. See docs/prune.md.
    ///
    /// ```
    /// use lifeboat::{
    ///     BackupOptions, BackupSource, ForgetOptions, InitOptions, KeepCount, Progress,
    ///     PruneOptions, PruneProgress, Repository, RetentionPolicy,
    /// };
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let work = tempfile::tempdir()?;
    /// let source = work.path().join("photos");
    /// std::fs::create_dir(&source)?;
    /// let backend = lifeboat::open_location(work.path().join("repo").to_str().unwrap(), true)?;
    /// let mut opts = InitOptions::default();
    /// opts.kdf = lifeboat::KdfParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
    /// let repo = Repository::init(backend, b"correct horse", &opts)?;
    /// // Two backups of different data.
    /// for (i, text) in ["first version", "second, longer version"].iter().enumerate() {
    ///     std::fs::write(source.join("hello.txt"), text.repeat(1000 + i))?;
    ///     repo.backup(BackupSource::Paths(vec![source.clone()]), &BackupOptions::default(), &Progress::default())?;
    /// }
    /// let keep_one = ForgetOptions {
    ///     policy: RetentionPolicy { keep_last: Some(KeepCount::Newest(1)), ..Default::default() },
    ///     ..Default::default()
    /// };
    /// repo.forget(&keep_one, lifeboat::jiff::Timestamp::now())?;
    ///
    /// // By default the first snapshot's packs are only marked ...
    /// let report = repo.prune(&PruneOptions::default(), &PruneProgress::default())?;
    /// assert!(!report.plan.mark.is_empty());
    /// assert!(report.plan.delete.is_empty());
    /// // ... and with instant_delete (no backup running) deleted at once.
    /// let now = PruneOptions { instant_delete: true, ..Default::default() };
    /// let report = repo.prune(&now, &PruneProgress::default())?;
    /// assert!(report.plan.bytes_deleted_now() > 0);
    /// assert_eq!(report.executed.map(|e| e.bytes_deleted), Some(report.plan.bytes_deleted_now()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn prune(&self, opts: &PruneOptions, progress: &PruneProgress) -> Result<PruneReport> {
        if !opts.dry_run {
            self.inner.require_delete("prune")?;
        }
        Ok(lifeboat_prune::prune(&self.inner, opts, progress)?)
    }

    /// Delete the prune locks that have expired (left by a prune that was
    /// killed), and with `all` the live ones too: only when no prune can be
    /// running. Backups take no lock and are never affected.
    pub fn unlock(&self, all: bool, clock: &PruneClock) -> Result<UnlockReport> {
        Ok(lifeboat_prune::gc::unlock(&self.inner, all, clock)?)
    }

    /// Verify the repository's structure, and with `opts.read_data` every
    /// byte. Damage is in the report; an error means the check could not run.
    pub fn check(&self, opts: &CheckOptions, progress: &CheckProgress) -> Result<CheckReport> {
        Ok(lifeboat_check::check(&self.inner, opts, progress)?)
    }

    /// Rewrite the snapshots that reference lost data so that they lose only
    /// that data. Writes nothing unless `opts.forget_damaged`.
    pub fn repair_snapshots(
        &self,
        opts: &RepairOptions,
        progress: &CheckProgress,
    ) -> Result<RepairReport> {
        if opts.forget_damaged {
            self.inner.require_delete("repair")?;
        }
        Ok(lifeboat_check::repair_snapshots(
            &self.inner,
            opts,
            progress,
        )?)
    }

    /// Rebuild the index from the pack headers, then delete the segments it
    /// replaces.
    pub fn rebuild_index(
        &self,
        opts: &RebuildOptions,
        progress: &IndexProgress,
    ) -> Result<RebuildReport> {
        self.inner.require_delete("index maintenance")?;
        Ok(lifeboat_index::rebuild(
            self.inner.backend(),
            self.inner.master_key(),
            opts,
            progress,
        )?)
    }

    /// Merge small index segments into larger ones and delete the merged
    /// ones; safe while backups run.
    pub fn compact_index(
        &self,
        opts: &CompactOptions,
        progress: &IndexProgress,
    ) -> Result<CompactReport> {
        self.inner.require_delete("index maintenance")?;
        Ok(lifeboat_index::compact(
            self.inner.backend(),
            self.inner.master_key(),
            opts,
            progress,
        )?)
    }

    /// The engine's repository, for the other Lifeboat crates and tests.
    #[doc(hidden)]
    pub fn core(&self) -> &lifeboat_core::Repository {
        &self.inner
    }
}

#[doc(hidden)]
impl From<lifeboat_core::Repository> for Repository {
    fn from(inner: lifeboat_core::Repository) -> Self {
        Repository { inner }
    }
}

#[doc(hidden)]
impl RepositoryInternals for Repository {
    fn backend(&self) -> &Arc<dyn Backend> {
        self.inner.backend()
    }

    fn master_key(&self) -> &MasterKey {
        self.inner.master_key()
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.inner.index()
    }
}
