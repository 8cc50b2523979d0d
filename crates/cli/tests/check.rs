//! `lifeboat check` and `lifeboat repair snapshots`, end to end.
//!
//! The golden repositories in `testdata/golden/` are committed bytes: a small
//! valid v1 repository and damaged variants of it, each asserted to be
//! reported in exactly its category (see `testdata/golden/README.md`). The
//! other tests build repositories with many packs and damage them here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use lifeboat_core::Repository;
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{
    BlobType, ContentPart, Id, IndexEntry, IndexPack, IndexSegment, KeySlot, PackBuilder, seal_blob,
};
use serde_json::Value;

// ---- golden repositories ---------------------------------------------------------

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

/// Where the generator puts the source trees while backing them up: the
/// snapshots record these paths.
const GOLDEN_SRC: &str = "/tmp/lifeboat-golden";

/// Every variant, in the order of the README.
const VARIANTS: &[&str] = &[
    "missing_pack",
    "truncated_pack",
    "bitflip_blob",
    "bitflip_pack_header",
    "missing_index_segment",
    "orphan_pack",
    "duplicate_blob",
    "missing_tree",
    "corrupt_key_slot",
    "damaged_snapshot",
];

/// Every file under `dir` with its bytes, by path relative to `dir`.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                out.insert(
                    e.path().strip_prefix(dir).unwrap().to_path_buf(),
                    fs::read(e.path()).unwrap(),
                );
            }
        }
    }
    out
}

/// A repository directory in a temporary directory, opened with a password
/// file.
struct Repo {
    tmp: tempfile::TempDir,
    path: PathBuf,
    password_file: PathBuf,
}

impl Repo {
    /// A copy of golden repository `variant`.
    fn golden(variant: &str) -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        copy_dir(&golden().join(variant), &path);
        Repo {
            path,
            password_file: golden().join("password"),
            tmp,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = base_cmd();
        c.arg("-r")
            .arg(&self.path)
            .arg("--password-file")
            .arg(&self.password_file)
            .args(args);
        run(&mut c)
    }

    /// `--json check <args>`: exit code and report.
    fn check(&self, args: &[&str]) -> (i32, Value) {
        let mut a = vec!["--json", "check"];
        a.extend_from_slice(args);
        let o = self.run(&a);
        let v = o.json();
        assert_eq!(
            v["exit_code"].as_i64(),
            Some(i64::from(o.code)),
            "exit code differs from the report's: {v}"
        );
        (o.code, v)
    }

    fn open(&self) -> Repository {
        let pw = fs::read_to_string(&self.password_file).unwrap();
        let backend = lifeboat::open_location(self.path.to_str().unwrap(), false).unwrap();
        Repository::open(backend, pw.trim_end().as_bytes()).unwrap()
    }

    /// Snapshot ids by tag.
    fn snapshots_by_tag(&self) -> HashMap<String, String> {
        let o = self.run(&["--json", "snapshots"]).ok("snapshots");
        let mut m = HashMap::new();
        for s in o.json().as_array().unwrap() {
            for t in s["tags"].as_array().unwrap() {
                m.insert(
                    t.as_str().unwrap().to_string(),
                    s["id"].as_str().unwrap().to_string(),
                );
            }
        }
        m
    }
}

fn categories(v: &Value) -> BTreeSet<String> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["category"].as_str().unwrap().to_string())
        .collect()
}

fn problems<'a>(v: &'a Value, category: &str) -> Vec<&'a Value> {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["category"] == category)
        .collect()
}

