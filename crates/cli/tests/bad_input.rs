//! Bad input: each case fails with a non-zero exit and a clear, specific
//! message on stderr, and never a panic (every run checks for "panicked").

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{
    PASSWORD, TestRepo, base_cmd, bin, clean_env, is_root, random_bytes, restored_path, run,
};
use lifeboat_format::layout::Folder;

fn write(p: &Path, data: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, data).unwrap();
}

#[test]
fn wrong_password_exits_12() {
    let repo = TestRepo::new();
    for args in [&["snapshots"][..], &["cat", "config"], &["key", "list"]] {
        repo.run_pw("not the password", args).fails(
            &format!("{args:?} with a wrong password"),
            12,
            &["wrong password"],
        );
    }
    // The right one still works.
    repo.run(["snapshots"]).ok("snapshots");
}

#[test]
fn unknown_format_version_is_refused() {
    let repo = TestRepo::new();
    let cfg = repo.path.join("config");
    let mut bytes = fs::read(&cfg).unwrap();
    assert_eq!(&bytes[..8], b"LIFEBOAT");
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    fs::write(&cfg, &bytes).unwrap();

    let src = repo.scratch("src");
    write(&src.join("f"), b"x");
    let src_s = src.to_str().unwrap();
    for args in [&["snapshots"][..], &["backup", src_s], &["cat", "config"]] {
        repo.run(args).fails(
            &format!("{args:?} on a version 2 repository"),
            1,
            &["version 2", "unsupported"],
        );
    }
    // Checked before any key is tried: a wrong password gets the same answer,
    // not "wrong password".
    let o = repo.run_pw("not the password", ["snapshots"]).fails(
        "snapshots, version 2, wrong password",
        1,
        &["version 2", "unsupported"],
    );
    assert!(!o.stderr.contains("wrong password"), "{}", o.stderr);
    // Nothing was written.
    assert!(repo.objects(Folder::Snapshots).is_empty());
}

#[test]
fn missing_repository_exits_10() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-repo");
    for args in [&["snapshots"][..], &["ls", "latest"], &["key", "list"]] {
        let o = run(base_cmd()
            .arg("-r")
            .arg(&missing)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .args(args));
        o.fails(
            &format!("{args:?} on a missing repository"),
            10,
            &["does not exist"],
        );
    }
    assert!(
        !missing.exists(),
        "a read command created the repository directory"
    );
    // An existing but empty directory is no repository either.
    fs::create_dir(&missing).unwrap();
    run(base_cmd()
        .arg("-r")
        .arg(&missing)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .arg("snapshots"))
    .fails("snapshots in an empty directory", 10, &["does not exist"]);
}

#[test]
fn init_over_existing_repository_refuses() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    write(&src.join("keep.txt"), b"still here");
    repo.backup(&[&src], &[]);
    let config_before = fs::read(repo.path.join("config")).unwrap();
    let keys_before = repo.objects(Folder::Keys);

    for pw in [PASSWORD, "another password"] {
        repo.run_pw(
            pw,
            ["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"],
        )
        .fails("init over a repository", 1, &["already exists"]);
    }
    assert_eq!(fs::read(repo.path.join("config")).unwrap(), config_before);
    assert_eq!(
        repo.objects(Folder::Keys),
        keys_before,
        "init added or removed a key"
    );
    repo.run_pw("another password", ["snapshots"]).fails(
        "the refused init's password",
        12,
        &["wrong password"],
    );

    let target = repo.scratch("restore");
    repo.restore("latest", &target, &[]);
    assert_eq!(
        fs::read(restored_path(&target, &src.join("keep.txt"))).unwrap(),
        b"still here"
    );
}

/// A repository with one 1 MiB random file; returns (repo, source file, the
/// largest data pack). The keyed chunker cuts the file into one chunk or two
/// (the smallest chunk is 512 KiB), and the two data packs may each take one,
/// so that pack holds at least 512 KiB of the file and starts with its blob.
fn repo_with_data_pack() -> (TestRepo, PathBuf, PathBuf) {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    let file = src.join("data.bin");
    write(&file, &random_bytes(42, 1 << 20));
    repo.backup(&[&src], &[]);
    let packs = repo.objects(Folder::Data);
    assert!(
        packs.len() >= 2,
        "data and tree blobs go to separate packs: {packs:?}"
    );
    let data_pack = packs
        .iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .unwrap()
        .clone();
    let len = fs::metadata(&data_pack).unwrap().len();
    assert!(
        len > 512 << 10,
        "the largest pack has {len} bytes: {packs:?}"
    );
    (repo, file, data_pack)
}

