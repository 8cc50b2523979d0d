//! Prune marks (`marks/<id>`): the input is the plaintext of the object
//! (payload-encoding byte ‖ postcard), sealed with the fixed key. What
//! decodes is version 1 and re-encodes to itself; it is never a lock.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{ObjectKind, PRUNE_OBJECT_VERSION, PruneLock, PruneMarks};
use lifeboat_fuzz::{key, seal_object_raw};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_object_raw(ObjectKind::PruneMarks, &[], data);
    assert!(
        PruneLock::decode(key(), &sealed).is_err(),
        "marks opened as a lock"
    );
    if let Ok(m) = PruneMarks::decode(key(), &sealed) {
        assert_eq!(m.version, PRUNE_OBJECT_VERSION);
        let again = m.encode(key()).expect("decoded marks encode");
        assert_eq!(PruneMarks::decode(key(), &again).expect("re-decode"), m);
    }
});
