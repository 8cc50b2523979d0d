use std::fmt;

/// A 32-byte identifier: a blob id (keyed BLAKE3 of the plaintext) or an
/// object id (unkeyed BLAKE3 of the stored bytes). Shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub [u8; 32]);

impl Id {
    /// The id of stored bytes: unkeyed BLAKE3, verifiable without any key.
    pub fn of_object(bytes: &[u8]) -> Id {
        Id(*blake3::hash(bytes).as_bytes())
    }

    /// Lower-case hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first `n` hex digits, as shown in listings.
    pub fn short(&self) -> String {
        let mut s = self.to_hex();
        s.truncate(8);
        s
    }

    /// Raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Id({})", self.short())
    }
}

/// A string that is not an id: not exactly 64 hex digits. Becomes
/// [`crate::Error::Id`] when parsed with [`str::parse`].
#[derive(Debug, thiserror::Error)]
#[error("not an id (64 hex digits): {source}")]
pub struct ParseIdError {
    #[source]
    source: hex::FromHexError,
}

impl Id {
    /// Parse 64 hex digits (either case). `str::parse::<Id>` does the same
    /// with the crate's [`crate::Error`].
    pub fn from_hex(s: &str) -> Result<Id, ParseIdError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|source| ParseIdError { source })?;
        Ok(Id(out))
    }
}

impl serde::Serialize for Id {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_hex())
        } else {
            serde::Serialize::serialize(&self.0, s)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Id {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        if d.is_human_readable() {
            let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
            Id::from_hex(&s).map_err(serde::de::Error::custom)
        } else {
            <[u8; 32]>::deserialize(d).map(Id)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_postcard_is_raw() {
        let id = Id::of_object(b"abc");
        assert_eq!(id.to_hex().parse::<Id>().unwrap(), id);
        let bin = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(postcard::from_bytes::<Id>(&bin).unwrap(), id);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{}\"", id.to_hex()));
        assert!("zz".parse::<Id>().is_err());
    }
}