fn strings(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

/// Content of the golden source trees, by path relative to `source/`.
fn golden_sources() -> Vec<(&'static str, Vec<u8>)> {
    let alpha: Vec<u8> = (0..200)
        .flat_map(|i| format!("alpha line {i}\n").into_bytes())
        .collect();
    let zeta: Vec<u8> = (0..100)
        .flat_map(|i| format!("zeta line {i}\n").into_bytes())
        .collect();
    let beta = random_bytes(1, 8192);
    vec![
        ("one/alpha.txt", alpha.clone()),
        ("one/beta.bin", beta.clone()),
        ("one/gamma.txt", alpha),
        ("one/sub/delta.txt", b"delta\n".to_vec()),
        ("two/epsilon.bin", beta),
        ("two/zeta.txt", zeta),
    ]
}

fn flip_bit(path: &Path, at: usize) {
    let mut b = fs::read(path).unwrap();
    b[at] ^= 0x10;
    fs::write(path, b).unwrap();
}

fn pack_file(repo: &Path, id: &Id) -> PathBuf {
    repo.join(layout::object_path(Folder::Data, id))
}

/// Rebuild `testdata/golden/`. Encryption draws fresh nonces, so this
/// rewrites every byte: run it only when the format changes on purpose, and
/// review the README afterwards.
#[test]
#[ignore = "rewrites testdata/golden; run on purpose only"]
fn generate_golden() {
    let root = golden();
    for v in std::iter::once("valid").chain(VARIANTS.iter().copied()) {
        let _ = fs::remove_dir_all(root.join(v));
    }
    let _ = fs::remove_dir_all(root.join("source"));
    let _ = fs::remove_dir_all(GOLDEN_SRC);
    for (rel, bytes) in golden_sources() {
        for base in [root.join("source"), PathBuf::from(GOLDEN_SRC)] {
            let p = base.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(&p, &bytes).unwrap();
        }
    }
    fs::write(root.join("password"), "golden-password-one\n").unwrap();
    fs::write(root.join("password2"), "golden-password-two\n").unwrap();
    let valid = root.join("valid");
    let lb = |args: &[&str]| {
        let mut c = base_cmd();
        c.arg("-r")
            .arg(&valid)
            .arg("--password-file")
            .arg(root.join("password"))
            .args(args);
        run(&mut c).ok(&format!("{args:?}"))
    };
    // The golden tests expect one data pack and one tree pack per backup.
    // Data blobs go to one of two open packs at random, so a backup may
    // split its files over two: then the repository is made again.
    let pw2 = root.join("password2");
    for attempt in 1.. {
        let _ = fs::remove_dir_all(&valid);
        lb(&["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"]);
        lb(&[
            "key",
            "add",
            "--new-password-file",
            pw2.to_str().unwrap(),
            "--kdf-memory-kib",
            "1024",
            "--kdf-iterations",
            "1",
        ]);
        for (tag, time) in [
            ("one", "2026-01-01T00:00:00Z"),
            ("two", "2026-01-02T00:00:00Z"),
        ] {
            let src = format!("{GOLDEN_SRC}/{tag}");
            lb(&[
                "backup", "-q", "--host", "golden", "--tag", tag, "--time", time, &src,
            ]);
        }
        let packs = fingerprint(&valid.join(Folder::Data.name())).len();
        if packs == 4 {
            break;
        }
        assert!(attempt < 50, "{attempt} tries, never 4 packs");
    }

    let base = Repo {
        tmp: tempfile::tempdir().unwrap(),
        path: valid.clone(),
        password_file: root.join("password"),
    };
    let repo = base.open();
    let tags = base.snapshots_by_tag();
    let snap = |tag: &str| {
        let id: Id = tags[tag].parse().unwrap();
        (id, repo.load_snapshot(&id).unwrap())
    };
    let (_, one) = snap("one");
    let (two_id, two) = snap("two");
    let blob_of = |tree: &Id, path: &str| match repo.find_node(tree, path).unwrap().content[0] {
        ContentPart::Blob { id, .. } => id,
        ContentPart::Hole { .. } => panic!("{path} is a hole"),
    };
    let zeta = blob_of(&two.tree, &format!("{GOLDEN_SRC}/two/zeta.txt"));
    let alpha = blob_of(&one.tree, &format!("{GOLDEN_SRC}/one/alpha.txt"));
    let beta = blob_of(&one.tree, &format!("{GOLDEN_SRC}/one/beta.bin"));
    let (p1, p2) = {
        let idx = repo.index();
        (idx.get(&beta).unwrap().pack, idx.get(&zeta).unwrap().pack)
    };
    assert_ne!(
        p1, p2,
        "snapshot two's new data must be in a pack of its own"
    );
    let variant = |name: &str| {
        let d = root.join(name);
        copy_dir(&valid, &d);
        d
    };

    // missing_pack: snapshot two's own data pack is gone.
    let f = pack_file(&variant("missing_pack"), &p2);
    fs::remove_file(&f).unwrap();
    let _ = fs::remove_dir(f.parent().unwrap());

    // truncated_pack: snapshot one's data pack loses its second half.
    let d = variant("truncated_pack");
    let f = pack_file(&d, &p1);
    let len = fs::metadata(&f).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&f)
        .unwrap()
        .set_len(len / 2)
        .unwrap();

    // bitflip_blob: one bit in the middle of zeta.txt's blob.
    let loc = repo.index().get(&zeta).unwrap();
    let d = variant("bitflip_blob");
    flip_bit(
        &pack_file(&d, &p2),
        (loc.offset + loc.stored_len / 2) as usize,
    );

    // bitflip_pack_header: one bit in the middle of the encrypted header of
    // snapshot one's data pack.
    let d = variant("bitflip_pack_header");
    let f = pack_file(&d, &p1);
    let bytes = fs::read(&f).unwrap();
    let n = bytes.len();
    let hlen = u32::from_le_bytes(bytes[n - 12..n - 8].try_into().unwrap()) as usize;
    flip_bit(&f, n - 12 - hlen / 2);

    // missing_index_segment: the segment written by snapshot two's backup.
    let d = variant("missing_index_segment");
    let mut removed = 0;
    for e in fs::read_dir(d.join(Folder::Index.name())).unwrap() {
        let e = e.unwrap();
        let seg = IndexSegment::decode(repo.master_key(), &fs::read(e.path()).unwrap()).unwrap();
        if seg.packs.iter().any(|p| p.id == p2) {
            fs::remove_file(e.path()).unwrap();
            removed += 1;
        }
    }
    assert_eq!(removed, 1);

    let key = repo.master_key();
    let level = repo.config().compression_level;
    let write_pack = |dir: &Path, plain: &[u8]| -> IndexPack {
        let b = seal_blob(key, BlobType::Data, plain, level).unwrap();
        let mut p = PackBuilder::new(BlobType::Data, 0);
        p.add(&b).unwrap();
        let (bytes, id, entries) = p.finish(key).unwrap();
        let f = pack_file(dir, &id);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(&f, &bytes).unwrap();
        IndexPack {
            id,
            blob_type: BlobType::Data,
            size: bytes.len() as u64,
            blobs: entries
                .iter()
                .map(|e| IndexEntry {
                    id: e.id,
                    flags: e.flags,
                    offset: e.offset,
                    stored_len: e.stored_len,
                    raw_len: e.raw_len,
                })
                .collect(),
        }
    };

    // orphan_pack: a pack no index lists and nothing needs, as a backup that
    // stopped before writing its index leaves.
    write_pack(
        &variant("orphan_pack"),
        b"data of a backup that never finished\n",
    );

    // duplicate_blob: alpha.txt's blob stored a second time, in a pack of
    // its own with its own index segment.
    let d = variant("duplicate_blob");
    let alpha_bytes = fs::read(root.join("source/one/alpha.txt")).unwrap();
    let pack = write_pack(&d, &alpha_bytes);
    assert_eq!(pack.blobs[0].id, alpha);
    let mut seg = IndexSegment::new();
    seg.packs.push(pack);
    let sealed = seg.encode(key).unwrap();
    fs::write(
        d.join(Folder::Index.name())
            .join(Id::of_object(&sealed).to_hex()),
        sealed,
    )
    .unwrap();

    // missing_tree: a third snapshot whose root tree was never stored.
    let d = variant("missing_tree");
    let mut three = one.clone();
    three.tree = key.blob_id(b"a tree that was never stored");
    three.tags = vec!["three".into()];
    three.time = "2026-01-03T00:00:00Z".into();
    let sealed = three.encode(key, level).unwrap();
    fs::write(
        d.join(Folder::Snapshots.name())
            .join(Id::of_object(&sealed).to_hex()),
        sealed,
    )
    .unwrap();

    // corrupt_key_slot: one hex digit of the second slot's wrapped key.
    let d = variant("corrupt_key_slot");
    let mut changed = 0;
    for e in fs::read_dir(d.join(Folder::Keys.name())).unwrap() {
        let e = e.unwrap();
        let text = fs::read_to_string(e.path()).unwrap();
        let slot = KeySlot::from_json(text.as_bytes()).unwrap();
        if slot.open(b"golden-password-two").is_ok() {
            let at = text.find("\"wrapped_key\": \"").unwrap() + 40;
            let mut b = text.into_bytes();
            b[at] = if b[at] == b'0' { b'1' } else { b'0' };
            fs::write(e.path(), b).unwrap();
            changed += 1;
        }
    }
    assert_eq!(changed, 1);

    // damaged_snapshot: one bit of snapshot two's object.
    let d = variant("damaged_snapshot");
    flip_bit(&d.join(Folder::Snapshots.name()).join(two_id.to_hex()), 40);

    drop(base);
    let _ = fs::remove_dir_all(GOLDEN_SRC);
}

