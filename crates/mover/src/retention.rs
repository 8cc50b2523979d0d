//! The retention policy of `forget`: VolSync's `FORGET_OPTIONS` (restic's
//! `--keep-*` flags, as VolSync builds them from `retain`), or
//! `MOVER_KEEP_*` variables. No policy at all forgets nothing.

use lifeboat::{ForgetOptions, GroupBy, KeepCount, KeepWithin, RetentionPolicy, TagList};

use crate::error::Failure;
use crate::settings::var;

fn bad(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::config(format!("FORGET_OPTIONS: {what}: {e}"))
}

fn count(flag: &str, v: &str) -> Result<Option<KeepCount>, Failure> {
    v.parse().map(Some).map_err(|e| bad(flag, e))
}

fn within(flag: &str, v: &str) -> Result<Option<KeepWithin>, Failure> {
    v.parse().map(Some).map_err(|e| bad(flag, e))
}

/// Apply one flag and its value to `o`.
fn apply(o: &mut ForgetOptions, flag: &str, v: &str) -> Result<(), Failure> {
    let p: &mut RetentionPolicy = &mut o.policy;
    match flag {
        "--keep-last" | "-l" => p.keep_last = count(flag, v)?,
        "--keep-hourly" | "-H" => p.keep_hourly = count(flag, v)?,
        "--keep-daily" | "-d" => p.keep_daily = count(flag, v)?,
        "--keep-weekly" | "-w" => p.keep_weekly = count(flag, v)?,
        "--keep-monthly" | "-m" => p.keep_monthly = count(flag, v)?,
        "--keep-yearly" | "-y" => p.keep_yearly = count(flag, v)?,
        "--keep-within" => p.keep_within = within(flag, v)?,
        "--keep-within-hourly" => p.keep_within_hourly = within(flag, v)?,
        "--keep-within-daily" => p.keep_within_daily = within(flag, v)?,
        "--keep-within-weekly" => p.keep_within_weekly = within(flag, v)?,
        "--keep-within-monthly" => p.keep_within_monthly = within(flag, v)?,
        "--keep-within-yearly" => p.keep_within_yearly = within(flag, v)?,
        "--keep-tag" => p
            .keep_tags
            .push(v.parse::<TagList>().map_err(|e| bad(flag, e))?),
        "--group-by" | "-g" => o.group_by = v.parse::<GroupBy>().map_err(|e| bad(flag, e))?,
        "--host" => o.filter.hosts.push(v.to_string()),
        "--path" => o.filter.paths.push(v.to_string()),
        "--tag" => o.filter.tags.push(
            v.split(',')
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect(),
        ),
        other => {
            return Err(Failure::config(format!(
                "FORGET_OPTIONS: unknown option {other:?} (the mover takes --keep-*, \
                 --group-by, --host, --path, --tag)"
            )));
        }
    }
    Ok(())
}

/// Parse restic-style options: `--keep-daily 5 --keep-within=10d`.
pub fn parse_forget_options(text: &str, o: &mut ForgetOptions) -> Result<(), Failure> {
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if let Some((flag, v)) = w.split_once('=') {
            apply(o, flag, v)?;
            continue;
        }
        let v = words
            .next()
            .ok_or_else(|| Failure::config(format!("FORGET_OPTIONS: {w} needs a value")))?;
        apply(o, w, v)?;
    }
    Ok(())
}

/// `MOVER_KEEP_*` variables, each the same as its `--keep-*` flag.
const KEEP_VARS: &[(&str, &str)] = &[
    ("MOVER_KEEP_LAST", "--keep-last"),
    ("MOVER_KEEP_HOURLY", "--keep-hourly"),
    ("MOVER_KEEP_DAILY", "--keep-daily"),
    ("MOVER_KEEP_WEEKLY", "--keep-weekly"),
    ("MOVER_KEEP_MONTHLY", "--keep-monthly"),
    ("MOVER_KEEP_YEARLY", "--keep-yearly"),
    ("MOVER_KEEP_WITHIN", "--keep-within"),
];

/// The forget options of the environment; `host` is the default host
/// filter (the mover's own snapshots only), unless `FORGET_OPTIONS` names
/// hosts itself.
pub fn from_env(host: &str) -> Result<ForgetOptions, Failure> {
    let mut o = ForgetOptions::default();
    if let Some(text) = var("FORGET_OPTIONS") {
        parse_forget_options(&text, &mut o)?;
    }
    for (name, flag) in KEEP_VARS {
        if let Some(v) = var(name) {
            apply(&mut o, flag, v.trim()).map_err(|e| e.context(name))?;
        }
    }
    if o.filter.hosts.is_empty() {
        o.filter.hosts.push(host.to_string());
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volsync_options_parse() {
        let mut o = ForgetOptions::default();
        parse_forget_options(" --keep-hourly 5 --keep-daily=7 --keep-within 10d", &mut o)
            .map_err(|e| e.message)
            .unwrap_or_else(|m| unreachable!("{m}"));
        assert_eq!(o.policy.keep_hourly, Some(KeepCount::Newest(5)));
        assert_eq!(o.policy.keep_daily, Some(KeepCount::Newest(7)));
        assert!(o.policy.keep_within.is_some());
        assert!(o.policy.keep_last.is_none());
    }

    #[test]
    fn bad_options_are_refused() {
        let mut o = ForgetOptions::default();
        assert!(parse_forget_options("--keep-daily", &mut o).is_err());
        assert!(parse_forget_options("--keep-daily x", &mut o).is_err());
        assert!(parse_forget_options("--prune", &mut o).is_err());
    }

    #[test]
    fn empty_options_are_an_empty_policy() {
        let mut o = ForgetOptions::default();
        parse_forget_options("  ", &mut o)
            .map_err(|e| e.message)
            .ok();
        assert!(o.policy.is_empty());
    }
}
