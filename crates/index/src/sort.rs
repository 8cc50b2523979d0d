//! External merge sort of fixed-width records, so that building a table or
//! compacting segments needs a bounded amount of memory however many blobs
//! the repository holds.
//!
//! Records are byte arrays compared lexicographically; callers lay out their
//! fields (big-endian where order matters) so that byte order is the order
//! they want. Records are buffered up to a memory budget, sorted, and
//! spilled to an unlinked temporary file as a sorted *run*; reading merges
//! the runs with a heap (k-way merge), holding one buffered reader per run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Buffer of each run reader and writer.
const RUN_BUF: usize = 128 << 10;

/// Sorts records of `N` bytes within a memory budget.
pub(crate) struct Sorter<const N: usize> {
    buf: Vec<[u8; N]>,
    limit: usize,
    runs: Vec<File>,
    dir: Option<PathBuf>,
    count: u64,
}

impl<const N: usize> Sorter<N> {
    /// A sorter holding at most `memory` bytes of records before spilling a
    /// run into `dir` (the system temporary directory if `None`).
    pub(crate) fn new(dir: Option<&Path>, memory: usize) -> Sorter<N> {
        Sorter {
            buf: Vec::new(),
            limit: (memory / N).max(1024),
            runs: Vec::new(),
            dir: dir.map(Path::to_path_buf),
            count: 0,
        }
    }

    /// Add a record.
    pub(crate) fn push(&mut self, rec: [u8; N]) -> io::Result<()> {
        if self.buf.len() == self.buf.capacity() {
            if self.buf.len() >= self.limit {
                self.spill()?;
            } else {
                // Grow without overshooting the budget by doubling past it.
                let want = (self.buf.capacity() * 2)
                    .max(1024)
                    .min(self.limit)
                    .saturating_sub(self.buf.len());
                self.buf.reserve_exact(want.max(1));
            }
        }
        self.buf.push(rec);
        self.count += 1;
        Ok(())
    }

    /// Records pushed so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.count
    }

    fn spill(&mut self) -> io::Result<()> {
        self.buf.sort_unstable();
        let file = match &self.dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        let mut w = BufWriter::with_capacity(RUN_BUF, file);
        for r in &self.buf {
            w.write_all(r)?;
        }
        let mut file = w.into_inner().map_err(|e| e.into_error())?;
        file.rewind()?;
        self.runs.push(file);
        self.buf.clear();
        Ok(())
    }

    /// Stop adding; read the records back in order.
    pub(crate) fn finish(mut self) -> io::Result<Sorted<N>> {
        if self.runs.is_empty() {
            self.buf.sort_unstable();
            return Ok(Sorted::Memory(self.buf.into_iter()));
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        self.buf = Vec::new();
        let mut readers: Vec<BufReader<File>> = self
            .runs
            .into_iter()
            .map(|f| BufReader::with_capacity(RUN_BUF, f))
            .collect();
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(rec) = read_rec::<N>(r)? {
                heap.push(Reverse((rec, i)));
            }
        }
        Ok(Sorted::Merge { readers, heap })
    }
}

fn read_rec<const N: usize>(r: &mut impl Read) -> io::Result<Option<[u8; N]>> {
    let mut rec = [0u8; N];
    match r.read_exact(&mut rec) {
        Ok(()) => Ok(Some(rec)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Records in ascending byte order.
pub(crate) enum Sorted<const N: usize> {
    /// Everything fitted in memory.
    Memory(std::vec::IntoIter<[u8; N]>),
    /// A k-way merge of runs on disk.
    Merge {
        /// One reader per run.
        readers: Vec<BufReader<File>>,
        /// The head record of each run that is not yet used up.
        heap: BinaryHeap<Reverse<([u8; N], usize)>>,
    },
}

impl<const N: usize> Sorted<N> {
    /// The next record, or `None` at the end.
    pub(crate) fn next_rec(&mut self) -> io::Result<Option<[u8; N]>> {
        match self {
            Sorted::Memory(it) => Ok(it.next()),
            Sorted::Merge { readers, heap } => {
                let Some(Reverse((rec, i))) = heap.pop() else {
                    return Ok(None);
                };
                if let Some(next) = readers.get_mut(i) {
                    if let Some(n) = read_rec::<N>(next)? {
                        heap.push(Reverse((n, i)));
                    }
                }
                Ok(Some(rec))
            }
        }
    }
}

/// Anything that yields records of `N` bytes in order.
pub(crate) trait Source<const N: usize> {
    /// The next record, or `None` at the end.
    fn next_rec(&mut self) -> io::Result<Option<[u8; N]>>;
}

impl<const N: usize> Source<N> for Sorted<N> {
    fn next_rec(&mut self) -> io::Result<Option<[u8; N]>> {
        Sorted::next_rec(self)
    }
}

/// A source that yields nothing.
pub(crate) struct Empty;

impl<const N: usize> Source<N> for Empty {
    fn next_rec(&mut self) -> io::Result<Option<[u8; N]>> {
        Ok(None)
    }
}

/// A source with one record of look-ahead.
pub(crate) struct Peekable<S, const N: usize> {
    inner: S,
    head: Option<[u8; N]>,
}

impl<S: Source<N>, const N: usize> Peekable<S, N> {
    /// Wrap `inner`, reading its first record.
    pub(crate) fn new(mut inner: S) -> io::Result<Peekable<S, N>> {
        let head = inner.next_rec()?;
        Ok(Peekable { inner, head })
    }

    /// The next record without taking it.
    pub(crate) fn peek(&self) -> Option<&[u8; N]> {
        self.head.as_ref()
    }

    /// Take the next record.
    pub(crate) fn take(&mut self) -> io::Result<Option<[u8; N]>> {
        let next = self.inner.next_rec()?;
        Ok(std::mem::replace(&mut self.head, next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(n: u32, seed: u64) -> Vec<[u8; 12]> {
        let mut s = seed;
        (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                let mut r = [0u8; 12];
                r[..8].copy_from_slice(&s.to_be_bytes());
                r[8..].copy_from_slice(&i.to_be_bytes());
                r
            })
            .collect()
    }

    fn drain<const N: usize>(mut s: Sorted<N>) -> Vec<[u8; N]> {
        let mut out = Vec::new();
        while let Some(r) = s.next_rec().unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn spills_runs_and_merges_them_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let input = records(100_000, 0x9e37_79b9_7f4a_7c15);
        // 12-byte records, 1024-record minimum: a 12 KiB budget spills ~98 runs.
        let mut s = Sorter::<12>::new(Some(dir.path()), 12 * 1024);
        for r in &input {
            s.push(*r).unwrap();
        }
        assert_eq!(s.len(), 100_000);
        assert!(
            s.runs.len() > 50,
            "expected spilled runs, got {}",
            s.runs.len()
        );
        let out = drain(s.finish().unwrap());
        let mut want = input;
        want.sort_unstable();
        assert_eq!(out, want);
    }

    #[test]
    fn small_input_stays_in_memory() {
        let input = records(500, 7);
        let mut s = Sorter::<12>::new(None, 1 << 20);
        for r in &input {
            s.push(*r).unwrap();
        }
        assert!(s.runs.is_empty());
        let sorted = s.finish().unwrap();
        assert!(matches!(sorted, Sorted::Memory(_)));
        let out = drain(sorted);
        assert!(out.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(out.len(), 500);
    }

    #[test]
    fn empty_sorter_yields_nothing() {
        let s = Sorter::<4>::new(None, 1024);
        assert!(drain(s.finish().unwrap()).is_empty());
    }
}