// ---- golden tests ------------------------------------------------------------------

/// Facts about the golden repository, found through the library (not through
/// `check`), to compare `check`'s findings with.
struct Facts {
    /// Snapshot ids by tag.
    tags: HashMap<String, String>,
    /// Data pack of snapshot one (alpha, beta, delta).
    p1: Id,
    /// Data pack of snapshot two's new data (zeta).
    p2: Id,
    zeta: Id,
    alpha: Id,
}

fn facts() -> Facts {
    let r = Repo::golden("valid");
    let tags = r.snapshots_by_tag();
    let repo = r.open();
    let tree = |tag: &str| {
        repo.load_snapshot(&tags[tag].parse().unwrap())
            .unwrap()
            .tree
    };
    let blob = |tag: &str, file: &str| {
        let n = repo
            .find_node(&tree(tag), &format!("{GOLDEN_SRC}/{tag}/{file}"))
            .unwrap();
        match n.content[0] {
            ContentPart::Blob { id, .. } => id,
            ContentPart::Hole { .. } => panic!("hole"),
        }
    };
    let (zeta, alpha, beta) = (
        blob("two", "zeta.txt"),
        blob("one", "alpha.txt"),
        blob("one", "beta.bin"),
    );
    let idx = repo.index();
    Facts {
        p1: idx.get(&beta).unwrap().pack,
        p2: idx.get(&zeta).unwrap().pack,
        zeta,
        alpha,
        tags: tags.clone(),
    }
}

/// Check a copy of `variant` structurally and with --read-data; each must
/// exit with its code and report exactly its categories and damaged
/// snapshots (by tag). Returns both reports.
fn assert_variant(
    variant: &str,
    structural: (i32, &[&str], &[&str]),
    read_data: (i32, &[&str], &[&str]),
) -> (Value, Value) {
    let f = facts();
    let r = Repo::golden(variant);
    let mut tags = f.tags.clone();
    if variant == "missing_tree" {
        tags.extend(r.snapshots_by_tag());
    }
    let mut out = Vec::new();
    for (args, (code, cats, damaged)) in [(&[][..], structural), (&["--read-data"][..], read_data)]
    {
        let (c, v) = r.check(args);
        let what = format!("{variant} {args:?}: {v:#}");
        assert_eq!(c, code, "exit code of {what}");
        let want: BTreeSet<String> = cats.iter().map(|s| s.to_string()).collect();
        assert_eq!(categories(&v), want, "categories of {what}");
        let want: BTreeSet<String> = damaged.iter().map(|t| tags[*t].clone()).collect();
        assert_eq!(
            strings(&v["damaged_snapshots"]),
            want,
            "damaged snapshots of {what}"
        );
        assert!(v["unchecked"].as_array().unwrap().is_empty(), "{what}");
        for p in v["problems"].as_array().unwrap() {
            assert!(!p["message"].as_str().unwrap().is_empty(), "{what}");
        }
        out.push(v);
    }
    let rd = out.pop().unwrap();
    (out.pop().unwrap(), rd)
}

#[test]
fn golden_valid_checks_clean_and_restores_byte_identical() {
    let (s, d) = assert_variant("valid", (0, &[], &[]), (0, &[], &[]));
    assert_eq!(s["snapshots"], 2);
    assert_eq!(s["keys"], 2);
    assert_eq!(s["packs"], 4);
    assert!(s["data"].is_null(), "no data pass without --read-data");
    assert_eq!(d["data"]["packs_read"], 4);
    assert_eq!(d["data"]["packs_selected"], 4);
    // Old repositories stay readable: every blob verifies, and every file
    // restores byte-identical.
    let r = Repo::golden("valid");
    assert_eq!(
        d["data"]["blobs_read"].as_u64(),
        Some(r.open().index().len() as u64)
    );
    let tags = r.snapshots_by_tag();
    for tag in ["one", "two"] {
        let target = r.tmp.path().join(format!("restore-{tag}"));
        r.run(&["restore", &tags[tag], "--target", target.to_str().unwrap()])
            .ok("restore golden");
        let restored = restored_path(&target, Path::new(GOLDEN_SRC)).join(tag);
        let mut n = 0;
        for (rel, bytes) in golden_sources() {
            let Some(rest) = rel.strip_prefix(&format!("{tag}/")) else {
                continue;
            };
            assert_eq!(fs::read(restored.join(rest)).unwrap(), bytes, "{rel}");
            assert_eq!(
                fs::read(golden().join("source").join(rel)).unwrap(),
                bytes,
                "{rel}"
            );
            n += 1;
        }
        assert_eq!(count_files(&restored), n, "restored {tag} has extra files");
    }
}

#[test]
fn golden_missing_pack() {
    let f = facts();
    let (s, d) = assert_variant(
        "missing_pack",
        (4, &["missing_pack"], &["two"]),
        (4, &["missing_pack"], &["two"]),
    );
    for v in [&s, &d] {
        let p = problems(v, "missing_pack");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["object"], f.p2.to_hex());
        assert_eq!(
            strings(&p[0]["snapshots"]),
            BTreeSet::from([f.tags["two"].clone()])
        );
    }
    assert_eq!(d["data"]["packs_read"], 3);
}

