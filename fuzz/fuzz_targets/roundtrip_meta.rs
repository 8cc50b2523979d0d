//! Encoders against decoders, through a model: an arbitrary tree, snapshot,
//! index segment, prune marks or lock, config, key slot or verification
//! record is encoded (and sealed, where the format seals it) with the
//! crate's own encoder, then decoded. The decoder must accept exactly what
//! the model says is valid (version 1, sorted valid names, defined flags)
//! and give back the original value; anything else is an error, never a
//! panic.
#![no_main]
use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{
    Config, Error, IndexSegment, KeySlot, PruneLock, PruneMarks, Snapshot, Tree,
};
use lifeboat_fuzz::model::MetaCase;
use lifeboat_fuzz::{key, record};

/// Whether an unsupported version was refused as such.
fn is_unsupported(e: &Error) -> bool {
    matches!(e, Error::UnsupportedVersion { .. })
}

fuzz_target!(|data: &[u8]| {
    let Ok(case) = MetaCase::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    match case {
        MetaCase::Tree(m) => {
            let (tree, ok) = m.tree();
            let got = Tree::decode(&tree.encode().expect("trees encode"));
            if ok {
                assert_eq!(got.expect("a valid tree is refused"), tree);
            } else {
                assert!(got.is_err(), "an invalid tree is accepted: {tree:?}");
            }
        }
        MetaCase::Snapshot(m) => {
            let s = m.snapshot();
            let sealed = s
                .encode(key(), i32::from(m.level % 4))
                .expect("snapshots encode");
            match Snapshot::decode(key(), &sealed) {
                Ok(back) => {
                    assert_eq!(s.version, 1);
                    assert_eq!(back, s);
                }
                Err(e) => assert!(s.version != 1 && is_unsupported(&e), "{e:?} for {s:?}"),
            }
        }
        MetaCase::Index(m) => {
            let (seg, ok) = m.segment();
            let got = IndexSegment::decode(key(), &seg.encode(key()).expect("segments encode"));
            if ok {
                assert_eq!(got.expect("a valid segment is refused"), seg);
            } else {
                assert!(got.is_err(), "an invalid segment is accepted");
            }
        }
        MetaCase::Marks(m) => {
            let marks = m.marks();
            match PruneMarks::decode(key(), &marks.encode(key()).expect("marks encode")) {
                Ok(back) => {
                    assert_eq!(marks.version, 1);
                    assert_eq!(back, marks);
                }
                Err(e) => assert!(marks.version != 1 && is_unsupported(&e), "{e:?}"),
            }
        }
        MetaCase::Lock(m) => {
            let lock = m.lock();
            match PruneLock::decode(key(), &lock.encode(key()).expect("locks encode")) {
                Ok(back) => {
                    assert_eq!(lock.version, 1);
                    assert_eq!(back, lock);
                }
                Err(e) => assert!(lock.version != 1 && is_unsupported(&e), "{e:?}"),
            }
        }
        MetaCase::Config(m) => {
            let cfg = m.config();
            let stored = cfg.encode(key()).expect("configs encode");
            assert_eq!(Config::peek_version(&stored).expect("prefix"), cfg.version);
            match Config::decode(key(), &stored) {
                Ok(back) => {
                    assert_eq!(cfg.version, 1);
                    assert_eq!(back, cfg);
                }
                Err(e) => assert!(cfg.version != 1 && is_unsupported(&e), "{e:?}"),
            }
        }
        MetaCase::Slot(m) => {
            let slot = m.slot();
            let back = KeySlot::from_json(&slot.to_json()).expect("a slot's JSON parses");
            assert_eq!(back, slot);
        }
        MetaCase::Record(m) => {
            let r = m.record();
            let bin = postcard::to_allocvec(&r).expect("records encode");
            let sealed = lifeboat_format::seal_object(
                key(),
                lifeboat_format::ObjectKind::VerifyRecord,
                &bin,
                0,
            )
            .expect("seal");
            match record::decode(key(), &sealed) {
                Ok(back) => {
                    assert_eq!(r.version, 1);
                    assert_eq!(back, r);
                }
                Err(e) => assert!(
                    matches!(e, record::RecordError::UnsupportedVersion(v) if v == r.version),
                    "{e:?}"
                ),
            }
        }
    }
});
