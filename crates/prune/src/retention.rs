//! The retention policy (restic's `forget --keep-*`) and its decision for one
//! group of snapshots. Grouping, explicit ids and deleting live in
//! [`crate::forget`].

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use lifeboat_format::Id;

use crate::retention_time::{KeepWithin, Period, SnapshotTime};

/// How many buckets a counted rule keeps (restic's `--keep-daily N`, with
/// `unlimited`, or `-1` in older restic, for every bucket).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeepCount {
    /// The newest N buckets that have a snapshot; 0 turns the rule off.
    Newest(u32),
    /// Every bucket that has a snapshot.
    Unlimited,
}

impl KeepCount {
    fn is_on(self) -> bool {
        self != KeepCount::Newest(0)
    }
}

impl fmt::Display for KeepCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeepCount::Newest(n) => write!(f, "{n}"),
            KeepCount::Unlimited => f.write_str("unlimited"),
        }
    }
}

/// A keep count that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid count {input:?}: expected a number, `unlimited` or -1")]
pub struct KeepCountError {
    /// The input.
    pub input: String,
}

impl FromStr for KeepCount {
    type Err = KeepCountError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "unlimited" | "-1" => Ok(KeepCount::Unlimited),
            n => n
                .parse()
                .map(KeepCount::Newest)
                .map_err(|_| KeepCountError { input: s.into() }),
        }
    }
}

impl serde::Serialize for KeepCount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            KeepCount::Newest(n) => s.serialize_u32(*n),
            KeepCount::Unlimited => s.serialize_str("unlimited"),
        }
    }
}

/// Tags a snapshot must all carry to match (`--keep-tag a,b`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TagList(pub Vec<String>);

impl TagList {
    /// Whether `tags` holds every tag of this list.
    pub fn matches(&self, tags: &[String]) -> bool {
        self.0.iter().all(|t| tags.contains(t))
    }
}

impl fmt::Display for TagList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// A tag list with no tag in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("empty tag list {input:?}")]
pub struct TagListError {
    /// The input.
    pub input: String,
}

impl FromStr for TagList {
    type Err = TagListError;

    /// `a,b` means both tags; blanks around a tag are dropped.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let tags: Vec<String> = s
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect();
        if tags.is_empty() {
            return Err(TagListError { input: s.into() });
        }
        Ok(TagList(tags))
    }
}

/// Which snapshots of a group to keep, as restic's `forget --keep-*`. A
/// snapshot is kept if any rule keeps it; a policy with no rule on keeps
/// everything (restic: "policy is empty").
///
/// Counted rules walk the group newest first and keep the newest snapshot of
/// each of the last N distinct hours, days, ISO weeks, months or years that
/// have one, each taken on the snapshot's own wall clock. The `within` rules
/// are measured back from the group's newest snapshot, not from now.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RetentionPolicy {
    /// Keep the newest N snapshots.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<KeepCount>,
    /// Keep the newest snapshot of each of the last N hours that have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<KeepCount>,
    /// Same per day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<KeepCount>,
    /// Same per ISO 8601 week (Monday to Sunday).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<KeepCount>,
    /// Same per month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<KeepCount>,
    /// Same per year.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<KeepCount>,
    /// Keep every snapshot newer than this before the newest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within: Option<KeepWithin>,
    /// Keep the newest snapshot of each hour within this of the newest one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_hourly: Option<KeepWithin>,
    /// Same per day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_daily: Option<KeepWithin>,
    /// Same per ISO week.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_weekly: Option<KeepWithin>,
    /// Same per month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_monthly: Option<KeepWithin>,
    /// Same per year.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_within_yearly: Option<KeepWithin>,
    /// Keep every snapshot that carries all tags of at least one list.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keep_tags: Vec<TagList>,
}

impl fmt::Display for RetentionPolicy {
    /// A one-line summary, as restic prints before applying a policy:
    /// `keep 7 daily, all monthly snapshots; daily within 2d; within 1y; tags a,b`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return f.write_str("keep all snapshots (empty policy)");
        }
        let mut parts = Vec::new();
        let counts: Vec<String> = self
            .counts()
            .iter()
            .zip(["last", "hourly", "daily", "weekly", "monthly", "yearly"])
            .filter_map(|((c, _, _), name)| {
                c.map(|c| match c {
                    KeepCount::Newest(n) => format!("{n} {name}"),
                    KeepCount::Unlimited => format!("all {name}"),
                })
            })
            .collect();
        if !counts.is_empty() {
            parts.push(format!("{} snapshots", counts.join(", ")));
        }
        for ((w, _, _), name) in self
            .withins()
            .iter()
            .zip(["hourly", "daily", "weekly", "monthly", "yearly"])
        {
            if let Some(w) = w {
                parts.push(format!("{name} within {w}"));
            }
        }
        if let Some(w) = self.keep_within.filter(|w| !w.is_zero()) {
            parts.push(format!("all within {w} of the newest"));
        }
        for l in &self.keep_tags {
            parts.push(format!("all tagged {l}"));
        }
        write!(f, "keep {}", parts.join("; "))
    }
}

