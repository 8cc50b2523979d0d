//! Models for the round-trip targets: plain structs that `arbitrary` can
//! fill, turned into the format's types, plus the independent statement of
//! when a decoder must accept what an encoder wrote.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use lifeboat_format::{
    BlobFlags, BlobType, ChunkerParams, Config, ContentPart, Id, IndexEntry, IndexPack,
    IndexSegment, KdfParams, KeySlot, MarkedObject, Node, NodeKind, PruneLock, PruneMarks,
    Snapshot, SnapshotSummary, SourceKind, Timestamp, Tree, Xattr,
};

use crate::record::{RecordPayload, VerifiedPack};

/// A version number that is 1 most of the time, anything otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Version(pub u32);

impl<'a> Arbitrary<'a> for Version {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        Ok(Version(if u.ratio(7, 8)? { 1 } else { u.arbitrary()? }))
    }
}

/// A finite `f64` (JSON cannot carry NaN or infinities; see README.md).
#[derive(Debug, Clone, Copy)]
pub struct Finite(pub f64);

impl<'a> Arbitrary<'a> for Finite {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let v: f64 = u.arbitrary()?;
        Ok(Finite(if v.is_finite() { v } else { 0.0 }))
    }
}

/// One piece of file content.
#[derive(Debug, Clone, Arbitrary)]
pub enum PartModel {
    /// A data blob.
    Blob([u8; 32], u32),
    /// A hole.
    Hole(u64),
}

/// A directory entry, every field free.
#[derive(Debug, Clone, Arbitrary)]
pub struct NodeModel {
    name: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u32,
    gid: u32,
    user: Option<String>,
    group: Option<String>,
    times: [(i64, u32); 3],
    size: u64,
    device_id: u64,
    inode: u64,
    links: u64,
    rdev: u64,
    symlink_target: Option<Vec<u8>>,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    content: Vec<PartModel>,
    subtree: Option<[u8; 32]>,
}

impl NodeModel {
    /// The format's node.
    pub fn node(&self) -> Node {
        let kinds = [
            NodeKind::File,
            NodeKind::Dir,
            NodeKind::Symlink,
            NodeKind::Fifo,
            NodeKind::Socket,
            NodeKind::CharDevice,
            NodeKind::BlockDevice,
        ];
        let ts = |(sec, nsec): (i64, u32)| Timestamp { sec, nsec };
        let mut n = Node::new(
            self.name.clone(),
            kinds[usize::from(self.kind) % kinds.len()],
        );
        n.mode = self.mode;
        n.uid = self.uid;
        n.gid = self.gid;
        n.user = self.user.clone();
        n.group = self.group.clone();
        n.mtime = ts(self.times[0]);
        n.atime = ts(self.times[1]);
        n.ctime = ts(self.times[2]);
        n.size = self.size;
        n.device_id = self.device_id;
        n.inode = self.inode;
        n.links = self.links;
        n.rdev = self.rdev;
        n.symlink_target = self.symlink_target.clone();
        n.xattrs = self
            .xattrs
            .iter()
            .map(|(name, value)| Xattr {
                name: name.clone(),
                value: value.clone(),
            })
            .collect();
        n.content = self
            .content
            .iter()
            .map(|p| match *p {
                PartModel::Blob(id, len) => ContentPart::Blob { id: Id(id), len },
                PartModel::Hole(len) => ContentPart::Hole { len },
            })
            .collect();
        n.subtree = self.subtree.map(Id);
        n
    }
}

/// Whether `name` is a valid entry name: the model of `Tree::decode`'s rule.
pub fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.iter().any(|b| *b == b'/' || *b == 0)
}

/// A tree, sorted through `Tree::new` or left in the model's order.
#[derive(Debug, Clone, Arbitrary)]
pub struct TreeModel {
    version: Version,
    nodes: Vec<NodeModel>,
    sort: bool,
}

impl TreeModel {
    /// The tree, and whether `Tree::decode` must accept its encoding:
    /// version 1, names valid, strictly increasing.
    pub fn tree(&self) -> (Tree, bool) {
        let mut nodes: Vec<Node> = self.nodes.iter().map(NodeModel::node).collect();
        if self.sort {
            nodes.sort_by(|a, b| a.name.cmp(&b.name));
        }
        let ok = self.version.0 == 1
            && nodes.iter().all(|n| valid_name(&n.name))
            && nodes.windows(2).all(|w| w[0].name < w[1].name);
        (
            Tree {
                version: self.version.0,
                nodes,
            },
            ok,
        )
    }
}

