//! Building remote stores (S3 and S3-compatible servers, Google Cloud
//! Storage, Azure Blob Storage) from their usual environment variables, and
//! keeping the credentials out of every message.

use std::sync::{Arc, Once};

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::prefix::PrefixStore;
use object_store::{ClientConfigKey, ObjectStore, RetryConfig};

use crate::object::{ObjectStoreBackend, RemoteOptions};
use crate::{Error, OpenOptions, Result};

/// TLS goes through rustls with ring (not aws-lc-rs, which needs a C and
/// cmake build); reqwest is built without a provider, so install ours once.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err means another provider is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Whether an environment variable holds a credential, by its name.
fn is_secret_var(name: &str) -> bool {
    let n = name.to_ascii_uppercase();
    let ours = ["AWS_", "AZURE_", "GOOGLE_", "GCS_", "LIFEBOAT_"]
        .iter()
        .any(|p| n.starts_with(p));
    let secret = ["SECRET", "TOKEN", "KEY", "PASSWORD", "SAS", "CREDENTIAL"]
        .iter()
        .any(|w| n.contains(w));
    ours && secret && !n.ends_with("_FILE") && !n.ends_with("_COMMAND")
}

/// `s` with the value of every credential variable in the environment, and
/// every string in `extra`, replaced by `<redacted>`, and user:password
/// parts of URLs removed.
pub(crate) fn redact_with(s: &str, extra: &[String]) -> String {
    let mut out = strip_userinfo(s);
    let env = std::env::vars_os().filter_map(|(k, v)| {
        let (k, v) = (k.to_str()?, v.to_str()?);
        is_secret_var(k).then(|| v.trim().to_string())
    });
    for v in env.chain(extra.iter().cloned()) {
        if v.len() >= 4 && out.contains(&v) {
            out = out.replace(&v, "<redacted>");
        }
    }
    out
}

