//! `forget` against a real repository on disk: backups with forced times,
//! a dry run that deletes nothing, then the policy carried out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use jiff::Timestamp;
use lifeboat_core::format::{Id, KdfParams};
use lifeboat_core::store::ObjectStoreBackend;
use lifeboat_core::{BackupOptions, BackupSource, InitOptions, Progress, Repository};
use lifeboat_prune::{ForgetOptions, KeepCount, RetentionPolicy, forget};

fn snapshot_ids(repo: &Repository) -> Vec<Id> {
    let mut ids: Vec<Id> = repo
        .snapshots()
        .unwrap()
        .items
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids
}

#[test]
fn forget_deletes_what_the_policy_does_not_keep() {
    let work = tempfile::tempdir().unwrap();
    let repo_dir = work.path().join("repo");
    let src = work.path().join("src");
    std::fs::create_dir_all(&repo_dir).unwrap();
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("f"), b"forget me not").unwrap();

    let backend = Arc::new(ObjectStoreBackend::local(&repo_dir).unwrap());
    let init = InitOptions {
        kdf: KdfParams {
            memory_kib: 1024,
            iterations: 1,
            parallelism: 1,
        },
        ..InitOptions::default()
    };
    let repo = Repository::init(backend, b"pw", &init).unwrap();
    let backup_at = |time: &str, host: &str| {
        let opts = BackupOptions {
            hostname: Some(host.into()),
            time: Some(time.into()),
            ..BackupOptions::default()
        };
        repo.backup(
            BackupSource::Paths(vec![src.clone()]),
            &opts,
            &Progress::default(),
        )
        .unwrap()
        .id
    };
    // Two on the newest day, one each on two earlier days, one in the
    // future, and one from another host (its own group).
    let jan3_late = backup_at("2026-01-03T18:00:00+01:00", "a");
    let jan3_early = backup_at("2026-01-03T08:00:00+01:00", "a");
    let jan2 = backup_at("2026-01-02T12:00:00+01:00", "a");
    let jan1 = backup_at("2026-01-01T12:00:00+01:00", "a");
    let future = backup_at("2031-01-01T00:00:00Z", "a");
    let other_host = backup_at("2025-12-01T00:00:00Z", "b");
    let all = snapshot_ids(&repo);
    assert_eq!(all.len(), 6);

    let now: Timestamp = "2026-01-04T00:00:00Z".parse().unwrap();
    let opts = ForgetOptions {
        policy: RetentionPolicy {
            keep_daily: Some(KeepCount::Newest(2)),
            ..RetentionPolicy::default()
        },
        ids: vec![jan1],
        dry_run: true,
        ..ForgetOptions::default()
    };
    let dry = forget(&repo, &opts, now).unwrap();
    assert!(dry.dry_run);
    assert!(dry.deleted.is_empty());
    assert_eq!(snapshot_ids(&repo), all, "a dry run deletes nothing");
    let mut planned = vec![jan3_early, jan1];
    planned.sort();
    assert_eq!(dry.plan.to_forget(), planned);

    let applied = forget(
        &repo,
        &ForgetOptions {
            dry_run: false,
            ..opts.clone()
        },
        now,
    )
    .unwrap();
    assert_eq!(applied.deleted, planned);
    assert!(applied.already_gone.is_empty());
    let mut remaining = vec![jan3_late, jan2, future, other_host];
    remaining.sort();
    assert_eq!(snapshot_ids(&repo), remaining);

    // Run again: the named snapshot is gone, so name none; nothing more goes.
    let again = forget(
        &repo,
        &ForgetOptions {
            ids: vec![],
            dry_run: false,
            ..opts
        },
        now,
    )
    .unwrap();
    assert!(again.deleted.is_empty());
    assert_eq!(snapshot_ids(&repo), remaining);
}
