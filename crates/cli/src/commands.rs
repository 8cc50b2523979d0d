//! One function per command.

use lifeboat_core::internals::RepositoryInternals as _;
use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use clap::CommandFactory;
use lifeboat::{
    BackupOptions, BackupSource, Id, InitOptions, KdfParams, Progress, Repository, RestoreOptions,
    Snapshot, SnapshotFilter,
};
use serde_json::json;

use crate::args::{CatKind, Cli, Command, Global, KdfArgs, KeyCommand, Shell, SnapshotFilterArgs};
use crate::copy_cmd;
use crate::exit;
use crate::output::{ProgressReporter, bytes, mode_string, node_json, print_json};
use crate::password;

fn location(g: &Global) -> Result<String> {
    g.repo
        .clone()
        .ok_or_else(|| anyhow!("no repository given: use -r/--repo or set LIFEBOAT_REPOSITORY"))
}

pub(crate) fn open_repo(g: &Global) -> Result<Repository> {
    let loc = location(g)?;
    let backend = copy_cmd::open_backend(g, &loc, false)?;
    let pw = password::get(g)?;
    // The index's local table lives under the same cache root as the
    // store's metadata cache (`--cache-dir`; none with `--no-cache`).
    Ok(Repository::open_with_cache(
        backend,
        &pw,
        copy_cmd::cache_root(g),
    )?)
}

