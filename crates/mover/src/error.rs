//! How a run fails: a message for the log and the exit code the Job sees.
//! The codes keep VolSync's meaning for 1 to 3 and restic's for 10 to 12;
//! `docs/mover.md` lists them.

use lifeboat::StoreError;

/// Every op finished.
pub const OK: u8 = 0;
/// A setting is missing or invalid, or local I/O failed.
pub const CONFIG: u8 = 1;
/// An unknown op was named.
pub const USAGE: u8 = 2;
/// The store refused the credentials or could not be reached.
pub const STORE: u8 = 3;
/// A backup was saved, but some entries could not be read.
pub const PARTIAL: u8 = 4;
/// No repository at the location, and this op does not create one.
pub const NO_REPOSITORY: u8 = 10;
/// Another prune holds the lock and did not let go within the wait.
pub const LOCKED: u8 = 11;
/// The password opens no key of the repository.
pub const WRONG_PASSWORD: u8 = 12;
/// Damage: `check` found some, a restore could not be completed and
/// verified, or an etcd snapshot failed its checks.
pub const INTEGRITY: u8 = 13;
/// Stopped by SIGTERM or SIGINT.
pub const INTERRUPTED: u8 = 130;

/// A failed op.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What went wrong, for people.
    pub message: String,
}

impl Failure {
    /// A failure with `code`.
    pub fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    /// A bad or missing setting.
    pub fn config(message: impl Into<String>) -> Failure {
        Failure::new(CONFIG, message)
    }

    /// `self` with `what` in front of its message.
    pub fn context(self, what: impl std::fmt::Display) -> Failure {
        Failure {
            code: self.code,
            message: format!("{what}: {}", self.message),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The message of `e` with its causes, as `a: b: c`.
pub use lifeboat::error_chain as chain;

/// The exit code for a store failure: a setting that cannot be used is
/// the configuration's fault, anything else the store's (refused
/// credentials, unreachable, rejected requests).
fn store_code(e: &StoreError) -> u8 {
    match e {
        StoreError::InvalidLocation { .. } => CONFIG,
        _ => STORE,
    }
}

/// The exit code for an error of the facade, decided by its type alone.
pub fn code_of(e: &lifeboat::Error) -> u8 {
    match e {
        lifeboat::Error::RepositoryNotFound { .. } => NO_REPOSITORY,
        lifeboat::Error::WrongPassword => WRONG_PASSWORD,
        lifeboat::Error::Interrupted => INTERRUPTED,
        lifeboat::Error::EtcdVerify { .. } => INTEGRITY,
        lifeboat::Error::Etcd(_) => STORE,
        lifeboat::Error::Prune(lifeboat::PruneError::Locked { .. }) => LOCKED,
        lifeboat::Error::Repository(lifeboat::RepositoryError::CorruptBlob { .. }) => INTEGRITY,
        e => match e.store_error() {
            Some(s) => store_code(s),
            None => CONFIG,
        },
    }
}

impl From<lifeboat::Error> for Failure {
    fn from(e: lifeboat::Error) -> Failure {
        Failure::new(code_of(&e), chain(&e))
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        Failure::new(store_code(&e), chain(&e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_their_codes() {
        let not_found = lifeboat::Error::RepositoryNotFound {
            location: "x".into(),
        };
        assert_eq!(code_of(&not_found), NO_REPOSITORY);
        assert_eq!(code_of(&lifeboat::Error::WrongPassword), WRONG_PASSWORD);
        assert_eq!(code_of(&lifeboat::Error::Interrupted), INTERRUPTED);
        let denied = StoreError::permission_denied("config", std::io::Error::other("403"));
        assert_eq!(code_of(&lifeboat::Error::Store(denied)), STORE);
        let denied = StoreError::permission_denied("config", std::io::Error::other("403"));
        assert_eq!(
            code_of(&lifeboat::Error::Repository(
                lifeboat::RepositoryError::Store(denied)
            )),
            STORE
        );
        let bad = StoreError::InvalidLocation {
            location: "x".into(),
            reason: "y".into(),
            source: None,
        };
        assert_eq!(code_of(&lifeboat::Error::Store(bad)), CONFIG);
    }
}
