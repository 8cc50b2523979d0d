//! The local lookup table: one file holding the merged index, sorted by
//! blob id, in fixed-width records, authenticated with a keyed BLAKE3 MAC
//! and mapped read-only. The layout is specified in `docs/index.md`.
//!
//! ```text
//! table  = segment id × S ‖ superseded id × K ‖ pack record × P ‖ blob record × B ‖ footer
//! pack   = pack id (32) ‖ size u64 LE ‖ type u8 ‖ 7 zero bytes              (48 bytes)
//! blob   = blob id (32) ‖ pack u32 LE ‖ offset u32 LE ‖ stored_len u32 LE ‖ raw_len u32 LE
//!          (48 bytes; pack = index of the pack record, bit 31 = compressed)
//! footer = "LBIDXTBL" ‖ version u32 LE (1) ‖ 0 u32 ‖ S u64 ‖ K u64 ‖ P u64 ‖ B u64
//!          ‖ duplicates u64 ‖ 40 zero bytes ‖ MAC (32)                       (128 bytes)
//! ```
//!
//! The MAC is BLAKE3 keyed with a key derived from the master key, over every
//! byte before it. Packs are sorted by pack id, blobs by blob id; both lists
//! hold each id once.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};

use lifeboat_format::{BlobFlags, BlobType, Id};

use crate::BlobLocation;
use crate::map::MappedFile;
use crate::sort::Source;

/// First bytes of the footer.
pub(crate) const MAGIC: &[u8; 8] = b"LBIDXTBL";
/// Table layout version.
pub(crate) const VERSION: u32 = 1;
/// Bytes of a segment id record.
pub(crate) const SEG_REC: usize = 32;
/// Bytes of a pack record.
pub(crate) const PACK_REC: usize = 48;
/// Bytes of a blob record.
pub(crate) const BLOB_REC: usize = 48;
/// Bytes of the footer, MAC included.
pub(crate) const FOOTER_LEN: usize = 128;
/// Bytes of the MAC at the very end.
const MAC_LEN: usize = 32;
/// Bit of a blob record's pack field that holds the compressed flag.
const COMPRESSED_BIT: u32 = 1 << 31;
/// Largest number of packs a table can address.
pub(crate) const MAX_PACKS: u64 = COMPRESSED_BIT as u64;
/// Context string for deriving the MAC key from the master key.
pub(crate) const MAC_CONTEXT: &str = "lifeboat 2025 local index table v1 MAC key";

/// Below this many candidates, scan instead of probing.
const SCAN: usize = 8;
/// Interpolation probes before falling back to bisection.
const INTERPOLATION_ROUNDS: u32 = 6;
/// Records between releases of the consumed part of a sequential scan.
const SCAN_RELEASE: usize = 1 << 16;

/// Why a table file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TableError {
    /// Reading failed.
    #[error(transparent)]
    Io(#[from] io::Error),
    /// The file is not a valid table for this key.
    #[error("{0}")]
    Invalid(&'static str),
}

/// Counts from a footer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub segments: u64,
    pub superseded: u64,
    pub packs: u64,
    pub blobs: u64,
    pub duplicates: u64,
}

