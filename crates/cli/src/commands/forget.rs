//! `lifeboat forget`: remove snapshots by retention policy or by id
//! (docs/forget.md). The policy is decided by the facade; this module parses,
//! resolves snapshot names and prints.

use anyhow::{Result, bail};
use clap::Args;
use lifeboat::{
    ForgetOptions, ForgetReport, GroupBy, GroupKey, Id, KeepCount, KeepReason, KeepWithin,
    PlannedSnapshot, RetentionPolicy, SnapshotFilter, TagList,
};

use crate::args::{Global, SnapshotFilterArgs};
use crate::commands::prune;
use crate::output::print_json;
use crate::{exit, open};

/// Options of `lifeboat forget`.
#[derive(Debug, Args)]
pub struct ForgetArgs {
    /// Snapshots to forget whatever the policy says (ids or unique prefixes).
    #[arg(value_name = "SNAPSHOT")]
    pub snapshots: Vec<String>,
    /// Keep the last N snapshots (`unlimited` keeps all).
    #[arg(short = 'l', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_last: Option<KeepCount>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[arg(short = 'H', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_hourly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the last N days that have one.
    #[arg(short = 'd', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_daily: Option<KeepCount>,
    /// Keep the newest snapshot of each of the last N ISO weeks that have one.
    #[arg(short = 'w', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_weekly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the last N months that have one.
    #[arg(short = 'm', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_monthly: Option<KeepCount>,
    /// Keep the newest snapshot of each of the last N years that have one.
    #[arg(short = 'y', long, value_name = "N", allow_negative_numbers = true)]
    pub keep_yearly: Option<KeepCount>,
    /// Keep snapshots newer than DURATION (e.g. 1y5m7d2h) before the newest one.
    #[arg(long, value_name = "DURATION")]
    pub keep_within: Option<KeepWithin>,
    /// Keep hourly snapshots newer than DURATION before the newest one.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_hourly: Option<KeepWithin>,
    /// Keep daily snapshots newer than DURATION before the newest one.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_daily: Option<KeepWithin>,
    /// Keep weekly snapshots newer than DURATION before the newest one.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_weekly: Option<KeepWithin>,
    /// Keep monthly snapshots newer than DURATION before the newest one.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_monthly: Option<KeepWithin>,
    /// Keep yearly snapshots newer than DURATION before the newest one.
    #[arg(long, value_name = "DURATION")]
    pub keep_within_yearly: Option<KeepWithin>,
    /// Keep snapshots carrying all of these tags (repeatable: any of the lists).
    #[arg(long = "keep-tag", value_name = "TAG[,TAG]")]
    pub keep_tags: Vec<TagList>,
    /// Apply the policy per group of host, paths and/or tags ('' for one group).
    #[arg(short = 'g', long, value_name = "FIELDS", default_value = "host,paths")]
    pub group_by: GroupBy,
    /// Only consider these snapshots.
    #[command(flatten)]
    pub filter: SnapshotFilterArgs,
    /// Print what would be forgotten; delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Then run `prune` with its default options (after a dry run: print
    /// its plan only).
    #[arg(long)]
    pub prune: bool,
    /// With --prune: delete unused packs at once instead of marking them;
    /// only when no backup runs against the repository.
    #[arg(long, requires = "prune")]
    pub instant_delete: bool,
}

impl ForgetArgs {
    fn policy(&self) -> RetentionPolicy {
        RetentionPolicy {
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            keep_within: self.keep_within,
            keep_within_hourly: self.keep_within_hourly,
            keep_within_daily: self.keep_within_daily,
            keep_within_weekly: self.keep_within_weekly,
            keep_within_monthly: self.keep_within_monthly,
            keep_within_yearly: self.keep_within_yearly,
            keep_tags: self.keep_tags.clone(),
        }
    }
}

/// Forget by policy and by id, and print what was kept and removed.
pub fn run(g: &Global, a: &ForgetArgs) -> Result<u8> {
    let policy = a.policy();
    // As restic: an empty policy would keep everything, which is never what
    // someone typing `forget` meant.
    if policy.is_empty() && a.snapshots.is_empty() {
        bail!(
            "no policy was specified, no snapshots removed \
             (give --keep-* rules or snapshot ids)"
        );
    }
    let repo = open::repository(g)?;
    if !a.dry_run {
        repo.core().require_delete("forget")?;
    }
    // Named snapshots bypass the filter (docs/forget.md, "Explicit snapshots").
    let mut ids: Vec<Id> = Vec::with_capacity(a.snapshots.len());
    for spec in &a.snapshots {
        let (id, _) = repo.find_snapshot(spec, &SnapshotFilter::default())?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    let opts = ForgetOptions {
        policy,
        group_by: a.group_by,
        filter: a.filter.filter(),
        ids,
        dry_run: a.dry_run,
    };
    let report = repo.forget(&opts, jiff::Timestamp::now())?;
    for id in report.plan.in_future() {
        let time = report
            .plan
            .groups
            .iter()
            .flat_map(|gp| &gp.keep)
            .find(|k| k.snapshot.id == id)
            .map(|k| k.snapshot.time.as_str())
            .unwrap_or_default();
        eprintln!(
            "lifeboat: warning: snapshot {} has a time in the future ({time}); \
             kept and counted in no rule (forget it by id if its clock was wrong)",
            id.short()
        );
    }
    if g.json {
        print_json(&report);
    } else if !g.quiet {
        print_text(&report);
    }
    if !a.prune {
        return Ok(exit::OK);
    }
    // As restic: prune only when snapshots went (or, dry, would go).
    let removed = if a.dry_run {
        report.plan.to_forget().len()
    } else {
        report.deleted.len()
    };
    if removed == 0 {
        if !g.json && !g.quiet {
            println!("no snapshots removed, not running prune");
        }
        return Ok(exit::OK);
    }
    if !g.json && !g.quiet {
        println!();
        if a.dry_run {
            // The prune library cannot leave snapshots out of its walk, so
            // the dry plan counts the snapshots listed above as used.
            println!(
                "prune plan (dry run) of the repository as it is now, \
                 with the snapshots above still in it:"
            );
        } else {
            println!("pruning:");
        }
    }
    let opts = prune::default_options(a.instant_delete, a.dry_run);
    prune::prune_and_print(g, &repo, &opts)
}

/// restic's group header: `snapshots for (host [h], paths [/a, /b]):`.
fn group_title(key: &GroupKey) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(h) = &key.hostname {
        parts.push(format!("host [{h}]"));
    }
    if let Some(p) = &key.paths {
        parts.push(format!("paths [{}]", p.join(", ")));
    }
    if let Some(t) = &key.tags {
        parts.push(format!("tags [{}]", t.join(", ")));
    }
    (!parts.is_empty()).then(|| format!("snapshots for ({}):", parts.join(", ")))
}

