//! Pinned test vectors for repository format v1.
//!
//! The files in `testdata/vectors/` are described in `docs/format.md`
//! ("Test vectors"). The tests here decode the committed files and compare
//! exact values, both through this crate's API and, where it matters, by
//! following the byte layouts of the specification with the raw primitives
//! (XChaCha20-Poly1305, BLAKE3, argon2id, zstd, a hand-written postcard
//! reader), so a change of layout fails even if encoder and decoder change
//! together.
//!
//! `generate` rewrites the files; run it only when the format changes on
//! purpose (it draws fresh nonces, so sealed bytes change every time):
//! `cargo test -p lifeboat-format --test vectors -- --ignored generate`.

// Helpers outside `#[test]` functions panic on bad vectors on purpose.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lifeboat_chunker::Chunker;
use lifeboat_format::{
    BlobFlags, BlobType, ChunkerGear, ChunkerParams, Config, ContentPart, Error, FORMAT_VERSION,
    Id, IndexEntry, IndexPack, IndexSegment, KdfParams, KeySlot, MarkedObject, MasterKey, Node,
    NodeKind, PACK_MAGIC, PACK_TRAILER_LEN, PackBuilder, PackHeaderEntry, PruneLock, PruneMarks,
    Snapshot, SnapshotSummary, SourceKind, Timestamp, Tree, Xattr, decode_pack_header, open_blob,
    parse_pack_trailer, seal_blob,
};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Shared helpers: files, generators, JSON access.

fn vector_path(name: &str) -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/vectors/"
    ))
    .join(name)
}

fn load(name: &str) -> Value {
    let path = vector_path(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn save(name: &str, value: &Value) {
    let mut text = serde_json::to_string_pretty(value).unwrap();
    text.push('\n');
    std::fs::write(vector_path(name), text).unwrap();
}

/// The fixed master key of every vector: bytes 0x00, 0x01, ..., 0x47
/// (data key 00..1f, id key 20..3f, chunker seed 0x4746454443424140).
fn fixed_key_bytes() -> Vec<u8> {
    (0u8..72).collect()
}

fn fixed_key() -> MasterKey {
    MasterKey::from_bytes(&fixed_key_bytes()).unwrap()
}

/// The key named by a vector file's `master_key`, after checking it is the
/// fixed key.
fn file_key(v: &Value) -> MasterKey {
    let bytes = hex_of(&v["master_key"]);
    assert_eq!(bytes, fixed_key_bytes(), "master_key is the fixed key");
    MasterKey::from_bytes(&bytes).unwrap()
}

/// xorshift64 (shifts 13, 7, 17) from a non-zero state; each step yields
/// the low byte of the new state.
fn xorshift64(mut state: u64, len: usize) -> Vec<u8> {
    assert_ne!(state, 0, "xorshift64 needs a non-zero state");
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Bytes described by a generator object (see docs/format.md):
/// `{"hex": H}`, `{"xorshift64": "0x..", "len": N}`,
/// `{"repeat": H, "len": N}` or `{"zeros": N}`.
fn gen_bytes(spec: &Value) -> Vec<u8> {
    if let Some(h) = spec.get("hex") {
        return hex_of(h);
    }
    let len = |s: &Value| usize::try_from(s["len"].as_u64().unwrap()).unwrap();
    if let Some(state) = spec.get("xorshift64") {
        return xorshift64(u64_of(state), len(spec));
    }
    if let Some(pattern) = spec.get("repeat") {
        let p = hex_of(pattern);
        return p.iter().copied().cycle().take(len(spec)).collect();
    }
    if let Some(n) = spec.get("zeros") {
        return vec![0; usize::try_from(n.as_u64().unwrap()).unwrap()];
    }
    panic!("unknown generator {spec}");
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(
        v.as_str()
            .unwrap_or_else(|| panic!("expected hex string, got {v}")),
    )
    .unwrap()
}

fn id_of(v: &Value) -> Id {
    v.as_str().unwrap().parse().unwrap()
}

/// A u64 written as a `"0x…"` hex string (JSON numbers lose precision
/// above 2^53 in many readers).
fn u64_of(v: &Value) -> u64 {
    let s = v.as_str().unwrap();
    u64::from_str_radix(s.strip_prefix("0x").unwrap(), 16).unwrap()
}

fn u64_hex(x: u64) -> String {
    format!("{x:#018x}")
}

fn num(v: &Value) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("expected number, got {v}"))
}

fn num_u32(v: &Value) -> u32 {
    u32::try_from(num(v)).unwrap()
}

fn blob_type_of(v: &Value) -> BlobType {
    BlobType::from_u8(u8::try_from(num(v)).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------
// The layouts of docs/format.md, written out with the raw primitives.

const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// Opens `nonce ‖ ciphertext ‖ tag` under `key` with `aad`.
fn spec_open(key: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    assert!(sealed.len() >= NONCE_LEN + TAG_LEN, "envelope too short");
    let key: &[u8; 32] = key.try_into().unwrap();
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XNonce::try_from(&sealed[..NONCE_LEN]).unwrap();
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed[NONCE_LEN..],
                aad,
            },
        )
        .ok()
}

fn data_key() -> Vec<u8> {
    fixed_key_bytes()[..32].to_vec()
}

fn id_key() -> [u8; 32] {
    fixed_key_bytes()[32..64].try_into().unwrap()
}

fn spec_blob_aad(blob_type: u8, flags: u8, raw_len: u32, id: &Id) -> Vec<u8> {
    let mut aad = b"lifeboat blob v1".to_vec();
    aad.push(blob_type);
    aad.push(flags);
    aad.extend_from_slice(&raw_len.to_le_bytes());
    aad.extend_from_slice(id.as_bytes());
    assert_eq!(aad.len(), 54);
    aad
}

/// Opens a metadata object of `kind` and returns (encoding byte, payload
/// after decoding).
fn spec_open_object(kind: u8, extra: &[u8], sealed: &[u8]) -> (u8, Vec<u8>) {
    let mut aad = b"lifeboat object v1".to_vec();
    aad.push(kind);
    aad.extend_from_slice(extra);
    let plain = spec_open(&data_key(), &aad, sealed).expect("object opens per spec");
    let (encoding, rest) = plain.split_first().unwrap();
    let payload = match encoding {
        0 => rest.to_vec(),
        1 => zstd::stream::decode_all(rest).unwrap(),
        e => panic!("unknown payload encoding {e}"),
    };
    (*encoding, payload)
}

/// Decrypts and decompresses a blob following the specification, checking
/// its keyed id.
fn spec_open_blob(blob_type: u8, flags: u8, raw_len: u32, id: &Id, stored: &[u8]) -> Vec<u8> {
    let aad = spec_blob_aad(blob_type, flags, raw_len, id);
    let body = spec_open(&data_key(), &aad, stored).expect("blob opens per spec");
    let plain = match flags {
        0 => body,
        1 => zstd::stream::decode_all(&body[..]).unwrap(),
        f => panic!("unknown flags {f}"),
    };
    assert_eq!(plain.len(), raw_len as usize);
    assert_eq!(
        blake3::keyed_hash(&id_key(), &plain).as_bytes(),
        id.as_bytes()
    );
    plain
}

/// A reader of the postcard wire format, as much as the format needs.
struct Postcard<'a>(&'a [u8]);

