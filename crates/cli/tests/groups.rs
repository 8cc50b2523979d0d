//! Groups of small blobs (docs/format.md §8.1) through the CLI: `check
//! --read-data` reports every member of a damaged group and nothing else;
//! prune keeps a group while any member is used, so the snapshots kept
//! restore whole, and removes it once none is.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;

use common::{PASSWORD, TestRepo, compare_trees, restored_path};
use lifeboat_core::Repository;
use lifeboat_core::internals::RepositoryInternals as _;
use lifeboat_format::Id;
use lifeboat_format::layout::{self, Folder};

/// `n` small text files `f<i>.txt` from `first` on, distinct from each
/// other and from every other call's.
fn write_small_files(dir: &Path, first: u32, n: u32) {
    fs::create_dir_all(dir).unwrap();
    for i in first..first + n {
        let line = format!("let file_{i} = group_member({i}, {});\n", i * 7919 % 1000);
        fs::write(
            dir.join(format!("f{i}.txt")),
            line.repeat(1 + (i as usize % 40)),
        )
        .unwrap();
    }
}

fn open(repo: &TestRepo) -> Repository {
    let backend = lifeboat::open_location(repo.path.to_str().unwrap(), false).unwrap();
    Repository::open(backend, PASSWORD.as_bytes()).unwrap()
}

/// The groups of the index: (pack, offset) to their members.
fn groups(repo: &TestRepo) -> HashMap<(Id, u32), Vec<Id>> {
    let r = open(repo);
    let mut out: HashMap<(Id, u32), Vec<Id>> = HashMap::new();
    for (id, l) in r.index().iter() {
        if l.flags.grouped() {
            out.entry((l.pack, l.offset)).or_default().push(id);
        }
    }
    out
}

#[test]
fn check_read_data_reports_each_member_of_a_damaged_group() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    write_small_files(&src, 0, 300);
    repo.backup(&[&src], &[]);
    repo.run(["check", "--read-data"]).ok("check, undamaged");
    let g = groups(&repo);
    let ((pack, offset), members) = g.iter().max_by_key(|(_, m)| m.len()).unwrap();
    assert!(members.len() > 10, "{} members", members.len());
    let stored_len = open(&repo).index().get(&members[0]).unwrap().stored_len;
    let path = repo.path.join(layout::object_path(Folder::Data, pack));
    let mut bytes = fs::read(&path).unwrap();
    bytes[*offset as usize + stored_len as usize / 2] ^= 1;
    fs::write(&path, bytes).unwrap();

    let o = repo.run(["--json", "check", "--read-data"]);
    assert_eq!(o.code, 4, "damage exits 4: {}", o.out());
    let v = o.json();
    let corrupt: BTreeSet<String> = v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["category"] == "corrupt_blob")
        .map(|p| p["object"].as_str().unwrap().to_string())
        .collect();
    let want: BTreeSet<String> = members.iter().map(Id::to_hex).collect();
    assert_eq!(corrupt, want, "{v:#}");
}

#[test]
fn prune_keeps_a_group_while_a_member_is_used_and_removes_it_after() {
    let repo = TestRepo::new();
    let src = repo.scratch("src");
    write_small_files(&src, 0, 300);
    let first = repo.backup(&[&src], &[]);
    let first = first["snapshot_id"].as_str().unwrap().to_string();
    // The second snapshot keeps a third of the files and adds new ones, so
    // its members share groups with dead ones.
    for i in 100..300 {
        fs::remove_file(src.join(format!("f{i}.txt"))).unwrap();
    }
    write_small_files(&src, 1000, 100);
    let second = repo.backup(&[&src], &[]);
    let second = second["snapshot_id"].as_str().unwrap().to_string();
    let before = groups(&repo).len();

    repo.run(["forget", &first]).ok("forget the first");
    repo.run(["prune", "--instant-delete", "--max-unused", "0"])
        .ok("prune");
    let after = groups(&repo);
    assert!(
        !after.is_empty() && after.len() <= before,
        "{before} -> {}",
        after.len()
    );
    repo.run(["check", "--read-data"]).ok("check after prune");
    let target = repo.scratch("restored");
    repo.restore(&second, &target, &[]);
    let c = compare_trees(&src, &restored_path(&target, &src));
    assert_eq!(c.files, 200, "{c:?}");

    // With no snapshot left, every group goes.
    repo.run(["forget", &second]).ok("forget the second");
    repo.run(["prune", "--instant-delete", "--max-unused", "0"])
        .ok("prune everything");
    assert!(groups(&repo).is_empty());
    assert!(
        repo.objects(Folder::Data).is_empty(),
        "{:?}",
        repo.objects(Folder::Data)
    );
}