pub(crate) fn filter(a: &SnapshotFilterArgs) -> SnapshotFilter {
    SnapshotFilter {
        hosts: a.hosts.clone(),
        paths: a.paths.clone(),
        tags: a
            .tags
            .iter()
            .map(|t| {
                t.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .collect(),
    }
}

fn kdf(a: &KdfArgs) -> KdfParams {
    KdfParams {
        memory_kib: a.kdf_memory_kib,
        iterations: a.kdf_iterations,
        parallelism: 1,
    }
}

fn snapshot_json(id: &Id, s: &Snapshot) -> serde_json::Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["id"] = json!(id.to_hex());
    v["short_id"] = json!(id.short());
    v
}

/// Run the parsed command; returns the exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let g = &cli.global;
    match &cli.command {
        Command::Init {
            kdf: k,
            compression,
            pack_size,
            copy_params,
            from,
        } => {
            let loc = location(g)?;
            let backend = copy_cmd::open_backend(g, &loc, true)?;
            let pw = password::get_new(g, None, true)?;
            let opts = InitOptions {
                kdf: kdf(k),
                compression_level: *compression,
                pack_size: pack_size.saturating_mul(1 << 20),
                ..Default::default()
            };
            let repo = if *copy_params {
                copy_cmd::init_with_params(g, from, backend, &pw, &opts)?
            } else {
                Repository::init(backend, &pw, &opts)?
            };
            let loc = repo.backend().location();
            if g.json {
                print_json(
                    &json!({"message_type": "initialized", "id": repo.config().id.to_hex(), "repository": loc}),
                );
            } else if !g.quiet {
                println!(
                    "created lifeboat repository {} at {loc}",
                    repo.config().id.short()
                );
                println!("Keep the password safe: without it the data cannot be recovered.");
            }
            Ok(exit::OK)
        }
        Command::Backup {
            paths,
            stdin,
            stdin_filename,
            tags,
            host,
            excludes,
            exclude_files,
            time,
            parent,
            force,
        } => {
            let mut excl = excludes.clone();
            for f in exclude_files {
                let text = std::fs::read_to_string(f)
                    .with_context(|| format!("reading exclude file {}", f.display()))?;
                excl.extend(
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string),
                );
            }
            if *stdin && !paths.is_empty() {
                bail!("--stdin and paths cannot be combined");
            }
            if !*stdin && paths.is_empty() {
                bail!("nothing to back up: give paths, or --stdin");
            }
            let repo = open_repo(g)?;
            let parent = match parent {
                Some(p) => Some(repo.find_snapshot(p, &SnapshotFilter::default())?.0),
                None => None,
            };
            let opts = BackupOptions {
                hostname: host.clone(),
                tags: tags.clone(),
                excludes: excl,
                time: time.clone(),
                threads: None,
                parent,
                force: *force,
                ..Default::default()
            };
            let progress = Arc::new(Progress::default());
            let reporter =
                ProgressReporter::start(progress.clone(), "backup", g.json, g.quiet, None);
            let mut input = std::io::stdin();
            let source = if *stdin {
                BackupSource::Stdin {
                    filename: stdin_filename.clone(),
                    reader: &mut input,
                }
            } else {
                BackupSource::Paths(paths.clone())
            };
            let res = repo.backup(source, &opts, &progress);
            reporter.finish();
            let report = res?;
            for e in &report.errors {
                eprintln!("lifeboat: warning: {}: {}", e.path, e.message);
            }
            let s = report.snapshot.summary.clone().unwrap_or_default();
            if g.json {
                print_json(&json!({
                    "message_type": "summary",
                    "snapshot_id": report.id.to_hex(),
                    "files_new": s.files_new, "files_changed": s.files_changed, "files_unchanged": s.files_unchanged,
                    "dirs": s.dirs, "bytes_total": s.bytes_total, "bytes_read": s.bytes_read, "bytes_added": s.bytes_added,
                    "bytes_stored": s.bytes_stored, "data_blobs": s.data_blobs, "tree_blobs": s.tree_blobs,
                    "duration_secs": s.duration_secs, "errors": report.errors,
                }));
            } else if !g.quiet {
                println!(
                    "Files: {} new, {} changed, {} unchanged; {} directories",
                    s.files_new, s.files_changed, s.files_unchanged, s.dirs
                );
                println!(
                    "Added to the repository: {} ({} stored)",
                    bytes(s.bytes_added),
                    bytes(s.bytes_stored)
                );
                println!(
                    "processed {} in {:.2}s ({}/s)",
                    bytes(s.bytes_read),
                    s.duration_secs,
                    bytes((s.bytes_read as f64 / s.duration_secs.max(0.001)) as u64)
                );
                println!("snapshot {} saved", report.id.short());
            }
            if report.is_complete() {
                Ok(exit::OK)
            } else {
                eprintln!(
                    "lifeboat: warning: {} entries could not be read; the snapshot is incomplete",
                    report.errors.len()
                );
                Ok(exit::INCOMPLETE)
            }
        }
        Command::Snapshots { filter: f } => {
            let repo = open_repo(g)?;
            let flt = filter(f);
            let snaps: Vec<(Id, Snapshot)> = repo
                .snapshots()?
                .into_iter()
                .filter(|(_, s)| flt.matches(s))
                .collect();
            if g.json {
                let v: Vec<_> = snaps.iter().map(|(id, s)| snapshot_json(id, s)).collect();
                print_json(&v);
            } else {
                println!(
                    "{:<10} {:<26} {:<16} {:<16} Paths",
                    "ID", "Time", "Host", "Tags"
                );
                for (id, s) in &snaps {
                    let time = s.time.get(..19).unwrap_or(&s.time).replace('T', " ");
                    println!(
                        "{:<10} {:<26} {:<16} {:<16} {}{}",
                        id.short(),
                        time,
                        s.hostname,
                        s.tags.join(","),
                        s.paths.join(" "),
                        if s.incomplete.is_empty() {
                            ""
                        } else {
                            " (incomplete)"
                        }
                    );
                }
                println!("{} snapshots", snaps.len());
            }
            Ok(exit::OK)
        }
        Command::Ls {
            snapshot,
            path,
            long,
            filter: f,
        } => {
            let repo = open_repo(g)?;
            let (id, snap) = repo.find_snapshot(snapshot, &filter(f))?;
            let prefix = path.as_deref().map(|p| p.trim_end_matches('/').to_string());
            if g.json {
                let mut v = snapshot_json(&id, &snap);
                v["message_type"] = json!("snapshot");
                print_json(&v);
            }
            let mut out = std::io::stdout().lock();
            repo.walk(&snap.tree, &mut |p, n| {
                let ps = p.display().to_string();
                if let Some(pre) = &prefix {
                    let inside = ps == *pre || ps.starts_with(&format!("{pre}/"));
                    let above = pre.starts_with(&format!("{ps}/"));
                    if !inside {
                        return Ok(above);
                    }
                }
                let r = if g.json {
                    let mut v = node_json(n, Some(&ps));
                    v["message_type"] = json!("node");
                    serde_json::to_writer(&mut out, &v)
                        .map_err(std::io::Error::other)
                        .and_then(|_| writeln!(out))
                } else if *long {
                    writeln!(
                        out,
                        "{} {:>8} {:>8} {:>12} {} {}",
                        mode_string(n),
                        n.user.clone().unwrap_or_else(|| n.uid.to_string()),
                        n.group.clone().unwrap_or_else(|| n.gid.to_string()),
                        n.size,
                        jiff::Timestamp::new(n.mtime.sec, 0)
                            .map(|t| t.to_string())
                            .unwrap_or_default(),
                        ps
                    )
                } else {
                    writeln!(out, "{ps}")
                };
                r.map_err(|e| lifeboat::Error::InvalidArgument(format!("writing output: {e}")))?;
                Ok(true)
            })?;
            Ok(exit::OK)
        }
        Command::Cat { kind, id } => {
            if matches!(kind, CatKind::Config) {
                let repo = open_repo(g)?;
                print_json(repo.config());
                return Ok(exit::OK);
            }
            let Some(id) = id else {
                bail!("cat {kind:?} needs an id");
            };
            let repo = open_repo(g)?;
            match kind {
                CatKind::Config => {}
                CatKind::Snapshot => {
                    let (sid, s) = repo.find_snapshot(id, &SnapshotFilter::default())?;
                    print_json(&snapshot_json(&sid, &s));
                }
                CatKind::Tree => {
                    let tid = resolve_tree(&repo, id)?;
                    let t = repo.load_tree(&tid)?;
                    let nodes: Vec<_> = t.nodes.iter().map(|n| node_json(n, None)).collect();
                    print_json(&json!({"id": tid.to_hex(), "version": t.version, "nodes": nodes}));
                }
                CatKind::Index => {
                    let path = resolve_object(&repo, "index/", id)?;
                    let bytes = repo.backend().get(&path)?;
                    let seg = lifeboat::format::IndexSegment::decode(repo.master_key(), &bytes)
                        .with_context(|| format!("decoding {path}"))?;
                    print_json(&seg);
                }
                CatKind::Key => {
                    let path = resolve_object(&repo, "keys/", id)?;
                    let bytes = repo.backend().get(&path)?;
                    let slot = lifeboat::format::KeySlot::from_json(&bytes)?;
                    print_json(&slot);
                }
            }
            Ok(exit::OK)
        }
        Command::Diff { a, b } => {
            let repo = open_repo(g)?;
            let none = SnapshotFilter::default();
            let (ia, sa) = repo.find_snapshot(a, &none)?;
            let (ib, sb) = repo.find_snapshot(b, &none)?;
            let d = repo.diff(&sa.tree, &sb.tree)?;
            if g.json {
                print_json(&json!({"from": ia.to_hex(), "to": ib.to_hex(), "changes": d}));
            } else {
                println!("comparing snapshot {} to {}:", ia.short(), ib.short());
                for e in &d {
                    let c = match e.change {
                        lifeboat::Change::Added => '+',
                        lifeboat::Change::Removed => '-',
                        lifeboat::Change::Modified => 'M',
                        lifeboat::Change::Metadata => 'U',
                        lifeboat::Change::TypeChanged => 'T',
                    };
                    println!("{c}    {}", e.path);
                }
                println!("{} changes", d.len());
            }
            Ok(exit::OK)
        }
        Command::Stats {
            snapshots,
            filter: f,
        } => {
            let repo = open_repo(g)?;
            let flt = filter(f);
            let snaps: Vec<Snapshot> = if snapshots.is_empty() {
                repo.snapshots()?
                    .into_iter()
                    .filter(|(_, s)| flt.matches(s))
                    .map(|(_, s)| s)
                    .collect()
            } else {
                snapshots
                    .iter()
                    .map(|s| repo.find_snapshot(s, &flt).map(|x| x.1))
                    .collect::<lifeboat::Result<_>>()?
            };
            let st = repo.stats(&snaps)?;
            let idx = repo.index();
            let repo_size: u64 = idx.packs().map(|(_, s)| s).sum();
            let packs = idx.pack_count();
            if g.json {
                let mut v = serde_json::to_value(&st)?;
                v["repository_packs"] = json!(packs);
                v["repository_size"] = json!(repo_size);
                v["repository_blobs"] = json!(idx.len());
                print_json(&v);
            } else {
                println!("Snapshots:          {}", st.snapshots);
                println!("Files:              {}", st.files);
                println!("Directories:        {}", st.dirs);
                println!("Restore size:       {}", bytes(st.restore_size));
                println!("Unique data blobs:  {}", st.unique_blobs);
                println!(
                    "Unique data size:   {} ({} stored)",
                    bytes(st.unique_raw_size),
                    bytes(st.unique_stored_size)
                );
                println!(
                    "Repository:         {} in {} packs, {} blobs",
                    bytes(repo_size),
                    packs,
                    idx.len()
                );
            }
            Ok(exit::OK)
        }
        Command::Restore {
            snapshot,
            target,
            includes,
            excludes,
            filter: f,
        } => {
            let repo = open_repo(g)?;
            let (id, snap) = repo.find_snapshot(snapshot, &filter(f))?;
            let total = snap.summary.as_ref().map(|s| s.bytes_total);
            let opts = RestoreOptions {
                target: target.clone(),
                includes: includes.clone(),
                excludes: excludes.clone(),
                threads: None,
            };
            let progress = Arc::new(Progress::default());
            let reporter =
                ProgressReporter::start(progress.clone(), "restore", g.json, g.quiet, total);
            let res = repo.restore(&snap, &opts, &progress);
            reporter.finish();
            let report = res?;
            for e in &report.errors {
                eprintln!("lifeboat: error: {}: {}", e.path, e.message);
            }
            if g.json {
                print_json(
                    &json!({"message_type": "summary", "snapshot_id": id.to_hex(), "files": report.files,
                    "dirs": report.dirs, "others": report.others, "bytes": report.bytes, "errors": report.errors}),
                );
            } else if !g.quiet {
                println!(
                    "restored snapshot {} to {}: {} files, {} directories, {} other entries, {}",
                    id.short(),
                    target.display(),
                    report.files,
                    report.dirs,
                    report.others,
                    bytes(report.bytes)
                );
            }
            if report.errors.is_empty() {
                Ok(exit::OK)
            } else {
                eprintln!(
                    "lifeboat: {} entries were not restored correctly",
                    report.errors.len()
                );
                Ok(exit::ERROR)
            }
        }
        Command::Dump {
            snapshot,
            path,
            filter: f,
        } => {
            let repo = open_repo(g)?;
            let (_, snap) = repo.find_snapshot(snapshot, &filter(f))?;
            let p = if path.starts_with('/') {
                path.clone()
            } else {
                format!("/{path}")
            };
            let node = repo.find_node(&snap.tree, &p)?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            repo.dump_file(&node, &mut out)?;
            Ok(exit::OK)
        }
        Command::Key { command } => key(g, command),
        Command::Check(a) => crate::check_cmd::check(g, a),
        Command::Repair { command } => crate::check_cmd::repair(g, command),
        Command::Index { command } => crate::index_cmd::run(g, command),
        Command::Copy {
            snapshots,
            from,
            filter: f,
        } => copy_cmd::run(g, from, snapshots, &filter(f)),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut out = std::io::stdout();
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            clap_complete::generate(shell, &mut cmd, "lifeboat", &mut out);
            Ok(exit::OK)
        }
        Command::GenerateMan => {
            let cmd = Cli::command();
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            Ok(exit::OK)
        }
    }
}

