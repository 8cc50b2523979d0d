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
/// Its `Debug` leaves the password out.
#[derive(Clone, Default)]
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

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("url", &self.url)
            .field("cacert", &self.cacert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("user", &self.user.as_ref().map(|(name, _)| name))
            .field("timeout", &self.timeout)
            .finish()
    }
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

/// One request of [`SnapshotStream::open`], bounded by the timeout.
struct Step<'a> {
    ep: &'a Endpoint,
    url: &'a str,
    timeout: Duration,
    what: &'static str,
    /// Whether the connection may not have carried a request yet: a
    /// connection closed then is taken as the member refusing it.
    first: bool,
}

impl Step<'_> {
    async fn run<T>(
        self,
        request: impl Future<Output = std::result::Result<T, etcd_client::Error>>,
    ) -> Result<T> {
        match tokio::time::timeout(self.timeout, request).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(source)) => Err(rpc_error(self.ep, self.url, self.what, self.first, source)),
            Err(_elapsed) => Err(Error::TimedOut {
                endpoint: self.url.to_string(),
                what: self.what,
                secs: self.timeout.as_secs_f64(),
            }),
        }
    }
}

/// The error for `source`, which the client returned while `what` was
/// being done: failed TLS handshakes and refused users, which the client
/// reports as gRPC statuses or transport errors whose text is all there is
/// to tell them by, get errors of their own that say what went wrong.
/// `first`: the connection may not have carried a request yet.
fn rpc_error(
    ep: &Endpoint,
    endpoint: &str,
    what: &'static str,
    first: bool,
    source: etcd_client::Error,
) -> Error {
    let text = source.to_string();
    let endpoint = endpoint.to_string();
    let user = ep.user.as_ref().map(|(name, _)| name.as_str());
    if let Some(problem) = tls_problem(ep, &endpoint, first, &text) {
        return Error::Tls {
            endpoint,
            problem,
            source,
        };
    }
    // etcd's own messages (etcdserver/api/v3rpc/rpctypes).
    let auth = if text.contains("authentication failed") {
        Some(match user {
            Some(u) => format!("user {u:?}: wrong user name or password"),
            None => "wrong user name or password".to_string(),
        })
    } else if text.contains("user name is empty") {
        Some("the member has authentication enabled and no user was given".to_string())
    } else {
        None
    };
    if let Some(problem) = auth {
        return Error::Auth {
            endpoint,
            problem,
            source,
        };
    }
    if text.contains("permission denied") {
        return Error::PermissionDenied {
            endpoint,
            user: user.unwrap_or_default().to_string(),
            source,
        };
    }
    // A plain connection to a TLS port: the member closes it.
    let plain_to_tls = first && endpoint.starts_with("http://") && closed(&text);
    Error::Rpc {
        endpoint,
        what: if plain_to_tls {
            "connecting (the member closed the connection: if it serves TLS, give an https:// URL and its CA certificate)"
        } else {
            what
        },
        source,
    }
}

/// The connection was closed under the client.
fn closed(text: &str) -> bool {
    ["broken pipe", "connection reset", "connection closed"]
        .iter()
        .any(|m| text.contains(m))
}