impl Postcard<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().expect("postcard input ends early");
        self.0 = rest;
        *b
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let (b, rest) = self.0.split_at(n);
        self.0 = rest;
        b.to_vec()
    }
    /// Unsigned LEB128, at most 10 bytes.
    fn varint(&mut self) -> u64 {
        let mut out = 0u64;
        for i in 0..10 {
            let b = self.byte();
            out |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return out;
            }
        }
        panic!("varint too long");
    }
    fn u32(&mut self) -> u32 {
        u32::try_from(self.varint()).unwrap()
    }
    fn i64(&mut self) -> i64 {
        let z = self.varint();
        ((z >> 1) as i64) ^ -((z & 1) as i64)
    }
    fn len(&mut self) -> usize {
        usize::try_from(self.varint()).unwrap()
    }
    fn byte_vec(&mut self) -> Vec<u8> {
        let n = self.len();
        self.bytes(n)
    }
    fn string(&mut self) -> String {
        String::from_utf8(self.byte_vec()).unwrap()
    }
    fn id(&mut self) -> Id {
        Id(self.bytes(32).try_into().unwrap())
    }
    fn option<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> Option<T> {
        match self.byte() {
            0 => None,
            1 => Some(f(self)),
            t => panic!("bad option tag {t}"),
        }
    }
    fn seq<T>(&mut self, mut f: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = self.len();
        (0..n).map(|_| f(self)).collect()
    }
    fn timestamp(&mut self) -> Timestamp {
        Timestamp {
            sec: self.i64(),
            nsec: self.u32(),
        }
    }
}

fn spec_decode_tree(bytes: &[u8]) -> Tree {
    let mut r = Postcard(bytes);
    let version = r.u32();
    let nodes = r.seq(|r| {
        let name = r.byte_vec();
        let kind = match r.varint() {
            0 => NodeKind::File,
            1 => NodeKind::Dir,
            2 => NodeKind::Symlink,
            3 => NodeKind::Fifo,
            4 => NodeKind::Socket,
            5 => NodeKind::CharDevice,
            6 => NodeKind::BlockDevice,
            k => panic!("bad node kind {k}"),
        };
        let mut n = Node::new(name, kind);
        n.mode = r.u32();
        n.uid = r.u32();
        n.gid = r.u32();
        n.user = r.option(|r| r.string());
        n.group = r.option(|r| r.string());
        n.mtime = r.timestamp();
        n.atime = r.timestamp();
        n.ctime = r.timestamp();
        n.size = r.varint();
        n.device_id = r.varint();
        n.inode = r.varint();
        n.links = r.varint();
        n.rdev = r.varint();
        n.symlink_target = r.option(|r| r.byte_vec());
        n.xattrs = r.seq(|r| Xattr {
            name: r.byte_vec(),
            value: r.byte_vec(),
        });
        n.content = r.seq(|r| match r.varint() {
            0 => ContentPart::Blob {
                id: r.id(),
                len: r.u32(),
            },
            1 => ContentPart::Hole { len: r.varint() },
            v => panic!("bad content part {v}"),
        });
        n.subtree = r.option(|r| r.id());
        n
    });
    assert!(r.0.is_empty(), "trailing bytes after tree");
    Tree { version, nodes }
}

fn spec_decode_index(bytes: &[u8]) -> IndexSegment {
    let mut r = Postcard(bytes);
    let version = r.u32();
    let supersedes = r.seq(|r| r.id());
    let packs = r.seq(|r| IndexPack {
        id: r.id(),
        blob_type: BlobType::from_u8(u8::try_from(r.varint()).unwrap()).unwrap(),
        size: r.varint(),
        blobs: r.seq(|r| IndexEntry {
            id: r.id(),
            flags: BlobFlags(r.byte()),
            offset: r.u32(),
            stored_len: r.u32(),
            raw_len: r.u32(),
        }),
    });
    assert!(r.0.is_empty(), "trailing bytes after index segment");
    IndexSegment {
        version,
        supersedes,
        packs,
    }
}

// ---------------------------------------------------------------------------
// blob_id.json

#[test]
fn blob_ids_match() {
    let v = load("blob_id.json");
    let key = file_key(&v);
    let cases = v["blob_ids"].as_array().unwrap();
    assert!(cases.len() >= 5);
    for case in cases {
        let plain = gen_bytes(&case["plaintext"]);
        let want = id_of(&case["id"]);
        assert_eq!(key.blob_id(&plain), want, "{}", case["name"]);
        assert_eq!(
            blake3::keyed_hash(&id_key(), &plain).as_bytes(),
            want.as_bytes()
        );
    }
}

