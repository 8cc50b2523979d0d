//! The group vector (`testdata/vectors/group.json`, docs/format.md §8.1):
//! a data pack of one blob sealed alone and one group of four small blobs,
//! opened through the crate's API and by hand from the document with the
//! raw primitives (BLAKE3, XChaCha20-Poly1305, zstd). Written once by the
//! ignored `generate_group` test, on its own so that the other vector files
//! keep their bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lifeboat_format::{
    BlobFlags, BlobType, Compression, GroupBuilder, Id, MasterKey, PACK_TRAILER_LEN, PackBuilder,
    decode_pack_header, open_blob, parse_pack_trailer, seal_blob,
};
use serde_json::{Value, json};

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/group.json")
}

fn key_bytes() -> Vec<u8> {
    (0u8..72).collect()
}

fn xorshift(mut s: u64, n: usize) -> Vec<u8> {
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// The blob sealed alone, then the four members of the group.
fn plaintexts() -> (Vec<u8>, Vec<Vec<u8>>) {
    (
        b"a blob sealed alone".to_vec(),
        vec![
            b"fn main() { println!(\"hello, group\"); }\n".repeat(20),
            Vec::new(),
            xorshift(0x9e37_79b9_7f4a_7c15, 1000),
            b"fn main() { println!(\"hello, again\"); }\n".repeat(25),
        ],
    )
}

#[test]
#[ignore = "rewrites testdata/vectors/group.json"]
fn generate_group() {
    let key = MasterKey::from_bytes(&key_bytes()).unwrap();
    let (alone, members) = plaintexts();
    let mut pack = PackBuilder::new(BlobType::Data, 0);
    pack.add(&seal_blob(&key, BlobType::Data, &alone, 3).unwrap())
        .unwrap();
    let mut g = GroupBuilder::new(BlobType::Data);
    for m in &members {
        g.push(key.blob_id(m), m).unwrap();
    }
    pack.add_group(&g.seal(&key, Compression::Auto).unwrap())
        .unwrap();
    let (bytes, id, entries) = pack.finish(&key).unwrap();
    let hlen = parse_pack_trailer(&bytes).unwrap();
    let plains = std::iter::once(&alone).chain(&members);
    let entries: Vec<Value> = entries
        .iter()
        .zip(plains)
        .map(|(e, p)| {
            json!({
                "type": e.blob_type as u8,
                "flags": e.flags.0,
                "offset": e.offset,
                "stored_len": e.stored_len,
                "raw_len": e.raw_len,
                "id": e.id.to_hex(),
                "plaintext": hex::encode(p),
            })
        })
        .collect();
    let v = json!({
        "description": "Repository format v1 test vectors; see docs/format.md, section Test vectors.",
        "master_key": hex::encode(key_bytes()),
        "id": id.to_hex(),
        "header_len": hlen,
        "entries": entries,
        "stored": hex::encode(&bytes),
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap();
    text.push('\n');
    std::fs::write(path(), text).unwrap();
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap()
}

fn field(e: &Value, name: &str) -> u32 {
    e[name].as_u64().unwrap() as u32
}

#[test]
fn group_vector_opens_through_the_api() {
    let v = load();
    let key =
        MasterKey::from_bytes(&hex::decode(v["master_key"].as_str().unwrap()).unwrap()).unwrap();
    let bytes = hex::decode(v["stored"].as_str().unwrap()).unwrap();
    assert_eq!(Id::of_object(&bytes).to_hex(), v["id"].as_str().unwrap());
    let hlen = parse_pack_trailer(&bytes).unwrap() as usize;
    assert_eq!(hlen as u64, v["header_len"].as_u64().unwrap());
    let end = bytes.len() - PACK_TRAILER_LEN;
    let header = decode_pack_header(&key, &bytes[end - hlen..end], bytes.len() as u64).unwrap();
    let entries = v["entries"].as_array().unwrap();
    assert_eq!(header.len(), entries.len());
    let (alone, members) = plaintexts();
    let plains: Vec<&Vec<u8>> = std::iter::once(&alone).chain(&members).collect();
    for ((h, e), p) in header.iter().zip(entries).zip(plains) {
        assert_eq!(h.id.to_hex(), e["id"].as_str().unwrap());
        assert_eq!(h.flags.0 as u64, e["flags"].as_u64().unwrap());
        assert_eq!(
            (h.offset, h.stored_len),
            (field(e, "offset"), field(e, "stored_len"))
        );
        assert_eq!(hex::decode(e["plaintext"].as_str().unwrap()).unwrap(), *p);
        let stored = &bytes[h.offset as usize..(h.offset + h.stored_len) as usize];
        let opened = open_blob(&key, h.blob_type, &h.id, h.flags, h.raw_len, stored).unwrap();
        assert_eq!(&opened, p);
    }
    // The alone blob is not grouped; the four members share one compressed
    // envelope, stored once right after it.
    assert!(!header[0].flags.grouped());
    for h in &header[1..] {
        assert_eq!(
            h.flags,
            BlobFlags(BlobFlags::GROUPED | BlobFlags::COMPRESSED)
        );
        assert_eq!(
            (h.offset, h.stored_len),
            (header[1].offset, header[1].stored_len)
        );
    }
    assert_eq!(header[1].offset, header[0].stored_len);
    assert_eq!(
        (header[1].offset + header[1].stored_len) as usize,
        end - hlen
    );
    // Another type, or the flags without "compressed", fail the envelope.
    let h = &header[1];
    let stored = &bytes[h.offset as usize..(h.offset + h.stored_len) as usize];
    assert!(open_blob(&key, BlobType::Tree, &h.id, h.flags, h.raw_len, stored).is_err());
    let raw = BlobFlags(BlobFlags::GROUPED);
    assert!(open_blob(&key, h.blob_type, &h.id, raw, h.raw_len, stored).is_err());
}

#[test]
fn group_vector_opens_by_hand_from_the_document() {
    let v = load();
    let bytes = hex::decode(v["stored"].as_str().unwrap()).unwrap();
    let kb = key_bytes();
    let data_key: [u8; 32] = kb[..32].try_into().unwrap();
    let id_key: [u8; 32] = kb[32..64].try_into().unwrap();
    let cipher = XChaCha20Poly1305::new((&data_key).into());
    let entries = v["entries"].as_array().unwrap();
    let grouped: Vec<&Value> = entries
        .iter()
        .filter(|e| field(e, "flags") & 0x02 != 0)
        .collect();
    assert_eq!(grouped.len(), 4);
    // §8.1: one envelope, AAD "lifeboat group v1" ‖ type ‖ flags.
    let (off, len) = (field(grouped[0], "offset"), field(grouped[0], "stored_len"));
    let env = &bytes[off as usize..(off + len) as usize];
    let mut aad = b"lifeboat group v1".to_vec();
    aad.push(0);
    aad.push(field(grouped[0], "flags") as u8);
    let nonce = XNonce::try_from(&env[..24]).unwrap();
    let body = cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &env[24..],
                aad: &aad,
            },
        )
        .expect("the group opens");
    assert_eq!(
        field(grouped[0], "flags") & 0x01,
        0x01,
        "the group is compressed"
    );
    let plain = zstd::stream::decode_all(&body[..]).unwrap();
    assert!(plain.len() <= 4 << 20);
    // count ‖ count × (id ‖ raw_len) ‖ members.
    let count = u32::from_le_bytes(plain[..4].try_into().unwrap()) as usize;
    assert_eq!(count, 4);
    let mut at = 4 + 36 * count;
    for (i, e) in grouped.iter().enumerate() {
        let t = &plain[4 + 36 * i..4 + 36 * (i + 1)];
        assert_eq!(hex::encode(&t[..32]), e["id"].as_str().unwrap());
        let n = u32::from_le_bytes(t[32..36].try_into().unwrap()) as usize;
        assert_eq!(n as u32, field(e, "raw_len"));
        let member = &plain[at..at + n];
        assert_eq!(hex::encode(member), e["plaintext"].as_str().unwrap());
        assert_eq!(
            hex::encode(blake3::keyed_hash(&id_key, member).as_bytes()),
            e["id"].as_str().unwrap()
        );
        at += n;
    }
    assert_eq!(at, plain.len(), "the members end the plaintext");
}
