//! The prune lock (`locks/prune-<n>`): the input is the plaintext of the
//! object (payload-encoding byte ‖ postcard), sealed with the fixed key.
//! What decodes is version 1, has an expiry that does not wrap, and
//! re-encodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{ObjectKind, PRUNE_OBJECT_VERSION, PruneLock};
use lifeboat_fuzz::{key, seal_object_raw};

fuzz_target!(|data: &[u8]| {
    let sealed = seal_object_raw(ObjectKind::PruneLock, &[], data);
    if let Ok(l) = PruneLock::decode(key(), &sealed) {
        assert_eq!(l.version, PRUNE_OBJECT_VERSION);
        assert!(l.expires() >= l.created);
        let again = l.encode(key()).expect("a decoded lock encodes");
        assert_eq!(PruneLock::decode(key(), &again).expect("re-decodes"), l);
    }
});
