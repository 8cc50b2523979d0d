use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::random::fill_random;
use crate::{ENVELOPE_OVERHEAD, Error, Id, NONCE_LEN, Result, TAG_LEN};

/// Length of an encoded master key: data key, id key, chunker seed.
pub const MASTER_KEY_LEN: usize = 32 + 32 + 8;

/// The repository's master key. Everything new is encrypted under
/// `data_key`; blob ids are keyed with `id_key`; chunk boundaries depend on
/// `chunker_seed`. After `key rotate` it also holds the data keys it
/// replaced (`retired`, newest first), which still open what they sealed
/// (docs/format.md, "Keyring"). Zeroized on drop and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct MasterKey {
    data_key: [u8; 32],
    id_key: [u8; 32],
    chunker_seed: u64,
    retired: Vec<[u8; 32]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<MasterKey> {
        let mut bytes = [0u8; MASTER_KEY_LEN];
        fill_random(&mut bytes)?;
        let key = MasterKey::from_bytes(&bytes);
        bytes.zeroize();
        key
    }

    /// Decode the 72-byte form (data key ‖ id key ‖ seed as u64 LE).
    pub fn from_bytes(bytes: &[u8]) -> Result<MasterKey> {
        if bytes.len() != MASTER_KEY_LEN {
            return Err(crate::error::malformed(
                "master key",
                format!("expected {MASTER_KEY_LEN} bytes, got {}", bytes.len()),
            ));
        }
        let mut data_key = [0u8; 32];
        let mut id_key = [0u8; 32];
        let mut seed = [0u8; 8];
        data_key.copy_from_slice(&bytes[..32]);
        id_key.copy_from_slice(&bytes[32..64]);
        seed.copy_from_slice(&bytes[64..72]);
        Ok(MasterKey {
            data_key,
            id_key,
            chunker_seed: u64::from_le_bytes(seed),
            retired: Vec::new(),
        })
    }

    /// The same key with a new random data key for everything sealed from
    /// now on; the current data key joins the retired ones, so what it
    /// sealed stays readable. The id key and chunker seed stay, so blob ids
    /// and chunk boundaries (and deduplication) do not change.
    pub fn rotated(&self) -> Result<MasterKey> {
        let mut next = self.clone();
        fill_random(&mut next.data_key)?;
        next.retired.insert(0, self.data_key);
        Ok(next)
    }

    /// Number of retired data keys (see [`MasterKey::rotated`]).
    pub fn retired_count(&self) -> usize {
        self.retired.len()
    }

    /// Retired data keys, newest first (keyring encoding).
    pub(crate) fn retired(&self) -> &[[u8; 32]] {
        &self.retired
    }

    /// Replace the retired data keys (keyring decoding).
    pub(crate) fn set_retired(&mut self, retired: Vec<[u8; 32]>) {
        self.retired.zeroize();
        self.retired = retired;
    }

    /// The 72-byte form of the current key (without retired data keys).
    /// The caller must zeroize the result.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut v = zeroize::Zeroizing::new(Vec::with_capacity(MASTER_KEY_LEN));
        v.extend_from_slice(&self.data_key);
        v.extend_from_slice(&self.id_key);
        v.extend_from_slice(&self.chunker_seed.to_le_bytes());
        v
    }

    /// Seed for the keyed gear table of the content-defined chunker.
    pub fn chunker_seed(&self) -> u64 {
        self.chunker_seed
    }

    /// Blob id: BLAKE3 keyed with the id key, over the plaintext.
    pub fn blob_id(&self, plaintext: &[u8]) -> Id {
        Id(*blake3::keyed_hash(&self.id_key, plaintext).as_bytes())
    }

    /// Encrypt `plaintext` into `nonce ‖ ciphertext ‖ tag`, binding `aad`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(plaintext.len() + ENVELOPE_OVERHEAD);
        out.resize(NONCE_LEN, 0);
        next_nonce(&mut out[..NONCE_LEN])?;
        out.extend_from_slice(plaintext);
        seal_in_place(&self.data_key, aad, &mut out)?;
        Ok(out)
    }

    /// Decrypt an envelope made by [`MasterKey::seal`] with the same `aad`,
    /// under the current data key or, failing that, each retired one (trial
    /// decryption: a wrong key fails on the tag before anything is
    /// decrypted, so each costs one Poly1305 pass).
    pub fn open(&self, aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
        let first = open_with(&self.data_key, aad, sealed, what);
        if first.is_ok() || self.retired.is_empty() {
            return first;
        }
        for k in &self.retired {
            if let Ok(plain) = open_with(k, aad, sealed, what) {
                return Ok(plain);
            }
        }
        first
    }

    /// [`MasterKey::open`] without a copy: decrypts `sealed` where it lies
    /// and returns the plaintext inside it.
    pub fn open_in_place<'a>(
        &self,
        aad: &[u8],
        sealed: &'a mut [u8],
        what: &str,
    ) -> Result<&'a [u8]> {
        // A failed tag check leaves `sealed` as it was (chacha20poly1305
        // decrypts only after the tag matches), so each key may try it.
        let mut result = decrypt_envelope_in_place(&self.data_key, aad, sealed, what);
        if result.is_err() {
            for k in &self.retired {
                if decrypt_envelope_in_place(k, aad, sealed, what).is_ok() {
                    result = Ok(());
                    break;
                }
            }
        }
        result?;
        Ok(&sealed[NONCE_LEN..sealed.len() - TAG_LEN])
    }
}