/// Why a snapshot is kept (restic's "reasons"). Serialized in snake case:
/// `"daily"`, `"within_weekly"`, `{"tags": ["a", "b"]}`, `{"oldest": "daily"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum KeepReason {
    /// One of the newest `keep_last`.
    Last,
    /// Newest of one of the last `keep_hourly` hours.
    Hourly,
    /// Newest of one of the last `keep_daily` days.
    Daily,
    /// Newest of one of the last `keep_weekly` ISO weeks.
    Weekly,
    /// Newest of one of the last `keep_monthly` months.
    Monthly,
    /// Newest of one of the last `keep_yearly` years.
    Yearly,
    /// The group's oldest snapshot, kept by this rule although a newer
    /// snapshot of its bucket is kept already: counted rules do so while they
    /// have counts left, within-period rules when it lies in their window
    /// (restic's "oldest daily snapshot", since 0.17).
    Oldest(Box<KeepReason>),
    /// Within `keep_within` of the group's newest snapshot.
    Within,
    /// Newest of its hour, within `keep_within_hourly`.
    WithinHourly,
    /// Newest of its day, within `keep_within_daily`.
    WithinDaily,
    /// Newest of its ISO week, within `keep_within_weekly`.
    WithinWeekly,
    /// Newest of its month, within `keep_within_monthly`.
    WithinMonthly,
    /// Newest of its year, within `keep_within_yearly`.
    WithinYearly,
    /// Carries every tag of this `keep_tags` list.
    Tags(TagList),
    /// Its time is after "now": kept, and counted in no rule.
    InFuture,
    /// The policy has no rule on, so everything is kept.
    EmptyPolicy,
}

/// One snapshot as the policy sees it.
#[derive(Debug, Clone)]
pub struct PolicyInput<'a> {
    /// Snapshot id.
    pub id: Id,
    /// Its time.
    pub time: SnapshotTime,
    /// Its tags.
    pub tags: &'a [String],
}

/// The policy's verdict on one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Snapshot id.
    pub id: Id,
    /// Why it is kept; empty means it is to be forgotten.
    pub reasons: Vec<KeepReason>,
}

impl Verdict {
    /// Whether the snapshot is kept.
    pub fn keep(&self) -> bool {
        !self.reasons.is_empty()
    }
}

/// A counted rule's state while walking the group newest first.
struct Counter {
    reason: KeepReason,
    period: Option<Period>,
    /// Buckets still to fill; `None` is unlimited.
    left: Option<u32>,
    seen: HashSet<i64>,
}

/// A within-rule's state.
struct WithinRule {
    reason: KeepReason,
    period: Period,
    after: Timestamp,
    seen: HashSet<i64>,
}

impl RetentionPolicy {
    /// Whether no rule is on (counts of 0 and zero durations are off, as in
    /// restic).
    pub fn is_empty(&self) -> bool {
        self.counts().iter().all(|(c, _, _)| c.is_none())
            && self.withins().iter().all(|(w, _, _)| w.is_none())
            && self.keep_within.is_none_or(|w| w.is_zero())
            && self.keep_tags.is_empty()
    }

    fn counts(&self) -> [(Option<KeepCount>, KeepReason, Option<Period>); 6] {
        let on = |c: Option<KeepCount>| c.filter(|c| c.is_on());
        [
            (on(self.keep_last), KeepReason::Last, None),
            (on(self.keep_hourly), KeepReason::Hourly, Some(Period::Hour)),
            (on(self.keep_daily), KeepReason::Daily, Some(Period::Day)),
            (on(self.keep_weekly), KeepReason::Weekly, Some(Period::Week)),
            (
                on(self.keep_monthly),
                KeepReason::Monthly,
                Some(Period::Month),
            ),
            (on(self.keep_yearly), KeepReason::Yearly, Some(Period::Year)),
        ]
    }

    fn withins(&self) -> [(Option<KeepWithin>, KeepReason, Period); 5] {
        let on = |w: Option<KeepWithin>| w.filter(|w| !w.is_zero());
        [
            (
                on(self.keep_within_hourly),
                KeepReason::WithinHourly,
                Period::Hour,
            ),
            (
                on(self.keep_within_daily),
                KeepReason::WithinDaily,
                Period::Day,
            ),
            (
                on(self.keep_within_weekly),
                KeepReason::WithinWeekly,
                Period::Week,
            ),
            (
                on(self.keep_within_monthly),
                KeepReason::WithinMonthly,
                Period::Month,
            ),
            (
                on(self.keep_within_yearly),
                KeepReason::WithinYearly,
                Period::Year,
            ),
        ]
    }

