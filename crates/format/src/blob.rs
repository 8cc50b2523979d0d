use std::cell::RefCell;

use crate::{Error, Id, MAX_BLOB_LEN, MasterKey, Result};

/// What a blob holds. Data and tree blobs live in separate packs.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[repr(u8)]
pub enum BlobType {
    /// File content.
    Data = 0,
    /// An encoded [`crate::Tree`].
    Tree = 1,
}

impl BlobType {
    /// Decode the on-disk byte.
    pub fn from_u8(v: u8) -> Result<BlobType> {
        match v {
            0 => Ok(BlobType::Data),
            1 => Ok(BlobType::Tree),
            _ => Err(crate::error::malformed(
                "blob type",
                format!("unknown type {v}"),
            )),
        }
    }
}

/// Per-blob flags in pack headers and index entries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
pub struct BlobFlags(pub u8);

impl BlobFlags {
    /// The stored plaintext is a zstd frame.
    pub const COMPRESSED: u8 = 1;
    /// The envelope is a group of small blobs stored together
    /// ([`seal_group`]); the blob is one member of it. Every member of a
    /// group carries the group's flags, so [`Self::COMPRESSED`] then says
    /// whether the group is compressed.
    pub const GROUPED: u8 = 2;

    /// Whether the blob is compressed.
    pub fn compressed(self) -> bool {
        self.0 & Self::COMPRESSED != 0
    }

    /// Whether the blob's envelope is a group shared with other blobs.
    pub fn grouped(self) -> bool {
        self.0 & Self::GROUPED != 0
    }

    /// Reject flags this version does not define.
    pub fn validate(self) -> Result<BlobFlags> {
        if self.0 & !(Self::COMPRESSED | Self::GROUPED) != 0 {
            return Err(crate::error::malformed(
                "blob flags",
                format!("unknown flags {:#x}", self.0),
            ));
        }
        Ok(self)
    }
}

/// A blob ready to be appended to a pack.
#[derive(Debug, Clone)]
pub struct SealedBlob {
    /// Keyed hash of the plaintext.
    pub id: Id,
    /// Data or tree.
    pub blob_type: BlobType,
    /// Compression flag.
    pub flags: BlobFlags,
    /// Plaintext length.
    pub raw_len: u32,
    /// The encrypted envelope as stored in the pack.
    pub bytes: Vec<u8>,
}

/// Small blobs sealed together in one envelope: what [`seal_group`]
/// returns. Every member gets a pack header entry of its own that points
/// at the one envelope.
#[derive(Debug, Clone)]
pub struct SealedGroup {
    /// Data or tree (one type per group).
    pub blob_type: BlobType,
    /// The flags of every member: [`BlobFlags::GROUPED`], and
    /// [`BlobFlags::COMPRESSED`] when the group is.
    pub flags: BlobFlags,
    /// Each member's id and plaintext length, in the group's order.
    pub members: Vec<(Id, u32)>,
    /// The encrypted envelope as stored in the pack.
    pub bytes: Vec<u8>,
}

/// Largest plaintext of a group (4 MiB): bounds what a reader decompresses
/// to reach one member. Writers fill groups to about
/// [`GROUP_TARGET_LEN`].
pub const MAX_GROUP_LEN: u32 = 4 << 20;
/// Writers put data blobs shorter than this in groups: most are whole
/// small files, which compress far better beside their neighbours than
/// alone. On a Rust toolchain tree the 50,889 files under 64 KiB (289.8
/// MB) took 104.4 MB one blob each at `auto` and 23.3 MB in groups of
/// 1 MiB, for a quarter of the CPU (docs/benchmarks.md, "Cold backup with
/// `auto`, session 17 VM").
pub const GROUP_MEMBER_MAX_LEN: usize = 64 * 1024;
/// Writers seal a group once its plaintext reaches this size
/// ([`GroupBuilder::is_full`]). Restoring one member decrypts and
/// decompresses its whole group, and one damaged group costs all its
/// members, so groups stay far below a pack.
pub const GROUP_TARGET_LEN: usize = 1 << 20;
/// Bytes of a group's table per member: id and length.
const GROUP_ENTRY_LEN: usize = 32 + 4;

fn group_aad(blob_type: BlobType, flags: BlobFlags) -> [u8; 17 + 1 + 1] {
    let mut aad = [0u8; 19];
    aad[..17].copy_from_slice(b"lifeboat group v1");
    aad[17] = blob_type as u8;
    aad[18] = flags.0;
    aad
}

/// Small blobs being collected into a group, in the order added.
#[derive(Debug)]
pub struct GroupBuilder {
    blob_type: BlobType,
    members: Vec<(Id, u32)>,
    data: Vec<u8>,
}

impl GroupBuilder {
    /// An empty group of blobs of `blob_type`.
    pub fn new(blob_type: BlobType) -> GroupBuilder {
        GroupBuilder {
            blob_type,
            members: Vec::new(),
            data: Vec::new(),
        }
    }

    /// Add a blob whose id is `id`. Fails if the group would pass
    /// [`MAX_GROUP_LEN`].
    pub fn push(&mut self, id: Id, plaintext: &[u8]) -> Result<()> {
        if self.plaintext_len() + GROUP_ENTRY_LEN + plaintext.len() > MAX_GROUP_LEN as usize {
            return Err(crate::error::malformed("group", "group larger than 4 MiB"));
        }
        self.members.push((id, plaintext.len() as u32));
        self.data.extend_from_slice(plaintext);
        Ok(())
    }

    /// Plaintext length of the group so far, table included.
    pub fn plaintext_len(&self) -> usize {
        4 + GROUP_ENTRY_LEN * self.members.len() + self.data.len()
    }

