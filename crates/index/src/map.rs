//! The only module of this crate with `unsafe` code: a read-only memory map
//! of a local table file, and dropping its pages from the resident set.
//!
//! Why `unsafe` at all: lookups must not allocate or make a system call per
//! blob, and `memmap2::Mmap::map` is `unsafe` because the compiler cannot know
//! that nobody changes the file while it is mapped. Reading with `pread`
//! instead costs a system call per probe, several per lookup. The measured
//! difference is in `docs/index.md`.
//!
//! The invariant every `unsafe` block below relies on (the *table file
//! invariant*): a table file is written completely under a temporary name
//! (or as an unlinked temporary file), synced, and only then renamed into
//! place; no code in Lifeboat ever opens a table file for writing again. A
//! newer table replaces an older one by `rename`, which gives the name to a
//! new inode and leaves the mapped one untouched. So the bytes behind a
//! mapping never change while it exists. What no program can rule out is
//! another user truncating or editing the file in place; the cache
//! directory is created mode 0700 to keep other users out, and the file's
//! MAC is checked before it is mapped (`table.rs`).

#![allow(unsafe_code)]

use std::fs::File;
use std::io;

use memmap2::{Advice, Mmap, UncheckedAdvice};

/// A read-only mapping of a whole table file.
#[derive(Debug)]
pub(crate) struct MappedFile {
    map: Mmap,
}

impl MappedFile {
    /// Map `file` read-only. `file` must be a table file as described in the
    /// module documentation.
    pub(crate) fn map(file: &File) -> io::Result<MappedFile> {
        // SAFETY: `file` is a table file (the table file invariant in the
        // module doc): complete, never written again by any Lifeboat code,
        // and replaced only by renaming a new file over its name, which does
        // not affect this inode. The mapping is read-only (PROT_READ,
        // MAP_SHARED), so this process cannot write through it either.
        let map = unsafe { Mmap::map(file)? };
        // Lookups land on pseudo-random pages: read-ahead would only fill
        // the page cache with pages nobody asks for.
        let _ = map.advise(Advice::Random);
        Ok(MappedFile { map })
    }

    /// The mapped bytes.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Take the pages of `offset..offset + len` out of this process's
    /// resident set. The next access maps them again, from the page cache
    /// if the kernel kept them there, else from the file.
    pub(crate) fn release(&self, offset: usize, len: usize) {
        let len = len.min(self.map.len().saturating_sub(offset));
        if len == 0 {
            return;
        }
        // SAFETY: MADV_DONTNEED on a shared, read-only file mapping only
        // unmaps pages; a later access (also one racing with this call from
        // another thread) faults them in again from the file, whose bytes
        // never change (the table file invariant in the module doc). Every
        // existing borrow of `bytes()` therefore keeps reading the same
        // values; nothing is zeroed as it would be for an anonymous mapping.
        let _ = unsafe {
            self.map
                .unchecked_advise_range(UncheckedAdvice::DontNeed, offset, len)
        };
    }
}
