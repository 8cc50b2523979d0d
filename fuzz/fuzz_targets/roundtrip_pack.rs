//! Packs against a model: arbitrary blobs (some compressible, at arbitrary
//! zstd levels) are sealed and added to a `PackBuilder` (whole, or hashed
//! with the blob bytes kept by the caller), the pack is finished, and read
//! back as a reader does: trailer, header, then every blob by its entry.
//! The header lists the blobs in order with their ids, lengths and
//! offsets; each opens to its plaintext; the pack's id is the hash of its
//! bytes; a blob of the other type is refused without changing the pack;
//! and the index entries made from the header round-trip through an index
//! segment.
#![no_main]
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{
    BlobType, Id, IndexEntry, IndexPack, IndexSegment, PACK_TRAILER_LEN, PackBuilder,
    decode_pack_header, open_blob, parse_pack_trailer, seal_blob,
};
use lifeboat_fuzz::key;
use lifeboat_fuzz::model::PackModel;

fuzz_target!(|data: &[u8]| {
    let Ok(m) = PackModel::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let (t, other) = if m.tree {
        (BlobType::Tree, BlobType::Data)
    } else {
        (BlobType::Data, BlobType::Tree)
    };
    let plains: Vec<Vec<u8>> = m
        .blobs
        .iter()
        .map(|b| b.plain.repeat(usize::from(b.repeat % 16) + 1))
        .collect();
    let mut builder = if m.hashed {
        PackBuilder::hashed(t)
    } else {
        PackBuilder::new(t, 0)
    };
    let mut written = Vec::new();
    let mut sealed = Vec::new();
    for (b, plain) in m.blobs.iter().zip(&plains) {
        let s = seal_blob(key(), t, plain, i32::from(b.level % 4)).expect("blobs seal");
        assert_eq!(s.id, key().blob_id(plain));
        assert_eq!(s.raw_len as usize, plain.len());
        let before = builder.len();
        builder.add(&s).expect("blob added");
        assert_eq!(builder.len(), before + s.bytes.len());
        written.extend_from_slice(&s.bytes);
        sealed.push(s);
    }
    let wrong = seal_blob(key(), other, b"other", 0).expect("blobs seal");
    let (len, count) = (builder.len(), builder.blob_count());
    assert!(
        builder.add(&wrong).is_err(),
        "a blob of the other type is added"
    );
    assert_eq!((builder.len(), builder.blob_count()), (len, count));
    assert_eq!(builder.is_empty(), plains.is_empty());

    let (bytes, id, entries) = builder.finish(key()).expect("packs finish");
    let pack = if m.hashed {
        [written.as_slice(), &bytes].concat()
    } else {
        bytes
    };
    assert_eq!(
        id,
        Id::of_object(&pack),
        "pack id is not the hash of its bytes"
    );

    let hlen = parse_pack_trailer(&pack).expect("trailer") as usize;
    let hend = pack.len() - PACK_TRAILER_LEN;
    let header = &pack[hend - hlen..hend];
    let parsed = decode_pack_header(key(), header, pack.len() as u64).expect("header");
    assert_eq!(parsed, entries);
    assert_eq!(parsed.len(), plains.len());
    let mut offset = 0u32;
    for ((e, s), plain) in parsed.iter().zip(&sealed).zip(&plains) {
        assert_eq!(
            (e.blob_type, e.id, e.flags, e.raw_len),
            (t, s.id, s.flags, s.raw_len)
        );
        assert_eq!((e.offset, e.stored_len as usize), (offset, s.bytes.len()));
        offset += e.stored_len;
        let stored = &pack[e.offset as usize..(e.offset + e.stored_len) as usize];
        let opened =
            open_blob(key(), e.blob_type, &e.id, e.flags, e.raw_len, stored).expect("blob");
        assert_eq!(&opened, plain);
    }
    assert_eq!(offset as usize, hend - hlen, "blobs and header do not meet");

    let seg = IndexSegment {
        version: 1,
        supersedes: Vec::new(),
        packs: vec![IndexPack {
            id,
            blob_type: t,
            size: pack.len() as u64,
            blobs: parsed.iter().map(IndexEntry::from).collect(),
        }],
    };
    let back = IndexSegment::decode(key(), &seg.encode(key()).expect("segment")).expect("decodes");
    assert_eq!(back, seg);
});
