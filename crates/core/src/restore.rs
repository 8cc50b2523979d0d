//! Restore a snapshot into a directory, and stream one file out.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use lifeboat_format::{BlobType, ContentPart, Id, Node, NodeKind, Snapshot};
use rayon::prelude::*;

use crate::filter::PathFilter;
use crate::meta::{apply_metadata, own_ids};
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
    /// Entries that could not be restored fully.
    pub errors: Vec<EntryError>,
}

struct Entry {
    /// Path inside the snapshot, starting with `/`.
    path: PathBuf,
    node: Node,
}

fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
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

        // 2. Directories, one depth at a time, each depth in parallel.
        let mut dirs: Vec<&Entry> = entries
            .iter()
            .filter(|e| e.node.kind == NodeKind::Dir)
            .collect();
        dirs.sort_by_key(|e| e.path.components().count());
        let made = AtomicU64::new(0);
        let existed = AtomicBool::new(false);
        pool.install(|| {
            for level in
                dirs.chunk_by(|a, b| a.path.components().count() == b.path.components().count())
            {
                level.par_iter().for_each(|e| {
                    let d = dest(&e.path);
                    // The parent exists unless it failed; create_dir_all
                    // then says why.
                    let res = match fs::create_dir(&d) {
                        Err(x) if x.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {
                            existed.store(true, Ordering::Relaxed);
                            Ok(())
                        }
                        Err(x) if x.kind() == std::io::ErrorKind::NotFound => {
                            fs::create_dir_all(&d)
                        }
                        r => r,
                    };
                    match res {
                        Ok(()) => {
                            made.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(err) => record(&e.path, format!("mkdir: {err}")),
                    }
                });
            }
        });
        report.dirs = made.into_inner();
        // The owner of the files about to be created is this process's when
        // every directory is new and none hands down its group (set-group-id
        // is inherited by new directories, so the target tells): restore
        // then skips chown on files that are to have that owner.
        let setgid = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(p).map_or(true, |m| m.permissions().mode() & 0o2000 != 0)
        };
        let new_owner = (!existed.into_inner() && !setgid(target)).then(own_ids);

        // 3. File content, in parallel; hard-linked files are written once.
        let mut first_of: HashMap<(u64, u64), usize> = HashMap::new();
        let mut links: Vec<(usize, usize)> = Vec::new();
        let mut files: Vec<usize> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            if e.node.kind != NodeKind::File {
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
        let jobs: Vec<(PathBuf, &Node)> = files
            .iter()
            .map(|&i| (dest(&entries[i].path), &entries[i].node))
            .collect();
        let outcome = self.restore_contents(&jobs, &pool, progress, new_owner);
        drop(jobs);
        if progress.cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        // Failed files get no metadata; those whose metadata was set
        // through their handle need none.
        let mut failed = 0usize;
        let mut skip_meta: HashSet<usize> = HashSet::new();
        for ((&i, why), meta) in files.iter().zip(outcome.failures).zip(outcome.metadata) {
            if let Some(why) = why {
                record(&entries[i].path, format!("{why} (file not restored)"));
                failed += 1;
                skip_meta.insert(i);
            } else if let Some(problems) = meta {
                for p in problems {
                    record(&entries[i].path, p);
                }
                skip_meta.insert(i);
            }
        }
        // Files whose content failed are in the errors, not among those written.
        report.files = (files.len() - failed) as u64;
        report.bytes = outcome.bytes;

        // 4. Links and special files.
        for (first, i) in &links {
            let (src, dst) = (dest(&entries[*first].path), dest(&entries[*i].path));
            let _ = fs::remove_file(&dst);
            match fs::hard_link(&src, &dst) {
                Ok(()) => report.others += 1,
                Err(err) => record(&entries[*i].path, format!("hard link: {err}")),
            }
        }
        let others = AtomicU64::new(0);
        pool.install(|| {
            entries.par_iter().for_each(|e| {
                let d = dest(&e.path);
                let res = match e.node.kind {
                    NodeKind::Symlink => {
                        let t = e.node.symlink_target.clone().unwrap_or_default();
                        let link = || std::os::unix::fs::symlink(os(&t), &d);
                        // Replace what an earlier restore left, only if there is one.
                        match link() {
                            Err(x) if x.kind() == std::io::ErrorKind::AlreadyExists => {
                                let _ = fs::remove_file(&d);
                                link()
                            }
                            r => r,
                        }
                        .map_err(|x| format!("symlink: {x}"))
                    }
                    NodeKind::Fifo => {
                        let _ = fs::remove_file(&d);
                        nix::unistd::mkfifo(
                            &d,
                            nix::sys::stat::Mode::from_bits_truncate(e.node.mode),
                        )
                        .map_err(|x| format!("mkfifo: {x}"))
                    }
                    NodeKind::CharDevice | NodeKind::BlockDevice => {
                        let _ = fs::remove_file(&d);
                        let kind = if e.node.kind == NodeKind::CharDevice {
                            nix::sys::stat::SFlag::S_IFCHR
                        } else {
                            nix::sys::stat::SFlag::S_IFBLK
                        };
                        nix::sys::stat::mknod(
                            &d,
                            kind,
                            nix::sys::stat::Mode::from_bits_truncate(e.node.mode),
                            e.node.rdev as nix::libc::dev_t,
                        )
                        .map_err(|x| format!("mknod: {x}"))
                    }
                    _ => return,
                };
                match res {
                    Ok(()) => {
                        others.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(m) => record(&e.path, m),
                }
            })
        });
        report.others += others.into_inner();

        // 5. Metadata: everything but directories, then directories deepest first.
        pool.install(|| {
            entries.par_iter().enumerate().for_each(|(i, e)| {
                if e.node.kind == NodeKind::Dir
                    || e.node.kind == NodeKind::Socket
                    || skip_meta.contains(&i)
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
                .filter(|e| e.node.kind == NodeKind::Dir)
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
