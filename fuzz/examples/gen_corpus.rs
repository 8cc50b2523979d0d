//! Writes the seed corpora, `corpus/<target>/seed-<n>`: a few valid inputs
//! per target, made with the crate's own encoders and the fixed test key.
//! Run from `fuzz/`: `cargo run --example gen_corpus [TARGET]` (one
//! target's seeds only when named, so that the others keep their bytes).

use std::collections::BTreeMap;
use std::path::Path;

use lifeboat_format::{
    BlobType, ChunkerParams, Config, ContentPart, FORMAT_VERSION, Id, IndexEntry, IndexPack,
    IndexSegment, KdfParams, KeySlot, MarkedObject, Node, NodeKind, ObjectKind, PACK_TRAILER_LEN,
    PackBuilder, PruneLock, PruneMarks, Snapshot, SnapshotSummary, SourceKind, Timestamp, Tree,
    Xattr, open_object, parse_pack_trailer, seal_blob,
};
use lifeboat_fuzz::record::{RecordPayload, VerifiedPack};
use lifeboat_fuzz::{BlobInput, PASSWORD, chunker_input, envelope_plain, key};

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x2545_f491_4f6c_dd1du64 ^ seed;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn write(target: &str, seeds: &[Vec<u8>]) {
    if std::env::args().nth(1).is_some_and(|only| only != target) {
        return;
    }
    let dir = Path::new("corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create corpus dir");
    for e in std::fs::read_dir(&dir).expect("read corpus dir") {
        let p = e.expect("entry").path();
        if p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("seed-"))
        {
            std::fs::remove_file(p).expect("remove old seed");
        }
    }
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), s).expect("write seed");
    }
    let total: usize = seeds.iter().map(Vec::len).sum();
    println!("{target}: {} seeds, {total} bytes", seeds.len());
}

fn slot(memory_kib: u32) -> Vec<u8> {
    let params = KdfParams {
        memory_kib,
        iterations: 1,
        parallelism: 1,
    };
    KeySlot::create_with_salt(
        key(),
        PASSWORD,
        params,
        (0xa0..0xc0).collect(),
        "2026-12-01T10:00:00Z".into(),
        "host".into(),
        "user".into(),
    )
    .expect("slot")
    .to_json()
}

fn tree() -> Tree {
    let mut f = Node::new(b"file\xff".to_vec(), NodeKind::File);
    f.mode = 0o644;
    f.uid = 1000;
    f.user = Some("me".into());
    f.mtime = Timestamp {
        sec: 1_700_000_000,
        nsec: 5,
    };
    f.size = 8192;
    f.xattrs = vec![Xattr {
        name: b"user.comment".to_vec(),
        value: b"hi".to_vec(),
    }];
    f.content = vec![
        ContentPart::Blob {
            id: Id([3; 32]),
            len: 4096,
        },
        ContentPart::Hole { len: 4096 },
    ];
    let mut d = Node::new("dir", NodeKind::Dir);
    d.subtree = Some(Id([9; 32]));
    let mut l = Node::new("link", NodeKind::Symlink);
    l.symlink_target = Some(b"../x".to_vec());
    Tree::new(vec![f, d, l, Node::new("dev", NodeKind::CharDevice)])
}

fn snapshot(full: bool) -> Snapshot {
    Snapshot {
        version: 1,
        time: "2026-12-01T10:00:00Z".into(),
        tree: Id([4; 32]),
        paths: vec!["/home".into()],
        hostname: "host".into(),
        username: "user".into(),
        tags: if full {
            vec!["daily".into()]
        } else {
            Vec::new()
        },
        source: if full {
            SourceKind::Fs
        } else {
            SourceKind::Etcd
        },
        source_meta: if full {
            BTreeMap::new()
        } else {
            BTreeMap::from([("revision".into(), "42".into())])
        },
        parent: full.then_some(Id([5; 32])),
        excludes: Vec::new(),
        incomplete: Vec::new(),
        summary: full.then(|| SnapshotSummary {
            files_new: 3,
            bytes_total: 1 << 20,
            duration_secs: 1.25,
            start: "2026-12-01T10:00:00Z".into(),
            end: "2026-12-01T10:00:01Z".into(),
            ..Default::default()
        }),
        program: "lifeboat 0.1.0".into(),
    }
}

fn segment() -> IndexSegment {
    let e = |b: u8, offset| IndexEntry {
        id: Id([b; 32]),
        flags: lifeboat_format::BlobFlags(b & 1),
        offset,
        stored_len: 100,
        raw_len: 300,
    };
    IndexSegment {
        version: 1,
        supersedes: vec![Id([1; 32])],
        packs: vec![
            IndexPack {
                id: Id([2; 32]),
                blob_type: BlobType::Data,
                size: 1000,
                blobs: vec![e(1, 0), e(2, 100)],
            },
            IndexPack {
                id: Id([3; 32]),
                blob_type: BlobType::Tree,
                size: 500,
                blobs: vec![e(4, 0)],
            },
        ],
    }
}

