//! The snapshot stream of one etcd member, as a blocking [`Read`]: etcd's
//! `Maintenance.Snapshot` sends the database in 32 KiB messages, then one
//! message with its sha256; the reader yields those bytes as they are,
//! digest included, which is what `etcdctl snapshot save` writes.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, SnapshotStreaming, TlsOptions};
use tokio::runtime::Runtime;

use crate::error::{Error, Result};

/// How to reach one etcd member. Only one endpoint: a snapshot is of one
/// member's database, and a balanced client could switch members midway.
#[derive(Debug, Clone, Default)]
pub struct Endpoint {
    /// `http://host:port` or `https://host:port` (plain `host:port` is http,
    /// or https when TLS files are given).
    pub url: String,
    /// CA certificate (PEM) to verify the server with.
    pub cacert: Option<PathBuf>,
    /// Client certificate (PEM), with `key`.
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with `cert`.
    pub key: Option<PathBuf>,
    /// User name and password, for etcd's own authentication.
    pub user: Option<(String, String)>,
    /// Limit on connecting, on each RPC, and on the wait for each next
    /// message of the snapshot stream (default 30 s): a stream that sends
    /// nothing for that long has stalled, and the backup fails rather than
    /// hang. The stream as a whole may take as long as it needs.
    pub timeout: Option<Duration>,
}

/// What the member said about itself before the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerStatus {
    /// etcd version of the member, e.g. "3.4.23".
    pub version: String,
    /// Size of its database file, in bytes.
    pub db_size: i64,
    /// Its member id.
    pub member_id: u64,
    /// Its cluster id.
    pub cluster_id: u64,
    /// Store revision when the status was taken.
    pub revision: i64,
}

/// The snapshot stream of one member.
pub struct SnapshotStream {
    runtime: Runtime,
    // Kept so that the channel lives as long as the stream.
    _client: Client,
    stream: SnapshotStreaming,
    endpoint: String,
    status: ServerStatus,
    /// The current message's blob, and how much of it was read.
    blob: Vec<u8>,
    pos: usize,
    /// Longest wait for the next message.
    idle: Duration,
    first: bool,
    ended: bool,
    header_revision: Option<i64>,
    announced: Option<u64>,
}

