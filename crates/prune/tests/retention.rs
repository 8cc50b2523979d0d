//! Retention against tables of snapshot times.
//!
//! Expectations follow restic's documented behaviour: the forget docs
//! ("Removing snapshots according to a policy", doc/060_forget.rst: each
//! `--keep-<period> n` keeps the most recent snapshot of each of the last n
//! periods that have one; `--keep-within` counts back from the latest
//! snapshot; tags are not counted; `unlimited`), the `restic forget` man page
//! of 0.17 (the group's oldest snapshot is kept additionally while a rule has
//! counts left) and `internal/restic/snapshot_policy.go` (buckets taken on the
//! snapshot's own clock, ISO weeks via `ISOWeek`, `After` being strict,
//! "oldest <rule>" reasons, also for the within-period rules). Where Lifeboat
//! differs on purpose (future snapshots, buckets as a set across time zones,
//! explicit ids next to a policy), the test says so.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::Timestamp;
use lifeboat_core::SnapshotFilter;
use lifeboat_format::{Id, Snapshot, SourceKind};
use lifeboat_prune::{
    ForgetError, ForgetOptions, ForgetPlan, GroupBy, KeepCount, KeepReason, KeepWithin,
    RetentionPolicy, TagList, plan_forget,
};

use KeepReason::*;

fn snap(n: u8, time: &str) -> (Id, Snapshot) {
    snap_of(n, time, "h", &["/d"], &[])
}