/// Resolve an object id prefix under `dir` (`index/`, `keys/`).
fn resolve_object(repo: &Repository, dir: &str, spec: &str) -> Result<String> {
    let spec = spec.to_ascii_lowercase();
    let m: Vec<String> = repo
        .backend()
        .list(dir)?
        .into_iter()
        .map(|o| o.path)
        .filter(|p| p.trim_start_matches(dir).starts_with(&spec))
        .collect();
    match m.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no object {dir}{spec}*"),
        _ => bail!("{spec:?} matches {} objects in {dir}", m.len()),
    }
}

/// A full tree id, or a unique prefix among indexed tree blobs.
fn resolve_tree(repo: &Repository, spec: &str) -> Result<Id> {
    if let Ok(id) = spec.parse::<Id>() {
        return Ok(id);
    }
    let spec = spec.to_ascii_lowercase();
    let idx = repo.index();
    let m: Vec<Id> = idx
        .iter()
        .filter(|(id, l)| {
            l.blob_type == lifeboat::format::BlobType::Tree && id.to_hex().starts_with(&spec)
        })
        .map(|(id, _)| id)
        .collect();
    match m.as_slice() {
        [one] => Ok(*one),
        [] => bail!("no tree {spec}*"),
        _ => bail!("{spec:?} matches {} trees", m.len()),
    }
}

