//! Pack trailers and headers from arbitrary bytes never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{MasterKey, decode_pack_header, parse_pack_trailer};

fuzz_target!(|data: &[u8]| {
    let key = MasterKey::from_bytes(&[7u8; 72]).expect("fixed key");
    if let Ok(hlen) = parse_pack_trailer(data) {
        let end = data.len() - 12;
        if let Some(start) = end.checked_sub(hlen as usize) {
            let _ = decode_pack_header(&key, &data[start..end], data.len() as u64);
        }
    }
});
