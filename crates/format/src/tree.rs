use serde::{Deserialize, Serialize};

use crate::{Error, Id, Result};

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct Timestamp {
    /// Whole seconds (may be negative).
    pub sec: i64,
    /// Nanoseconds, 0..1e9.
    pub nsec: u32,
}

/// The kind of a directory entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeKind {
    /// A regular file.
    File,
    /// A directory; its entries are in `subtree`.
    Dir,
    /// A symbolic link; its target is in `symlink_target`.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix socket (recorded, restored as nothing).
    Socket,
    /// A character device (`rdev`).
    CharDevice,
    /// A block device (`rdev`).
    BlockDevice,
}

/// One piece of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContentPart {
    /// A data blob of `len` plaintext bytes.
    Blob {
        /// Blob id.
        id: Id,
        /// Plaintext length.
        len: u32,
    },
    /// `len` zero bytes, restored as a hole where the filesystem allows.
    Hole {
        /// Length in bytes.
        len: u64,
    },
}

impl ContentPart {
    /// Bytes this part contributes to the file.
    pub fn len(&self) -> u64 {
        match self {
            ContentPart::Blob { len, .. } => u64::from(*len),
            ContentPart::Hole { len } => *len,
        }
    }

    /// Whether the part is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An extended attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// Name bytes, e.g. `user.comment`.
    pub name: Vec<u8>,
    /// Value bytes.
    pub value: Vec<u8>,
}

/// One directory entry with everything needed to restore it exactly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// File name bytes (any bytes but `/` and NUL; not necessarily UTF-8).
    pub name: Vec<u8>,
    /// Entry kind.
    pub kind: NodeKind,
    /// Permission bits including set-id and sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Owner user name, when known.
    pub user: Option<String>,
    /// Owner group name, when known.
    pub group: Option<String>,
    /// Modification time.
    pub mtime: Timestamp,
    /// Access time.
    pub atime: Timestamp,
    /// Status change time (recorded, not restorable).
    pub ctime: Timestamp,
    /// Size in bytes (files: content length).
    pub size: u64,
    /// Device id of the filesystem holding the entry (`st_dev`).
    pub device_id: u64,
    /// Inode number.
    pub inode: u64,
    /// Hard link count.
    pub links: u64,
    /// Device number for device nodes (`st_rdev`).
    pub rdev: u64,
    /// Symlink target bytes.
    pub symlink_target: Option<Vec<u8>>,
    /// Extended attributes, sorted by name.
    pub xattrs: Vec<Xattr>,
    /// File content in order.
    pub content: Vec<ContentPart>,
    /// Directory contents.
    pub subtree: Option<Id>,
}

impl Node {
    /// A node of `kind` named `name` with every other field zero.
    pub fn new(name: impl Into<Vec<u8>>, kind: NodeKind) -> Node {
        Node {
            name: name.into(),
            kind,
            mode: 0,
            uid: 0,
            gid: 0,
            user: None,
            group: None,
            mtime: Timestamp::default(),
            atime: Timestamp::default(),
            ctime: Timestamp::default(),
            size: 0,
            device_id: 0,
            inode: 0,
            links: 0,
            rdev: 0,
            symlink_target: None,
            xattrs: Vec::new(),
            content: Vec::new(),
            subtree: None,
        }
    }

    /// The name as text, with invalid UTF-8 replaced.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A directory listing, encoded deterministically so equal directories give
/// equal tree blobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Tree {
    /// Tree encoding version (1).
    pub version: u32,
    /// Entries sorted by name bytes, no duplicates.
    pub nodes: Vec<Node>,
}

impl Tree {
    /// A version-1 tree of `nodes`, sorted.
    pub fn new(mut nodes: Vec<Node>) -> Tree {
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        Tree { version: 1, nodes }
    }

    /// postcard bytes (the plaintext of a tree blob).
    pub fn encode(&self) -> Result<Vec<u8>> {
        postcard::to_allocvec(self).map_err(|e| crate::error::malformed("tree", e))
    }

    /// Decode and validate (version, order, names).
    pub fn decode(bytes: &[u8]) -> Result<Tree> {
        let (t, rest): (Tree, &[u8]) =
            postcard::take_from_bytes(bytes).map_err(|e| crate::error::malformed("tree", e))?;
        if !rest.is_empty() {
            return Err(crate::error::malformed(
                "tree",
                "trailing bytes after the tree",
            ));
        }
        if t.version != 1 {
            return Err(Error::UnsupportedVersion {
                what: "tree",
                found: t.version,
                supported: 1,
            });
        }
        for w in t.nodes.windows(2) {
            if w[0].name >= w[1].name {
                return Err(crate::error::malformed(
                    "tree",
                    "entries not sorted or duplicated",
                ));
            }
        }
        for n in &t.nodes {
            if n.name.is_empty()
                || n.name.contains(&b'/')
                || n.name.contains(&0)
                || n.name == b"."
                || n.name == b".."
            {
                return Err(crate::error::malformed(
                    "tree",
                    format!("invalid entry name {:?}", n.name_lossy()),
                ));
            }
        }
        Ok(t)
    }

    /// The entry named `name`.
    pub fn find(&self, name: &[u8]) -> Option<&Node> {
        self.nodes
            .binary_search_by(|n| n.name.as_slice().cmp(name))
            .ok()
            .map(|i| &self.nodes[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_round_trip_is_deterministic_and_validated() {
        let mut f = Node::new(b"b\xff".to_vec(), NodeKind::File);
        f.content = vec![
            ContentPart::Blob {
                id: Id([3; 32]),
                len: 10,
            },
            ContentPart::Hole { len: 4096 },
        ];
        let d = Node::new("a", NodeKind::Dir);
        let t = Tree::new(vec![f.clone(), d.clone()]);
        assert_eq!(t.nodes[0].name, b"a");
        let enc = t.encode().unwrap();
        assert_eq!(Tree::new(vec![d.clone(), f.clone()]).encode().unwrap(), enc);
        assert_eq!(Tree::decode(&enc).unwrap(), t);
        let mut longer = enc.clone();
        longer.push(0);
        assert!(Tree::decode(&longer).is_err(), "trailing bytes are refused");
        assert!(t.find(b"b\xff").is_some());
        let bad = Tree {
            version: 1,
            nodes: vec![f.clone(), d],
        };
        assert!(Tree::decode(&bad.encode().unwrap()).is_err());
        let evil = Tree {
            version: 1,
            nodes: vec![Node::new("..", NodeKind::Dir)],
        };
        assert!(Tree::decode(&evil.encode().unwrap()).is_err());
        let v2 = Tree {
            version: 2,
            nodes: vec![],
        };
        assert!(matches!(
            Tree::decode(&v2.encode().unwrap()),
            Err(Error::UnsupportedVersion { .. })
        ));
    }
}
