//! One module per command, each with its arguments and its `run`.

pub mod backup;
pub mod cat;
pub mod check;
pub mod completions;
pub mod copy;
pub mod diff;
pub mod drill;
pub mod dump;
pub mod etcd;
pub mod forget;
pub mod index;
pub mod init;
pub mod key;
pub mod ls;
pub mod man;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod snapshots;
pub mod stats;
pub mod status;
