//! `forget`: group snapshots, apply the [`RetentionPolicy`] to each group,
//! add the snapshots named explicitly, and (unless a dry run) delete the
//! snapshot objects. Their data stays until prune.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use lifeboat_core::{Repository, SnapshotFilter};
use lifeboat_format::{Id, Snapshot};

use crate::retention::{KeepReason, PolicyInput, RetentionPolicy};
use crate::retention_time::SnapshotTime;

/// Errors from `forget`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForgetError {
    /// A snapshot's time is not RFC 3339 with an offset. Forget it by id to
    /// get past it: explicitly named snapshots are not given to the policy.
    #[error("snapshot {id}: invalid time {time:?}")]
    InvalidTime {
        /// Snapshot id.
        id: Id,
        /// The time as stored.
        time: String,
        /// Why it did not parse.
        #[source]
        source: jiff::Error,
    },
    /// An explicitly named snapshot is not in the repository.
    #[error("snapshot {id} not found")]
    UnknownSnapshot {
        /// The id asked for.
        id: Id,
    },
    /// A `keep_tags` entry holds no tag (it would match every snapshot).
    #[error("a keep-tag list is empty")]
    EmptyTagList,
    /// Listing or loading the snapshots failed.
    #[error("loading snapshots")]
    Load(#[source] Box<lifeboat_core::Error>),
    /// Deleting a snapshot failed; the ones in `deleted` are gone already.
    #[error("deleting snapshot {id} ({} deleted before it)", deleted.len())]
    Delete {
        /// The snapshot that could not be deleted.
        id: Id,
        /// Snapshots deleted before the failure.
        deleted: Vec<Id>,
        /// The cause.
        #[source]
        source: Box<lifeboat_core::Error>,
    },
}

/// Which snapshot fields form a group (restic's `--group-by`). The policy is
/// applied to each group on its own. Nothing set puts every snapshot in one
/// group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupBy {
    /// By host name.
    pub host: bool,
    /// By the (sorted) set of backed-up paths.
    pub paths: bool,
    /// By the (sorted) set of tags.
    pub tags: bool,
}

impl GroupBy {
    /// One group for everything (`--group-by ''`).
    pub const NONE: GroupBy = GroupBy {
        host: false,
        paths: false,
        tags: false,
    };

    fn key(&self, s: &Snapshot) -> GroupKey {
        let sorted = |v: &[String]| {
            let mut v = v.to_vec();
            v.sort();
            v
        };
        GroupKey {
            hostname: self.host.then(|| s.hostname.clone()),
            paths: self.paths.then(|| sorted(&s.paths)),
            tags: self.tags.then(|| sorted(&s.tags)),
        }
    }
}

impl Default for GroupBy {
    /// By host and paths, as restic.
    fn default() -> Self {
        GroupBy {
            host: true,
            paths: true,
            tags: false,
        }
    }
}

impl fmt::Display for GroupBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.host, "host"),
            (self.paths, "paths"),
            (self.tags, "tags"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
        f.write_str(&names.join(","))
    }
}

/// A `--group-by` value that did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown group-by field {field:?} (use host, paths, tags, or '' for one group)")]
pub struct GroupByError {
    /// The field.
    pub field: String,
}

impl FromStr for GroupBy {
    type Err = GroupByError;

    /// A comma list of `host`, `paths`, `tags` (restic also takes the
    /// singular forms); the empty string is one group.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut g = GroupBy::NONE;
        for field in s.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match field {
                "host" | "hosts" => g.host = true,
                "path" | "paths" => g.paths = true,
                "tag" | "tags" => g.tags = true,
                other => {
                    return Err(GroupByError {
                        field: other.into(),
                    });
                }
            }
        }
        Ok(g)
    }
}

/// What a group shares; fields not grouped by are absent.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct GroupKey {
    /// The host, when grouping by host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The sorted paths, when grouping by paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// The sorted tags, when grouping by tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// What `forget` is to do.
