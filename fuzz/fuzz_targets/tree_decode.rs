//! Tree decoding never panics, and what decodes re-encodes to the same bytes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::Tree;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::decode(data) {
        let again = t.encode().expect("a decoded tree encodes");
        assert_eq!(Tree::decode(&again).expect("re-decodes"), t);
    }
});
