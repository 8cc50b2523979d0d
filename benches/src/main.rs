//! Dataset benchmark harness: Lifeboat and restic side by side.
//!
//! Generates reproducible datasets (or takes a real tree), then times, for
//! each tool in the same run: a cold backup, an incremental backup after
//! the dataset's churn, a restore (checked byte-identical), and a full
//! `check --read-data`. Peak resident memory comes from `/usr/bin/time`.
//! Every step runs `--runs` times (3) per tool, the tools taking turns,
//! and the median time is reported.
//! Prints a markdown table and writes JSON and an SVG plot.
//!
//! ```text
//! cargo build --release -p lifeboat-cli -p lifeboat-bench
//! target/release/lifeboat-bench --work /var/tmp/lb-bench \
//!     --datasets mixed,ext4,bbolt --tree ~/.rustup/toolchains/stable-x86_64-unknown-linux-gnu
//! ```
//!
//! Streams (`bbolt`, and `ext4-stdin`: the ext4 image on standard input
//! instead of as a path) are given to both tools as a regular file on
//! standard input (`< file`), as a pipe (`cat file |`), or each in turn:
//! `--stdin-via file,pipe`. `--backup-only` times only the two backups.
//! See `docs/benchmarks.md` and `scripts/bench.sh`.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

const PASSWORD: &str = "lifeboat-bench";

/// Deterministic pseudo-random numbers (xorshift*).
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng((seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

const WORDS: &[&str] = &[
    "volume",
    "cluster",
    "namespace",
    "pod",
    "lifeboat",
    "restore",
    "snapshot",
    "etcd",
    "leader",
    "replica",
    "kube",
    "system",
    "config",
    "secret",
    "deployment",
    "status",
    "ready",
    "true",
    "false",
    "node",
    "container",
    "image",
    "registry",
    "metadata",
    "labels",
    "app",
    "version",
    "storage",
    "class",
    "claim",
    "bound",
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "with",
];

/// Text-like bytes (compress about 4-6x with zstd).
fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        let w = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.extend_from_slice(w.as_bytes());
        match rng.below(12) {
            0 => out.push(b'\n'),
            1 => {
                let _ = write!(&mut ByteSink(&mut out), " {} ", rng.below(100_000));
            }
            _ => out.push(b' '),
        }
    }
    out.truncate(len);
    out
}

struct ByteSink<'a>(&'a mut Vec<u8>);
impl std::fmt::Write for ByteSink<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

