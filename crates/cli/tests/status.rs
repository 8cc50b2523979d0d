//! `lifeboat status`: every exit condition (ready; a stale source; a source
//! of the policy never backed up; no drill, a drill too old, a failed
//! newest drill, a restore slower than the RTO; stale and undrilled at
//! once; a broken policy), the policy's tiers, `--group-by`, and the
//! `--prometheus` file, read back with a strict parser of the Prometheus
//! text exposition format (0.0.4) written from its specification.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------
// A strict parser of the Prometheus text format, after
// https://prometheus.io/docs/instrumenting/exposition_formats/#text-format-details

type Labels = BTreeMap<String, String>;

#[derive(Debug, Default)]
struct Family {
    kind: Option<String>,
    help: Option<String>,
    samples: Vec<(Labels, f64)>,
}

fn is_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
        && !s.starts_with("__")
}

/// A float as Go's ParseFloat reads it, plus the format's Inf/NaN spellings.
fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" | "Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        "NaN" => return Ok(f64::NAN),
        _ => {}
    }
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
    {
        return Err(format!("bad value {s:?}"));
    }
    s.parse::<f64>()
        .map_err(|e| format!("bad value {s:?}: {e}"))
}

/// Parse a whole exposition; every rule broken is an error naming its line.
fn parse_prometheus(text: &str) -> Result<BTreeMap<String, Family>, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the last line does not end with a line feed".into());
    }
    let mut fams: BTreeMap<String, Family> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut series: BTreeSet<(String, Vec<(String, String)>)> = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        let e = |m: String| format!("line {n}: {m}: {line:?}");
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start_matches([' ', '\t']);
            let mut parts = rest.splitn(3, [' ', '\t']);
            let kw = parts.next().unwrap_or("");
            if kw != "HELP" && kw != "TYPE" {
                continue; // a comment
            }
            let name = parts.next().ok_or_else(|| e("no metric name".into()))?;
            if !is_metric_name(name) {
                return Err(e(format!("bad metric name {name:?}")));
            }
            let arg = parts.next().unwrap_or("");
            if order.last().map(String::as_str) != Some(name) {
                if fams.contains_key(name) {
                    return Err(e(format!("{name} appears again after another family")));
                }
                order.push(name.to_string());
            }
            let f = fams.entry(name.to_string()).or_default();
            if kw == "HELP" {
                if f.help.is_some() {
                    return Err(e("second HELP".into()));
                }
                let mut h = String::new();
                let mut chars = arg.chars();
                while let Some(c) = chars.next() {
                    if c == '\\' {
                        match chars.next() {
                            Some('\\') => h.push('\\'),
                            Some('n') => h.push('\n'),
                            other => return Err(e(format!("bad escape \\{other:?} in HELP"))),
                        }
                    } else {
                        h.push(c);
                    }
                }
                f.help = Some(h);
            } else {
                if f.kind.is_some() {
                    return Err(e("second TYPE".into()));
                }
                if !f.samples.is_empty() {
                    return Err(e("TYPE after samples".into()));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&arg) {
                    return Err(e(format!("unknown type {arg:?}")));
                }
                f.kind = Some(arg.to_string());
            }
            continue;
        }
        // A sample.
        let name_end = line
            .find(['{', ' ', '\t'])
            .ok_or_else(|| e("no value".into()))?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(e(format!("bad metric name {name:?}")));
        }
        let mut rest = &line[name_end..];
        let mut labels: Vec<(String, String)> = Vec::new();
        if let Some(r) = rest.strip_prefix('{') {
            rest = r;
            loop {
                rest = rest.trim_start();
                if let Some(r) = rest.strip_prefix('}') {
                    rest = r;
                    break;
                }
                let eq = rest.find('=').ok_or_else(|| e("label without =".into()))?;
                let lname = rest[..eq].trim();
                if !is_label_name(lname) {
                    return Err(e(format!("bad label name {lname:?}")));
                }
                rest = rest[eq + 1..].trim_start();
                rest = rest
                    .strip_prefix('"')
                    .ok_or_else(|| e("label value not quoted".into()))?;
                let mut value = String::new();
                let mut end = None;
                let mut it = rest.char_indices();
                while let Some((j, c)) = it.next() {
                    match c {
                        '\\' => match it.next().map(|x| x.1) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => return Err(e(format!("bad escape \\{other:?}"))),
                        },
                        '"' => {
                            end = Some(j);
                            break;
                        }
                        '\n' => return Err(e("raw line feed in a label value".into())),
                        c => value.push(c),
                    }
                }
                let end = end.ok_or_else(|| e("unterminated label value".into()))?;
                rest = &rest[end + 1..];
                if labels.iter().any(|(k, _)| k == lname) {
                    return Err(e(format!("label {lname} twice")));
                }
                labels.push((lname.to_string(), value));
                rest = rest.trim_start();
                if let Some(r) = rest.strip_prefix(',') {
                    rest = r;
                } else if !rest.starts_with('}') {
                    return Err(e("expected , or } after a label".into()));
                }
            }
        }
        if !rest.starts_with([' ', '\t']) {
            return Err(e("no blank before the value".into()));
        }
        let mut fields = rest.split_ascii_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| e("no value".into()))?).map_err(e)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| e(format!("bad timestamp {ts:?}")))?;
        }
        if fields.next().is_some() {
            return Err(e("text after the timestamp".into()));
        }
        if order.last().map(String::as_str) != Some(name) {
            if fams.contains_key(name) {
                return Err(e(format!("{name} appears again after another family")));
            }
            order.push(name.to_string());
        }
        let mut key = labels.clone();
        key.sort();
        if !series.insert((name.to_string(), key)) {
            return Err(e("the same series twice".into()));
        }
        fams.entry(name.to_string())
            .or_default()
            .samples
            .push((labels.into_iter().collect(), value));
    }
    Ok(fams)
}

