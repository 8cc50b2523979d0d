//! Recovery readiness: for each backup source, how old its newest snapshot
//! is against its recovery point objective, when a drill last proved it
//! restorable and how long that restore took against its recovery time
//! objective; the repository's size and growth; and the same as
//! Prometheus metrics for a textfile collector. See `docs/drill.md`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use lifeboat_format::{DrillRecord, Id, Snapshot};
use lifeboat_prune::GroupBy;

use crate::error::{Error, Result};
use crate::policy::{Policy, format_duration};
use crate::repository::Repository;

/// Settings of [`Repository::status`].
#[derive(Debug, Clone)]
pub struct StatusOptions {
    /// Tiers and sources; without one, only the limits below apply.
    pub policy: Option<Policy>,
    /// The RPO of every source, over the policy's.
    pub max_age: Option<Duration>,
    /// How old the last successful drill may be, over the policy's.
    pub drill_max_age: Option<Duration>,
    /// What makes a source (restic's `--group-by`; default host and paths).
    pub group_by: GroupBy,
    /// The time to judge ages at.
    pub now: jiff::Timestamp,
}

impl Default for StatusOptions {
    fn default() -> Self {
        StatusOptions {
            policy: None,
            max_age: None,
            drill_max_age: None,
            group_by: GroupBy::default(),
            now: jiff::Timestamp::now(),
        }
    }
}

/// A snapshot or drill, with its age.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Dated {
    /// The snapshot's or drill record's id.
    pub id: Id,
    /// Its time, RFC 3339.
    pub time: String,
    /// Seconds from it to [`StatusOptions::now`] (negative in the future).
    pub age_secs: i64,
}

/// One drill, as `status` shows it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DrillSeen {
    /// The record and its age.
    pub at: Dated,
    /// Whether it passed.
    pub ok: bool,
    /// The restore time it measured, seconds.
    pub rto_secs: f64,
    /// The snapshot it drilled.
    pub snapshot: Id,
}

/// One source: what makes it one, its objectives and where it stands.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SourceStatus {
    /// Host, when grouping by host (or from the policy's entry).
    pub host: Option<String>,
    /// Sorted paths, when grouping by paths.
    pub paths: Option<Vec<String>>,
    /// Sorted tags, when grouping by tags.
    pub tags: Option<Vec<String>>,
    /// The policy entry's name.
    pub name: Option<String>,
    /// The tier's name.
    pub tier: Option<String>,
    /// The recovery point objective in force.
    pub rpo: Option<Duration>,
    /// The recovery time objective in force.
    pub rto: Option<Duration>,
    /// How old the last successful drill may be.
    pub drill_max_age: Option<Duration>,
    /// Snapshots of the source.
    pub snapshots: usize,
    /// The newest one.
    pub last_snapshot: Option<Dated>,
    /// The newest drill, passed or not.
    pub last_drill: Option<DrillSeen>,
    /// The newest drill that passed.
    pub last_good_drill: Option<DrillSeen>,
    /// The newest snapshot is older than the RPO, or there is none.
    pub stale: bool,
    /// No successful drill within `drill_max_age`, the newest drill failed,
    /// or the last good drill's restore took longer than the RTO.
    pub drill_problem: bool,
    /// Why, one line each.
    pub problems: Vec<String>,
}

impl SourceStatus {
    /// A name for people: the policy's, else host and paths.
    pub fn label(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let mut parts = Vec::new();
        if let Some(h) = &self.host {
            parts.push(h.clone());
        }
        if let Some(p) = &self.paths {
            parts.push(p.join(","));
        }
        if let Some(t) = &self.tags {
            parts.push(format!("[{}]", t.join(",")));
        }
        if parts.is_empty() {
            "all".into()
        } else {
            parts.join(":")
        }
    }
}

/// The repository as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct RepositoryStatus {
    /// Where it is.
    pub location: String,
    /// Stored bytes in packs.
    pub size_bytes: u64,
    /// Packs.
    pub packs: usize,
    /// Snapshots.
    pub snapshots: usize,
    /// Drill records.
    pub drills: usize,
    /// Stored bytes the snapshots of the last 24 hours added.
    pub growth_24h_bytes: u64,
    /// Stored bytes the snapshots of the last 7 days added.
    pub growth_7d_bytes: u64,
    /// Objects skipped as damaged or stray while listing.
    pub skipped: usize,
}

