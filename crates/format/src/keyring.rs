//! The keyring: the master key with the data keys that `key rotate`
//! retired, as a version-2 key slot wraps it, and the *grants* through which
//! a rotation hands a new keyring to slots whose passwords it does not know
//! (docs/format.md, §5.1 and §5.2).
//!
//! A grant is sealed to a slot's X25519 public key, so any client that can
//! open the repository can give every slot the new keyring, while someone
//! who holds only an old master key cannot read it: the slot's private key
//! is wrapped under the slot's password, not under any master key.

use serde::{Deserialize, Serialize};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::crypto::{open_with, seal_in_place};
use crate::random::fill_random;
use crate::{Error, MASTER_KEY_LEN, MasterKey, NONCE_LEN, Result, TAG_LEN};

/// Magic bytes that start an encoded keyring.
pub const KEYRING_MAGIC: &[u8; 4] = b"LBKR";
/// Keyring encoding version written and read by this build.
pub const KEYRING_VERSION: u8 = 1;
/// Most retired data keys a keyring holds (one per rotation).
pub const MAX_RETIRED_KEYS: usize = 255;
/// Length of an X25519 key, secret or public.
pub const X25519_LEN: usize = 32;

const HEADER_LEN: usize = 6;
const GRANT_CONTEXT: &str = "lifeboat keyslot grant v1";

/// Encode `key` and its retired data keys:
/// `"LBKR" ‖ version (1) ‖ n (u8) ‖ master key (72) ‖ n × retired data key (32)`,
/// newest retired key first.
pub fn encode_keyring(key: &MasterKey) -> Result<Zeroizing<Vec<u8>>> {
    let retired = key.retired();
    let n = u8::try_from(retired.len()).map_err(|_| {
        crate::error::malformed(
            "keyring",
            format!("more than {MAX_RETIRED_KEYS} retired keys"),
        )
    })?;
    let mut out = Zeroizing::new(Vec::with_capacity(
        HEADER_LEN + MASTER_KEY_LEN + 32 * retired.len(),
    ));
    out.extend_from_slice(KEYRING_MAGIC);
    out.push(KEYRING_VERSION);
    out.push(n);
    out.extend_from_slice(&key.to_bytes());
    for k in retired {
        out.extend_from_slice(k);
    }
    Ok(out)
}

/// Decode [`encode_keyring`]'s form, refusing any other length, magic or
/// version.
pub fn decode_keyring(bytes: &[u8]) -> Result<MasterKey> {
    if bytes.len() < HEADER_LEN + MASTER_KEY_LEN {
        return Err(Error::Truncated {
            what: "keyring",
            needed: HEADER_LEN + MASTER_KEY_LEN,
            actual: bytes.len(),
        });
    }
    if &bytes[..4] != KEYRING_MAGIC {
        return Err(crate::error::malformed("keyring", "bad magic"));
    }
    if bytes[4] != KEYRING_VERSION {
        return Err(Error::UnsupportedVersion {
            what: "keyring",
            found: u32::from(bytes[4]),
            supported: u32::from(KEYRING_VERSION),
        });
    }
    let n = usize::from(bytes[5]);
    let want = HEADER_LEN + MASTER_KEY_LEN + 32 * n;
    if bytes.len() != want {
        return Err(crate::error::malformed(
            "keyring",
            format!("{n} retired keys need {want} bytes, have {}", bytes.len()),
        ));
    }
    let mut key = MasterKey::from_bytes(&bytes[HEADER_LEN..HEADER_LEN + MASTER_KEY_LEN])?;
    let retired = bytes[HEADER_LEN + MASTER_KEY_LEN..]
        .chunks_exact(32)
        .map(|c| {
            let mut k = [0u8; 32];
            k.copy_from_slice(c);
            k
        })
        .collect();
    key.set_retired(retired);
    Ok(key)
}

/// A new X25519 key pair for a slot: (secret, public).
pub(crate) fn new_slot_keypair() -> Result<(Zeroizing<[u8; X25519_LEN]>, [u8; X25519_LEN])> {
    let mut secret = Zeroizing::new([0u8; X25519_LEN]);
    fill_random(secret.as_mut())?;
    let public = public_of(&secret);
    Ok((secret, public))
}

/// The public key of `secret` (X25519 with the base point, RFC 7748).
pub(crate) fn public_of(secret: &[u8; X25519_LEN]) -> [u8; X25519_LEN] {
    PublicKey::from(&StaticSecret::from(*secret)).to_bytes()
}

