//! The recovery policy, `lifeboat.toml`: tiers with their recovery point
//! and time objectives, retention and drill frequency, and which backup
//! sources belong to which tier. [`Repository::status`](crate::Repository::status)
//! reads it; see `docs/drill.md` for the file.
//!
//! The file is a small subset of TOML: `key = value` lines, `[tiers.NAME]`
//! tables and `[[sources]]` array tables, comments, basic strings, integers
//! and arrays of strings. Anything else is refused with its line.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use lifeboat_format::Snapshot;

/// A policy file that does not parse or does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}line {line}: {message}")]
#[non_exhaustive]
pub struct PolicyError {
    /// `<path>: ` when read from a file, else empty.
    pub file: String,
    /// 1-based line; 0 for the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> PolicyError {
    PolicyError {
        file: String::new(),
        line,
        message: message.into(),
    }
}

/// One tier of service: how fresh its backups must be, how fast a restore
/// must be, how often a drill must prove it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Tier {
    /// Recovery point objective: the newest snapshot may be at most this old.
    pub rpo: Option<Duration>,
    /// Recovery time objective: a drill's restore may take at most this long.
    pub rto: Option<Duration>,
    /// A successful drill must be at most this old.
    pub drill_every: Option<Duration>,
    /// Retention, as `forget` options (for people and the mover; `status`
    /// only shows it).
    pub retention: Option<String>,
    /// For people.
    pub description: Option<String>,
}

/// Which snapshots a `[[sources]]` entry means, and its tier. Every field
/// given must match: `host` the snapshot's host, `paths` its paths (as a
/// set), every one of `tags` among its tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceRule {
    /// A name for people and metrics.
    pub name: Option<String>,
    /// Host name.
    pub host: Option<String>,
    /// Backed-up paths, sorted.
    pub paths: Option<Vec<String>>,
    /// Tags the snapshot must carry.
    pub tags: Vec<String>,
    /// The tier's name.
    pub tier: String,
}

impl SourceRule {
    /// Whether a snapshot of `host`, `paths` and `tags` belongs here.
    pub fn matches(&self, host: &str, paths: &[String], tags: &[String]) -> bool {
        if self.host.as_deref().is_some_and(|h| h != host) {
            return false;
        }
        if let Some(want) = &self.paths {
            let mut have = paths.to_vec();
            have.sort();
            have.dedup();
            if *want != have {
                return false;
            }
        }
        self.tags.iter().all(|t| tags.contains(t))
    }

    /// [`matches`](Self::matches) for a snapshot.
    pub fn matches_snapshot(&self, s: &Snapshot) -> bool {
        self.matches(&s.hostname, &s.paths, &s.tags)
    }
}

/// A parsed `lifeboat.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Policy {
    /// Tiers by name.
    pub tiers: BTreeMap<String, Tier>,
    /// Sources in file order; the first that matches a snapshot wins.
    pub sources: Vec<SourceRule>,
    /// The tier of snapshots no source entry matches.
    pub default_tier: Option<String>,
}

