//! Lifeboat repository format, version 1.
//!
//! This crate owns every byte layout that Lifeboat writes to a repository:
//! object and blob ids, the master key and its password-protected key slots,
//! the authenticated-encryption envelope, compression framing, and the
//! encodings of packs, index segments, trees, snapshots and the repository
//! config. It performs no I/O: callers hand it bytes and get bytes back.
//!
//! `docs/format.md` in the repository is the normative description of these
//! encodings; it and this crate change together.

mod blob;
mod config;
mod crypto;
mod drill;
mod error;
mod id;
mod index;
mod keyring;
mod keyslot;
pub mod layout;
mod object;
mod pack;
mod prune;
mod random;
mod snapshot;
mod tree;

pub use blob::{
    BlobFlags, BlobType, Compression, GROUP_MEMBER_MAX_LEN, GROUP_TARGET_LEN, GroupBuilder,
    MAX_GROUP_LEN, PROBE_MIN_LEN, ParseCompressionError, SealedBlob, SealedGroup, open_blob,
    open_blob_in_place, seal_blob, seal_blob_in_mode, seal_blob_with_id, worth_compressing,
};
pub use config::{CONFIG_MAGIC, ChunkerGear, ChunkerParams, Config, FORMAT_VERSION};
pub use crypto::{MASTER_KEY_LEN, MasterKey};
pub use drill::{DRILL_RECORD_VERSION, DrillRecord};
pub use error::{Error, Result};
pub use id::{Id, ParseIdError};
pub use index::{IndexEntry, IndexPack, IndexSegment};
pub use keyring::{
    Grant, KEYRING_MAGIC, KEYRING_VERSION, MAX_RETIRED_KEYS, decode_keyring, encode_keyring,
};
pub use keyslot::{KEY_SLOT_VERSION, KdfParams, KeySlot, SlotKind};
pub use object::{ObjectKind, open_object, seal_object};
pub use pack::{
    PACK_MAGIC, PACK_TRAILER_LEN, PackBuilder, PackHeaderEntry, decode_pack_header,
    parse_pack_trailer,
};
pub use prune::{MarkedObject, PRUNE_OBJECT_VERSION, PruneLock, PruneMarks};
pub use snapshot::{Snapshot, SnapshotSummary, SourceKind};
pub use tree::{ContentPart, Node, NodeKind, Timestamp, Tree, Xattr};

/// Largest plaintext a single blob may hold (1 GiB): bounds decompression.
pub const MAX_BLOB_LEN: u32 = 1 << 30;

/// Length of the random nonce that starts every encrypted envelope.
pub const NONCE_LEN: usize = 24;
/// Length of the Poly1305 tag that ends every encrypted envelope.
pub const TAG_LEN: usize = 16;
/// Bytes an encrypted envelope adds to its plaintext.
pub const ENVELOPE_OVERHEAD: usize = NONCE_LEN + TAG_LEN;