fn snap_of(n: u8, time: &str, host: &str, paths: &[&str], tags: &[&str]) -> (Id, Snapshot) {
    (
        Id([n; 32]),
        Snapshot {
            version: 1,
            time: time.into(),
            tree: Id([0; 32]),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            hostname: host.into(),
            username: String::new(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            source: SourceKind::Fs,
            source_meta: Default::default(),
            parent: None,
            excludes: vec![],
            incomplete: vec![],
            summary: None,
            program: String::new(),
        },
    )
}

/// Long after every table, so no snapshot is in the future unless a test
/// says so.
fn late() -> Timestamp {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn plan(policy: RetentionPolicy, snaps: &[(Id, Snapshot)], now: Timestamp) -> ForgetPlan {
    let opts = ForgetOptions {
        policy,
        ..ForgetOptions::default()
    };
    plan_forget(snaps, &opts, now).unwrap()
}

/// Kept snapshots' times with their reasons, and removed times, all groups.
fn outcome(plan: &ForgetPlan) -> (Vec<(String, Vec<KeepReason>)>, Vec<String>) {
    let kept = plan
        .groups
        .iter()
        .flat_map(|g| &g.keep)
        .map(|k| (k.snapshot.time.clone(), k.reasons.clone()))
        .collect();
    let removed = plan
        .groups
        .iter()
        .flat_map(|g| &g.remove)
        .map(|s| s.time.clone())
        .collect();
    (kept, removed)
}

fn kept_times(plan: &ForgetPlan) -> Vec<String> {
    outcome(plan).0.into_iter().map(|(t, _)| t).collect()
}

fn k(t: &str, reasons: &[KeepReason]) -> (String, Vec<KeepReason>) {
    (t.to_string(), reasons.to_vec())
}

fn oldest(rule: KeepReason) -> KeepReason {
    Oldest(Box::new(rule))
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn n(count: u32) -> Option<KeepCount> {
    Some(KeepCount::Newest(count))
}

fn within(s: &str) -> Option<KeepWithin> {
    Some(s.parse().unwrap())
}

// Two snapshots in 10:00, one in 09:00, then one a day for two days.
fn hours_table() -> Vec<(Id, Snapshot)> {
    vec![
        snap(1, "2026-05-04T10:50:00Z"),
        snap(2, "2026-05-04T10:10:00Z"),
        snap(3, "2026-05-04T09:30:00Z"),
        snap(4, "2026-05-03T23:59:00Z"),
        snap(5, "2026-05-03T08:00:00Z"),
        snap(6, "2026-05-02T12:00:00Z"),
        snap(7, "2026-05-02T06:00:00Z"),
    ]
}

#[test]
fn keep_last_keeps_the_newest_n() {
    let t = hours_table();
    let p = plan(
        RetentionPolicy {
            keep_last: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(
        kept,
        vec![
            k("2026-05-04T10:50:00Z", &[Last]),
            k("2026-05-04T10:10:00Z", &[Last])
        ]
    );
    assert_eq!(removed.len(), 5);
    let all = plan(
        RetentionPolicy {
            keep_last: Some(KeepCount::Unlimited),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(outcome(&all).1, Vec::<String>::new());
}

#[test]
fn keep_hourly_and_daily_keep_the_newest_of_each_bucket() {
    let t = hours_table();
    let hourly = plan(
        RetentionPolicy {
            keep_hourly: n(3),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        outcome(&hourly).0,
        vec![
            k("2026-05-04T10:50:00Z", &[Hourly]),
            k("2026-05-04T09:30:00Z", &[Hourly]),
            k("2026-05-03T23:59:00Z", &[Hourly]),
        ]
    );
    let daily = plan(
        RetentionPolicy {
            keep_daily: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        kept_times(&daily),
        strings(&["2026-05-04T10:50:00Z", "2026-05-03T23:59:00Z"])
    );
}

#[test]
fn the_oldest_snapshot_is_kept_while_a_count_rule_has_counts_left() {
    // Three days hold snapshots; keep-daily 5 still has 2 counts left at the
    // oldest, which shares May 2 with a kept one (restic >= 0.17).
    let p = plan(
        RetentionPolicy {
            keep_daily: n(5),
            ..Default::default()
        },
        &hours_table(),
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(
        kept,
        vec![
            k("2026-05-04T10:50:00Z", &[Daily]),
            k("2026-05-03T23:59:00Z", &[Daily]),
            k("2026-05-02T12:00:00Z", &[Daily]),
            k("2026-05-02T06:00:00Z", &[oldest(Daily)]),
        ]
    );
    assert_eq!(
        removed,
        strings(&[
            "2026-05-04T10:10:00Z",
            "2026-05-04T09:30:00Z",
            "2026-05-03T08:00:00Z"
        ])
    );
}

fn years_table() -> Vec<(Id, Snapshot)> {
    vec![
        snap(1, "2027-01-02T10:00:00Z"),
        snap(2, "2026-12-31T23:00:00Z"),
        snap(3, "2026-12-15T10:00:00Z"),
        snap(4, "2026-11-30T10:00:00Z"),
        snap(5, "2026-11-01T10:00:00Z"),
        snap(6, "2025-12-31T10:00:00Z"),
        snap(7, "2025-06-01T10:00:00Z"),
    ]
}

#[test]
fn keep_monthly_and_yearly_across_a_year_boundary() {
    let t = years_table();
    let monthly = plan(
        RetentionPolicy {
            keep_monthly: n(3),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        kept_times(&monthly),
        strings(&[
            "2027-01-02T10:00:00Z",
            "2026-12-31T23:00:00Z",
            "2026-11-30T10:00:00Z"
        ])
    );
    let yearly = plan(
        RetentionPolicy {
            keep_yearly: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        kept_times(&yearly),
        strings(&["2027-01-02T10:00:00Z", "2026-12-31T23:00:00Z"])
    );
    // Unlimited keeps every year's newest, and the oldest (2025-06) too.
    let all_years = plan(
        RetentionPolicy {
            keep_yearly: Some(KeepCount::Unlimited),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        outcome(&all_years).0,
        vec![
            k("2027-01-02T10:00:00Z", &[Yearly]),
            k("2026-12-31T23:00:00Z", &[Yearly]),
            k("2025-12-31T10:00:00Z", &[Yearly]),
            k("2025-06-01T10:00:00Z", &[oldest(Yearly)]),
        ]
    );
}

#[test]
fn keep_monthly_and_yearly_together_report_both_reasons() {
    let p = plan(
        RetentionPolicy {
            keep_monthly: n(3),
            keep_yearly: n(3),
            ..Default::default()
        },
        &years_table(),
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(
        kept,
        vec![
            k("2027-01-02T10:00:00Z", &[Monthly, Yearly]),
            k("2026-12-31T23:00:00Z", &[Monthly, Yearly]),
            k("2026-11-30T10:00:00Z", &[Monthly]),
            k("2025-12-31T10:00:00Z", &[Yearly]),
        ]
    );
    // Both counters are spent before the oldest, so it goes.
    assert_eq!(
        removed,
        strings(&[
            "2026-12-15T10:00:00Z",
            "2026-11-01T10:00:00Z",
            "2025-06-01T10:00:00Z"
        ])
    );
}

#[test]
fn keep_weekly_uses_iso_weeks_across_the_year_boundary() {
    // 2027-01-03 (Sunday) is in ISO week 53 of 2026, with 2026-12-28.
    let t = vec![
        snap(1, "2027-01-04T09:00:00Z"),
        snap(2, "2027-01-03T09:00:00Z"),
        snap(3, "2026-12-28T09:00:00Z"),
        snap(4, "2026-12-27T09:00:00Z"),
        snap(5, "2026-12-21T09:00:00Z"),
        snap(6, "2026-12-20T09:00:00Z"),
    ];
    let p = plan(
        RetentionPolicy {
            keep_weekly: n(3),
            ..Default::default()
        },
        &t,
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(
        kept,
        vec![
            k("2027-01-04T09:00:00Z", &[Weekly]),
            k("2027-01-03T09:00:00Z", &[Weekly]),
            k("2026-12-27T09:00:00Z", &[Weekly]),
        ]
    );
    assert_eq!(
        removed,
        strings(&[
            "2026-12-28T09:00:00Z",
            "2026-12-21T09:00:00Z",
            "2026-12-20T09:00:00Z"
        ])
    );
}

#[test]
fn us_dst_end_buckets_by_the_snapshots_own_offset() {
    // 2026-11-01: 01:00-01:59 happens at -04:00, then again at -05:00.
    let t = vec![
        snap(1, "2026-11-01T01:40:00-05:00"),
        snap(2, "2026-11-01T01:20:00-05:00"),
        snap(3, "2026-11-01T01:50:00-04:00"),
        snap(4, "2026-11-01T00:30:00-04:00"),
        snap(5, "2026-10-31T23:30:00-04:00"),
    ];
    // All three 01:xx share the local hour, though two UTC hours.
    let hourly = plan(
        RetentionPolicy {
            keep_hourly: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        kept_times(&hourly),
        strings(&["2026-11-01T01:40:00-05:00", "2026-11-01T00:30:00-04:00"])
    );
    // 23:30-04:00 is Nov 1 in UTC but Oct 31 on its own clock.
    let daily = plan(
        RetentionPolicy {
            keep_daily: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        kept_times(&daily),
        strings(&["2026-11-01T01:40:00-05:00", "2026-10-31T23:30:00-04:00"])
    );
}

#[test]
fn us_dst_start_keeps_one_per_local_day() {
    // 2026-03-08: 02:00 -05:00 jumps to 03:00 -04:00.
    let t = vec![
        snap(1, "2026-03-08T03:30:00-04:00"),
        snap(2, "2026-03-08T01:30:00-05:00"),
        snap(3, "2026-03-07T23:30:00-05:00"),
        snap(4, "2026-03-07T20:00:00-05:00"),
    ];
    let p = plan(
        RetentionPolicy {
            keep_daily: n(2),
            keep_hourly: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(
        kept,
        vec![
            k("2026-03-08T03:30:00-04:00", &[Hourly, Daily]),
            k("2026-03-08T01:30:00-05:00", &[Hourly]),
            k("2026-03-07T23:30:00-05:00", &[Daily]),
        ]
    );
    assert_eq!(removed, strings(&["2026-03-07T20:00:00-05:00"]));
}

#[test]
fn eu_dst_end_buckets_by_the_snapshots_own_offset() {
    // 2026-10-25: 02:00-02:59 happens at +02:00, then again at +01:00.
    let t = vec![
        snap(1, "2026-10-25T02:40:00+01:00"),
        snap(2, "2026-10-25T02:10:00+01:00"),
        snap(3, "2026-10-25T02:50:00+02:00"),
        snap(4, "2026-10-25T01:30:00+02:00"),
    ];
    let hourly = plan(
        RetentionPolicy {
            keep_hourly: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        kept_times(&hourly),
        strings(&["2026-10-25T02:40:00+01:00", "2026-10-25T01:30:00+02:00"])
    );
    // One local day (the last is Oct 24 in UTC): the oldest stays only as
    // the oldest, not as a day of its own.
    let daily = plan(
        RetentionPolicy {
            keep_daily: n(2),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        outcome(&daily).0,
        vec![
            k("2026-10-25T02:40:00+01:00", &[Daily]),
            k("2026-10-25T01:30:00+02:00", &[oldest(Daily)]),
        ]
    );
}

#[test]
fn eu_dst_start_and_month_boundary_in_local_time() {
    // 2026-03-29 02:00 +01:00 jumps to 03:00 +02:00; 00:30+02:00 on Apr 1
    // is still March in UTC.
    let t = vec![
        snap(1, "2026-04-01T00:30:00+02:00"),
        snap(2, "2026-03-31T23:00:00+02:00"),
        snap(3, "2026-03-29T03:30:00+02:00"),
        snap(4, "2026-03-29T01:45:00+01:00"),
        snap(5, "2026-03-28T12:00:00+01:00"),
    ];
    let p = plan(
        RetentionPolicy {
            keep_monthly: n(2),
            keep_daily: n(3),
            ..Default::default()
        },
        &t,
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(
        kept,
        vec![
            k("2026-04-01T00:30:00+02:00", &[Daily, Monthly]),
            k("2026-03-31T23:00:00+02:00", &[Daily, Monthly]),
            k("2026-03-29T03:30:00+02:00", &[Daily]),
        ]
    );
    assert_eq!(
        removed,
        strings(&["2026-03-29T01:45:00+01:00", "2026-03-28T12:00:00+01:00"])
    );
}

#[test]
fn several_time_zones_in_one_group() {
    // By instant: Z3 (Jun 2 03:00Z, Jun 1 on its clock), Z1 (Jun 1 16:00Z,
    // Jun 2 in Tokyo), Z2 (Jun 1 14:00Z), Z4 (May 30).
    let t = vec![
        snap(1, "2026-06-02T01:00:00+09:00"),
        snap(2, "2026-06-01T14:00:00Z"),
        snap(3, "2026-06-01T20:00:00-07:00"),
        snap(4, "2026-05-30T12:00:00Z"),
    ];
    let daily = plan(
        RetentionPolicy {
            keep_daily: Some(KeepCount::Unlimited),
            ..Default::default()
        },
        &t,
        late(),
    );
    // Jun 1 is filled by Z3 already, so Z2 goes. restic compares only with
    // the last kept day (Jun 2) and would keep Z2 as a second Jun 1.
    let (kept, removed) = outcome(&daily);
    assert_eq!(
        kept,
        vec![
            k("2026-06-01T20:00:00-07:00", &[Daily]),
            k("2026-06-02T01:00:00+09:00", &[Daily]),
            k("2026-05-30T12:00:00Z", &[Daily]),
        ]
    );
    assert_eq!(removed, strings(&["2026-06-01T14:00:00Z"]));
    // keep-within counts back on the newest snapshot's clock, by instant.
    let within_day = plan(
        RetentionPolicy {
            keep_within: within("1d"),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(
        kept_times(&within_day),
        strings(&[
            "2026-06-01T20:00:00-07:00",
            "2026-06-02T01:00:00+09:00",
            "2026-06-01T14:00:00Z"
        ])
    );
}

#[test]
fn keep_within_counts_from_the_newest_snapshot_not_now() {
    let t = vec![
        snap(1, "2026-01-10T12:00:00Z"),
        snap(2, "2026-01-09T13:00:00Z"),
        snap(3, "2026-01-09T12:00:00Z"),
        snap(4, "2026-01-08T12:00:00Z"),
    ];
    // "Now" is months later, yet the newest two are within a day of the
    // newest; exactly one day before is not within (restic's strict After).
    let day = plan(
        RetentionPolicy {
            keep_within: within("1d"),
            ..Default::default()
        },
        &t,
        late(),
    );
    let (kept, removed) = outcome(&day);
    assert_eq!(
        kept,
        vec![
            k("2026-01-10T12:00:00Z", &[Within]),
            k("2026-01-09T13:00:00Z", &[Within]),
        ]
    );
    assert_eq!(removed.len(), 2);
    let longer = plan(
        RetentionPolicy {
            keep_within: within("1d2h"),
            ..Default::default()
        },
        &t,
        late(),
    );
    assert_eq!(kept_times(&longer).len(), 3);
}

// Mar 1 2026 is a Sunday, Mar 2 and Mar 9 Mondays.
fn within_table() -> Vec<(Id, Snapshot)> {
    vec![
        snap(1, "2026-03-10T18:00:00Z"),
        snap(2, "2026-03-10T09:00:00Z"),
        snap(3, "2026-03-09T18:00:00Z"),
        snap(4, "2026-03-09T09:00:00Z"),
        snap(5, "2026-03-02T12:00:00Z"),
        snap(6, "2026-03-01T12:00:00Z"),
        snap(7, "2026-02-15T12:00:00Z"),
        snap(8, "2025-12-31T12:00:00Z"),
        snap(9, "2025-06-30T12:00:00Z"),
    ]
}

fn within_only(policy: RetentionPolicy) -> Vec<(String, Vec<KeepReason>)> {
    outcome(&plan(policy, &within_table(), late())).0
}

#[test]
fn keep_within_periods_keep_one_per_bucket_inside_the_window() {
    assert_eq!(
        within_only(RetentionPolicy {
            keep_within_hourly: within("1d"),
            ..Default::default()
        }),
        vec![
            k("2026-03-10T18:00:00Z", &[WithinHourly]),
            k("2026-03-10T09:00:00Z", &[WithinHourly]),
        ]
    );
    assert_eq!(
        within_only(RetentionPolicy {
            keep_within_daily: within("2d"),
            ..Default::default()
        }),
        vec![
            k("2026-03-10T18:00:00Z", &[WithinDaily]),
            k("2026-03-09T18:00:00Z", &[WithinDaily]),
        ]
    );
    assert_eq!(
        within_only(RetentionPolicy {
            keep_within_weekly: within("10d"),
            ..Default::default()
        }),
        vec![
            k("2026-03-10T18:00:00Z", &[WithinWeekly]),
            k("2026-03-02T12:00:00Z", &[WithinWeekly]),
            k("2026-03-01T12:00:00Z", &[WithinWeekly]),
        ]
    );
    assert_eq!(
        within_only(RetentionPolicy {
            keep_within_monthly: within("1y"),
            ..Default::default()
        }),
        vec![
            k("2026-03-10T18:00:00Z", &[WithinMonthly]),
            k("2026-02-15T12:00:00Z", &[WithinMonthly]),
            k("2025-12-31T12:00:00Z", &[WithinMonthly]),
            k("2025-06-30T12:00:00Z", &[WithinMonthly]),
        ]
    );
    assert_eq!(
        within_only(RetentionPolicy {
            keep_within_yearly: within("1y"),
            ..Default::default()
        }),
        vec![
            k("2026-03-10T18:00:00Z", &[WithinYearly]),
            k("2025-12-31T12:00:00Z", &[WithinYearly]),
            k("2025-06-30T12:00:00Z", &[oldest(WithinYearly)]),
        ]
    );
    // The oldest is kept extra only when it lies inside the window.
    assert_eq!(
        within_only(RetentionPolicy {
            keep_within_yearly: within("2m"),
            ..Default::default()
        }),
        vec![k("2026-03-10T18:00:00Z", &[WithinYearly])]
    );
}

#[test]
fn a_combined_policy_lists_every_rule_that_keeps_a_snapshot() {
    let kept = within_only(RetentionPolicy {
        keep_last: n(1),
        keep_monthly: n(2),
        keep_yearly: Some(KeepCount::Unlimited),
        keep_within_daily: within("2d"),
        ..Default::default()
    });
    assert_eq!(
        kept,
        vec![
            k(
                "2026-03-10T18:00:00Z",
                &[Last, Monthly, Yearly, WithinDaily]
            ),
            k("2026-03-09T18:00:00Z", &[WithinDaily]),
            k("2026-02-15T12:00:00Z", &[Monthly]),
            k("2025-12-31T12:00:00Z", &[Yearly]),
            k("2025-06-30T12:00:00Z", &[oldest(Yearly)]),
        ]
    );
}

#[test]
fn a_future_snapshot_is_kept_but_pushes_nothing_out() {
    let now: Timestamp = "2026-07-01T00:00:00Z".parse().unwrap();
    let t = vec![
        snap_of(9, "2031-01-01T00:00:00Z", "h", &["/d"], &["x"]),
        snap(1, "2026-06-30T12:00:00Z"),
        snap(2, "2026-06-29T12:00:00Z"),
        snap(3, "2026-06-28T12:00:00Z"),
    ];
    // restic would spend one of the two on the 2031 snapshot.
    let last = plan(
        RetentionPolicy {
            keep_last: n(2),
            ..Default::default()
        },
        &t,
        now,
    );
    let (kept, removed) = outcome(&last);
    assert_eq!(
        kept,
        vec![
            k("2031-01-01T00:00:00Z", &[InFuture]),
            k("2026-06-30T12:00:00Z", &[Last]),
            k("2026-06-29T12:00:00Z", &[Last]),
        ]
    );
    assert_eq!(removed, strings(&["2026-06-28T12:00:00Z"]));
    assert_eq!(last.in_future(), vec![Id([9; 32])]);
    // keep-within counts back from the newest snapshot that is not in the
    // future; tags still show on a future snapshot.
    let within_day = plan(
        RetentionPolicy {
            keep_within: within("1d"),
            keep_tags: vec!["x".parse().unwrap()],
            ..Default::default()
        },
        &t,
        now,
    );
    assert_eq!(
        outcome(&within_day).0,
        vec![
            k(
                "2031-01-01T00:00:00Z",
                &[InFuture, Tags(TagList(vec!["x".into()]))]
            ),
            k("2026-06-30T12:00:00Z", &[Within]),
        ]
    );
    // Only future snapshots: all kept, none counted.
    let only_future = plan(
        RetentionPolicy {
            keep_last: n(1),
            ..Default::default()
        },
        &t[..1],
        now,
    );
    assert_eq!(
        outcome(&only_future).0,
        vec![k("2031-01-01T00:00:00Z", &[InFuture])]
    );
    // A snapshot exactly at "now" is not in the future.
    let at_now = plan(
        RetentionPolicy {
            keep_last: n(1),
            ..Default::default()
        },
        &t[1..],
        "2026-06-30T12:00:00Z".parse().unwrap(),
    );
    assert_eq!(outcome(&at_now).0, vec![k("2026-06-30T12:00:00Z", &[Last])]);
}

#[test]
fn keep_tag_lists_need_every_tag_and_are_not_counted() {
    let t = vec![
        snap_of(1, "2026-04-05T00:00:00Z", "h", &["/d"], &[]),
        snap_of(2, "2026-04-04T00:00:00Z", "h", &["/d"], &["a"]),
        snap_of(3, "2026-04-03T00:00:00Z", "h", &["/d"], &["b", "a"]),
        snap_of(4, "2026-04-02T00:00:00Z", "h", &["/d"], &["c"]),
        snap_of(5, "2026-04-01T00:00:00Z", "h", &["/d"], &["a", "b", "c"]),
    ];
    let ab: TagList = "a,b".parse().unwrap();
    let c: TagList = "c".parse().unwrap();
    let p = plan(
        RetentionPolicy {
            keep_last: n(1),
            keep_tags: vec![ab.clone(), c.clone()],
            ..Default::default()
        },
        &t,
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(
        kept,
        vec![
            k("2026-04-05T00:00:00Z", &[Last]),
            k("2026-04-03T00:00:00Z", &[Tags(ab.clone())]),
            k("2026-04-02T00:00:00Z", &[Tags(c.clone())]),
            k("2026-04-01T00:00:00Z", &[Tags(ab), Tags(c)]),
        ]
    );
    assert_eq!(removed, strings(&["2026-04-04T00:00:00Z"]));
    let empty = ForgetOptions {
        policy: RetentionPolicy {
            keep_tags: vec![TagList(vec![])],
            ..Default::default()
        },
        ..ForgetOptions::default()
    };
    assert!(matches!(
        plan_forget(&t, &empty, late()),
        Err(ForgetError::EmptyTagList)
    ));
}

#[test]
fn an_empty_policy_keeps_everything() {
    let p = plan(
        RetentionPolicy {
            keep_daily: n(0),
            ..Default::default()
        },
        &hours_table(),
        late(),
    );
    let (kept, removed) = outcome(&p);
    assert_eq!(kept.len(), 7);
    assert!(kept.iter().all(|(_, r)| r == &vec![EmptyPolicy]));
    assert!(removed.is_empty());
    assert!(p.to_forget().is_empty());
}

fn grouping_table() -> Vec<(Id, Snapshot)> {
    vec![
        snap_of(1, "2026-02-01T00:00:00Z", "h1", &["/a"], &[]),
        snap_of(2, "2026-02-02T00:00:00Z", "h1", &["/a"], &["x"]),
        snap_of(3, "2026-02-03T00:00:00Z", "h1", &["/b", "/a"], &[]),
        snap_of(4, "2026-02-04T00:00:00Z", "h1", &["/a", "/b"], &["x"]),
        snap_of(5, "2026-02-05T00:00:00Z", "h2", &["/a"], &[]),
    ]
}

fn grouped(group_by: GroupBy) -> ForgetPlan {
    let opts = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: n(1),
            ..Default::default()
        },
        group_by,
        ..ForgetOptions::default()
    };
    plan_forget(&grouping_table(), &opts, late()).unwrap()
}

#[test]
fn groups_by_host_and_paths_by_default() {
    let p = grouped(GroupBy::default());
    let keys: Vec<String> = p
        .groups
        .iter()
        .map(|g| serde_json::to_string(&g.key).unwrap())
        .collect();
    // Path order does not split a group; tags are not part of the key.
    assert_eq!(
        keys,
        vec![
            r#"{"hostname":"h1","paths":["/a"]}"#,
            r#"{"hostname":"h1","paths":["/a","/b"]}"#,
            r#"{"hostname":"h2","paths":["/a"]}"#,
        ]
    );
    assert_eq!(p.to_keep(), vec![Id([2; 32]), Id([4; 32]), Id([5; 32])]);
    assert_eq!(p.to_forget(), vec![Id([1; 32]), Id([3; 32])]);
}

#[test]
fn groups_by_any_combination_or_not_at_all() {
    let by_tags = grouped("tags".parse().unwrap());
    assert_eq!(by_tags.groups.len(), 2);
    assert_eq!(by_tags.to_keep(), vec![Id([4; 32]), Id([5; 32])]);
    let by_host_tags = grouped("host,tags".parse().unwrap());
    assert_eq!(by_host_tags.groups.len(), 3);
    assert_eq!(
        by_host_tags.to_keep(),
        vec![Id([3; 32]), Id([4; 32]), Id([5; 32])]
    );
    let by_paths = grouped("paths".parse().unwrap());
    assert_eq!(by_paths.to_keep(), vec![Id([4; 32]), Id([5; 32])]);
    let one = grouped(GroupBy::NONE);
    assert_eq!(one.groups.len(), 1);
    assert_eq!(one.to_keep(), vec![Id([5; 32])]);
    assert_eq!(one.to_forget().len(), 4);
}

#[test]
fn a_filter_leaves_other_snapshots_alone() {
    let opts = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: n(1),
            ..Default::default()
        },
        group_by: GroupBy::NONE,
        filter: SnapshotFilter {
            hosts: vec!["h1".into()],
            ..SnapshotFilter::default()
        },
        ..ForgetOptions::default()
    };
    let p = plan_forget(&grouping_table(), &opts, late()).unwrap();
    assert_eq!(p.to_keep(), vec![Id([4; 32])]);
    assert_eq!(p.to_forget(), vec![Id([1; 32]), Id([2; 32]), Id([3; 32])]);
}

#[test]
fn explicit_ids_are_forgotten_and_the_policy_decides_over_the_rest() {
    let t = hours_table();
    let opts = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: n(1),
            ..Default::default()
        },
        ids: vec![Id([1; 32])],
        ..ForgetOptions::default()
    };
    let p = plan_forget(&t, &opts, late()).unwrap();
    // restic ignores the policy when ids are given; Lifeboat applies both,
    // so the next-newest takes the forgotten one's place.
    assert_eq!(p.explicit.len(), 1);
    assert_eq!(p.to_keep(), vec![Id([2; 32])]);
    assert_eq!(p.to_forget().len(), 6);
    assert!(p.to_forget().contains(&Id([1; 32])));

    // Without a policy only the named ones go.
    let only_ids = ForgetOptions {
        ids: vec![Id([3; 32]), Id([7; 32])],
        ..ForgetOptions::default()
    };
    let p = plan_forget(&t, &only_ids, late()).unwrap();
    assert_eq!(p.to_forget(), vec![Id([3; 32]), Id([7; 32])]);
    assert_eq!(p.to_keep().len(), 5);

    let unknown = ForgetOptions {
        ids: vec![Id([42; 32])],
        ..ForgetOptions::default()
    };
    assert!(matches!(
        plan_forget(&t, &unknown, late()),
        Err(ForgetError::UnknownSnapshot { id }) if id == Id([42; 32])
    ));
}

#[test]
fn a_bad_time_fails_the_plan_unless_that_snapshot_is_named() {
    let mut t = hours_table();
    t.push(snap(8, "last tuesday"));
    let keep_one = RetentionPolicy {
        keep_last: n(1),
        ..Default::default()
    };
    let opts = ForgetOptions {
        policy: keep_one.clone(),
        ..ForgetOptions::default()
    };
    assert!(matches!(
        plan_forget(&t, &opts, late()),
        Err(ForgetError::InvalidTime { id, .. }) if id == Id([8; 32])
    ));
    let named = ForgetOptions {
        policy: keep_one,
        ids: vec![Id([8; 32])],
        ..ForgetOptions::default()
    };
    let p = plan_forget(&t, &named, late()).unwrap();
    assert!(p.to_forget().contains(&Id([8; 32])));
    assert_eq!(p.to_keep(), vec![Id([1; 32])]);
}

#[test]
fn the_plan_serializes_to_the_documented_json() {
    let t = vec![
        snap_of(1, "2026-01-02T00:00:00Z", "h", &["/d"], &["a", "b"]),
        snap_of(2, "2026-01-01T00:00:00Z", "h", &["/d"], &[]),
        snap_of(3, "2040-01-01T00:00:00Z", "h", &["/d"], &[]),
    ];
    let opts = ForgetOptions {
        policy: RetentionPolicy {
            keep_last: n(1),
            keep_daily: Some(KeepCount::Unlimited),
            keep_within: within("1y2d"),
            keep_tags: vec!["a,b".parse().unwrap()],
            ..Default::default()
        },
        ids: vec![Id([2; 32])],
        ..ForgetOptions::default()
    };
    let p = plan_forget(&t, &opts, late()).unwrap();
    let json = serde_json::to_value(&p).unwrap();
    let id1 = Id([1; 32]).to_string();
    let id2 = Id([2; 32]).to_string();
    let id3 = Id([3; 32]).to_string();
    let expected = serde_json::json!({
        "now": "2030-01-01T00:00:00Z",
        "policy": {
            "keep_last": 1,
            "keep_daily": "unlimited",
            "keep_within": "1y2d",
            "keep_tags": [["a", "b"]]
        },
        "groups": [{
            "key": {"hostname": "h", "paths": ["/d"]},
            "keep": [
                {"id": id3, "time": "2040-01-01T00:00:00Z", "hostname": "h",
                 "paths": ["/d"], "tags": [], "reasons": ["in_future"]},
                {"id": id1, "time": "2026-01-02T00:00:00Z", "hostname": "h",
                 "paths": ["/d"], "tags": ["a", "b"],
                 "reasons": [{"tags": ["a", "b"]}, "within", "last", "daily"]}
            ],
            "remove": []
        }],
        "explicit": [
            {"id": id2, "time": "2026-01-01T00:00:00Z", "hostname": "h",
             "paths": ["/d"], "tags": []}
        ]
    });
    assert_eq!(json, expected);
    assert_eq!(
        serde_json::to_value(oldest(WithinDaily)).unwrap(),
        serde_json::json!({"oldest": "within_daily"})
    );
}
