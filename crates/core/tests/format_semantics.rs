//! What the fields of `docs/format.md` mean when Lifeboat writes and
//! restores them: how snapshot `paths` map into the root tree, which bytes
//! of a name are kept where, hard links, sparse files, restored metadata,
//! and what a name that does not match an object's hash means. Each test
//! backs up real files into a local repository in a temporary directory.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::ffi::OsStr;
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lifeboat_core::format::layout::{self, Folder};
use lifeboat_core::format::{
    ChunkerParams, Compression, ContentPart, Id, KdfParams, Node, NodeKind, Snapshot, Tree,
};
use lifeboat_core::store::{Backend, ObjectStoreBackend};
use lifeboat_core::{
    BackupOptions, BackupSource, InitOptions, Progress, Repository, RestoreOptions, WarningKind,
};

const KDF: KdfParams = KdfParams {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

struct Fixture {
    work: tempfile::TempDir,
    repo_dir: PathBuf,
    repo: Repository,
}

fn fixture(opts: InitOptions) -> Fixture {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    fs::create_dir_all(&repo_dir).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap());
    let repo = Repository::init(backend, b"pw", &InitOptions { kdf: KDF, ..opts }).unwrap();
    Fixture {
        work,
        repo_dir,
        repo,
    }
}

impl Fixture {
    fn src(&self) -> PathBuf {
        let src = self.work.path().join("src");
        fs::create_dir_all(&src).unwrap();
        src
    }

    fn backup(&self, paths: Vec<PathBuf>) -> (Id, Snapshot) {
        let r = self
            .repo
            .backup(
                BackupSource::Paths(paths),
                &BackupOptions::default(),
                &Progress::default(),
            )
            .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        (r.id, r.snapshot)
    }

    fn restore(&self, snap: &Snapshot) -> PathBuf {
        let target = self.work.path().join("restored");
        let opts = RestoreOptions {
            target: target.clone(),
            ..RestoreOptions::default()
        };
        let r = self
            .repo
            .restore(snap, &opts, &Progress::default())
            .unwrap();
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        target
    }

    /// The node at absolute `path` in `snap`, by its exact name bytes.
    fn node(&self, snap: &Snapshot, path: &Path) -> Node {
        let mut tree = snap.tree;
        let comps: Vec<&OsStr> = path.iter().skip(1).collect();
        for (i, c) in comps.iter().enumerate() {
            let t = self.repo.load_tree(&tree).unwrap();
            let n = t.find(c.as_bytes()).unwrap().clone();
            if i + 1 == comps.len() {
                return n;
            }
            tree = n.subtree.unwrap();
        }
        panic!("{} names the root", path.display())
    }

    fn subtree(&self, node: &Node) -> Tree {
        self.repo.load_tree(&node.subtree.unwrap()).unwrap()
    }
}

fn set_mtime(path: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    let f = fs::File::open(path).unwrap();
    f.set_times(fs::FileTimes::new().set_modified(t)).unwrap();
}

/// `path` relative to the current directory, through `..` up to `/`.
fn relative_from_cwd(path: &Path) -> PathBuf {
    let cwd = std::env::current_dir().unwrap();
    let mut rel = PathBuf::new();
    for _ in cwd.iter().skip(1) {
        rel.push("..");
    }
    rel.join(path.strip_prefix("/").unwrap())
}

fn noise(len: usize, mut s: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

#[test]
fn init_writes_compression_auto_and_a_reader_needs_no_level() {
    let f = fixture(InitOptions::default());
    assert_eq!(f.repo.config().compression, Some(Compression::Auto));
    assert_eq!(f.repo.config().compression_level, Compression::AUTO_LEVEL);
    assert_eq!(f.repo.config().pack_size, 16 << 20);
    // A snapshot written in mode auto opens; nothing on the read side asks for the level.
    fs::write(f.src().join("a"), "x".repeat(10_000)).unwrap();
    let (id, _) = f.backup(vec![f.src()]);
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&f.repo_dir).unwrap());
    let again = Repository::open_with_cache(backend, b"pw", None).unwrap();
    assert_eq!(
        again.load_snapshot(&id).unwrap().paths,
        [f.src().display().to_string()]
    );
}

