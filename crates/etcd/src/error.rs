//! Errors: reaching etcd, and snapshots that fail verification.

use std::path::PathBuf;

/// What is wrong with a bbolt meta page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MetaProblem {
    /// The snapshot ends before the meta page does.
    #[error("the snapshot ends inside the meta page")]
    Truncated,
    /// The page header names another page.
    #[error("page id {found}")]
    PageId {
        /// The id in the header.
        found: u64,
    },
    /// The page is not marked as a meta page.
    #[error("page flags {found:#x}, not a meta page")]
    Flags {
        /// The flags in the header.
        found: u16,
    },
    /// Not bbolt's magic number.
    #[error("magic {found:#010x}, not bbolt's 0xed0cdaed")]
    Magic {
        /// The number found.
        found: u32,
    },
    /// A bbolt format version other than 2.
    #[error("bbolt version {found}, not 2")]
    Version {
        /// The version found.
        found: u32,
    },
    /// A page size that is not a power of two from 512 B to 64 KiB.
    #[error("page size {found}")]
    PageSize {
        /// The page size found.
        found: u32,
    },
    /// The meta's FNV-1a checksum does not match.
    #[error("checksum {stored:#018x}, computed {computed:#018x}")]
    Checksum {
        /// The checksum in the page.
        stored: u64,
        /// The checksum of the page's bytes.
        computed: u64,
    },
}

/// Why a snapshot stream or file is not a good etcd snapshot. A snapshot
/// with any of these is never stored as good, nor written as restored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Shorter than two meta pages and the sha256 trailer.
    #[error("the snapshot is {len} bytes, too short for a bbolt database and its sha256")]
    TooShort {
        /// Bytes in the snapshot.
        len: u64,
    },
    /// `etcdctl snapshot save` writes `db || sha256(db)`, and the database
    /// is whole pages: its size modulo 512 is 32.
    #[error(
        "the snapshot is {len} bytes; a database with its sha256 is 32 more than a multiple of 512"
    )]
    Size {
        /// Bytes in the snapshot.
        len: u64,
    },
    /// A meta page is damaged.
    #[error("bbolt meta page {page}: {problem}")]
    Meta {
        /// 0 or 1.
        page: u64,
        /// What is wrong.
        #[source]
        problem: MetaProblem,
    },
    /// The two meta pages disagree on the page size or the page count.
    #[error("bbolt meta pages disagree: page 0 says {page0:?}, page 1 says {page1:?}")]
    MetaMismatch {
        /// Page size and page count of page 0.
        page0: (u32, u64),
        /// Page size and page count of page 1.
        page1: (u32, u64),
    },
    /// The database is not the size its meta page gives.
    #[error("the database is {actual} bytes, its meta page says {expected}")]
    DbSize {
        /// `pgid * page_size` of meta page 0.
        expected: u64,
        /// Bytes before the trailer.
        actual: u64,
    },
    /// The server announced another size than it sent.
    #[error("etcd announced a {announced}-byte database and sent {actual} bytes")]
    Announced {
        /// Size from the first message's `remaining_bytes` and blob.
        announced: u64,
        /// Bytes before the trailer.
        actual: u64,
    },
    /// The trailer is not the sha256 of the database.
    #[error("sha256 mismatch: the trailer says {trailer}, the database hashes to {computed}")]
    Sha256 {
        /// The trailer, hex.
        trailer: String,
        /// The sha256 of the bytes before it, hex.
        computed: String,
    },
    /// The snapshot is whole but not the one recorded at backup.
    #[error("the database's sha256 is {found}, the backup recorded {recorded}")]
    Recorded {
        /// The sha256 recorded, hex.
        recorded: String,
        /// The sha256 of the file, hex.
        found: String,
    },
}

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint is not one URL.
    #[error("invalid etcd endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The endpoint given.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A TLS file could not be read.
    #[error("reading {what} {path}")]
    TlsFile {
        /// "CA certificate", "client certificate" or "client key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The runtime for the gRPC client could not start.
    #[error("starting the gRPC runtime")]
    Runtime(#[source] std::io::Error),
    /// Connecting, authenticating, or an RPC failed.
    #[error("etcd at {endpoint}: {what}")]
    Rpc {
        /// The endpoint.
        endpoint: String,
        /// What was being done.
        what: &'static str,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The TLS handshake with the member failed: its certificate was not
    /// trusted, or it refused the client's (or the lack of one).
    #[error("etcd at {endpoint}: TLS handshake failed: {problem}")]
    Tls {
        /// The endpoint.
        endpoint: String,
        /// What went wrong, and with which file.
        problem: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The member refused the user name and password, or wants a user
    /// and none was given.
    #[error("etcd at {endpoint}: authentication failed: {problem}")]
    Auth {
        /// The endpoint.
        endpoint: String,
        /// What went wrong (it never holds the password).
        problem: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// The user may not take snapshots: etcd allows them to users with
    /// the root role only.
    #[error(
        "etcd at {endpoint}: user {user:?} may not take snapshots (permission denied; etcd allows them to users with the root role)"
    )]
    PermissionDenied {
        /// The endpoint.
        endpoint: String,
        /// The user name.
        user: String,
        /// The client's error.
        #[source]
        source: etcd_client::Error,
    },
    /// Connecting, authenticating, an RPC, or the start of the snapshot
    /// stream got no answer within the timeout.
    #[error("etcd at {endpoint}: {what}: no answer within {secs} s")]
    TimedOut {
        /// The endpoint.
        endpoint: String,
        /// What was being done.
        what: &'static str,
        /// The timeout, in seconds.
        secs: f64,
    },
    /// A snapshot file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The snapshot failed verification.
    #[error("{path}: not a good etcd snapshot")]
    Verify {
        /// The file or the endpoint.
        path: String,
        /// What is wrong.
        #[source]
        source: VerifyError,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