    /// Whether the group has reached [`GROUP_TARGET_LEN`] and should be
    /// sealed.
    pub fn is_full(&self) -> bool {
        self.plaintext_len() >= GROUP_TARGET_LEN
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether no blob was added.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Compress (in `mode`, kept only when it saves 1/32, as for a blob)
    /// and encrypt the group. The builder is emptied for reuse.
    pub fn seal(&mut self, key: &MasterKey, mode: Compression) -> Result<SealedGroup> {
        let mut plain = Vec::with_capacity(self.plaintext_len());
        plain.extend_from_slice(&(self.members.len() as u32).to_le_bytes());
        for (id, len) in &self.members {
            plain.extend_from_slice(&id.0);
            plain.extend_from_slice(&len.to_le_bytes());
        }
        plain.extend_from_slice(&self.data);
        let t = self.blob_type;
        let base = BlobFlags(BlobFlags::GROUPED);
        let (flags, bytes) =
            compress_and_seal(key, mode.zstd(), &plain, true, base, |f| group_aad(t, f))?;
        self.data.clear();
        Ok(SealedGroup {
            blob_type: self.blob_type,
            flags,
            members: std::mem::take(&mut self.members),
            bytes,
        })
    }
}

/// The group a thread opened last: its envelope as stored, its plaintext,
/// and where each member lies in it. Members of a group are read one after
/// another, so each group is decrypted and decompressed once, not once per
/// member; the envelope is compared byte for byte before the plaintext is
/// reused, so a damaged copy is never answered from the cache.
struct OpenedGroup {
    stored: Vec<u8>,
    blob_type: BlobType,
    flags: BlobFlags,
    plain: Vec<u8>,
    members: std::collections::HashMap<Id, (usize, u32)>,
}

thread_local! {
    static LAST_GROUP: RefCell<Option<OpenedGroup>> = const { RefCell::new(None) };
}

/// Open the group envelope `stored` and parse its table.
fn open_group(
    key: &MasterKey,
    blob_type: BlobType,
    flags: BlobFlags,
    stored: &[u8],
) -> Result<OpenedGroup> {
    let sealed = key.open(&group_aad(blob_type, flags), stored, "group")?;
    let plain = if flags.compressed() {
        decompress(&sealed, MAX_GROUP_LEN as usize)?
    } else {
        sealed
    };
    let bad = |why: &str| crate::error::malformed("group", why.to_string());
    if plain.len() > MAX_GROUP_LEN as usize {
        return Err(bad("larger than 4 MiB"));
    }
    let count = plain
        .get(..4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
        .ok_or_else(|| bad("shorter than its member count"))?;
    let table_end = count
        .checked_mul(GROUP_ENTRY_LEN)
        .and_then(|t| t.checked_add(4))
        .filter(|t| *t <= plain.len())
        .ok_or_else(|| bad("shorter than its table"))?;
    let mut members = std::collections::HashMap::with_capacity(count);
    let mut at = table_end;
    for e in plain[4..table_end].chunks_exact(GROUP_ENTRY_LEN) {
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[..32]);
        let len = u32::from_le_bytes([e[32], e[33], e[34], e[35]]);
        // The first of two members with one id is the one read.
        members.entry(Id(id)).or_insert((at, len));
        at = at
            .checked_add(len as usize)
            .filter(|end| *end <= plain.len())
            .ok_or_else(|| bad("members run past its end"))?;
    }
    if at != plain.len() {
        return Err(bad("bytes after its last member"));
    }
    Ok(OpenedGroup {
        stored: stored.to_vec(),
        blob_type,
        flags,
        plain,
        members,
    })
}

/// The member `id` of the group envelope `stored`, verified, passed to `f`.
fn with_group_member<T>(
    key: &MasterKey,
    blob_type: BlobType,
    id: &Id,
    flags: BlobFlags,
    raw_len: u32,
    stored: &[u8],
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T> {
    LAST_GROUP.with_borrow_mut(|last| {
        let hit = last
            .as_ref()
            .is_some_and(|g| g.blob_type == blob_type && g.flags == flags && g.stored == stored);
        if !hit {
            // Forget the old group first: a failure leaves no stale one.
            *last = None;
            *last = Some(open_group(key, blob_type, flags, stored)?);
        }
        let Some(g) = last.as_ref() else {
            return Err(Error::Compression("no opened group".into()));
        };
        let (at, len) = *g.members.get(id).ok_or_else(|| {
            crate::error::malformed("group", format!("blob {id} is not in its group"))
        })?;
        let data = &g.plain[at..at + len as usize];
        verify(key, id, raw_len, data)?;
        Ok(f(data))
    })
}

fn blob_aad(
    blob_type: BlobType,
    flags: BlobFlags,
    raw_len: u32,
    id: &Id,
) -> [u8; 16 + 1 + 1 + 4 + 32] {
    let mut aad = [0u8; 54];
    aad[..16].copy_from_slice(b"lifeboat blob v1");
    aad[16] = blob_type as u8;
    aad[17] = flags.0;
    aad[18..22].copy_from_slice(&raw_len.to_le_bytes());
    aad[22..].copy_from_slice(&id.0);
    aad
}

/// How new blobs are compressed: a named mode or a zstd level. Only
/// writers look at it; a reader needs no level (every compressed blob is a
/// self-describing zstd frame), so a repository may hold blobs written in
/// any mode. Whatever the mode, a blob of [`PROBE_MIN_LEN`] bytes or more is
/// first probed ([`worth_compressing`]) and stored raw, without being
/// compressed, when a small sample of it does not compress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// The settings this build measured to keep repositories no larger
    /// than restic's at the least CPU: zstd level
    /// [`Compression::AUTO_LEVEL`] with match tables of
    /// 2^[`Compression::AUTO_TABLE_LOG`] entries, for files and streams
    /// alike (`docs/benchmarks.md`, "Compression modes"). Stored by name,
    /// so a later build may choose other settings for the same repository.
    #[default]
    Auto,
    /// zstd level 1.
    Fastest,
    /// zstd level [`Compression::BETTER_LEVEL`]: smaller, slower.
    Better,
    /// zstd level [`Compression::MAX_LEVEL`]: smallest, many times slower.
    Max,
    /// No compression.
    Off,
    /// A zstd level, `-7..=22` except 0 (parsed as [`Compression::Off`]).
    Level(i32),
}

/// A `--compression` value that is neither a mode nor a zstd level.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown compression {0:?}: expected auto, fastest, better, max, off or a zstd level from -7 to 22"
)]
pub struct ParseCompressionError(pub String);