#[test]
fn paths_are_made_absolute_and_parents_list_only_the_backed_up_child() {
    let f = fixture(InitOptions::default());
    let parent = f.src().join("parent");
    let kept = parent.join("kept");
    fs::create_dir_all(&kept).unwrap();
    fs::write(kept.join("file"), b"content").unwrap();
    fs::write(parent.join("sibling"), b"not backed up").unwrap();
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o750)).unwrap();
    set_mtime(&parent, 1_000_000_000);

    // Relative, with `.` and `..`: stored lexically absolute.
    let messy = relative_from_cwd(&parent).join(".").join("kept/../kept");
    let (_, snap) = f.backup(vec![messy]);
    assert_eq!(snap.paths, [kept.display().to_string()]);

    // Every ancestor, from `/` down, is a directory listing only the next component.
    let mut tree = f.repo.load_tree(&snap.tree).unwrap();
    let mut at = PathBuf::from("/");
    for c in kept.iter().skip(1) {
        at.push(c);
        let names: Vec<&[u8]> = tree.nodes.iter().map(|n| n.name.as_slice()).collect();
        assert_eq!(names, [c.as_bytes()], "children of {}", at.display());
        let node = tree.nodes[0].clone();
        assert_eq!(node.kind, NodeKind::Dir);
        if at == kept {
            break;
        }
        tree = f.subtree(&node);
    }
    // The parent carries its own metadata, not made-up defaults.
    let p = f.node(&snap, &parent);
    let real = fs::symlink_metadata(&parent).unwrap();
    assert_eq!(p.mode, 0o750);
    assert_eq!(p.mtime.sec, 1_000_000_000);
    assert_eq!(
        (p.uid, p.gid, p.inode),
        (real.uid(), real.gid(), real.ino())
    );
    // The backed-up directory itself is whole.
    let k = f.node(&snap, &kept);
    assert_eq!(f.subtree(&k).nodes.len(), 1);
}

#[test]
fn stdin_is_one_file_in_the_root_tree_and_its_path_is_slash_name() {
    let f = fixture(InitOptions::default());
    let mut input: &[u8] = b"streamed bytes";
    let r = f
        .repo
        .backup(
            BackupSource::Stdin {
                filename: "dump.sql".into(),
                reader: &mut input,
            },
            &BackupOptions::default(),
            &Progress::default(),
        )
        .unwrap();
    assert_eq!(r.snapshot.paths, ["/dump.sql"]);
    let root = f.repo.load_tree(&r.snapshot.tree).unwrap();
    assert_eq!(root.nodes.len(), 1);
    let n = &root.nodes[0];
    assert_eq!(n.name, b"dump.sql");
    assert_eq!(n.kind, NodeKind::File);
    assert_eq!((n.mode, n.links, n.size), (0o644, 1, 14));
    assert_eq!((n.device_id, n.inode), (0, 0));
    assert_eq!((n.user.as_deref(), n.group.as_deref()), (None, None));
}

#[test]
fn non_utf8_names_are_exact_in_trees_and_lossy_in_paths() {
    let f = fixture(InitOptions::default());
    let name = OsStr::from_bytes(b"caf\xe9-\xff\xfe");
    let dir = f.src().join(name);
    fs::create_dir_all(&dir).unwrap();
    let (_, snap) = f.backup(vec![dir.clone()]);
    let lossy = format!("{}/caf\u{fffd}-\u{fffd}\u{fffd}", f.src().display());
    assert_eq!(snap.paths, [lossy]);
    assert_eq!(f.node(&snap, &dir).name, b"caf\xe9-\xff\xfe");
}

#[test]
fn hard_links_restore_as_one_inode_per_device_and_inode() {
    let f = fixture(InitOptions::default());
    let src = f.src();
    fs::write(src.join("a"), b"linked").unwrap();
    fs::hard_link(src.join("a"), src.join("b")).unwrap();
    fs::write(src.join("c"), b"linked").unwrap();
    let (_, snap) = f.backup(vec![src.clone()]);
    let (a, b, c) = (
        f.node(&snap, &src.join("a")),
        f.node(&snap, &src.join("b")),
        f.node(&snap, &src.join("c")),
    );
    assert_eq!((a.links, b.links, c.links), (2, 2, 1));
    assert_eq!((a.device_id, a.inode), (b.device_id, b.inode));

    let out = f.restore(&snap);
    let at = |n: &str| fs::metadata(out.join(src.strip_prefix("/").unwrap()).join(n)).unwrap();
    assert_eq!(at("a").ino(), at("b").ino());
    assert_eq!(at("a").nlink(), 2);
    assert_ne!(at("a").ino(), at("c").ino());
}