#[test]
fn golden_truncated_pack() {
    let f = facts();
    // Which snapshots lose data, from the index of the valid repository: the
    // blobs of p1 that end past the new length.
    let valid = Repo::golden("valid");
    let repo = valid.open();
    let len = fs::metadata(pack_file(&Repo::golden("truncated_pack").path, &f.p1))
        .unwrap()
        .len();
    let lost: BTreeSet<Id> = repo
        .index()
        .iter()
        .filter(|(_, l)| l.pack == f.p1 && u64::from(l.offset + l.stored_len) > len)
        .map(|(id, _)| id)
        .collect();
    assert!(!lost.is_empty());
    let mut damaged: Vec<&str> = Vec::new();
    for tag in ["one", "two"] {
        let snap = repo.load_snapshot(&f.tags[tag].parse().unwrap()).unwrap();
        let mut hit = false;
        repo.walk(&snap.tree, &mut |_, n| {
            hit |= n
                .content
                .iter()
                .any(|c| matches!(c, ContentPart::Blob { id, .. } if lost.contains(id)));
            Ok(true)
        })
        .unwrap();
        if hit {
            damaged.push(tag);
        }
    }
    let (s, d) = assert_variant(
        "truncated_pack",
        (4, &["wrong_size_pack"], &damaged),
        (4, &["wrong_size_pack"], &damaged),
    );
    for v in [&s, &d] {
        let p = problems(v, "wrong_size_pack");
        assert_eq!(p[0]["object"], f.p1.to_hex());
        assert!(p[0]["message"].as_str().unwrap().contains("truncated"));
    }
}

#[test]
fn golden_bitflip_blob() {
    let f = facts();
    let (_, d) = assert_variant(
        "bitflip_blob",
        (0, &[], &[]),
        (4, &["corrupt_blob"], &["two"]),
    );
    let p = problems(&d, "corrupt_blob");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0]["object"], f.zeta.to_hex());
}

#[test]
fn golden_bitflip_pack_header() {
    let f = facts();
    let (_, d) = assert_variant(
        "bitflip_pack_header",
        (0, &[], &[]),
        (4, &["corrupt_pack_header"], &[]),
    );
    let p = problems(&d, "corrupt_pack_header");
    assert_eq!(p[0]["object"], f.p1.to_hex());
    // Its blobs still verify through the index, so nothing is lost, but
    // both snapshots use the pack (two shares beta.bin with one).
    assert_eq!(
        strings(&p[0]["snapshots"]),
        BTreeSet::from([f.tags["one"].clone(), f.tags["two"].clone()])
    );
}

#[test]
fn golden_missing_index_segment() {
    let valid = Repo::golden("valid");
    let r = Repo::golden("missing_index_segment");
    let names = |p: &Path| -> BTreeSet<String> {
        fs::read_dir(p.join(Folder::Index.name()))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let gone: Vec<String> = names(&valid.path)
        .difference(&names(&r.path))
        .cloned()
        .collect();
    assert_eq!(gone.len(), 1);
    let seg = IndexSegment::decode(
        valid.open().master_key(),
        &fs::read(valid.path.join(Folder::Index.name()).join(&gone[0])).unwrap(),
    )
    .unwrap();
    let packs: BTreeSet<String> = seg.packs.iter().map(|p| p.id.to_hex()).collect();
    assert_eq!(packs.len(), 2, "a data pack and a tree pack");
    let (s, d) = assert_variant(
        "missing_index_segment",
        (4, &["missing_index_segment"], &["two"]),
        (4, &["missing_index_segment"], &["two"]),
    );
    for v in [&s, &d] {
        let objs: BTreeSet<String> = problems(v, "missing_index_segment")
            .iter()
            .map(|p| p["object"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(objs, packs);
    }
}

#[test]
fn golden_orphan_pack() {
    let (s, _) = assert_variant(
        "orphan_pack",
        (0, &["orphan_pack"], &[]),
        (0, &["orphan_pack"], &[]),
    );
    let valid: BTreeSet<PathBuf> = fingerprint(&golden().join("valid")).into_keys().collect();
    let extra: Vec<PathBuf> = fingerprint(&golden().join("orphan_pack"))
        .into_keys()
        .filter(|p| !valid.contains(p))
        .collect();
    assert_eq!(extra.len(), 1);
    let p = problems(&s, "orphan_pack");
    assert_eq!(
        p[0]["object"],
        extra[0].file_name().unwrap().to_str().unwrap()
    );
    assert_eq!(p[0]["severity"], "notice");
}

#[test]
fn golden_duplicate_blob() {
    let f = facts();
    let (s, d) = assert_variant(
        "duplicate_blob",
        (0, &["duplicate_blob"], &[]),
        (0, &["duplicate_blob"], &[]),
    );
    for v in [&s, &d] {
        let p = problems(v, "duplicate_blob");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0]["object"], f.alpha.to_hex());
    }
}

#[test]
fn golden_missing_tree() {
    let (s, _) = assert_variant(
        "missing_tree",
        (4, &["missing_tree"], &["three"]),
        (4, &["missing_tree"], &["three"]),
    );
    assert_eq!(s["snapshots"], 3);
}

#[test]
fn golden_corrupt_key_slot() {
    let (s, _) = assert_variant(
        "corrupt_key_slot",
        (4, &["corrupt_key_slot"], &[]),
        (4, &["corrupt_key_slot"], &[]),
    );
    let valid = fingerprint(&golden().join("valid"));
    let changed: Vec<String> = fingerprint(&golden().join("corrupt_key_slot"))
        .into_iter()
        .filter(|(p, b)| valid.get(p) != Some(b))
        .map(|(p, _)| p.to_str().unwrap().to_string())
        .collect();
    assert_eq!(changed.len(), 1);
    assert_eq!(problems(&s, "corrupt_key_slot")[0]["object"], changed[0]);
    // The damaged slot's password no longer opens the repository.
    let mut r = Repo::golden("corrupt_key_slot");
    r.password_file = golden().join("password2");
    r.run(&["check"])
        .fails("check with the lost password", 12, &["wrong password"]);
    let mut v = Repo::golden("valid");
    v.password_file = golden().join("password2");
    v.run(&["check"])
        .ok("the second password opens the valid repository");
}

#[test]
fn golden_damaged_snapshot() {
    assert_variant(
        "damaged_snapshot",
        (4, &["damaged_snapshot"], &["two"]),
        (4, &["damaged_snapshot"], &["two"]),
    );
}

/// The README lists every variant that exists, and every variant is tested.
#[test]
fn golden_readme_lists_every_variant() {
    let readme = fs::read_to_string(golden().join("README.md")).unwrap();
    let dirs: BTreeSet<String> = fs::read_dir(golden())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n != "source" && n != "valid")
        .collect();
    let known: BTreeSet<String> = VARIANTS.iter().map(|s| s.to_string()).collect();
    assert_eq!(dirs, known);
    for v in VARIANTS {
        assert!(readme.contains(&format!("`{v}`")), "README lacks {v}");
    }
}