impl Compression {
    /// The zstd level of [`Compression::Auto`] in this build, used with
    /// match tables of 2^[`Compression::AUTO_TABLE_LOG`] entries. Level 3
    /// until small blobs were grouped (format §8.1); since then level 2
    /// keeps real trees' repositories a fifth under restic's for a fifth
    /// less CPU (`docs/benchmarks.md`, "Compression modes").
    pub const AUTO_LEVEL: i32 = 2;
    /// log2 of the hash and chain table sizes of [`Compression::Auto`]
    /// (level 2 alone has 2^16 and 2^15): tables of 2^15 fit in a core's
    /// L2 cache.
    pub const AUTO_TABLE_LOG: u32 = 15;
    /// The level of [`Compression::Better`].
    pub const BETTER_LEVEL: i32 = 6;
    /// The level of [`Compression::Max`].
    pub const MAX_LEVEL: i32 = 19;
    /// Lowest accepted zstd level (the fastest of zstd's negative levels used).
    pub const MIN_LEVEL: i32 = -7;

    /// The mode that an old configuration's bare `compression_level` means.
    pub fn from_level(level: i32) -> Compression {
        if level == 0 {
            Compression::Off
        } else {
            Compression::Level(level)
        }
    }

    /// zstd settings for this mode.
    fn zstd(self) -> ZstdParams {
        ZstdParams {
            level: self.level(),
            table_log: match self {
                Compression::Auto => Some(Self::AUTO_TABLE_LOG),
                _ => None,
            },
        }
    }

    /// The zstd level to write with; 0 means no compression. For
    /// [`Compression::Auto`], the level without its smaller tables: what
    /// writers that take a bare level (and older builds) use.
    pub fn level(self) -> i32 {
        match self {
            Compression::Auto => Self::AUTO_LEVEL,
            Compression::Fastest => 1,
            Compression::Better => Self::BETTER_LEVEL,
            Compression::Max => Self::MAX_LEVEL,
            Compression::Off => 0,
            Compression::Level(l) => l,
        }
    }
}

/// zstd settings: a level, and maybe smaller match tables than its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ZstdParams {
    level: i32,
    table_log: Option<u32>,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Compression::Auto => f.write_str("auto"),
            Compression::Fastest => f.write_str("fastest"),
            Compression::Better => f.write_str("better"),
            Compression::Max => f.write_str("max"),
            Compression::Off => f.write_str("off"),
            Compression::Level(l) => write!(f, "{l}"),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = ParseCompressionError;

    fn from_str(s: &str) -> std::result::Result<Compression, ParseCompressionError> {
        let bad = || ParseCompressionError(s.to_string());
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Compression::Auto),
            "fastest" => Ok(Compression::Fastest),
            "better" => Ok(Compression::Better),
            "max" => Ok(Compression::Max),
            "off" | "none" => Ok(Compression::Off),
            n => match n.parse::<i32>() {
                Ok(l) if (Self::MIN_LEVEL..=zstd::zstd_safe::max_c_level()).contains(&l) => {
                    Ok(Compression::from_level(l))
                }
                _ => Err(bad()),
            },
        }
    }
}