fn random(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rng.fill(&mut v);
    v
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

/// Read everything under `p` once, so timings start with a warm cache.
fn warm(p: &Path) {
    let Ok(md) = fs::symlink_metadata(p) else {
        return;
    };
    if md.is_dir() {
        if let Ok(rd) = fs::read_dir(p) {
            for e in rd.flatten() {
                warm(&e.path());
            }
        }
    } else if md.is_file()
        && let Ok(mut f) = fs::File::open(p)
    {
        let mut buf = vec![0u8; 1 << 20];
        while matches!(f.read(&mut buf), Ok(n) if n > 0) {}
    }
}

/// What a dataset feeds the tools.
#[derive(Clone)]
enum Input {
    /// A directory tree.
    Tree(PathBuf),
    /// A file sent on standard input, stored under a name.
    Stream(PathBuf, String),
}

impl Input {
    fn path(&self) -> &Path {
        match self {
            Input::Tree(p) | Input::Stream(p, _) => p,
        }
    }
}

trait Dataset {
    fn name(&self) -> &'static str;
    fn describe(&self) -> String;
    /// Create the first version.
    fn generate(&self, dir: &Path) -> Result<Input>;
    /// Change it in place into the next version. `None`: the dataset is
    /// re-backed up unchanged.
    fn churn(&self, input: &Input, round: u64) -> Result<Option<String>>;
}

/// A tree of mixed compressible and incompressible files.
struct Mixed {
    mib: u64,
}

impl Dataset for Mixed {
    fn name(&self) -> &'static str {
        "mixed"
    }
    fn describe(&self) -> String {
        format!(
            "generated tree, {} MiB: 60% text-like, 40% random, files 1 KiB-64 MiB",
            self.mib
        )
    }
    fn generate(&self, dir: &Path) -> Result<Input> {
        let root = dir.join("mixed");
        let mut rng = Rng::new(1);
        let mut total = 0u64;
        let mut n = 0u64;
        while total < self.mib << 20 {
            let d = root.join(format!("d{:02}/e{:02}", n % 17, n % 5));
            fs::create_dir_all(&d)?;
            // Mostly small files, a few large ones.
            let len = match rng.below(100) {
                0..=69 => 1024 + rng.below(64 << 10),
                70..=94 => (64 << 10) + rng.below(4 << 20),
                _ => (4 << 20) + rng.below(60 << 20),
            } as usize;
            let data = if rng.below(10) < 6 {
                text(&mut rng, len)
            } else {
                random(&mut rng, len)
            };
            fs::write(d.join(format!("f{n:05}")), &data)?;
            total += len as u64;
            n += 1;
        }
        Ok(Input::Tree(root))
    }
    fn churn(&self, input: &Input, round: u64) -> Result<Option<String>> {
        // Rewrite part of 5% of the files, add a few, delete a few.
        let mut files = Vec::new();
        collect_files(input.path(), &mut files);
        files.sort();
        let mut rng = Rng::new(100 + round);
        let k = (files.len() / 20).max(1);
        for _ in 0..k {
            let f = &files[rng.below(files.len() as u64) as usize];
            let len = fs::metadata(f)?.len();
            let at = rng.below(len.max(1));
            let patch = random(&mut rng, 4096);
            fs::OpenOptions::new()
                .write(true)
                .open(f)?
                .write_at(&patch, at)?;
        }
        for i in 0..k / 4 {
            let _ = fs::remove_file(&files[(i * 7919) % files.len()]);
            fs::write(
                input.path().join(format!("d00/new-{round}-{i}")),
                text(&mut rng, 32 << 10),
            )?;
        }
        Ok(Some(format!(
            "4 KiB rewritten in {k} files (5%), {} files deleted, {} added",
            k / 4,
            k / 4
        )))
    }
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = fs::read_dir(p) {
        for e in rd.flatten() {
            let p = e.path();
            match e.file_type() {
                Ok(t) if t.is_dir() => collect_files(&p, out),
                Ok(t) if t.is_file() => out.push(p),
                _ => {}
            }
        }
    }
}

/// A raw ext4 image of a volume, churned in place.
struct Ext4 {
    mib: u64,
    /// Give the image on standard input rather than as a path.
    stream: bool,
}

impl Dataset for Ext4 {
    fn name(&self) -> &'static str {
        if self.stream {
            "ext4-image-stdin"
        } else {
            "ext4-image"
        }
    }
    fn describe(&self) -> String {
        format!(
            "2 GiB sparse ext4 image (mkfs.ext4 -d) holding {} MiB of mixed files",
            self.mib
        )
    }
    fn generate(&self, dir: &Path) -> Result<Input> {
        let content = Mixed { mib: self.mib }.generate(&dir.join("ext4-content"))?;
        let img_dir = dir.join("ext4");
        fs::create_dir_all(&img_dir)?;
        let img = img_dir.join("volume.img");
        fs::File::create(&img)?.set_len(2 << 30)?;
        let st = Command::new("mkfs.ext4")
            .args(["-q", "-F", "-d"])
            .arg(content.path())
            .arg(&img)
            .status()
            .context("mkfs.ext4 (e2fsprogs) is needed for the ext4 dataset")?;
        if !st.success() {
            bail!("mkfs.ext4 failed");
        }
        fs::remove_dir_all(dir.join("ext4-content"))?;
        if self.stream {
            return Ok(Input::Stream(img, "volume.img".into()));
        }
        Ok(Input::Tree(img_dir))
    }
    fn churn(&self, input: &Input, round: u64) -> Result<Option<String>> {
        // Overwrite 64 KiB in 5% of the image's non-zero MiBs, in place.
        let img = match input {
            Input::Tree(p) => p.join("volume.img"),
            Input::Stream(p, _) => p.clone(),
        };
        let f = fs::OpenOptions::new().read(true).write(true).open(&img)?;
        let len = f.metadata()?.len();
        let mut used = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        for mib in 0..len >> 20 {
            f.read_exact_at(&mut buf, mib << 20)?;
            if buf.iter().any(|&b| b != 0) {
                used.push(mib);
            }
        }
        let mut rng = Rng::new(200 + round);
        let k = (used.len() / 20).max(1);
        for _ in 0..k {
            let mib = used[rng.below(used.len() as u64) as usize];
            let at = (mib << 20) + (rng.below(16) << 16);
            f.write_all_at(&random(&mut rng, 64 << 10), at)?;
        }
        Ok(Some(format!(
            "64 KiB overwritten in {k} of {} used MiB (5%)",
            used.len()
        )))
    }
}

