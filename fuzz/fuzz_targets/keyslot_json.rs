//! Key slots (`keys/<id>`) are plain JSON read before any key is known: the
//! parser sees bytes exactly as stored. Whatever parses re-serialises to the
//! same slot; a slot cheap enough to open here opens only to the fixed key
//! (the seeds wrap it under `PASSWORD`), never to another.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{Error, KeySlot};
use lifeboat_fuzz::{PASSWORD, key};

fuzz_target!(|data: &[u8]| {
    let Ok(slot) = KeySlot::from_json(data) else {
        return;
    };
    let again = KeySlot::from_json(&slot.to_json()).expect("a parsed slot re-parses");
    assert_eq!(again, slot);
    let p = slot.params;
    let checked = p.check();
    // argon2 is run only where it costs well under a millisecond.
    if checked.is_ok() && p.memory_kib <= 256 && p.iterations <= 2 {
        match slot.open(PASSWORD) {
            Ok(k) => assert_eq!(*k.to_bytes(), *key().to_bytes(), "opened to another key"),
            Err(
                Error::WrongPassword
                | Error::UnsupportedVersion { .. }
                | Error::Malformed { .. }
                | Error::Kdf(_),
            ) => {}
            Err(e) => panic!("unexpected error opening a slot: {e:?}"),
        }
    } else if checked.is_err() {
        assert!(
            slot.open(PASSWORD).is_err(),
            "costs out of bounds were accepted"
        );
    }
});
