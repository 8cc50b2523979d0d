//! Prune benchmark: Lifeboat's `forget --keep-last 1 --prune` against
//! restic's on the same history of a real file tree.
//!
//! ```text
//! prune_bench --work DIR --version DIR --version DIR [--version DIR ...]
//!             --lifeboat BIN [--restic BIN] [--runs 3] [--warm-mib 1024]
//!             [--out FILE.json]
//! ```
//!
//! Setup, once (kept under `DIR/pristine` and reused by later runs): each
//! `--version` directory in turn is hard-linked to `DIR/tree` and backed up
//! by both tools, so both repositories hold one snapshot per version of the
//! same path; then both tools' repositories and caches are kept as they are.
//! Each timed run copies a tool's pristine repository and cache to
//! `DIR/run` and times `forget --keep-last 1 --prune` there (Lifeboat with
//! `--instant-delete`, so that it deletes in the run as restic does), under
//! `/usr/bin/time` for the peak RSS. The tools take turns (the first tool
//! alternates between runs); the median time and the highest peak RSS are
//! reported. After the last run both repositories are checked (`check`).
//! Described, with results, in docs/benchmarks.md ("Prune").

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

const PASSWORD: &str = "lifeboat-bench";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tool {
    Lifeboat,
    Restic,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Lifeboat => "lifeboat",
            Tool::Restic => "restic",
        }
    }
}

/// One timed command.
#[derive(Clone, Copy, Default)]
struct Measure {
    secs: f64,
    rss_kb: u64,
}

struct Bench {
    lifeboat: PathBuf,
    restic: Option<PathBuf>,
    work: PathBuf,
    versions: Vec<PathBuf>,
    runs: usize,
    warm_mib: usize,
}

fn dir_size(p: &Path) -> u64 {
    let Ok(md) = fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| dir_size(&e.path())).sum())
            .unwrap_or(0)
    } else if md.is_file() {
        md.len()
    } else {
        0
    }
}

fn count_files(p: &Path) -> u64 {
    let Ok(md) = fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        fs::read_dir(p)
            .map(|rd| rd.flatten().map(|e| count_files(&e.path())).sum())
            .unwrap_or(0)
    } else {
        u64::from(md.is_file())
    }
}

/// `cp -a` (or `cp -al` with `link`), failing if it does.
fn copy_tree(from: &Path, to: &Path, link: bool) -> Result<()> {
    if to.exists() {
        fs::remove_dir_all(to).with_context(|| format!("removing {}", to.display()))?;
    }
    let st = Command::new("cp")
        .arg(if link { "-al" } else { "-a" })
        .arg(from)
        .arg(to)
        .status()?;
    if !st.success() {
        bail!("cp {} {} failed", from.display(), to.display());
    }
    Ok(())
}

/// Write back dirty pages and touch `warm_mib` of anonymous memory, so that
/// each timed command starts from the same kernel state (see
/// benches/src/main.rs, `settle`).
fn settle(warm_mib: usize) {
    let _ = Command::new("sync").status();
    if warm_mib > 0 {
        let mut v: Vec<u8> = Vec::with_capacity(warm_mib << 20);
        v.resize(warm_mib << 20, 1);
        std::hint::black_box(&v);
    }
}

fn median(ms: &[Measure]) -> Measure {
    let mut secs: Vec<f64> = ms.iter().map(|m| m.secs).collect();
    secs.sort_by(|a, b| a.total_cmp(b));
    Measure {
        secs: secs.get(secs.len() / 2).copied().unwrap_or_default(),
        rss_kb: ms.iter().map(|m| m.rss_kb).max().unwrap_or_default(),
    }
}

impl Bench {
    fn bin(&self, tool: Tool) -> &Path {
        match tool {
            Tool::Lifeboat => &self.lifeboat,
            Tool::Restic => self.restic.as_deref().unwrap_or(Path::new("restic")),
        }
    }

    fn tools(&self) -> Vec<Tool> {
        let mut t = vec![Tool::Lifeboat];
        if self.restic.is_some() {
            t.push(Tool::Restic);
        }
        t
    }