#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    /// Which snapshots of each group to keep.
    pub policy: RetentionPolicy,
    /// How snapshots are grouped.
    pub group_by: GroupBy,
    /// Only these snapshots are considered (restic's `--host`, `--path`,
    /// `--tag`); the others are neither kept nor forgotten, just left alone.
    pub filter: SnapshotFilter,
    /// Snapshots to forget whatever the policy says. They are left out of
    /// the policy, which decides over the rest.
    pub ids: Vec<Id>,
    /// Plan only; delete nothing.
    pub dry_run: bool,
}

/// A snapshot in a plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PlannedSnapshot {
    /// Snapshot id.
    pub id: Id,
    /// Its time as stored.
    pub time: String,
    /// Its host.
    pub hostname: String,
    /// Its paths.
    pub paths: Vec<String>,
    /// Its tags.
    pub tags: Vec<String>,
}

impl PlannedSnapshot {
    fn of(id: Id, s: &Snapshot) -> PlannedSnapshot {
        PlannedSnapshot {
            id,
            time: s.time.clone(),
            hostname: s.hostname.clone(),
            paths: s.paths.clone(),
            tags: s.tags.clone(),
        }
    }
}

/// A kept snapshot and the rules that keep it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeptSnapshot {
    /// The snapshot.
    #[serde(flatten)]
    pub snapshot: PlannedSnapshot,
    /// Every rule that keeps it, in policy order.
    pub reasons: Vec<KeepReason>,
}

/// The policy's decision for one group; both lists newest first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupPlan {
    /// What the group shares.
    pub key: GroupKey,
    /// Snapshots kept.
    pub keep: Vec<KeptSnapshot>,
    /// Snapshots to forget.
    pub remove: Vec<PlannedSnapshot>,
}

/// What `forget` decided, before anything is deleted.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForgetPlan {
    /// The "now" snapshots were judged against (later ones are in the
    /// future).
    pub now: Timestamp,
    /// The policy applied.
    pub policy: RetentionPolicy,
    /// Per group, in group-key order.
    pub groups: Vec<GroupPlan>,
    /// Snapshots forgotten because they were named.
    pub explicit: Vec<PlannedSnapshot>,
}

impl ForgetPlan {
    /// Every snapshot to forget, sorted by id.
    pub fn to_forget(&self) -> Vec<Id> {
        let set: BTreeSet<Id> = self
            .explicit
            .iter()
            .chain(self.groups.iter().flat_map(|g| &g.remove))
            .map(|s| s.id)
            .collect();
        set.into_iter().collect()
    }

    /// Kept snapshots whose time is after `now` (counted in no rule), sorted
    /// by id: worth a warning, as their clock or `--time` was likely wrong.
    pub fn in_future(&self) -> Vec<Id> {
        let set: BTreeSet<Id> = self
            .groups
            .iter()
            .flat_map(|g| &g.keep)
            .filter(|k| k.reasons.contains(&KeepReason::InFuture))
            .map(|k| k.snapshot.id)
            .collect();
        set.into_iter().collect()
    }

    /// Every kept snapshot, sorted by id.
    pub fn to_keep(&self) -> Vec<Id> {
        let set: BTreeSet<Id> = self
            .groups
            .iter()
            .flat_map(|g| &g.keep)
            .map(|k| k.snapshot.id)
            .collect();
        set.into_iter().collect()
    }
}

/// What `forget` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ForgetReport {
    /// The plan carried out.
    pub plan: ForgetPlan,
    /// Whether this was a dry run (then nothing was deleted).
    pub dry_run: bool,
    /// Snapshots deleted, sorted by id.
    pub deleted: Vec<Id>,
    /// Snapshots to delete that were gone already (forgotten concurrently).
    pub already_gone: Vec<Id>,
}

