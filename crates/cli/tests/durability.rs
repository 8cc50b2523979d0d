//! Durable local writes: `lifeboat init` and `lifeboat backup` run under
//! strace, and every object of the repository must have reached its name
//! by a rename (or link) of a file fsynced before it, with its folder
//! fsynced after it and every new folder fsynced in its parent
//! (docs/storage.md, "Crash model").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use lifeboat_format::layout::{CONFIG, Folder};

/// Syscalls to trace; `?` lets strace skip a name this architecture lacks.
const TRACED: &str = "trace=openat,fsync,fdatasync,?rename,renameat,renameat2,?link,linkat,\
                      ?mkdir,mkdirat,write,pwrite64,writev,pwritev";

/// One completed system call from the trace.
#[derive(Debug)]
struct Call {
    /// Line of the trace where it started and where it returned.
    start: usize,
    end: usize,
    name: String,
    /// Its arguments as strace printed them.
    args: String,
    /// Whether it returned without an error.
    ok: bool,
}

impl Call {
    /// The path strace's `-y` printed for the first argument, a descriptor.
    fn fd_path(&self) -> Option<PathBuf> {
        let open = self.args.find('<')?;
        let close = self.args[open..].find('>')? + open;
        Some(PathBuf::from(&self.args[open + 1..close]))
    }

    /// The quoted string arguments (paths, for the calls traced here).
    fn strings(&self) -> Vec<PathBuf> {
        self.args
            .split('"')
            .skip(1)
            .step_by(2)
            .map(PathBuf::from)
            .collect()
    }
}

/// The calls of an `strace -f -o` trace, threads' halves joined.
fn parse_trace(text: &str) -> Vec<Call> {
    let mut pending: HashMap<&str, (usize, String)> = HashMap::new();
    let mut calls = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((pid, rest)) = line.split_once(' ') else {
            continue;
        };
        let rest = rest.trim_start();
        let (start, whole) = if let Some(head) = rest.strip_suffix(" <unfinished ...>") {
            pending.insert(pid, (i, head.to_string()));
            continue;
        } else if let Some(tail) = rest.strip_prefix("<... ") {
            let Some((start, head)) = pending.remove(pid) else {
                continue;
            };
            let tail = tail.split_once(" resumed>").map_or("", |(_, t)| t);
            (start, format!("{head}{tail}"))
        } else {
            (i, rest.to_string())
        };
        let Some((name, args)) = whole.split_once('(') else {
            continue; // signals, exits
        };
        let Some((args, result)) = args.rsplit_once(" = ") else {
            continue;
        };
        calls.push(Call {
            start,
            end: i,
            name: name.to_string(),
            args: args.to_string(),
            ok: !result.trim_start().starts_with('-'),
        });
    }
    calls
}

/// Run `lifeboat ARGS` for `repo` under strace; returns the parsed trace.
fn traced(repo: &TestRepo, args: &[&str], what: &str) -> Vec<Call> {
    let version = Command::new("strace").arg("-V").output();
    assert!(
        version.is_ok_and(|o| o.status.success()),
        "strace is not installed: this test needs it (Debian package strace: \
         apt-get install -y strace; scripts/test.sh installs it)"
    );
    let trace = repo.tmp.path().join(format!("{what}.strace"));
    let inner = repo.cmd();
    let mut c = Command::new("strace");
    c.args(["-f", "-qq", "-y", "-s", "16", "-e", TRACED, "-o"])
        .arg(&trace)
        .arg("--")
        .arg(inner.get_program())
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    run(&mut c).ok(what);
    parse_trace(&std::fs::read_to_string(&trace).unwrap())
}

/// Every object file of the repository.
fn objects(repo: &TestRepo) -> Vec<PathBuf> {
    let mut out = vec![repo.path.join(CONFIG)];
    for folder in [Folder::Keys, Folder::Data, Folder::Index, Folder::Snapshots] {
        out.extend(repo.objects(folder));
    }
    out
}

