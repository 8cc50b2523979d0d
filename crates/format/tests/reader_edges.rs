//! What this crate's decoders accept at the edges the encoders never reach:
//! `docs/format.md` §10 and §12 state these answers, and these tests pin
//! them (they follow from postcard's and zstd's own decoders).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use lifeboat_format::{
    BlobFlags, BlobType, Error, IndexSegment, MasterKey, Node, NodeKind, ObjectKind, Snapshot,
    Timestamp, Tree, open_blob, open_object,
};

fn key() -> MasterKey {
    MasterKey::from_bytes(&(0u8..72).collect::<Vec<_>>()).unwrap()
}

/// A metadata object of `kind` whose plaintext is exactly `plain`
/// (encoding byte included), sealed by hand as §7 describes.
fn seal_object_raw(key: &MasterKey, kind: ObjectKind, plain: &[u8]) -> Vec<u8> {
    let mut aad = b"lifeboat object v1".to_vec();
    aad.push(kind as u8);
    key.seal(&aad, plain).unwrap()
}

/// A blob whose sealed body is exactly `body`, with the §8 AAD.
fn seal_blob_raw(
    key: &MasterKey,
    t: BlobType,
    flags: u8,
    raw_len: u32,
    id: &[u8; 32],
    body: &[u8],
) -> Vec<u8> {
    let mut aad = b"lifeboat blob v1".to_vec();
    aad.push(t as u8);
    aad.push(flags);
    aad.extend_from_slice(&raw_len.to_le_bytes());
    aad.extend_from_slice(id);
    key.seal(&aad, body).unwrap()
}

fn tree_with_mtime(nsec: u32) -> Tree {
    let mut n = Node::new("f", NodeKind::File);
    n.mtime = Timestamp { sec: 1, nsec };
    Tree::new(vec![n])
}

#[test]
fn nsec_of_a_billion_or_more_is_decoded_not_refused() {
    for nsec in [999_999_999, 1_000_000_000, u32::MAX] {
        let t = tree_with_mtime(nsec);
        let back = Tree::decode(&t.encode().unwrap()).unwrap();
        assert_eq!(back.nodes[0].mtime.nsec, nsec);
    }
}

#[test]
fn non_shortest_varints_are_accepted_up_to_the_type_width() {
    // The empty tree is `01 00`; `81 00` and `81 80 80 80 00` are version 1
    // padded to two and five bytes.
    let padded = [
        &[0x81, 0x00, 0x00][..],
        &[0x81, 0x80, 0x80, 0x80, 0x00, 0x00],
    ];
    for bytes in padded {
        let t = Tree::decode(bytes).unwrap();
        assert_eq!((t.version, t.nodes.len()), (1, 0));
    }
    // A u32 varint longer than 5 bytes, or whose 5th byte carries bits
    // above bit 31, is refused.
    for bytes in [
        &[0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00][..],
        &[0x81, 0x80, 0x80, 0x80, 0x10, 0x00],
    ] {
        assert!(matches!(Tree::decode(bytes), Err(Error::Malformed { .. })));
    }
    let k = key();
    // An index segment: encoding 0, version 1 in two bytes, no supersedes, no packs.
    let seg = seal_object_raw(&k, ObjectKind::Index, &[0x00, 0x81, 0x00, 0x00, 0x00]);
    let seg = IndexSegment::decode(&k, &seg).unwrap();
    assert_eq!((seg.version, seg.packs.len()), (1, 0));
}

fn zstd_frame(bytes: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(bytes, 3).unwrap()
}

/// A skippable zstd frame (RFC 8878 §3.1.2) with no user data.
const SKIPPABLE: [u8; 8] = [0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0];

#[test]
fn an_object_payload_is_every_zstd_frame_and_nothing_after_them() {
    let k = key();
    let json = br#"{"version":1,"time":"2026-01-01T00:00:00Z","tree":"0000000000000000000000000000000000000000000000000000000000000000","paths":[],"hostname":"host","source":"fs"}"#;
    let open = |body: &[u8]| {
        let mut plain = vec![1u8];
        plain.extend_from_slice(body);
        open_object(
            &k,
            ObjectKind::Snapshot,
            &seal_object_raw(&k, ObjectKind::Snapshot, &plain),
        )
    };
    // Two frames, a skippable one between them: the payload is their concatenation.
    let mut split = zstd_frame(&json[..40]);
    split.extend_from_slice(&SKIPPABLE);
    split.extend_from_slice(&zstd_frame(&json[40..]));
    assert_eq!(open(&split).unwrap(), json);
    let mut sealed_split = vec![1u8];
    sealed_split.extend_from_slice(&split);
    let snap = Snapshot::decode(
        &k,
        &seal_object_raw(&k, ObjectKind::Snapshot, &sealed_split),
    );
    assert_eq!(snap.unwrap().hostname, "host");
    // Bytes after the last frame that are not a frame are refused.
    for tail in [&[1u8, 2, 3][..], &[0, 0, 0, 0]] {
        let mut body = zstd_frame(json);
        body.extend_from_slice(tail);
        assert!(matches!(open(&body), Err(Error::Compression(_))));
    }
}

#[test]
fn a_compressed_blob_body_is_every_zstd_frame_and_nothing_after_them() {
    let k = key();
    let data = b"hello hello hello hello hello hello hello hello".to_vec();
    let id = k.blob_id(&data);
    let raw_len = data.len() as u32;
    let open = |body: &[u8]| {
        let s = seal_blob_raw(
            &k,
            BlobType::Data,
            BlobFlags::COMPRESSED,
            raw_len,
            id.as_bytes(),
            body,
        );
        open_blob(
            &k,
            BlobType::Data,
            &id,
            BlobFlags(BlobFlags::COMPRESSED),
            raw_len,
            &s,
        )
    };
    let mut split = zstd_frame(&data[..20]);
    split.extend_from_slice(&SKIPPABLE);
    split.extend_from_slice(&zstd_frame(&data[20..]));
    assert_eq!(open(&split).unwrap(), data);
    let mut body = zstd_frame(&data);
    body.extend_from_slice(&[1, 2, 3]);
    assert!(matches!(open(&body), Err(Error::Compression(_))));
    // More than raw_len bytes out of the frames is refused.
    let mut longer = zstd_frame(&data);
    longer.extend_from_slice(&zstd_frame(b"x"));
    assert!(open(&longer).is_err());
}