/// Remove `user:password@` from every `scheme://user:password@host` in `s`.
pub(crate) fn strip_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        match tail[..end].rfind('@') {
            Some(at) => {
                out.push_str("<redacted>@");
                rest = &tail[at + 1..];
            }
            None => rest = tail,
        }
    }
    out.push_str(rest);
    out
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let hostport = rest.split('/').next().unwrap_or("");
    let hostport = hostport.rsplit('@').next().unwrap_or(hostport);
    let host = if let Some(h) = hostport.strip_prefix('[') {
        h.split(']').next().unwrap_or("")
    } else {
        hostport.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn ms(d: std::time::Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Requests are retried by [`crate::RetryBackend`], one layer with one
/// documented policy; object_store's own retries are switched off so the two
/// do not multiply.
fn no_retries() -> RetryConfig {
    RetryConfig {
        max_retries: 0,
        ..Default::default()
    }
}

fn client_keys(o: &RemoteOptions) -> [(ClientConfigKey, String); 2] {
    [
        (ClientConfigKey::Timeout, ms(o.timeout)),
        (ClientConfigKey::ConnectTimeout, ms(o.connect_timeout)),
    ]
}

fn with_prefix(store: Arc<dyn ObjectStore>, prefix: &str) -> Arc<dyn ObjectStore> {
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

fn build_error(location: &str, e: object_store::Error, secrets: &[String]) -> Error {
    Error::InvalidLocation {
        location: location.to_string(),
        reason: redact_with(&e.to_string(), secrets),
    }
}

/// Values of settings whose keys name secrets.
fn setting_secrets(o: &OpenOptions) -> Vec<String> {
    o.settings
        .iter()
        .filter(|(k, _)| {
            let k = k.to_ascii_uppercase();
            ["SECRET", "TOKEN", "KEY", "PASSWORD", "SAS", "CREDENTIAL"]
                .iter()
                .any(|w| k.contains(w))
        })
        .map(|(_, v)| v.clone())
        .collect()
}

fn setting<'a>(o: &'a OpenOptions, keys: &[&str]) -> Option<&'a str> {
    o.settings
        .iter()
        .rev()
        .find(|(k, _)| keys.contains(&k.to_ascii_lowercase().as_str()))
        .map(|(_, v)| v.as_str())
}

fn apply_settings<K: std::str::FromStr, B>(
    mut b: B,
    o: &OpenOptions,
    location: &str,
    secrets: &[String],
    set: impl Fn(B, K, &str) -> B,
) -> Result<B> {
    for (k, v) in &o.settings {
        let key = k
            .to_ascii_lowercase()
            .parse::<K>()
            .map_err(|_| Error::InvalidLocation {
                location: location.to_string(),
                reason: redact_with(&format!("unknown store setting {k:?}"), secrets),
            })?;
        b = set(b, key, v);
    }
    Ok(b)
}

fn display(scheme: &str, bucket: &str, prefix: &str) -> String {
    if prefix.is_empty() {
        format!("{scheme}://{bucket}")
    } else {
        format!("{scheme}://{bucket}/{prefix}")
    }
}

/// An S3 bucket. The endpoint comes from the location (`s3:http://...`),
/// `LIFEBOAT_S3_ENDPOINT`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT`, in that
/// order; without one it is AWS. Requests use path-style addressing unless
/// `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`. Plain http is allowed on its own
/// only for a loopback endpoint; elsewhere `AWS_ALLOW_HTTP=true` must say so.
pub(crate) fn s3(
    bucket: &str,
    prefix: &str,
    endpoint: Option<&str>,
    o: &OpenOptions,
) -> Result<ObjectStoreBackend> {
    install_crypto_provider();
    let opts = &o.remote;
    let secrets = setting_secrets(o);
    let mut location = display("s3", bucket, prefix);
    let mut b = AmazonS3Builder::from_env();
    for (k, v) in client_keys(opts) {
        b = b.with_config(AmazonS3ConfigKey::Client(k), v);
    }
    b = apply_settings(b, o, &location, &secrets, |b, k, v| b.with_config(k, v))?;
    b = b.with_bucket_name(bucket).with_retry(no_retries());
    let endpoint = endpoint
        .map(str::to_string)
        .or_else(|| {
            setting(
                o,
                &[
                    "aws_endpoint",
                    "aws_endpoint_url",
                    "endpoint",
                    "endpoint_url",
                ],
            )
            .map(str::to_string)
        })
        .or_else(|| env("LIFEBOAT_S3_ENDPOINT"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| env("AWS_ENDPOINT"));
    if let Some(ep) = &endpoint {
        let shown = strip_userinfo(ep);
        location = format!("{location} at {shown}");
        if ep.starts_with("http://") {
            let allowed = env("AWS_ALLOW_HTTP").is_some_and(|v| v.eq_ignore_ascii_case("true"));
            if is_loopback_url(ep) {
                b = b.with_allow_http(true);
            } else if !allowed {
                return Err(Error::InvalidLocation {
                    location,
                    reason: format!(
                        "endpoint {shown} is plain http to another host; use https, \
                         or set AWS_ALLOW_HTTP=true to allow it"
                    ),
                });
            }
        }
        b = b.with_endpoint(ep.clone());
    }
    let store = b.build().map_err(|e| build_error(&location, e, &secrets))?;
    let mut backend =
        ObjectStoreBackend::remote(with_prefix(Arc::new(store), prefix), location, opts)?;
    backend.set_secrets(secrets);
    Ok(backend)
}

/// A Google Cloud Storage bucket; credentials from `GOOGLE_SERVICE_ACCOUNT`
/// (a key file), `GOOGLE_SERVICE_ACCOUNT_KEY` (the key itself),
/// `GOOGLE_APPLICATION_CREDENTIALS`, or the metadata server.
pub(crate) fn gcs(bucket: &str, prefix: &str, o: &OpenOptions) -> Result<ObjectStoreBackend> {
    install_crypto_provider();
    let opts = &o.remote;
    let secrets = setting_secrets(o);
    let location = display("gs", bucket, prefix);
    let mut b = GoogleCloudStorageBuilder::from_env();
    for (k, v) in client_keys(opts) {
        b = b.with_config(GoogleConfigKey::Client(k), v);
    }
    b = apply_settings(b, o, &location, &secrets, |b, k, v| b.with_config(k, v))?;
    b = b.with_bucket_name(bucket).with_retry(no_retries());
    let store = b.build().map_err(|e| build_error(&location, e, &secrets))?;
    let mut backend =
        ObjectStoreBackend::remote(with_prefix(Arc::new(store), prefix), location, opts)?;
    backend.set_secrets(secrets);
    Ok(backend)
}

/// An Azure Blob Storage container; the account and credentials from
/// `AZURE_STORAGE_ACCOUNT_NAME` and `AZURE_STORAGE_ACCOUNT_KEY` (or a SAS
/// token, a service principal, or managed identity; `AZURE_STORAGE_USE_EMULATOR`
/// for Azurite).
pub(crate) fn azure(container: &str, prefix: &str, o: &OpenOptions) -> Result<ObjectStoreBackend> {
    install_crypto_provider();
    let opts = &o.remote;
    let secrets = setting_secrets(o);
    let location = display("az", container, prefix);
    let mut b = MicrosoftAzureBuilder::from_env();
    for (k, v) in client_keys(opts) {
        b = b.with_config(AzureConfigKey::Client(k), v);
    }
    b = apply_settings(b, o, &location, &secrets, |b, k, v| b.with_config(k, v))?;
    b = b.with_container_name(container).with_retry(no_retries());
    let store = b.build().map_err(|e| build_error(&location, e, &secrets))?;
    let mut backend =
        ObjectStoreBackend::remote(with_prefix(Arc::new(store), prefix), location, opts)?;
    backend.set_secrets(secrets);
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_stripped() {
        assert_eq!(
            strip_userinfo("see http://ak:sk@h:1/b and s3://x/y"),
            "see http://<redacted>@h:1/b and s3://x/y"
        );
        assert_eq!(strip_userinfo("no url"), "no url");
        assert_eq!(strip_userinfo("http://h/p@q"), "http://h/p@q");
    }

    #[test]
    fn secret_variables_are_recognised() {
        for v in [
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ACCESS_KEY_ID",
            "AWS_SESSION_TOKEN",
            "AZURE_STORAGE_ACCOUNT_KEY",
            "GOOGLE_SERVICE_ACCOUNT_KEY",
            "LIFEBOAT_PASSWORD",
        ] {
            assert!(is_secret_var(v), "{v}");
        }
        for v in [
            "AWS_REGION",
            "AWS_ENDPOINT_URL",
            "LIFEBOAT_PASSWORD_FILE",
            "HOME",
        ] {
            assert!(!is_secret_var(v), "{v}");
        }
    }

    #[test]
    fn loopback_is_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:3900"));
        assert!(is_loopback_url("http://localhost:3900/"));
        assert!(is_loopback_url("http://[::1]:3900"));
        assert!(!is_loopback_url("http://10.0.0.1:3900"));
        assert!(!is_loopback_url("http://minio.example:9000"));
    }
}
