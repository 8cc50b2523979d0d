use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::{open_with, seal_in_place};
use crate::keyring::{
    Grant, X25519_LEN, decode_keyring, encode_keyring, hex_bytes, new_slot_keypair,
};
use crate::random::fill_random;
use crate::{Error, MasterKey, NONCE_LEN, Result};

const SLOT_AAD: &[u8] = b"lifeboat keyslot v1";
const SLOT_AAD_V2: &[u8] = b"lifeboat keyslot v2";
/// Newest key slot version this build writes and reads.
pub const KEY_SLOT_VERSION: u32 = 2;

/// What a key slot allows the client that opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlotKind {
    /// Everything.
    #[default]
    Full,
    /// Adding snapshots, reading and checking; never deleting or
    /// overwriting (the client opens the store in no-delete mode).
    AppendOnly,
}

impl SlotKind {
    fn is_full(&self) -> bool {
        *self == SlotKind::Full
    }

    /// The byte bound into a version-2 slot's associated data.
    fn code(self) -> u8 {
        match self {
            SlotKind::Full => 0,
            SlotKind::AppendOnly => 1,
        }
    }

    /// `"full"` or `"append-only"`, as in the slot's JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            SlotKind::Full => "full",
            SlotKind::AppendOnly => "append-only",
        }
    }
}