fn main() {
    write("keyslot_json", &[slot(64), slot(256), slot(64 * 1024)]);

    let cfg = Config {
        version: FORMAT_VERSION,
        id: Id([1; 32]),
        chunker: ChunkerParams::default(),
        compression_level: 3,
        pack_size: 16 << 20,
        created: "2026-12-01T10:00:00Z".into(),
        chunker_gear: Default::default(),
        compression: None,
        append_only: false,
    };
    let json = serde_json::to_vec(&cfg).expect("json");
    write(
        "config",
        &[
            cfg.encode(key()).expect("config"),
            envelope_plain(&json, false),
            envelope_plain(&json, true),
        ],
    );

    let mut pb = PackBuilder::new(BlobType::Data, 0);
    for (i, p) in [&b"alpha"[..], &[7u8; 5000], &noise(300, 1)]
        .iter()
        .enumerate()
    {
        pb.add(&seal_blob(key(), BlobType::Data, p, (i % 2) as i32 * 3).expect("blob"))
            .expect("add");
    }
    let data_len = pb.len() as u32;
    let (pack, _, _) = pb.finish(key()).expect("pack");
    let hlen = parse_pack_trailer(&pack).expect("trailer") as usize;
    let hend = pack.len() - PACK_TRAILER_LEN;
    let header =
        open_object(key(), ObjectKind::PackHeader, &pack[hend - hlen..hend]).expect("header");
    let pack_seed = |zstd| [&data_len.to_le_bytes()[..], &envelope_plain(&header, zstd)].concat();
    write("pack_header", &[pack_seed(false), pack_seed(true), pack]);

    let seg = postcard::to_allocvec(&segment()).expect("postcard");
    let empty = postcard::to_allocvec(&IndexSegment::new()).expect("postcard");
    write(
        "index_segment",
        &[
            envelope_plain(&seg, false),
            envelope_plain(&seg, true),
            envelope_plain(&empty, false),
        ],
    );

    write(
        "tree_decode",
        &[
            tree().encode().expect("tree"),
            Tree::new(Vec::new()).encode().expect("tree"),
        ],
    );

    let full = serde_json::to_vec(&snapshot(true)).expect("json");
    let small = serde_json::to_vec(&snapshot(false)).expect("json");
    write(
        "snapshot",
        &[
            envelope_plain(&full, false),
            envelope_plain(&full, true),
            envelope_plain(&small, false),
        ],
    );

    let marks = PruneMarks {
        version: 1,
        created: 1_700_000_000,
        supersedes: vec![Id([7; 32])],
        objects: vec![MarkedObject {
            path: lifeboat_format::layout::object_path(
                lifeboat_format::layout::Folder::Data,
                &Id([0xaa; 32]),
            ),
            size: 42,
            marked: 1_699_999_000,
            delete_after: 1_700_085_400,
        }],
    };
    let bin = postcard::to_allocvec(&marks).expect("postcard");
    write(
        "prune_marks",
        &[envelope_plain(&bin, false), envelope_plain(&bin, true)],
    );

    let lock = PruneLock {
        version: 1,
        nonce: Id([1; 32]),
        created: 1_700_000_000,
        ttl_secs: 3600,
        hostname: "host".into(),
    };
    let bin = postcard::to_allocvec(&lock).expect("postcard");
    write(
        "prune_lock",
        &[envelope_plain(&bin, false), envelope_plain(&bin, true)],
    );

    let rec = RecordPayload {
        version: 1,
        packs: (0..3u8)
            .map(|i| VerifiedPack {
                id: Id([i; 32]),
                verified: 1_700_000_000 + u64::from(i),
                damaged: i == 1,
            })
            .collect(),
    };
    let bin = postcard::to_allocvec(&rec).expect("postcard");
    write(
        "verify_record",
        &[envelope_plain(&bin, false), envelope_plain(&bin, true)],
    );

    let text = b"lifeboat ".repeat(200);
    let frame = zstd::bulk::compress(&text, 3).expect("zstd");
    let blob = |blob_type, flags, body: &[u8]| {
        BlobInput {
            blob_type,
            flags,
            mode: 0,
            raw_len: 0,
            body,
        }
        .encode()
    };
    write(
        "blob_open",
        &[
            blob(0, 0, b"alpha"),
            blob(0, 1, &frame),
            blob(1, 0, &tree().encode().expect("tree")),
        ],
    );

    // flags ‖ pick ‖ body: a compressed group of three members, the same
    // raw, and one with a member of each kind picked.
    let members: [&[u8]; 3] = [b"alpha alpha alpha alpha", b"", &noise(300, 9)];
    let mut table = (members.len() as u32).to_le_bytes().to_vec();
    for m in members {
        table.extend_from_slice(&key().blob_id(m).0);
        table.extend_from_slice(&(m.len() as u32).to_le_bytes());
    }
    let plain = [table, members.concat()].concat();
    let group_frame = zstd::bulk::compress(&plain, 3).expect("zstd");
    write(
        "group_open",
        &[
            [&[0x03, 0][..], &group_frame].concat(),
            [&[0x02, 1][..], &plain].concat(),
            [&[0x03, 2][..], &group_frame].concat(),
        ],
    );

    let sel_small = [0, 0, 0];
    let sel_mixed = [5, 2, 3];
    write(
        "chunker",
        &[
            // noise, zeros, noise, a literal, a run of 0xff
            chunker_input::encode(
                sel_small,
                42,
                1000,
                &[1, 7, 60],
                &[
                    0x80 | 20,
                    1,
                    0x40 | 10,
                    0x80 | 5,
                    2,
                    0x03,
                    1,
                    2,
                    3,
                    4,
                    0xc0 | 9,
                    0xff,
                ],
            ),
            chunker_input::encode(sel_mixed, 7, 5003, &[0, 255], &[0xbf, 3, 0x7f, 0xbf, 4]),
            chunker_input::encode([15, 3, 3], u64::MAX, 70_000, &[100], &[0xbf, 9, 0xbf, 10]),
        ],
    );

    let raw = [noise(64, 1), noise(512, 2), noise(4096, 3)];
    write("roundtrip_meta", &raw);
    write("roundtrip_pack", &raw);
}