fn key(g: &Global, command: &KeyCommand) -> Result<u8> {
    let mut repo = open_repo(g)?;
    match command {
        KeyCommand::List => {
            let keys = repo.keys()?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({"id": k.id.to_hex(), "current": k.current, "created": k.created,
                        "hostname": k.hostname, "username": k.username})
                    })
                    .collect();
                print_json(&v);
            } else {
                println!(" {:<10} {:<12} {:<16} Created", "ID", "User", "Host");
                for k in &keys {
                    println!(
                        "{}{:<10} {:<12} {:<16} {}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        k.username,
                        k.hostname,
                        k.created
                    );
                }
            }
        }
        KeyCommand::Add {
            new_password_file,
            kdf: k,
        } => {
            let pw = password::get_new(g, new_password_file.as_deref(), false)?;
            let id = repo.add_key(&pw, kdf(k))?;
            report_key(g, "added", &id);
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(id)?;
            report_key(g, "removed", &removed);
        }
        KeyCommand::Passwd {
            new_password_file,
            kdf: k,
        } => {
            let pw = password::get_new(g, new_password_file.as_deref(), false)?;
            let id = repo.change_password(&pw, kdf(k))?;
            report_key(g, "changed", &id);
        }
    }
    Ok(exit::OK)
}

fn report_key(g: &Global, what: &str, id: &Id) {
    if g.json {
        print_json(&json!({"message_type": format!("key_{what}"), "id": id.to_hex()}));
    } else if !g.quiet {
        println!("key {what}: {}", id.short());
    }
}