fn v2_aad(kind: SlotKind, public_key: &[u8]) -> Vec<u8> {
    let mut aad = SLOT_AAD_V2.to_vec();
    aad.push(kind.code());
    aad.extend_from_slice(public_key);
    aad
}

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
    /// 64 MiB, 3 passes, 4 lanes: RFC 9106's second recommended option.
    /// The lanes are hashed in parallel, so on two cores opening takes
    /// about half the time one lane would.
    fn default() -> Self {
        KdfParams {
            memory_kib: 64 * 1024,
            iterations: 3,
            parallelism: 4,
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
/// Plain JSON: the argon2id parameters, the salt and the wrapped key. In
/// version 1 that is `nonce ‖ XChaCha20-Poly1305(kek, master key) ‖ tag`
/// with the associated data `"lifeboat keyslot v1"`. Version 2 (written
/// since `key rotate` exists) wraps the slot's X25519 secret and the
/// keyring, binds the kind and public key as associated data, and carries
/// the [`Grant`]s of later rotations (docs/format.md, §5).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySlot {
    /// Slot format version (1 or 2).
    pub version: u32,
    /// Always `"argon2id"`.
    pub kdf: String,
    /// KDF costs.
    pub params: KdfParams,
    /// Salt, 32 bytes, hex.
    #[serde(with = "hex_bytes")]
    pub salt: Vec<u8>,
    /// What the slot allows (version 2; absent means full).
    #[serde(default, skip_serializing_if = "SlotKind::is_full")]
    pub kind: SlotKind,
    /// The slot's X25519 public key, hex (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "hex_bytes")]
    pub public_key: Vec<u8>,
    /// The wrapped master key (version 1) or slot secret and keyring
    /// (version 2), hex.
    #[serde(with = "hex_bytes")]
    pub wrapped_key: Vec<u8>,
    /// Keyrings sealed to `public_key` by rotations, oldest first (version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
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
    /// Wrap `master` (with its retired data keys) under a key derived from
    /// `password`, in a version-2 slot of kind [`SlotKind::Full`].
    pub fn create(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        created: String,
        hostname: String,
        username: String,
    ) -> Result<KeySlot> {
        KeySlot::create_of_kind(
            master,
            password,
            params,
            SlotKind::Full,
            created,
            hostname,
            username,
        )
    }

    /// [`create`](KeySlot::create) for a slot of `kind`.
    pub fn create_of_kind(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        kind: SlotKind,
        created: String,
        hostname: String,
        username: String,
    ) -> Result<KeySlot> {
        let mut salt = vec![0u8; 32];
        fill_random(&mut salt)?;
        KeySlot::create_v2_with_salt(
            master, password, params, kind, salt, created, hostname, username,
        )
    }

    #[doc(hidden)]
    /// A version-2 slot with a given salt, for test vectors only.
    #[allow(clippy::too_many_arguments)]
    pub fn create_v2_with_salt(
        master: &MasterKey,
        password: &[u8],
        params: KdfParams,
        kind: SlotKind,
        salt: Vec<u8>,
        created: String,
        hostname: String,
        username: String,
    ) -> Result<KeySlot> {
        let kek = params.derive(password, &salt)?;
        let (secret, public) = new_slot_keypair()?;
        let ring = encode_keyring(master)?;
        let mut buf = Zeroizing::new(Vec::with_capacity(NONCE_LEN + X25519_LEN + ring.len() + 16));
        buf.resize(NONCE_LEN, 0);
        fill_random(&mut buf[..NONCE_LEN])?;
        buf.extend_from_slice(secret.as_ref());
        buf.extend_from_slice(&ring);
        seal_in_place(&kek, &v2_aad(kind, &public), &mut buf)?;
        Ok(KeySlot {
            version: 2,
            kdf: "argon2id".into(),
            params,
            salt,
            kind,
            public_key: public.to_vec(),
            wrapped_key: buf.to_vec(),
            grants: Vec::new(),
            created,
            hostname,
            username,
        })
    }

    #[doc(hidden)]
    /// A version-1 slot with a given salt, for test vectors only.
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
            kind: SlotKind::Full,
            public_key: Vec::new(),
            wrapped_key: buf.to_vec(),
            grants: Vec::new(),
            created,
            hostname,
            username,
        })
    }

    /// Check what can be checked without the password: version, kdf,
    /// salt, and the lengths of the wrapped key, public key and grants
    /// (docs/format.md §5). A slot that fails cannot open.
    pub fn check_shape(&self) -> Result<()> {
        let bad = |reason: &str| Err(crate::error::malformed("key slot", reason.to_string()));
        if !(1..=KEY_SLOT_VERSION).contains(&self.version) {
            return Err(Error::UnsupportedVersion {
                what: "key slot",
                found: self.version,
                supported: KEY_SLOT_VERSION,
            });
        }
        if self.kdf != "argon2id" {
            return bad("unknown kdf");
        }
        if self.salt.is_empty() {
            return bad("empty salt");
        }
        // nonce ‖ ciphertext ‖ tag around a keyring of n retired keys.
        let keyring_envelope = |len: usize, prefix: usize| {
            let fixed = NONCE_LEN + prefix + 6 + crate::MASTER_KEY_LEN + crate::TAG_LEN;
            len >= fixed && (len - fixed) % 32 == 0
        };
        if self.version == 1 {
            if self.wrapped_key.len() != NONCE_LEN + crate::MASTER_KEY_LEN + crate::TAG_LEN {
                return bad("wrapped key has the wrong length");
            }
            if !self.kind.is_full() || !self.public_key.is_empty() || !self.grants.is_empty() {
                return bad("a version 1 slot has no kind, public key or grants");
            }
            return Ok(());
        }
        if self.public_key.len() != X25519_LEN {
            return bad("public key is not 32 bytes");
        }
        if !keyring_envelope(self.wrapped_key.len(), X25519_LEN) {
            return bad("wrapped key has the wrong length");
        }
        for g in &self.grants {
            if g.ephemeral.len() != X25519_LEN || !keyring_envelope(g.sealed.len(), 0) {
                return bad("a grant has the wrong length");
            }
        }
        Ok(())
    }

    /// Whether [`with_grant`](KeySlot::with_grant) can give this slot a new
    /// keyring: version 2 slots only.
    pub fn takes_grants(&self) -> bool {
        self.version == 2
    }

    /// This slot with `master` (and its retired keys) sealed to its public
    /// key as a new grant, which [`open`](KeySlot::open) prefers over what
    /// the slot held before. Needs no password. Version-1 slots have no
    /// public key and are refused.
    pub fn with_grant(&self, master: &MasterKey) -> Result<KeySlot> {
        if !self.takes_grants() {
            return Err(crate::error::malformed(
                "key slot",
                "a version 1 slot has no public key to seal a new keyring to",
            ));
        }
        let mut next = self.clone();
        next.grants.push(Grant::seal(&self.public_key, master)?);
        Ok(next)
    }

    /// Unwrap the master key (version 2: the keyring of the newest grant,
    /// else the one wrapped at creation). A wrong password gives
    /// [`Error::WrongPassword`].
    pub fn open(&self, password: &[u8]) -> Result<MasterKey> {
        if !(1..=KEY_SLOT_VERSION).contains(&self.version) {
            return Err(Error::UnsupportedVersion {
                what: "key slot",
                found: self.version,
                supported: KEY_SLOT_VERSION,
            });
        }
        if self.kdf != "argon2id" {
            return Err(crate::error::malformed(
                "key slot",
                format!("unknown kdf {:?}", self.kdf),
            ));
        }
        if self.version == 1 {
            if !self.kind.is_full() || !self.public_key.is_empty() || !self.grants.is_empty() {
                return Err(crate::error::malformed(
                    "key slot",
                    "a version 1 slot has no kind, public key or grants",
                ));
            }
            let kek = self.params.derive(password, &self.salt)?;
            let plain = open_with(&kek, SLOT_AAD, &self.wrapped_key, "key slot")
                .map_err(|_| Error::WrongPassword)?;
            let plain = Zeroizing::new(plain);
            return MasterKey::from_bytes(&plain);
        }
        let public = <[u8; X25519_LEN]>::try_from(self.public_key.as_slice())
            .map_err(|_| crate::error::malformed("key slot", "public key is not 32 bytes"))?;
        let kek = self.params.derive(password, &self.salt)?;
        let plain = open_with(
            &kek,
            &v2_aad(self.kind, &public),
            &self.wrapped_key,
            "key slot",
        )
        .map_err(|_| Error::WrongPassword)?;
        let plain = Zeroizing::new(plain);
        if plain.len() < X25519_LEN {
            return Err(crate::error::malformed(
                "key slot",
                "wrapped secret too short",
            ));
        }
        let mut secret = Zeroizing::new([0u8; X25519_LEN]);
        secret.copy_from_slice(&plain[..X25519_LEN]);
        if crate::keyring::public_of(&secret) != public {
            return Err(crate::error::malformed(
                "key slot",
                "public key does not belong to the wrapped secret",
            ));
        }
        match self.grants.last() {
            Some(g) => g.open(&secret, &public),
            None => decode_keyring(&plain[X25519_LEN..]),
        }
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

    #[test]
    fn v2_slot_carries_kind_public_key_and_keyring() {
        let mk = MasterKey::generate().unwrap().rotated().unwrap();
        let slot = KeySlot::create_of_kind(
            &mk,
            b"pw",
            FAST,
            SlotKind::AppendOnly,
            "t".into(),
            "h".into(),
            "u".into(),
        )
        .unwrap();
        assert_eq!(slot.version, 2);
        assert_eq!(slot.public_key.len(), 32);
        let json = String::from_utf8(slot.to_json()).unwrap();
        assert!(json.contains("\"kind\": \"append-only\""), "{json}");
        let back = KeySlot::from_json(json.as_bytes()).unwrap();
        assert_eq!(back, slot);
        let opened = back.open(b"pw").unwrap();
        assert_eq!(opened.retired_count(), 1);
        assert_eq!(opened.blob_id(b"a"), mk.blob_id(b"a"));
        assert!(matches!(back.open(b"nope"), Err(Error::WrongPassword)));
        // The kind and public key are bound: editing either fails to open.
        let mut full = back.clone();
        full.kind = SlotKind::Full;
        assert!(matches!(full.open(b"pw"), Err(Error::WrongPassword)));
        let mut other_pk = back.clone();
        other_pk.public_key[0] ^= 1;
        assert!(other_pk.open(b"pw").is_err());
        // A full slot leaves `kind` out of its JSON.
        let full = KeySlot::create(&mk, b"pw", FAST, "t".into(), "h".into(), "u".into()).unwrap();
        assert!(!String::from_utf8(full.to_json()).unwrap().contains("kind"));
    }

    #[test]
    fn grants_hand_a_rotated_key_to_a_slot_without_its_password() {
        let k0 = MasterKey::generate().unwrap();
        let slot = KeySlot::create(&k0, b"pw", FAST, "t".into(), "h".into(), "u".into()).unwrap();
        let k1 = k0.rotated().unwrap();
        let granted = slot.with_grant(&k1).unwrap();
        assert_eq!(granted.grants.len(), 1);
        let back = KeySlot::from_json(&granted.to_json()).unwrap();
        let opened = back.open(b"pw").unwrap();
        assert_eq!(opened.retired_count(), 1);
        let new = k1.seal(b"a", b"new").unwrap();
        assert_eq!(opened.open(b"a", &new, "t").unwrap(), b"new");
        // The newest grant wins.
        let k2 = k1.rotated().unwrap();
        let twice = back.with_grant(&k2).unwrap();
        assert_eq!(twice.open(b"pw").unwrap().retired_count(), 2);
        // A damaged grant is an error, not a silent fall-back to an older key.
        let mut bad = twice.clone();
        bad.grants[1].sealed[30] ^= 1;
        assert!(matches!(bad.open(b"pw"), Err(Error::Authentication { .. })));
        // Version 1 slots take no grants and may not claim v2 members.
        let v1 = KeySlot::create_with_salt(
            &k0,
            b"pw",
            FAST,
            vec![7; 32],
            "t".into(),
            "h".into(),
            "u".into(),
        )
        .unwrap();
        assert!(!v1.takes_grants());
        assert!(v1.with_grant(&k1).is_err());
        let mut v1_kind = v1.clone();
        v1_kind.kind = SlotKind::AppendOnly;
        assert!(matches!(v1_kind.open(b"pw"), Err(Error::Malformed { .. })));
        assert!(v1.check_shape().is_ok());
        assert!(back.check_shape().is_ok() && twice.check_shape().is_ok());
        let mut short = twice.clone();
        short.grants[0].sealed.pop();
        assert!(matches!(short.check_shape(), Err(Error::Malformed { .. })));
        let mut no_pk = twice.clone();
        no_pk.public_key.clear();
        assert!(no_pk.check_shape().is_err());
        assert!(v1_kind.check_shape().is_err());
        let mut v3 = v1;
        v3.version = 3;
        assert!(v3.check_shape().is_err());
        assert!(matches!(
            v3.open(b"pw"),
            Err(Error::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            })
        ));
    }
}