impl serde::Serialize for Compression {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Compression {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Blobs shorter than this are compressed without a probe: compressing
/// them costs little more than probing would.
pub const PROBE_MIN_LEN: usize = 64 * 1024;
/// Pieces of the probe's sample, spread evenly over the blob. Many small
/// pieces rather than a few large ones: in a block image, compressible 4 KiB
/// blocks lie scattered between compressed files, and 8 pieces of 2 KiB
/// all missed them in 1% of an ext4 image's chunks that would have shrunk
/// by half (docs/benchmarks.md, "Compression modes").
const PROBE_PIECES: usize = 32;
/// Bytes per piece: the sample is 16 KiB, 1.6% of an average 1 MiB chunk.
const PROBE_PIECE_LEN: usize = 512;

thread_local! {
    /// zstd level 1 context for the probe's sample.
    static PROBE: RefCell<Option<zstd::bulk::Compressor<'static>>> = const { RefCell::new(None) };
}

/// Below this many bits per byte of order-0 entropy, a sample is
/// compressible by Huffman coding alone by more than 1/32 (7.5 bits would
/// save 6%), so zstd need not be tried on it.
const PROBE_LOW_ENTROPY: f64 = 7.5;

/// Whether `data` is worth compressing, judged from a sample: 32 pieces of
/// 512 bytes spread over it. First the sample's byte histogram: a sample
/// with an order-0 entropy below 7.5 bits per byte (text, code, tables,
/// most binaries) is worth compressing. Otherwise zstd level 1 is tried on
/// the whole sample, which must shrink by 1/64 (a compressed blob is kept
/// only when it saves 1/32, and the whole blob at the writer's level
/// compresses at least as well as a short sample at level 1), then on each
/// piece alone, one of which must shrink by 1/8. Already compressed or
/// encrypted data (media, archives, zstd or gzip files, random bytes) is
/// thus stored raw for the cost of one histogram and 32 KiB of compression
/// at level 1, instead of compressing the whole blob. Blobs shorter than
/// [`PROBE_MIN_LEN`] are always worth trying.
pub fn worth_compressing(data: &[u8]) -> Result<bool> {
    if data.len() < PROBE_MIN_LEN {
        return Ok(true);
    }
    let mut sample = [0u8; PROBE_PIECES * PROBE_PIECE_LEN];
    let stride = (data.len() - PROBE_PIECE_LEN) / (PROBE_PIECES - 1);
    for (i, piece) in sample.chunks_exact_mut(PROBE_PIECE_LEN).enumerate() {
        let at = i * stride;
        piece.copy_from_slice(&data[at..at + PROBE_PIECE_LEN]);
    }
    if entropy_bits_per_byte(&sample) < PROBE_LOW_ENTROPY {
        return Ok(true);
    }
    let mut out = [0u8; PROBE_PIECES * PROBE_PIECE_LEN + 1024];
    let mut compressed_len = |comp: &mut zstd::bulk::Compressor<'static>, input: &[u8]| {
        comp.compress_to_buffer(input, &mut out[..])
            .map_err(|e| Error::Compression(e.to_string()))
    };
    PROBE.with(|p| {
        let mut p = p.borrow_mut();
        if p.is_none() {
            *p = Some(
                zstd::bulk::Compressor::new(1).map_err(|e| Error::Compression(e.to_string()))?,
            );
        }
        let Some(comp) = p.as_mut() else {
            return Err(Error::Compression("no probe compressor".into()));
        };
        // Repeats across the sample (random bytes that recur)...
        if compressed_len(comp, &sample[..])? + sample.len() / 64 < sample.len() {
            return Ok(true);
        }
        // ...or one piece that shrinks by an eighth (text or zeros between
        // compressed data).
        for piece in sample.chunks_exact(PROBE_PIECE_LEN) {
            if compressed_len(comp, piece)? + PROBE_PIECE_LEN / 8 < PROBE_PIECE_LEN {
                return Ok(true);
            }
        }
        Ok(false)
    })
}

/// Order-0 (byte histogram) entropy of `data`, in bits per byte.
fn entropy_bits_per_byte(data: &[u8]) -> f64 {
    // Four histograms, so that runs of one byte do not serialise the
    // increments on one counter.
    let mut counts = [[0u32; 256]; 4];
    let mut quads = data.chunks_exact(4);
    for q in &mut quads {
        counts[0][usize::from(q[0])] += 1;
        counts[1][usize::from(q[1])] += 1;
        counts[2][usize::from(q[2])] += 1;
        counts[3][usize::from(q[3])] += 1;
    }
    for &b in quads.remainder() {
        counts[0][usize::from(b)] += 1;
    }
    let n = data.len() as f64;
    (0..256)
        .map(|i| counts[0][i] + counts[1][i] + counts[2][i] + counts[3][i])
        .filter(|&c| c > 0)
        .map(|c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

thread_local! {
    /// Compressed output, reused from blob to blob.
    static COMPRESSED: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
    static COMPRESSOR: RefCell<Option<(ZstdParams, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

/// Compress `data` into `out` (replacing what it held).
fn compress_into(params: ZstdParams, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(p, _)| *p) != Some(params) {
            let zerr = |e: std::io::Error| Error::Compression(e.to_string());
            let mut comp = zstd::bulk::Compressor::new(params.level).map_err(zerr)?;
            if let Some(log) = params.table_log {
                use zstd::zstd_safe::CParameter;
                comp.set_parameter(CParameter::HashLog(log)).map_err(zerr)?;
                comp.set_parameter(CParameter::ChainLog(log))
                    .map_err(zerr)?;
            }
            *c = Some((params, comp));
        }
        out.clear();
        out.reserve(zstd::zstd_safe::compress_bound(data.len()));
        match c.as_mut() {
            Some((_, comp)) => comp
                .compress_to_buffer(data, out)
                .map(|_| ())
                .map_err(|e| Error::Compression(e.to_string())),
            None => Err(Error::Compression("no compressor".into())),
        }
    })
}

thread_local! {
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Decompress one zstd frame into at most `capacity` bytes. The context is
/// made once per thread: creating one per blob cost a tenth of
/// `check --read-data`.
fn decompress(frame: &[u8], capacity: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decompress_into(frame, capacity, &mut out)?;
    Ok(out)
}

/// [`decompress`] into `out` (replacing what it held), reusing its memory.
fn decompress_into(frame: &[u8], capacity: usize, out: &mut Vec<u8>) -> Result<()> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = Some(
                zstd::bulk::Decompressor::new().map_err(|e| Error::Compression(e.to_string()))?,
            );
        }
        out.clear();
        out.reserve(capacity);
        match d.as_mut() {
            Some(d) => d
                .decompress_to_buffer(frame, out)
                .map_err(|e| Error::Compression(e.to_string()))?,
            None => return Err(Error::Compression("no decompressor".into())),
        };
        Ok(())
    })
}

