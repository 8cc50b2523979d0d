//! Groups of small blobs as read from a pack (docs/format.md §8.1): the
//! input is `flags ‖ pick ‖ body`, the body sealed with the fixed key under
//! the group AAD, so the table parser and the member checks see every body.
//! The model parses the table as the document says: a member opens exactly
//! when the flags are defined and grouped, the body decodes (or, not
//! compressed, is) at most 4 MiB whose table covers it exactly, and the
//! first member with the id asked for holds `raw_len` bytes hashing to it.
//! `open_blob` and `open_blob_in_place` always agree, and the envelope is
//! left as it was by the in-place opener. Each input is opened twice, the
//! second time from the group the thread has open, which must answer alike.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{
    BlobFlags, BlobType, Id, MAX_GROUP_LEN, open_blob, open_blob_in_place,
};
use lifeboat_fuzz::key;

/// The group AAD of docs/format.md §8.1.
fn group_aad(flags: u8) -> Vec<u8> {
    let mut aad = b"lifeboat group v1".to_vec();
    aad.push(BlobType::Data as u8);
    aad.push(flags);
    aad
}

/// The members of a group's plaintext, or `None` where the table is bad.
fn model_members(plain: &[u8]) -> Option<Vec<(Id, &[u8])>> {
    let count = u32::from_le_bytes(plain.get(..4)?.try_into().ok()?) as usize;
    let table_end = count.checked_mul(36)?.checked_add(4)?;
    let table = plain.get(4..table_end)?;
    let mut at = table_end;
    let mut out = Vec::new();
    for e in table.chunks_exact(36) {
        let id = Id(e[..32].try_into().ok()?);
        let n = u32::from_le_bytes(e[32..36].try_into().ok()?) as usize;
        out.push((id, plain.get(at..at.checked_add(n)?)?));
        at += n;
    }
    (at == plain.len()).then_some(out)
}

fuzz_target!(|data: &[u8]| {
    let Some((&[flag_byte, pick], body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let flags = BlobFlags(flag_byte | BlobFlags::GROUPED);
    let plain: Option<Vec<u8>> = if flags.compressed() {
        zstd::bulk::decompress(body, MAX_GROUP_LEN as usize + 1).ok()
    } else {
        Some(body.to_vec())
    };
    let members = plain
        .as_deref()
        .filter(|p| p.len() <= MAX_GROUP_LEN as usize)
        .and_then(model_members);
    // Ask for a member of the table (or, pick's top bit set, a stranger).
    let (id, raw_len) = match members.as_deref() {
        Some([first, ..]) if pick & 0x80 == 0 => {
            let (id, bytes) = members.as_ref().map_or(*first, |m| m[usize::from(pick) % m.len()]);
            (id, bytes.len() as u32)
        }
        _ => (key().blob_id(&[pick]), 1),
    };
    let sealed = key().seal(&group_aad(flags.0), body).expect("seal");
    for _ in 0..2 {
        let got = open_blob(key(), BlobType::Data, &id, flags, raw_len, &sealed);
        let mut stored = sealed.clone();
        let mut scratch = vec![0xAA; 17];
        let in_place = open_blob_in_place(
            key(),
            BlobType::Data,
            &id,
            flags,
            raw_len,
            &mut stored,
            &mut scratch,
        )
        .map(<[u8]>::to_vec);
        assert_eq!(stored, sealed, "the in-place opener changed a group");
        match (&got, &in_place) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "in-place opening differs"),
            (Err(_), Err(_)) => {}
            _ => panic!("open_blob {got:?} but open_blob_in_place {in_place:?}"),
        }
        // The first member with the id, if its bytes hash to it.
        let expect = flags.validate().ok().and(members.as_ref()).and_then(|m| {
            m.iter()
                .find(|(mid, _)| *mid == id)
                .map(|(_, b)| *b)
                .filter(|b| b.len() == raw_len as usize && key().blob_id(b) == id)
        });
        match (&got, expect) {
            (Ok(a), Some(e)) => assert_eq!(a.as_slice(), e, "a member opened to other bytes"),
            (Err(_), None) => {}
            (Ok(_), None) => panic!("a group the document refuses was opened"),
            (Err(e), Some(_)) => panic!("a valid member was refused: {e}"),
        }
    }
});