/// A keyring sealed to one key slot's public key by `key rotate`.
///
/// `sealed = nonce ‖ XChaCha20-Poly1305(K, keyring) ‖ tag` with
/// `K = BLAKE3-derive-key("lifeboat keyslot grant v1", X25519(e, P) ‖ E ‖ P)`,
/// `E` the grant's ephemeral public key, `P` the slot's, and the associated
/// data `"lifeboat keyslot grant v1" ‖ P ‖ E`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The ephemeral X25519 public key `E`, hex.
    #[serde(with = "hex_bytes")]
    pub ephemeral: Vec<u8>,
    /// The sealed keyring, hex.
    #[serde(with = "hex_bytes")]
    pub sealed: Vec<u8>,
}

fn grant_key(shared: &[u8; 32], ephemeral: &[u8; 32], public: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut ikm = Zeroizing::new([0u8; 96]);
    ikm[..32].copy_from_slice(shared);
    ikm[32..64].copy_from_slice(ephemeral);
    ikm[64..].copy_from_slice(public);
    Zeroizing::new(blake3::derive_key(GRANT_CONTEXT, ikm.as_ref()))
}

fn grant_aad(public: &[u8; 32], ephemeral: &[u8; 32]) -> Vec<u8> {
    let mut aad = GRANT_CONTEXT.as_bytes().to_vec();
    aad.extend_from_slice(public);
    aad.extend_from_slice(ephemeral);
    aad
}

fn x25519_key(bytes: &[u8], what: &str) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes).map_err(|_| {
        crate::error::malformed(
            "key slot",
            format!("{what} is {} bytes, not {X25519_LEN}", bytes.len()),
        )
    })
}

impl Grant {
    /// Seal `key` (with its retired keys) to the slot public key `public`.
    pub(crate) fn seal(public: &[u8], key: &MasterKey) -> Result<Grant> {
        let public = x25519_key(public, "public key")?;
        let (eph_secret, eph_public) = new_slot_keypair()?;
        let shared = StaticSecret::from(*eph_secret).diffie_hellman(&PublicKey::from(public));
        if !shared.was_contributory() {
            return Err(crate::error::malformed(
                "key slot",
                "public key is a low-order point",
            ));
        }
        let k = grant_key(shared.as_bytes(), &eph_public, &public);
        let ring = encode_keyring(key)?;
        let mut buf = Zeroizing::new(Vec::with_capacity(NONCE_LEN + ring.len() + TAG_LEN));
        buf.resize(NONCE_LEN, 0);
        fill_random(&mut buf[..NONCE_LEN])?;
        buf.extend_from_slice(&ring);
        seal_in_place(&k, &grant_aad(&public, &eph_public), &mut buf)?;
        Ok(Grant {
            ephemeral: eph_public.to_vec(),
            sealed: buf.to_vec(),
        })
    }

    /// Open with the slot's secret and public key.
    pub(crate) fn open(&self, secret: &[u8; 32], public: &[u8; 32]) -> Result<MasterKey> {
        let eph = x25519_key(&self.ephemeral, "grant's ephemeral key")?;
        let shared = StaticSecret::from(*secret).diffie_hellman(&PublicKey::from(eph));
        if !shared.was_contributory() {
            return Err(crate::error::malformed(
                "key slot",
                "grant's ephemeral key is a low-order point",
            ));
        }
        let k = grant_key(shared.as_bytes(), &eph, public);
        let plain = Zeroizing::new(open_with(
            &k,
            &grant_aad(public, &eph),
            &self.sealed,
            "key slot grant",
        )?);
        decode_keyring(&plain)
    }
}