#[test]
fn the_parser_refuses_what_the_format_forbids() {
    let ok = "# HELP a_b Help with \\\\ and \\n.\n# TYPE a_b gauge\na_b{x=\"1\",y=\"q\\\"\\\\\\n\"} 1.5e3\na_b{x=\"2\",} +Inf 1700000000000\nc NaN\n";
    let f = parse_prometheus(ok).unwrap();
    assert_eq!(f["a_b"].help.as_deref(), Some("Help with \\ and \n."));
    assert_eq!(f["a_b"].samples[0].0["y"], "q\"\\\n");
    assert_eq!(f["a_b"].samples[0].1, 1500.0);
    assert!(f["c"].samples[0].1.is_nan());
    for bad in [
        "a 1",                              // no final line feed
        "1a 1\n",                           // bad name
        "a{x=1} 1\n",                       // unquoted label value
        "a{x=\"1\"}1\n",                    // no blank before the value
        "a{x=\"\\t\"} 1\n",                 // bad escape
        "a{x=\"1\",x=\"2\"} 1\n",           // label twice
        "a{__x=\"1\"} 1\n",                 // reserved label name
        "a one\n",                          // bad value
        "a 1\na 2\n",                       // same series twice
        "a 1\nb 1\na{x=\"1\"} 1\n",         // family not contiguous
        "a 1\n# TYPE a gauge\n",            // TYPE after samples
        "# TYPE a gauge\n# TYPE a gauge\n", // second TYPE
        "# TYPE a meter\n",                 // unknown type
        "a 1 2 3\n",                        // text after the timestamp
        "a 1 1.5\n",                        // bad timestamp
    ] {
        assert!(parse_prometheus(bad).is_err(), "accepted {bad:?}");
    }
}

// ---------------------------------------------------------------------------
// status.

/// `status --json <args>`: exit code and the status object.
fn status(t: &TestRepo, args: &[&str]) -> (i32, Value, String) {
    let o = t.run(["--json", "status"].iter().chain(args));
    let v = if o.code == 0 || (5..=7).contains(&o.code) {
        o.json()
    } else {
        Value::Null
    };
    (o.code, v, o.stderr)
}

fn source<'a>(v: &'a Value, label: &str) -> &'a Value {
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["source"].as_str().unwrap().contains(label))
        .unwrap_or_else(|| panic!("no source {label} in {v}"))
}

fn dir_with_file(t: &TestRepo, name: &str) -> PathBuf {
    let d = t.scratch(name);
    fs::write(d.join("f"), name.as_bytes()).unwrap();
    d
}

