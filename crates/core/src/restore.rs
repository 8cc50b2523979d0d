//! Restore a snapshot into a directory, and stream one file out.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_format::{BlobType, ContentPart, Id, Node, NodeKind, Snapshot};
use rayon::prelude::*;

use crate::filter::PathFilter;
use crate::meta::{apply_metadata, own_ids};
use crate::restore_plan::FileJob;
use crate::restore_target::{
    Action, DirOutcome, Overwrite, RESTORE_TEMP_PREFIX, TempNames, decide, make_dir, make_special,
    same_file, same_special,
};
use crate::{EntryError, Progress};
use crate::{Error, Repository, Result};

/// Restore settings.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    /// Directory to restore into (created if missing).
    pub target: PathBuf,
    /// Restore only entries matching these patterns (and what they contain).
    pub includes: Vec<String>,
    /// Skip entries matching these patterns.
    pub excludes: Vec<String>,
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
    /// What to do with entries that exist in the target already (default
    /// [`Overwrite::Always`]; see there why).
    pub overwrite: Overwrite,
    /// Failure injection, for tests of restore (feature `testing`).
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub fail: crate::failpoint::FailPoints,
}

/// The outcome of a restore.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreReport {
    /// Regular files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Other entries (links, devices, fifos).
    pub others: u64,
    /// Content bytes written.
    pub bytes: u64,
    /// Existing entries not written, under [`RestoreOptions::overwrite`]:
    /// left as they were, or (`IfChanged`) kept with their content and
    /// given the snapshot's metadata.
    pub skipped: u64,
    /// Entries that could not be restored fully.
    pub errors: Vec<EntryError>,
}

struct Entry {
    /// Path inside the snapshot, starting with `/`.
    path: PathBuf,
    node: Node,
}