/// Decrypts the envelope `sealed` (nonce, ciphertext, tag) where it lies;
/// on an error it is left unchanged.
fn decrypt_envelope_in_place(
    key: &[u8; 32],
    aad: &[u8],
    sealed: &mut [u8],
    what: &str,
) -> Result<()> {
    let (nonce, tag) = envelope(sealed, what)?;
    let tag_at = sealed.len() - TAG_LEN;
    decrypt(key, aad, &nonce, &mut sealed[NONCE_LEN..tag_at], &tag, what)
}

/// Encrypts `buf[NONCE_LEN..]` in place under the nonce in `buf[..NONCE_LEN]`
/// and appends the tag.
pub(crate) fn seal_in_place(key: &[u8; 32], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
    let cipher = XChaCha20Poly1305::new(key.into());
    let nonce = XNonce::try_from(&buf[..NONCE_LEN]).map_err(|_| Error::Authentication {
        what: "nonce".into(),
    })?;
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad, (&mut buf[NONCE_LEN..]).into())
        .map_err(|_| Error::Authentication {
            what: "encryption".into(),
        })?;
    buf.extend_from_slice(tag.as_slice());
    Ok(())
}

pub(crate) fn open_with(key: &[u8; 32], aad: &[u8], sealed: &[u8], what: &str) -> Result<Vec<u8>> {
    let (nonce, tag) = envelope(sealed, what)?;
    let mut plain = sealed[NONCE_LEN..sealed.len() - TAG_LEN].to_vec();
    decrypt(key, aad, &nonce, &mut plain, &tag, what)?;
    Ok(plain)
}

/// The nonce and tag of an envelope, checking its length.
fn envelope(sealed: &[u8], what: &str) -> Result<(XNonce, chacha20poly1305::Tag)> {
    if sealed.len() < ENVELOPE_OVERHEAD {
        return Err(Error::Truncated {
            what: "encrypted envelope",
            needed: ENVELOPE_OVERHEAD,
            actual: sealed.len(),
        });
    }
    let bad = || Error::Authentication {
        what: what.to_string(),
    };
    let nonce = XNonce::try_from(&sealed[..NONCE_LEN]).map_err(|_| bad())?;
    let tag =
        chacha20poly1305::Tag::try_from(&sealed[sealed.len() - TAG_LEN..]).map_err(|_| bad())?;
    Ok((nonce, tag))
}