#[test]
fn sealed_blobs_open_with_fixed_key() {
    let v = load("blob_id.json");
    let key = file_key(&v);
    let cases = v["sealed_blobs"].as_array().unwrap();
    assert!(cases.iter().any(|c| num(&c["flags"]) == 1));
    assert!(cases.iter().any(|c| num(&c["flags"]) == 0));
    for case in cases {
        let name = &case["name"];
        let blob_type = blob_type_of(&case["type"]);
        let flags = BlobFlags(u8::try_from(num(&case["flags"])).unwrap());
        let raw_len = num_u32(&case["raw_len"]);
        let id = id_of(&case["id"]);
        let stored = hex_of(&case["stored"]);
        let plain = gen_bytes(&case["plaintext"]);
        assert_eq!(plain.len(), raw_len as usize, "{name}");
        assert_eq!(
            open_blob(&key, blob_type, &id, flags, raw_len, &stored).unwrap(),
            plain,
            "{name}"
        );
        assert_eq!(
            spec_open_blob(blob_type as u8, flags.0, raw_len, &id, &stored),
            plain,
            "{name}"
        );
        // The compression decision is part of the format (kept only if it
        // saves at least 1/32); sealing again must decide the same way.
        let again = seal_blob(&key, blob_type, &plain, 3).unwrap();
        assert_eq!((again.id, again.flags, again.raw_len), (id, flags, raw_len));

        // Every bound field is authenticated.
        let other_type = match blob_type {
            BlobType::Data => BlobType::Tree,
            BlobType::Tree => BlobType::Data,
        };
        let other_id = key.blob_id(b"some other blob");
        assert!(open_blob(&key, other_type, &id, flags, raw_len, &stored).is_err());
        assert!(open_blob(&key, blob_type, &other_id, flags, raw_len, &stored).is_err());
        assert!(
            open_blob(
                &key,
                blob_type,
                &id,
                BlobFlags(flags.0 ^ 1),
                raw_len,
                &stored
            )
            .is_err()
        );
        assert!(open_blob(&key, blob_type, &id, flags, raw_len + 1, &stored).is_err());
        assert!(matches!(
            open_blob(
                &key,
                blob_type,
                &id,
                BlobFlags(flags.0 | 4),
                raw_len,
                &stored
            ),
            Err(Error::Malformed { .. })
        ));
        let mut bad = stored.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0x80;
        assert!(matches!(
            open_blob(&key, blob_type, &id, flags, raw_len, &bad),
            Err(Error::Authentication { .. })
        ));
    }
}

// ---------------------------------------------------------------------------
// chunker.json

/// A reader that hands out at most 7919 bytes per call.
struct Dribble<'a>(&'a [u8]);

impl Read for Dribble<'_> {
    fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
        let n = b.len().min(self.0.len()).min(7919);
        b[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn chunk_boundaries_match() {
    let v = load("chunker.json");
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 6);
    for case in cases {
        let name = &case["name"];
        let size = |k: &str| usize::try_from(num(&case[k])).unwrap();
        let c = Chunker::new(size("min"), size("avg"), size("max"), u64_of(&case["seed"])).unwrap();
        let input = gen_bytes(&case["input"]);
        let want: Vec<usize> = case["lengths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| usize::try_from(num(l)).unwrap())
            .collect();
        assert_eq!(want.iter().sum::<usize>(), input.len(), "{name}");

        let mut offset = 0;
        let got: Vec<usize> = c
            .chunks(&input)
            .map(|(o, l)| {
                assert_eq!(o, offset);
                offset += l;
                l
            })
            .collect();
        assert_eq!(got, want, "{name}: whole input");

        let streamed: Vec<usize> = c
            .stream(Dribble(&input))
            .map(|r| r.unwrap().len())
            .collect();
        assert_eq!(streamed, want, "{name}: streamed");
    }
}

// ---------------------------------------------------------------------------
// keyslot.json

#[test]
fn keyslot_opens_with_password_only() {
    let v = load("keyslot.json");
    let stored = v["stored"].as_str().unwrap().as_bytes();
    assert_eq!(Id::of_object(stored), id_of(&v["slot_id"]));
    let slot = KeySlot::from_json(stored).unwrap();
    assert_eq!(slot.version, 1);
    assert_eq!(slot.kdf, "argon2id");
    assert_eq!(
        slot.params,
        KdfParams {
            memory_kib: 256,
            iterations: 1,
            parallelism: 1
        }
    );
    assert_eq!(slot.salt, hex_of(&v["salt"]));
    assert_eq!(slot.salt.len(), 32);
    assert_eq!(slot.wrapped_key.len(), 24 + 72 + 16);
    assert_eq!(slot.created, "2026-01-01T00:00:00Z");
    assert_eq!(slot.hostname, "vector-host");
    assert_eq!(slot.username, "vector-user");
    // The writer's JSON form is pinned too.
    assert_eq!(slot.to_json(), stored);

    let password = v["password"].as_str().unwrap().as_bytes();
    let master = slot.open(password).unwrap();
    assert_eq!(*master.to_bytes(), hex_of(&v["master_key"]));
    assert_eq!(*master.to_bytes(), fixed_key_bytes());
    let wrong = v["wrong_password"].as_str().unwrap().as_bytes();
    assert!(matches!(slot.open(wrong), Err(Error::WrongPassword)));

    // Version 2 (§5.1) needs a public key; version 3 does not exist.
    let mut v2 = slot.clone();
    v2.version = 2;
    assert!(matches!(v2.open(password), Err(Error::Malformed { .. })));
    let mut v3 = slot.clone();
    v3.version = 3;
    assert!(matches!(
        v3.open(password),
        Err(Error::UnsupportedVersion { found: 3, .. })
    ));
}

#[test]
fn keyslot_follows_the_spec() {
    let v = load("keyslot.json");
    let slot: Value = serde_json::from_str(v["stored"].as_str().unwrap()).unwrap();
    let params = argon2::Params::new(
        num_u32(&slot["params"]["memory_kib"]),
        num_u32(&slot["params"]["iterations"]),
        num_u32(&slot["params"]["parallelism"]),
        Some(32),
    )
    .unwrap();
    let mut kek = [0u8; 32];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(
            v["password"].as_str().unwrap().as_bytes(),
            &hex_of(&slot["salt"]),
            &mut kek,
        )
        .unwrap();
    let master = spec_open(&kek, b"lifeboat keyslot v1", &hex_of(&slot["wrapped_key"]))
        .expect("wrapped key opens per spec");
    assert_eq!(master, fixed_key_bytes());
}

// ---------------------------------------------------------------------------
// config.json

#[test]
fn config_decodes() {
    let v = load("config.json");
    let key = file_key(&v);
    let stored = hex_of(&v["stored"]);
    assert_eq!(&stored[..8], b"LIFEBOAT");
    assert_eq!(&stored[8..12], &[1, 0, 0, 0]);
    assert_eq!(Config::peek_version(&stored).unwrap(), 1);

    let cfg = Config::decode(&key, &stored).unwrap();
    let want = &v["config"];
    assert_eq!(cfg.version, FORMAT_VERSION);
    assert_eq!(cfg.version, num_u32(&want["version"]));
    assert_eq!(cfg.id, id_of(&want["id"]));
    assert_eq!(
        cfg.chunker,
        ChunkerParams {
            min_size: num_u32(&want["chunker"]["min_size"]),
            avg_size: num_u32(&want["chunker"]["avg_size"]),
            max_size: num_u32(&want["chunker"]["max_size"]),
        }
    );
    assert_eq!(cfg.chunker, ChunkerParams::default());
    assert_eq!(
        i64::from(cfg.compression_level),
        want["compression_level"].as_i64().unwrap()
    );
    assert_eq!(cfg.pack_size, num_u32(&want["pack_size"]));
    assert_eq!(cfg.created, want["created"].as_str().unwrap());

    let (encoding, json) = spec_open_object(0, &stored[..12], &stored[12..]);
    assert_eq!(encoding, 0);
    assert_eq!(json, v["plaintext"].as_str().unwrap().as_bytes());
    assert_eq!(serde_json::from_slice::<Value>(&json).unwrap(), *want);
}

#[test]
fn config_version_is_refused_before_the_key_is_needed() {
    let v = load("config.json");
    let stored = hex_of(&v["stored"]);
    let other_key = MasterKey::from_bytes(&[9u8; 72]).unwrap();
    assert!(matches!(
        Config::decode(&other_key, &stored),
        Err(Error::Authentication { .. })
    ));
    let mut v2 = stored.clone();
    v2[8] = 2;
    assert!(matches!(
        Config::decode(&other_key, &v2),
        Err(Error::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        })
    ));
    // The prefix is authenticated: a reader that knew version 2 could not
    // be fed a version-1 body under a version-2 prefix.
    let key = file_key(&v);
    let mut magic = stored.clone();
    magic[0] = b'l';
    assert!(Config::decode(&key, &magic).is_err());
    assert!(
        spec_open(
            &data_key(),
            b"lifeboat object v1\x00LIFEBOAT\x02\0\0\0",
            &stored[12..]
        )
        .is_none()
    );
}

