//! `lifeboat key list|add|remove|passwd|rotate`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat::{Id, SlotKind};
use serde_json::json;

use crate::args::{Global, KdfArgs};
use crate::output::print_json;
use crate::{exit, open, password};

/// Options of `lifeboat key`.
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Key command.
    #[command(subcommand)]
    command: KeyCommand,
}

/// Key slot commands.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List key slots.
    List,
    /// Add a key slot for a new password.
    Add {
        /// Read the new password from this file.
        #[arg(long, env = "LIFEBOAT_NEW_PASSWORD_FILE")]
        new_password_file: Option<PathBuf>,
        /// Make an append-only key: a client opening the repository with
        /// it can back up, read and check, but never deletes or overwrites
        /// anything (docs/security.md).
        #[arg(long)]
        append_only: bool,
        /// Key derivation costs.
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Remove a key slot (not the one in use).
    Remove {
        /// Key id or unique prefix.
        id: String,
    },
    /// Change the password of the key slot in use.
    Passwd {
        /// Read the new password from this file.
        #[arg(long, env = "LIFEBOAT_NEW_PASSWORD_FILE")]
        new_password_file: Option<PathBuf>,
        /// Key derivation costs.
        #[command(flatten)]
        kdf: KdfArgs,
    },
    /// Make a new data key for everything written from now on; old data
    /// stays readable, and every key slot receives the new key.
    Rotate,
}

/// Run the key command.
pub fn run(g: &Global, a: &KeyArgs) -> Result<u8> {
    let mut repo = open::repository(g)?;
    match &a.command {
        KeyCommand::List => {
            let keys = repo.readable_keys()?;
            if g.json {
                let v: Vec<_> = keys
                    .iter()
                    .map(|k| {
                        json!({"id": k.id.to_hex(), "current": k.current, "created": k.created,
                        "hostname": k.hostname, "username": k.username,
                        "kind": k.kind.as_str(), "version": k.version, "rotations": k.grants})
                    })
                    .collect();
                print_json(&v);
            } else {
                println!(
                    " {:<10} {:<12} {:<16} {:<11} {:<9} Created",
                    "ID", "User", "Host", "Kind", "Rotations"
                );
                for k in &keys {
                    println!(
                        "{}{:<10} {:<12} {:<16} {:<11} {:<9} {}",
                        if k.current { "*" } else { " " },
                        k.id.short(),
                        k.username,
                        k.hostname,
                        k.kind.as_str(),
                        k.grants,
                        k.created
                    );
                }
            }
        }
        KeyCommand::Add {
            new_password_file,
            append_only,
            kdf,
        } => {
            let kind = if *append_only {
                SlotKind::AppendOnly
            } else {
                SlotKind::Full
            };
            let pw = password::get_new(g, new_password_file.as_deref(), false)?;
            let id = repo.core().add_key_of_kind(&pw, kdf.params(), kind)?;
            report(g, "added", &id);
        }
        KeyCommand::Remove { id } => {
            let removed = repo.remove_key(id)?;
            report(g, "removed", &removed);
        }
        KeyCommand::Passwd {
            new_password_file,
            kdf,
        } => {
            let pw = password::get_new(g, new_password_file.as_deref(), false)?;
            let id = repo.change_password(&pw, kdf.params())?;
            report(g, "changed", &id);
        }
        KeyCommand::Rotate => {
            let pw = password::get(g)?;
            let r = repo.core().rotate_key(&pw)?;
            if g.json {
                let slots: Vec<_> = r
                    .slots
                    .iter()
                    .map(|(old, new)| json!({"old": old.to_hex(), "new": new.to_hex()}))
                    .collect();
                print_json(&json!({"message_type": "key_rotated", "slots": slots,
                    "retired_keys": r.retired_keys}));
            } else if !g.quiet {
                for (old, new) in &r.slots {
                    println!("key slot {} is now {}", old.short(), new.short());
                }
                println!(
                    "new data key in use; {} older key(s) kept to read older data",
                    r.retired_keys
                );
            }
        }
    }
    Ok(exit::OK)
}

fn report(g: &Global, what: &str, id: &Id) {
    if g.json {
        print_json(&json!({"message_type": format!("key_{what}"), "id": id.to_hex()}));
    } else if !g.quiet {
        println!("key {what}: {}", id.short());
    }
}
