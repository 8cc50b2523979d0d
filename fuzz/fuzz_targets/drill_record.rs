//! Drill records (`drills/<id>`): the input is the plaintext of the object
//! (payload-encoding byte ‖ JSON, or a zstd frame of it), sealed with the
//! fixed key. What decodes is version 1 and re-encodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{DrillRecord, ObjectKind};
use lifeboat_fuzz::{key, seal_object_raw};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_object_raw(ObjectKind::DrillRecord, &[], data);
    if let Ok(r) = DrillRecord::decode(key(), &sealed) {
        assert_eq!(r.version, 1);
        let again = r.encode(key()).expect("a decoded drill record encodes");
        assert_eq!(DrillRecord::decode(key(), &again).expect("re-decodes"), r);
    }
});