fn ago(hours: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t = now - hours * 3600;
    // RFC 3339 in UTC from Unix seconds (civil-from-days, Howard Hinnant).
    let days = t.div_euclid(86_400);
    let secs = t.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

fn drill_at(t: &TestRepo, snapshot: &str, time: &str) {
    let scratch = t.scratch("scratch");
    t.run([
        "drill",
        snapshot,
        "--scratch",
        scratch.to_str().unwrap(),
        "--time",
        time,
    ])
    .ok("drill");
}

#[test]
fn status_exits_zero_when_fresh_and_drilled_and_five_when_stale() {
    let t = TestRepo::new();
    let a = dir_with_file(&t, "alpha");
    let snap = t.backup(&[&a], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    drill_at(&t, &snap, &ago(0));
    let (code, v, stderr) = status(&t, &["--max-age", "1h", "--drill-max-age", "7d"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(v["readiness"], "ready");
    let s = source(&v, "alpha");
    assert_eq!(s["snapshots"], 1);
    assert_eq!(s["last_snapshot"]["id"], snap.as_str());
    assert_eq!(s["rpo_secs"], 3600);
    assert_eq!(s["last_successful_drill"]["snapshot"], snap.as_str());
    assert!(s["last_successful_drill"]["rto_secs"].as_f64().unwrap() > 0.0);
    assert_eq!(s["problems"], serde_json::json!([]));
    assert!(v["repository"]["size_bytes"].as_u64().unwrap() > 0);
    assert_eq!(v["repository"]["drills"], 1);

    // A second source backed up 30 hours ago: stale against 26h.
    let b = dir_with_file(&t, "beta");
    t.backup(&[&b], &["--time", &ago(30)]);
    let (code, v, stderr) = status(&t, &["--max-age", "26h"]);
    assert_eq!(code, 5, "{stderr}");
    assert_eq!(v["readiness"], "stale");
    let s = source(&v, "beta");
    assert_eq!(s["stale"], true);
    assert!(
        s["problems"][0]
            .as_str()
            .unwrap()
            .contains("over its RPO of 1d2h"),
        "{s}"
    );
    assert_eq!(source(&v, "alpha")["stale"], false);
    // The growth windows count the fresh snapshot in 24h and both in 7d.
    let r = &v["repository"];
    assert!(r["growth_7d_bytes"].as_u64().unwrap() > r["growth_24h_bytes"].as_u64().unwrap());
    // Text output says the same, and the exit code is the JSON's.
    let o = t.run(["status", "--max-age", "26h"]);
    assert_eq!(o.code, 5);
    assert!(o.out().contains("readiness: stale"), "{}", o.out());
}

#[test]
fn status_exits_six_for_every_drill_condition() {
    let t = TestRepo::new();
    let a = dir_with_file(&t, "alpha");
    let snap = t.backup(&[&a], &[])["snapshot_id"]
        .as_str()
        .unwrap()
        .to_string();
    // Never drilled.
    let (code, v, _) = status(&t, &["--drill-max-age", "7d"]);
    assert_eq!(code, 6);
    assert_eq!(v["readiness"], "drill_due");
    let problems = source(&v, "alpha")["problems"].to_string();
    assert!(problems.contains("never proven restorable"), "{problems}");
    // Without a drill limit nothing is due.
    assert_eq!(status(&t, &[]).0, 0);

    // Drilled ten days ago: too old for 7d, fine for 14d.
    drill_at(&t, &snap, &ago(240));
    let (code, v, _) = status(&t, &["--drill-max-age", "7d"]);
    assert_eq!(code, 6);
    assert!(
        source(&v, "alpha")["problems"][0]
            .as_str()
            .unwrap()
            .ends_with("over the limit of 7d")
            && source(&v, "alpha")["problems"][0]
                .as_str()
                .unwrap()
                // "10d", or "10d1s" when a second ticked over since the drill.
                .starts_with("last successful drill is 10d"),
        "{v}"
    );
    assert_eq!(status(&t, &["--drill-max-age", "14d"]).0, 0);

    // The newest drill failed (a corrupted pack): due, though an older one passed.
    let packs = t.objects(lifeboat_format::layout::Folder::Data);
    let keep: Vec<(PathBuf, Vec<u8>)> = packs
        .iter()
        .map(|p| (p.clone(), fs::read(p).unwrap()))
        .collect();
    for (p, b) in &keep {
        let mut c = b.clone();
        c[100] ^= 1;
        fs::write(p, c).unwrap();
    }
    let scratch = t.scratch("scratch");
    let o = t.run(["drill", &snap, "--scratch", scratch.to_str().unwrap()]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    for (p, b) in &keep {
        fs::write(p, b).unwrap();
    }
    let (code, v, _) = status(&t, &["--drill-max-age", "14d"]);
    assert_eq!(code, 6);
    let s = source(&v, "alpha");
    assert_eq!(s["last_drill"]["ok"], false);
    assert_eq!(s["last_successful_drill"]["ok"], true);
    assert!(
        s["problems"].to_string().contains("the newest drill"),
        "{s}"
    );

    // A passing drill now (after the failed one, to the nanosecond), but
    // slower than an RTO of zero seconds.
    t.run(["drill", &snap, "--scratch", scratch.to_str().unwrap()])
        .ok("drill");
    assert_eq!(status(&t, &["--drill-max-age", "14d"]).0, 0);
    let policy = t.scratch("policy").join("lifeboat.toml");
    fs::write(
        &policy,
        "default_tier = \"instant\"\n[tiers.instant]\nrto = 0\ndrill_every = \"14d\"\n",
    )
    .unwrap();
    let (code, v, _) = status(&t, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(code, 6);
    let s = source(&v, "alpha");
    assert_eq!(s["tier"], "instant");
    assert_eq!(s["rto_secs"], 0);
    assert!(
        s["problems"].to_string().contains("over its RTO of 0s"),
        "{s}"
    );
}

#[test]
fn status_follows_the_policy_exits_seven_and_writes_metrics_that_parse() {
    let t = TestRepo::new();
    // A path with a quote and a backslash, to exercise label escaping.
    let odd = t.scratch("we\"ird\\dir");
    fs::write(odd.join("f"), b"x").unwrap();
    let etcd = dir_with_file(&t, "etcd-like");
    t.backup(&[&odd], &["--time", &ago(2)]);
    t.backup(&[&etcd], &["--tag", "etcd", "--time", &ago(3)]);
    let policy_path = t.scratch("policy").join("lifeboat.toml");
    let policy = r#"# tiers after the runbooks' tables
default_tier = "tier3"

[tiers.tier0]
rpo = "1h"
rto = "15m"
drill_every = "7d"

[tiers.tier3]
rpo = "24h"
rto = "24h"
drill_every = "90d"

[[sources]]
name = "control-plane"
tags = ["etcd"]
tier = "tier0"

[[sources]]
name = "never-backed-up"
host = "ghost"
paths = ["/var/lib/ghost"]
tier = "tier3"
"#;
    fs::write(&policy_path, policy).unwrap();
    let prom = t.scratch("textfile").join("lifeboat.prom");
    let (code, v, stderr) = status(
        &t,
        &[
            "--policy",
            policy_path.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    );
    // control-plane: 3h old against 1h (stale) and never drilled; the
    // ghost has no snapshot; the odd path is tier 3 and undrilled.
    assert_eq!(code, 7, "{stderr}");
    assert_eq!(v["readiness"], "stale_and_drill_due");
    let cp = source(&v, "control-plane");
    assert_eq!(cp["tier"], "tier0");
    assert_eq!(cp["rpo_secs"], 3600);
    assert_eq!(cp["stale"], true);
    assert_eq!(cp["drill_problem"], true);
    let ghost = source(&v, "never-backed-up");
    assert_eq!(ghost["snapshots"], 0);
    assert!(ghost["last_snapshot"].is_null());
    assert_eq!(ghost["problems"][0], "no snapshot");
    let odd_s = source(&v, "ird");
    assert_eq!(odd_s["tier"], "tier3");
    assert_eq!(odd_s["stale"], false);

    // The metrics file: written whole (no temporary left), and strict-parsable.
    let names: Vec<String> = fs::read_dir(prom.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["lifeboat.prom"]);
    let text = fs::read_to_string(&prom).unwrap();
    let fams = parse_prometheus(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    for f in fams.values() {
        assert_eq!(f.kind.as_deref(), Some("gauge"));
        assert!(f.help.as_deref().is_some_and(|h| !h.is_empty()));
    }
    let value = |fam: &str, source: &str| -> f64 {
        fams[fam]
            .samples
            .iter()
            .find(|(l, _)| l["source"] == source)
            .unwrap_or_else(|| panic!("{fam} has no {source}"))
            .1
    };
    assert_eq!(value("lifeboat_source_stale", "control-plane"), 1.0);
    assert_eq!(value("lifeboat_source_stale", "never-backed-up"), 1.0);
    assert_eq!(value("lifeboat_source_drill_problem", "control-plane"), 1.0);
    assert_eq!(value("lifeboat_rpo_seconds", "control-plane"), 3600.0);
    assert_eq!(value("lifeboat_rto_target_seconds", "control-plane"), 900.0);
    let age = value("lifeboat_last_snapshot_age_seconds", "control-plane");
    assert!((3.0 * 3600.0..3.0 * 3600.0 + 600.0).contains(&age), "{age}");
    // The odd path comes back exactly through the escaping.
    let odd_label = odd.to_str().unwrap();
    assert!(
        fams["lifeboat_source_stale"]
            .samples
            .iter()
            .any(|(l, v)| l["paths"] == odd_label && *v == 0.0),
        "{text}"
    );
    let size = &fams["lifeboat_repository_size_bytes"].samples[0];
    assert_eq!(size.0["repository"], t.path.to_str().unwrap());
    assert_eq!(size.1, v["repository"]["size_bytes"].as_f64().unwrap());
    let windows: BTreeSet<&str> = fams["lifeboat_repository_growth_bytes"]
        .samples
        .iter()
        .map(|(l, _)| l["window"].as_str())
        .collect();
    assert_eq!(windows, BTreeSet::from(["24h", "7d"]));

    // Drilled and backed up afresh: only the ghost (no snapshot, so no
    // drill either) keeps it from ready, and the metrics file is replaced.
    let scratch = t.scratch("scratch");
    t.backup(&[&etcd], &["--tag", "etcd"]);
    t.run([
        "drill",
        "latest",
        "--latest-per-source",
        "--scratch",
        scratch.to_str().unwrap(),
    ])
    .fails(
        "a snapshot and --latest-per-source",
        2,
        &["cannot be used with"],
    );
    t.run([
        "drill",
        "--latest-per-source",
        "--scratch",
        scratch.to_str().unwrap(),
    ])
    .ok("drill --latest-per-source");
    let (code, v, _) = status(
        &t,
        &[
            "--policy",
            policy_path.to_str().unwrap(),
            "--prometheus",
            prom.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 7, "{v}");
    for s in v["sources"].as_array().unwrap() {
        let ghost = s["source"] == "never-backed-up";
        assert_eq!(s["problems"].as_array().unwrap().is_empty(), !ghost, "{s}");
    }
    let fams = parse_prometheus(&fs::read_to_string(&prom).unwrap()).unwrap();
    assert_eq!(
        fams["lifeboat_last_drill_success"]
            .samples
            .iter()
            .filter(|(_, v)| *v == 1.0)
            .count(),
        2
    );
}

#[test]
fn status_groups_by_tags_and_refuses_a_broken_policy() {
    let t = TestRepo::new();
    let a = dir_with_file(&t, "alpha");
    t.backup(&[&a], &["--tag", "x"]);
    t.backup(&[&a], &["--tag", "y"]);
    let (_, v, _) = status(&t, &[]);
    assert_eq!(v["sources"].as_array().unwrap().len(), 1);
    let (_, v, _) = status(&t, &["--group-by", "host,paths,tags"]);
    assert_eq!(v["sources"].as_array().unwrap().len(), 2);

    let bad = t.scratch("policy").join("lifeboat.toml");
    fs::write(&bad, "[tiers.a]\nrpo = \"15 minutes\"\n").unwrap();
    let o = t.run(["status", "--policy", bad.to_str().unwrap()]);
    o.fails(
        "a broken policy",
        1,
        &["lifeboat.toml: line 2", "unknown unit"],
    );
    let o = t.run(["status", "--max-age", "soon"]);
    assert_eq!(o.code, 2, "clap refuses a bad duration: {}", o.stderr);
    let missing = Path::new("/nonexistent/lifeboat.toml");
    t.run(["status", "--policy", missing.to_str().unwrap()])
        .fails("a missing policy", 1, &["cannot read"]);
}
