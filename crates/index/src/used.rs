//! A set of blobs bounded by the index: one bit per table position.
//!
//! Check and prune walk every snapshot and mark each blob they meet. A hash
//! set of ids costs 50 to 100 bytes per blob (restic's prune needs several
//! times its index for this); a bit per indexed blob is 1.25 MB for 10^7
//! blobs. Blobs in the index's in-memory delta (added by this process, so
//! few) are kept in a small hash set beside the bits. A blob that is not
//! indexed cannot be marked: the caller reports it as missing.

use lifeboat_format::Id;

use crate::{BlobLocation, DeltaSet, Index};

/// Blobs of one [`Index`] marked as used. The index cannot change while the
/// set exists (it borrows it), so table positions stay valid.
#[derive(Debug)]
pub struct UsedBlobs<'a> {
    index: &'a Index,
    bits: Vec<u64>,
    delta: DeltaSet,
    count: u64,
}

impl<'a> UsedBlobs<'a> {
    /// An empty set over `index`.
    pub fn new(index: &'a Index) -> UsedBlobs<'a> {
        UsedBlobs {
            index,
            bits: vec![0; index.table_len().div_ceil(64)],
            delta: DeltaSet::default(),
            count: 0,
        }
    }

    /// Mark `id`. Returns `None` if it is not indexed, else whether it was
    /// not marked before.
    pub fn insert(&mut self, id: &Id) -> Option<bool> {
        if let Some(p) = self.index.table_position(id) {
            let (w, b) = (p / 64, 1u64 << (p % 64));
            let word = self.bits.get_mut(w)?;
            let new = *word & b == 0;
            *word |= b;
            self.count += u64::from(new);
            return Some(new);
        }
        if self.index.delta_contains(id) {
            let new = self.delta.insert(*id);
            self.count += u64::from(new);
            return Some(new);
        }
        None
    }

    /// Whether `id` is marked.
    pub fn contains(&self, id: &Id) -> bool {
        match self.index.table_position(id) {
            Some(p) => self.bit(p),
            None => self.delta.contains(id),
        }
    }

    fn bit(&self, p: usize) -> bool {
        self.bits
            .get(p / 64)
            .is_some_and(|w| w & (1u64 << (p % 64)) != 0)
    }

    /// Number of marked blobs.
    pub fn len(&self) -> u64 {
        self.count
    }

    /// Whether nothing is marked.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Indexed blobs that are not marked, in id order (the table's first,
    /// then the delta's). A sequential scan of the table.
    pub fn unused(&self) -> impl Iterator<Item = (Id, BlobLocation)> + '_ {
        self.index
            .table_scan()
            .filter(|(p, _, _)| !self.bit(*p))
            .map(|(_, id, l)| (id, l))
            .chain(
                self.index
                    .delta_iter()
                    .filter(|(id, _)| !self.delta.contains(id))
                    .map(|(id, l)| (*id, *l)),
            )
    }

    /// Heap bytes the set holds.
    pub fn memory_bytes(&self) -> usize {
        self.bits.len() * 8 + self.delta.capacity() * 40
    }
}