fn pack_name(p: &Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

/// `restore` and `dump` of the damaged file fail, naming the pack and blob.
fn assert_damage_reported(repo: &TestRepo, file: &Path, pack: &str, case: &str) {
    let target = repo.scratch(&format!("restore-{case}"));
    let o = run(repo
        .cmd()
        .args(["--json", "restore", "latest", "--target"])
        .arg(&target));
    let o = o.fails(&format!("restore with a {case} pack"), 1, &[pack, "blob"]);
    // The summary does not count the damaged file as restored, and lists it.
    let summary = o.summary();
    assert_eq!(summary["files"], 0, "{summary}");
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert_eq!(
        errors[0]["path"].as_str().unwrap(),
        file.to_str().unwrap(),
        "{summary}"
    );
    assert!(
        errors[0]["message"].as_str().unwrap().contains(pack),
        "{summary}"
    );
    assert!(
        !restored_path(&target, file).exists(),
        "a file whose content failed verification is not left behind"
    );
    let o = run(repo.cmd().args(["dump", "latest"]).arg(file));
    let o = o.fails(&format!("dump with a {case} pack"), 1, &[pack, "blob"]);
    assert!(
        o.stdout.len() < 1 << 20,
        "dump wrote the whole file despite the damage"
    );
}

#[test]
fn bit_flipped_pack_is_detected() {
    let (repo, file, pack) = repo_with_data_pack();
    let name = pack_name(&pack);
    let original = fs::read(&pack).unwrap();
    let mut bytes = original.clone();
    bytes[100] ^= 0x10; // inside the first blob
    fs::write(&pack, &bytes).unwrap();
    assert_damage_reported(&repo, &file, &name, "bit-flipped");

    // With the pack repaired, the same restore succeeds: the failure was the
    // damage.
    fs::write(&pack, &original).unwrap();
    let target = repo.scratch("restore-repaired");
    repo.restore("latest", &target, &[]);
    assert_eq!(
        fs::read(restored_path(&target, &file)).unwrap(),
        random_bytes(42, 1 << 20)
    );
}

#[test]
fn truncated_pack_is_detected() {
    let (repo, file, pack) = repo_with_data_pack();
    let name = pack_name(&pack);
    let len = fs::metadata(&pack).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_damage_reported(&repo, &file, &name, "truncated");
}

#[test]
fn snapshot_that_matches_nothing() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    write(&src.join("f"), b"x");
    let id = repo.backup(&[&src], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    let other = if id.starts_with('0') { "1" } else { "0" };
    let nothing = format!("{other}123abcd");
    let target = repo.scratch("restore");
    for spec in [nothing.as_str(), "not-an-id"] {
        repo.run(["ls", spec])
            .fails(&format!("ls {spec}"), 1, &["no snapshot matches", spec]);
        let o = run(repo.cmd().args(["restore", spec, "--target"]).arg(&target));
        o.fails(&format!("restore {spec}"), 1, &["no snapshot matches"]);
    }
    // "latest" among no snapshots (a filter that matches none).
    repo.run(["ls", "latest", "--host", "no-such-host"]).fails(
        "ls latest --host no-such-host",
        1,
        &["no snapshot matches"],
    );
    assert_eq!(
        fs::read_dir(&target).unwrap().count(),
        0,
        "a failed restore wrote files"
    );
}

#[test]
fn ambiguous_snapshot_prefix() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    write(&src.join("f"), b"x");
    let mut ids = Vec::new();
    // 17 snapshots and 16 hex digits: two share a first digit.
    for i in 0..17 {
        let time = format!("2024-01-01T00:00:{i:02}Z");
        let s = repo.backup(&[&src], &["--time", &time]);
        ids.push(s["snapshot_id"].as_str().unwrap().to_string());
    }
    let digit = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| ids.iter().filter(|id| id.starts_with(d.as_str())).count() >= 2)
        .unwrap();
    for args in [
        &["ls", digit.as_str()][..],
        &["dump", digit.as_str(), "f"],
        &["cat", "snapshot", digit.as_str()],
    ] {
        repo.run(args)
            .fails(&format!("{args:?}"), 1, &["more than one snapshot"]);
    }
    // A full id is never ambiguous.
    let one = ids
        .iter()
        .find(|id| id.starts_with(digit.as_str()))
        .unwrap();
    repo.run(["ls", one.as_str()]).ok("ls by full id");
}