/// Compress `plaintext` with `params` when `worth` (and the level is not
/// 0), keeping the compressed body only when it saves more than 1/32, and
/// encrypt the body with the AAD `aad` gives for the final flags: `flags`,
/// plus [`BlobFlags::COMPRESSED`] when compressed. Returns the flags and
/// the envelope.
fn compress_and_seal<A: AsRef<[u8]>>(
    key: &MasterKey,
    params: ZstdParams,
    plaintext: &[u8],
    worth: bool,
    mut flags: BlobFlags,
    aad: impl FnOnce(BlobFlags) -> A,
) -> Result<(BlobFlags, Vec<u8>)> {
    // This thread's buffer, taken (not borrowed) so that a nested call
    // cannot find it in use; put back for the next blob.
    let mut scratch = COMPRESSED.take();
    let compressed = params.level != 0 && worth && {
        compress_into(params, plaintext, &mut scratch)?;
        scratch.len() + plaintext.len() / 32 < plaintext.len()
    };
    if compressed {
        flags.0 |= BlobFlags::COMPRESSED;
    }
    let body = if compressed { &scratch[..] } else { plaintext };
    let bytes = key.seal(aad(flags).as_ref(), body)?;
    COMPRESSED.set(scratch);
    Ok((flags, bytes))
}

/// Hash, compress (at `level`; 0 = never) and encrypt a blob. A blob whose
/// sample does not compress is not compressed ([`worth_compressing`]);
/// compression is kept only when it saves at least 1/32 of the plaintext.
pub fn seal_blob(
    key: &MasterKey,
    blob_type: BlobType,
    plaintext: &[u8],
    level: i32,
) -> Result<SealedBlob> {
    let id = key.blob_id(plaintext);
    seal_blob_with_id(key, blob_type, id, plaintext, level)
}

/// [`seal_blob`] for a caller that already computed the id.
pub fn seal_blob_with_id(
    key: &MasterKey,
    blob_type: BlobType,
    id: Id,
    plaintext: &[u8],
    level: i32,
) -> Result<SealedBlob> {
    seal_blob_in_mode(
        key,
        blob_type,
        id,
        plaintext,
        Compression::from_level(level),
    )
}

/// [`seal_blob_with_id`] in a [`Compression`] mode rather than at a level.
pub fn seal_blob_in_mode(
    key: &MasterKey,
    blob_type: BlobType,
    id: Id,
    plaintext: &[u8],
    mode: Compression,
) -> Result<SealedBlob> {
    let params = mode.zstd();
    let raw_len = u32::try_from(plaintext.len())
        .ok()
        .filter(|l| *l <= MAX_BLOB_LEN)
        .ok_or_else(|| crate::error::malformed("blob", "plaintext larger than 1 GiB"))?;
    // The probe only where compression is on.
    let worth = params.level != 0 && !plaintext.is_empty() && worth_compressing(plaintext)?;
    let (flags, bytes) = compress_and_seal(key, params, plaintext, worth, BlobFlags(0), |f| {
        blob_aad(blob_type, f, raw_len, &id)
    })?;
    Ok(SealedBlob {
        id,
        blob_type,
        flags,
        raw_len,
        bytes,
    })
}

/// Decrypt, decompress and verify a blob read from a pack. Fails if any
/// byte, the id, the type, the flags or the length were changed.
pub fn open_blob(
    key: &MasterKey,
    blob_type: BlobType,
    id: &Id,
    flags: BlobFlags,
    raw_len: u32,
    stored: &[u8],
) -> Result<Vec<u8>> {
    check_header(flags, raw_len)?;
    if flags.grouped() {
        return with_group_member(key, blob_type, id, flags, raw_len, stored, <[u8]>::to_vec);
    }
    let plain = key.open(&blob_aad(blob_type, flags, raw_len, id), stored, "blob")?;
    let data = if flags.compressed() {
        decompress(&plain, raw_len as usize)?
    } else {
        plain
    };
    verify(key, id, raw_len, &data)?;
    Ok(data)
}

/// [`open_blob`] without copies, for a reader that holds many blobs in
/// one buffer: decrypts `stored` where it lies (its bytes are lost) and
/// decompresses into `scratch`, whose memory is reused from blob to blob.
/// Returns the verified plaintext, in `stored` or in `scratch`. A member of
/// a group ([`BlobFlags::GROUPED`]) is copied into `scratch` and `stored`
/// is left as it was, since the group's other members are in it too.
pub fn open_blob_in_place<'a>(
    key: &MasterKey,
    blob_type: BlobType,
    id: &Id,
    flags: BlobFlags,
    raw_len: u32,
    stored: &'a mut [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8]> {
    check_header(flags, raw_len)?;
    if flags.grouped() {
        with_group_member(key, blob_type, id, flags, raw_len, stored, |d| {
            scratch.clear();
            scratch.extend_from_slice(d);
        })?;
        return Ok(scratch.as_slice());
    }
    let plain = key.open_in_place(&blob_aad(blob_type, flags, raw_len, id), stored, "blob")?;
    let data = if flags.compressed() {
        decompress_into(plain, raw_len as usize, scratch)?;
        scratch.as_slice()
    } else {
        plain
    };
    verify(key, id, raw_len, data)?;
    Ok(data)
}

fn check_header(flags: BlobFlags, raw_len: u32) -> Result<()> {
    if raw_len > MAX_BLOB_LEN || (flags.grouped() && raw_len > MAX_GROUP_LEN) {
        return Err(crate::error::malformed("blob", "length larger than 1 GiB"));
    }
    // A flag this version does not define could change how the blob must be
    // decoded, so refuse it rather than ignore it.
    flags.validate().map(|_| ())
}