    /// Run `tool -r DIR/repo args` with its cache in `DIR/cache`, under
    /// /usr/bin/time; fails if the tool does. Returns the measure and stdout.
    fn run(&self, tool: Tool, dir: &Path, args: &[&str]) -> Result<(Measure, String)> {
        let stats = self.work.join("time.out");
        let t = Instant::now();
        let out = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&stats)
            .arg(self.bin(tool))
            .arg("-r")
            .arg(dir.join("repo"))
            .args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("RESTIC_PASSWORD", PASSWORD)
            .env("XDG_CACHE_HOME", dir.join("cache"))
            .env_remove("LIFEBOAT_REPOSITORY")
            .env_remove("RESTIC_REPOSITORY")
            .env_remove("LIFEBOAT_CACHE_DIR")
            .env_remove("RESTIC_CACHE_DIR")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {}", tool.name()))?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!(
                "{} {:?} failed: {}{}",
                tool.name(),
                args,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let rss_kb = fs::read_to_string(&stats)?
            .lines()
            .last()
            .unwrap_or("0")
            .trim()
            .parse()
            .unwrap_or(0);
        Ok((
            Measure { secs, rss_kb },
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    fn pristine(&self, tool: Tool) -> PathBuf {
        self.work.join("pristine").join(tool.name())
    }

    /// Back up every version with both tools, unless a previous setup is
    /// there. Returns the setup's record.
    fn setup(&self) -> Result<serde_json::Value> {
        let record = self.work.join("pristine").join("setup.json");
        if let Ok(s) = fs::read_to_string(&record) {
            eprintln!("reusing {}", record.display());
            return Ok(serde_json::from_str(&s)?);
        }
        let _ = fs::remove_dir_all(self.work.join("pristine"));
        for tool in self.tools() {
            let dir = self.pristine(tool);
            fs::create_dir_all(dir.join("cache"))?;
            self.run(tool, &dir, &["init"])?;
        }
        let tree = self.work.join("tree");
        let tree_arg = tree.to_str().context("work path is not UTF-8")?;
        let mut backups = Vec::new();
        for v in &self.versions {
            copy_tree(v, &tree, true)?;
            let mut row = json!({
                "version": v.display().to_string(),
                "bytes": dir_size(&tree),
                "files": count_files(&tree),
            });
            for tool in self.tools() {
                settle(self.warm_mib);
                let (m, _) = self.run(tool, &self.pristine(tool), &["backup", "-q", tree_arg])?;
                eprintln!(
                    "backup of {} with {}: {:.1} s, {} MiB",
                    v.display(),
                    tool.name(),
                    m.secs,
                    m.rss_kb / 1024
                );
                row[tool.name()] = json!({ "seconds": m.secs, "peak_rss_kib": m.rss_kb });
            }
            backups.push(row);
            // Snapshot times one second apart at least, for both tools.
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        fs::remove_dir_all(&tree)?;
        let mut sizes = json!({});
        for tool in self.tools() {
            let repo = self.pristine(tool).join("repo");
            sizes[tool.name()] = json!({
                "bytes": dir_size(&repo),
                "files": count_files(&repo),
            });
        }
        let v = json!({ "backups": backups, "before": sizes });
        fs::write(&record, serde_json::to_string_pretty(&v)?)?;
        Ok(v)
    }

    fn prune_args(tool: Tool) -> Vec<&'static str> {
        match tool {
            Tool::Lifeboat => vec!["forget", "--keep-last", "1", "--prune", "--instant-delete"],
            Tool::Restic => vec!["forget", "--keep-last", "1", "--prune"],
        }
    }

    fn check(&self, tool: Tool, dir: &Path) -> Result<f64> {
        let (m, _) = self.run(tool, dir, &["check"])?;
        Ok(m.secs)
    }
}

fn usage() -> &'static str {
    "usage: prune_bench --work DIR --version DIR --version DIR [--version DIR ...] \
     --lifeboat BIN [--restic BIN] [--runs N] [--warm-mib N] [--out FILE.json]"
}

fn main() -> Result<()> {
    let mut work = None;
    let mut lifeboat = None;
    let mut restic = None;
    let mut versions = Vec::new();
    let mut runs = 3usize;
    let mut warm_mib = 1024usize;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--work" => work = Some(PathBuf::from(val()?)),
            "--lifeboat" => lifeboat = Some(PathBuf::from(val()?)),
            "--restic" => restic = Some(PathBuf::from(val()?)),
            "--version" => versions.push(fs::canonicalize(val()?)?),
            "--runs" => runs = val()?.parse().context("--runs")?,
            "--warm-mib" => warm_mib = val()?.parse().context("--warm-mib")?,
            "--out" => out = Some(PathBuf::from(val()?)),
            _ => bail!("{}", usage()),
        }
    }
    let (Some(work), Some(lifeboat)) = (work, lifeboat) else {
        bail!("{}", usage());
    };
    if versions.len() < 2 {
        bail!("give at least two --version trees\n{}", usage());
    }
    fs::create_dir_all(&work)?;
    let b = Bench {
        lifeboat: fs::canonicalize(lifeboat)?,
        restic,
        work: fs::canonicalize(work)?,
        versions,
        runs: runs.max(1),
        warm_mib,
    };
    let setup = b.setup()?;
    let run_dir = b.work.join("run");
    let mut measures: Vec<(Tool, Vec<Measure>)> = b.tools().iter().map(|t| (*t, vec![])).collect();
    let mut after = json!({});
    let mut checks = json!({});
    for r in 0..b.runs {
        let mut order = b.tools();
        if r % 2 == 1 {
            order.reverse();
        }
        for tool in order {
            copy_tree(&b.pristine(tool), &run_dir, false)?;
            settle(b.warm_mib);
            let (m, _) = b.run(tool, &run_dir, &Bench::prune_args(tool))?;
            eprintln!(
                "run {r}: {} forget --prune: {:.2} s, {} MiB",
                tool.name(),
                m.secs,
                m.rss_kb / 1024
            );
            if let Some((_, v)) = measures.iter_mut().find(|(t, _)| *t == tool) {
                v.push(m);
            }
            let repo = run_dir.join("repo");
            after[tool.name()] = json!({
                "bytes": dir_size(&repo),
                "files": count_files(&repo),
            });
            if r + 1 == b.runs {
                let secs = b.check(tool, &run_dir)?;
                eprintln!("{} check after prune: ok ({secs:.1} s)", tool.name());
                checks[tool.name()] = json!({ "ok": true, "seconds": secs });
            }
            fs::remove_dir_all(&run_dir)?;
        }
    }
    let med: Vec<(Tool, Measure)> = measures.iter().map(|(t, v)| (*t, median(v))).collect();
    let get = |t: Tool| med.iter().find(|(x, _)| *x == t).map(|(_, m)| *m);
    let mib = |b: &serde_json::Value| b.as_u64().unwrap_or(0) as f64 / (1 << 20) as f64;
    println!(
        "| tool | forget --prune (median of {}) | peak RSS | repository before | after |",
        b.runs
    );
    println!("|---|---|---|---|---|");
    for (t, m) in &med {
        println!(
            "| {} | {:.2} s | {:.0} MiB | {:.0} MiB | {:.0} MiB |",
            t.name(),
            m.secs,
            m.rss_kb as f64 / 1024.0,
            mib(&setup["before"][t.name()]["bytes"]),
            mib(&after[t.name()]["bytes"]),
        );
    }
    let ratio = match (get(Tool::Lifeboat), get(Tool::Restic)) {
        (Some(l), Some(r)) => Some(r.secs / l.secs.max(1e-6)),
        _ => None,
    };
    if let Some(x) = ratio {
        println!("\nrestic time / Lifeboat time: {x:.2}");
    }
    let result = json!({
        "setup": setup,
        "runs": measures.iter().map(|(t, v)| json!({
            "tool": t.name(),
            "seconds": v.iter().map(|m| m.secs).collect::<Vec<_>>(),
            "peak_rss_kib": v.iter().map(|m| m.rss_kb).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "median": med.iter().map(|(t, m)| json!({
            "tool": t.name(), "seconds": m.secs, "peak_rss_kib": m.rss_kb,
        })).collect::<Vec<_>>(),
        "after": after,
        "check": checks,
        "restic_over_lifeboat": ratio,
    });
    if let Some(p) = out {
        fs::write(&p, serde_json::to_string_pretty(&result)?)?;
    }
    Ok(())
}
