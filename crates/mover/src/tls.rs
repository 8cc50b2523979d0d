//! `CUSTOM_CA`: VolSync mounts an extra CA certificate for the object
//! store and names it here. The TLS stack reads its roots from
//! `SSL_CERT_FILE`, which this process cannot set for itself (changing the
//! environment of a running program is unsafe), so the mover writes the
//! system bundle plus that CA into a temporary file and runs itself again
//! with `SSL_CERT_FILE` naming it.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

use crate::error::Failure;
use crate::settings::var;

/// Set on the second run, so that it does not run itself again.
const APPLIED: &str = "LIFEBOAT_MOVER_CUSTOM_CA_APPLIED";

/// Where the image keeps its CA bundle (Debian's path, the one rustls
/// looks at by default).
const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// With `CUSTOM_CA` set, run this program again trusting it too; returns
/// only on an error, or when there is nothing to do.
pub fn apply_custom_ca() -> Result<(), Failure> {
    let Some(ca) = var("CUSTOM_CA") else {
        return Ok(());
    };
    if std::env::var_os(APPLIED).is_some() {
        return Ok(());
    }
    let custom = std::fs::read(&ca).map_err(|e| Failure::config(format!("CUSTOM_CA {ca}: {e}")))?;
    let system = var("SSL_CERT_FILE").unwrap_or_else(|| SYSTEM_BUNDLE.into());
    let mut bundle = std::fs::read(&system).unwrap_or_default();
    bundle.push(b'\n');
    bundle.extend_from_slice(&custom);
    let path: PathBuf =
        std::env::temp_dir().join(format!("lifeboat-mover-ca-{}.pem", std::process::id()));
    std::fs::write(&path, &bundle)
        .map_err(|e| Failure::config(format!("writing {}: {e}", path.display())))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::config(format!("finding this program to apply CUSTOM_CA: {e}")))?;
    let err = Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env("SSL_CERT_FILE", &path)
        .env(APPLIED, "1")
        .exec();
    Err(Failure::config(format!(
        "running again with CUSTOM_CA {ca}: {err}"
    )))
}
