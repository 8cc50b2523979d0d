//! Check's verification records (`verify/<id>`): the input is the
//! plaintext of the object (payload-encoding byte ‖ postcard), sealed with
//! the fixed key, decoded by the steps of `lifeboat-check`'s private
//! decoder (mirrored in `src/record.rs`). What decodes re-encodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::ObjectKind;
use lifeboat_fuzz::{key, record, seal_object_raw};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_object_raw(ObjectKind::VerifyRecord, &[], data);
    if let Ok(r) = record::decode(key(), &sealed) {
        assert_eq!(r.version, 1);
        let bin = postcard::to_allocvec(&r).expect("a decoded record encodes");
        let again = seal_object_raw(ObjectKind::VerifyRecord, &[], &[&[0u8][..], &bin].concat());
        assert_eq!(record::decode(key(), &again).expect("re-decodes"), r);
    }
});
