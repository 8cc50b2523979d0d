//! `lifeboat init`.

use anyhow::Result;
use clap::Args;
use lifeboat::Compression;
use lifeboat::{InitOptions, Repository};
use serde_json::json;

use crate::args::{FromRepoArgs, Global, KdfArgs};
use crate::output::print_json;
use crate::{exit, open, password};

/// Options of `lifeboat init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Key derivation costs.
    #[command(flatten)]
    kdf: KdfArgs,
    /// Compression of new data: auto, fastest, better, max, off, or a zstd
    /// level (-7 to 22; 0 is off). auto, the default, keeps repositories no
    /// larger than restic's at the least CPU this build measured
    /// (docs/benchmarks.md, "Compression modes"); `backup --compression`
    /// overrides it for one run.
    #[arg(long, default_value = "auto", value_name = "MODE", allow_negative_numbers = true,
          value_parser = |s: &str| s.parse::<Compression>())]
    compression: Compression,
    /// Target pack size in MiB.
    #[arg(long, default_value_t = 16, value_name = "MIB")]
    pack_size: u32,
    /// Take the blob id key, chunker seed and chunk sizes of --from-repo, so that
    /// `copy` between the two moves blobs as they are (the data key stays new).
    #[arg(long, requires = "from_repo")]
    copy_params: bool,
    /// Put every client in no-delete mode: nothing is ever deleted or
    /// overwritten, whatever the key (docs/security.md).
    #[arg(long)]
    append_only: bool,
    /// The repository to take parameters from.
    #[command(flatten)]
    from: FromRepoArgs,
}

/// Create the repository.
pub fn run(g: &Global, a: &InitArgs) -> Result<u8> {
    let backend = open::backend(g, &open::location(g)?, true)?;
    let pw = password::get_new(g, None, true)?;
    let opts = InitOptions {
        kdf: a.kdf.params(),
        compression: a.compression,
        pack_size: a.pack_size.saturating_mul(1 << 20),
        append_only: a.append_only,
        ..Default::default()
    };
    let repo = if a.copy_params {
        let source = open::source_repository(g, &a.from)?;
        Repository::init_with_params_from(backend, &pw, &opts, &source)?
    } else {
        Repository::init(backend, &pw, &opts)?
    };
    let loc = repo.location();
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