// ---------------------------------------------------------------------------
// pack.json

#[test]
fn packs_decode_and_every_blob_opens() {
    let v = load("pack.json");
    let key = file_key(&v);
    let packs = v["packs"].as_array().unwrap();
    assert_eq!(packs.len(), 2);
    for pack in packs {
        let name = &pack["name"];
        let bytes = hex_of(&pack["stored"]);
        assert_eq!(Id::of_object(&bytes), id_of(&pack["id"]), "{name}");
        let hlen = parse_pack_trailer(&bytes).unwrap();
        assert_eq!(hlen, num_u32(&pack["header_len"]), "{name}");
        let hend = bytes.len() - PACK_TRAILER_LEN;
        let hstart = hend - hlen as usize;
        let entries = decode_pack_header(&key, &bytes[hstart..hend], bytes.len() as u64).unwrap();
        let want = pack["entries"].as_array().unwrap();
        assert_eq!(entries.len(), want.len(), "{name}");
        let mut next_offset = 0;
        for (e, w) in entries.iter().zip(want) {
            let expect = PackHeaderEntry {
                blob_type: blob_type_of(&w["type"]),
                flags: BlobFlags(u8::try_from(num(&w["flags"])).unwrap()),
                offset: num_u32(&w["offset"]),
                stored_len: num_u32(&w["stored_len"]),
                raw_len: num_u32(&w["raw_len"]),
                id: id_of(&w["id"]),
            };
            assert_eq!(*e, expect, "{name}");
            assert_eq!(e.offset, next_offset, "{name}: blobs are contiguous");
            next_offset += e.stored_len;
            let stored = &bytes[e.offset as usize..(e.offset + e.stored_len) as usize];
            let plain = open_blob(&key, e.blob_type, &e.id, e.flags, e.raw_len, stored).unwrap();
            assert_eq!(plain, gen_bytes(&w["plaintext"]), "{name}");
            if let Some(tree) = w.get("tree") {
                let decoded = Tree::decode(&plain).unwrap();
                let want: Tree = serde_json::from_value(tree.clone()).unwrap();
                assert_eq!(decoded, want, "{name}");
                // Encoding is deterministic: re-encoding gives the same bytes.
                assert_eq!(decoded.encode().unwrap(), plain);
            }
        }
        assert_eq!(
            next_offset as usize, hstart,
            "{name}: header follows the blobs"
        );
    }
}

