//! Retention and garbage collection for Lifeboat repositories.
//!
//! Owns `forget` (choosing which snapshots a [`RetentionPolicy`] keeps) and,
//! in time, `prune` (removing packs no snapshot references, safely against
//! concurrent backups). It decides what to delete; it never changes how
//! anything is encoded.

pub mod gc;

pub use gc::{PruneOptions, PruneProgress, PruneReport, prune};

use lifeboat_format::{Id, Snapshot};

/// Errors from retention decisions.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A snapshot time could not be parsed.
    #[error("snapshot {id}: invalid time {time:?}")]
    InvalidTime {
        /// Snapshot id.
        id: String,
        /// The time string.
        time: String,
    },
    /// The repository failed.
    #[error(transparent)]
    Core(#[from] lifeboat_core::Error),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Which snapshots to keep, as restic's `forget --keep-*`. A snapshot is
/// kept if any rule keeps it; a policy with no rules keeps everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Keep the newest N.
    pub keep_last: Option<usize>,
    /// Keep the newest snapshot of each of the last N days that have one.
    pub keep_daily: Option<usize>,
    /// Keep every snapshot carrying one of these tags.
    pub keep_tags: Vec<String>,
}

impl RetentionPolicy {
    fn is_empty(&self) -> bool {
        self.keep_last.is_none() && self.keep_daily.is_none() && self.keep_tags.is_empty()
    }

    /// Split `snapshots` into (keep, forget) ids. Groups are not formed
    /// here: callers pass one host/path group at a time.
    pub fn apply(&self, snapshots: &[(Id, Snapshot)]) -> Result<(Vec<Id>, Vec<Id>)> {
        let mut sorted: Vec<(&Id, &Snapshot, jiff::Timestamp)> =
            Vec::with_capacity(snapshots.len());
        for (id, s) in snapshots {
            let t: jiff::Timestamp = s.time.parse().map_err(|_| Error::InvalidTime {
                id: id.to_hex(),
                time: s.time.clone(),
            })?;
            sorted.push((id, s, t));
        }
        sorted.sort_by(|a, b| b.2.cmp(&a.2).then(b.0.cmp(a.0)));
        if self.is_empty() {
            return Ok((sorted.iter().map(|x| *x.0).collect(), Vec::new()));
        }
        let mut keep = vec![false; sorted.len()];
        if let Some(n) = self.keep_last {
            keep.iter_mut().take(n).for_each(|k| *k = true);
        }
        if let Some(n) = self.keep_daily {
            let mut days = Vec::new();
            for (i, (_, _, t)) in sorted.iter().enumerate() {
                let day = t.to_zoned(jiff::tz::TimeZone::UTC).date();
                if days.last() != Some(&day) && days.len() < n {
                    days.push(day);
                    keep[i] = true;
                }
            }
        }
        for (i, (_, s, _)) in sorted.iter().enumerate() {
            if s.tags.iter().any(|t| self.keep_tags.contains(t)) {
                keep[i] = true;
            }
        }
        let (k, f): (Vec<_>, Vec<_>) = sorted.iter().zip(&keep).partition(|(_, k)| **k);
        Ok((
            k.into_iter().map(|x| *x.0.0).collect(),
            f.into_iter().map(|x| *x.0.0).collect(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat_format::SourceKind;

    fn snap(n: u8, time: &str, tags: &[&str]) -> (Id, Snapshot) {
        (
            Id([n; 32]),
            Snapshot {
                version: 1,
                time: time.into(),
                tree: Id([0; 32]),
                paths: vec!["/d".into()],
                hostname: "h".into(),
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

    #[test]
    fn keep_last_daily_and_tags() {
        let s = vec![
            snap(1, "2026-01-01T01:00:00Z", &["monthly"]),
            snap(2, "2026-01-02T01:00:00Z", &[]),
            snap(3, "2026-01-02T05:00:00Z", &[]),
            snap(4, "2026-01-03T01:00:00Z", &[]),
            snap(5, "2026-01-04T01:00:00Z", &[]),
        ];
        let p = RetentionPolicy {
            keep_last: Some(1),
            keep_daily: Some(3),
            keep_tags: vec!["monthly".into()],
        };
        let (keep, forget) = p.apply(&s).unwrap();
        assert_eq!(
            keep,
            vec![Id([5; 32]), Id([4; 32]), Id([3; 32]), Id([1; 32])]
        );
        assert_eq!(forget, vec![Id([2; 32])]);
        let (keep, forget) = RetentionPolicy::default().apply(&s).unwrap();
        assert_eq!((keep.len(), forget.len()), (5, 0));
        let bad = vec![snap(9, "yesterday", &[])];
        assert!(p.apply(&bad).is_err());
    }
}