/// A snapshot, every field free (summary times finite).
#[derive(Debug, Clone, Arbitrary)]
pub struct SnapshotModel {
    version: Version,
    time: String,
    tree: [u8; 32],
    paths: Vec<String>,
    hostname: String,
    username: String,
    tags: Vec<String>,
    source: u8,
    source_meta: BTreeMap<String, String>,
    parent: Option<[u8; 32]>,
    excludes: Vec<String>,
    incomplete: Vec<String>,
    summary: Option<([u64; 11], String, String, Finite)>,
    program: String,
    /// zstd level of the encoder (0 = none).
    pub level: u8,
}

impl SnapshotModel {
    /// The snapshot.
    pub fn snapshot(&self) -> Snapshot {
        let sources = [
            SourceKind::Fs,
            SourceKind::Stdin,
            SourceKind::Block,
            SourceKind::Etcd,
        ];
        Snapshot {
            version: self.version.0,
            time: self.time.clone(),
            tree: Id(self.tree),
            paths: self.paths.clone(),
            hostname: self.hostname.clone(),
            username: self.username.clone(),
            tags: self.tags.clone(),
            source: sources[usize::from(self.source) % sources.len()],
            source_meta: self.source_meta.clone(),
            parent: self.parent.map(Id),
            excludes: self.excludes.clone(),
            incomplete: self.incomplete.clone(),
            summary: self
                .summary
                .as_ref()
                .map(|(n, start, end, d)| SnapshotSummary {
                    files_new: n[0],
                    files_changed: n[1],
                    files_unchanged: n[2],
                    dirs: n[3],
                    bytes_total: n[4],
                    bytes_read: n[5],
                    bytes_added: n[6],
                    bytes_stored: n[7],
                    data_blobs: n[8],
                    tree_blobs: n[9],
                    errors: n[10],
                    start: start.clone(),
                    end: end.clone(),
                    duration_secs: d.0,
                }),
            program: self.program.clone(),
        }
    }
}

/// An index segment, flags unvalidated.
#[derive(Debug, Clone, Arbitrary)]
pub struct IndexModel {
    version: Version,
    supersedes: Vec<[u8; 32]>,
    packs: Vec<([u8; 32], bool, u64, Vec<([u8; 32], u8, u32, u32, u32)>)>,
    /// Whether flags other than "compressed" and "grouped" may appear.
    wild_flags: bool,
}

impl IndexModel {
    /// The segment, and whether `IndexSegment::decode` must accept it:
    /// version 1 and only defined flags.
    pub fn segment(&self) -> (IndexSegment, bool) {
        let seg = IndexSegment {
            version: self.version.0,
            supersedes: self.supersedes.iter().copied().map(Id).collect(),
            packs: self
                .packs
                .iter()
                .map(|(id, tree, size, blobs)| IndexPack {
                    id: Id(*id),
                    blob_type: if *tree {
                        BlobType::Tree
                    } else {
                        BlobType::Data
                    },
                    size: *size,
                    blobs: blobs
                        .iter()
                        .map(|&(id, flags, offset, stored_len, raw_len)| IndexEntry {
                            id: Id(id),
                            flags: BlobFlags(if self.wild_flags {
                                flags
                            } else {
                                flags & (BlobFlags::COMPRESSED | BlobFlags::GROUPED)
                            }),
                            offset,
                            stored_len,
                            raw_len,
                        })
                        .collect(),
                })
                .collect(),
        };
        let ok = seg.version == 1
            && seg
                .packs
                .iter()
                .flat_map(|p| &p.blobs)
                .all(|e| e.flags.0 & !(BlobFlags::COMPRESSED | BlobFlags::GROUPED) == 0);
        (seg, ok)
    }
}

/// Prune marks.
#[derive(Debug, Clone, Arbitrary)]
pub struct MarksModel {
    version: Version,
    created: u64,
    supersedes: Vec<[u8; 32]>,
    objects: Vec<(String, u64, u64, u64)>,
}

impl MarksModel {
    /// The marks.
    pub fn marks(&self) -> PruneMarks {
        PruneMarks {
            version: self.version.0,
            created: self.created,
            supersedes: self.supersedes.iter().copied().map(Id).collect(),
            objects: self
                .objects
                .iter()
                .map(|(path, size, marked, delete_after)| MarkedObject {
                    path: path.clone(),
                    size: *size,
                    marked: *marked,
                    delete_after: *delete_after,
                })
                .collect(),
        }
    }
}

/// The prune lock.
#[derive(Debug, Clone, Arbitrary)]
pub struct LockModel {
    version: Version,
    nonce: [u8; 32],
    created: u64,
    ttl_secs: u64,
    hostname: String,
}

