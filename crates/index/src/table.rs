//! The local lookup table: one file holding the merged index, sorted by
//! blob id, in fixed-width records, authenticated with a keyed BLAKE3 MAC
//! and mapped read-only. The layout is specified in `docs/index.md`.
//!
//! ```text
//! table  = segment id × S ‖ superseded id × K ‖ pack record × P ‖ zeros to a multiple of 4096
//!          ‖ blob pages ‖ fence ‖ footer
//! pack   = pack id (32) ‖ size u64 LE ‖ type u8 ‖ in-base u8 ‖ 6 zero bytes (48 bytes)
//! blob   = blob id (32) ‖ pack u32 LE ‖ offset u32 LE ‖ stored_len u32 LE ‖ raw_len u32 LE
//!          (48 bytes; pack = index of the pack record, bit 31 = compressed)
//! page   = 85 blob records ‖ 16 zero bytes (4096 bytes; the last page: its records only)
//! fence  = for each blob page, the first 8 bytes of its first blob id as u64 BE, stored u64 LE
//! footer = "LBIDXTBL" ‖ version u32 LE (1) ‖ 0 u32 ‖ S u64 ‖ K u64 ‖ P u64 ‖ B u64
//!          ‖ duplicates u64 ‖ shared packs u64 ‖ base MAC (32) ‖ MAC (32)    (128 bytes)
//! ```
//!
//! The MAC is BLAKE3 keyed with a key derived from the master key, over every
//! byte before it. Packs are sorted by pack id, blobs by blob id; both lists
//! hold each id once. A *base* table has an all-zero base MAC. An *overlay*
//! holds only segments merged after its base was built, names its base by
//! the base's MAC, holds no blob that its base holds, and flags (`in-base`)
//! and counts (`shared packs`) the packs it shares with its base. A blob page never straddles a 4 KiB page of the file,
//! so a lookup, guided by the fence held in memory, touches one page.

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
/// Table layout version. 2: blob records carry the grouped flag
/// ([`GROUPED_BIT`]); a version 1 table is rebuilt, not read.
pub(crate) const VERSION: u32 = 2;
/// Bytes of a segment id record.
pub(crate) const SEG_REC: usize = 32;
/// Bytes of a pack record.
pub(crate) const PACK_REC: usize = 48;
/// Bytes of a blob record.
pub(crate) const BLOB_REC: usize = 48;
/// Bytes of the footer, MAC included.
pub(crate) const FOOTER_LEN: usize = 128;
/// Bytes of a blob page.
const PAGE: usize = 4096;
/// Blob records in a full page.
const PER_PAGE: usize = PAGE / BLOB_REC;
/// Bytes of the MAC at the very end.
const MAC_LEN: usize = 32;
/// Bit of a blob record's pack field that holds the compressed flag.
const COMPRESSED_BIT: u32 = 1 << 31;
/// Bit of a blob record's pack field that holds the grouped flag.
const GROUPED_BIT: u32 = 1 << 30;
/// The flag bits of a blob record's pack field.
const FLAG_BITS: u32 = COMPRESSED_BIT | GROUPED_BIT;
/// Largest number of packs a table can address.
pub(crate) const MAX_PACKS: u64 = GROUPED_BIT as u64;
/// Context string for deriving the MAC key from the master key.
pub(crate) const MAC_CONTEXT: &str = "lifeboat 2025 local index table v1 MAC key";

/// Below this many candidates, scan instead of probing.
const SCAN: usize = 2;
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
    pub shared_packs: u64,
}

impl Counts {
    /// Blob pages.
    fn pages(&self) -> u64 {
        self.blobs.div_ceil(PER_PAGE as u64)
    }