impl Counts {
    fn file_len(&self) -> Option<u64> {
        let ids = self.segments.checked_add(self.superseded)?;
        let recs = self.packs.checked_add(self.blobs)?;
        ids.checked_mul(SEG_REC as u64)?
            .checked_add(recs.checked_mul(BLOB_REC as u64)?)?
            .checked_add(FOOTER_LEN as u64)
    }
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[i..i + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

fn id_at(b: &[u8], i: usize) -> Id {
    let mut a = [0u8; 32];
    a.copy_from_slice(&b[i..i + 32]);
    Id(a)
}

/// The first 8 bytes of an id as a big-endian number: ids are uniformly
/// distributed, so this predicts where an id sits in a sorted list.
fn prefix(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Encode a pack record.
pub(crate) fn pack_record(id: &Id, size: u64, blob_type: BlobType) -> [u8; PACK_REC] {
    let mut r = [0u8; PACK_REC];
    r[..32].copy_from_slice(&id.0);
    r[32..40].copy_from_slice(&size.to_le_bytes());
    r[40] = blob_type as u8;
    r
}

/// Encode a blob record pointing at pack record `pack`.
pub(crate) fn blob_record(
    id: &[u8],
    pack: u32,
    flags: BlobFlags,
    offset: u32,
    stored_len: u32,
    raw_len: u32,
) -> [u8; BLOB_REC] {
    let mut r = [0u8; BLOB_REC];
    r[..32].copy_from_slice(&id[..32]);
    let p = pack
        | if flags.compressed() {
            COMPRESSED_BIT
        } else {
            0
        };
    r[32..36].copy_from_slice(&p.to_le_bytes());
    r[36..40].copy_from_slice(&offset.to_le_bytes());
    r[40..44].copy_from_slice(&stored_len.to_le_bytes());
    r[44..48].copy_from_slice(&raw_len.to_le_bytes());
    r
}

/// The pack index stored in a blob record.
pub(crate) fn record_pack(r: &[u8; BLOB_REC]) -> u32 {
    u32_at(r, 32) & !COMPRESSED_BIT
}

/// The same record pointing at pack `pack` instead.
pub(crate) fn with_pack(mut r: [u8; BLOB_REC], pack: u32) -> [u8; BLOB_REC] {
    let p = pack | (u32_at(&r, 32) & COMPRESSED_BIT);
    r[32..36].copy_from_slice(&p.to_le_bytes());
    r
}

/// Streams a table file to disk, computing its MAC on the way.
pub(crate) struct TableWriter {
    out: BufWriter<File>,
    mac: blake3::Hasher,
    counts: Counts,
    section: u8,
}

impl TableWriter {
    /// Write a new table into `file` (empty, open for writing).
    pub(crate) fn new(file: File, mac_key: &[u8; 32]) -> TableWriter {
        TableWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            mac: blake3::Hasher::new_keyed(mac_key),
            counts: Counts::default(),
            section: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.mac.update(bytes);
        self.out.write_all(bytes)
    }

    fn enter(&mut self, section: u8) -> io::Result<()> {
        if section < self.section {
            return Err(io::Error::other("table sections written out of order"));
        }
        self.section = section;
        Ok(())
    }

    /// Add a merged segment id (first section; ascending order).
    pub(crate) fn segment(&mut self, id: &Id) -> io::Result<()> {
        self.enter(0)?;
        self.counts.segments += 1;
        self.put(&id.0)
    }

    /// Add a superseded segment id (second section; ascending order).
    pub(crate) fn superseded(&mut self, id: &Id) -> io::Result<()> {
        self.enter(1)?;
        self.counts.superseded += 1;
        self.put(&id.0)
    }

    /// Add a pack record (third section; ascending pack id). Returns its index.
    pub(crate) fn pack(&mut self, rec: &[u8; PACK_REC]) -> io::Result<u32> {
        self.enter(2)?;
        if self.counts.packs >= MAX_PACKS {
            return Err(io::Error::other("more packs than a table can address"));
        }
        let i = self.counts.packs as u32;
        self.counts.packs += 1;
        self.put(rec)?;
        Ok(i)
    }

    /// Add a blob record (last section; ascending blob id).
    pub(crate) fn blob(&mut self, rec: &[u8; BLOB_REC]) -> io::Result<()> {
        self.enter(3)?;
        self.counts.blobs += 1;
        self.put(rec)
    }

    /// Write the footer and sync. Returns the file, positioned at its end.
    pub(crate) fn finish(mut self, duplicates: u64) -> io::Result<File> {
        self.counts.duplicates = duplicates;
        let c = self.counts;
        let mut f = [0u8; FOOTER_LEN - MAC_LEN];
        f[..8].copy_from_slice(MAGIC);
        f[8..12].copy_from_slice(&VERSION.to_le_bytes());
        for (i, v) in [c.segments, c.superseded, c.packs, c.blobs, c.duplicates]
            .into_iter()
            .enumerate()
        {
            f[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        self.put(&f)?;
        let mac = self.mac.finalize();
        self.out.write_all(mac.as_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file)
    }
}

/// An open, verified, mapped table.
#[derive(Debug)]
pub(crate) struct Table {
    map: MappedFile,
    file: File,
    counts: Counts,
    segments: Vec<Id>,
    superseded: Vec<Id>,
    packs_at: usize,
    blobs_at: usize,
    lookups: AtomicU64,
    release_every: u64,
}

impl Table {
    /// Open `file` as a table. With `verify`, the MAC is checked first by
    /// reading the file (not through the mapping, which would make all of it
    /// resident); a table this process just wrote need not be verified.
    pub(crate) fn open(
        file: File,
        mac_key: &[u8; 32],
        verify: bool,
        release_every: u64,
    ) -> Result<Table, TableError> {
        let len = file.metadata()?.len();
        if len < FOOTER_LEN as u64 {
            return Err(TableError::Invalid("file is too short"));
        }
        let mut footer = [0u8; FOOTER_LEN];
        file.read_exact_at(&mut footer, len - FOOTER_LEN as u64)?;
        if &footer[..8] != MAGIC {
            return Err(TableError::Invalid("bad magic"));
        }
        if u32_at(&footer, 8) != VERSION {
            return Err(TableError::Invalid("unknown table version"));
        }
        let counts = Counts {
            segments: u64_at(&footer, 16),
            superseded: u64_at(&footer, 24),
            packs: u64_at(&footer, 32),
            blobs: u64_at(&footer, 40),
            duplicates: u64_at(&footer, 48),
        };
        if counts.file_len() != Some(len) || counts.packs > MAX_PACKS {
            return Err(TableError::Invalid("counts do not match the file size"));
        }
        if usize::try_from(len).is_err() {
            return Err(TableError::Invalid("file too large to map"));
        }
        if verify {
            let mut mac = blake3::Hasher::new_keyed(mac_key);
            let body = len - MAC_LEN as u64;
            let mut buf = vec![0u8; 1 << 20];
            let mut at = 0u64;
            while at < body {
                let n = (body - at).min(buf.len() as u64) as usize;
                file.read_exact_at(&mut buf[..n], at)?;
                mac.update(&buf[..n]);
                at += n as u64;
            }
            // blake3::Hash compares in constant time.
            if mac.finalize() != blake3::Hash::from_bytes(id_at(&footer, FOOTER_LEN - MAC_LEN).0) {
                return Err(TableError::Invalid("MAC does not match"));
            }
        }
        let map = MappedFile::map(&file)?;
        let b = map.bytes();
        if b.len() as u64 != len {
            return Err(TableError::Invalid("file changed while opening"));
        }
        let s = counts.segments as usize;
        let k = counts.superseded as usize;
        let segments = (0..s).map(|i| id_at(b, i * SEG_REC)).collect();
        let superseded = (s..s + k).map(|i| id_at(b, i * SEG_REC)).collect();
        let packs_at = (s + k) * SEG_REC;
        let blobs_at = packs_at + counts.packs as usize * PACK_REC;
        map.release(0, packs_at);
        Ok(Table {
            map,
            file,
            counts,
            segments,
            superseded,
            packs_at,
            blobs_at,
            lookups: AtomicU64::new(0),
            release_every,
        })
    }

    /// Lookups between releases of the mapped pages (0: never).
    pub(crate) fn set_release_every(&mut self, n: u64) {
        self.release_every = n;
    }

    /// Segments merged into this table, ascending.
    pub(crate) fn segments(&self) -> &[Id] {
        &self.segments
    }

    /// Segments known to be superseded and still listed when the table was
    /// built, ascending.
    pub(crate) fn superseded(&self) -> &[Id] {
        &self.superseded
    }

    /// Number of blobs.
    pub(crate) fn len(&self) -> usize {
        self.counts.blobs as usize
    }

    /// Number of packs.
    pub(crate) fn pack_count(&self) -> usize {
        self.counts.packs as usize
    }

    /// Blob ids seen in more than one place when the table was built.
    pub(crate) fn duplicates(&self) -> u64 {
        self.counts.duplicates
    }

    fn blobs(&self) -> &[u8] {
        &self.map.bytes()[self.blobs_at..self.blobs_at + self.len() * BLOB_REC]
    }

    fn packs(&self) -> &[u8] {
        &self.map.bytes()[self.packs_at..self.blobs_at]
    }

    /// Count a lookup; every `release_every` lookups, drop the table's pages
    /// from the resident set so it stays bounded however long the process
    /// runs.
    fn note_lookup(&self) {
        if self.release_every == 0 {
            return;
        }
        let n = self.lookups.fetch_add(1, Ordering::Relaxed) + 1;
        if n % self.release_every == 0 {
            self.map
                .release(self.packs_at, self.map.bytes().len() - self.packs_at);
        }
    }

    /// Position of blob `id`.
    pub(crate) fn find(&self, id: &Id) -> Option<usize> {
        self.note_lookup();
        search(self.blobs(), BLOB_REC, id.as_bytes())
    }

    /// Position of pack `id`.
    pub(crate) fn find_pack(&self, id: &Id) -> Option<usize> {
        search(self.packs(), PACK_REC, id.as_bytes())
    }

    /// Pack record `i`: id, size, type.
    pub(crate) fn pack_at(&self, i: usize) -> Option<(Id, u64, BlobType)> {
        let r = self.packs().get(i * PACK_REC..(i + 1) * PACK_REC)?;
        // A valid MAC means this process's code wrote the byte.
        let t = BlobType::from_u8(r[40]).unwrap_or(BlobType::Data);
        Some((id_at(r, 0), u64_at(r, 32), t))
    }

    /// Blob record `i` with its location resolved.
    pub(crate) fn blob_at(&self, i: usize) -> Option<(Id, BlobLocation)> {
        let r = self.blobs().get(i * BLOB_REC..(i + 1) * BLOB_REC)?;
        let p = u32_at(r, 32);
        let (pack, _, blob_type) = self.pack_at((p & !COMPRESSED_BIT) as usize)?;
        let flags = if p & COMPRESSED_BIT != 0 {
            BlobFlags(BlobFlags::COMPRESSED)
        } else {
            BlobFlags(0)
        };
        Some((
            id_at(r, 0),
            BlobLocation {
                pack,
                blob_type,
                flags,
                offset: u32_at(r, 36),
                stored_len: u32_at(r, 40),
                raw_len: u32_at(r, 44),
            },
        ))
    }

    /// Drop the pages of blob records `from..to` from the resident set.
    pub(crate) fn release_blobs(&self, from: usize, to: usize) {
        if to > from {
            self.map
                .release(self.blobs_at + from * BLOB_REC, (to - from) * BLOB_REC);
        }
    }

    /// Read pack records in order, with `pread` (not through the mapping).
    pub(crate) fn pack_records(&self) -> SectionReader<'_, PACK_REC> {
        SectionReader::new(&self.file, self.packs_at as u64, self.counts.packs)
    }

    /// Read blob records in order, with `pread` (not through the mapping).
    pub(crate) fn blob_records(&self) -> SectionReader<'_, BLOB_REC> {
        SectionReader::new(&self.file, self.blobs_at as u64, self.counts.blobs)
    }
}

/// Interpolation search for `key` among the 32-byte ids that start each
/// `rec`-byte record of `data`, which are sorted and unique. For uniformly
/// distributed ids the expected number of probes is O(log log n), about 3
/// for 10^7 ids; bisection after a few rounds bounds the worst case at
/// O(log n).
fn search(data: &[u8], rec: usize, key: &[u8; 32]) -> Option<usize> {
    let n = data.len() / rec;
    let k = prefix(key);
    let (mut lo, mut hi) = (0usize, n);
    // Every id in lo..hi has a prefix within klo..=khi.
    let (mut klo, mut khi) = (0u64, u64::MAX);
    let mut rounds = 0;
    while hi - lo > SCAN {
        let mid = if rounds < INTERPOLATION_ROUNDS {
            let span = u128::from(khi - klo) + 1;
            let off = (u128::from(k - klo) * (hi - lo) as u128 / span) as usize;
            lo + off.min(hi - lo - 1)
        } else {
            lo + (hi - lo) / 2
        };
        rounds += 1;
        let e = &data[mid * rec..mid * rec + 32];
        match e.cmp(key.as_slice()) {
            std::cmp::Ordering::Equal => return Some(mid),
            std::cmp::Ordering::Less => {
                lo = mid + 1;
                klo = prefix(e);
            }
            std::cmp::Ordering::Greater => {
                hi = mid;
                khi = prefix(e);
            }
        }
    }
    (lo..hi).find(|&i| &data[i * rec..i * rec + 32] == key.as_slice())
}

/// Sequential reader of one section of a table file, by `pread`, so merging
/// a large table into a new one does not make it resident.
pub(crate) struct SectionReader<'f, const N: usize> {
    file: &'f File,
    pos: u64,
    left: u64,
    buf: Vec<u8>,
    at: usize,
}

impl<'f, const N: usize> SectionReader<'f, N> {
    fn new(file: &'f File, start: u64, records: u64) -> SectionReader<'f, N> {
        SectionReader {
            file,
            pos: start,
            left: records,
            buf: Vec::new(),
            at: 0,
        }
    }
}

impl<const N: usize> Source<N> for SectionReader<'_, N> {
    fn next_rec(&mut self) -> io::Result<Option<[u8; N]>> {
        if self.at == self.buf.len() {
            if self.left == 0 {
                return Ok(None);
            }
            let recs = self.left.min(((256 << 10) / N) as u64);
            self.buf.resize(recs as usize * N, 0);
            self.file.read_exact_at(&mut self.buf, self.pos)?;
            self.pos += self.buf.len() as u64;
            self.left -= recs;
            self.at = 0;
        }
        let mut r = [0u8; N];
        r.copy_from_slice(&self.buf[self.at..self.at + N]);
        self.at += N;
        Ok(Some(r))
    }
}

/// Blob records of a table in id order, through the mapping; the consumed
/// part is released as the scan goes, so a full scan stays small.
pub(crate) struct TableScan<'t> {
    table: &'t Table,
    pos: usize,
    released: usize,
}

impl<'t> TableScan<'t> {
    pub(crate) fn new(table: &'t Table) -> TableScan<'t> {
        TableScan {
            table,
            pos: 0,
            released: 0,
        }
    }
}

impl Iterator for TableScan<'_> {
    type Item = (usize, Id, BlobLocation);

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos - self.released >= SCAN_RELEASE {
            self.table.release_blobs(self.released, self.pos);
            self.released = self.pos;
        }
        while self.pos < self.table.len() {
            let i = self.pos;
            self.pos += 1;
            if let Some((id, loc)) = self.table.blob_at(i) {
                return Some((i, id, loc));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, seed: u64) -> Vec<[u8; 32]> {
        let mut s = seed;
        let mut v: Vec<[u8; 32]> = (0..n)
            .map(|_| {
                let mut id = [0u8; 32];
                for c in id.chunks_mut(8) {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    c.copy_from_slice(&s.to_le_bytes());
                }
                id
            })
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    #[test]
    fn search_finds_every_id_and_rejects_others() {
        for n in [0, 1, 2, 7, 9, 100, 10_000] {
            let v = ids(n, 0x1234_5678_9abc_def1 + n as u64);
            let data: Vec<u8> = v
                .iter()
                .flat_map(|id| {
                    let mut r = [0u8; 40];
                    r[..32].copy_from_slice(id);
                    r
                })
                .collect();
            for (i, id) in v.iter().enumerate() {
                assert_eq!(search(&data, 40, id), Some(i), "n={n} i={i}");
                let mut other = *id;
                other[31] ^= 1;
                if v.binary_search(&other).is_err() {
                    assert_eq!(search(&data, 40, &other), None);
                }
            }
            assert_eq!(search(&data, 40, &[0u8; 32]), None);
            assert_eq!(search(&data, 40, &[0xff; 32]), None);
        }
    }

    #[test]
    fn search_survives_skewed_ids() {
        // All ids share one 8-byte prefix: interpolation learns nothing and
        // bisection must take over.
        let mut v = ids(5000, 99);
        for id in &mut v {
            id[..8].copy_from_slice(&[7; 8]);
        }
        v.sort_unstable();
        let data: Vec<u8> = v.concat();
        for (i, id) in v.iter().enumerate() {
            assert_eq!(search(&data, 32, id), Some(i));
        }
    }
}
