//! The operating system's random source: master keys, salts, nonce prefixes
//! and random ids all come from here.

use crate::{Error, Id, Result};

/// Fill `buf` from the operating system's random source.
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(Error::Random)
}

impl Id {
    /// 32 bytes from the operating system's random source.
    pub fn random() -> Result<Id> {
        let mut b = [0u8; 32];
        fill_random(&mut b)?;
        Ok(Id(b))
    }
}
