//! Where the password comes from: LIFEBOAT_PASSWORD, a file, a command, or a
//! prompt on the terminal, in that order.

use std::io::IsTerminal;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use zeroize::Zeroizing;

use crate::args::{FromRepoArgs, Global};

fn from_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading password file {}", path.display()))?;
    Ok(lifeboat::password_line(bytes))
}

fn from_command(cmd: &str) -> Result<Zeroizing<Vec<u8>>> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .context("running the password command")?;
    if !out.status.success() {
        bail!("the password command failed ({})", out.status);
    }
    Ok(lifeboat::password_line(out.stdout))
}

fn prompt(message: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    if !std::io::stderr().is_terminal() {
        return Ok(None);
    }
    match rpassword::prompt_password(message) {
        Ok(p) => Ok(Some(Zeroizing::new(p.into_bytes()))),
        Err(_) => Ok(None),
    }
}

/// The repository password.
pub fn get(g: &Global) -> Result<Zeroizing<Vec<u8>>> {
    if let Ok(p) = std::env::var("LIFEBOAT_PASSWORD") {
        return Ok(Zeroizing::new(p.into_bytes()));
    }
    if let Some(f) = &g.password_file {
        return from_file(f);
    }
    if let Some(c) = &g.password_command {
        return from_command(c);
    }
    if let Some(p) = prompt("enter password for repository: ")? {
        return Ok(p);
    }
    bail!(
        "no password given: set LIFEBOAT_PASSWORD, LIFEBOAT_PASSWORD_FILE or LIFEBOAT_PASSWORD_COMMAND, \
         or use --password-file / --password-command"
    )
}

/// A new password (init, key add, key passwd): from a file, or typed twice.
pub fn get_new(g: &Global, file: Option<&Path>, for_init: bool) -> Result<Zeroizing<Vec<u8>>> {
    let p = if let Some(f) = file {
        from_file(f)?
    } else if for_init {
        get(g)?
    } else if let Ok(p) = std::env::var("LIFEBOAT_NEW_PASSWORD") {
        Zeroizing::new(p.into_bytes())
    } else {
        let Some(a) = prompt("enter new password: ")? else {
            bail!("no new password given: use --new-password-file or LIFEBOAT_NEW_PASSWORD");
        };
        let Some(b) = prompt("enter new password again: ")? else {
            bail!("no new password given");
        };
        if a != b {
            bail!("the passwords do not match");
        }
        a
    };
    if p.is_empty() {
        bail!("an empty password is not allowed");
    }
    Ok(p)
}

/// The source repository's password (`copy`, `init --copy-params`):
/// LIFEBOAT_FROM_PASSWORD, a file, a command, or a prompt.
pub fn get_source(a: &FromRepoArgs) -> Result<Zeroizing<Vec<u8>>> {
    if let Ok(p) = std::env::var("LIFEBOAT_FROM_PASSWORD") {
        return Ok(Zeroizing::new(p.into_bytes()));
    }
    if let Some(f) = &a.from_password_file {
        return from_file(f);
    }
    if let Some(c) = &a.from_password_command {
        return from_command(c);
    }
    if let Some(p) = prompt("enter password for the source repository: ")? {
        return Ok(p);
    }
    bail!(
        "no password for the source repository: set LIFEBOAT_FROM_PASSWORD, \
         LIFEBOAT_FROM_PASSWORD_FILE or LIFEBOAT_FROM_PASSWORD_COMMAND, or use \
         --from-password-file / --from-password-command"
    )
}
