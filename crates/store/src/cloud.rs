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
use crate::redact::{cause, is_secret_key, redact_with, strip_userinfo};
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
        reason: "the store's settings were refused".into(),
        source: Some(cause(e, secrets)),
    }
}

/// Values of settings whose keys name secrets.
fn setting_secrets(o: &OpenOptions) -> Vec<String> {
    o.settings
        .iter()
        .filter(|(k, _)| is_secret_key(k))
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
                source: None,
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

/// Whether uploads go unhashed for the request signature
/// (`UNSIGNED-PAYLOAD`): yes, unless `AWS_UNSIGNED_PAYLOAD` or a setting
/// says either way, or the endpoint is plain http to another host. Every
/// object is authenticated by the repository key already, so SHA-256 over
/// each body (on both ends: the server verifies it) buys nothing but CPU;
/// over https, TLS protects the body in transit as well.
fn unsigned_payload_by_default(
    endpoint: Option<&str>,
    env_value: Option<&str>,
    o: &OpenOptions,
) -> bool {
    let in_clear_to_another_host =
        endpoint.is_some_and(|ep| ep.starts_with("http://") && !is_loopback_url(ep));
    env_value.is_none()
        && setting(o, &["aws_unsigned_payload", "unsigned_payload"]).is_none()
        && !in_clear_to_another_host
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
                    source: None,
                });
            }
        }
        b = b.with_endpoint(ep.clone());
    }
    if unsigned_payload_by_default(
        endpoint.as_deref(),
        env("AWS_UNSIGNED_PAYLOAD").as_deref(),
        o,
    ) {
        b = b.with_unsigned_payload(true);
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
    fn loopback_is_recognised() {
        assert!(is_loopback_url("http://127.0.0.1:3900"));
        assert!(is_loopback_url("http://localhost:3900/"));
        assert!(is_loopback_url("http://[::1]:3900"));
        assert!(!is_loopback_url("http://10.0.0.1:3900"));
        assert!(!is_loopback_url("http://minio.example:9000"));
    }

    #[test]
    fn uploads_are_unsigned_unless_told_or_in_clear_to_another_host() {
        let plain = OpenOptions::default();
        let f = unsigned_payload_by_default;
        assert!(f(None, None, &plain), "AWS itself");
        assert!(f(Some("https://minio.example:9000"), None, &plain));
        assert!(f(Some("http://127.0.0.1:3900"), None, &plain));
        assert!(!f(Some("http://minio.example:9000"), None, &plain));
        // The environment or a setting decides either way, and the builder
        // then reads it as it is.
        assert!(!f(Some("https://s3.example"), Some("false"), &plain));
        assert!(!f(Some("https://s3.example"), Some("true"), &plain));
        let mut set = OpenOptions::default();
        set.settings
            .push(("AWS_UNSIGNED_PAYLOAD".into(), "false".into()));
        assert!(!f(Some("https://s3.example"), None, &set));
    }
}