/// bbolt-like database snapshots (etcd), sent as streams.
struct Bbolt {
    mib: u64,
}

const PAGE: usize = 4096;

fn bbolt_page(rng: &mut Rng, id: u64) -> Vec<u8> {
    let mut p = Vec::with_capacity(PAGE);
    p.extend_from_slice(&id.to_le_bytes());
    p.extend_from_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0]);
    while p.len() < PAGE {
        let _ = write!(
            &mut ByteSink(&mut p),
            "/registry/pods/ns-{}/pod-{:08x}{{\"uid\":\"{:016x}\",\"rv\":{},\"phase\":\"Running\"}}",
            rng.below(40),
            rng.next() as u32,
            rng.next(),
            rng.below(1 << 30)
        );
    }
    p.truncate(PAGE);
    p
}

impl Dataset for Bbolt {
    fn name(&self) -> &'static str {
        "bbolt-snapshots"
    }
    fn describe(&self) -> String {
        format!(
            "{} MiB bbolt-like database of 4 KiB pages, backed up as a stream (etcd snapshot)",
            self.mib
        )
    }
    fn generate(&self, dir: &Path) -> Result<Input> {
        let d = dir.join("bbolt");
        fs::create_dir_all(&d)?;
        let db = d.join("etcd-snapshot.db");
        let mut f = std::io::BufWriter::new(fs::File::create(&db)?);
        let mut rng = Rng::new(3);
        for id in 0..(self.mib << 20) / PAGE as u64 {
            f.write_all(&bbolt_page(&mut rng, id))?;
        }
        f.flush()?;
        Ok(Input::Stream(db, "etcd-snapshot.db".into()))
    }
    fn churn(&self, input: &Input, round: u64) -> Result<Option<String>> {
        // Rewrite 5% of pages in place and append 1% new ones.
        let f = fs::OpenOptions::new().write(true).open(input.path())?;
        let pages = f.metadata()?.len() / PAGE as u64;
        let mut rng = Rng::new(300 + round);
        let k = pages / 20;
        for _ in 0..k {
            let id = rng.below(pages);
            f.write_all_at(&bbolt_page(&mut rng, id), id * PAGE as u64)?;
        }
        for id in pages..pages + pages / 100 {
            f.write_all_at(&bbolt_page(&mut rng, id), id * PAGE as u64)?;
        }
        Ok(Some(format!(
            "{k} of {pages} pages rewritten (5%), {} appended",
            pages / 100
        )))
    }
}

/// A real tree given on the command line, re-backed up unchanged.
struct RealTree {
    path: PathBuf,
}

impl Dataset for RealTree {
    fn name(&self) -> &'static str {
        "real-tree"
    }
    fn describe(&self) -> String {
        format!("real file tree {}", self.path.display())
    }
    fn generate(&self, _dir: &Path) -> Result<Input> {
        Ok(Input::Tree(self.path.clone()))
    }
    fn churn(&self, _input: &Input, _round: u64) -> Result<Option<String>> {
        Ok(None)
    }
}

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

struct Runner {
    lifeboat: PathBuf,
    restic: Option<PathBuf>,
    time: PathBuf,
    work: PathBuf,
    /// Times each step is run per tool (the median is reported).
    runs: usize,
    /// MiB of memory touched before each timed command, see [`settle`].
    warm_mib: usize,
    /// Leave the generated data and the repositories in place.
    keep: bool,
    /// Time only the cold and the incremental backup.
    backup_only: bool,
}

/// How a stream reaches a tool's standard input.
#[derive(Clone, Copy, PartialEq, Eq)]
enum StdinVia {
    /// `< file`: a regular file.
    File,
    /// `cat file |`: a pipe.
    Pipe,
}

impl StdinVia {
    fn name(self) -> &'static str {
        match self {
            StdinVia::File => "file",
            StdinVia::Pipe => "pipe",
        }
    }
}

/// One timed step.
#[derive(Clone, Copy, Default)]
struct Measure {
    secs: f64,
    rss_kb: u64,
    /// Minor page faults.
    minor_faults: u64,
}

impl Runner {
    fn bin(&self, tool: Tool) -> &Path {
        match tool {
            Tool::Lifeboat => &self.lifeboat,
            Tool::Restic => self.restic.as_deref().unwrap_or(Path::new("restic")),
        }
    }

