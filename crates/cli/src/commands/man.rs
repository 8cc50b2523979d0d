//! `lifeboat generate-man`.

use anyhow::Result;

use crate::exit;

/// Print the man page (roff) of the command line `cli`.
pub fn run(cli: clap::Command) -> Result<u8> {
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(cli).render(&mut out)?;
    Ok(exit::OK)
}