/// What [`Repository::status`] found.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StatusReport {
    /// The time ages are measured at.
    pub now: jiff::Timestamp,
    /// One per source, sorted by label.
    pub sources: Vec<SourceStatus>,
    /// The repository.
    pub repository: RepositoryStatus,
}

/// The overall verdict, and `lifeboat status`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Every source within its RPO and drilled within its limit.
    Ready,
    /// Some source is older than its RPO (or never backed up).
    Stale,
    /// Some source lacks a recent successful drill (or failed its last
    /// one, or restored slower than its RTO).
    DrillDue,
    /// Both.
    StaleAndDrillDue,
}

impl Readiness {
    /// The exit code: 0, 5, 6, 7 (documented in `docs/drill.md`).
    pub fn exit_code(self) -> u8 {
        match self {
            Readiness::Ready => 0,
            Readiness::Stale => 5,
            Readiness::DrillDue => 6,
            Readiness::StaleAndDrillDue => 7,
        }
    }

    /// `ready`, `stale`, `drill_due`, `stale_and_drill_due`.
    pub fn name(self) -> &'static str {
        match self {
            Readiness::Ready => "ready",
            Readiness::Stale => "stale",
            Readiness::DrillDue => "drill_due",
            Readiness::StaleAndDrillDue => "stale_and_drill_due",
        }
    }
}

impl StatusReport {
    /// The verdict over all sources.
    pub fn readiness(&self) -> Readiness {
        let stale = self.sources.iter().any(|s| s.stale);
        let drill = self.sources.iter().any(|s| s.drill_problem);
        match (stale, drill) {
            (false, false) => Readiness::Ready,
            (true, false) => Readiness::Stale,
            (false, true) => Readiness::DrillDue,
            (true, true) => Readiness::StaleAndDrillDue,
        }
    }