#[test]
fn packs_follow_the_spec() {
    let v = load("pack.json");
    for pack in v["packs"].as_array().unwrap() {
        let bytes = hex_of(&pack["stored"]);
        let trailer = &bytes[bytes.len() - 12..];
        assert_eq!(&trailer[4..10], b"LBPACK");
        assert_eq!(&trailer[4..10], PACK_MAGIC);
        assert_eq!(&trailer[10..], &[1, 0]);
        let hlen = u32::from_le_bytes(trailer[..4].try_into().unwrap()) as usize;
        let hend = bytes.len() - 12;
        let (encoding, header) = spec_open_object(3, &[], &bytes[hend - hlen..hend]);
        assert_eq!(encoding, 0, "pack headers are stored raw");
        assert_eq!(header.len() % 46, 0);
        let want = pack["entries"].as_array().unwrap();
        assert_eq!(header.len() / 46, want.len());
        for (e, w) in header.chunks_exact(46).zip(want) {
            let u32_at = |i: usize| u32::from_le_bytes(e[i..i + 4].try_into().unwrap());
            assert_eq!(u64::from(e[0]), num(&w["type"]));
            assert_eq!(u64::from(e[1]), num(&w["flags"]));
            assert_eq!(u32_at(2), num_u32(&w["offset"]));
            assert_eq!(u32_at(6), num_u32(&w["stored_len"]));
            assert_eq!(u32_at(10), num_u32(&w["raw_len"]));
            let id = Id(e[14..46].try_into().unwrap());
            assert_eq!(id, id_of(&w["id"]));
            let stored = &bytes[u32_at(2) as usize..(u32_at(2) + u32_at(6)) as usize];
            let plain = spec_open_blob(e[0], e[1], u32_at(10), &id, stored);
            assert_eq!(plain, gen_bytes(&w["plaintext"]));
            if w.get("tree").is_some() {
                assert_eq!(spec_decode_tree(&plain), Tree::decode(&plain).unwrap());
            }
        }
    }
}

