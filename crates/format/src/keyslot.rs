use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{open_with, seal_in_place};
use crate::random::fill_random;
use crate::{Error, MasterKey, NONCE_LEN, Result};

const SLOT_AAD: &[u8] = b"lifeboat keyslot v1";

/// argon2id cost parameters stored in a key slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 1 lane: about 0.1 s on the reference machine.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 1,
        }
    }
}

impl KdfParams {
    /// Largest memory cost accepted: 4 GiB, twice RFC 9106's first
    /// recommended option (2 GiB, 1 pass) and 64 times what `init` writes.
    pub const MAX_MEMORY_KIB: u32 = 4 << 20;
    /// Most passes accepted (RFC 9106 and OWASP recommend 1 to 5).
    pub const MAX_ITERATIONS: u32 = 64;
    /// Most lanes accepted (RFC 9106 recommends 4).
    pub const MAX_PARALLELISM: u32 = 16;
    /// Largest memory × passes accepted, in KiB: 16 GiB, as four passes over
    /// 4 GiB; bounds the time a slot can make an opener spend.
    pub const MAX_MEMORY_PASSES_KIB: u64 = 16 << 20;

    /// Refuse costs outside the bounds above (and below argon2's own
    /// minimums: one pass, one lane, 8 KiB per lane), before any hashing.
    pub fn check(&self) -> Result<()> {
        let bound = |param, value: u64, min: u64, max: u64| {
            if (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(Error::KdfOutOfBounds {
                    param,
                    value,
                    min,
                    max,
                })
            }
        };
        let p = u64::from(self.parallelism);
        bound("parallelism", p, 1, u64::from(Self::MAX_PARALLELISM))?;
        bound(
            "iterations",
            u64::from(self.iterations),
            1,
            u64::from(Self::MAX_ITERATIONS),
        )?;
        bound(
            "memory_kib",
            u64::from(self.memory_kib),
            8 * p,
            u64::from(Self::MAX_MEMORY_KIB),
        )?;
        bound(
            "memory_kib × iterations",
            u64::from(self.memory_kib) * u64::from(self.iterations),
            1,
            Self::MAX_MEMORY_PASSES_KIB,
        )
    }

    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        self.check()?;
        let params =
            argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(32))
                .map_err(|e| Error::Kdf(e.to_string()))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; 32]);
        a.hash_password_into(password, salt, out.as_mut())
            .map_err(|e| Error::Kdf(e.to_string()))?;
        Ok(out)
    }
}

/// A password-protected copy of the master key, stored as `keys/<id>`.
///
/// Plain JSON: only the argon2id parameters, the salt and the wrapped key,
/// which is `nonce ‖ XChaCha20-Poly1305(kek, master key) ‖ tag` with the
/// associated data `"lifeboat keyslot v1"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySlot {
    /// Slot format version (1).
    pub version: u32,
    /// Always `"argon2id"`.
    pub kdf: String,
    /// KDF costs.
    pub params: KdfParams,
    /// Salt, 32 bytes, hex.
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    /// The wrapped master key, hex.
    #[serde(with = "hex_bytes")]
    pub wrapped_key: Vec<u8>,
    /// When the slot was made (RFC 3339).
    pub created: String,
    /// Host the slot was made on.
    #[serde(default)]
    pub hostname: String,
    /// User who made the slot.
    #[serde(default)]
    pub username: String,
}

impl KeySlot {
    /// Wrap `master` under a key derived from `password`.
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        created: String,
        hostname: String,
        username: String,
    ) -> Result<KeySlot> {
        let mut salt = vec![0u8; 32];
        fill_random(&mut salt)?;
        KeySlot::create_with_salt(master, password, params, salt, created, hostname, username)
    }

    #[doc(hidden)]
    /// Deterministic salt, for test vectors only.
    pub fn create_with_salt(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        salt: Vec<u8>,
        created: String,
        hostname: String,
        username: String,
    ) -> Result<KeySlot> {
        let kek = params.derive(password, &salt)?;
        let key_bytes = master.to_bytes();
        let mut buf = Zeroizing::new(Vec::with_capacity(NONCE_LEN + key_bytes.len() + 16));
        buf.resize(NONCE_LEN, 0);
        fill_random(&mut buf[..NONCE_LEN])?;
        buf.extend_from_slice(&key_bytes);
        seal_in_place(&kek, SLOT_AAD, &mut buf)?;
        Ok(KeySlot {
            version: 1,
            kdf: "argon2id".into(),
            params,
            salt,
            wrapped_key: buf.to_vec(),
            created,
            hostname,
            username,
        })
    }

    /// Unwrap the master key. A wrong password gives [`Error::WrongPassword`].
    pub fn open(&self, password: &[u8]) -> Result<MasterKey> {
        if self.version != 1 {
            return Err(Error::UnsupportedVersion {
                what: "key slot",
                found: self.version,
                supported: 1,
            });
        }
        if self.kdf != "argon2id" {
            return Err(crate::error::malformed(
                "key slot",
                format!("unknown kdf {:?}", self.kdf),
            ));
        }
        let kek = self.params.derive(password, &self.salt)?;
        let plain = open_with(&kek, SLOT_AAD, &self.wrapped_key, "key slot")
            .map_err(|_| Error::WrongPassword)?;
        let plain = Zeroizing::new(plain);
        MasterKey::from_bytes(&plain)
    }

    /// JSON bytes as stored.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising a struct of strings and integers cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parse the stored JSON.
    pub fn from_json(bytes: &[u8]) -> Result<KeySlot> {
        serde_json::from_slice(bytes).map_err(|e| crate::error::malformed("key slot", e))
    }
}

mod hex_bytes {
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

    const FAST: KdfParams = KdfParams {
        memory_kib: 64,
        iterations: 1,
        parallelism: 1,
    };

    #[test]
    fn slot_opens_with_right_password_only() {
        let mk = MasterKey::generate().unwrap();
        let slot = KeySlot::create(&mk, b"pw", FAST, "t".into(), "h".into(), "u".into()).unwrap();
        let json = slot.to_json();
        let back = KeySlot::from_json(&json).unwrap();
        let opened = back.open(b"pw").unwrap();
        assert_eq!(opened.blob_id(b"a"), mk.blob_id(b"a"));
        assert!(matches!(back.open(b"nope"), Err(Error::WrongPassword)));
        let text = String::from_utf8(json).unwrap();
        assert!(!text.contains("pw\""));
    }

    #[test]
    fn costs_out_of_bounds_are_refused_before_hashing() {
        let mk = MasterKey::generate().unwrap();
        let mut slot =
            KeySlot::create(&mk, b"pw", FAST, "t".into(), "h".into(), "u".into()).unwrap();
        slot.params.memory_kib = u32::MAX;
        let started = std::time::Instant::now();
        let e = slot.open(b"pw").unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        assert!(
            matches!(
                e,
                Error::KdfOutOfBounds {
                    param: "memory_kib",
                    ..
                }
            ),
            "{e:?}"
        );
        slot.params = KdfParams {
            memory_kib: KdfParams::MAX_MEMORY_KIB,
            iterations: 8,
            parallelism: 1,
        };
        assert!(matches!(
            slot.params.check(),
            Err(Error::KdfOutOfBounds {
                param: "memory_kib × iterations",
                ..
            })
        ));
        assert!(KdfParams::default().check().is_ok());
        let refused = KeySlot::create(
            &mk,
            b"pw",
            KdfParams {
                parallelism: 0,
                ..FAST
            },
            "t".into(),
            "h".into(),
            "u".into(),
        );
        assert!(matches!(refused, Err(Error::KdfOutOfBounds { .. })));
    }
}