/// The plaintext has the recorded length and hashes to its id.
fn verify(key: &MasterKey, id: &Id, raw_len: u32, data: &[u8]) -> Result<()> {
    if data.len() != raw_len as usize {
        return Err(crate::error::malformed(
            "blob",
            format!("length {} differs from recorded {raw_len}", data.len()),
        ));
    }
    let actual = key.blob_id(data);
    if actual != *id {
        return Err(Error::IdMismatch {
            expected: *id,
            actual,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressible_and_incompressible_round_trip() {
        let k = MasterKey::generate().unwrap();
        let text = b"lifeboat ".repeat(10_000);
        let s = seal_blob(&k, BlobType::Data, &text, 3).unwrap();
        assert!(s.flags.compressed());
        assert!(s.bytes.len() < text.len() / 10);
        assert_eq!(
            open_blob(&k, BlobType::Data, &s.id, s.flags, s.raw_len, &s.bytes).unwrap(),
            text
        );

        let mut noise = vec![0u8; 100_000];
        crate::random::fill_random(&mut noise).unwrap();
        let s = seal_blob(&k, BlobType::Data, &noise, 3).unwrap();
        assert!(!s.flags.compressed(), "incompressible data is stored raw");
        assert_eq!(s.bytes.len(), noise.len() + crate::ENVELOPE_OVERHEAD);
        assert_eq!(
            open_blob(&k, BlobType::Data, &s.id, s.flags, s.raw_len, &s.bytes).unwrap(),
            noise
        );
    }

    #[test]
    fn in_place_opening_matches_and_reuses_scratch() {
        let k = MasterKey::generate().unwrap();
        let text = b"lifeboat ".repeat(10_000);
        let mut noise = vec![0u8; 50_000];
        crate::random::fill_random(&mut noise).unwrap();
        let mut scratch = Vec::new();
        // Compressed, raw, then compressed again into the same scratch.
        for plain in [&text[..], &noise[..], &text[..200]] {
            let s = seal_blob(&k, BlobType::Data, plain, 3).unwrap();
            let mut open = |mut stored: Vec<u8>| {
                let (id, f, l) = (&s.id, s.flags, s.raw_len);
                open_blob_in_place(&k, BlobType::Data, id, f, l, &mut stored, &mut scratch)
                    .map(|d| d.to_vec())
            };
            assert_eq!(open(s.bytes.clone()).unwrap(), plain);
            // Any flipped bit, in the nonce, the body or the tag, is refused.
            for at in [0, s.bytes.len() / 2, s.bytes.len() - 1] {
                let mut bad = s.bytes.clone();
                bad[at] ^= 0x10;
                assert!(open(bad).is_err(), "flip at {at} accepted");
            }
            assert!(open(s.bytes[..10].to_vec()).is_err());
        }
    }

    fn text(len: usize) -> Vec<u8> {
        let mut noise = vec![0u8; len / 4];
        crate::random::fill_random(&mut noise).unwrap();
        let words = [
            "pack ", "blob ", "index ", "tree\n", "zstd ", "probe ", "level ",
        ];
        let mut out = Vec::with_capacity(len + 8);
        for b in noise.iter().cycle() {
            if out.len() >= len {
                break;
            }
            out.extend_from_slice(words[*b as usize % words.len()].as_bytes());
        }
        out.truncate(len);
        out
    }

    fn noise(len: usize) -> Vec<u8> {
        let mut n = vec![0u8; len];
        crate::random::fill_random(&mut n).unwrap();
        n
    }

    #[test]
    fn entropy_of_known_histograms() {
        assert_eq!(entropy_bits_per_byte(&[7u8; 1000]), 0.0);
        let two: Vec<u8> = (0..1000).map(|i| (i % 2) as u8).collect();
        assert!((entropy_bits_per_byte(&two) - 1.0).abs() < 1e-9);
        let all: Vec<u8> = (0..4096).map(|i| (i % 256) as u8).collect();
        assert!((entropy_bits_per_byte(&all) - 8.0).abs() < 1e-9);
        assert!(entropy_bits_per_byte(&noise(16384)) > PROBE_LOW_ENTROPY);
        assert!(entropy_bits_per_byte(&text(16384)) < PROBE_LOW_ENTROPY);
    }

    #[test]
    fn the_probe_skips_random_data_and_keeps_text() {
        assert!(!worth_compressing(&noise(1 << 20)).unwrap());
        assert!(!worth_compressing(&noise(PROBE_MIN_LEN)).unwrap());
        assert!(worth_compressing(&text(1 << 20)).unwrap());
        assert!(worth_compressing(&text(PROBE_MIN_LEN)).unwrap());
        // Below the threshold every blob is worth trying.
        assert!(worth_compressing(&noise(PROBE_MIN_LEN - 1)).unwrap());
        // A blob with a compressible quarter is compressed, wherever the
        // quarter lies.
        for at in 0..4 {
            let mut mixed = noise(1 << 20);
            let q = mixed.len() / 4;
            mixed[at * q..(at + 1) * q].copy_from_slice(&text(q));
            assert!(worth_compressing(&mixed).unwrap(), "quarter {at}");
        }
        // Text in scattered 4 KiB blocks, a tenth of them, as in a block
        // image of small files.
        let mut image = noise(1 << 20);
        for (i, block) in image.chunks_exact_mut(4096).enumerate() {
            if i % 10 == 3 {
                block.copy_from_slice(&text(4096));
            }
        }
        assert!(worth_compressing(&image).unwrap());
        // Zeros are compressible.
        assert!(worth_compressing(&vec![0u8; 1 << 20]).unwrap());
        // Random bytes that repeat: a flat histogram, but zstd's look at
        // the sample finds the repeats.
        let repeated = noise(8192).repeat(32);
        assert!(entropy_bits_per_byte(&repeated) > PROBE_LOW_ENTROPY);
        assert!(worth_compressing(&repeated).unwrap());
    }

    #[test]
    fn sealing_follows_the_probe_at_every_level() {
        let k = MasterKey::generate().unwrap();
        let (text, noise) = (text(300_000), noise(300_000));
        for mode in [
            Compression::Fastest,
            Compression::Auto,
            Compression::Better,
            Compression::Max,
            Compression::Level(-7),
            Compression::Level(22),
        ] {
            let seal = |p: &[u8]| seal_blob_in_mode(&k, BlobType::Data, k.blob_id(p), p, mode);
            let s = seal(&noise).unwrap();
            assert!(!s.flags.compressed(), "{mode}");
            assert_eq!(s.bytes.len(), noise.len() + crate::ENVELOPE_OVERHEAD);
            let t = seal(&text).unwrap();
            assert!(t.flags.compressed(), "{mode}");
            for (s, plain) in [(&s, &noise), (&t, &text)] {
                let back = open_blob(&k, BlobType::Data, &s.id, s.flags, s.raw_len, &s.bytes);
                assert_eq!(back.unwrap(), *plain, "{mode}");
            }
        }
        let off = seal_blob(&k, BlobType::Data, &text, Compression::Off.level()).unwrap();
        assert!(!off.flags.compressed());
    }

    #[test]
    fn auto_is_level_2_with_small_tables_for_every_source() {
        assert_eq!(
            Compression::Auto.zstd(),
            ZstdParams {
                level: 2,
                table_log: Some(15)
            }
        );
        assert_eq!(Compression::Auto.to_string(), "auto");
        // Only `auto` narrows the tables; a number is zstd's own level.
        for m in [
            Compression::Fastest,
            Compression::Max,
            Compression::Level(2),
        ] {
            assert_eq!(m.zstd().table_log, None, "{m}");
        }
        // Its frames decode like any other, with the small tables, and
        // they are not larger than level 1's.
        let k = MasterKey::generate().unwrap();
        let text = b"/registry/pods/ns-1/pod-0a{\"phase\":\"Running\"} ".repeat(3000);
        let s = seal_blob_in_mode(
            &k,
            BlobType::Data,
            k.blob_id(&text),
            &text,
            Compression::Auto,
        )
        .unwrap();
        assert!(s.flags.compressed());
        let fastest = seal_blob(&k, BlobType::Data, &text, 1).unwrap();
        assert!(s.bytes.len() <= fastest.bytes.len());
        let back = open_blob(&k, BlobType::Data, &s.id, s.flags, s.raw_len, &s.bytes).unwrap();
        assert_eq!(back, text);
    }

    #[test]
    fn modes_parse_print_and_map_to_levels() {
        for (s, mode, level) in [
            ("auto", Compression::Auto, Compression::AUTO_LEVEL),
            ("fastest", Compression::Fastest, 1),
            ("better", Compression::Better, Compression::BETTER_LEVEL),
            ("max", Compression::Max, Compression::MAX_LEVEL),
            ("off", Compression::Off, 0),
            ("5", Compression::Level(5), 5),
            ("-7", Compression::Level(-7), -7),
            ("22", Compression::Level(22), 22),
        ] {
            let parsed: Compression = s.parse().unwrap();
            assert_eq!(parsed, mode);
            assert_eq!(parsed.level(), level);
            assert_eq!(parsed.to_string(), s);
            let json = serde_json::to_string(&mode).unwrap();
            assert_eq!(serde_json::from_str::<Compression>(&json).unwrap(), mode);
        }
        assert_eq!("0".parse::<Compression>().unwrap(), Compression::Off);
        assert_eq!(" MAX ".parse::<Compression>().unwrap(), Compression::Max);
        for bad in ["", "23", "-8", "fast", "1.0", "level3"] {
            let e = bad.parse::<Compression>().unwrap_err();
            assert!(e.to_string().contains("auto, fastest"), "{bad}: {e}");
        }
        assert!(serde_json::from_str::<Compression>("\"huge\"").is_err());
        assert_eq!(Compression::default(), Compression::Auto);
    }

    #[test]
    fn swapping_id_or_type_is_detected() {
        let k = MasterKey::generate().unwrap();
        let s = seal_blob(&k, BlobType::Data, b"one", 3).unwrap();
        let other = k.blob_id(b"two");
        assert!(open_blob(&k, BlobType::Data, &other, s.flags, s.raw_len, &s.bytes).is_err());
        assert!(open_blob(&k, BlobType::Tree, &s.id, s.flags, s.raw_len, &s.bytes).is_err());
        assert!(open_blob(&k, BlobType::Data, &s.id, BlobFlags(1), s.raw_len, &s.bytes).is_err());
        assert!(open_blob(&k, BlobType::Data, &s.id, s.flags, 4, &s.bytes).is_err());
    }

    /// Plaintexts of a group: text, empty, noise, text again.
    fn members() -> Vec<Vec<u8>> {
        let mut noise = vec![0u8; 3000];
        crate::random::fill_random(&mut noise).unwrap();
        vec![
            b"fn main() { println!(\"hello\"); }\n".repeat(40),
            Vec::new(),
            noise,
            b"fn main() { println!(\"world\"); }\n".repeat(30),
        ]
    }

    fn sealed_group(k: &MasterKey, plains: &[Vec<u8>]) -> SealedGroup {
        let mut g = GroupBuilder::new(BlobType::Data);
        for p in plains {
            g.push(k.blob_id(p), p).unwrap();
        }
        let s = g.seal(k, Compression::Auto).unwrap();
        assert!(g.is_empty(), "sealing empties the builder");
        s
    }

    #[test]
    fn group_members_open_alone_and_in_place() {
        let k = MasterKey::generate().unwrap();
        let plains = members();
        let g = sealed_group(&k, &plains);
        assert_eq!(
            g.flags,
            BlobFlags(BlobFlags::GROUPED | BlobFlags::COMPRESSED)
        );
        assert_eq!(g.members.len(), plains.len());
        // The noise stays as it is; the text members compress together.
        let text: usize = plains[0].len() + plains[3].len();
        assert!(
            g.bytes.len() < plains[2].len() + text / 4,
            "{}",
            g.bytes.len()
        );
        let mut scratch = Vec::new();
        // Twice round, so that the second pass is answered by the opened group.
        for _ in 0..2 {
            for (p, (id, len)) in plains.iter().zip(&g.members) {
                assert_eq!(*len as usize, p.len());
                let opened = open_blob(&k, BlobType::Data, id, g.flags, *len, &g.bytes).unwrap();
                assert_eq!(&opened, p);
                let mut stored = g.bytes.clone();
                let (f, l) = (g.flags, *len);
                let data =
                    open_blob_in_place(&k, BlobType::Data, id, f, l, &mut stored, &mut scratch)
                        .unwrap();
                assert_eq!(data, &p[..]);
                assert_eq!(
                    stored, g.bytes,
                    "a group's bytes are left for its other members"
                );
            }
        }
    }

    #[test]
    fn a_damaged_group_fails_every_member_even_after_a_good_copy_was_opened() {
        let k = MasterKey::generate().unwrap();
        let plains = members();
        let g = sealed_group(&k, &plains);
        let (id, len) = g.members[0];
        // The good copy is opened first, so its plaintext is at hand.
        assert!(open_blob(&k, BlobType::Data, &id, g.flags, len, &g.bytes).is_ok());
        for at in [0, g.bytes.len() / 2, g.bytes.len() - 1] {
            let mut bad = g.bytes.clone();
            bad[at] ^= 0x10;
            for (id, len) in &g.members {
                assert!(open_blob(&k, BlobType::Data, id, g.flags, *len, &bad).is_err());
            }
        }
        assert!(open_blob(&k, BlobType::Data, &id, g.flags, len, &g.bytes[..50]).is_err());
        // The flags and the type are bound to the envelope.
        let raw_flag = BlobFlags(BlobFlags::GROUPED);
        assert!(open_blob(&k, BlobType::Data, &id, raw_flag, len, &g.bytes).is_err());
        assert!(open_blob(&k, BlobType::Tree, &id, g.flags, len, &g.bytes).is_err());
        // A blob that is not a member, and a member at the wrong length.
        let other = k.blob_id(b"not a member");
        assert!(open_blob(&k, BlobType::Data, &other, g.flags, 12, &g.bytes).is_err());
        assert!(open_blob(&k, BlobType::Data, &id, g.flags, len + 1, &g.bytes).is_err());
        // An unknown flag beside the group flag is refused.
        assert!(BlobFlags(BlobFlags::GROUPED | 4).validate().is_err());
        assert!(BlobFlags(BlobFlags::GROUPED | 1).validate().is_ok());
    }

    #[test]
    fn an_incompressible_group_is_stored_raw() {
        let k = MasterKey::generate().unwrap();
        let mut noise = vec![0u8; 40_000];
        crate::random::fill_random(&mut noise).unwrap();
        let plains = vec![noise[..20_000].to_vec(), noise[20_000..].to_vec()];
        let g = sealed_group(&k, &plains);
        assert_eq!(g.flags, BlobFlags(BlobFlags::GROUPED));
        for (p, (id, len)) in plains.iter().zip(&g.members) {
            assert_eq!(
                &open_blob(&k, BlobType::Data, id, g.flags, *len, &g.bytes).unwrap(),
                p
            );
        }
        // Off never compresses.
        let mut b = GroupBuilder::new(BlobType::Data);
        b.push(k.blob_id(b"aaaa"), &b"a".repeat(10_000)).unwrap();
        assert_eq!(
            b.seal(&k, Compression::Off).unwrap().flags,
            BlobFlags(BlobFlags::GROUPED)
        );
    }

    #[test]
    fn malformed_group_tables_are_refused() {
        let k = MasterKey::generate().unwrap();
        let flags = BlobFlags(BlobFlags::GROUPED);
        let id = k.blob_id(b"abc");
        let seal = |plain: &[u8]| k.seal(&group_aad(BlobType::Data, flags), plain).unwrap();
        let table = |count: u32, entries: &[(Id, u32)], body: &[u8]| {
            let mut p = count.to_le_bytes().to_vec();
            for (id, len) in entries {
                p.extend_from_slice(&id.0);
                p.extend_from_slice(&len.to_le_bytes());
            }
            p.extend_from_slice(body);
            p
        };
        let good = table(1, &[(id, 3)], b"abc");
        assert_eq!(
            open_blob(&k, BlobType::Data, &id, flags, 3, &seal(&good)).unwrap(),
            b"abc"
        );
        for bad in [
            Vec::new(),                          // no count
            table(2, &[(id, 3)], b"abc"),        // count beyond the table
            table(1, &[(id, 4)], b"abc"),        // member past the end
            table(1, &[(id, 3)], b"abcd"),       // bytes after the last member
            table(u32::MAX, &[(id, 3)], b"abc"), // count that overflows
        ] {
            assert!(open_blob(&k, BlobType::Data, &id, flags, 3, &seal(&bad)).is_err());
        }
        // A group may not pass 4 MiB.
        let mut b = GroupBuilder::new(BlobType::Data);
        let big = vec![0u8; MAX_GROUP_LEN as usize];
        assert!(b.push(id, &big).is_err());
    }
}