impl Policy {
    /// Read and parse the file at `path`.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: format!("{}: ", path.display()),
            line: 0,
            message: format!("cannot read: {e}"),
        })?;
        Policy::parse(&text).map_err(|mut e| {
            e.file = format!("{}: ", path.display());
            e
        })
    }

    /// Parse the text of a policy file.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let mut policy = Policy::default();
        enum Section {
            Top,
            Tier(String),
            Source,
        }
        let mut section = Section::Top;
        let mut source_lines: Vec<usize> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
                if inner.trim() != "sources" {
                    return Err(err(n, format!("unknown array table [[{}]]", inner.trim())));
                }
                policy.sources.push(SourceRule::default());
                source_lines.push(n);
                section = Section::Source;
                continue;
            }
            if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let inner = inner.trim();
                let Some(name) = inner.strip_prefix("tiers.") else {
                    return Err(err(
                        n,
                        format!("unknown table [{inner}] (use [tiers.NAME] or [[sources]])"),
                    ));
                };
                let name = unquote_key(name).ok_or_else(|| err(n, "bad tier name"))?;
                if policy.tiers.contains_key(&name) {
                    return Err(err(n, format!("tier {name:?} defined twice")));
                }
                policy.tiers.insert(name.clone(), Tier::default());
                section = Section::Tier(name);
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err(n, "expected `key = value`, a [table] or [[sources]]"))?;
            let key = key.trim();
            let value = parse_value(value.trim()).map_err(|m| err(n, m))?;
            match &section {
                Section::Top => match key {
                    "default_tier" => policy.default_tier = Some(value.string(n, key)?),
                    _ => return Err(err(n, format!("unknown key {key:?} at the top level"))),
                },
                Section::Tier(name) => {
                    let tier = policy
                        .tiers
                        .get_mut(name)
                        .ok_or_else(|| err(n, "no such tier"))?;
                    match key {
                        "rpo" => tier.rpo = Some(value.duration(n, key)?),
                        "rto" => tier.rto = Some(value.duration(n, key)?),
                        "drill_every" => tier.drill_every = Some(value.duration(n, key)?),
                        "retention" => tier.retention = Some(value.string(n, key)?),
                        "description" => tier.description = Some(value.string(n, key)?),
                        _ => return Err(err(n, format!("unknown key {key:?} in a tier"))),
                    }
                }
                Section::Source => {
                    let rule = policy
                        .sources
                        .last_mut()
                        .ok_or_else(|| err(n, "no [[sources]] entry"))?;
                    match key {
                        "name" => rule.name = Some(value.string(n, key)?),
                        "host" => rule.host = Some(value.string(n, key)?),
                        "paths" => {
                            let mut p = value.strings(n, key)?;
                            p.sort();
                            p.dedup();
                            rule.paths = Some(p);
                        }
                        "tags" => rule.tags = value.strings(n, key)?,
                        "tier" => rule.tier = value.string(n, key)?,
                        _ => return Err(err(n, format!("unknown key {key:?} in a source"))),
                    }
                }
            }
        }
        for (rule, n) in policy.sources.iter().zip(&source_lines) {
            if rule.tier.is_empty() {
                return Err(err(*n, "this source has no tier"));
            }
            if !policy.tiers.contains_key(&rule.tier) {
                return Err(err(*n, format!("unknown tier {:?}", rule.tier)));
            }
        }
        if let Some(t) = &policy.default_tier
            && !policy.tiers.contains_key(t)
        {
            return Err(err(0, format!("default_tier {t:?} is not a tier")));
        }
        Ok(policy)
    }

    /// The source entry and tier of a snapshot of `host`, `paths`, `tags`:
    /// the first entry that matches, else the default tier.
    pub fn classify(
        &self,
        host: &str,
        paths: &[String],
        tags: &[String],
    ) -> (Option<&SourceRule>, Option<(&str, &Tier)>) {
        let rule = self.sources.iter().find(|r| r.matches(host, paths, tags));
        let tier_name = rule
            .map(|r| r.tier.as_str())
            .or(self.default_tier.as_deref());
        let tier = tier_name.and_then(|t| self.tiers.get_key_value(t));
        (rule, tier.map(|(k, v)| (k.as_str(), v)))
    }
}

/// A value of the subset.
enum Value {
    Str(String),
    Int(i64),
    Array(Vec<String>),
}

impl Value {
    fn string(self, line: usize, key: &str) -> Result<String, PolicyError> {
        match self {
            Value::Str(s) => Ok(s),
            _ => Err(err(line, format!("{key} must be a string"))),
        }
    }

    fn strings(self, line: usize, key: &str) -> Result<Vec<String>, PolicyError> {
        match self {
            Value::Array(v) => Ok(v),
            _ => Err(err(line, format!("{key} must be an array of strings"))),
        }
    }

    /// A string like `15m` or `1h30m`, or an integer of seconds.
    fn duration(self, line: usize, key: &str) -> Result<Duration, PolicyError> {
        match self {
            Value::Str(s) => parse_duration(&s).map_err(|m| err(line, format!("{key}: {m}"))),
            Value::Int(i) if i >= 0 => Ok(Duration::from_secs(i as u64)),
            Value::Array(_) | Value::Int(_) => Err(err(
                line,
                format!("{key} must be a duration like \"15m\" or a number of seconds"),
            )),
        }
    }
}

/// A duration: a sequence of numbers with units `s`, `m`, `h`, `d`
/// (24 h), `w` (7 d), as `90s`, `15m`, `1h30m`, `7d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if c == ' ' {
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(format!("{s:?}: unknown unit {c:?} (use s, m, h, d, w)")),
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: a number must come before {c:?}"))?;
        num.clear();
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| format!("{s:?}: too long"))?;
    }
    if !num.is_empty() {
        return Err(format!("{s:?}: {num} has no unit (use s, m, h, d, w)"));
    }
    Ok(Duration::from_secs(total))
}

/// `15m`, `1h30m`, `7d`: the shortest form [`parse_duration`] reads back.
pub fn format_duration(d: Duration) -> String {
    let mut s = d.as_secs();
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3600), ("m", 60), ("s", 1)] {
        if s >= len {
            out.push_str(&format!("{}{unit}", s / len));
            s %= len;
        }
    }
    out
}

fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            '\\' if in_str && !escaped => {
                escaped = true;
                continue;
            }
            '"' if !escaped => in_str = !in_str,
            '#' if !in_str => return &line[..i],
            _ => {}
        }
        escaped = false;
    }
    line
}

fn unquote_key(k: &str) -> Option<String> {
    let k = k.trim();
    if let Some(q) = k.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        return Some(q.to_string());
    }
    (!k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
    .then(|| k.to_string())
}