#[test]
fn pack_corruption_is_detected() {
    let v = load("pack.json");
    let key = file_key(&v);
    let bytes = hex_of(&v["packs"][0]["stored"]);
    let n = bytes.len();
    let mut version = bytes.clone();
    version[n - 2] = 2;
    assert!(matches!(
        parse_pack_trailer(&version),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
    let mut magic = bytes.clone();
    magic[n - 8] ^= 1;
    assert!(matches!(
        parse_pack_trailer(&magic),
        Err(Error::Malformed { .. })
    ));
    let hlen = parse_pack_trailer(&bytes).unwrap() as usize;
    let header = &bytes[n - 12 - hlen..n - 12];
    // A header claiming blobs beyond the data area is refused.
    assert!(decode_pack_header(&key, header, (n - 1) as u64).is_err());
    let mut flipped = header.to_vec();
    flipped[30] ^= 1;
    assert!(matches!(
        decode_pack_header(&key, &flipped, n as u64),
        Err(Error::Authentication { .. })
    ));
}

// ---------------------------------------------------------------------------
// index.json

#[test]
fn index_segment_decodes() {
    let v = load("index.json");
    let key = file_key(&v);
    let stored = hex_of(&v["stored"]);
    assert_eq!(Id::of_object(&stored), id_of(&v["id"]));
    let seg = IndexSegment::decode(&key, &stored).unwrap();
    let want: IndexSegment = serde_json::from_value(v["segment"].clone()).unwrap();
    assert_eq!(seg, want);
    assert_eq!(seg.version, 1);
    assert_eq!(seg.blob_count(), 5);

    let plaintext = hex_of(&v["plaintext"]);
    assert_eq!(postcard::to_allocvec(&seg).unwrap(), plaintext);
    let (encoding, payload) = spec_open_object(1, &[], &stored);
    assert_eq!(encoding, 0);
    assert_eq!(payload, plaintext);
    assert_eq!(spec_decode_index(&plaintext), want);

    // The segment describes the packs of pack.json exactly.
    let packs = load("pack.json");
    for (p, w) in seg.packs.iter().zip(packs["packs"].as_array().unwrap()) {
        assert_eq!(p.id, id_of(&w["id"]));
        assert_eq!(p.size, hex_of(&w["stored"]).len() as u64);
        let entries = w["entries"].as_array().unwrap();
        assert_eq!(p.blobs.len(), entries.len());
        for (b, e) in p.blobs.iter().zip(entries) {
            assert_eq!(b.id, id_of(&e["id"]));
            assert_eq!(b.offset, num_u32(&e["offset"]));
        }
    }
}

#[test]
fn index_segment_with_unknown_flags_is_refused() {
    let key = fixed_key();
    let mut seg: IndexSegment =
        serde_json::from_value(load("index.json")["segment"].clone()).unwrap();
    seg.packs[0].blobs[0].flags = BlobFlags(0x80);
    let stored = seg.encode(&key).unwrap();
    assert!(matches!(
        IndexSegment::decode(&key, &stored),
        Err(Error::Malformed { .. })
    ));
    seg.packs[0].blobs[0].flags = BlobFlags(0);
    seg.version = 2;
    let stored = seg.encode(&key).unwrap();
    assert!(matches!(
        IndexSegment::decode(&key, &stored),
        Err(Error::UnsupportedVersion { found: 2, .. })
    ));
}

// ---------------------------------------------------------------------------
// snapshot.json

#[test]
fn snapshot_decodes() {
    let v = load("snapshot.json");
    let key = file_key(&v);
    let stored = hex_of(&v["stored"]);
    assert_eq!(Id::of_object(&stored), id_of(&v["id"]));
    let snap = Snapshot::decode(&key, &stored).unwrap();
    let want: Snapshot = serde_json::from_value(v["snapshot"].clone()).unwrap();
    assert_eq!(snap, want);
    assert_eq!(snap.source, SourceKind::Fs);
    assert_eq!(snap.tree, id_of(&v["snapshot"]["tree"]));

    let (encoding, json) = spec_open_object(2, &[], &stored);
    assert_eq!(encoding, 1, "snapshots are compressed when it pays");
    assert_eq!(json, v["plaintext"].as_str().unwrap().as_bytes());
    assert_eq!(
        serde_json::from_slice::<Value>(&json).unwrap(),
        v["snapshot"]
    );

    // The snapshot's tree is the root tree blob of pack.json.
    let packs = load("pack.json");
    let trees = packs["packs"][1]["entries"].as_array().unwrap();
    assert!(trees.iter().any(|e| id_of(&e["id"]) == snap.tree));

    // An object of one kind cannot be opened as another.
    assert!(IndexSegment::decode(&key, &stored).is_err());
}

// ---------------------------------------------------------------------------
// Generator. Run once when the format changes on purpose; see the file doc.

fn repeat_spec(text: &[u8], len: usize) -> Value {
    json!({"repeat": hex::encode(text), "len": len})
}

fn xorshift_spec(state: u64, len: usize) -> Value {
    json!({"xorshift64": u64_hex(state), "len": len})
}

fn ts(sec: i64, nsec: u32) -> Timestamp {
    Timestamp { sec, nsec }
}

/// The data blobs of the vector data pack: (name, plaintext generator).
fn data_blob_specs() -> Vec<(&'static str, Value)> {
    vec![
        (
            "hello.txt",
            json!({"hex": hex::encode(b"hello, lifeboat\n")}),
        ),
        ("repeat-64KiB", repeat_spec(b"lifeboat ", 65536)),
        ("xorshift-4KiB", xorshift_spec(0x0123_4567_89ab_cdef, 4096)),
    ]
}

/// The root tree of the vector repository; `ids` are the data blob ids in
/// the order of [`data_blob_specs`].
fn root_tree(ids: &[Id], empty_tree: Id) -> Tree {
    let mut dir = Node::new("dir", NodeKind::Dir);
    dir.mode = 0o755;
    dir.uid = 1000;
    dir.gid = 1000;
    dir.user = Some("alice".into());
    dir.group = Some("staff".into());
    dir.mtime = ts(1_767_225_600, 500);
    dir.atime = ts(1_767_225_601, 0);
    dir.ctime = ts(1_767_225_602, 999_999_999);
    dir.device_id = 0x803;
    dir.inode = 2;
    dir.links = 2;
    dir.subtree = Some(empty_tree);

    let mut hello = Node::new("hello.txt", NodeKind::File);
    hello.mode = 0o644;
    hello.uid = 1000;
    hello.gid = 1000;
    hello.mtime = ts(1_767_225_600, 123_456_789);
    hello.size = 16;
    hello.device_id = 0x803;
    hello.inode = 12;
    hello.links = 1;
    hello.xattrs = vec![Xattr {
        name: b"user.comment".to_vec(),
        value: b"hi".to_vec(),
    }];
    hello.content = vec![ContentPart::Blob {
        id: ids[0],
        len: 16,
    }];

    let mut link = Node::new("link", NodeKind::Symlink);
    link.mode = 0o777;
    link.symlink_target = Some(b"hello.txt".to_vec());
    link.inode = 13;
    link.links = 1;

    let mut null = Node::new("null", NodeKind::CharDevice);
    null.mode = 0o666;
    null.rdev = 0x103;
    null.inode = 14;
    null.links = 1;

    let mut sparse = Node::new(b"sparse\xff".to_vec(), NodeKind::File);
    sparse.mode = 0o4750;
    sparse.uid = 4_294_967_294;
    sparse.gid = 65534;
    sparse.mtime = ts(-1, 999_999_999);
    sparse.size = 65536 + (1 << 20) + 4096;
    sparse.inode = 15;
    sparse.links = 3;
    sparse.content = vec![
        ContentPart::Blob {
            id: ids[1],
            len: 65536,
        },
        ContentPart::Hole { len: 1 << 20 },
        ContentPart::Blob {
            id: ids[2],
            len: 4096,
        },
    ];

    Tree::new(vec![sparse, null, link, hello, dir])
}

fn sealed_blob_json(key: &MasterKey, name: &str, blob_type: BlobType, spec: Value) -> Value {
    let s = seal_blob(key, blob_type, &gen_bytes(&spec), 3).unwrap();
    json!({
        "name": name,
        "type": blob_type as u8,
        "flags": s.flags.0,
        "raw_len": s.raw_len,
        "id": s.id.to_hex(),
        "plaintext": spec,
        "stored": hex::encode(&s.bytes),
    })
}

fn pack_json(key: &MasterKey, name: &str, blob_type: BlobType, blobs: Vec<(&str, Value)>) -> Value {
    let mut b = PackBuilder::new(blob_type, 0);
    let mut extra = Vec::new();
    for (_, spec) in &blobs {
        let plain = gen_bytes(spec);
        b.add(&seal_blob(key, blob_type, &plain, 3).unwrap())
            .unwrap();
        extra.push(if blob_type == BlobType::Tree {
            Some(serde_json::to_value(Tree::decode(&plain).unwrap()).unwrap())
        } else {
            None
        });
    }
    let (bytes, id, entries) = b.finish(key).unwrap();
    let entries: Vec<Value> = entries
        .iter()
        .zip(&blobs)
        .zip(extra)
        .map(|((e, (name, spec)), tree)| {
            let mut v = json!({
                "name": name,
                "type": e.blob_type as u8,
                "flags": e.flags.0,
                "offset": e.offset,
                "stored_len": e.stored_len,
                "raw_len": e.raw_len,
                "id": e.id.to_hex(),
                "plaintext": spec,
            });
            if let Some(t) = tree {
                v["tree"] = t;
            }
            v
        })
        .collect();
    json!({
        "name": name,
        "id": id.to_hex(),
        "header_len": parse_pack_trailer(&bytes).unwrap(),
        "entries": entries,
        "stored": hex::encode(&bytes),
    })
}

#[test]
#[ignore = "rewrites testdata/vectors; run by hand when the format changes"]
fn generate() {
    let key = fixed_key();
    let key_hex = hex::encode(fixed_key_bytes());
    let note = "Repository format v1 test vectors; see docs/format.md, section Test vectors.";

    // blob_id.json
    let plaintexts = [
        ("empty", json!({"hex": ""})),
        ("abc", json!({"hex": hex::encode(b"abc")})),
        ("hello", json!({"hex": hex::encode(b"hello, lifeboat\n")})),
        ("zeros-1MiB", json!({"zeros": 1 << 20})),
        ("repeat-1MiB", repeat_spec(b"lifeboat ", 1 << 20)),
        (
            "xorshift-1MiB",
            xorshift_spec(0x9e37_79b9_7f4a_7c15, 1 << 20),
        ),
    ];
    let blob_ids: Vec<Value> = plaintexts
        .iter()
        .map(|(name, spec)| {
            json!({"name": name, "plaintext": spec, "id": key.blob_id(&gen_bytes(spec)).to_hex()})
        })
        .collect();
    let empty_tree = Tree::new(vec![]).encode().unwrap();
    let sealed: Vec<Value> = [
        (
            "data-compressed",
            BlobType::Data,
            repeat_spec(b"lifeboat ", 4096),
        ),
        (
            "data-raw",
            BlobType::Data,
            xorshift_spec(0x0123_4567_89ab_cdef, 256),
        ),
        ("data-empty", BlobType::Data, json!({"hex": ""})),
        (
            "tree-empty",
            BlobType::Tree,
            json!({"hex": hex::encode(&empty_tree)}),
        ),
    ]
    .into_iter()
    .map(|(name, t, spec)| sealed_blob_json(&key, name, t, spec))
    .collect();
    save(
        "blob_id.json",
        &json!({
            "description": note,
            "master_key": key_hex,
            "blob_ids": blob_ids,
            "sealed_blobs": sealed,
        }),
    );

    // chunker.json
    let seed = key.chunker_seed();
    let small = (4096usize, 16384usize, 65536usize);
    let default = (512usize << 10, 1usize << 20, 8usize << 20);
    let cases = [
        (
            "small-xorshift",
            seed,
            small,
            xorshift_spec(0x1234_5678_9abc_def0, 1_000_000),
        ),
        (
            "small-xorshift-seed0",
            0,
            small,
            xorshift_spec(0x1234_5678_9abc_def0, 1_000_000),
        ),
        ("small-zeros", seed, small, json!({"zeros": 200_000})),
        (
            "small-short",
            seed,
            small,
            xorshift_spec(0x1234_5678_9abc_def0, 4000),
        ),
        ("small-empty", seed, small, json!({"hex": ""})),
        (
            "default-xorshift",
            seed,
            default,
            xorshift_spec(0x0fed_cba9_8765_4321, 16 << 20),
        ),
        (
            "default-repeat",
            seed,
            default,
            repeat_spec(b"lifeboat ", 20 << 20),
        ),
    ];
    let cases: Vec<Value> = cases
        .into_iter()
        .map(|(name, seed, (min, avg, max), input)| {
            let c = Chunker::new(min, avg, max, seed).unwrap();
            let data = gen_bytes(&input);
            let lengths: Vec<usize> = c.chunks(&data).map(|(_, l)| l).collect();
            json!({
                "name": name, "seed": u64_hex(seed), "min": min, "avg": avg, "max": max,
                "input": input, "lengths": lengths,
            })
        })
        .collect();
    save(
        "chunker.json",
        &json!({"description": note, "cases": cases}),
    );

    // keyslot.json
    let params = KdfParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
    };
    let salt: Vec<u8> = (0xa0u8..0xc0).collect();
    let password = "correct horse battery staple";
    let slot = KeySlot::create_with_salt(
        &key,
        password.as_bytes(),
        params,
        salt.clone(),
        "2026-01-01T00:00:00Z".into(),
        "vector-host".into(),
        "vector-user".into(),
    )
    .unwrap();
    let stored = String::from_utf8(slot.to_json()).unwrap();
    save(
        "keyslot.json",
        &json!({
            "description": note,
            "master_key": key_hex,
            "password": password,
            "wrong_password": "Correct horse battery staple",
            "salt": hex::encode(&salt),
            "slot_id": Id::of_object(stored.as_bytes()).to_hex(),
            "stored": stored,
        }),
    );

    // config.json
    let cfg = Config {
        version: FORMAT_VERSION,
        id: Id(*blake3::hash(b"lifeboat vector repository").as_bytes()),
        chunker: ChunkerParams::default(),
        // The vector is a config as written before keyed gear tables.
        chunker_gear: ChunkerGear::Seeded,
        compression_level: 3,
        compression: None,
        pack_size: 16 << 20,
        created: "2026-01-01T00:00:00Z".into(),
        append_only: false,
    };
    let stored = cfg.encode(&key).unwrap();
    save(
        "config.json",
        &json!({
            "description": note,
            "master_key": key_hex,
            "config": serde_json::to_value(&cfg).unwrap(),
            "plaintext": String::from_utf8(serde_json::to_vec(&cfg).unwrap()).unwrap(),
            "stored": hex::encode(&stored),
        }),
    );

    // pack.json: a data pack and a tree pack forming a small file tree.
    let data_specs = data_blob_specs();
    let data_ids: Vec<Id> = data_specs
        .iter()
        .map(|(_, s)| key.blob_id(&gen_bytes(s)))
        .collect();
    let empty_id = key.blob_id(&empty_tree);
    let root = root_tree(&data_ids, empty_id).encode().unwrap();
    let root_id = key.blob_id(&root);
    let tree_specs = vec![
        ("empty-tree", json!({"hex": hex::encode(&empty_tree)})),
        ("root-tree", json!({"hex": hex::encode(&root)})),
    ];
    // "data"/"tree" name the vector's two packs in pack.json (the spec's names), not store folders.
    let data_pack = pack_json(&key, "data", BlobType::Data, data_specs);
    let tree_pack = pack_json(&key, "tree", BlobType::Tree, tree_specs);
    save(
        "pack.json",
        &json!({
            "description": note,
            "master_key": key_hex,
            "packs": [data_pack.clone(), tree_pack.clone()],
        }),
    );

    // index.json: one segment describing both packs.
    let mut seg = IndexSegment::new();
    seg.supersedes = vec![Id(*blake3::hash(b"an older index segment").as_bytes())];
    for p in [&data_pack, &tree_pack] {
        let bytes = hex_of(&p["stored"]);
        let blobs = p["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| IndexEntry {
                id: id_of(&e["id"]),
                flags: BlobFlags(u8::try_from(num(&e["flags"])).unwrap()),
                offset: num_u32(&e["offset"]),
                stored_len: num_u32(&e["stored_len"]),
                raw_len: num_u32(&e["raw_len"]),
            })
            .collect();
        seg.packs.push(IndexPack {
            id: id_of(&p["id"]),
            blob_type: blob_type_of(&p["entries"][0]["type"]),
            size: bytes.len() as u64,
            blobs,
        });
    }
    let stored = seg.encode(&key).unwrap();
    save(
        "index.json",
        &json!({
            "description": note,
            "master_key": key_hex,
            "id": Id::of_object(&stored).to_hex(),
            "segment": serde_json::to_value(&seg).unwrap(),
            "plaintext": hex::encode(postcard::to_allocvec(&seg).unwrap()),
            "stored": hex::encode(&stored),
        }),
    );

    // snapshot.json
    let snap = Snapshot {
        version: 1,
        time: "2026-01-01T00:00:00Z".into(),
        tree: root_id,
        paths: vec!["/data".into()],
        hostname: "vector-host".into(),
        username: "vector-user".into(),
        tags: vec!["daily".into(), "vector".into()],
        source: SourceKind::Fs,
        source_meta: BTreeMap::from([("pvc".to_string(), "data-0".to_string())]),
        parent: Some(Id(*blake3::hash(b"a parent snapshot").as_bytes())),
        excludes: vec!["*.tmp".into()],
        incomplete: vec![],
        summary: Some(SnapshotSummary {
            files_new: 3,
            files_changed: 0,
            files_unchanged: 0,
            dirs: 2,
            bytes_total: 65536 + 4096 + 16,
            bytes_read: 65536 + 4096 + 16,
            bytes_added: 65536 + 4096 + 16,
            bytes_stored: 5000,
            data_blobs: 3,
            tree_blobs: 2,
            errors: 0,
            start: "2026-01-01T00:00:00Z".into(),
            end: "2026-01-01T00:00:01.5Z".into(),
            duration_secs: 1.5,
        }),
        program: "lifeboat 0.1.0".into(),
    };
    let stored = snap.encode(&key, 3).unwrap();
    save(
        "snapshot.json",
        &json!({
            "description": note,
            "master_key": key_hex,
            "id": Id::of_object(&stored).to_hex(),
            "snapshot": serde_json::to_value(&snap).unwrap(),
            "plaintext": String::from_utf8(serde_json::to_vec(&snap).unwrap()).unwrap(),
            "stored": hex::encode(&stored),
        }),
    );
}

