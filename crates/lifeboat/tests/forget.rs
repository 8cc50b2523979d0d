//! `Repository::forget` through the facade: typed options in, a typed report
//! out, and its refusals as `Error::Forget`.

#![allow(clippy::unwrap_used, clippy::panic)]

use lifeboat::{
    BackupOptions, BackupSource, Error, ForgetError, ForgetOptions, Id, InitOptions, KdfParams,
    KeepCount, KeepReason, Progress, Repository, RetentionPolicy, TagList,
};

fn repo_with_snapshots(work: &std::path::Path, times: &[&str]) -> (Repository, Vec<Id>) {
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..Default::default()
    };
    let backend = lifeboat::open_location(work.join("repo").to_str().unwrap(), true).unwrap();
    let repo = Repository::init(backend, b"pw", &opts).unwrap();
    let source = work.join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("file"), b"content").unwrap();
    let ids = times
        .iter()
        .map(|t| {
            let opts = BackupOptions {
                time: Some(t.to_string()),
                ..Default::default()
            };
            let source = BackupSource::Paths(vec![source.clone()]);
            repo.backup(source, &opts, &Progress::default()).unwrap().id
        })
        .collect();
    (repo, ids)
}

#[test]
fn a_dry_run_reports_the_plan_and_deletes_nothing() {
    let work = tempfile::tempdir().unwrap();
    let (repo, ids) = repo_with_snapshots(
        work.path(),
        &[
            "2026-01-01T00:00:00Z",
            "2026-01-02T00:00:00Z",
            "2040-01-01T00:00:00Z",
        ],
    );
    let opts = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: Some(KeepCount::Newest(1)),
            ..Default::default()
        },
        dry_run: true,
        ..Default::default()
    };
    let now: lifeboat::jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let report = repo.forget(&opts, now).unwrap();
    assert!(report.dry_run);
    assert!(report.deleted.is_empty());
    assert_eq!(report.plan, repo.plan_forget(&opts, now).unwrap());
    assert_eq!(report.plan.to_forget(), vec![ids[0]]);
    assert_eq!(report.plan.in_future(), vec![ids[2]]);
    let kept = &report.plan.groups[0].keep;
    assert_eq!(kept[1].snapshot.id, ids[1]);
    assert_eq!(kept[1].reasons, vec![KeepReason::Last]);
    assert_eq!(repo.snapshots().unwrap().items.len(), 3);
}

#[test]
fn refusals_are_forget_errors() {
    let work = tempfile::tempdir().unwrap();
    let (repo, ids) = repo_with_snapshots(work.path(), &["2026-01-01T00:00:00Z"]);
    let now = lifeboat::jiff::Timestamp::now();

    let unknown = ForgetOptions {
        ids: vec![Id([7; 32])],
        ..Default::default()
    };
    let e = repo.forget(&unknown, now).unwrap_err();
    assert!(
        matches!(&e, Error::Forget(ForgetError::UnknownSnapshot { id }) if *id == Id([7; 32])),
        "{e:?}"
    );

    let empty_tags = ForgetOptions {
        policy: RetentionPolicy {
            keep_tags: vec![TagList(vec![])],
            ..Default::default()
        },
        ..Default::default()
    };
    let e = repo.forget(&empty_tags, now).unwrap_err();
    assert!(
        matches!(e, Error::Forget(ForgetError::EmptyTagList)),
        "{e:?}"
    );
    assert_eq!(
        repo.snapshots().unwrap().items[0].0,
        ids[0],
        "nothing was deleted"
    );
}

#[test]
fn a_no_delete_repository_refuses_forget_and_prune_through_the_library() {
    let work = tempfile::tempdir().unwrap();
    let opts = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        append_only: true,
        ..Default::default()
    };
    let backend =
        lifeboat::open_location(work.path().join("repo").to_str().unwrap(), true).unwrap();
    let repo = Repository::init(backend, b"pw", &opts).unwrap();
    let source = work.path().join("source");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("file"), b"content").unwrap();
    for t in ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"] {
        let o = BackupOptions {
            time: Some(t.to_string()),
            ..Default::default()
        };
        repo.backup(
            BackupSource::Paths(vec![source.clone()]),
            &o,
            &Progress::default(),
        )
        .unwrap();
    }
    let keep_one = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: Some(KeepCount::Newest(1)),
            ..Default::default()
        },
        ..Default::default()
    };
    let now: lifeboat::jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let e = repo.forget(&keep_one, now).unwrap_err();
    assert!(e.to_string().contains("forget"), "{e}");
    let e = repo
        .prune(
            &lifeboat::PruneOptions::default(),
            &lifeboat::PruneProgress::default(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("prune"), "{e}");
    // Refused up front: both snapshots are still there.
    assert_eq!(repo.snapshots().unwrap().items.len(), 2);
    // A dry run plans without deleting, so it is allowed.
    let dry = ForgetOptions {
        dry_run: true,
        ..keep_one
    };
    assert!(repo.forget(&dry, now).unwrap().dry_run);
}
