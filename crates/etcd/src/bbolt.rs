//! The two meta pages at the start of a bbolt database, as etcd's
//! snapshot stream writes them (bbolt `Tx.WriteTo`: page 0, then page 1
//! with the transaction id one lower, each with its own checksum).
//!
//! Layout (little-endian, as on every platform etcd ships for but s390x):
//! a 16-byte page header (`id` u64, `flags` u16, `count` u16, `overflow`
//! u32), then the meta: `magic` u32, `version` u32, `page_size` u32,
//! `flags` u32, the root bucket (`root` u64, `sequence` u64), `freelist`
//! u64, `pgid` u64 (pages in the file), `txid` u64, `checksum` u64: the
//! FNV-1a 64 of the 56 meta bytes before it.

use crate::error::MetaProblem;

/// `magic` of a bbolt meta page.
pub const MAGIC: u32 = 0xED0C_DAED;
/// The only bbolt file format version there is.
pub const VERSION: u32 = 2;
/// `flags` of a meta page's header.
const META_PAGE_FLAG: u16 = 0x04;
/// Bytes of the page header.
const PAGE_HEADER: usize = 16;
/// Bytes of the meta covered by the checksum.
const META_SUMMED: usize = 56;
/// Bytes from the start of a meta page to the end of its checksum.
pub const META_END: usize = PAGE_HEADER + META_SUMMED + 8;
/// Smallest and largest page sizes accepted (bbolt takes the OS page size).
const MIN_PAGE: u32 = 512;
const MAX_PAGE: u32 = 1 << 16;

/// What a valid meta page says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// Bytes per page.
    pub page_size: u32,
    /// Pages in the database: the database is `pgid * page_size` bytes.
    pub pgid: u64,
    /// Transaction id of the snapshot.
    pub txid: u64,
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    a.copy_from_slice(&b[at..at + 2]);
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// FNV-1a, 64 bits (Go's `hash/fnv.New64a`).
pub fn fnv64a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Check the meta page `page` (0 or 1) whose bytes start `bytes`
/// (at least [`META_END`] of them).
pub fn parse_meta(bytes: &[u8], page: u64) -> Result<Meta, MetaProblem> {
    if bytes.len() < META_END {
        return Err(MetaProblem::Truncated);
    }
    let id = u64_at(bytes, 0);
    if id != page {
        return Err(MetaProblem::PageId { found: id });
    }
    let flags = u16_at(bytes, 8);
    if flags != META_PAGE_FLAG {
        return Err(MetaProblem::Flags { found: flags });
    }
    let m = &bytes[PAGE_HEADER..META_END];
    let magic = u32_at(m, 0);
    if magic != MAGIC {
        return Err(MetaProblem::Magic { found: magic });
    }
    let version = u32_at(m, 4);
    if version != VERSION {
        return Err(MetaProblem::Version { found: version });
    }
    let page_size = u32_at(m, 8);
    if !(MIN_PAGE..=MAX_PAGE).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(MetaProblem::PageSize { found: page_size });
    }
    let stored = u64_at(m, META_SUMMED);
    let computed = fnv64a(&m[..META_SUMMED]);
    if stored != computed {
        return Err(MetaProblem::Checksum { stored, computed });
    }
    Ok(Meta {
        page_size,
        pgid: u64_at(m, 40),
        txid: u64_at(m, 48),
    })
}

/// Build a meta page (tests and test data only).
#[doc(hidden)]
pub fn meta_page(page: u64, page_size: u32, pgid: u64, txid: u64) -> Vec<u8> {
    let mut p = vec![0u8; page_size as usize];
    p[0..8].copy_from_slice(&page.to_le_bytes());
    p[8..10].copy_from_slice(&META_PAGE_FLAG.to_le_bytes());
    let m = &mut p[PAGE_HEADER..META_END];
    m[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    m[4..8].copy_from_slice(&VERSION.to_le_bytes());
    m[8..12].copy_from_slice(&page_size.to_le_bytes());
    m[16..24].copy_from_slice(&3u64.to_le_bytes()); // root bucket page
    m[32..40].copy_from_slice(&2u64.to_le_bytes()); // freelist page
    m[40..48].copy_from_slice(&pgid.to_le_bytes());
    m[48..56].copy_from_slice(&txid.to_le_bytes());
    let sum = fnv64a(&m[..META_SUMMED]);
    m[META_SUMMED..].copy_from_slice(&sum.to_le_bytes());
    p
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn fnv64a_matches_go() {
        // Go: fnv.New64a() over "" and "a".
        assert_eq!(fnv64a(b""), 0xcbf29ce484222325);
        assert_eq!(fnv64a(b"a"), 0xaf63dc4c8601ec8c);
    }

    #[test]
    fn meta_round_trip_and_each_problem() {
        let p = meta_page(1, 4096, 10, 7);
        assert_eq!(
            parse_meta(&p, 1).unwrap(),
            Meta {
                page_size: 4096,
                pgid: 10,
                txid: 7
            }
        );
        assert_eq!(parse_meta(&p, 0), Err(MetaProblem::PageId { found: 1 }));
        assert_eq!(parse_meta(&p[..40], 1), Err(MetaProblem::Truncated));
        let mut bad = p.clone();
        bad[16] ^= 1;
        assert!(matches!(
            parse_meta(&bad, 1),
            Err(MetaProblem::Magic { .. })
        ));
        let mut bad = p.clone();
        bad[PAGE_HEADER + 44] ^= 1; // pgid
        assert!(matches!(
            parse_meta(&bad, 1),
            Err(MetaProblem::Checksum { .. })
        ));
        let mut bad = p.clone();
        bad[PAGE_HEADER + 4] = 3;
        assert_eq!(parse_meta(&bad, 1), Err(MetaProblem::Version { found: 3 }));
        let mut bad = p;
        bad[8] = 0x10;
        assert_eq!(parse_meta(&bad, 1), Err(MetaProblem::Flags { found: 0x10 }));
    }
}
