//! One damaged or stray object costs only what it holds, through the real
//! binary, on copies of the golden repositories (`testdata/golden`):
//! listings warn and go on, the readable snapshots restore, backups work.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use common::{Output, base_cmd, copy_dir, run};
use lifeboat_format::layout::Folder;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/golden")
}

/// Where the golden snapshots were taken from (their recorded paths).
const GOLDEN_SRC: &str = "tmp/lifeboat-golden";

struct Repo {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    scratch: PathBuf,
}

impl Repo {
    fn golden(variant: &str) -> Repo {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("repo");
        copy_dir(&golden().join(variant), &path);
        let scratch = tmp.path().join("scratch");
        fs::create_dir(&scratch).unwrap();
        Repo {
            path,
            scratch,
            _tmp: tmp,
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = base_cmd();
        c.arg("-r")
            .arg(&self.path)
            .arg("--password-file")
            .arg(golden().join("password"))
            .arg("--cache-dir")
            .arg(self.scratch.join("cache"))
            .args(args);
        run(&mut c)
    }

    /// Restore `spec` and compare the file contents with the golden source
    /// tree `tag` (`one` or `two`).
    fn restores(&self, spec: &str, tag: &str) -> Output {
        let target = self.scratch.join(format!("restore-{spec}-{tag}"));
        let o = self
            .run(&["restore", spec, "--target", target.to_str().unwrap()])
            .ok(&format!("restore {spec}"));
        let got = contents(&target.join(GOLDEN_SRC).join(tag));
        let want = contents(&golden().join("source").join(tag));
        assert!(!want.is_empty());
        assert_eq!(got, want, "restore of {spec} differs from source/{tag}");
        o
    }
}

/// Every regular file under `dir`, by relative path, with its bytes.
fn contents(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                stack.push(e.path());
            } else if e.file_type().unwrap().is_file() {
                let rel = e.path().strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, fs::read(e.path()).unwrap());
            }
        }
    }
    out
}

/// Snapshot ids (full hex) listed by `--json snapshots`, and its output.
fn listed(r: &Repo) -> (Vec<(String, String)>, Output) {
    let o = r.run(&["--json", "snapshots"]);
    let v: Vec<(String, String)> = o
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap().to_string(),
                s["tags"][0].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    (v, o)
}

#[test]
fn a_damaged_snapshot_costs_only_itself() {
    let r = Repo::golden("damaged_snapshot");
    let (snaps, o) = listed(&r);
    assert_eq!(o.code, 3, "snapshots must exit 3 when it skipped one");
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let (good, tag) = snaps[0].clone();
    assert_eq!(tag, "one");
    // One warning, as a JSON line on stderr, naming the object and the fix.
    let warnings: Vec<serde_json::Value> = o
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(warnings.len(), 1, "{}", o.stderr);
    assert_eq!(warnings[0]["kind"], "damaged_snapshot");
    assert!(
        warnings[0]["object"]
            .as_str()
            .unwrap()
            .starts_with(&Folder::Snapshots.prefix())
    );
    assert!(
        warnings[0]["message"]
            .as_str()
            .unwrap()
            .contains("repair snapshots")
    );

    // Human output: the same, on stderr, once.
    let o = r.run(&["snapshots"]);
    assert_eq!(o.code, 3);
    assert_eq!(
        o.stderr.matches("damaged snapshot skipped").count(),
        1,
        "{}",
        o.stderr
    );
    assert!(o.out().contains("1 snapshots"), "{}", o.out());

    let _ = r.restores(&good, "one");
    // Whatever reads the listing says, once, what it skipped.
    let o = r.restores("latest", "one");
    assert_eq!(
        o.stderr.matches("damaged snapshot skipped").count(),
        1,
        "{}",
        o.stderr
    );
    let _ = r.restores(&good[..8], "one");

    // A new backup: its parent search skips the damaged snapshot.
    let src = r.scratch.join("new");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("f"), b"after the damage").unwrap();
    let o = r.run(&["backup", src.to_str().unwrap()]);
    o.ok("backup into a repository with a damaged snapshot");
    let (snaps, _) = listed(&r);
    assert_eq!(snaps.len(), 2, "{snaps:?}");
}

#[test]
fn a_missing_or_emptied_index_segment_costs_nothing_readable() {
    for emptied in [false, true] {
        let r = Repo::golden(if emptied {
            "valid"
        } else {
            "missing_index_segment"
        });
        if emptied {
            let mut segs: Vec<PathBuf> = fs::read_dir(r.path.join(Folder::Index.name()))
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            segs.sort();
            fs::write(&segs[0], b"").unwrap();
        }
        let (snaps, o) = listed(&r);
        assert_eq!(o.code, 0, "{}", o.stderr);
        assert_eq!(snaps.len(), 2);
        for (id, tag) in &snaps {
            let _ = r.restores(id, tag);
        }
        let o = r.run(&["ls", "latest"]).ok("ls");
        assert!(o.stderr.contains("index rebuild"), "{}", o.stderr);
    }
}

#[test]
fn a_stray_file_in_any_folder_warns_and_changes_nothing() {
    let clean = Repo::golden("valid");
    let (want, _) = listed(&clean);
    for folder in [Folder::Keys, Folder::Snapshots, Folder::Index, Folder::Data] {
        let r = Repo::golden("valid");
        let dir = match folder {
            Folder::Data => r.path.join(folder.name()).join("ab"),
            f => r.path.join(f.name()),
        };
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("README.txt"), b"not an object").unwrap();
        let (snaps, o) = listed(&r);
        assert_eq!(snaps, want, "{folder}");
        assert!(o.code == 0 || o.code == 3, "{folder}: {}", o.stderr);
        let o = r.run(&[
            "restore",
            "latest",
            "--target",
            r.scratch.join("t").to_str().unwrap(),
        ]);
        let o = o.ok(&format!("restore with a stray file in {folder}/"));
        let all = format!("{}{}", listed(&r).1.stderr, o.stderr);
        if folder != Folder::Data {
            assert!(
                all.contains("README.txt"),
                "{folder}: no warning names the stray:\n{all}"
            );
        }
        let _ = r.restores("latest", "two");
    }
}