// ---------------------------------------------------------------------------
// prune.json: a mark object and a prune lock (format.md §7.2)

fn spec_decode_marks(bytes: &[u8]) -> PruneMarks {
    let mut r = Postcard(bytes);
    let m = PruneMarks {
        version: r.u32(),
        created: r.varint(),
        supersedes: r.seq(|r| r.id()),
        objects: r.seq(|r| MarkedObject {
            path: r.string(),
            size: r.varint(),
            marked: r.varint(),
            delete_after: r.varint(),
        }),
    };
    assert!(r.0.is_empty(), "trailing bytes after prune marks");
    m
}

fn spec_decode_lock(bytes: &[u8]) -> PruneLock {
    let mut r = Postcard(bytes);
    let l = PruneLock {
        version: r.u32(),
        nonce: r.id(),
        created: r.varint(),
        ttl_secs: r.varint(),
        hostname: r.string(),
    };
    assert!(r.0.is_empty(), "trailing bytes after prune lock");
    l
}

#[test]
fn prune_objects_decode() {
    let v = load("prune.json");
    let key = file_key(&v);
    let stored = hex_of(&v["marks"]["stored"]);
    assert_eq!(Id::of_object(&stored), id_of(&v["marks"]["id"]));
    let want: PruneMarks = serde_json::from_value(v["marks"]["object"].clone()).unwrap();
    assert_eq!(PruneMarks::decode(&key, &stored).unwrap(), want);
    let (encoding, payload) = spec_open_object(5, &[], &stored);
    assert_eq!(encoding, 0);
    assert_eq!(payload, hex_of(&v["marks"]["plaintext"]));
    assert_eq!(spec_decode_marks(&payload), want);
    assert!(PruneLock::decode(&key, &stored).is_err(), "kind is bound");

    let stored = hex_of(&v["lock"]["stored"]);
    let want: PruneLock = serde_json::from_value(v["lock"]["object"].clone()).unwrap();
    assert_eq!(PruneLock::decode(&key, &stored).unwrap(), want);
    let (encoding, payload) = spec_open_object(6, &[], &stored);
    assert_eq!(encoding, 0);
    assert_eq!(spec_decode_lock(&payload), want);
    assert_eq!(want.expires(), want.created + want.ttl_secs);
}