    /// Offsets of the pack records, the first blob page and the fence, and
    /// the file length; `None` if they overflow.
    fn layout(&self) -> Option<(u64, u64, u64, u64)> {
        let packs_at = self
            .segments
            .checked_add(self.superseded)?
            .checked_mul(SEG_REC as u64)?;
        let packs_end = packs_at.checked_add(self.packs.checked_mul(PACK_REC as u64)?)?;
        let blobs_at = packs_end.checked_next_multiple_of(PAGE as u64)?;
        let pages = self.pages();
        let blob_bytes = match pages {
            0 => 0,
            n => (n - 1)
                .checked_mul(PAGE as u64)?
                .checked_add((self.blobs - (n - 1) * PER_PAGE as u64) * BLOB_REC as u64)?,
        };
        let fence_at = blobs_at.checked_add(blob_bytes)?;
        let len = fence_at
            .checked_add(pages.checked_mul(8)?)?
            .checked_add(FOOTER_LEN as u64)?;
        Some((packs_at, blobs_at, fence_at, len))
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

/// Encode a pack record; `in_base`: an overlay's pack that its base holds too.
pub(crate) fn pack_record(
    id: &Id,
    size: u64,
    blob_type: BlobType,
    in_base: bool,
) -> [u8; PACK_REC] {
    let mut r = [0u8; PACK_REC];
    r[..32].copy_from_slice(&id.0);
    r[32..40].copy_from_slice(&size.to_le_bytes());
    r[40] = blob_type as u8;
    r[41] = u8::from(in_base);
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
    let p =
        pack | if flags.compressed() {
            COMPRESSED_BIT
        } else {
            0
        } | if flags.grouped() { GROUPED_BIT } else { 0 };
    r[32..36].copy_from_slice(&p.to_le_bytes());
    r[36..40].copy_from_slice(&offset.to_le_bytes());
    r[40..44].copy_from_slice(&stored_len.to_le_bytes());
    r[44..48].copy_from_slice(&raw_len.to_le_bytes());
    r
}

/// The pack index stored in a blob record.
pub(crate) fn record_pack(r: &[u8; BLOB_REC]) -> u32 {
    u32_at(r, 32) & !FLAG_BITS
}

/// The same record pointing at pack `pack` instead.
pub(crate) fn with_pack(mut r: [u8; BLOB_REC], pack: u32) -> [u8; BLOB_REC] {
    let p = pack | (u32_at(&r, 32) & FLAG_BITS);
    r[32..36].copy_from_slice(&p.to_le_bytes());
    r
}

/// Streams a table file to disk, computing its MAC on the way.
pub(crate) struct TableWriter {
    out: BufWriter<File>,
    mac: blake3::Hasher,
    counts: Counts,
    section: u8,
    pos: u64,
    fence: Vec<u64>,
}

impl TableWriter {
    /// Write a new table into `file` (empty, open for writing).
    pub(crate) fn new(file: File, mac_key: &[u8; 32]) -> TableWriter {
        TableWriter {
            out: BufWriter::with_capacity(1 << 20, file),
            mac: blake3::Hasher::new_keyed(mac_key),
            counts: Counts::default(),
            section: 0,
            pos: 0,
            fence: Vec::new(),
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.mac.update(bytes);
        self.pos += bytes.len() as u64;
        self.out.write_all(bytes)
    }

    fn zeros(&mut self, n: usize) -> io::Result<()> {
        const Z: [u8; PAGE] = [0; PAGE];
        self.put(&Z[..n])
    }

    fn enter(&mut self, section: u8) -> io::Result<()> {
        if section < self.section {
            return Err(io::Error::other("table sections written out of order"));
        }
        if section >= 3 && self.section < 3 {
            // Blob pages start on a page boundary.
            let pad = self.pos.next_multiple_of(PAGE as u64) - self.pos;
            self.zeros(pad as usize)?;
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

    /// Add a blob record (fourth section; ascending blob id).
    pub(crate) fn blob(&mut self, rec: &[u8; BLOB_REC]) -> io::Result<()> {
        self.enter(3)?;
        if self.counts.blobs % PER_PAGE as u64 == 0 {
            if self.counts.blobs > 0 {
                self.zeros(PAGE - PER_PAGE * BLOB_REC)?;
            }
            self.fence.push(prefix(rec));
        }
        self.counts.blobs += 1;
        self.put(rec)
    }

    /// Write the fence and the footer, and sync. `base`: the MAC of the
    /// base table this one overlays, for an overlay.
    pub(crate) fn finish(
        mut self,
        duplicates: u64,
        shared_packs: u64,
        base: Option<&[u8; 32]>,
    ) -> io::Result<File> {
        self.enter(4)?;
        for f in std::mem::take(&mut self.fence) {
            self.put(&f.to_le_bytes())?;
        }
        self.counts.duplicates = duplicates;
        self.counts.shared_packs = shared_packs;
        let c = self.counts;
        let mut f = [0u8; FOOTER_LEN - MAC_LEN];
        f[..8].copy_from_slice(MAGIC);
        f[8..12].copy_from_slice(&VERSION.to_le_bytes());
        for (i, v) in [
            c.segments,
            c.superseded,
            c.packs,
            c.blobs,
            c.duplicates,
            c.shared_packs,
        ]
        .into_iter()
        .enumerate()
        {
            f[16 + 8 * i..24 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        if let Some(b) = base {
            f[64..96].copy_from_slice(b);
        }
        self.put(&f)?;
        if c.layout().map(|l| l.3) != Some(self.pos + MAC_LEN as u64) {
            return Err(io::Error::other("table length does not match its layout"));
        }
        let mac = self.mac.finalize();
        self.out.write_all(mac.as_bytes())?;
        let file = self.out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(file)
    }
}

/// How lookups reach the table file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lookups {
    /// Read the one 4 KiB page a lookup needs with `pread` into a buffer on
    /// the stack. Nothing of the table stays resident, whatever the number
    /// of lookups: the choice for backups.
    #[default]
    Read,
    /// Read through the memory map: several times faster, but every page a
    /// lookup touches stays mapped, and counted in the resident set, until
    /// [`IndexOptions::release_every`](crate::IndexOptions::release_every)
    /// lookups drop them (the kernel may also reclaim them, as they are clean
    /// file pages). For bulk work such as check and prune.
    Mapped,
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
    /// First id prefix of each blob page.
    fence: Vec<u64>,
    /// This table's MAC, and its base's (zero for a base table).
    mac: [u8; 32],
    base_mac: [u8; 32],
    lookups_mode: Lookups,
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
        lookups_mode: Lookups,
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
            shared_packs: u64_at(&footer, 56),
        };
        let Some((packs_at, blobs_at, fence_at, want)) = counts.layout() else {
            return Err(TableError::Invalid("counts overflow"));
        };
        if want != len || counts.packs > MAX_PACKS {
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
        let mut raw = vec![0u8; counts.pages() as usize * 8];
        file.read_exact_at(&mut raw, fence_at)?;
        let fence: Vec<u64> = raw.chunks_exact(8).map(|c| u64_at(c, 0)).collect();
        drop(raw);
        let s = counts.segments as usize;
        let k = counts.superseded as usize;
        let mut raw = vec![0u8; (s + k) * SEG_REC];
        file.read_exact_at(&mut raw, 0)?;
        let segments = (0..s).map(|i| id_at(&raw, i * SEG_REC)).collect();
        let superseded = (s..s + k).map(|i| id_at(&raw, i * SEG_REC)).collect();
        drop(raw);
        let map = MappedFile::map(&file)?;
        if map.bytes().len() as u64 != len {
            return Err(TableError::Invalid("file changed while opening"));
        }
        Ok(Table {
            map,
            file,
            counts,
            segments,
            superseded,
            packs_at: packs_at as usize,
            blobs_at: blobs_at as usize,
            fence,
            mac: id_at(&footer, FOOTER_LEN - MAC_LEN).0,
            base_mac: id_at(&footer, 64).0,
            lookups_mode,
            lookups: AtomicU64::new(0),
            release_every,
        })
    }

    /// Change how lookups read the table.
    pub(crate) fn set_lookups(&mut self, mode: Lookups, release_every: u64) {
        self.lookups_mode = mode;
        self.release_every = release_every;
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

    /// Packs of this overlay that its base holds too.
    pub(crate) fn shared_packs(&self) -> usize {
        self.counts.shared_packs as usize
    }

    /// This table's MAC: its identity.
    pub(crate) fn mac(&self) -> &[u8; 32] {
        &self.mac
    }

    /// The MAC of the base this table overlays; `None` for a base table.
    pub(crate) fn base_mac(&self) -> Option<&[u8; 32]> {
        (self.base_mac != [0; 32]).then_some(&self.base_mac)
    }

    /// Resident memory the table holds besides its mapping: the fence.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.fence.capacity() * 8 + (self.segments.capacity() + self.superseded.capacity()) * 32
    }

    /// Byte offset of blob record `i` in the file.
    fn blob_offset(&self, i: usize) -> usize {
        self.blobs_at + (i / PER_PAGE) * PAGE + (i % PER_PAGE) * BLOB_REC
    }

    /// `N` bytes at `at`: from the mapping, or with `pread`.
    fn bytes_at<const N: usize>(&self, at: usize, mapped: bool) -> Option<[u8; N]> {
        let mut r = [0u8; N];
        if mapped {
            r.copy_from_slice(self.map.bytes().get(at..at + N)?);
        } else {
            self.file.read_exact_at(&mut r, at as u64).ok()?;
        }
        Some(r)
    }

    /// Count a mapped lookup; every `release_every` of them, drop the
    /// table's pages from the resident set.
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

    /// Position and record of blob `id`: the fence (in memory) names the
    /// page, and an interpolation search within it finds the record, so a
    /// lookup reads one 4 KiB page.
    fn lookup(&self, id: &Id) -> Option<(usize, [u8; BLOB_REC])> {
        let k = prefix(id.as_bytes());
        let hi = fence_end(&self.fence, k);
        let mut lo = hi.checked_sub(1)?;
        // Ids sharing the prefix `k` may run on from the page before.
        while lo > 0 && self.fence[lo] == k {
            lo -= 1;
        }
        let mapped = self.lookups_mode == Lookups::Mapped;
        if mapped {
            self.note_lookup();
        }
        (lo..hi).find_map(|p| {
            let klo = self.fence[p];
            let khi = self.fence.get(p + 1).copied().unwrap_or(u64::MAX);
            let n = (self.len() - p * PER_PAGE).min(PER_PAGE) * BLOB_REC;
            let at = self.blobs_at + p * PAGE;
            let found = |page: &[u8]| {
                let i = search(page, BLOB_REC, id.as_bytes(), klo, khi)?;
                let mut r = [0u8; BLOB_REC];
                r.copy_from_slice(&page[i * BLOB_REC..(i + 1) * BLOB_REC]);
                Some((p * PER_PAGE + i, r))
            };
            if mapped {
                found(&self.map.bytes()[at..at + n])
            } else {
                let mut buf = [0u8; PAGE];
                self.file.read_exact_at(&mut buf[..n], at as u64).ok()?;
                found(&buf[..n])
            }
        })
    }

    /// Position of blob `id`.
    pub(crate) fn find(&self, id: &Id) -> Option<usize> {
        self.lookup(id).map(|(i, _)| i)
    }

    /// Location of blob `id`.
    pub(crate) fn get(&self, id: &Id) -> Option<BlobLocation> {
        let (_, r) = self.lookup(id)?;
        self.location(&r, self.lookups_mode == Lookups::Mapped)
    }

    /// Position of pack `id`.
    pub(crate) fn find_pack(&self, id: &Id) -> Option<usize> {
        let key = id.as_bytes();
        let k = prefix(key);
        let mapped = self.lookups_mode == Lookups::Mapped;
        let (mut lo, mut hi) = (0usize, self.pack_count());
        let (mut klo, mut khi) = (0u64, u64::MAX);
        let mut rounds = 0;
        while lo < hi {
            let mid = probe(lo, hi, k, klo, khi, &mut rounds);
            let e: [u8; 32] = self.bytes_at(self.packs_at + mid * PACK_REC, mapped)?;
            match e.as_slice().cmp(key.as_slice()) {
                std::cmp::Ordering::Equal => return Some(mid),
                std::cmp::Ordering::Less => {
                    lo = mid + 1;
                    klo = prefix(&e);
                }
                std::cmp::Ordering::Greater => {
                    hi = mid;
                    khi = prefix(&e);
                }
            }
        }
        None
    }

    fn pack_record_at(&self, i: usize, mapped: bool) -> Option<[u8; PACK_REC]> {
        if i >= self.pack_count() {
            return None;
        }
        self.bytes_at(self.packs_at + i * PACK_REC, mapped)
    }

    fn pack_from(&self, i: usize, mapped: bool) -> Option<(Id, u64, BlobType)> {
        let r = self.pack_record_at(i, mapped)?;
        // A valid MAC means this crate's code wrote the byte.
        let t = BlobType::from_u8(r[40]).unwrap_or(BlobType::Data);
        Some((id_at(&r, 0), u64_at(&r, 32), t))
    }

    /// Pack record `i`: id, size, type.
    pub(crate) fn pack_at(&self, i: usize) -> Option<(Id, u64, BlobType)> {
        self.pack_from(i, self.lookups_mode == Lookups::Mapped)
    }

    /// Pack record `i` if its base does not hold it too.
    pub(crate) fn own_pack_at(&self, i: usize) -> Option<Option<(Id, u64)>> {
        let r = self.pack_record_at(i, self.lookups_mode == Lookups::Mapped)?;
        Some((r[41] == 0).then(|| (id_at(&r, 0), u64_at(&r, 32))))
    }

    /// The location a blob record gives, its pack resolved.
    fn location(&self, r: &[u8; BLOB_REC], mapped: bool) -> Option<BlobLocation> {
        let p = u32_at(r, 32);
        let (pack, _, blob_type) = self.pack_from((p & !FLAG_BITS) as usize, mapped)?;
        let mut flags = BlobFlags(0);
        if p & COMPRESSED_BIT != 0 {
            flags.0 |= BlobFlags::COMPRESSED;
        }
        if p & GROUPED_BIT != 0 {
            flags.0 |= BlobFlags::GROUPED;
        }
        Some(BlobLocation {
            pack,
            blob_type,
            flags,
            offset: u32_at(r, 36),
            stored_len: u32_at(r, 40),
            raw_len: u32_at(r, 44),
        })
    }

    fn blob_from(&self, i: usize, mapped: bool) -> Option<(Id, BlobLocation)> {
        if i >= self.len() {
            return None;
        }
        let r: [u8; BLOB_REC] = self.bytes_at(self.blob_offset(i), mapped)?;
        Some((id_at(&r, 0), self.location(&r, mapped)?))
    }

    /// Blob record `i` with its location resolved.
    pub(crate) fn blob_at(&self, i: usize) -> Option<(Id, BlobLocation)> {
        self.blob_from(i, self.lookups_mode == Lookups::Mapped)
    }

    /// Drop the pages of blob records `from..to`, and the pack records,
    /// from the resident set (after a stretch of a sequential scan).
    fn release_scanned(&self, from: usize, to: usize) {
        if to > from {
            let start = self.blob_offset(from);
            self.map.release(start, self.blob_offset(to) - start);
            self.map
                .release(self.packs_at, self.pack_count() * PACK_REC);
        }
    }

    /// Read pack records in order, with `pread` (not through the mapping).
    pub(crate) fn pack_records(&self) -> SectionReader<'_, PACK_REC> {
        SectionReader::new(&self.file, self.packs_at as u64, self.counts.packs)
    }

    /// Read blob records in order, with `pread` (not through the mapping).
    pub(crate) fn blob_records(&self) -> BlobReader<'_> {
        BlobReader {
            file: &self.file,
            pos: self.blobs_at as u64,
            left: self.counts.blobs,
            buf: Vec::new(),
            at: 0,
        }
    }
}

/// The number of fence entries `<= k` (the fence is ascending), found by
/// interpolating from `k` (fence entries are uniformly distributed prefixes)
/// and galloping from there: a few neighbouring cache lines instead of a
/// binary search across the whole fence.
fn fence_end(fence: &[u64], k: u64) -> usize {
    let n = fence.len();
    if n == 0 {
        return 0;
    }
    let guess = ((u128::from(k) * n as u128) >> 64) as usize;
    // Find a window lo..hi with fence[lo-1] <= k (or lo = 0) and
    // fence[hi] > k (or hi = n), then bisect it.
    let (mut lo, mut hi);
    if fence[guess] <= k {
        lo = guess + 1;
        let mut step = 1;
        hi = lo;
        while hi < n && fence[hi] <= k {
            lo = hi + 1;
            hi = (hi + step).min(n);
            step *= 2;
        }
    } else {
        hi = guess;
        let mut step = 1;
        lo = hi;
        while lo > 0 && fence[lo - 1] > k {
            hi = lo - 1;
            lo = lo.saturating_sub(step);
            step *= 2;
        }
    }
    lo + fence[lo..hi].partition_point(|&f| f <= k)
}

/// The next position to probe for prefix `k` in `lo..hi`, whose ids have
/// prefixes within `klo..=khi`: interpolated for the first rounds (ids are
/// uniformly distributed), then bisected, which bounds the worst case.
fn probe(lo: usize, hi: usize, k: u64, klo: u64, khi: u64, rounds: &mut u32) -> usize {
    *rounds += 1;
    if *rounds <= INTERPOLATION_ROUNDS && klo <= k && k <= khi {
        let span = u128::from(khi - klo) + 1;
        let off = (u128::from(k - klo) * (hi - lo) as u128 / span) as usize;
        lo + off.min(hi - lo - 1)
    } else {
        lo + (hi - lo) / 2
    }
}

/// Interpolation search for `key` among the 32-byte ids that start each
/// `rec`-byte record of `data`, which are sorted and unique and whose
/// prefixes lie within `klo..=khi`. For uniformly distributed ids the
/// expected number of probes is O(log log n); bisection after a few rounds
/// bounds the worst case at O(log n).
fn search(data: &[u8], rec: usize, key: &[u8; 32], klo: u64, khi: u64) -> Option<usize> {
    let n = data.len() / rec;
    let k = prefix(key);
    if k < klo || k > khi {
        return None;
    }
    let (mut lo, mut hi) = (0usize, n);
    let (mut klo, mut khi) = (klo, khi);
    let mut rounds = 0;
    while hi - lo > SCAN {
        let mid = probe(lo, hi, k, klo, khi, &mut rounds);
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

/// Sequential reader of the blob pages of a table file, by `pread`, skipping
/// the padding at the end of each page.
pub(crate) struct BlobReader<'f> {
    file: &'f File,
    pos: u64,
    left: u64,
    buf: Vec<u8>,
    at: usize,
}

impl Source<BLOB_REC> for BlobReader<'_> {
    fn next_rec(&mut self) -> io::Result<Option<[u8; BLOB_REC]>> {
        if self.at >= self.buf.len() {
            if self.left == 0 {
                return Ok(None);
            }
            // Whole pages, 64 at a time; the last one may be short.
            let recs = self.left.min(64 * PER_PAGE as u64);
            let full = recs / PER_PAGE as u64;
            let bytes = full * PAGE as u64 + (recs % PER_PAGE as u64) * BLOB_REC as u64;
            self.buf.resize(bytes as usize, 0);
            self.file.read_exact_at(&mut self.buf, self.pos)?;
            self.pos += bytes;
            self.left -= recs;
            self.at = 0;
        }
        let mut r = [0u8; BLOB_REC];
        r.copy_from_slice(&self.buf[self.at..self.at + BLOB_REC]);
        self.at += BLOB_REC;
        if self.at % PAGE == PER_PAGE * BLOB_REC {
            self.at += PAGE - PER_PAGE * BLOB_REC;
        }
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
            self.table.release_scanned(self.released, self.pos);
            self.released = self.pos;
        }
        while self.pos < self.table.len() {
            let i = self.pos;
            self.pos += 1;
            if let Some((id, loc)) = self.table.blob_from(i, true) {
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
                assert_eq!(search(&data, 40, id, 0, u64::MAX), Some(i), "n={n} i={i}");
                let mut other = *id;
                other[31] ^= 1;
                if v.binary_search(&other).is_err() {
                    assert_eq!(search(&data, 40, &other, 0, u64::MAX), None);
                }
            }
            assert_eq!(search(&data, 40, &[0u8; 32], 0, u64::MAX), None);
            assert_eq!(search(&data, 40, &[0xff; 32], 0, u64::MAX), None);
        }
    }

    #[test]
    fn fence_end_matches_partition_point() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        for n in [0usize, 1, 2, 3, 10, 1000, 5000] {
            let mut fence: Vec<u64> = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s
                })
                .collect();
            fence.sort_unstable();
            // Runs of equal entries too.
            if n > 10 {
                let v = fence[n / 2];
                fence[n / 2 - 3..n / 2 + 3].fill(v);
                fence.sort_unstable();
            }
            let mut keys: Vec<u64> = fence.clone();
            keys.extend(fence.iter().map(|f| f.wrapping_add(1)));
            keys.extend(fence.iter().map(|f| f.wrapping_sub(1)));
            keys.extend([0, 1, u64::MAX, u64::MAX - 1, 1 << 63]);
            for k in keys {
                assert_eq!(
                    fence_end(&fence, k),
                    fence.partition_point(|&f| f <= k),
                    "n={n} k={k}"
                );
            }
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
            assert_eq!(search(&data, 32, id, 0, u64::MAX), Some(i));
        }
    }
}
