//! Trees: the input is a tree blob's plaintext (postcard; the blob envelope
//! is the `blob_open` target's). What decodes is sorted, has valid names,
//! finds each of its entries by name, and re-encodes to the same tree.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::Tree;
use lifeboat_fuzz::model::valid_name;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = Tree::decode(data) {
        assert_eq!(t.version, 1);
        for w in t.nodes.windows(2) {
            assert!(w[0].name < w[1].name);
        }
        for n in &t.nodes {
            assert!(valid_name(&n.name));
            assert_eq!(t.find(&n.name), Some(n));
        }
        let again = t.encode().expect("a decoded tree encodes");
        assert_eq!(Tree::decode(&again).expect("re-decodes"), t);
    }
});