fn take_set<'a>(s: &Mutex<HashSet<&'a Path>>) -> HashSet<&'a Path> {
    std::mem::take(&mut *lock(s))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Repository {
    /// The plaintext of every tree under `root`, read, decrypted and
    /// verified one level at a time in parallel on `pool` (one by one, tree
    /// loading was a sixth of a restore of 100k files). Kept encoded, a
    /// third of the decoded size. A tree that fails to load is left out:
    /// the walk that follows loads it again and reports the error where it
    /// belongs, or never needs it when a filter skips its directory.
    fn prefetch_trees(&self, root: &Id, pool: &rayon::ThreadPool) -> HashMap<Id, Vec<u8>> {
        let mut out: HashMap<Id, Vec<u8>> = HashMap::new();
        let mut level = vec![*root];
        while !level.is_empty() {
            let loaded: Vec<(Id, Vec<u8>, Vec<Id>)> = pool.install(|| {
                level
                    .par_iter()
                    .filter_map(|id| {
                        let b = self.read_blob(BlobType::Tree, id).ok()?;
                        let subs = self
                            .decode_tree(id, &b)
                            .ok()?
                            .nodes
                            .iter()
                            .filter(|n| n.kind == NodeKind::Dir)
                            .filter_map(|n| n.subtree)
                            .collect();
                        Some((*id, b, subs))
                    })
                    .collect()
            });
            let mut next = Vec::new();
            for (id, b, subs) in loaded {
                out.insert(id, b);
                next.extend(subs);
            }
            next.sort();
            next.dedup();
            next.retain(|id| !out.contains_key(id));
            level = next;
        }
        out
    }

    /// The node at `path` (like `/etc/hosts`) in the tree `root`.
    pub fn find_node(&self, root: &Id, path: &str) -> Result<Node> {
        let mut tree = *root;
        let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
        if comps.is_empty() {
            return Err(Error::InvalidArgument(
                "path names the snapshot root, not a file".into(),
            ));
        }
        for (i, c) in comps.iter().enumerate() {
            let t = self.load_tree(&tree)?;
            let n = t
                .find(c.as_bytes())
                .ok_or_else(|| Error::PathNotFound { path: path.into() })?;
            if i + 1 == comps.len() {
                return Ok(n.clone());
            }
            tree = n
                .subtree
                .ok_or_else(|| Error::PathNotFound { path: path.into() })?;
        }
        Err(Error::PathNotFound { path: path.into() })
    }

    /// Write a file's content to `out`, verifying every blob. Returns the
    /// bytes written.
    pub fn dump_file(&self, node: &Node, out: &mut dyn Write) -> Result<u64> {
        if node.kind != NodeKind::File {
            return Err(Error::InvalidArgument(format!(
                "{} is not a regular file",
                node.name_lossy()
            )));
        }
        let zeros = vec![0u8; 1 << 20];
        let mut n = 0u64;
        for part in &node.content {
            match part {
                ContentPart::Blob { id, .. } => {
                    let data = self.read_blob(BlobType::Data, id)?;
                    out.write_all(&data).map_err(|e| Error::io("<output>", e))?;
                    n += data.len() as u64;
                }
                ContentPart::Hole { len } => {
                    let mut left = *len;
                    while left > 0 {
                        let k = left.min(zeros.len() as u64) as usize;
                        out.write_all(&zeros[..k])
                            .map_err(|e| Error::io("<output>", e))?;
                        left -= k as u64;
                    }
                    n += len;
                }
            }
        }
        out.flush().map_err(|e| Error::io("<output>", e))?;
        Ok(n)
    }

    /// Restore `snapshot` into `opts.target`. Content is verified blob by
    /// blob; a damaged blob fails that file (named in the report) and the
    /// restore goes on with the rest.
    pub fn restore(
        &self,
        snapshot: &Snapshot,
        opts: &RestoreOptions,
        progress: &Progress,
    ) -> Result<RestoreReport> {
        let includes = PathFilter::new(&opts.includes)?;
        let excludes = PathFilter::new(&opts.excludes)?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads.unwrap_or_else(|| self.default_io_threads()))
            .thread_name(|i| format!("lifeboat-restore-{i}"))
            .build()
            .map_err(Error::ThreadPool)?;
        // 1. Select entries.
        let mut all: Vec<(Entry, bool)> = Vec::new();
        let mut selected_dirs: HashSet<PathBuf> = HashSet::new();
        let mut trees = self.prefetch_trees(&snapshot.tree, &pool);
        self.walk_owned(
            &snapshot.tree,
            Path::new("/"),
            &mut trees,
            &mut |p, mut node| {
                if excludes.matches(p) {
                    return Ok(None);
                }
                let selected = includes.is_empty()
                    || p.parent().is_some_and(|pp| selected_dirs.contains(pp))
                    || includes.matches(p);
                if selected && node.kind == NodeKind::Dir && !includes.is_empty() {
                    selected_dirs.insert(p.to_path_buf());
                }
                let sub = node.subtree;
                if !selected && node.kind != NodeKind::Dir {
                    return Ok(sub);
                }
                // Keep only what restoring needs: the path carries the name,
                // and ownership is restored by number.
                node.name = Vec::new();
                node.user = None;
                node.group = None;
                all.push((
                    Entry {
                        path: p.to_path_buf(),
                        node,
                    },
                    selected,
                ));
                Ok(sub)
            },
        )?;
        drop(trees);
        let mut needed: HashSet<PathBuf> = HashSet::new();
        for (e, s) in &all {
            if *s {
                let mut a = e.path.parent();
                while let Some(p) = a {
                    if !needed.insert(p.to_path_buf()) {
                        break;
                    }
                    a = p.parent();
                }
            }
        }
        let entries: Vec<Entry> = all
            .into_iter()
            .filter(|(e, s)| *s || needed.contains(&e.path))
            .map(|(e, _)| e)
            .collect();

        let target = &opts.target;
        let mode = opts.overwrite;
        let target_existed = fs::symlink_metadata(target).is_ok();
        fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
        let dest = |p: &Path| target.join(p.strip_prefix("/").unwrap_or(p));
        let errors = Mutex::new(Vec::<EntryError>::new());
        let record = |p: &Path, m: String| {
            progress.errors.fetch_add(1, Ordering::Relaxed);
            errors
                .lock()
                .unwrap_or_else(|x| x.into_inner())
                .push(EntryError {
                    path: p.display().to_string(),
                    message: m,
                })
        };
        let mut report = RestoreReport::default();
        // Temporary names never take the name of an entry being restored.
        let temps = TempNames::new(
            entries
                .iter()
                .filter(|e| {
                    e.path
                        .file_name()
                        .is_some_and(|n| n.as_bytes().starts_with(RESTORE_TEMP_PREFIX.as_bytes()))
                })
                .map(|e| dest(&e.path))
                .collect(),
        );

        // 2. Directories, one depth at a time, each depth in parallel. A
        // symlink in the target is never followed (see `make_dir`), and
        // nothing is restored below a directory that could not be made.
        let mut dirs: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.node.kind == NodeKind::Dir)
            .collect();
        dirs.sort_by_key(|e| e.path.components().count());
        let made = AtomicU64::new(0);
        let existing_dirs = Mutex::new(HashSet::<&Path>::new());
        let failed_dirs = Mutex::new(HashSet::<&Path>::new());
        pool.install(|| {
            for level in
                dirs.chunk_by(|a, b| a.path.components().count() == b.path.components().count())
            {
                // Read-only while this depth runs.
                let failed_above = take_set(&failed_dirs);
                level.par_iter().for_each(|e| {
                    let path = e.path.as_path();
                    let outcome = match path.parent() {
                        Some(p) if failed_above.contains(p) => Err(None),
                        _ => make_dir(&dest(path), mode).map_err(Some),
                    };
                    match outcome {
                        Ok(o) => {
                            made.fetch_add(1, Ordering::Relaxed);
                            if matches!(o, DirOutcome::Existed) {
                                lock(&existing_dirs).insert(path);
                            }
                        }
                        Err(why) => {
                            if let Some(why) = why {
                                record(path, why);
                            }
                            lock(&failed_dirs).insert(path);
                        }
                    }
                });
                lock(&failed_dirs).extend(failed_above);
            }
        });
        report.dirs = made.into_inner();
        let existing_dirs = take_set(&existing_dirs);
        let failed_dirs = take_set(&failed_dirs);
        // Entries whose directory could not be made are left out (its error
        // is reported once).
        let unreachable = |p: &Path| p.parent().is_some_and(|d| failed_dirs.contains(d));
        // Only an entry whose directory existed before may exist already;
        // the others are created with no look first.
        let may_exist = |p: &Path| match p.parent() {
            Some(d) if d == Path::new("/") => target_existed,
            Some(d) => existing_dirs.contains(d),
            None => false,
        };
        // The owner of the files about to be created is this process's when
        // every directory is new and none hands down its group (set-group-id
        // is inherited by new directories, so the target tells): restore
        // then skips chown on files that are to have that owner.
        let setgid = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p).map_or(true, |m| m.permissions().mode() & 0o2000 != 0)
        };
        let new_owner = (existing_dirs.is_empty() && !setgid(target)).then(own_ids);

        // 3. File content, in parallel; hard-linked files are written once.
        let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
        let mut links: Vec<(usize, usize)> = Vec::new();
        let mut files: Vec<usize> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.node.kind != NodeKind::File || unreachable(&e.path) {
                continue;
            }
            if e.node.links > 1 {
                match first_of.get(&(e.node.device_id, e.node.inode)) {
                    Some(&f) => {
                        links.push((f, i));
                        continue;
                    }
                    None => {
                        first_of.insert((e.node.device_id, e.node.inode), i);
                    }
                }
            }
            files.push(i);
        }
        // What is there already decides each file's fate (`Overwrite`).
        let actions: Vec<std::io::Result<Action>> = pool.install(|| {
            files
                .par_iter()
                .map(|&i| {
                    let e = &entries[i];
                    if !may_exist(&e.path) {
                        return Ok(Action::Create);
                    }
                    let d = dest(&e.path);
                    decide(mode, &d, &e.node, |md| {
                        same_file(&self.key, &d, md, &e.node)
                    })
                })
                .collect()
        });
        // Failed files and those left as they were get no metadata; nor do
        // those whose metadata was set through their handle.
        let mut skip_meta: HashSet<usize> = HashSet::new();
        let mut not_restored: HashSet<usize> = HashSet::new();
        let mut jobs: Vec<FileJob> = Vec::new();
        let mut job_entries: Vec<usize> = Vec::new();
        for (&i, action) in files.iter().zip(actions) {
            let e = &entries[i];
            match action {
                Ok(a @ (Action::Create | Action::Replace)) => {
                    jobs.push(FileJob {
                        dest: dest(&e.path),
                        node: &e.node,
                        replace: a == Action::Replace,
                    });
                    job_entries.push(i);
                }
                Ok(Action::KeepContent) => report.skipped += 1,
                Ok(Action::Skip) => {
                    report.skipped += 1;
                    skip_meta.insert(i);
                }
                Err(err) => {
                    record(&e.path, format!("lstat: {err} (file not restored)"));
                    not_restored.insert(i);
                    skip_meta.insert(i);
                }
            }
        }
        let outcome = self.restore_contents(
            &jobs,
            &pool,
            progress,
            new_owner,
            &temps,
            #[cfg(feature = "testing")]
            &opts.fail,
        );
        drop(jobs);
        if progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        for ((&i, why), meta) in job_entries
            .iter()
            .zip(outcome.failures)
            .zip(outcome.metadata)
        {
            if let Some(why) = why {
                record(&entries[i].path, format!("{why} (file not restored)"));
                not_restored.insert(i);
                skip_meta.insert(i);
            } else if let Some(problems) = meta {
                for p in problems {
                    record(&entries[i].path, p);
                }
                skip_meta.insert(i);
            }
        }
        // Files whose content failed are in the errors, not among those written.
        report.files = (job_entries.len()
            - job_entries
                .iter()
                .filter(|i| not_restored.contains(i))
                .count()) as u64;
        report.bytes = outcome.bytes;

        // 4. Links and special files, each made beside what it replaces.
        for &(first, i) in &links {
            let e = &entries[i];
            if not_restored.contains(&first) {
                record(
                    &e.path,
                    "hard link: the file it links to was not restored".into(),
                );
                skip_meta.insert(i);
                continue;
            }
            let (src, dst) = (dest(&entries[first].path), dest(&e.path));
            let action = if may_exist(&e.path) {
                decide(mode, &dst, &e.node, |md| {
                    fs::symlink_metadata(&src)
                        .is_ok_and(|s| (s.dev(), s.ino()) == (md.dev(), md.ino()))
                })
            } else {
                Ok(Action::Create)
            };
            let res = match action {
                Ok(Action::Create) => fs::hard_link(&src, &dst),
                Ok(Action::Replace) => temps.replace_with(&dst, |t| fs::hard_link(&src, t)),
                Ok(Action::KeepContent) => {
                    report.skipped += 1;
                    continue;
                }
                Ok(Action::Skip) => {
                    report.skipped += 1;
                    skip_meta.insert(i);
                    continue;
                }
                Err(err) => Err(err),
            };
            match res {
                Ok(()) => report.others += 1,
                Err(err) => {
                    record(&e.path, format!("hard link: {err}"));
                    skip_meta.insert(i);
                }
            }
        }
        let others = AtomicU64::new(0);
        let skipped = AtomicU64::new(0);
        let left_alone = Mutex::new(Vec::<usize>::new());
        pool.install(|| {
            entries.par_iter().enumerate().for_each(|(i, e)| {
                let what = match e.node.kind {
                    NodeKind::Symlink => "symlink",
                    NodeKind::Fifo => "mkfifo",
                    NodeKind::CharDevice | NodeKind::BlockDevice => "mknod",
                    _ => return,
                };
                let make = |p: &Path| make_special(p, &e.node);
                if unreachable(&e.path) {
                    return;
                }
                let d = dest(&e.path);
                let action = if may_exist(&e.path) {
                    decide(mode, &d, &e.node, |md| same_special(&d, md, &e.node))
                } else {
                    Ok(Action::Create)
                };
                let res = match action {
                    Ok(Action::Create) => make(&d),
                    Ok(Action::Replace) => temps.replace_with(&d, make),
                    Ok(a @ (Action::Skip | Action::KeepContent)) => {
                        skipped.fetch_add(1, Ordering::Relaxed);
                        if a == Action::Skip {
                            lock(&left_alone).push(i);
                        }
                        return;
                    }
                    Err(err) => Err(err),
                };
                match res {
                    Ok(()) => {
                        others.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(err) => {
                        record(&e.path, format!("{what}: {err}"));
                        lock(&left_alone).push(i);
                    }
                }
            })
        });
        report.others += others.into_inner();
        report.skipped += skipped.into_inner();
        skip_meta.extend(lock(&left_alone).iter());

        // 5. Metadata: everything but directories, then directories deepest
        // first. Under `Overwrite::Never` directories that existed keep theirs.
        let keep_dir = |p: &Path| {
            failed_dirs.contains(p) || (mode == Overwrite::Never && existing_dirs.contains(p))
        };
        pool.install(|| {
            entries.par_iter().enumerate().for_each(|(i, e)| {
                if e.node.kind == NodeKind::Dir
                    || e.node.kind == NodeKind::Socket
                    || skip_meta.contains(&i)
                    || unreachable(&e.path)
                {
                    return;
                }
                for p in apply_metadata(&dest(&e.path), &e.node) {
                    record(&e.path, p);
                }
            });
            // Directories deepest first, each depth in parallel: setting a
            // directory's times must come after everything inside it.
            let mut dirs: Vec<&Entry> = entries
                .iter()
                .filter(|e| e.node.kind == NodeKind::Dir && !keep_dir(&e.path))
                .collect();
            dirs.sort_by_key(|e| std::cmp::Reverse(e.path.components().count()));
            for level in
                dirs.chunk_by(|a, b| a.path.components().count() == b.path.components().count())
            {
                level.par_iter().for_each(|e| {
                    for p in apply_metadata(&dest(&e.path), &e.node) {
                        record(&e.path, p);
                    }
                });
            }
        });
        report.errors = errors.into_inner().unwrap_or_else(|x| x.into_inner());
        Ok(report)
    }

    /// Threads for work that waits on the store or the file system: two
    /// per core for a local repository, as restoring small files spends
    /// much of its time in the kernel creating files (on the 2-core
    /// machine, 4 threads restored the real tree of docs/benchmarks.md in
    /// 3.7-3.9 s, 2 threads in 4.1-4.2 s); for a remote one at least 8, so
    /// that enough ranged reads are in flight to hide each request's
    /// latency.
    fn default_io_threads(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let loc = self.backend.location();
        let remote = ["s3://", "gs://", "az://", "http://", "https://"]
            .iter()
            .any(|p| loc.starts_with(p));
        if remote { cores.max(8) } else { 2 * cores }
    }
}