// ---- repositories with many packs ---------------------------------------------------

/// A repository with 1 MiB packs: 24 files of 256 KiB (about 6 data packs)
/// in two snapshots, plus tree packs.
fn many_packs() -> (Repo, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("repo");
    let password_file = tmp.path().join("password");
    fs::write(&password_file, PASSWORD).unwrap();
    let r = Repo {
        tmp,
        path,
        password_file,
    };
    r.run(&[
        "init",
        "--kdf-memory-kib",
        "1024",
        "--kdf-iterations",
        "1",
        "--pack-size",
        "1",
    ])
    .ok("init");
    let src = r.tmp.path().join("src");
    for i in 0..24u64 {
        let dir = if i % 3 == 0 {
            src.join("sub")
        } else {
            src.clone()
        };
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(format!("f{i:02}")),
            random_bytes(1000 + i, 256 << 10),
        )
        .unwrap();
    }
    fs::write(src.join("small.txt"), b"small\n").unwrap();
    let s = src.to_str().unwrap().to_string();
    r.run(&["backup", "-q", &s]).ok("backup 1");
    fs::write(src.join("f01"), random_bytes(77, 256 << 10)).unwrap();
    fs::write(src.join("new.txt"), b"new\n").unwrap();
    r.run(&["backup", "-q", &s]).ok("backup 2");
    (r, src)
}

/// Pack ids and sizes by blob type, from the index (through the library).
/// Pack ids with their sizes.
type Packs = Vec<(Id, u64)>;

fn packs_by_type(r: &Repo) -> (Packs, Packs) {
    let repo = r.open();
    let idx = repo.index();
    let mut types: BTreeMap<Id, BlobType> = BTreeMap::new();
    for (_, l) in idx.iter() {
        types.insert(l.pack, l.blob_type);
    }
    let (mut data, mut trees) = (Vec::new(), Vec::new());
    for (id, size) in idx.packs() {
        match types.get(&id) {
            Some(BlobType::Tree) => trees.push((id, size)),
            _ => data.push((id, size)),
        }
    }
    data.sort();
    trees.sort();
    (data, trees)
}

/// Where the index places blobs in each pack: (offset, end) of each
/// envelope, in pack order.
fn blobs_per_pack(r: &Repo) -> BTreeMap<Id, Vec<(u64, u64)>> {
    let repo = r.open();
    let mut n: BTreeMap<Id, Vec<(u64, u64)>> = BTreeMap::new();
    for (_, l) in repo.index().iter() {
        let off = u64::from(l.offset);
        n.entry(l.pack)
            .or_default()
            .push((off, off + u64::from(l.stored_len)));
    }
    for v in n.values_mut() {
        v.sort_unstable();
    }
    n
}

/// A data pack of [`many_packs`] that holds a 256 KiB file blob, so that
/// byte 100 is inside a blob. The packers race, so a pack may hold only
/// `small.txt` or `new.txt`: shorter than 100 bytes before its header, where a
/// flipped byte is a header finding instead of a blob's.
fn file_blob_pack(data: &Packs) -> Id {
    data.iter()
        .find(|(_, size)| *size > 64 << 10)
        .expect("a data pack with a file blob")
        .0
}

fn listed_packs(r: &Repo) -> usize {
    fingerprint(&r.path.join(Folder::Data.name())).len()
}

fn data_u64(v: &Value, field: &str) -> u64 {
    v["data"][field]
        .as_u64()
        .unwrap_or_else(|| panic!("no data.{field} in {v}"))
}

#[test]
fn check_never_modifies_the_repository() {
    let cases: Vec<Repo> = [
        "valid",
        "missing_pack",
        "bitflip_blob",
        "missing_index_segment",
        "corrupt_key_slot",
        "orphan_pack",
    ]
    .iter()
    .map(|v| Repo::golden(v))
    .chain(std::iter::once(many_packs().0))
    .collect();
    for r in &cases {
        let before = fingerprint(&r.path);
        for args in [
            &["check"][..],
            &["check", "--read-data"],
            &["--json", "check", "--read-data"],
            &["check", "--read-data-subset", "1/2"],
            &["check", "--read-data-subset", "50%"],
            &["check", "--read-data-subset", "1M"],
            &["repair", "snapshots"],
            &["repair", "snapshots", "--read-data"],
        ] {
            r.run(args);
            assert!(
                before == fingerprint(&r.path),
                "{args:?} changed {}",
                r.path.display()
            );
        }
        // Resumable mode writes its record under verify/ and nothing else.
        let (_, v) = r.check(&["--read-data", "--max-age", "30d", "--max-packs", "1"]);
        let record = v["data"]["record"].as_str().unwrap().to_string();
        let mut after = fingerprint(&r.path);
        let recs: Vec<PathBuf> = after
            .keys()
            .filter(|p| p.starts_with(Folder::Verify.name()))
            .cloned()
            .collect();
        assert_eq!(recs, vec![PathBuf::from(&record)]);
        after.retain(|p, _| !p.starts_with(Folder::Verify.name()));
        assert!(before == after, "resumable check changed more than verify/");
    }
}