    /// The report in the Prometheus text exposition format (version
    /// 0.0.4), for node_exporter's textfile collector.
    pub fn to_prometheus(&self) -> String {
        let mut families: Vec<Family> = Vec::new();
        let mut add =
            |name: &'static str, help: &'static str, labels: String, v: f64| match families
                .iter_mut()
                .find(|f| f.0 == name)
            {
                Some(f) => f.2.push((labels, v)),
                None => families.push((name, help, vec![(labels, v)])),
            };
        let now = self.now.as_second() as f64;
        for s in &self.sources {
            let l = source_labels(s);
            let ts = |d: &Dated| {
                jiff::Timestamp::from_second(now as i64 - d.age_secs)
                    .map(|t| t.as_second() as f64)
                    .unwrap_or(0.0)
            };
            add(
                "lifeboat_source_snapshots",
                "Snapshots of the source.",
                l.clone(),
                s.snapshots as f64,
            );
            if let Some(d) = &s.last_snapshot {
                add(
                    "lifeboat_last_snapshot_timestamp_seconds",
                    "Unix time of the newest snapshot of the source.",
                    l.clone(),
                    ts(d),
                );
                add(
                    "lifeboat_last_snapshot_age_seconds",
                    "Age of the newest snapshot of the source.",
                    l.clone(),
                    d.age_secs as f64,
                );
            }
            if let Some(r) = s.rpo {
                add(
                    "lifeboat_rpo_seconds",
                    "Recovery point objective of the source.",
                    l.clone(),
                    r.as_secs_f64(),
                );
            }
            if let Some(r) = s.rto {
                add(
                    "lifeboat_rto_target_seconds",
                    "Recovery time objective of the source.",
                    l.clone(),
                    r.as_secs_f64(),
                );
            }
            if let Some(r) = s.drill_max_age {
                add(
                    "lifeboat_drill_max_age_seconds",
                    "How old the last successful drill of the source may be.",
                    l.clone(),
                    r.as_secs_f64(),
                );
            }
            if let Some(d) = &s.last_drill {
                add(
                    "lifeboat_last_drill_timestamp_seconds",
                    "Unix time of the newest drill of the source, passed or not.",
                    l.clone(),
                    ts(&d.at),
                );
                add(
                    "lifeboat_last_drill_success",
                    "1 if the newest drill of the source passed, else 0.",
                    l.clone(),
                    if d.ok { 1.0 } else { 0.0 },
                );
            }
            if let Some(d) = &s.last_good_drill {
                add(
                    "lifeboat_last_successful_drill_timestamp_seconds",
                    "Unix time of the newest successful drill of the source.",
                    l.clone(),
                    ts(&d.at),
                );
                add(
                    "lifeboat_last_drill_rto_seconds",
                    "Restore time the newest successful drill of the source measured.",
                    l.clone(),
                    d.rto_secs,
                );
            }
            add(
                "lifeboat_source_stale",
                "1 if the newest snapshot is older than the RPO or missing.",
                l.clone(),
                if s.stale { 1.0 } else { 0.0 },
            );
            add(
                "lifeboat_source_drill_problem",
                "1 if no successful drill is recent enough, the last failed, or it was slower than the RTO.",
                l,
                if s.drill_problem { 1.0 } else { 0.0 },
            );
        }
        let r = &self.repository;
        let rl = format!("repository=\"{}\"", escape_label(&r.location));
        for (name, help, v) in [
            (
                "lifeboat_repository_size_bytes",
                "Stored bytes in the repository's packs.",
                r.size_bytes as f64,
            ),
            (
                "lifeboat_repository_packs",
                "Packs in the repository.",
                r.packs as f64,
            ),
            (
                "lifeboat_repository_snapshots",
                "Snapshots in the repository.",
                r.snapshots as f64,
            ),
            (
                "lifeboat_repository_drills",
                "Drill records in the repository.",
                r.drills as f64,
            ),
            (
                "lifeboat_repository_skipped_objects",
                "Objects skipped as damaged or stray by the listings.",
                r.skipped as f64,
            ),
            (
                "lifeboat_status_timestamp_seconds",
                "Unix time this status was taken.",
                now,
            ),
        ] {
            add(name, help, rl.clone(), v);
        }
        for (window, v) in [("24h", r.growth_24h_bytes), ("7d", r.growth_7d_bytes)] {
            add(
                "lifeboat_repository_growth_bytes",
                "Stored bytes added by the snapshots of the window.",
                format!("{rl},window=\"{window}\""),
                v as f64,
            );
        }
        let mut out = String::new();
        for (name, help, samples) in families {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{{{labels}}} {}", prom_float(v));
            }
        }
        out
    }

    /// Write [`to_prometheus`](Self::to_prometheus) to `path` atomically:
    /// a temporary file beside it, synced, then renamed over it, so a
    /// collector never reads half a file.
    pub fn write_prometheus(&self, path: &Path) -> Result<()> {
        let io = |p: &Path, e: std::io::Error| Error::Io {
            path: p.display().to_string(),
            source: e,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("{}: not a file name", path.display()))
        })?;
        let tmp = dir.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let text = self.to_prometheus();
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = std::fs::remove_file(&tmp);
            return Err(io(&tmp, e));
        }
        std::fs::rename(&tmp, path).map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(path, e)
        })?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// A metric family: name, help, and samples (labels, value).
type Family = (&'static str, &'static str, Vec<(String, f64)>);

fn source_labels(s: &SourceStatus) -> String {
    let mut l = format!("source=\"{}\"", escape_label(&s.label()));
    let mut push = |k: &str, v: &str| {
        let _ = write!(l, ",{k}=\"{}\"", escape_label(v));
    };
    push("host", s.host.as_deref().unwrap_or(""));
    push(
        "paths",
        &s.paths.as_ref().map(|p| p.join(",")).unwrap_or_default(),
    );
    push(
        "tags",
        &s.tags.as_ref().map(|t| t.join(",")).unwrap_or_default(),
    );
    push("tier", s.tier.as_deref().unwrap_or(""));
    l
}

/// Label values escape `\`, `"` and newlines.
fn escape_label(v: &str) -> String {
    let mut o = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '"' => o.push_str("\\\""),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

fn prom_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        }
    } else {
        format!("{v}")
    }
}

