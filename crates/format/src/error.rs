use crate::{Id, ParseIdError};

/// Errors from decoding, decrypting or validating repository bytes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Authentication failed: wrong key, or the bytes were changed.
    #[error("authentication failed ({what}): wrong key or the data was modified")]
    Authentication {
        /// What was being opened.
        what: String,
    },
    /// The password did not open this key slot.
    #[error("wrong password")]
    WrongPassword,
    /// The bytes are shorter than their encoding requires.
    #[error("truncated {what}: need at least {needed} bytes, have {actual}")]
    Truncated {
        /// What was being decoded.
        what: &'static str,
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The bytes do not follow the encoding.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being decoded.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// A format version this build does not understand.
    #[error("unsupported {what} version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Which structure carried the version.
        what: &'static str,
        /// The version found.
        found: u32,
        /// The version this build supports.
        supported: u32,
    },
    /// Decrypted data does not hash to the id it was stored under.
    #[error("content of blob {expected} hashes to {actual}")]
    IdMismatch {
        /// The id the blob was looked up by.
        expected: Id,
        /// The keyed hash of what was found.
        actual: Id,
    },
    /// zstd failed.
    #[error("compression error: {0}")]
    Compression(String),
    /// Key derivation failed (bad parameters).
    #[error("key derivation: {0}")]
    Kdf(String),
    /// argon2id costs outside the bounds this build accepts (see
    /// [`KdfParams::check`](crate::KdfParams::check)); refused before any
    /// hashing, so a slot edited to an absurd cost cannot stall or exhaust
    /// the machine that opens it.
    #[error("argon2id {param} = {value} is outside the accepted range {min}..={max}")]
    KdfOutOfBounds {
        /// Which parameter (`memory_kib`, `iterations`, `parallelism`, or
        /// `memory_kib × iterations`).
        param: &'static str,
        /// Its value.
        value: u64,
        /// Smallest accepted value.
        min: u64,
        /// Largest accepted value.
        max: u64,
    },
    /// The operating system's random source failed.
    #[error("random number generator failed")]
    Random(#[source] getrandom::Error),
    /// A string that should be an id is not 64 hex digits.
    #[error("malformed id")]
    Id(#[from] ParseIdError),
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn malformed(what: &'static str, reason: impl ToString) -> Error {
    Error::Malformed {
        what,
        reason: reason.to_string(),
    }
}

/// Here rather than in `id.rs`, so that `id.rs` needs nothing from the rest
/// of the crate and the error type can name [`Id`] without a loop.
impl std::str::FromStr for Id {
    type Err = Error;
    fn from_str(s: &str) -> Result<Id> {
        Ok(Id::from_hex(s)?)
    }
}