#[test]
fn read_data_subsets_cover_and_select() {
    let (r, _) = many_packs();
    let total = listed_packs(&r) as u64;
    let (data, _) = packs_by_type(&r);
    assert!(total >= 8, "only {total} packs");
    // Damage one data pack: exactly one group of a partition finds it.
    let bad = file_blob_pack(&data);
    flip_bit(&pack_file(&r.path, &bad), 100);
    for m in [1u64, 3, 7] {
        let (mut read, mut found) = (0, 0);
        for n in 1..=m {
            let (code, v) = r.check(&["--read-data-subset", &format!("{n}/{m}")]);
            read += data_u64(&v, "packs_read");
            let hit = problems(&v, "corrupt_blob").len();
            found += hit;
            assert_eq!(code, if hit > 0 { 4 } else { 0 }, "{n}/{m}: {v}");
        }
        assert_eq!(read, total, "the groups of /{m} read every pack once");
        assert_eq!(found, 1, "exactly one group of /{m} holds the damaged pack");
    }
    for (pct, want) in [
        ("10%", total.div_ceil(10)),
        ("50%", total.div_ceil(2)),
        ("100%", total),
    ] {
        let (_, v) = r.check(&["--read-data-subset", pct]);
        assert_eq!(data_u64(&v, "packs_read"), want, "{pct}");
    }
    let (_, v) = r.check(&["--read-data-subset", "2500K"]);
    let bytes = data_u64(&v, "bytes_read");
    assert!(
        bytes <= 2500 << 10 && data_u64(&v, "packs_read") >= 1,
        "{v}"
    );
    let (_, v) = r.check(&["--read-data-subset", "100G"]);
    assert_eq!(data_u64(&v, "packs_read"), total);
    for bad in ["0/3", "4/3", "0%", "150%", "5Q", "x"] {
        r.run(&["check", "--read-data-subset", bad])
            .fails(bad, 2, &["read-data-subset"]);
    }
}

/// `--max-packs`: successive runs read packs not verified yet until all are,
/// then nothing; `--max-age 0s` makes everything due again.
#[test]
fn resumable_runs_cover_every_pack() {
    let (r, _) = many_packs();
    let total = listed_packs(&r) as u64;
    let mut runs = 0;
    let mut read = 0;
    loop {
        let (code, v) = r.check(&["--read-data", "--max-age", "30d", "--max-packs", "3"]);
        assert_eq!(code, 0, "{v}");
        let n = data_u64(&v, "packs_read");
        if n == 0 {
            assert_eq!(data_u64(&v, "packs_fresh"), total, "{v}");
            break;
        }
        runs += 1;
        read += n;
        assert_eq!(n, 3.min(total - (read - n)), "run {runs}: {v}");
        assert_eq!(data_u64(&v, "packs_fresh"), read - n);
        assert_eq!(data_u64(&v, "packs_left"), total - read);
        assert!(runs <= total, "no progress");
    }
    assert_eq!(read, total);
    assert_eq!(runs, total.div_ceil(3));
    let (_, v) = r.check(&["--read-data", "--max-age", "0s", "--max-packs", "2"]);
    assert_eq!(data_u64(&v, "packs_read"), 2);
    // Without --max-age every pack is due, the longest-unverified first.
    let (_, v) = r.check(&["--read-data", "--max-packs", "1"]);
    assert_eq!(data_u64(&v, "packs_read"), 1);
    assert_eq!(data_u64(&v, "packs_fresh"), 0);
    assert_eq!(
        fingerprint(&r.path.join(Folder::Verify.name())).len(),
        1,
        "one record"
    );
}

/// `--max-duration 0s` reads one pack per run; a damaged pack is read and
/// reported again by every later run, without stopping the others' progress.
#[test]
fn resumable_duration_and_damage() {
    let (r, _) = many_packs();
    let total = listed_packs(&r) as u64;
    let (data, _) = packs_by_type(&r);
    flip_bit(&pack_file(&r.path, &file_blob_pack(&data)), 100);
    let mut seen_damage = false;
    for run in 1..=total {
        let (code, v) = r.check(&["--read-data", "--max-age", "30d", "--max-duration", "0s"]);
        let damaged_now = !problems(&v, "corrupt_blob").is_empty();
        // The damaged pack is re-read on top of the one new pack per run.
        let want = 1 + u64::from(seen_damage);
        assert_eq!(
            data_u64(&v, "packs_read"),
            want.min(total),
            "run {run}: {v}"
        );
        if seen_damage {
            assert!(damaged_now, "run {run} forgot the damage: {v}");
        }
        seen_damage |= damaged_now;
        assert_eq!(code, if damaged_now { 4 } else { 0 });
    }
    assert!(seen_damage);
    let (code, v) = r.check(&["--read-data", "--max-age", "30d", "--max-duration", "0s"]);
    assert_eq!(code, 4);
    assert_eq!(data_u64(&v, "packs_read"), 1, "only the damaged pack: {v}");
    assert_eq!(data_u64(&v, "packs_fresh"), total - 1);
}

/// A damaged verification record is ignored with a warning.
#[test]
fn damaged_verification_record_is_only_a_warning() {
    let r = Repo::golden("valid");
    let (_, v) = r.check(&["--read-data", "--max-age", "30d"]);
    assert_eq!(data_u64(&v, "packs_read"), 4);
    let record = r.path.join(v["data"]["record"].as_str().unwrap());
    let (_, v) = r.check(&["--read-data", "--max-age", "30d"]);
    assert_eq!(data_u64(&v, "packs_read"), 0, "all fresh: {v}");
    let record2 = r.path.join(v["data"]["record"].as_str().unwrap());
    assert!(
        !record.exists() || record == record2,
        "old record not replaced"
    );
    flip_bit(&record2, 30);
    let (code, v) = r.check(&["--read-data", "--max-age", "30d"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        data_u64(&v, "packs_read"),
        4,
        "packs count as never verified"
    );
    let w = v["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{v}");
    assert!(w[0].as_str().unwrap().contains("damaged"), "{v}");
    assert_eq!(
        fingerprint(&r.path.join(Folder::Verify.name())).len(),
        1,
        "damaged record replaced"
    );
    // A record that is not even an object (garbage bytes) is no worse.
    let rec = fingerprint(&r.path.join(Folder::Verify.name()))
        .into_keys()
        .next()
        .unwrap();
    fs::write(r.path.join(Folder::Verify.name()).join(rec), b"garbage").unwrap();
    let (code, v) = r.check(&["--read-data", "--max-packs", "1"]);
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["warnings"].as_array().unwrap().len(), 1);
    r.run(&["check", "--max-age", "30d"]).fails(
        "--max-age without --read-data",
        2,
        &["--read-data"],
    );
    r.run(&["check", "--read-data-subset", "1/2", "--max-age", "1d"])
        .fails("subset with resumable", 2, &[]);
}