/// What makes a source under `group_by`: (host, paths, tags).
type Key = (Option<String>, Option<Vec<String>>, Option<Vec<String>>);

fn key_of(g: GroupBy, host: &str, paths: &[String], tags: &[String]) -> Key {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v
    };
    (
        g.host.then(|| host.to_string()),
        g.paths.then(|| sorted(paths)),
        g.tags.then(|| sorted(tags)),
    )
}

fn age(now: jiff::Timestamp, time: &str) -> Option<i64> {
    let t: jiff::Timestamp = time.parse().ok()?;
    Some(now.as_second() - t.as_second())
}

impl Repository {
    /// Where every source stands against its objectives. Damaged snapshots
    /// and drill records are left out and counted in
    /// [`RepositoryStatus::skipped`].
    pub fn status(&self, opts: &StatusOptions) -> Result<StatusReport> {
        let snaps = self.snapshots()?;
        let drills = self.drills()?;
        let now = opts.now;
        let g = opts.group_by;
        let mut by_source: BTreeMap<Key, Vec<&(Id, Snapshot)>> = BTreeMap::new();
        for s in &snaps.items {
            by_source
                .entry(key_of(g, &s.1.hostname, &s.1.paths, &s.1.tags))
                .or_default()
                .push(s);
        }
        let mut drills_by: BTreeMap<Key, Vec<&(Id, DrillRecord)>> = BTreeMap::new();
        for d in &drills.items {
            drills_by
                .entry(key_of(g, &d.1.hostname, &d.1.paths, &d.1.tags))
                .or_default()
                .push(d);
        }
        // Sources the policy names exactly but that have no snapshot.
        if let Some(p) = &opts.policy {
            for rule in &p.sources {
                let (Some(h), Some(paths)) = (&rule.host, &rule.paths) else {
                    continue;
                };
                let covered = snaps.items.iter().any(|(_, s)| rule.matches_snapshot(s));
                // Grouped by tags, a rule's tags are only some of a source's.
                if !covered && (!g.tags || rule.tags.is_empty()) {
                    by_source
                        .entry(key_of(g, h, paths, &rule.tags))
                        .or_default();
                }
            }
        }
        let mut sources = Vec::new();
        for (key, list) in &by_source {
            let newest = list.iter().max_by(|a, b| {
                let ta = a.1.time.parse::<jiff::Timestamp>().ok();
                let tb = b.1.time.parse::<jiff::Timestamp>().ok();
                ta.cmp(&tb).then(a.0.cmp(&b.0))
            });
            // Classify by the newest snapshot, or by the key for a source
            // with none.
            let (host, paths, tags) = match newest {
                Some(n) => (n.1.hostname.clone(), n.1.paths.clone(), n.1.tags.clone()),
                None => (
                    key.0.clone().unwrap_or_default(),
                    key.1.clone().unwrap_or_default(),
                    key.2.clone().unwrap_or_default(),
                ),
            };
            let (rule, tier) = match &opts.policy {
                Some(p) => p.classify(&host, &paths, &tags),
                None => (None, None),
            };
            let (name, key_host) = match (rule, newest) {
                (Some(r), None) => (r.name.clone(), r.host.clone()),
                (Some(r), _) => (r.name.clone(), key.0.clone()),
                (None, _) => (None, key.0.clone()),
            };
            let rpo = opts.max_age.or(tier.and_then(|t| t.1.rpo));
            let rto = tier.and_then(|t| t.1.rto);
            let drill_max_age = opts.drill_max_age.or(tier.and_then(|t| t.1.drill_every));
            let mut st = SourceStatus {
                host: key_host,
                paths: key.1.clone(),
                tags: key.2.clone(),
                name,
                tier: tier.map(|t| t.0.to_string()),
                rpo,
                rto,
                drill_max_age,
                snapshots: list.len(),
                last_snapshot: newest.map(|n| Dated {
                    id: n.0,
                    time: n.1.time.clone(),
                    age_secs: age(now, &n.1.time).unwrap_or(i64::MAX),
                }),
                last_drill: None,
                last_good_drill: None,
                stale: false,
                drill_problem: false,
                problems: Vec::new(),
            };
            let seen = |d: &(Id, DrillRecord)| DrillSeen {
                at: Dated {
                    id: d.0,
                    time: d.1.time.clone(),
                    age_secs: age(now, &d.1.time).unwrap_or(i64::MAX),
                },
                ok: d.1.ok,
                rto_secs: d.1.restore_secs,
                snapshot: d.1.snapshot,
            };
            if let Some(ds) = drills_by.get(key) {
                let by_time = |d: &&&(Id, DrillRecord)| d.1.time.parse::<jiff::Timestamp>().ok();
                st.last_drill = ds.iter().max_by_key(by_time).map(|d| seen(d));
                st.last_good_drill = ds
                    .iter()
                    .filter(|d| d.1.ok)
                    .max_by_key(by_time)
                    .map(|d| seen(d));
            }
            match (&st.last_snapshot, rpo) {
                (None, _) => {
                    st.stale = true;
                    st.problems.push("no snapshot".into());
                }
                (Some(s), Some(rpo)) if s.age_secs > rpo.as_secs() as i64 => {
                    st.stale = true;
                    st.problems.push(format!(
                        "newest snapshot is {} old, over its RPO of {}",
                        format_duration(Duration::from_secs(s.age_secs.max(0) as u64)),
                        format_duration(rpo)
                    ));
                }
                _ => {}
            }
            if let Some(max) = drill_max_age {
                match &st.last_good_drill {
                    None => {
                        st.drill_problem = true;
                        st.problems
                            .push("never proven restorable by a drill".into());
                    }
                    Some(d) if d.at.age_secs > max.as_secs() as i64 => {
                        st.drill_problem = true;
                        st.problems.push(format!(
                            "last successful drill is {} old, over the limit of {}",
                            format_duration(Duration::from_secs(d.at.age_secs.max(0) as u64)),
                            format_duration(max)
                        ));
                    }
                    _ => {}
                }
            }
            if let Some(d) = &st.last_drill
                && !d.ok
            {
                st.drill_problem = true;
                st.problems
                    .push(format!("the newest drill ({}) failed", d.at.time));
            }
            if let (Some(rto), Some(d)) = (rto, &st.last_good_drill)
                && d.rto_secs > rto.as_secs_f64()
            {
                st.drill_problem = true;
                st.problems.push(format!(
                    "the last successful drill restored in {:.1}s, over its RTO of {}",
                    d.rto_secs,
                    format_duration(rto)
                ));
            }
            sources.push(st);
        }
        sources.sort_by_key(|s| s.label());
        let totals = self.pack_totals();
        let window = |secs: i64| -> u64 {
            snaps
                .items
                .iter()
                .filter(|(_, s)| age(now, &s.time).is_some_and(|a| (0..=secs).contains(&a)))
                .filter_map(|(_, s)| s.summary.as_ref().map(|x| x.bytes_stored))
                .sum()
        };
        let repository = RepositoryStatus {
            location: self.location(),
            size_bytes: totals.bytes,
            packs: totals.packs,
            snapshots: snaps.items.len(),
            drills: drills.items.len(),
            growth_24h_bytes: window(86_400),
            growth_7d_bytes: window(7 * 86_400),
            skipped: snaps.skipped.len() + drills.skipped.len(),
        };
        Ok(StatusReport {
            now,
            sources,
            repository,
        })
    }

    /// The newest snapshot of each source under `group_by`, oldest source
    /// first (for `drill --latest-per-source`).
    pub fn latest_per_source(&self, group_by: GroupBy) -> Result<Vec<(Id, Snapshot)>> {
        let snaps = self.snapshots()?;
        let mut newest: BTreeMap<Key, (Id, Snapshot)> = BTreeMap::new();
        for (id, s) in snaps.items {
            let k = key_of(group_by, &s.hostname, &s.paths, &s.tags);
            let t = s.time.parse::<jiff::Timestamp>().ok();
            let replace = newest
                .get(&k)
                .is_none_or(|(_, o)| o.time.parse::<jiff::Timestamp>().ok() <= t);
            if replace {
                newest.insert(k, (id, s));
            }
        }
        Ok(newest.into_values().collect())
    }
}
