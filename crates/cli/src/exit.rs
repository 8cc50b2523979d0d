//! Exit codes, as restic's.

/// Success.
pub const OK: u8 = 0;
/// Any failure.
pub const ERROR: u8 = 1;
/// Backup finished but some entries could not be read; check found no
/// damage but could not read some objects; `snapshots` skipped a damaged
/// or stray object.
pub const INCOMPLETE: u8 = 3;
/// `check` found damage.
pub const DAMAGE: u8 = 4;
/// No repository at the location.
pub const NO_REPOSITORY: u8 = 10;
/// The password opened no key.
pub const WRONG_PASSWORD: u8 = 12;
/// Stopped by a signal.
pub const INTERRUPTED: u8 = 130;