/// What went wrong in a TLS handshake with `endpoint` (the URL connected
/// to), from the text of the client's error: rustls's `invalid peer
/// certificate: <reason>` when the member's certificate is refused;
/// `received fatal alert: <alert>`, or a connection closed under the
/// client, when the member refuses the client's certificate or its lack
/// (with TLS 1.3 that comes after the client has finished its side of the
/// handshake, so the client reads the alert, or finds the connection closed
/// if it wrote first; only a `first` request's closed connection is taken
/// so). `None` when the error is none of these.
fn tls_problem(ep: &Endpoint, endpoint: &str, first: bool, text: &str) -> Option<String> {
    let shown = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let word_after = |marker: &str| {
        text.find(marker).map(|i| {
            text[i + marker.len()..]
                .split(|c: char| !c.is_ascii_alphanumeric())
                .next()
                .unwrap_or_default()
                .to_string()
        })
    };
    if let Some(reason) = word_after("invalid peer certificate: ") {
        return Some(match (reason.as_str(), shown(&ep.cacert)) {
            ("UnknownIssuer" | "BadSignature", None) => format!(
                "the member's certificate is not signed by a trusted CA ({reason}): no CA certificate was given"
            ),
            ("UnknownIssuer" | "BadSignature", Some(ca)) => format!(
                "the member's certificate is not signed by the CA certificate {ca} ({reason})"
            ),
            ("NotValidForName" | "NotValidForNameContext", _) => format!(
                "the member's certificate is not valid for the host of {endpoint} ({reason})"
            ),
            _ => format!("the member's certificate was refused ({reason})"),
        });
    }
    let alert = word_after("received fatal alert: ");
    if alert.is_none() && !(first && endpoint.starts_with("https://") && closed(text)) {
        return None;
    }
    let how = match alert {
        Some(alert) => format!("the member ended the connection with TLS alert {alert}"),
        None => "the member closed the connection right after the TLS handshake".to_string(),
    };
    Some(match shown(&ep.cert) {
        None => format!("{how}: it requires a client certificate and none was given"),
        Some(cert) => format!("{how}: it did not accept the client certificate {cert}"),
    })
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
        // Every step is bounded: the client's connect timeout covers only
        // the TCP connection, and a member that accepts but never answers
        // would otherwise hold authentication or the stream's start forever.
        let step = |what, first| Step {
            ep,
            url: &url,
            timeout,
            what,
            first,
        };
        let (client, status, stream) = runtime.block_on(async {
            let connecting = if ep.user.is_some() {
                "connecting and authenticating"
            } else {
                "connecting"
            };
            let mut client = step(connecting, true)
                .run(Client::connect([url.as_str()], Some(opts)))
                .await?;
            // The connection is made on the first request: TLS problems
            // and unreachable members show here.
            let status = step("connecting (Status request)", true)
                .run(client.status())
                .await?;
            // The wait for the stream's start is bounded; the stream as a
            // whole is not (it may be long), only each next message.
            let stream = step("snapshot", false).run(client.snapshot()).await?;
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

    #[test]
    fn debug_leaves_the_password_out() {
        let ep = Endpoint {
            url: "http://a:2379".into(),
            user: Some(("backup".into(), "s3cret-pw".into())),
            ..Default::default()
        };
        let shown = format!("{ep:?}");
        assert!(
            shown.contains("backup") && !shown.contains("s3cret-pw"),
            "{shown}"
        );
    }

    /// The error `rpc_error` makes of a client error with `text`.
    fn classified(ep: &Endpoint, text: &str) -> String {
        let e = rpc_error(
            ep,
            &ep.url,
            "connecting",
            true,
            etcd_client::Error::Internal(text.into()),
        );
        e.to_string()
    }

    #[test]
    fn tls_and_auth_failures_say_what_went_wrong() {
        let mut ep = Endpoint {
            url: "https://10.0.0.5:2379".into(),
            ..Default::default()
        };
        let unknown = "message: \"invalid peer certificate: UnknownIssuer\"";
        assert!(classified(&ep, unknown).contains("no CA certificate was given"));
        ep.cacert = Some("ca.pem".into());
        assert!(classified(&ep, unknown).contains("not signed by the CA certificate ca.pem"));
        let alert = "error: \"received fatal alert: BadCertificate\"";
        assert!(
            classified(&ep, alert)
                .contains("alert BadCertificate: it requires a client certificate")
        );
        ep.cert = Some("client.pem".into());
        let closed = "hyper::Error(Canceled, \"connection closed\")";
        assert!(
            classified(&ep, closed).contains("did not accept the client certificate client.pem")
        );
        ep.user = Some(("backup".into(), "pw".into()));
        let auth = "etcdserver: authentication failed, invalid user ID or password";
        assert!(classified(&ep, auth).contains("authentication failed: user \"backup\""));
        assert!(classified(&ep, "auth: permission denied").contains("may not take snapshots"));
        // Anything else stays what it was.
        let other = classified(&ep, "tcp connect error");
        assert!(other.ends_with(": connecting"), "{other}");
        // A closed plain connection suggests TLS.
        ep.url = "http://10.0.0.5:2379".into();
        assert!(classified(&ep, "broken pipe").contains("if it serves TLS"));
        // Once the connection has carried a request, a closed one is just
        // that.
        ep.url = "https://10.0.0.5:2379".into();
        let later = rpc_error(
            &ep,
            &ep.url,
            "snapshot",
            false,
            etcd_client::Error::Internal("connection closed".into()),
        );
        assert!(
            matches!(
                later,
                Error::Rpc {
                    what: "snapshot",
                    ..
                }
            ),
            "{later}"
        );
    }
}