fn parse_value(v: &str) -> Result<Value, String> {
    if v.starts_with('"') {
        let (s, rest) = parse_string(v)?;
        if !rest.trim().is_empty() {
            return Err(format!("unexpected {rest:?} after the string"));
        }
        return Ok(Value::Str(s));
    }
    if let Some(inner) = v.strip_prefix('[') {
        let mut out = Vec::new();
        let mut rest = inner.trim_start();
        loop {
            if let Some(r) = rest.strip_prefix(']') {
                if !r.trim().is_empty() {
                    return Err(format!("unexpected {r:?} after the array"));
                }
                return Ok(Value::Array(out));
            }
            let (s, r) = parse_string(rest).map_err(|e| format!("arrays hold strings: {e}"))?;
            out.push(s);
            rest = r.trim_start();
            if let Some(r) = rest.strip_prefix(',') {
                rest = r.trim_start();
            } else if !rest.starts_with(']') {
                return Err("expected `,` or `]` in the array (one line per array)".into());
            }
        }
    }
    v.replace('_', "")
        .parse::<i64>()
        .map(Value::Int)
        .map_err(|_| format!("cannot read the value {v:?} (strings are in double quotes)"))
}

/// A basic string at the start of `v`; the string and what follows.
fn parse_string(v: &str) -> Result<(String, &str), String> {
    let body = v
        .strip_prefix('"')
        .ok_or("expected a string in double quotes")?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &body[i + 1..])),
            '\\' => match chars.next().map(|(_, e)| e) {
                Some('"') => out.push('"'),
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                other => return Err(format!("unsupported escape \\{}", other.unwrap_or(' '))),
            },
            c => out.push(c),
        }
    }
    Err("unterminated string".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const SAMPLE: &str = r#"
# Tiers after the runbooks' tier tables.
default_tier = "tier3"

[tiers.tier0]
description = "control plane"
rpo = "1m"   # a comment
rto = "15m"
drill_every = "7d"
retention = "--keep-hourly 48 --keep-daily 14"

[tiers.tier3]
rpo = "24h"
rto = 86400
drill_every = "90d"

[[sources]]
name = "etcd"
host = "node-1"
tags = ["etcd-snapshot"]
tier = "tier0"

[[sources]]
paths = ["/srv/b", "/srv/a"]
tier = "tier3"
"#;

    #[test]
    fn the_sample_parses_and_classifies() {
        let p = Policy::parse(SAMPLE).unwrap();
        assert_eq!(p.tiers.len(), 2);
        let t0 = &p.tiers["tier0"];
        assert_eq!(t0.rpo, Some(Duration::from_secs(60)));
        assert_eq!(t0.rto, Some(Duration::from_secs(900)));
        assert_eq!(t0.drill_every, Some(Duration::from_secs(7 * 86400)));
        assert_eq!(p.tiers["tier3"].rto, Some(Duration::from_secs(86400)));
        assert_eq!(p.sources.len(), 2);
        assert_eq!(
            p.sources[1].paths,
            Some(vec!["/srv/a".into(), "/srv/b".into()])
        );
        let tags = vec!["etcd-snapshot".to_string(), "nightly".into()];
        let (rule, tier) = p.classify("node-1", &["/etcd".into()], &tags);
        assert_eq!(rule.unwrap().name.as_deref(), Some("etcd"));
        assert_eq!(tier.unwrap().0, "tier0");
        let (rule, tier) = p.classify("x", &["/srv/a".into(), "/srv/b".into()], &[]);
        assert!(rule.is_some());
        assert_eq!(tier.unwrap().0, "tier3");
        let (rule, tier) = p.classify("x", &["/other".into()], &[]);
        assert!(rule.is_none());
        assert_eq!(tier.unwrap().0, "tier3", "the default tier");
    }

    #[test]
    fn mistakes_are_refused_with_their_line() {
        for (text, line, phrase) in [
            ("[tiers.a]\nrpo = \"5x\"", 2, "unknown unit"),
            ("[tiers.a]\nrpo = 5m", 2, "cannot read the value"),
            ("[[sources]]\ntier = \"nope\"", 1, "unknown tier"),
            ("[[sources]]\nhost = \"h\"", 1, "no tier"),
            ("[tiers.a]\nspeed = \"1\"", 2, "unknown key"),
            ("[other]", 1, "unknown table"),
            ("x = \"unterminated", 1, "unterminated"),
            ("default_tier = \"b\"", 0, "not a tier"),
            ("[tiers.a]\n[tiers.a]", 2, "twice"),
        ] {
            let e = Policy::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.message.contains(phrase), "{text}: {e}");
        }
    }

    #[test]
    fn durations_round_trip() {
        for (s, secs) in [
            ("90s", 90),
            ("15m", 900),
            ("1h30m", 5400),
            ("7d", 604_800),
            ("2w", 1_209_600),
        ] {
            let d = parse_duration(s).unwrap();
            assert_eq!(d.as_secs(), secs, "{s}");
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }
}
