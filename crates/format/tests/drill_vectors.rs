//! The drill record vector (`testdata/vectors/drill.json`, docs/format.md
//! §21): decoded through the crate's API, and opened by hand from the
//! document with the raw primitives (BLAKE3, XChaCha20-Poly1305, JSON).
//! Written once by the ignored `generate_drill` test, on its own so that
//! the other vector files keep their bytes.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use lifeboat_format::{DrillRecord, Id, MasterKey, ObjectKind, Snapshot, SourceKind};
use serde_json::{Value, json};

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/drill.json")
}

fn key_bytes() -> Vec<u8> {
    (0u8..72).collect()
}

fn record() -> DrillRecord {
    DrillRecord {
        version: 1,
        time: "2026-01-02T03:00:00Z".into(),
        snapshot: Id(*blake3::hash(b"a snapshot").as_bytes()),
        snapshot_time: "2026-01-01T00:00:00Z".into(),
        hostname: "vector-host".into(),
        paths: vec!["/data".into()],
        tags: vec!["daily".into()],
        source: SourceKind::Fs,
        drill_host: "drill-host".into(),
        ok: false,
        problems: vec!["/data/a: content differs at bytes 0..16 (blob 5c1f0d2a)".into()],
        checks: vec!["content".into(), "metadata".into()],
        entries: 3,
        bytes: 69_648,
        ttfb_secs: 0.015625,
        restore_secs: 1.5,
        verify_secs: 0.25,
        program: "lifeboat 0.1.0".into(),
    }
}

#[test]
#[ignore = "rewrites testdata/vectors/drill.json"]
fn generate_drill() {
    let key = MasterKey::from_bytes(&key_bytes()).unwrap();
    let r = record();
    let stored = r.encode(&key).unwrap();
    let v = json!({
        "description": "Repository format v1 test vectors; see docs/format.md, section Test vectors.",
        "master_key": hex::encode(key_bytes()),
        "record": serde_json::to_value(&r).unwrap(),
        "plaintext": String::from_utf8(serde_json::to_vec(&r).unwrap()).unwrap(),
        "stored": hex::encode(&stored),
        "id": Id::of_object(&stored).to_hex(),
    });
    let mut text = serde_json::to_string_pretty(&v).unwrap();
    text.push('\n');
    std::fs::write(path(), text).unwrap();
}

fn load() -> Value {
    serde_json::from_str(&std::fs::read_to_string(path()).unwrap()).unwrap()
}

#[test]
fn drill_vector_decodes_to_its_record() {
    let v = load();
    let key =
        MasterKey::from_bytes(&hex::decode(v["master_key"].as_str().unwrap()).unwrap()).unwrap();
    let stored = hex::decode(v["stored"].as_str().unwrap()).unwrap();
    assert_eq!(Id::of_object(&stored).to_hex(), v["id"].as_str().unwrap());
    let r = DrillRecord::decode(&key, &stored).unwrap();
    assert_eq!(r, record());
    assert_eq!(serde_json::to_value(&r).unwrap(), v["record"]);
    // A drill record is not a snapshot, whatever its bytes.
    assert!(Snapshot::decode(&key, &stored).is_err());
    assert_eq!(ObjectKind::DrillRecord as u8, 7);
}

#[test]
fn drill_vector_opens_by_hand_from_the_document() {
    let v = load();
    let stored = hex::decode(v["stored"].as_str().unwrap()).unwrap();
    // §6: nonce (24) ‖ ciphertext ‖ tag (16) under the data key, bytes 0..32.
    let kb = key_bytes();
    let data_key: [u8; 32] = kb[..32].try_into().unwrap();
    let cipher = XChaCha20Poly1305::new((&data_key).into());
    let nonce = XNonce::try_from(&stored[..24]).unwrap();
    // §7: AAD "lifeboat object v1" ‖ kind 7, no extra.
    let mut aad = b"lifeboat object v1".to_vec();
    aad.push(7);
    let plain = cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &stored[24..],
                aad: &aad,
            },
        )
        .expect("opens as kind 7");
    // Writers' payload encoding is 0: the JSON as is.
    assert_eq!(plain[0], 0);
    assert_eq!(&plain[1..], v["plaintext"].as_str().unwrap().as_bytes());
    let j: Value = serde_json::from_slice(&plain[1..]).unwrap();
    for member in [
        "version",
        "time",
        "snapshot",
        "snapshot_time",
        "hostname",
        "paths",
        "source",
        "ok",
        "restore_secs",
    ] {
        assert!(j.get(member).is_some(), "required member {member} missing");
    }
    assert_eq!(j["version"], 1);
    assert_eq!(j["source"], "fs");
    // Kind 2 (snapshot) does not open it.
    let mut wrong = b"lifeboat object v1".to_vec();
    wrong.push(2);
    assert!(
        cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &stored[24..],
                    aad: &wrong,
                },
            )
            .is_err()
    );
}