/// What is wrong with how `object` and the folders under `repo` were
/// written in `calls`; empty when all is durable.
fn faults(calls: &[Call], repo: &Path, object: &Path) -> Vec<String> {
    let ok = |names: &'static [&'static str]| {
        calls
            .iter()
            .filter(move |c| c.ok && names.contains(&c.name.as_str()))
    };
    let fsyncs = || ok(&["fsync", "fdatasync"]);
    let mut out = Vec::new();
    let placed = ok(&["rename", "renameat", "renameat2", "link", "linkat"])
        .rfind(|c| c.strings().get(1).map(PathBuf::as_path) == Some(object));
    let Some(placed) = placed else {
        return vec![format!(
            "{}: no rename or link put it there (written in place?)",
            object.display()
        )];
    };
    let staged = placed.strings()[0].clone();
    let synced =
        fsyncs().rfind(|c| c.end < placed.start && c.fd_path().as_deref() == Some(&staged));
    match synced {
        None => out.push(format!(
            "{}: its file {} was not fsynced before `{}`",
            object.display(),
            staged.display(),
            placed.name
        )),
        Some(s) => {
            if let Some(w) = ok(&["write", "pwrite64", "writev", "pwritev"]).find(|c| {
                c.start > s.end && c.start < placed.start && c.fd_path().as_deref() == Some(&staged)
            }) {
                out.push(format!(
                    "{}: written to after its fsync, before `{}`: {}({})",
                    object.display(),
                    placed.name,
                    w.name,
                    w.args
                ));
            }
        }
    }
    let folder = object.parent().unwrap();
    if !fsyncs().any(|c| c.start > placed.end && c.fd_path().as_deref() == Some(folder)) {
        out.push(format!(
            "{}: folder {} not fsynced after `{}`",
            object.display(),
            folder.display(),
            placed.name
        ));
    }
    // A folder made on the way: its entry fsynced in its parent before
    // anything was placed in it.
    for made in ok(&["mkdir", "mkdirat"]) {
        let Some(dir) = made.strings().into_iter().next() else {
            continue;
        };
        if !dir.starts_with(repo) || !object.starts_with(&dir) {
            continue;
        }
        let parent = dir.parent().unwrap();
        let durable = fsyncs().any(|c| {
            c.start > made.end && c.end < placed.start && c.fd_path().as_deref() == Some(parent)
        });
        if !durable {
            out.push(format!(
                "{}: new folder {} not fsynced in {} before the object went in",
                object.display(),
                dir.display(),
                parent.display()
            ));
        }
    }
    out
}

#[test]
fn every_object_is_fsynced_before_its_rename_and_its_folder_after() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().canonicalize().unwrap();
    let repo = TestRepo {
        path: base.join("repo"),
        tmp,
        password: PASSWORD.to_string(),
    };
    let init = traced(
        &repo,
        &[
            "init",
            "--kdf-memory-kib",
            "1024",
            "--kdf-iterations",
            "1",
            "--pack-size",
            "1",
        ],
        "init",
    );
    let after_init = objects(&repo);

    // Several 1 MiB packs of incompressible data, and small files for trees.
    let src = repo.scratch("src");
    for i in 0..6u64 {
        std::fs::write(src.join(format!("big-{i}")), random_bytes(i, 1 << 20)).unwrap();
    }
    for i in 0..40u64 {
        std::fs::create_dir_all(src.join(format!("d{}", i % 4))).unwrap();
        std::fs::write(
            src.join(format!("d{}/small-{i}", i % 4)),
            random_bytes(100 + i, 3000),
        )
        .unwrap();
    }
    let backup = traced(
        &repo,
        &["--json", "backup", src.to_str().unwrap()],
        "backup",
    );
    let after_backup = objects(&repo);

    let count = |f: Folder| {
        after_backup
            .iter()
            .filter(|p| p.strip_prefix(&repo.path).unwrap().starts_with(f.name()))
            .count()
    };
    assert!(after_backup.contains(&repo.path.join(CONFIG)));
    assert!(count(Folder::Keys) >= 1, "{after_backup:?}");
    assert!(
        count(Folder::Data) >= 4,
        "want several packs: {after_backup:?}"
    );
    assert!(count(Folder::Index) >= 1, "{after_backup:?}");
    assert!(count(Folder::Snapshots) == 1, "{after_backup:?}");

    let mut problems = Vec::new();
    for object in &after_backup {
        let calls = if after_init.contains(object) {
            &init
        } else {
            &backup
        };
        problems.extend(faults(calls, &repo.path, object));
    }
    assert!(
        problems.is_empty(),
        "{} faults in how the {} objects were written:\n{}",
        problems.len(),
        after_backup.len(),
        problems.join("\n")
    );
}
