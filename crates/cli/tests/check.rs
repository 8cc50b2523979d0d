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
use lifeboat::format::{
    BlobType, ContentPart, Id, IndexEntry, IndexPack, IndexSegment, PackBuilder, seal_blob,
};
use lifeboat::Repository;
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

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dst = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dst);
        } else {
            fs::copy(e.path(), &dst).unwrap();
            fs::set_permissions(&dst, fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
}

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
    let h = id.to_hex();
    repo.join("data").join(&h[..2]).join(&h)
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
    lb(&["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"]);
    let pw2 = root.join("password2");
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
    for (tag, time) in [("one", "2026-01-01T00:00:00Z"), ("two", "2026-01-02T00:00:00Z")] {
        let src = format!("{GOLDEN_SRC}/{tag}");
        lb(&["backup", "-q", "--host", "golden", "--tag", tag, "--time", time, &src]);
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
    assert_ne!(p1, p2, "snapshot two's new data must be in a pack of its own");
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
    let loc = *repo.index().get(&zeta).unwrap();
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
    for e in fs::read_dir(d.join("index")).unwrap() {
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
        d.join("index").join(Id::of_object(&sealed).to_hex()),
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
        d.join("snapshots").join(Id::of_object(&sealed).to_hex()),
        sealed,
    )
    .unwrap();

    // corrupt_key_slot: one hex digit of the second slot's wrapped key.
    let d = variant("corrupt_key_slot");
    let mut changed = 0;
    for e in fs::read_dir(d.join("keys")).unwrap() {
        let e = e.unwrap();
        let text = fs::read_to_string(e.path()).unwrap();
        let slot = lifeboat::format::KeySlot::from_json(text.as_bytes()).unwrap();
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
    flip_bit(&d.join("snapshots").join(two_id.to_hex()), 40);

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
    let tree = |tag: &str| repo.load_snapshot(&tags[tag].parse().unwrap()).unwrap().tree;
    let blob = |tag: &str, file: &str| {
        let n = repo
            .find_node(&tree(tag), &format!("{GOLDEN_SRC}/{tag}/{file}"))
            .unwrap();
        match n.content[0] {
            ContentPart::Blob { id, .. } => id,
            ContentPart::Hole { .. } => panic!("hole"),
        }
    };
    let (zeta, alpha, beta) = (blob("two", "zeta.txt"), blob("one", "alpha.txt"), blob("one", "beta.bin"));
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
    for (args, (code, cats, damaged)) in [(&[][..], structural), (&["--read-data"][..], read_data)] {
        let (c, v) = r.check(args);
        let what = format!("{variant} {args:?}: {v:#}");
        assert_eq!(c, code, "exit code of {what}");
        let want: BTreeSet<String> = cats.iter().map(|s| s.to_string()).collect();
        assert_eq!(categories(&v), want, "categories of {what}");
        let want: BTreeSet<String> = damaged.iter().map(|t| tags[*t].clone()).collect();
        assert_eq!(strings(&v["damaged_snapshots"]), want, "damaged snapshots of {what}");
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
    assert_eq!(d["data"]["blobs_read"].as_u64(), Some(r.open().index().len() as u64));
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
            assert_eq!(fs::read(golden().join("source").join(rel)).unwrap(), bytes, "{rel}");
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
        assert_eq!(strings(&p[0]["snapshots"]), BTreeSet::from([f.tags["two"].clone()]));
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
        .map(|(id, _)| *id)
        .collect();
    assert!(!lost.is_empty());
    let mut damaged: Vec<&str> = Vec::new();
    for tag in ["one", "two"] {
        let snap = repo.load_snapshot(&f.tags[tag].parse().unwrap()).unwrap();
        let mut hit = false;
        repo.walk(&snap.tree, &mut |_, n| {
            hit |= n.content.iter().any(|c| matches!(c, ContentPart::Blob { id, .. } if lost.contains(id)));
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
        fs::read_dir(p.join("index"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let gone: Vec<String> = names(&valid.path).difference(&names(&r.path)).cloned().collect();
    assert_eq!(gone.len(), 1);
    let seg = IndexSegment::decode(
        valid.open().master_key(),
        &fs::read(valid.path.join("index").join(&gone[0])).unwrap(),
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
    assert_eq!(p[0]["object"], extra[0].file_name().unwrap().to_str().unwrap());
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
    r.run(&["check"]).fails("check with the lost password", 12, &["wrong password"]);
    let mut v = Repo::golden("valid");
    v.password_file = golden().join("password2");
    v.run(&["check"]).ok("the second password opens the valid repository");
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
