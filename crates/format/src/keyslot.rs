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
    fn derive(&self, password: &[u8], salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
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
}
