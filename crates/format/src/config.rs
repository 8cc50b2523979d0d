use serde::{Deserialize, Serialize};

use crate::object::{ObjectKind, open_object_aad, seal_object_aad};
use crate::{Compression, Error, Id, MasterKey, Result};

/// Magic bytes that start the `config` object.
pub const CONFIG_MAGIC: &[u8; 8] = b"LIFEBOAT";
/// Repository format version written and read by this build.
pub const FORMAT_VERSION: u32 = 1;

/// Content-defined chunking sizes, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkerParams {
    /// Smallest chunk (except a file's last).
    pub min_size: u32,
    /// Target average.
    pub avg_size: u32,
    /// Largest chunk.
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams {
            min_size: 512 * 1024,
            avg_size: 1024 * 1024,
            max_size: 8 * 1024 * 1024,
        }
    }
}

/// Which gear table the content-defined chunker hashes with (see
/// `docs/format.md`, section 15, and `lifeboat_chunker::GearTable`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChunkerGear {
    /// FastCDC's public table with the master key's 64-bit `chunker_seed`
    /// XORed in: repositories made before keyed tables. A config without
    /// `chunker_gear` means this.
    #[default]
    Seeded,
    /// All 256 entries derived from the master key by BLAKE3: what new
    /// repositories use.
    Keyed,
}

impl ChunkerGear {
    /// Whether this is [`ChunkerGear::Seeded`] (left out when encoding, so
    /// that old configs encode as they did).
    pub fn is_seeded(&self) -> bool {
        *self == ChunkerGear::Seeded
    }
}

