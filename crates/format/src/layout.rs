//! Where each kind of object lives on the store: the one place in the source
//! that names the repository's folders (`docs/format.md` §2).
//!
//! Every object but [`CONFIG`] is named by the BLAKE3 hash of its stored
//! bytes, in lower-case hex, under its folder; packs are spread over 256
//! sub-folders by the first two hex digits of their id.

use std::fmt;

use crate::Id;

/// Name of the repository's config object, at the root of the store.
pub const CONFIG: &str = "config";

/// A folder of the repository layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Folder {
    /// Key slots: `keys/<id>`.
    Keys,
    /// Packs of data and tree blobs: `data/<2 hex>/<id>`.
    Data,
    /// Index segments: `index/<id>`.
    Index,
    /// Snapshots: `snapshots/<id>`.
    Snapshots,
    /// Check's verification records: `verify/<id>`.
    Verify,
    /// Objects being written to a local repository, not yet part of it:
    /// `staging/<writer>-<n>-<nanos>` (not named by a hash).
    Staging,
    /// Prune's marks of two-phase deletion: `marks/<id>` (`docs/prune.md`).
    Marks,
    /// Exclusive, expiring locks: `locks/prune-<n>` (`docs/prune.md`).
    Locks,
    /// Records of restore drills: `drills/<id>` (`docs/drill.md`).
    Drills,
}

impl Folder {
    /// Every folder, in the order `docs/format.md` lists them.
    pub const ALL: [Folder; 9] = [
        Folder::Keys,
        Folder::Data,
        Folder::Index,
        Folder::Snapshots,
        Folder::Verify,
        Folder::Staging,
        Folder::Marks,
        Folder::Locks,
        Folder::Drills,
    ];

    /// The folder's name, without a trailing slash.
    pub const fn name(self) -> &'static str {
        match self {
            Folder::Keys => "keys",
            Folder::Data => "data",
            Folder::Index => "index",
            Folder::Snapshots => "snapshots",
            Folder::Verify => "verify",
            Folder::Staging => "staging",
            Folder::Marks => "marks",
            Folder::Locks => "locks",
            Folder::Drills => "drills",
        }
    }

    /// The listing prefix of the folder: its name and a slash.
    pub fn prefix(self) -> String {
        format!("{}/", self.name())
    }

    /// Whether `path` lies in this folder.
    pub fn holds(self, path: &str) -> bool {
        path.strip_prefix(self.name())
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

impl fmt::Display for Folder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Store path of the object `id` in `folder`.
pub fn object_path(folder: Folder, id: &Id) -> String {
    let h = id.to_hex();
    match folder {
        Folder::Data => format!("{}/{}/{}", folder.name(), &h[..2], h),
        _ => format!("{}/{}", folder.name(), h),
    }
}

/// Store path of the `n`-th prune lock: `locks/prune-<n as 20 digits>`,
/// so that names sort by number.
pub fn prune_lock_path(n: u64) -> String {
    format!("{}/prune-{n:020}", Folder::Locks.name())
}

/// The number of a listed prune lock path, if it is one.
pub fn prune_lock_number(path: &str) -> Option<u64> {
    let rest = path
        .strip_prefix(Folder::Locks.name())?
        .strip_prefix("/prune-")?;
    if rest.len() != 20 || !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

/// The id named by the last component of a listed `path`, if it is one
/// (64 lower-case hex digits); `None` for a stray name.
pub fn id_of_path(path: &str) -> Option<Id> {
    let name = path.rsplit('/').next()?;
    if name.len() != 64 || !name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_and_strays_are_refused() {
        let id = Id::of_object(b"x");
        let hex = id.to_hex();
        assert_eq!(
            object_path(Folder::Data, &id),
            format!("data/{}/{hex}", &hex[..2])
        );
        assert_eq!(
            object_path(Folder::Snapshots, &id),
            format!("snapshots/{hex}")
        );
        for f in Folder::ALL {
            let p = object_path(f, &id);
            assert!(f.holds(&p), "{p}");
            assert_eq!(id_of_path(&p), Some(id));
        }
        assert!(!Folder::Keys.holds("keysx/a"));
        assert_eq!(id_of_path("snapshots/README"), None);
        assert_eq!(
            id_of_path(&format!("snapshots/{}", hex.to_uppercase())),
            None
        );
        assert_eq!(id_of_path(&format!("snapshots/{hex}0")), None);
        assert_eq!(prune_lock_path(7), "locks/prune-00000000000000000007");
        assert_eq!(
            prune_lock_number(&prune_lock_path(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(prune_lock_number("locks/prune-7"), None);
        assert_eq!(prune_lock_number("marks/prune-00000000000000000007"), None);
    }
}