#[test]
#[ignore = "rewrites testdata/vectors/prune.json"]
fn generate_prune() {
    let key = fixed_key();
    let marks = PruneMarks {
        version: 1,
        created: 1_767_225_600,
        supersedes: vec![Id(*blake3::hash(b"an older mark object").as_bytes())],
        objects: vec![
            MarkedObject {
                path: format!("data/ab/ab{}", "0".repeat(62)),
                size: 16_777_216,
                marked: 1_767_139_200,
                delete_after: 1_767_225_600,
            },
            MarkedObject {
                path: "staging/host-1-1767139200000000000".into(),
                size: 4096,
                marked: 1_767_225_600,
                delete_after: 1_767_312_000,
            },
        ],
    };
    let stored = marks.encode(&key).unwrap();
    let lock = PruneLock {
        version: 1,
        nonce: Id(*blake3::hash(b"a lock nonce").as_bytes()),
        created: 1_767_225_600,
        ttl_secs: 3600,
        hostname: "vector-host".into(),
    };
    let lock_stored = lock.encode(&key).unwrap();
    save(
        "prune.json",
        &json!({
            "description": "Repository format v1 test vectors; see docs/format.md, section Test vectors.",
            "master_key": hex::encode(fixed_key_bytes()),
            "marks": {
                "id": Id::of_object(&stored).to_hex(),
                "object": serde_json::to_value(&marks).unwrap(),
                "plaintext": hex::encode(postcard::to_allocvec(&marks).unwrap()),
                "stored": hex::encode(&stored),
            },
            "lock": {
                "path": lifeboat_format::layout::prune_lock_path(1),
                "object": serde_json::to_value(&lock).unwrap(),
                "stored": hex::encode(&lock_stored),
            },
        }),
    );
}
