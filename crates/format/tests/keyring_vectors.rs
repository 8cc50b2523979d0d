//! Pinned vector for version-2 key slots, keyrings and grants
//! (`testdata/vectors/keyslot_v2.json`, docs/format.md §5.1-§5.2): the
//! stored slot must parse, re-serialise byte for byte, open with its
//! password to the pinned keyring, and open again by an independent
//! reading of the spec (argon2id, XChaCha20-Poly1305, X25519, BLAKE3).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lifeboat_format::{Error, Id, KdfParams, KeySlot, SlotKind, decode_keyring, encode_keyring};
use serde_json::{Value, json};

fn vector_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/keyslot_v2.json")
}

fn hex_of(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

/// `"LBKR" ‖ 1 ‖ n ‖ master key 0x00..=0x47 ‖ n retired keys, the i-th
/// (newest first) all bytes 0xa0 + i`.
fn keyring_bytes(n: u8) -> Vec<u8> {
    let mut out = b"LBKR".to_vec();
    out.push(1);
    out.push(n);
    out.extend(0u8..72);
    for i in 0..n {
        out.extend([0xa0 + i; 32]);
    }
    out
}

const PASSWORD: &str = "correct horse battery staple";
const PARAMS: KdfParams = KdfParams {
    memory_kib: 256,
    iterations: 1,
    parallelism: 1,
};

#[test]
#[ignore = "rewrites testdata/vectors/keyslot_v2.json; run by hand when the format changes"]
fn generate_keyslot_v2_vector() {
    let made_with = decode_keyring(&keyring_bytes(1)).unwrap();
    let salt: Vec<u8> = (0xc0u8..0xe0).collect();
    let slot = KeySlot::create_v2_with_salt(
        &made_with,
        PASSWORD.as_bytes(),
        PARAMS,
        SlotKind::AppendOnly,
        salt.clone(),
        "2026-12-02T00:00:00Z".into(),
        "vector-host".into(),
        "vector-user".into(),
    )
    .unwrap();
    let rotated = decode_keyring(&keyring_bytes(2)).unwrap();
    let slot = slot.with_grant(&rotated).unwrap();
    let stored = String::from_utf8(slot.to_json()).unwrap();
    let v = json!({
        "description": "A version-2 key slot (kind append-only) made with a keyring of one retired \
            key, then given a grant of a keyring of two (docs/format.md §5.1, §5.2). Master key \
            bytes 0x00..=0x47; the i-th retired data key (newest first) is 32 bytes of 0xa0 + i. \
            The slot's X25519 secret, the grant's ephemeral secret and the nonces are random, \
            so regenerating changes `stored`.",
        "password": PASSWORD,
        "wrong_password": "Correct horse battery staple",
        "salt": hex::encode(&salt),
        "keyring_at_creation": hex::encode(keyring_bytes(1)),
        "keyring_granted": hex::encode(keyring_bytes(2)),
        "slot_id": Id::of_object(stored.as_bytes()).to_hex(),
        "stored": stored,
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap();
    text.push('\n');
    std::fs::write(vector_path(), text).unwrap();
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(vector_path()).unwrap()).unwrap()
}

#[test]
fn keyslot_v2_vector_opens_to_the_granted_keyring() {
    let v = load();
    let stored = v["stored"].as_str().unwrap().as_bytes();
    assert_eq!(
        Id::of_object(stored).to_hex(),
        v["slot_id"].as_str().unwrap()
    );
    let slot = KeySlot::from_json(stored).unwrap();
    assert_eq!(slot.version, 2);
    assert_eq!(slot.kind, SlotKind::AppendOnly);
    assert_eq!(slot.params, PARAMS);
    assert_eq!(slot.salt, hex_of(&v["salt"]));
    assert_eq!(slot.public_key.len(), 32);
    assert_eq!(slot.grants.len(), 1);
    assert_eq!(slot.to_json(), stored, "re-serialises byte for byte");
    let key = slot
        .open(v["password"].as_str().unwrap().as_bytes())
        .unwrap();
    assert_eq!(
        &encode_keyring(&key).unwrap()[..],
        &hex_of(&v["keyring_granted"])[..]
    );
    assert_eq!(key.retired_count(), 2);
    assert!(matches!(
        slot.open(v["wrong_password"].as_str().unwrap().as_bytes()),
        Err(Error::WrongPassword)
    ));
    // Without its grant the slot opens to the keyring it was made with.
    let mut bare = slot.clone();
    bare.grants.clear();
    assert_eq!(
        &encode_keyring(&bare.open(PASSWORD.as_bytes()).unwrap()).unwrap()[..],
        &hex_of(&v["keyring_at_creation"])[..]
    );
}

fn spec_open(key: &[u8; 32], aad: &[u8], sealed: &[u8]) -> Vec<u8> {
    let nonce = XNonce::try_from(&sealed[..24]).unwrap();
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed[24..],
                aad,
            },
        )
        .expect("opens per spec")
}

#[test]
fn keyslot_v2_vector_follows_the_spec() {
    let v = load();
    let slot: Value = serde_json::from_str(v["stored"].as_str().unwrap()).unwrap();
    assert_eq!(slot["version"], 2);
    assert_eq!(slot["kind"], "append-only");
    // KEK = Argon2id(password, salt), as in version 1.
    let mut kek = [0u8; 32];
    argon2::Argon2::new(
        argon2::Algorithm::Argon2id,
        argon2::Version::V0x13,
        argon2::Params::new(256, 1, 1, Some(32)).unwrap(),
    )
    .hash_password_into(PASSWORD.as_bytes(), &hex_of(&slot["salt"]), &mut kek)
    .unwrap();
    // wrapped_key: aad = "lifeboat keyslot v2" ‖ kind (1 = append-only) ‖ public key.
    let public: [u8; 32] = hex_of(&slot["public_key"]).try_into().unwrap();
    let mut aad = b"lifeboat keyslot v2".to_vec();
    aad.push(1);
    aad.extend_from_slice(&public);
    let plain = spec_open(&kek, &aad, &hex_of(&slot["wrapped_key"]));
    assert_eq!(plain.len(), 32 + 6 + 72 + 32);
    let secret: [u8; 32] = plain[..32].try_into().unwrap();
    assert_eq!(&plain[32..], &hex_of(&v["keyring_at_creation"])[..]);
    assert_eq!(
        x25519_dalek::x25519(secret, x25519_dalek::X25519_BASEPOINT_BYTES),
        public
    );
    // The grant: K = BLAKE3-derive-key(context, X25519(s, E) ‖ E ‖ P).
    let grant = &slot["grants"][0];
    let eph: [u8; 32] = hex_of(&grant["ephemeral"]).try_into().unwrap();
    let shared = x25519_dalek::x25519(secret, eph);
    let mut ikm = shared.to_vec();
    ikm.extend_from_slice(&eph);
    ikm.extend_from_slice(&public);
    let k = blake3::derive_key("lifeboat keyslot grant v1", &ikm);
    let mut aad = b"lifeboat keyslot grant v1".to_vec();
    aad.extend_from_slice(&public);
    aad.extend_from_slice(&eph);
    let ring = spec_open(&k, &aad, &hex_of(&grant["sealed"]));
    assert_eq!(ring, hex_of(&v["keyring_granted"]));
}
