//! Pack headers. The input is `data length (u32 LE) ‖ plaintext of the
//! header object` (payload-encoding byte ‖ 46-byte entries); it is sealed
//! with the fixed key and a trailer is appended, as a pack ends. The
//! trailer must give back the header's length, and every entry the decoder
//! accepts must lie inside the pack's data. The raw input is also offered
//! to the trailer parser and, through it, to the header decoder (as a
//! whole pack: one seed is a real pack).
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{ObjectKind, PACK_MAGIC, decode_pack_header, parse_pack_trailer};
use lifeboat_fuzz::{key, seal_object_raw};

const ENTRY_LEN: usize = 46;

fuzz_target!(|data: &[u8]| {
    if let Ok(hlen) = parse_pack_trailer(data) {
        let end = data.len() - 12;
        if let Some(start) = end.checked_sub(hlen as usize) {
            // Only a seed sealed with the fixed key gets through.
            if let Ok(entries) = decode_pack_header(key(), &data[start..end], data.len() as u64) {
                for e in &entries {
                    assert!(u64::from(e.offset) + u64::from(e.stored_len) <= start as u64);
                }
            }
        }
    }

    let Some((head, plain)) = data.split_at_checked(4) else {
        return;
    };
    let data_len = u64::from(u32::from_le_bytes([head[0], head[1], head[2], head[3]]));
    let sealed = seal_object_raw(ObjectKind::PackHeader, &[], plain);
    let mut tail = sealed.clone();
    tail.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    tail.extend_from_slice(PACK_MAGIC);
    tail.extend_from_slice(&1u16.to_le_bytes());
    assert_eq!(
        parse_pack_trailer(&tail).expect("a valid trailer") as usize,
        sealed.len()
    );
    let pack_len = data_len + tail.len() as u64;
    if let Ok(entries) = decode_pack_header(key(), &sealed, pack_len) {
        if plain.first() == Some(&0) {
            assert_eq!(entries.len() * ENTRY_LEN, plain.len() - 1);
        }
        for e in &entries {
            assert!(u64::from(e.offset) + u64::from(e.stored_len) <= data_len);
            assert_eq!(e.flags.validate().map(|f| f.0).ok(), Some(e.flags.0));
        }
    }
});