fn rule_name(r: &KeepReason) -> String {
    match r {
        KeepReason::Last => "last".into(),
        KeepReason::Hourly => "hourly".into(),
        KeepReason::Daily => "daily".into(),
        KeepReason::Weekly => "weekly".into(),
        KeepReason::Monthly => "monthly".into(),
        KeepReason::Yearly => "yearly".into(),
        KeepReason::Oldest(inner) => format!("oldest {}", rule_name(inner)),
        KeepReason::Within => "within".into(),
        KeepReason::WithinHourly => "within hourly".into(),
        KeepReason::WithinDaily => "within daily".into(),
        KeepReason::WithinWeekly => "within weekly".into(),
        KeepReason::WithinMonthly => "within monthly".into(),
        KeepReason::WithinYearly => "within yearly".into(),
        KeepReason::Tags(l) => format!("tags {l}"),
        KeepReason::InFuture => "in future".into(),
        KeepReason::EmptyPolicy => "empty policy".into(),
        // A reason added later: its JSON name says enough.
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// `2024-01-01 20:00:00+02:00`: the time as stored, without fractions of a
/// second. The offset stays, since days and hours are counted in it.
fn wall_clock(time: &str) -> String {
    let (Some(head), Some(rest)) = (time.get(..19), time.get(19..)) else {
        return time.to_string();
    };
    let offset = rest.trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    format!("{}{offset}", head.replace('T', " "))
}

/// One row per snapshot: id, time, host, tags, (reasons,) paths.
fn print_table(snaps: &[(&PlannedSnapshot, Option<String>)]) {
    let with_reasons = snaps.iter().any(|(_, r)| r.is_some());
    let mut rows: Vec<Vec<String>> = vec![
        ["ID", "Time", "Host", "Tags", "Reasons", "Paths"]
            .iter()
            .map(|h| h.to_string())
            .collect(),
    ];
    for (s, reasons) in snaps {
        rows.push(vec![
            s.id.short(),
            wall_clock(&s.time),
            s.hostname.clone(),
            s.tags.join(","),
            reasons.clone().unwrap_or_default(),
            s.paths.join(" "),
        ]);
    }
    if !with_reasons {
        for r in &mut rows {
            r.remove(4);
        }
    }
    let columns = rows[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == columns {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
    println!();
}

fn print_text(report: &ForgetReport) {
    let plan = &report.plan;
    // Only ids given: every other snapshot is kept, and listing them all
    // would bury the few removed.
    let groups = if plan.policy.is_empty() {
        &[][..]
    } else {
        println!("Applying policy: {}", plan.policy);
        println!();
        &plan.groups[..]
    };
    for group in groups {
        if let Some(title) = group_title(&group.key) {
            println!("{title}");
        }
        if !group.keep.is_empty() {
            println!("keep {} snapshots:", group.keep.len());
            let rows: Vec<_> = group
                .keep
                .iter()
                .map(|k| {
                    let reasons: Vec<String> = k.reasons.iter().map(rule_name).collect();
                    (&k.snapshot, Some(reasons.join(", ")))
                })
                .collect();
            print_table(&rows);
        }
        if !group.remove.is_empty() {
            println!("remove {} snapshots:", group.remove.len());
            let rows: Vec<_> = group.remove.iter().map(|s| (s, None)).collect();
            print_table(&rows);
        }
    }
    if !plan.explicit.is_empty() {
        println!("remove {} snapshots named explicitly:", plan.explicit.len());
        let rows: Vec<_> = plan.explicit.iter().map(|s| (s, None)).collect();
        print_table(&rows);
    }
    if report.dry_run {
        let to_forget = plan.to_forget();
        for id in &to_forget {
            println!("would remove snapshot {}", id.short());
        }
        println!(
            "would remove {} snapshots (dry run; nothing was deleted)",
            to_forget.len()
        );
    } else {
        for id in &report.deleted {
            println!("removed snapshot {}", id.short());
        }
        for id in &report.already_gone {
            println!("snapshot {} was already gone", id.short());
        }
        println!("removed {} snapshots", report.deleted.len());
    }
}

#[cfg(test)]
mod tests {
    use super::wall_clock;

    #[test]
    fn the_wall_clock_keeps_the_offset_and_drops_fractions() {
        assert_eq!(
            wall_clock("2024-01-01T20:00:00.123456789+02:00"),
            "2024-01-01 20:00:00+02:00"
        );
        assert_eq!(wall_clock("2024-01-01T08:00:00Z"), "2024-01-01 08:00:00Z");
        assert_eq!(wall_clock("garbage"), "garbage");
    }
}