#[test]
fn repair_snapshots_drops_only_lost_data() {
    let (r, src) = many_packs();
    let (data, _) = packs_by_type(&r);
    let snaps = r.run(&["--json", "snapshots"]).ok("snapshots").json();
    assert_eq!(snaps.as_array().unwrap().len(), 2);
    // Lose one data pack and truncate another right after its first blob,
    // so that one blob of it survives and the others are lost. The cut one
    // must hold two blobs or more; which packs hold how many depends on how
    // the packers raced.
    let blobs = blobs_per_pack(&r);
    let (cut, keep_to) = data
        .iter()
        .find_map(|(id, _)| match blobs.get(id) {
            Some(v) if v.len() >= 2 => Some((*id, v[0].1)),
            _ => None,
        })
        .expect("a data pack with two blobs or more");
    let gone = data
        .iter()
        .map(|(id, _)| *id)
        .find(|id| *id != cut)
        .unwrap();
    fs::remove_file(pack_file(&r.path, &gone)).unwrap();
    fs::OpenOptions::new()
        .write(true)
        .open(pack_file(&r.path, &cut))
        .unwrap()
        .set_len(keep_to)
        .unwrap();
    let (code, v) = r.check(&[]);
    assert_eq!(code, 4);
    assert_eq!(
        categories(&v),
        BTreeSet::from(["missing_pack".to_string(), "wrong_size_pack".to_string()])
    );
    let damaged = strings(&v["damaged_snapshots"]);
    assert!(!damaged.is_empty());

    // Without the flag: a report, and no change.
    let before = fingerprint(&r.path);
    let o = r.run(&["repair", "snapshots"]).ok("dry run");
    assert!(o.out().contains("would be repaired"), "{}", o.out());
    assert!(
        before == fingerprint(&r.path),
        "the dry run changed the repository"
    );

    let o = r
        .run(&["--json", "repair", "snapshots", "--forget-damaged"])
        .ok("repair");
    let rep = o.json();
    assert_eq!(rep["dry_run"], false);
    let repaired = rep["snapshots"].as_array().unwrap();
    assert_eq!(
        repaired
            .iter()
            .map(|s| s["original"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>(),
        damaged
    );
    assert_eq!(rep["packs_dropped"].as_array().unwrap().len(), 2);
    assert!(
        rep["blobs_copied"].as_u64().unwrap() >= 1,
        "intact blobs of the cut pack: {rep}"
    );

    // Now the repository checks without damage; the damaged packs are
    // orphans (the truncated one is still there) that prune will remove.
    for args in [&[][..], &["--read-data"]] {
        let (code, v) = r.check(args);
        assert_eq!(code, 0, "{v}");
        let cats = categories(&v);
        assert!(cats.iter().all(|c| c == "orphan_pack"), "{v}");
    }
    // Originals are gone, the repaired ones are marked.
    let snaps = r.run(&["--json", "snapshots"]).ok("snapshots").json();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 2);
    for s in snaps {
        let id = s["id"].as_str().unwrap();
        assert!(!damaged.contains(id), "damaged original still there");
    }
    let marked: Vec<&Value> = snaps
        .iter()
        .filter(|s| {
            s["tags"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t == "repaired")
        })
        .collect();
    assert_eq!(marked.len(), damaged.len());

    // Restore each repaired snapshot: every file not listed as lost is
    // byte-identical to the source at the time of its backup (the newest
    // snapshot's files are the current source); lost parts restore as zeros.
    let newest = snaps
        .iter()
        .max_by_key(|s| s["time"].as_str().unwrap().to_string())
        .unwrap();
    let target = r.tmp.path().join("restored");
    r.run(&[
        "restore",
        newest["id"].as_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ])
    .ok("restore repaired");
    let root = restored_path(&target, &src);
    let lost: Vec<String> = newest["incomplete"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    // "lost in repair: /…/src/f05: N of M bytes lost (bytes 0..262144, …); …"
    let lost_ranges = |rel: &str| -> Option<Vec<(usize, usize)>> {
        let l = lost.iter().find(|l| l.contains(&format!("/{rel}: ")))?;
        let inner = &l[l.find("(bytes ").unwrap() + 7..];
        let inner = &inner[..inner.find(')').unwrap()];
        Some(
            inner
                .split(", ")
                .map(|r| {
                    let (a, b) = r.split_once("..").unwrap();
                    (a.parse().unwrap(), b.parse().unwrap())
                })
                .collect(),
        )
    };
    let (mut intact, mut zeroed) = (0, 0);
    let mut stack = vec![src.clone()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
                continue;
            }
            let rel = e
                .path()
                .strip_prefix(&src)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let mut want = fs::read(e.path()).unwrap();
            let got = fs::read(root.join(&rel)).unwrap();
            assert_eq!(got.len(), want.len(), "{rel}: size");
            if let Some(ranges) = lost_ranges(&rel) {
                for (a, b) in ranges {
                    assert!(
                        want[a..b].iter().any(|x| *x != 0),
                        "{rel}: lost range was zeros anyway"
                    );
                    want[a..b].fill(0);
                }
                zeroed += 1;
            } else {
                intact += 1;
            }
            assert!(
                got == want,
                "{rel}: differs outside what the repair says it lost"
            );
        }
    }
    assert!(zeroed >= 1, "nothing restored as lost: {lost:?}");
    assert!(intact >= 10, "only {intact} files survived");
}