/// Decide what to forget among `snapshots`, judging times against `now`.
/// Pure: reads and deletes nothing.
pub fn plan_forget(
    snapshots: &[(Id, Snapshot)],
    opts: &ForgetOptions,
    now: Timestamp,
) -> Result<ForgetPlan, ForgetError> {
    if opts.policy.keep_tags.iter().any(|l| l.0.is_empty()) {
        return Err(ForgetError::EmptyTagList);
    }
    let named: BTreeSet<Id> = opts.ids.iter().copied().collect();
    let by_id: BTreeMap<Id, &Snapshot> = snapshots.iter().map(|(id, s)| (*id, s)).collect();
    let mut explicit = Vec::with_capacity(named.len());
    for id in &named {
        let s = by_id
            .get(id)
            .ok_or(ForgetError::UnknownSnapshot { id: *id })?;
        explicit.push(PlannedSnapshot::of(*id, s));
    }

    let mut groups: BTreeMap<GroupKey, Vec<PolicyInput<'_>>> = BTreeMap::new();
    for (id, s) in snapshots {
        if named.contains(id) || !opts.filter.matches(s) {
            continue;
        }
        let time = SnapshotTime::parse(&s.time).map_err(|source| ForgetError::InvalidTime {
            id: *id,
            time: s.time.clone(),
            source,
        })?;
        groups
            .entry(opts.group_by.key(s))
            .or_default()
            .push(PolicyInput {
                id: *id,
                time,
                tags: &s.tags,
            });
    }

    let groups = groups
        .into_iter()
        .map(|(key, members)| {
            let mut keep = Vec::new();
            let mut remove = Vec::new();
            for v in opts.policy.decide(&members, now) {
                // Every verdict's id comes from `snapshots`.
                let Some(s) = by_id.get(&v.id) else { continue };
                let planned = PlannedSnapshot::of(v.id, s);
                if v.keep() {
                    keep.push(KeptSnapshot {
                        snapshot: planned,
                        reasons: v.reasons,
                    });
                } else {
                    remove.push(planned);
                }
            }
            GroupPlan { key, keep, remove }
        })
        .collect();

    Ok(ForgetPlan {
        now,
        policy: opts.policy.clone(),
        groups,
        explicit,
    })
}

/// Plan against the repository's snapshots and, unless `opts.dry_run`,
/// delete the snapshots to forget (their data stays until prune). `now` is
/// the time later snapshots count as in the future from; pass
/// `Timestamp::now()` outside tests.
pub fn forget(
    repo: &Repository,
    opts: &ForgetOptions,
    now: Timestamp,
) -> Result<ForgetReport, ForgetError> {
    let snapshots = repo
        .snapshots()
        .map_err(|e| ForgetError::Load(Box::new(e)))?
        .items;
    let plan = plan_forget(&snapshots, opts, now)?;
    let mut deleted = Vec::new();
    let mut already_gone = Vec::new();
    if !opts.dry_run {
        for id in plan.to_forget() {
            match repo.delete_snapshot(&id) {
                Ok(()) => deleted.push(id),
                Err(lifeboat_core::Error::Store(e)) if e.is_not_found() => already_gone.push(id),
                Err(source) => {
                    return Err(ForgetError::Delete {
                        id,
                        deleted,
                        source: Box::new(source),
                    });
                }
            }
        }
    }
    Ok(ForgetReport {
        plan,
        dry_run: opts.dry_run,
        deleted,
        already_gone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_by_parses_restic_spellings() {
        assert_eq!("".parse(), Ok(GroupBy::NONE));
        assert_eq!("host,paths".parse(), Ok(GroupBy::default()));
        let all: GroupBy = "hosts, path,tag".parse().unwrap();
        assert_eq!(all.to_string(), "host,paths,tags");
        assert_eq!(
            "host,user".parse::<GroupBy>(),
            Err(GroupByError {
                field: "user".into()
            })
        );
    }
}