/// Repository-wide settings, stored encrypted in `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Format version; equals the plaintext version in the object's prefix.
    pub version: u32,
    /// Random repository id.
    pub id: Id,
    /// Chunk sizes.
    pub chunker: ChunkerParams,
    /// The chunker's gear table; absent in configs written before keyed
    /// tables, which means [`ChunkerGear::Seeded`].
    #[serde(default, skip_serializing_if = "ChunkerGear::is_seeded")]
    pub chunker_gear: ChunkerGear,
    /// zstd level for blobs and metadata (0 = no compression). With
    /// `compression` set, the level that mode had when it was stored.
    pub compression_level: i32,
    /// The compression mode (`"auto"`, `"fastest"`, `"better"`, `"max"`,
    /// `"off"` or a level), which writers follow; absent in repositories
    /// made before modes existed, which keep `compression_level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Target size of a pack in bytes.
    pub pack_size: u32,
    /// When the repository was created (RFC 3339).
    pub created: String,
    /// No-delete mode for every client (`init --append-only`): nothing is
    /// deleted or overwritten, whatever the key (docs/security.md). Absent
    /// in older configs, which read as `false`, and left out when `false`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub append_only: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Config {
    /// How writers compress: the stored mode, or for an older repository
    /// its `compression_level`.
    pub fn compression(&self) -> Compression {
        self.compression
            .unwrap_or(Compression::from_level(self.compression_level))
    }

    /// Read the version from the plaintext prefix, without any key.
    pub fn peek_version(stored: &[u8]) -> Result<u32> {
        if stored.len() < 12 {
            return Err(Error::Truncated {
                what: "config",
                needed: 12,
                actual: stored.len(),
            });
        }
        if &stored[..8] != CONFIG_MAGIC {
            return Err(crate::error::malformed(
                "config",
                "not a Lifeboat repository config (bad magic)",
            ));
        }
        Ok(u32::from_le_bytes([
            stored[8], stored[9], stored[10], stored[11],
        ]))
    }

    /// Encode as `"LIFEBOAT" ‖ version (u32 LE) ‖ envelope(JSON)`; the prefix is
    /// bound into the envelope as associated data.
    pub fn encode(&self, key: &MasterKey) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        out.extend_from_slice(CONFIG_MAGIC);
        out.extend_from_slice(&self.version.to_le_bytes());
        let json = serde_json::to_vec(self).map_err(|e| crate::error::malformed("config", e))?;
        let sealed = seal_object_aad(key, ObjectKind::Config, &out, &json, 0)?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decode, refusing any version but [`FORMAT_VERSION`] before decrypting.
    pub fn decode(key: &MasterKey, stored: &[u8]) -> Result<Config> {
        let version = Config::peek_version(stored)?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "repository format",
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        let json = open_object_aad(key, ObjectKind::Config, &stored[..12], &stored[12..])?;
        let cfg: Config =
            serde_json::from_slice(&json).map_err(|e| crate::error::malformed("config", e))?;
        if cfg.version != version {
            return Err(crate::error::malformed(
                "config",
                "inner and outer versions differ",
            ));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        Config {
            version: FORMAT_VERSION,
            id: Id([1; 32]),
            chunker: ChunkerParams::default(),
            chunker_gear: ChunkerGear::Keyed,
            compression_level: 3,
            compression: None,
            pack_size: 16 << 20,
            created: "2026-01-01T00:00:00Z".into(),
            append_only: false,
        }
    }

    #[test]
    fn config_round_trip_and_version_refusal() {
        let k = MasterKey::generate().unwrap();
        let bytes = cfg().encode(&k).unwrap();
        assert_eq!(Config::decode(&k, &bytes).unwrap(), cfg());
        let mut v2 = bytes.clone();
        v2[8] = 2;
        match Config::decode(&k, &v2) {
            Err(Error::UnsupportedVersion {
                found: 2,
                supported: 1,
                ..
            }) => {}
            other => panic!("unexpected {other:?}"),
        }
        let mut bad = bytes.clone();
        bad[0] = b'X';
        assert!(Config::peek_version(&bad).is_err());
    }

    #[test]
    fn chunker_gear_defaults_to_seeded_and_old_configs_encode_as_before() {
        // A config as written before keyed gear tables: no `chunker_gear`.
        let old = r#"{"version":1,"id":"0101010101010101010101010101010101010101010101010101010101010101","chunker":{"min_size":524288,"avg_size":1048576,"max_size":8388608},"compression_level":3,"pack_size":16777216,"created":"2026-01-01T00:00:00Z"}"#;
        let cfg: Config = serde_json::from_str(old).unwrap();
        assert_eq!(cfg.chunker_gear, ChunkerGear::Seeded);
        assert_eq!(serde_json::to_string(&cfg).unwrap(), old);
        let mut new = cfg.clone();
        new.chunker_gear = ChunkerGear::Keyed;
        let json = serde_json::to_string(&new).unwrap();
        assert!(json.contains(r#""chunker_gear":"keyed""#), "{json}");
        assert_eq!(serde_json::from_str::<Config>(&json).unwrap(), new);
        // An unknown table is refused, not read as another.
        let odd = json.replace(r#""keyed""#, r#""other""#);
        assert!(serde_json::from_str::<Config>(&odd).is_err());
    }

    #[test]
    fn append_only_is_optional_in_the_json() {
        let k = MasterKey::generate().unwrap();
        let old = cfg().encode(&k).unwrap();
        let plain =
            crate::object::open_object_aad(&k, ObjectKind::Config, &old[..12], &old[12..]).unwrap();
        assert!(!String::from_utf8_lossy(&plain).contains("append_only"));
        let on = Config {
            append_only: true,
            ..cfg()
        };
        assert!(
            Config::decode(&k, &on.encode(&k).unwrap())
                .unwrap()
                .append_only
        );
    }

    #[test]
    fn a_config_without_a_mode_keeps_its_level() {
        let old = r#"{"version":1,"id":"0101010101010101010101010101010101010101010101010101010101010101",
            "chunker":{"min_size":524288,"avg_size":1048576,"max_size":8388608},
            "compression_level":3,"pack_size":16777216,"created":"2026-01-01T00:00:00Z"}"#;
        let cfg: Config = serde_json::from_str(old).unwrap();
        assert_eq!(cfg.compression, None);
        assert_eq!(cfg.compression(), Compression::Level(3));
        let off: Config = serde_json::from_str(
            &old.replace("\"compression_level\":3", "\"compression_level\":0"),
        )
        .unwrap();
        assert_eq!(off.compression(), Compression::Off);
        // Written back unchanged: no mode appears.
        assert!(
            !serde_json::to_string(&cfg)
                .unwrap()
                .contains("\"compression\"")
        );
        let new = Config {
            compression: Some(Compression::Auto),
            ..cfg
        };
        let json = serde_json::to_string(&new).unwrap();
        assert!(json.contains("\"compression\":\"auto\""), "{json}");
        let back: Config = serde_json::from_str(&json).unwrap();
        assert_eq!(back.compression(), Compression::Auto);
    }
}