#[test]
fn restore_sets_times_and_numeric_owner_and_leaves_a_symlinks_mode() {
    let f = fixture(InitOptions::default());
    let src = f.src();
    let file = src.join("f");
    fs::write(&file, b"x").unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o640)).unwrap();
    let atime = SystemTime::UNIX_EPOCH + Duration::new(1_500_000_000, 123_456_789);
    let mtime = SystemTime::UNIX_EPOCH + Duration::new(1_400_000_000, 5);
    fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_times(fs::FileTimes::new().set_accessed(atime).set_modified(mtime))
        .unwrap();
    std::os::unix::fs::symlink("f", src.join("link")).unwrap();
    // An owner with no name on this system: restore goes by number.
    let root = nix_is_root();
    if root {
        std::os::unix::fs::lchown(&file, Some(4242), Some(4243)).unwrap();
    }
    let (_, snap) = f.backup(vec![src.clone()]);
    let n = f.node(&snap, &file);
    if root {
        assert_eq!((n.uid, n.gid, n.user.as_deref()), (4242, 4243, None));
    }
    let l = f.node(&snap, &src.join("link"));
    assert_eq!(l.symlink_target.as_deref(), Some(&b"f"[..]));

    let out = f.restore(&snap).join(src.strip_prefix("/").unwrap());
    let md = fs::symlink_metadata(out.join("f")).unwrap();
    assert_eq!((md.atime(), md.atime_nsec()), (1_500_000_000, 123_456_789));
    assert_eq!((md.mtime(), md.mtime_nsec()), (1_400_000_000, 5));
    assert_eq!(md.mode() & 0o7777, 0o640);
    if root {
        assert_eq!((md.uid(), md.gid()), (4242, 4243));
    }
    let lmd = fs::symlink_metadata(out.join("link")).unwrap();
    assert!(lmd.file_type().is_symlink());
    assert_eq!(fs::read_link(out.join("link")).unwrap(), Path::new("f"));
    // Linux has no lchmod: a symlink's mode is whatever the system gives it.
    assert_eq!(lmd.mode() & 0o777, 0o777);
}

fn nix_is_root() -> bool {
    fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

#[test]
fn a_sparse_file_is_chunked_per_data_extent_from_the_extents_first_byte() {
    let f = fixture(InitOptions {
        chunker: ChunkerParams {
            min_size: 1024,
            avg_size: 4096,
            max_size: 16384,
        },
        ..InitOptions::default()
    });
    let src = f.src();
    let mib = 1u64 << 20;
    let first = noise(64 << 10, 1);
    let second = noise(64 << 10, 2);
    let sparse = src.join("sparse");
    let mut file = fs::File::create(&sparse).unwrap();
    file.write_all(&first).unwrap();
    file.seek(SeekFrom::Start(2 * mib)).unwrap();
    file.write_all(&second).unwrap();
    file.set_len(4 * mib).unwrap();
    file.sync_all().unwrap();
    drop(file);
    assert!(
        fs::metadata(&sparse).unwrap().blocks() * 512 < mib,
        "the file system keeps holes"
    );
    // The second extent's bytes alone, in a file of their own.
    fs::write(src.join("alone"), &second).unwrap();
    let (_, snap) = f.backup(vec![src.clone()]);

    let parts = f.node(&snap, &sparse).content;
    let blobs = |ps: &[ContentPart]| -> Vec<Id> {
        ps.iter()
            .filter_map(|p| match p {
                ContentPart::Blob { id, .. } => Some(*id),
                ContentPart::Hole { .. } => None,
            })
            .collect()
    };
    let holes: Vec<(usize, u64)> = parts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            ContentPart::Hole { len } => Some((i, *len)),
            ContentPart::Blob { .. } => None,
        })
        .collect();
    assert_eq!(holes.len(), 2, "{parts:?}");
    assert_eq!(holes[0].1, 2 * mib - (64 << 10));
    assert_eq!(holes[1], (parts.len() - 1, 2 * mib - (64 << 10)));
    let after_hole = &parts[holes[0].0 + 1..holes[1].0];
    // Cut from the extent's first byte: the same blobs as the bytes alone.
    let alone = f.node(&snap, &src.join("alone")).content;
    assert_eq!(blobs(after_hole), blobs(&alone));
    assert!(blobs(&alone).len() > 4);
}

#[test]
fn a_snapshot_under_a_name_that_is_not_its_hash_is_refused() {
    let f = fixture(InitOptions::default());
    fs::write(f.src().join("a"), b"a").unwrap();
    let (id, _) = f.backup(vec![f.src()]);
    let wrong = Id([7; 32]);
    fs::copy(
        f.repo_dir.join(layout::object_path(Folder::Snapshots, &id)),
        f.repo_dir
            .join(layout::object_path(Folder::Snapshots, &wrong)),
    )
    .unwrap();
    assert!(f.repo.load_snapshot(&wrong).is_err());
    // Listing every snapshot skips it with a warning (issue 15: damage costs
    // only that snapshot), where it used to fail the whole listing.
    let list = f.repo.snapshots().unwrap();
    assert_eq!(list.items.iter().map(|(i, _)| *i).collect::<Vec<_>>(), [id]);
    assert_eq!(list.skipped.len(), 1);
    assert_eq!(list.skipped[0].id(), Some(wrong));
    assert_eq!(list.skipped[0].kind, WarningKind::DamagedSnapshot);
}

#[test]
fn a_key_slot_under_a_name_that_is_not_its_hash_still_opens() {
    let f = fixture(InitOptions::default());
    let keys = f.repo_dir.join(Folder::Keys.name());
    let slot = fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    fs::rename(&slot, keys.join(Id([9; 32]).to_hex())).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::local(&f.repo_dir).unwrap());
    assert!(Repository::open_with_cache(backend, b"pw", None).is_ok());
}
