//! `testdata/vectors/chunker_keyed.json`: the keyed gear table and the cut
//! points it gives, checked through the crate and by a second chunker
//! written from `docs/format.md` (section 15) with raw BLAKE3.
//!
//! Written once by the ignored `generate_keyed` test:
//! `cargo test -p lifeboat-chunker --test vectors -- --ignored generate_keyed`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::io::{self, Read};
use std::path::PathBuf;

use lifeboat_chunker::{CHUNKER_KEY_CONTEXT, Chunker, GEAR_TABLE_INPUT, GearTable};
use serde_json::{Value, json};

fn path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vectors/chunker_keyed.json")
}

/// The fixed master key of every vector file: bytes 00 01 … 47.
fn master_key() -> Vec<u8> {
    (0u8..72).collect()
}

fn xorshift64(mut state: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn u64_of(v: &Value) -> u64 {
    u64::from_str_radix(v.as_str().unwrap().strip_prefix("0x").unwrap(), 16).unwrap()
}

fn u64_hex(x: u64) -> String {
    format!("{x:#018x}")
}

fn num(v: &Value) -> usize {
    usize::try_from(v.as_u64().unwrap()).unwrap()
}

/// The generators of docs/format.md §19.
fn gen_bytes(spec: &Value) -> Vec<u8> {
    if let Some(h) = spec.get("hex") {
        return hex::decode(h.as_str().unwrap()).unwrap();
    }
    if let Some(s) = spec.get("xorshift64") {
        return xorshift64(u64_of(s), num(&spec["len"]));
    }
    if let Some(p) = spec.get("repeat") {
        let p = hex::decode(p.as_str().unwrap()).unwrap();
        return p.iter().copied().cycle().take(num(&spec["len"])).collect();
    }
    if let Some(n) = spec.get("zeros") {
        return vec![0; num(n)];
    }
    panic!("unknown generator {spec}");
}

// ---------------------------------------------------------------------------
// A second chunker, from the document: the table by raw BLAKE3, the masks of
// the table in §15, and the byte-at-a-time cut loop.

fn doc_table(secret: &[u8]) -> ([u8; 32], Vec<u64>) {
    let key = blake3::derive_key("lifeboat 2026-12-02 chunker gear table key v1", secret);
    let mut out = vec![0u8; 2048];
    blake3::Hasher::new_keyed(&key)
        .update(b"gear table")
        .finalize_xof()
        .fill(&mut out);
    let table = out
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (key, table)
}

const MASKS: [u64; 26] = [
    0,
    0,
    0,
    0,
    0,
    0x0000_0000_0180_4110,
    0x0000_0000_0180_3110,
    0x0000_0000_1803_5100,
    0x0000_0018_0003_5300,
    0x0000_0190_0035_3000,
    0x0000_5900_0353_0000,
    0x0000_d900_0353_0000,
    0x0000_d901_0353_0000,
    0x0000_d903_0353_0000,
    0x0000_d903_1353_0000,
    0x0000_d90f_0353_0000,
    0x0000_d903_0353_7000,
    0x0000_d907_0353_7000,
    0x0000_d907_0753_7000,
    0x0000_d917_0753_7000,
    0x0000_d917_4753_7000,
    0x0000_d917_6753_7000,
    0x0000_d937_6753_7000,
    0x0000_d937_7753_7000,
    0x0000_d937_7757_7000,
    0x0000_db37_7757_7000,
];

fn doc_cut(g: &[u64], src: &[u8], min: usize, avg: usize, max: usize) -> usize {
    let n = src.len();
    if n <= min {
        return n;
    }
    let bits = (avg as f64).log2().round() as usize;
    let (mask_s, mask_l) = (MASKS[bits + 1], MASKS[bits - 1]);
    let (end, center) = if n > max { (max, avg) } else { (n, avg.min(n)) };
    let (e1, e2) = (center & !1, end & !1);
    let mut h = 0u64;
    for (i, &b) in src.iter().enumerate().take(e2).skip(min) {
        h = (h << 1).wrapping_add(g[b as usize]);
        let mask = if i < e1 { mask_s } else { mask_l };
        if h & mask == 0 {
            return i;
        }
    }
    end
}

fn doc_lengths(g: &[u64], d: &[u8], min: usize, avg: usize, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < d.len() {
        let n = doc_cut(g, &d[pos..], min, avg, max);
        out.push(n);
        pos += n;
    }
    out
}

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
fn doc_masks_are_the_crates() {
    use fastcdc::v2020::{Normalization, select_masks};
    for bits in 8..=22u32 {
        let avg = 1usize << bits;
        let b = bits as usize;
        assert_eq!(
            select_masks(avg, Normalization::Level1),
            (MASKS[b + 1], MASKS[b - 1]),
            "avg {avg}"
        );
    }
}

#[test]
fn keyed_vectors_match() {
    let v: Value = serde_json::from_slice(&std::fs::read(path()).unwrap()).unwrap();
    assert_eq!(v["context"].as_str().unwrap(), CHUNKER_KEY_CONTEXT);
    assert_eq!(
        v["table_input"].as_str().unwrap().as_bytes(),
        GEAR_TABLE_INPUT
    );
    let tables = v["tables"].as_array().unwrap();
    assert!(tables.len() >= 2);
    let mut n_cases = 0;
    for t in tables {
        let name = t["name"].as_str().unwrap();
        let secret = hex::decode(t["secret"].as_str().unwrap()).unwrap();
        let (key, doc) = doc_table(&secret);
        assert_eq!(
            hex::encode(key),
            t["chunker_key"].as_str().unwrap(),
            "{name}"
        );
        let want: Vec<u64> = t["gear"].as_array().unwrap().iter().map(u64_of).collect();
        assert_eq!(want.len(), 256);
        assert_eq!(doc, want, "{name}: table by the document");
        let table = GearTable::keyed(&secret);
        assert_eq!(
            &table.entries()[..],
            &want[..],
            "{name}: table by the crate"
        );
        for case in t["cases"].as_array().unwrap() {
            let cname = case["name"].as_str().unwrap();
            let (min, avg, max) = (num(&case["min"]), num(&case["avg"]), num(&case["max"]));
            let input = gen_bytes(&case["input"]);
            let lengths: Vec<usize> = case["lengths"]
                .as_array()
                .unwrap()
                .iter()
                .map(num)
                .collect();
            assert_eq!(lengths.iter().sum::<usize>(), input.len(), "{name}/{cname}");
            let c = Chunker::with_table(min, avg, max, table.clone()).unwrap();
            let got: Vec<usize> = c.chunks(&input).map(|(_, l)| l).collect();
            assert_eq!(got, lengths, "{name}/{cname}: chunks");
            let streamed: Vec<usize> = c
                .stream(Dribble(&input))
                .map(|r| r.unwrap().len())
                .collect();
            assert_eq!(streamed, lengths, "{name}/{cname}: stream");
            assert_eq!(
                doc_lengths(&doc, &input, min, avg, max),
                lengths,
                "{name}/{cname}: by the document"
            );
            n_cases += 1;
        }
    }
    assert!(n_cases >= 6);
}

#[test]
#[ignore = "writes testdata/vectors/chunker_keyed.json"]
fn generate_keyed() {
    let mk = master_key();
    let small = (4096usize, 16384usize, 65536usize);
    let default = (512usize << 10, 1usize << 20, 8usize << 20);
    let xs = |state: u64, len: usize| json!({"xorshift64": u64_hex(state), "len": len});
    let full: Vec<(&str, (usize, usize, usize), Value)> = vec![
        (
            "small-xorshift",
            small,
            xs(0x1234_5678_9abc_def0, 1_000_000),
        ),
        ("small-zeros", small, json!({"zeros": 200_000})),
        ("small-short", small, xs(0x1234_5678_9abc_def0, 4000)),
        ("small-empty", small, json!({"hex": ""})),
        (
            "small-repeat",
            small,
            json!({"repeat": hex::encode("lifeboat "), "len": 300_000}),
        ),
        (
            "default-xorshift",
            default,
            xs(0x0fed_cba9_8765_4321, 16 << 20),
        ),
    ];
    let brief: Vec<(&str, (usize, usize, usize), Value)> = vec![(
        "small-xorshift",
        small,
        xs(0x1234_5678_9abc_def0, 1_000_000),
    )];
    let tables = [
        (
            "fixed-master-key",
            "master key bytes 32..72 (id key 20..3f, chunker seed 40..47)",
            mk[32..].to_vec(),
            full,
        ),
        (
            "other-secret",
            "40 bytes ff: a different secret gives a different table and cuts",
            vec![0xffu8; 40],
            brief,
        ),
    ];
    let tables: Vec<Value> = tables
        .into_iter()
        .map(|(name, what, secret, cases)| {
            let (key, table) = doc_table(&secret);
            let cases: Vec<Value> = cases
                .into_iter()
                .map(|(cname, (min, avg, max), input)| {
                    let c = Chunker::with_table(min, avg, max, GearTable::keyed(&secret)).unwrap();
                    let data = gen_bytes(&input);
                    let lengths: Vec<usize> = c.chunks(&data).map(|(_, l)| l).collect();
                    json!({"name": cname, "min": min, "avg": avg, "max": max,
                           "input": input, "lengths": lengths})
                })
                .collect();
            json!({
                "name": name,
                "secret_is": what,
                "secret": hex::encode(&secret),
                "chunker_key": hex::encode(key),
                "gear": table.iter().map(|&g| u64_hex(g)).collect::<Vec<_>>(),
                "cases": cases,
            })
        })
        .collect();
    let out = json!({
        "description": "Keyed gear table (chunker_gear = \"keyed\") and its cut points; see docs/format.md, sections 15 and 19.",
        "master_key": hex::encode(&mk),
        "context": CHUNKER_KEY_CONTEXT,
        "table_input": std::str::from_utf8(GEAR_TABLE_INPUT).unwrap(),
        "tables": tables,
    });
    let mut text = serde_json::to_string_pretty(&out).unwrap();
    text.push('\n');
    std::fs::write(path(), text).unwrap();
}