#[test]
fn repair_refuses_while_the_index_is_incomplete() {
    let r = Repo::golden("missing_index_segment");
    let before = fingerprint(&r.path);
    r.run(&["repair", "snapshots", "--forget-damaged"])
        .fails("repair", 1, &["index rebuild"]);
    assert!(before == fingerprint(&r.path));
    // An unreadable snapshot object is removed only when asked.
    let r = Repo::golden("damaged_snapshot");
    let o = r.run(&["repair", "snapshots"]).ok("dry run");
    assert!(o.out().contains("cannot be read"), "{}", o.out());
    assert_eq!(fingerprint(&r.path.join(Folder::Snapshots.name())).len(), 2);
    r.run(&["repair", "snapshots", "--forget-damaged"])
        .ok("repair");
    assert_eq!(fingerprint(&r.path.join(Folder::Snapshots.name())).len(), 1);
    let (code, v) = r.check(&["--read-data"]);
    assert_eq!(code, 0, "{v}");
}

#[test]
fn exit_codes_and_json_report() {
    // Damage: 4, and the JSON names category, severity, object, snapshots.
    let r = Repo::golden("missing_pack");
    let (code, v) = r.check(&[]);
    assert_eq!(code, 4);
    assert_eq!(v["verdict"], "damaged");
    let p = &v["problems"][0];
    for k in ["category", "severity", "object", "message", "snapshots"] {
        assert!(!p[k].is_null(), "problem lacks {k}: {p}");
    }
    assert_eq!(p["severity"], "damage");
    assert!(
        !v.to_string().contains("golden-password"),
        "password in the report"
    );
    // Text mode names the category and the damaged snapshot.
    let o = r.run(&["check"]);
    assert_eq!(o.code, 4);
    assert!(o.out().contains("missing_pack") && o.out().contains("damaged snapshots"));

    // Could not check: 1 (config unreadable), 10 (no repository), 12.
    let r = Repo::golden("valid");
    flip_bit(&r.path.join("config"), 30);
    r.run(&["check"]).fails("corrupt config", 1, &["config"]);
    let mut c = base_cmd();
    c.args(["-r", "/nonexistent/lifeboat", "--password-file"])
        .arg(golden().join("password"))
        .arg("check");
    assert_eq!(run(&mut c).code, 10);
    let mut r = Repo::golden("valid");
    r.password_file = r.tmp.path().join("wrong");
    fs::write(&r.password_file, "wrong").unwrap();
    r.run(&["check"])
        .fails("wrong password", 12, &["wrong password"]);

    // The help documents the codes.
    let o = run(base_cmd().args(["check", "--help"])).ok("help");
    for s in [
        "Exit codes",
        "4   damage found",
        "could not check",
        "--read-data-subset",
        "--max-age",
    ] {
        assert!(o.out().contains(s), "help lacks {s:?}");
    }
}

/// A pack the store refuses to read: the check finishes, says what it could
/// not read, and exits 3 (no damage found, incomplete).
#[test]
fn unreadable_pack_makes_the_check_incomplete() {
    let r = Repo::golden("valid");
    let f = facts();
    let as_nobody = is_root();
    if as_nobody {
        open_up(r.tmp.path());
    }
    fs::set_permissions(pack_file(&r.path, &f.p2), fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = if as_nobody {
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("running as root needs setpriv (util-linux) to drop privileges");
        let mut c = std::process::Command::new(setpriv);
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()]);
        clean_env(&mut c);
        c
    } else {
        base_cmd()
    };
    let pw = r.tmp.path().join("pw");
    fs::copy(golden().join("password"), &pw).unwrap();
    fs::set_permissions(&pw, fs::Permissions::from_mode(0o644)).unwrap();
    c.arg("-r").arg(&r.path).arg("--password-file").arg(&pw);
    c.args(["--json", "check", "--read-data"]);
    let o = run(&mut c);
    let v = o.json();
    assert_eq!(o.code, 3, "{v}");
    assert_eq!(v["verdict"], "incomplete");
    let u = v["unchecked"].as_array().unwrap();
    assert!(
        u.iter()
            .any(|s| s.as_str().unwrap().contains(&f.p2.to_hex())),
        "{v}"
    );
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
}

/// Make everything under `dir` readable and writable by anyone (for runs
/// as nobody).
fn open_up(dir: &Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else {
                fs::set_permissions(e.path(), fs::Permissions::from_mode(0o666)).unwrap();
            }
        }
    }
}

/// When one copy of a duplicated blob is lost but the other survives in
/// another pack, repair loses nothing: it drops the damaged pack from the
/// index and leaves the snapshots alone.
#[test]
fn repair_uses_a_surviving_duplicate() {
    let r = Repo::golden("duplicate_blob");
    let valid: BTreeSet<PathBuf> = fingerprint(&golden().join("valid")).into_keys().collect();
    let extra: Vec<PathBuf> = fingerprint(&r.path.join(Folder::Data.name()))
        .into_keys()
        .filter(|p| !valid.contains(&Path::new(Folder::Data.name()).join(p)))
        .collect();
    assert_eq!(extra.len(), 1);
    fs::remove_file(r.path.join(Folder::Data.name()).join(&extra[0])).unwrap();
    let tags = r.snapshots_by_tag();
    let (code, v) = r.check(&[]);
    assert_eq!(code, 4, "{v}");
    let missing = problems(&v, "missing_pack");
    assert_eq!(missing.len(), 1, "{v}");
    // Which of the two copies reads use is the index's choice (the local
    // table keeps one); either way repair must lose nothing.
    let rep = r
        .run(&["--json", "repair", "snapshots", "--forget-damaged"])
        .ok("repair")
        .json();
    assert!(rep["snapshots"].as_array().unwrap().is_empty(), "{rep}");
    assert_eq!(rep["packs_dropped"].as_array().unwrap().len(), 1);
    let (code, v) = r.check(&["--read-data"]);
    assert_eq!(code, 0, "{v}");
    assert!(v["problems"].as_array().unwrap().is_empty(), "{v}");
    let target = r.tmp.path().join("out");
    r.run(&[
        "restore",
        &tags["one"],
        "--target",
        target.to_str().unwrap(),
    ])
    .ok("restore");
    let one = restored_path(&target, Path::new(GOLDEN_SRC)).join("one");
    assert_eq!(
        fs::read(one.join("alpha.txt")).unwrap(),
        fs::read(golden().join("source/one/alpha.txt")).unwrap()
    );
}