impl std::fmt::Debug for SnapshotStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotStream")
            .field("endpoint", &self.endpoint)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::TlsFile {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn connect_options(ep: &Endpoint) -> Result<(String, ConnectOptions)> {
    let url = ep.url.trim();
    if url.is_empty() || url.contains(',') || url.contains(char::is_whitespace) {
        return Err(Error::Endpoint {
            endpoint: ep.url.clone(),
            reason: "give one endpoint, as http://host:port or https://host:port",
        });
    }
    let timeout = ep.timeout.unwrap_or(Duration::from_secs(30));
    let mut opts = ConnectOptions::new().with_connect_timeout(timeout);
    let tls_files = ep.cacert.is_some() || ep.cert.is_some() || ep.key.is_some();
    let mut url = url.to_string();
    if tls_files {
        if url.starts_with("http://") {
            return Err(Error::Endpoint {
                endpoint: ep.url.clone(),
                reason: "TLS files given for an http:// endpoint; use https://",
            });
        }
        if !url.starts_with("https://") {
            url = format!("https://{url}");
        }
    }
    if url.starts_with("https://") {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &ep.cacert {
            tls = tls.ca_certificate(Certificate::from_pem(read_pem("CA certificate", ca)?));
        }
        match (&ep.cert, &ep.key) {
            (Some(c), Some(k)) => {
                let cert = read_pem("client certificate", c)?;
                let key = read_pem("client key", k)?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            (None, None) => {}
            _ => {
                return Err(Error::Endpoint {
                    endpoint: ep.url.clone(),
                    reason: "a client certificate needs its key, and a key its certificate",
                });
            }
        }
        opts = opts.with_tls(tls);
    }
    if let Some((name, password)) = &ep.user {
        opts = opts.with_user(name.clone(), password.clone());
    }
    Ok((url, opts))
}

impl SnapshotStream {
    /// Connect to the member, ask its status, and open its snapshot stream.
    pub fn open(ep: &Endpoint) -> Result<SnapshotStream> {
        let (url, opts) = connect_options(ep)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let timeout = ep.timeout.unwrap_or(Duration::from_secs(30));
        let rpc = |what: &'static str| {
            let endpoint = url.clone();
            move |source| Error::Rpc {
                endpoint,
                what,
                source,
            }
        };
        let (client, status, stream) = runtime.block_on(async {
            let mut client = Client::connect([url.as_str()], Some(opts))
                .await
                .map_err(rpc("connecting"))?;
            // The status RPC is bounded; the stream is not (it may be long).
            let status = tokio::time::timeout(timeout, client.status())
                .await
                .map_err(|_| rpc("status")(etcd_client::Error::Internal("timed out".to_string())))?
                .map_err(rpc("status"))?;
            let stream = client.snapshot().await.map_err(rpc("snapshot"))?;
            Ok::<_, Error>((client, status, stream))
        })?;
        let header = status.header();
        let status = ServerStatus {
            version: status.version().to_string(),
            db_size: status.db_size(),
            member_id: header.map(|h| h.member_id()).unwrap_or_default(),
            cluster_id: header.map(|h| h.cluster_id()).unwrap_or_default(),
            revision: header.map(|h| h.revision()).unwrap_or_default(),
        };
        Ok(SnapshotStream {
            runtime,
            _client: client,
            stream,
            endpoint: url,
            status,
            blob: Vec::new(),
            pos: 0,
            idle: timeout,
            first: true,
            ended: false,
            header_revision: None,
            announced: None,
        })
    }

    /// The member's status, taken just before the snapshot was asked for.
    pub fn status(&self) -> &ServerStatus {
        &self.status
    }

    /// The endpoint, as connected to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The revision in the first message's header, which etcd 3.6 and
    /// later send (the snapshot's point in time); `None` before the first
    /// message, or from older servers.
    pub fn header_revision(&self) -> Option<i64> {
        self.header_revision
    }

    /// The database size the server announced in its first message.
    pub fn announced_db_size(&self) -> Option<u64> {
        self.announced
    }

    /// Wait for the next message; false at the end of the stream.
    fn next_message(&mut self) -> io::Result<bool> {
        let idle = self.idle;
        let msg = self
            .runtime
            // The timer is made inside the runtime: outside it, tokio panics.
            .block_on(async { tokio::time::timeout(idle, self.stream.message()).await })
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the etcd snapshot stream stalled: nothing received for {} s",
                        idle.as_secs_f64()
                    ),
                )
            })?
            .map_err(|e| io::Error::other(StreamError(e)))?;
        let Some(mut msg) = msg else {
            self.ended = true;
            return Ok(false);
        };
        if self.first {
            self.first = false;
            // remaining_bytes counts what is left after this blob.
            self.announced = Some(msg.remaining_bytes() + msg.blob().len() as u64);
            self.header_revision = msg.take_header().map(|h| h.revision()).filter(|r| *r > 0);
        }
        self.blob.clear();
        self.blob.extend_from_slice(msg.blob());
        self.pos = 0;
        Ok(true)
    }
}

/// The gRPC stream broke.
#[derive(Debug, thiserror::Error)]
#[error("the etcd snapshot stream failed")]
struct StreamError(#[source] etcd_client::Error);

impl Read for SnapshotStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.blob.len() {
            if self.ended || !self.next_message()? {
                return Ok(0);
            }
        }
        let n = buf.len().min(self.blob.len() - self.pos);
        buf[..n].copy_from_slice(&self.blob[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn endpoints_are_checked_before_connecting() {
        let two = Endpoint {
            url: "http://a:2379,http://b:2379".into(),
            ..Default::default()
        };
        assert!(matches!(connect_options(&two), Err(Error::Endpoint { .. })));
        let tls_on_http = Endpoint {
            url: "http://a:2379".into(),
            cacert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            connect_options(&tls_on_http),
            Err(Error::Endpoint { .. })
        ));
        let missing_ca = Endpoint {
            url: "a:2379".into(),
            cacert: Some("/nonexistent/ca.pem".into()),
            ..Default::default()
        };
        assert!(matches!(
            connect_options(&missing_ca),
            Err(Error::TlsFile { .. })
        ));
        let plain = Endpoint {
            url: "127.0.0.1:2379".into(),
            ..Default::default()
        };
        assert_eq!(connect_options(&plain).unwrap().0, "127.0.0.1:2379");
    }
}