/// Make `p` and everything below it accessible to everyone.
fn open_up(p: &Path) {
    let mut stack = vec![p.to_path_buf()];
    while let Some(d) = stack.pop() {
        let md = fs::symlink_metadata(&d).unwrap();
        if md.is_dir() {
            fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
            for e in fs::read_dir(&d).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
    }
}

#[test]
fn unreadable_file_gives_incomplete_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    write(&src.join("a.txt"), b"readable a");
    write(&src.join("sub/b.txt"), b"readable b");
    write(&src.join("sub/secret"), b"nobody may read this");
    let repo_dir = tmp.path().join("repo");

    // As root, permissions do not stop reads: run the backup as nobody.
    let as_nobody = is_root();
    let mut prefix: Vec<String> = Vec::new();
    if as_nobody {
        let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("running as root needs setpriv (util-linux) to drop privileges");
        prefix = ["--reuid=65534", "--regid=65534", "--clear-groups", bin()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        prefix.insert(0, setpriv.to_string());
        open_up(tmp.path());
    }
    fs::set_permissions(src.join("sub/secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let lifeboat = |args: &[&str]| {
        let mut c = if as_nobody {
            let mut c = std::process::Command::new(&prefix[0]);
            c.args(&prefix[1..]);
            clean_env(&mut c);
            c
        } else {
            base_cmd()
        };
        c.env("LIFEBOAT_REPOSITORY", &repo_dir)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .args(args);
        run(&mut c)
    };
    lifeboat(&["init", "--kdf-memory-kib", "1024", "--kdf-iterations", "1"]).ok("init");
    let src_s = src.to_str().unwrap();
    let o = lifeboat(&["--json", "backup", src_s]);
    let o = o.fails(
        "backup with an unreadable file",
        3,
        &["sub/secret", "incomplete"],
    );
    let summary = o.summary();
    let errors = summary["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{summary}");
    assert!(
        errors[0]["path"].as_str().unwrap().ends_with("sub/secret"),
        "{summary}"
    );

    // The snapshot was written and says what is missing.
    let o = lifeboat(&["--json", "snapshots"]).ok("snapshots");
    let snaps = o.json();
    let snaps = snaps.as_array().unwrap();
    assert_eq!(snaps.len(), 1);
    let incomplete = snaps[0]["incomplete"].as_array().unwrap();
    assert_eq!(incomplete.len(), 1, "{}", snaps[0]);
    assert!(
        incomplete[0].as_str().unwrap().contains("sub/secret"),
        "{}",
        snaps[0]
    );

    // Everything else restores.
    let target = tmp.path().join("restore");
    let o = run(base_cmd()
        .env("LIFEBOAT_REPOSITORY", &repo_dir)
        .env("LIFEBOAT_PASSWORD", PASSWORD)
        .args(["restore", "latest", "--target"])
        .arg(&target));
    o.ok("restore");
    let dst = restored_path(&target, &src);
    assert_eq!(fs::read(dst.join("a.txt")).unwrap(), b"readable a");
    assert_eq!(fs::read(dst.join("sub/b.txt")).unwrap(), b"readable b");
    assert!(!dst.join("sub/secret").exists());
}

#[test]
fn missing_paths_and_wrong_kinds() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    write(&src.join("f"), b"x");
    let missing = src.join("no-such-file");

    // Backing up a path that does not exist: an error naming it, said once,
    // and no snapshot.
    let o = run(repo.cmd().arg("backup").arg(&missing));
    let o = o.fails(
        "backup of a missing path",
        1,
        &[missing.to_str().unwrap(), "No such file or directory"],
    );
    assert_eq!(
        o.stderr.matches("No such file or directory").count(),
        1,
        "repeated cause:\n{}",
        o.stderr
    );
    assert!(repo.objects(Folder::Snapshots).is_empty());
    repo.run(["backup"])
        .fails("backup of nothing", 1, &["nothing to back up"]);

    repo.backup(&[&src], &[]);
    let o = run(repo.cmd().args(["dump", "latest"]).arg(&missing));
    o.fails("dump of a missing path", 1, &["not found in snapshot"]);
    let o = run(repo.cmd().args(["dump", "latest"]).arg(&src));
    let o = o.fails("dump of a directory", 1, &["not a regular file"]);
    assert!(o.stdout.is_empty());

    // A restore target that is a file.
    let file_target = src.join("f");
    let o = run(repo
        .cmd()
        .args(["restore", "latest", "--target"])
        .arg(&file_target));
    let o = o.fails(
        "restore onto a file",
        1,
        &[file_target.to_str().unwrap(), "File exists"],
    );
    assert_eq!(
        o.stderr.matches("File exists").count(),
        1,
        "repeated cause:\n{}",
        o.stderr
    );
    assert_eq!(fs::read(&file_target).unwrap(), b"x");

    // Bad stdin names and patterns.
    repo.run(["backup", "--stdin", "--stdin-filename", "a/b"])
        .fails("stdin name with a slash", 1, &["invalid stdin file name"]);
    let o = run(repo.cmd().args(["backup", "--exclude", "["]).arg(&src));
    o.fails("bad exclude pattern", 1, &["pattern", "["]);
}
