//! Index segments: the input is the plaintext of the object (payload-
//! encoding byte ‖ postcard), sealed with the fixed key. What decodes has
//! only defined flags and re-encodes to a segment that decodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{IndexSegment, ObjectKind};
use lifeboat_fuzz::{key, seal_object_raw};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_object_raw(ObjectKind::Index, &[], data);
    if let Ok(seg) = IndexSegment::decode(key(), &sealed) {
        assert_eq!(seg.version, 1);
        let count: usize = seg.packs.iter().map(|p| p.blobs.len()).sum();
        assert_eq!(seg.blob_count(), count);
        for e in seg.packs.iter().flat_map(|p| &p.blobs) {
            assert!(e.flags.validate().is_ok());
        }
        let again = seg.encode(key()).expect("a decoded segment encodes");
        assert_eq!(
            IndexSegment::decode(key(), &again).expect("re-decodes"),
            seg
        );
    }
});
