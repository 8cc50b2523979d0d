//! Snapshots: the input is the plaintext of the object (payload-encoding
//! byte ‖ JSON, or a zstd frame of it), sealed with the fixed key. What
//! decodes is version 1 and re-encodes, raw or compressed, to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{ObjectKind, Snapshot};
use lifeboat_fuzz::{key, seal_object_raw};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_object_raw(ObjectKind::Snapshot, &[], data);
    if let Ok(s) = Snapshot::decode(key(), &sealed) {
        assert_eq!(s.version, 1);
        for level in [0, 3] {
            let again = s.encode(key(), level).expect("a decoded snapshot encodes");
            assert_eq!(Snapshot::decode(key(), &again).expect("re-decodes"), s);
        }
    }
});
