//! Shared pieces of Lifeboat's fuzz targets: the fixed test key, sealing by
//! hand (so that a target's input is the plaintext a decoder parses, not
//! bytes that would fail authentication), the input layouts of targets that
//! take more than one field, and the models of the round-trip targets.
//!
//! The envelopes are built from `docs/format.md` §7 (metadata objects) and
//! §8 (blobs); [`key`] checks once, against the crate's own sealers, that
//! these layouts still hold, so a format change cannot silently leave a
//! target fuzzing only the authentication check.

use std::sync::OnceLock;

use lifeboat_format::{
    BlobFlags, BlobType, MasterKey, ObjectKind, open_blob, open_object, seal_blob, seal_object,
};

pub mod chunker_input;
pub mod model;
pub mod record;

/// Password of the key slots in the seed corpus.
pub const PASSWORD: &[u8] = b"fuzz";

/// The fixed master key of the test vectors: bytes 0, 1, …, 71.
pub fn key() -> &'static MasterKey {
    static KEY: OnceLock<MasterKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let bytes: Vec<u8> = (0u8..72).collect();
        let k = MasterKey::from_bytes(&bytes).expect("72 bytes make a master key");
        check_layouts(&k);
        k
    })
}

/// The AAD of a metadata object (§7).
pub fn object_aad(kind: ObjectKind, extra: &[u8]) -> Vec<u8> {
    let mut aad = b"lifeboat object v1".to_vec();
    aad.push(kind as u8);
    aad.extend_from_slice(extra);
    aad
}

/// A metadata object of `kind` whose plaintext is exactly `plain`
/// (payload-encoding byte first), with `extra` AAD (the config prefix).
pub fn seal_object_raw(kind: ObjectKind, extra: &[u8], plain: &[u8]) -> Vec<u8> {
    key()
        .seal(&object_aad(kind, extra), plain)
        .expect("sealing with a valid key")
}

/// The AAD of a blob (§8).
pub fn blob_aad(t: BlobType, flags: u8, raw_len: u32, id: &[u8; 32]) -> Vec<u8> {
    let mut aad = b"lifeboat blob v1".to_vec();
    aad.push(t as u8);
    aad.push(flags);
    aad.extend_from_slice(&raw_len.to_le_bytes());
    aad.extend_from_slice(id);
    aad
}

/// Panics if the hand-built envelopes no longer open with the crate's own
/// openers (or the crate's sealers no longer open with the hand-built AAD).
fn check_layouts(k: &MasterKey) {
    let sealed = seal_object(k, ObjectKind::Index, b"xy", 0).expect("seal");
    let plain = k
        .open(&object_aad(ObjectKind::Index, &[]), &sealed, "layout check")
        .expect("object AAD layout of docs/format.md §7 changed: update fuzz/src/lib.rs");
    assert_eq!(plain, b"\0xy", "object payload encoding changed");
    let by_hand = k
        .seal(&object_aad(ObjectKind::Snapshot, &[]), b"\0ab")
        .expect("seal");
    assert_eq!(
        open_object(k, ObjectKind::Snapshot, &by_hand).expect("hand-sealed object opens"),
        b"ab"
    );
    let blob = seal_blob(k, BlobType::Tree, b"tree", 0).expect("seal blob");
    let aad = blob_aad(BlobType::Tree, blob.flags.0, blob.raw_len, &blob.id.0);
    k.open(&aad, &blob.bytes, "layout check")
        .expect("blob AAD layout of docs/format.md §8 changed: update fuzz/src/lib.rs");
    let id = k.blob_id(b"data");
    let by_hand = k
        .seal(&blob_aad(BlobType::Data, 0, 4, &id.0), b"data")
        .expect("seal");
    assert_eq!(
        open_blob(k, BlobType::Data, &id, BlobFlags(0), 4, &by_hand).expect("hand-sealed blob"),
        b"data"
    );
}

/// The plaintext of an object whose payload is `payload`, stored raw
/// (encoding 0) or as a zstd frame (encoding 1).
pub fn envelope_plain(payload: &[u8], zstd: bool) -> Vec<u8> {
    if zstd {
        let mut v = vec![1u8];
        v.extend_from_slice(&zstd::bulk::compress(payload, 3).expect("zstd compresses"));
        v
    } else {
        let mut v = vec![0u8];
        v.extend_from_slice(payload);
        v
    }
}

/// Input of the `blob_open` target: `type ‖ flags ‖ mode ‖ raw_len (u32 LE)
/// ‖ body`. Mode bit 0 set: the stored `raw_len` is used (below 2 MiB, or
/// past the 1 GiB bound if bit 2 is set too); clear: the length of what the
/// body decodes to. Mode bit 1 set: the id is the keyed hash of a different
/// plaintext, so verification must fail.
#[derive(Debug)]
pub struct BlobInput<'a> {
    /// Type byte (0 data, 1 tree; anything else is not a blob type).
    pub blob_type: u8,
    /// Flags byte, unvalidated.
    pub flags: u8,
    /// See the type's documentation.
    pub mode: u8,
    /// The explicit length.
    pub raw_len: u32,
    /// What is sealed: a zstd frame if the compressed flag is set.
    pub body: &'a [u8],
}

impl<'a> BlobInput<'a> {
    /// Split a fuzz input; `None` if shorter than the 7-byte head.
    pub fn parse(data: &'a [u8]) -> Option<BlobInput<'a>> {
        let (head, body) = data.split_at_checked(7)?;
        Some(BlobInput {
            blob_type: head[0],
            flags: head[1],
            mode: head[2],
            raw_len: u32::from_le_bytes([head[3], head[4], head[5], head[6]]),
            body,
        })
    }

    /// The fuzz input for these fields.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = vec![self.blob_type, self.flags, self.mode];
        v.extend_from_slice(&self.raw_len.to_le_bytes());
        v.extend_from_slice(self.body);
        v
    }
}
