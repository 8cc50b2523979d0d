//! Blobs as read from a pack: the input is `type ‖ flags ‖ mode ‖ raw_len
//! ‖ body` (see `BlobInput`), the body sealed with the fixed key under the
//! blob AAD of those fields, so the decompressor and the length and id
//! checks see every body. The model is zstd's own one-shot decoder: a blob
//! opens exactly when the flags are defined, the body decodes (or, not
//! compressed, is) `raw_len` bytes whose keyed hash is the id, and then to
//! those bytes. `open_blob` and `open_blob_in_place` always agree.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lifeboat_format::{BlobFlags, BlobType, Id, MAX_BLOB_LEN, open_blob, open_blob_in_place};
use lifeboat_fuzz::{BlobInput, blob_aad, key};

/// Largest decoded body the model looks at (the target's memory bound).
const MODEL_LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some(input) = BlobInput::parse(data) else {
        return;
    };
    let Ok(blob_type) = BlobType::from_u8(input.blob_type % 3) else {
        return;
    };
    let flags = BlobFlags(input.flags);
    let compressed = flags.0 & BlobFlags::COMPRESSED != 0;
    // What the body stands for, if it decodes at all.
    let model: Option<Vec<u8>> = if compressed {
        zstd::bulk::decompress(input.body, MODEL_LIMIT).ok()
    } else {
        Some(input.body.to_vec())
    };
    // An explicit length is kept small (the opener reserves it up front),
    // or made larger than the bound, which must be refused before that.
    let raw_len = if input.mode & 1 != 0 {
        if input.mode & 4 != 0 {
            MAX_BLOB_LEN + 1 + input.raw_len % 1000
        } else {
            input.raw_len % (1 << 21)
        }
    } else {
        model
            .as_ref()
            .map_or(input.raw_len % (1 << 21), |m| m.len() as u32)
    };
    let id = match &model {
        Some(m) if input.mode & 2 == 0 => key().blob_id(m),
        Some(m) => key().blob_id(&[m.as_slice(), b"x"].concat()),
        None => Id([input.mode; 32]),
    };
    let sealed = key()
        .seal(&blob_aad(blob_type, flags.0, raw_len, &id.0), input.body)
        .expect("seal");

    let got = open_blob(key(), blob_type, &id, flags, raw_len, &sealed);
    let mut stored = sealed.clone();
    let mut scratch = vec![0xAA; 17];
    let in_place = open_blob_in_place(
        key(),
        blob_type,
        &id,
        flags,
        raw_len,
        &mut stored,
        &mut scratch,
    )
    .map(<[u8]>::to_vec);
    match (&got, &in_place) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "in-place opening differs"),
        (Err(_), Err(_)) => {}
        _ => panic!("open_blob {got:?} but open_blob_in_place {in_place:?}"),
    }

    // A grouped blob is opened as a group (the `group_open` target), so a
    // body sealed under the blob AAD never opens with that flag.
    let expect_ok = flags.validate().is_ok()
        && !flags.grouped()
        && raw_len <= MAX_BLOB_LEN
        && input.mode & 2 == 0
        && model.as_ref().is_some_and(|m| m.len() == raw_len as usize);
    // A frame the model could not decode within its limit may still be a
    // valid blob larger than that: only the model's yes is binding.
    if expect_ok {
        assert_eq!(
            got.as_deref().ok(),
            model.as_deref(),
            "a valid blob was refused"
        );
    } else if let Ok(plain) = &got {
        assert!(flags.validate().is_ok() && input.mode & 2 == 0 && raw_len <= MAX_BLOB_LEN);
        assert!(!flags.grouped(), "a blob sealed alone opened as a group member");
        assert_eq!(plain.len(), raw_len as usize);
        assert_eq!(
            key().blob_id(plain),
            id,
            "a blob opened to the wrong content"
        );
    }
});
