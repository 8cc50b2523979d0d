//! The config object: its 12-byte prefix (`"LIFEBOAT" ‖ version`) is read
//! without a key. The input is tried twice: as the stored object itself
//! (the unauthenticated prefix parser, then the whole decode), and as the plaintext (payload-encoding byte ‖ JSON) of a
//! config validly sealed under a version-1 prefix, which must decode to a
//! config that encodes and decodes to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{CONFIG_MAGIC, Config, FORMAT_VERSION, ObjectKind};
use lifeboat_fuzz::{key, seal_object_raw};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = Config::peek_version(data) {
        assert!(data.len() >= 12 && &data[..8] == CONFIG_MAGIC);
        assert_eq!(v.to_le_bytes(), data[8..12]);
    }
    // Only a seed sealed with the fixed key gets through.
    if let Ok(cfg) = Config::decode(key(), data) {
        assert_eq!(cfg.version, FORMAT_VERSION);
    }

    let mut stored = CONFIG_MAGIC.to_vec();
    stored.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    let sealed = seal_object_raw(ObjectKind::Config, &stored, data);
    stored.extend_from_slice(&sealed);
    if let Ok(cfg) = Config::decode(key(), &stored) {
        assert_eq!(cfg.version, FORMAT_VERSION);
        let again = cfg.encode(key()).expect("a decoded config encodes");
        assert_eq!(Config::decode(key(), &again).expect("re-decodes"), cfg);
    }
});
