//! `lifeboat key list|add|remove|passwd`.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use lifeboat::Id;
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
            kdf,
        } => {
            let pw = password::get_new(g, new_password_file.as_deref(), false)?;
            let id = repo.add_key(&pw, kdf.params())?;
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