    /// Run `tool args` under /usr/bin/time; fails if the tool does.
    fn run(
        &self,
        tool: Tool,
        repo: &Path,
        args: &[&str],
        stdin: Option<(&Path, StdinVia)>,
    ) -> Result<Measure> {
        let stats = self.work.join("time.out");
        let mut c = Command::new(&self.time);
        c.arg("-f")
            .arg("%M %R")
            .arg("-o")
            .arg(&stats)
            .arg(self.bin(tool))
            .arg("-r")
            .arg(repo)
            .args(args)
            .env("LIFEBOAT_PASSWORD", PASSWORD)
            .env("RESTIC_PASSWORD", PASSWORD)
            .env_remove("LIFEBOAT_REPOSITORY")
            .env_remove("RESTIC_REPOSITORY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let t = Instant::now();
        let mut cat = None;
        match stdin {
            Some((f, StdinVia::File)) => {
                c.stdin(fs::File::open(f)?);
            }
            Some((f, StdinVia::Pipe)) => {
                let mut child = Command::new("cat")
                    .arg(f)
                    .stdout(Stdio::piped())
                    .spawn()
                    .context("running cat")?;
                c.stdin(Stdio::from(child.stdout.take().context("cat's output")?));
                cat = Some(child);
            }
            None => {}
        }
        let out = c
            .output()
            .with_context(|| format!("running {}", tool.name()))?;
        let secs = t.elapsed().as_secs_f64();
        if let Some(mut cat) = cat
            && !cat.wait()?.success()
        {
            bail!("cat {:?} failed", stdin.map(|s| s.0));
        }
        if !out.status.success() {
            bail!(
                "{} {:?} failed: {}",
                tool.name(),
                args,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let stats = fs::read_to_string(&stats)?;
        let mut last = stats.lines().last().unwrap_or("0 0").split_whitespace();
        let mut num = || last.next().and_then(|v| v.parse().ok()).unwrap_or(0);
        let rss_kb = num();
        let minor_faults = num();
        Ok(Measure {
            secs,
            rss_kb,
            minor_faults,
        })
    }

    fn init(&self, tool: Tool, repo: &Path) -> Result<()> {
        let _ = fs::remove_dir_all(repo);
        self.run(tool, repo, &["init", "-q"], None).map(|_| ())
    }

    fn backup(&self, tool: Tool, repo: &Path, input: &Input, via: StdinVia) -> Result<Measure> {
        match input {
            Input::Tree(p) => {
                let p = p.to_str().context("dataset path is not UTF-8")?;
                self.run(tool, repo, &["backup", "-q", p], None)
            }
            Input::Stream(p, name) => self.run(
                tool,
                repo,
                &["backup", "-q", "--stdin", "--stdin-filename", name],
                Some((p, via)),
            ),
        }
    }

    fn restore(&self, tool: Tool, repo: &Path, target: &Path) -> Result<Measure> {
        let _ = fs::remove_dir_all(target);
        let t = target.to_str().context("target is not UTF-8")?;
        self.run(tool, repo, &["restore", "latest", "--target", t], None)
    }

    fn check(&self, tool: Tool, repo: &Path) -> Result<Measure> {
        self.run(tool, repo, &["check", "--read-data"], None)
    }
}

/// Where a restore put the input.
fn restored(target: &Path, input: &Input) -> PathBuf {
    match input {
        Input::Tree(p) => target.join(p.strip_prefix("/").unwrap_or(p)),
        Input::Stream(_, name) => target.join(name),
    }
}

fn same(a: &Path, b: &Path) -> Result<()> {
    let st = Command::new("diff")
        .args(["-r", "-q", "--no-dereference"])
        .arg(a)
        .arg(b)
        .stdout(Stdio::null())
        .status()?;
    if !st.success() {
        bail!("restore of {} is not byte-identical", a.display());
    }
    Ok(())
}

struct Row {
    dataset: String,
    step: &'static str,
    bytes: u64,
    lifeboat: Measure,
    restic: Option<Measure>,
}

struct Summary {
    dataset: String,
    description: String,
    churn: String,
    logical: u64,
    /// Snapshots in each repository.
    versions: usize,
    repo: Vec<(&'static str, u64)>,
}

fn mbs(bytes: u64, m: &Measure) -> f64 {
    bytes as f64 / 1e6 / m.secs.max(1e-6)
}

/// Runs of one step: the median time and the highest peak RSS.
fn median(ms: &[Measure]) -> Measure {
    let mut secs: Vec<f64> = ms.iter().map(|m| m.secs).collect();
    secs.sort_by(|a, b| a.total_cmp(b));
    Measure {
        secs: secs.get(secs.len() / 2).copied().unwrap_or_default(),
        rss_kb: ms.iter().map(|m| m.rss_kb).max().unwrap_or_default(),
        minor_faults: ms.iter().map(|m| m.minor_faults).max().unwrap_or_default(),
    }
}

/// Make the kernel's and the hypervisor's state the same before each timed
/// command, whichever tool ran before: write back dirty pages (so one
/// tool's writes are not flushed during the next one's run), then touch
/// `warm_mib` of anonymous memory and free it. On a VM, the first write to
/// a guest page costs a fault in the host: here `dd` of 2 GB into new page
/// cache took 4.4 s the first time and 0.44 s once the memory had been
/// used. Without this the tool that happens to run first on unused memory
/// pays it.
fn settle(warm_mib: usize) {
    let _ = Command::new("sync").status();
    if warm_mib > 0 {
        let mut v: Vec<u8> = Vec::with_capacity(warm_mib << 20);
        v.resize(warm_mib << 20, 1);
        std::hint::black_box(&v);
    }
}

fn bench_dataset(
    r: &Runner,
    ds: &dyn Dataset,
    via: StdinVia,
    rows: &mut Vec<Row>,
    sums: &mut Vec<Summary>,
) -> Result<()> {
    let data_dir = r.work.join("data");
    let input = ds.generate(&data_dir)?;
    let label = match input {
        Input::Stream(..) => format!("{} ({})", ds.name(), via.name()),
        Input::Tree(_) => ds.name().to_string(),
    };
    eprintln!("== {label}: {}", ds.describe());
    let tools: Vec<Tool> = if r.restic.is_some() {
        vec![Tool::Lifeboat, Tool::Restic]
    } else {
        vec![Tool::Lifeboat]
    };
    let runs = r.runs.max(1);
    let repo = |t: Tool| r.work.join(format!("repo-{}-{}", ds.name(), t.name()));
    // Each step runs `runs` times, the tools taking turns, so that a slow
    // moment of the machine hits both; the median time is kept.
    let mut push = |step: &'static str, bytes: u64, ms: Vec<Vec<Measure>>| {
        let med: Vec<Measure> = ms.iter().map(|m| median(m)).collect();
        eprintln!(
            "   {step}: {}",
            med.iter()
                .zip(&ms)
                .zip(&tools)
                .map(|((m, all), t)| format!(
                    "{} {:.2} s ({:.0} MB/s, {} MB RSS, {} minor faults; runs {})",
                    t.name(),
                    m.secs,
                    mbs(bytes, m),
                    m.rss_kb / 1024,
                    m.minor_faults,
                    all.iter()
                        .map(|x| format!("{:.2}", x.secs))
                        .collect::<Vec<_>>()
                        .join("/")
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        rows.push(Row {
            dataset: label.clone(),
            step,
            bytes,
            lifeboat: med[0],
            restic: med.get(1).copied(),
        });
    };

    let v1 = dir_size(input.path());
    let mut ms = vec![Vec::new(); tools.len()];
    for _ in 0..runs {
        for (i, &t) in tools.iter().enumerate() {
            r.init(t, &repo(t))?;
            warm(input.path());
            settle(r.warm_mib);
            ms[i].push(r.backup(t, &repo(t), &input, via)?);
        }
    }
    push("cold backup", v1, ms);

    // Each run churns the data again (a new round), then both tools back
    // up the same new version.
    let mut churn = None;
    let mut logical = v1;
    let mut v2 = v1;
    let mut ms = vec![Vec::new(); tools.len()];
    for round in 1..=runs as u64 {
        churn = ds.churn(&input, round)?;
        v2 = dir_size(input.path());
        logical += v2;
        for (i, &t) in tools.iter().enumerate() {
            warm(input.path());
            settle(r.warm_mib);
            ms[i].push(r.backup(t, &repo(t), &input, via)?);
        }
    }
    push(
        if churn.is_some() {
            "incremental backup"
        } else {
            "unchanged re-backup"
        },
        v2,
        ms,
    );

    if r.backup_only {
        sums.push(Summary {
            dataset: label,
            description: ds.describe(),
            churn: churn.unwrap_or_else(|| "none (same tree again)".into()),
            logical,
            versions: 1 + runs,
            repo: tools
                .iter()
                .map(|&t| (t.name(), dir_size(&repo(t))))
                .collect(),
        });
        for &t in &tools {
            let _ = fs::remove_dir_all(repo(t));
        }
        let _ = fs::remove_dir_all(&data_dir);
        return Ok(());
    }

    // Every restore goes to a new directory, and all are deleted at the
    // end: creating files just after deleting many is slow on ext4 (the
    // allocator skips recently freed inodes), and would slow whichever
    // tool came after a deletion.
    let mut ms = vec![Vec::new(); tools.len()];
    let mut targets = Vec::new();
    for run in 0..runs {
        for (i, &t) in tools.iter().enumerate() {
            let target = r.work.join(format!("restore-{}-{run}", t.name()));
            let _ = fs::remove_dir_all(&target);
            settle(r.warm_mib);
            ms[i].push(r.restore(t, &repo(t), &target)?);
            same(input.path(), &restored(&target, &input))?;
            targets.push(target);
        }
    }
    for t in &targets {
        let _ = fs::remove_dir_all(t);
    }
    push("restore", v2, ms);

    let sizes: Vec<(&'static str, u64)> = tools
        .iter()
        .map(|&t| (t.name(), dir_size(&repo(t))))
        .collect();
    let mut ms = vec![Vec::new(); tools.len()];
    for _ in 0..runs {
        for (i, &t) in tools.iter().enumerate() {
            settle(r.warm_mib);
            ms[i].push(r.check(t, &repo(t))?);
        }
    }
    let med: Vec<Measure> = ms.iter().map(|m| median(m)).collect();
    // Check throughput is over the repository's stored bytes.
    let check_bytes = sizes[0].1;
    rows.push(Row {
        dataset: label.clone(),
        step: "check --read-data",
        bytes: check_bytes,
        lifeboat: med[0],
        restic: med.get(1).copied(),
    });
    eprintln!(
        "   check --read-data: {}",
        med.iter()
            .zip(&ms)
            .zip(&tools)
            .zip(&sizes)
            .map(|(((m, all), t), (_, sz))| format!(
                "{} {:.2} s ({:.0} MB/s of a {:.0} MB repository; runs {})",
                t.name(),
                m.secs,
                mbs(*sz, m),
                *sz as f64 / 1e6,
                all.iter()
                    .map(|x| format!("{:.2}", x.secs))
                    .collect::<Vec<_>>()
                    .join("/")
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // The check row's restic throughput must be over restic's own repository.
    if let (Some(row), Some((_, rsz))) = (rows.last_mut(), sizes.get(1))
        && let Some(m) = row.restic.as_mut()
    {
        // Scale restic's time to lifeboat's byte count so one `bytes`
        // serves both: MB/s(restic) = rsz / secs.
        m.secs *= check_bytes as f64 / (*rsz).max(1) as f64;
    }
    sums.push(Summary {
        dataset: label,
        description: ds.describe(),
        churn: churn.unwrap_or_else(|| "none (same tree again)".into()),
        logical,
        versions: 1 + runs,
        repo: sizes,
    });
    if r.keep {
        eprintln!("   kept {} and the repositories", data_dir.display());
        return Ok(());
    }
    for &t in &tools {
        let _ = fs::remove_dir_all(repo(t));
    }
    if !matches!(input, Input::Tree(ref p) if !p.starts_with(&r.work)) {
        let _ = fs::remove_dir_all(&data_dir);
    }
    Ok(())
}

fn markdown(rows: &[Row], sums: &[Summary], restic: bool) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| dataset | step | lifeboat MB/s | lifeboat peak RSS MB |{}",
        if restic {
            " restic MB/s | restic peak RSS MB | speed ratio | time ratio (restic/lifeboat) |"
        } else {
            ""
        }
    );
    let _ = writeln!(
        s,
        "|---|---|---:|---:|{}",
        if restic { "---:|---:|---:|---:|" } else { "" }
    );
    for r in rows {
        let _ = write!(
            s,
            "| {} | {} | {:.0} | {} |",
            r.dataset,
            r.step,
            mbs(r.bytes, &r.lifeboat),
            r.lifeboat.rss_kb / 1024
        );
        if let Some(m) = &r.restic {
            let _ = write!(
                s,
                " {:.0} | {} | {:.2}x | {:.2}x |",
                mbs(r.bytes, m),
                m.rss_kb / 1024,
                mbs(r.bytes, &r.lifeboat) / mbs(r.bytes, m).max(1e-9),
                m.secs / r.lifeboat.secs.max(1e-9)
            );
        }
        s.push('\n');
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "| dataset | description | churn | snapshots | bytes backed up (all snapshots) | repository size | dedup+compression ratio |"
    );
    let _ = writeln!(s, "|---|---|---|---:|---:|---|---|");
    for m in sums {
        let sizes: Vec<String> = m
            .repo
            .iter()
            .map(|(t, b)| format!("{t} {:.1} MB", *b as f64 / 1e6))
            .collect();
        let ratios: Vec<String> = m
            .repo
            .iter()
            .map(|(t, b)| format!("{t} {:.2}", m.logical as f64 / (*b).max(1) as f64))
            .collect();
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} MB | {} | {} |",
            m.dataset,
            m.description,
            m.churn,
            m.versions,
            m.logical as f64 / 1e6,
            sizes.join(", "),
            ratios.join(", ")
        );
    }
    s
}

/// Horizontal grouped bars: MB/s per dataset and step, both tools.
fn svg(rows: &[Row]) -> String {
    let bar = 14.0;
    let group = bar * 2.0 + 10.0;
    let left = 260.0;
    let width = 900.0;
    let max = rows
        .iter()
        .flat_map(|r| {
            std::iter::once(mbs(r.bytes, &r.lifeboat))
                .chain(r.restic.iter().map(|m| mbs(r.bytes, m)))
        })
        .fold(1.0f64, f64::max);
    let scale = (width - left - 80.0) / max;
    let height = 60.0 + group * rows.len() as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r##"<text x="10" y="20" font-size="14">Throughput per step, MB/s (higher is better); 2 cores, local repository</text>
<rect x="{left}" y="30" width="12" height="12" fill="#1f77b4"/><text x="{}" y="41">lifeboat</text>
<rect x="{}" y="30" width="12" height="12" fill="#ff7f0e"/><text x="{}" y="41">restic 0.14</text>"##,
        left + 16.0,
        left + 100.0,
        left + 116.0
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 55.0 + group * i as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{} / {}</text>"#,
            left - 6.0,
            y + bar + 4.0,
            r.dataset,
            r.step
        );
        let bars = std::iter::once(("#1f77b4", mbs(r.bytes, &r.lifeboat)))
            .chain(r.restic.iter().map(|m| ("#ff7f0e", mbs(r.bytes, m))));
        for (j, (color, v)) in bars.enumerate() {
            let yy = y + bar * j as f64;
            let w = (v * scale).max(1.0);
            let _ = writeln!(
                s,
                r#"<rect x="{left}" y="{yy}" width="{w:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{:.1}">{v:.0}</text>"#,
                bar - 2.0,
                left + w + 4.0,
                yy + bar - 3.0
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn usage() -> &'static str {
    "usage: lifeboat-bench [--work DIR] [--datasets mixed,ext4,ext4-stdin,bbolt] [--size MIB] \
     [--tree PATH] [--lifeboat BIN] [--restic BIN|none] [--out PREFIX] [--runs N (3)] \
     [--warm-memory MIB (4096)] [--keep] [--stdin-via file,pipe (file)] [--backup-only]"
}

fn main() -> Result<()> {
    let mut work = std::env::temp_dir().join("lifeboat-bench");
    let mut datasets = "mixed,ext4,bbolt".to_string();
    let mut size = 1024u64;
    let mut tree: Option<PathBuf> = None;
    let exe_dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut lifeboat = exe_dir.join("lifeboat");
    let mut restic: Option<PathBuf> = Some(PathBuf::from("restic"));
    let mut out: Option<PathBuf> = None;
    let mut runs = 3usize;
    let mut warm_mib = 4096usize;
    let mut keep = false;
    let mut backup_only = false;
    let mut vias = vec![StdinVia::File];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .with_context(|| format!("{a} needs a value\n{}", usage()))
        };
        match a.as_str() {
            "--work" => work = PathBuf::from(val()?),
            "--datasets" => datasets = val()?,
            "--size" => size = val()?.parse()?,
            "--tree" => tree = Some(PathBuf::from(val()?)),
            "--lifeboat" => lifeboat = PathBuf::from(val()?),
            "--restic" => {
                let v = val()?;
                restic = (v != "none").then(|| PathBuf::from(v));
            }
            "--out" => out = Some(PathBuf::from(val()?)),
            "--runs" => runs = val()?.parse()?,
            "--warm-memory" => warm_mib = val()?.parse()?,
            "--keep" => keep = true,
            "--backup-only" => backup_only = true,
            "--stdin-via" => {
                vias = val()?
                    .split(',')
                    .map(|v| match v {
                        "file" => Ok(StdinVia::File),
                        "pipe" => Ok(StdinVia::Pipe),
                        other => bail!("unknown --stdin-via {other}: file or pipe"),
                    })
                    .collect::<Result<_>>()?;
            }
            "-h" | "--help" => {
                println!("{}", usage());
                return Ok(());
            }
            _ => bail!("unknown argument {a}\n{}", usage()),
        }
    }
    if !lifeboat.exists() {
        bail!(
            "{} not found: build it with `cargo build --release -p lifeboat-cli` or pass --lifeboat",
            lifeboat.display()
        );
    }
    if let Some(r) = &restic
        && Command::new(r).arg("version").output().is_err()
    {
        eprintln!(
            "restic not found ({}): measuring lifeboat alone",
            r.display()
        );
        restic = None;
    }
    let time = PathBuf::from("/usr/bin/time");
    if !time.exists() {
        bail!("/usr/bin/time is needed for peak RSS (Debian package `time`)");
    }
    fs::create_dir_all(&work)?;
    let runner = Runner {
        lifeboat,
        restic,
        time,
        work: work.clone(),
        runs,
        warm_mib,
        keep,
        backup_only,
    };
    let mut list: Vec<Box<dyn Dataset>> = Vec::new();
    if let Some(t) = tree {
        list.push(Box::new(RealTree {
            path: std::path::absolute(t)?,
        }));
    }
    for d in datasets.split(',').filter(|d| !d.is_empty()) {
        list.push(match d {
            "mixed" => Box::new(Mixed { mib: size }),
            "ext4" => Box::new(Ext4 {
                mib: size / 2,
                stream: false,
            }),
            "ext4-stdin" => Box::new(Ext4 {
                mib: size / 2,
                stream: true,
            }),
            "bbolt" => Box::new(Bbolt { mib: size }),
            other => bail!("unknown dataset {other}"),
        });
    }
    let mut rows = Vec::new();
    let mut sums = Vec::new();
    for d in &list {
        let streams = matches!(d.name(), "bbolt-snapshots" | "ext4-image-stdin");
        for &via in if streams { &vias[..] } else { &vias[..1] } {
            bench_dataset(&runner, d.as_ref(), via, &mut rows, &mut sums)?;
        }
    }
    let md = format!(
        "Each step ran {} times per tool, the tools taking turns; times are medians, peak RSS the highest of the runs.\n\n{}",
        runner.runs,
        markdown(&rows, &sums, runner.restic.is_some())
    );
    println!("{md}");
    let records: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "dataset": r.dataset, "step": r.step, "bytes": r.bytes,
                "lifeboat": {"secs": r.lifeboat.secs, "mb_per_s": mbs(r.bytes, &r.lifeboat), "peak_rss_kb": r.lifeboat.rss_kb, "minor_faults": r.lifeboat.minor_faults},
                "restic": r.restic.map(|m| json!({"secs": m.secs, "mb_per_s": mbs(r.bytes, &m), "peak_rss_kb": m.rss_kb, "minor_faults": m.minor_faults})),
            })
        })
        .collect();
    let summaries: Vec<serde_json::Value> = sums
        .iter()
        .map(|s| {
            json!({
                "dataset": s.dataset, "description": s.description, "churn": s.churn,
                "logical_bytes": s.logical, "snapshots": s.versions,
                "repository_bytes": s.repo.iter().map(|(t, b)| json!({"tool": t, "bytes": b})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let doc = json!({"runs": runner.runs, "statistic": "median time, highest peak RSS", "steps": records, "datasets": summaries});
    if let Some(prefix) = out {
        fs::write(
            prefix.with_extension("json"),
            serde_json::to_string_pretty(&doc)?,
        )?;
        fs::write(prefix.with_extension("md"), &md)?;
        fs::write(prefix.with_extension("svg"), svg(&rows))?;
        eprintln!("wrote {}.{{json,md,svg}}", prefix.display());
    } else {
        println!("{}", serde_json::to_string(&doc)?);
    }
    Ok(())
}