    /// Decide for one group. Returns a verdict per snapshot, newest first
    /// (ties broken by id). Snapshots after `now` are kept as
    /// [`KeepReason::InFuture`] and take no part in the rules: they fill no
    /// bucket and are not the reference for the `within` rules.
    pub fn decide(&self, group: &[PolicyInput<'_>], now: Timestamp) -> Vec<Verdict> {
        let mut sorted: Vec<&PolicyInput<'_>> = group.iter().collect();
        sorted.sort_by(|a, b| {
            b.time
                .instant()
                .cmp(&a.time.instant())
                .then(a.id.cmp(&b.id))
        });
        if self.is_empty() {
            return sorted
                .iter()
                .map(|s| Verdict {
                    id: s.id,
                    reasons: vec![KeepReason::EmptyPolicy],
                })
                .collect();
        }
        let tag_reasons = |s: &PolicyInput<'_>| -> Vec<KeepReason> {
            self.keep_tags
                .iter()
                .filter(|l| l.matches(s.tags))
                .map(|l| KeepReason::Tags(l.clone()))
                .collect()
        };
        let (future, present): (Vec<&PolicyInput<'_>>, Vec<&PolicyInput<'_>>) =
            sorted.into_iter().partition(|s| s.time.instant() > now);
        let mut out: Vec<Verdict> = future
            .iter()
            .map(|s| {
                let mut reasons = vec![KeepReason::InFuture];
                reasons.extend(tag_reasons(s));
                Verdict { id: s.id, reasons }
            })
            .collect();
        let Some(newest) = present.first() else {
            return out;
        };
        let within = self
            .keep_within
            .filter(|w| !w.is_zero())
            .map(|w| w.before(newest.time.local()));
        let mut counters: Vec<Counter> = self
            .counts()
            .into_iter()
            .filter_map(|(count, reason, period)| {
                count.map(|c| Counter {
                    reason,
                    period,
                    left: match c {
                        KeepCount::Newest(n) => Some(n),
                        KeepCount::Unlimited => None,
                    },
                    seen: HashSet::new(),
                })
            })
            .collect();
        let mut within_rules: Vec<WithinRule> = self
            .withins()
            .into_iter()
            .filter_map(|(w, reason, period)| {
                w.map(|w| WithinRule {
                    reason,
                    period,
                    after: w.before(newest.time.local()),
                    seen: HashSet::new(),
                })
            })
            .collect();
        let oldest = present.len() - 1;
        for (nr, s) in present.iter().enumerate() {
            let mut reasons = tag_reasons(s);
            let at = s.time.instant();
            if within.is_some_and(|after| at > after) {
                reasons.push(KeepReason::Within);
            }
            for c in &mut counters {
                if c.left == Some(0) {
                    continue;
                }
                // keep_last puts every snapshot in a bucket of its own.
                let bucket = c.period.map_or(nr as i64, |p| s.time.bucket(p));
                let reason = if c.seen.insert(bucket) {
                    c.reason.clone()
                } else if nr == oldest {
                    KeepReason::Oldest(Box::new(c.reason.clone()))
                } else {
                    continue;
                };
                if let Some(left) = c.left.as_mut() {
                    *left -= 1;
                }
                reasons.push(reason);
            }
            for w in &mut within_rules {
                if at <= w.after {
                    continue;
                }
                if w.seen.insert(s.time.bucket(w.period)) {
                    reasons.push(w.reason.clone());
                } else if nr == oldest {
                    reasons.push(KeepReason::Oldest(Box::new(w.reason.clone())));
                }
            }
            out.push(Verdict { id: s.id, reasons });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_tag_lists_parse() {
        assert_eq!("7".parse(), Ok(KeepCount::Newest(7)));
        assert_eq!("unlimited".parse(), Ok(KeepCount::Unlimited));
        assert_eq!("-1".parse(), Ok(KeepCount::Unlimited));
        assert!("-2".parse::<KeepCount>().is_err());
        assert_eq!(KeepCount::Unlimited.to_string(), "unlimited");
        let l: TagList = "a, b".parse().unwrap();
        assert_eq!(l, TagList(vec!["a".into(), "b".into()]));
        assert!(l.matches(&["b".into(), "a".into(), "c".into()]));
        assert!(!l.matches(&["a".into()]));
        assert!(",".parse::<TagList>().is_err());
    }

    #[test]
    fn zero_counts_and_durations_leave_the_policy_empty() {
        let p = RetentionPolicy {
            keep_daily: Some(KeepCount::Newest(0)),
            keep_within: Some(KeepWithin::default()),
            ..RetentionPolicy::default()
        };
        assert!(p.is_empty());
        let p = RetentionPolicy {
            keep_daily: Some(KeepCount::Unlimited),
            ..RetentionPolicy::default()
        };
        assert!(!p.is_empty());
    }

    #[test]
    fn a_policy_describes_itself_in_one_line() {
        let p = RetentionPolicy {
            keep_last: Some(KeepCount::Newest(2)),
            keep_monthly: Some(KeepCount::Unlimited),
            keep_within_daily: Some("7d".parse().unwrap()),
            keep_within: Some("1y".parse().unwrap()),
            keep_tags: vec!["a,b".parse().unwrap()],
            ..RetentionPolicy::default()
        };
        assert_eq!(
            p.to_string(),
            "keep 2 last, all monthly snapshots; daily within 7d; \
             all within 1y of the newest; all tagged a,b"
        );
        assert_eq!(
            RetentionPolicy::default().to_string(),
            "keep all snapshots (empty policy)"
        );
    }
}