fn decrypt(
    key: &[u8; 32],
    aad: &[u8],
    nonce: &XNonce,
    buf: &mut [u8],
    tag: &chacha20poly1305::Tag,
    what: &str,
) -> Result<()> {
    XChaCha20Poly1305::new(key.into())
        .decrypt_inout_detached(nonce, aad, buf.into(), tag)
        .map_err(|_| Error::Authentication {
            what: what.to_string(),
        })
}

thread_local! {
    /// This thread's nonce prefix (random) and counter; see [`next_nonce`].
    static NONCES: std::cell::Cell<Option<([u8; 16], u64)>> = const { std::cell::Cell::new(None) };
}

/// Fill a 24-byte XChaCha20 nonce: a random 16-byte prefix drawn once per
/// thread from the operating system, then a 64-bit counter. XChaCha20 needs
/// nonces that never repeat under one key, not unpredictable ones; two
/// threads (or processes) repeat only if their 128-bit prefixes collide.
/// One system call per thread instead of one per blob: a backup seals
/// about 100k blobs per 2 GB. The prefix is drawn again before the counter
/// could wrap. Lifeboat never forks without exec, so no two processes
/// share a prefix.
pub(crate) fn next_nonce(out: &mut [u8]) -> Result<()> {
    debug_assert_eq!(out.len(), NONCE_LEN);
    NONCES.with(|n| {
        let (prefix, counter) = match n.get() {
            Some((p, c)) if c < u64::MAX => (p, c),
            _ => {
                let mut p = [0u8; 16];
                fill_random(&mut p)?;
                (p, 0)
            }
        };
        out[..16].copy_from_slice(&prefix);
        out[16..NONCE_LEN].copy_from_slice(&counter.to_le_bytes());
        n.set(Some((prefix, counter + 1)));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let k = MasterKey::generate().unwrap();
        let sealed = k.seal(b"aad", b"hello").unwrap();
        assert_eq!(sealed.len(), 5 + ENVELOPE_OVERHEAD);
        assert_eq!(k.open(b"aad", &sealed, "t").unwrap(), b"hello");
        assert!(k.open(b"other", &sealed, "t").is_err());
        let mut bad = sealed.clone();
        bad[NONCE_LEN] ^= 1;
        assert!(matches!(
            k.open(b"aad", &bad, "t"),
            Err(Error::Authentication { .. })
        ));
        assert!(matches!(
            k.open(b"aad", &sealed[..10], "t"),
            Err(Error::Truncated { .. })
        ));
        let other = MasterKey::generate().unwrap();
        assert!(other.open(b"aad", &sealed, "t").is_err());
    }

    #[test]
    fn nonces_never_repeat_within_or_across_threads() {
        let k = MasterKey::generate().unwrap();
        let nonce = |s: &[u8]| s[..NONCE_LEN].to_vec();
        let mine: Vec<_> = (0..1000)
            .map(|_| nonce(&k.seal(b"", b"x").unwrap()))
            .collect();
        let theirs: Vec<_> = std::thread::scope(|s| {
            s.spawn(|| {
                (0..1000)
                    .map(|_| nonce(&k.seal(b"", b"x").unwrap()))
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap()
        });
        let all: std::collections::HashSet<_> = mine.iter().chain(&theirs).collect();
        assert_eq!(all.len(), 2000);
        // One prefix per thread, different between threads.
        assert_eq!(mine[0][..16], mine[999][..16]);
        assert_ne!(mine[0][..16], theirs[0][..16]);
    }

    #[test]
    fn key_bytes_round_trip_and_debug_is_redacted() {
        let k = MasterKey::generate().unwrap();
        let k2 = MasterKey::from_bytes(&k.to_bytes()).unwrap();
        assert_eq!(k.blob_id(b"x"), k2.blob_id(b"x"));
        assert_ne!(k.blob_id(b"x"), k.blob_id(b"y"));
        assert_eq!(format!("{k:?}"), "MasterKey(<redacted>)");
        assert!(MasterKey::from_bytes(&[0u8; 5]).is_err());
    }
}