impl LockModel {
    /// The lock.
    pub fn lock(&self) -> PruneLock {
        PruneLock {
            version: self.version.0,
            nonce: Id(self.nonce),
            created: self.created,
            ttl_secs: self.ttl_secs,
            hostname: self.hostname.clone(),
        }
    }
}

/// The repository config.
#[derive(Debug, Clone, Arbitrary)]
pub struct ConfigModel {
    version: Version,
    id: [u8; 32],
    sizes: [u32; 3],
    compression_level: i32,
    pack_size: u32,
    created: String,
    keyed: bool,
    compression: Option<u8>,
    append_only: bool,
}

/// A compression mode that parses back as itself: the named modes, or a
/// level from 1 to 22.
fn compression_of(n: u8) -> lifeboat_format::Compression {
    use lifeboat_format::Compression as C;
    match n % 27 {
        0 => C::Auto,
        1 => C::Fastest,
        2 => C::Better,
        3 => C::Max,
        4 => C::Off,
        l => C::Level(i32::from(l) - 4),
    }
}

impl ConfigModel {
    /// The config.
    pub fn config(&self) -> Config {
        Config {
            version: self.version.0,
            id: Id(self.id),
            chunker: ChunkerParams {
                min_size: self.sizes[0],
                avg_size: self.sizes[1],
                max_size: self.sizes[2],
            },
            chunker_gear: if self.keyed {
                lifeboat_format::ChunkerGear::Keyed
            } else {
                lifeboat_format::ChunkerGear::Seeded
            },
            compression_level: self.compression_level,
            compression: self.compression.map(compression_of),
            pack_size: self.pack_size,
            created: self.created.clone(),
            append_only: self.append_only,
        }
    }
}

/// A key slot's stored fields (nothing is opened: see the `keyslot_json`
/// target for that).
#[derive(Debug, Clone, Arbitrary)]
pub struct SlotModel {
    version: u32,
    kdf: String,
    params: [u32; 3],
    salt: Vec<u8>,
    wrapped_key: Vec<u8>,
    created: String,
    hostname: String,
    username: String,
    append_only: bool,
    public_key: Vec<u8>,
}

impl SlotModel {
    /// The slot.
    pub fn slot(&self) -> KeySlot {
        KeySlot {
            version: self.version,
            kdf: self.kdf.clone(),
            params: KdfParams {
                memory_kib: self.params[0],
                iterations: self.params[1],
                parallelism: self.params[2],
            },
            salt: self.salt.clone(),
            kind: if self.append_only {
                lifeboat_format::SlotKind::AppendOnly
            } else {
                lifeboat_format::SlotKind::Full
            },
            public_key: self.public_key.clone(),
            wrapped_key: self.wrapped_key.clone(),
            grants: Vec::new(),
            created: self.created.clone(),
            hostname: self.hostname.clone(),
            username: self.username.clone(),
        }
    }
}

/// The verification record (see [`crate::record`]).
#[derive(Debug, Clone, Arbitrary)]
pub struct RecordModel {
    version: Version,
    packs: Vec<([u8; 32], u64, bool)>,
}

impl RecordModel {
    /// The record payload.
    pub fn record(&self) -> RecordPayload {
        RecordPayload {
            version: self.version.0,
            packs: self
                .packs
                .iter()
                .map(|&(id, verified, damaged)| VerifiedPack {
                    id: Id(id),
                    verified,
                    damaged,
                })
                .collect(),
        }
    }
}

/// One case of the `roundtrip_meta` target.
#[derive(Debug, Clone, Arbitrary)]
pub enum MetaCase {
    /// A tree blob's plaintext.
    Tree(TreeModel),
    /// A snapshot object.
    Snapshot(SnapshotModel),
    /// An index segment.
    Index(IndexModel),
    /// Prune marks.
    Marks(MarksModel),
    /// The prune lock.
    Lock(LockModel),
    /// The config.
    Config(ConfigModel),
    /// A key slot's JSON.
    Slot(SlotModel),
    /// A verification record.
    Record(RecordModel),
}

/// One blob of the `roundtrip_pack` model.
#[derive(Debug, Clone, Arbitrary)]
pub struct BlobModel {
    /// Plaintext.
    pub plain: Vec<u8>,
    /// How many times to repeat it (makes compressible blobs).
    pub repeat: u8,
    /// zstd level (0 = none), taken modulo 4.
    pub level: u8,
}

/// The `roundtrip_pack` model: blobs of one type, added in order.
#[derive(Debug, Clone, Arbitrary)]
pub struct PackModel {
    /// Tree or data pack.
    pub tree: bool,
    /// Build with `PackBuilder::hashed` instead of `new`.
    pub hashed: bool,
    /// Blobs.
    pub blobs: Vec<BlobModel>,
}