/// Serde helpers: bytes as a hex string (key slots and grants).
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        hex::decode(s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_round_trips_with_and_without_retired_keys() {
        let k0 = MasterKey::generate().unwrap();
        let bytes = encode_keyring(&k0).unwrap();
        assert_eq!(bytes.len(), 6 + 72);
        assert_eq!(&bytes[..6], b"LBKR\x01\x00");
        assert_eq!(&bytes[6..], &k0.to_bytes()[..]);
        let back = decode_keyring(&bytes).unwrap();
        assert_eq!(back.retired_count(), 0);
        assert_eq!(back.blob_id(b"x"), k0.blob_id(b"x"));

        let k2 = k0.rotated().unwrap().rotated().unwrap();
        let bytes = encode_keyring(&k2).unwrap();
        assert_eq!(bytes.len(), 6 + 72 + 64);
        assert_eq!(bytes[5], 2);
        let back = decode_keyring(&bytes).unwrap();
        assert_eq!(back.retired_count(), 2);
        // The newest retired key comes first, and each one still opens.
        let sealed_by_k0 = k0.seal(b"aad", b"old").unwrap();
        assert_eq!(back.open(b"aad", &sealed_by_k0, "t").unwrap(), b"old");
        assert_eq!(&bytes[6 + 72 + 32..], &k0.to_bytes()[..32]);
        // Ids and chunk boundaries stay with the repository.
        assert_eq!(back.blob_id(b"x"), k0.blob_id(b"x"));
        assert_eq!(back.chunker_seed(), k0.chunker_seed());
    }

    #[test]
    fn malformed_keyrings_are_refused() {
        let k = MasterKey::generate().unwrap().rotated().unwrap();
        let good = encode_keyring(&k).unwrap().to_vec();
        assert!(matches!(
            decode_keyring(&good[..70]),
            Err(Error::Truncated { .. })
        ));
        assert!(matches!(
            decode_keyring(&good[..good.len() - 1]),
            Err(Error::Malformed { .. })
        ));
        let mut long = good.clone();
        long.push(0);
        assert!(decode_keyring(&long).is_err());
        let mut magic = good.clone();
        magic[0] = b'X';
        assert!(matches!(
            decode_keyring(&magic),
            Err(Error::Malformed { .. })
        ));
        let mut version = good.clone();
        version[4] = 2;
        assert!(matches!(
            decode_keyring(&version),
            Err(Error::UnsupportedVersion { found: 2, .. })
        ));
        let mut count = good;
        count[5] = 255;
        assert!(decode_keyring(&count).is_err());
    }

    #[test]
    fn rotated_key_seals_new_data_and_opens_old_data() {
        let k0 = MasterKey::generate().unwrap();
        let old = k0.seal(b"a", b"before").unwrap();
        let k1 = k0.rotated().unwrap();
        let new = k1.seal(b"a", b"after").unwrap();
        assert_eq!(k1.open(b"a", &old, "t").unwrap(), b"before");
        assert_eq!(k1.open(b"a", &new, "t").unwrap(), b"after");
        // The old key cannot read what the new one sealed.
        assert!(matches!(
            k0.open(b"a", &new, "t"),
            Err(Error::Authentication { .. })
        ));
        // In place too, and a wrong AAD still fails under every key.
        let mut buf = old.clone();
        assert_eq!(k1.open_in_place(b"a", &mut buf, "t").unwrap(), b"before");
        let mut buf = old.clone();
        assert!(k1.open_in_place(b"b", &mut buf, "t").is_err());
        assert_eq!(buf, old, "a failed open leaves the envelope as it was");
    }

    #[test]
    fn grants_open_only_with_the_slot_secret() {
        let (secret, public) = new_slot_keypair().unwrap();
        assert_eq!(public_of(&secret), public);
        let k = MasterKey::generate().unwrap().rotated().unwrap();
        let g = Grant::seal(&public, &k).unwrap();
        assert_eq!(g.sealed.len(), NONCE_LEN + 6 + 72 + 32 + TAG_LEN);
        let back = g.open(&secret, &public).unwrap();
        assert_eq!(back.retired_count(), 1);
        assert_eq!(back.blob_id(b"x"), k.blob_id(b"x"));
        let (other, other_public) = new_slot_keypair().unwrap();
        assert!(g.open(&other, &other_public).is_err());
        assert!(g.open(&other, &public).is_err());
        let mut bad = g.clone();
        bad.sealed[NONCE_LEN] ^= 1;
        assert!(matches!(
            bad.open(&secret, &public),
            Err(Error::Authentication { .. })
        ));
        assert!(Grant::seal(&[0u8; 32], &k).is_err(), "low-order point");
        assert!(Grant::seal(&[1u8; 5], &k).is_err());
    }

    /// Prints what trial decryption costs (run by hand:
    /// `cargo test -p lifeboat-format --lib trial_decryption_cost -- --ignored --nocapture`).
    #[test]
    #[ignore = "a measurement, not a check"]
    fn trial_decryption_cost() {
        let k0 = MasterKey::generate().unwrap();
        let plain = vec![7u8; 16 << 20];
        let old = k0.seal(b"a", &plain).unwrap();
        let mut ring = k0.clone();
        for retired in 0..=3 {
            let new = ring.seal(b"a", &plain).unwrap();
            let time = |sealed: &[u8]| {
                let mut best = f64::MAX;
                for _ in 0..5 {
                    let mut buf = sealed.to_vec();
                    let t = std::time::Instant::now();
                    ring.open_in_place(b"a", &mut buf, "t").unwrap();
                    best = best.min(t.elapsed().as_secs_f64());
                }
                plain.len() as f64 / best / 1e6
            };
            println!(
                "{retired} retired keys: newest-key object {:.0} MB/s, oldest-key object {:.0} MB/s",
                time(&new),
                time(&old)
            );
            ring = ring.rotated().unwrap();
        }
    }
}
