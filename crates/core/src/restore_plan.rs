//! File content restore planned by pack.
//!
//! Every needed blob is looked up once and grouped by the pack that holds
//! it. Packs are then processed in parallel, most work first: each reads
//! its needed blobs in a few large ranged requests (neighbouring blobs are
//! read through small gaps rather than fetched one by one; from a remote
//! store, one streamed request per run of blobs, each blob handled as it
//! arrives), opens and verifies every blob, and writes it at its offsets
//! into every file that uses it. Files are created
//! and sized first, so holes are never written and writes can land in any
//! order. A file whose blob fails is reported and removed, never left
//! looking restored.
//!
//! A file that exists at its destination is written under a temporary
//! name beside it (see [`TempNames`]) and renamed over it only once every
//! blob was verified and written and its metadata set: a failure leaves
//! the old file as it was. Nothing there (the usual case, an empty target)
//! means the file is created in place, with no extra system call.

use crate::repo::RepositoryInternals as _;
use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use lifeboat_format::layout::{Folder, object_path};
use lifeboat_format::{BlobFlags, BlobType, ContentPart, Id, Node, open_blob_in_place};
use rayon::prelude::*;

use crate::Progress;
use crate::error::BlobDamage;
use crate::meta::{apply_file_metadata, creation_mode};
use crate::restore_target::TempNames;
use crate::{Error, Repository};

/// Largest span of one ranged read, unless a single blob is larger.
const READ_SPAN: u64 = 2 << 20;
/// Widest gap between two needed blobs that is read through.
const READ_GAP: u64 = 256 << 10;
/// Widest gap read through in a streamed read (see
/// [`Repository::restore_pack`]): another request costs more than
/// reading this much more of the one in flight.
const STREAM_GAP: u64 = 1 << 20;
/// Most blobs in one streamed read. Each is handled while the request is
/// open, and a blob of a small file costs a file creation: this keeps a
/// request on a slow file system well inside the store's timeout.
const STREAM_BLOBS: usize = 1024;

thread_local! {
    /// Decompressed blobs land here, one buffer per restore thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What every file write needs to know.
struct Ctx<'p> {
    progress: &'p Progress,
    /// The owner a new file gets, when certain (see [`apply_file_metadata`]).
    new_owner: Option<(u32, u32)>,
    temps: &'p TempNames,
    /// Failure injection (feature `testing`).
    #[cfg(feature = "testing")]
    fail: &'p crate::failpoint::FailPoints,
}

/// One file to write: where, what, and whether something is there already
/// (then it is replaced through a temporary name).
pub(crate) struct FileJob<'n> {
    pub dest: PathBuf,
    pub node: &'n Node,
    pub replace: bool,
}

/// Where a file's bytes went so far.
enum Written {
    /// Nowhere yet.
    Nothing,
    /// Into the destination itself, created new.
    InPlace,
    /// Into this temporary file beside the destination.
    Temp(PathBuf),
}

/// One file being written.
struct Slot<'n> {
    dest: PathBuf,
    node: &'n Node,
    /// Created on its first (and only) write instead of up front: a file
    /// that is one blob and no holes, as most small files are.
    lazy: bool,
    /// Something exists at `dest`: write beside it, then rename.
    replace: bool,
    written: Mutex<Written>,
    /// Blob writes still to do; the handle is closed when it reaches 0.
    remaining: AtomicUsize,
    handle: Mutex<Option<fs::File>>,
    /// The first failure, if any.
    failed: Mutex<Option<String>>,
    /// Problems setting metadata through the handle, once it was done.
    meta: Mutex<Option<Vec<String>>>,
}

/// Create `dest` as a new empty file (see [`creation_mode`]). Exclusive:
/// never opens (nor follows a symlink to) anything already there.
fn create_new(dest: &Path, node: &Node) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(creation_mode(node))
        .open(dest)
}

impl Slot<'_> {
    /// Create the file this slot writes: its temporary beside the
    /// destination when replacing, else the destination itself.
    fn create(&self, ctx: &Ctx) -> Result<fs::File, String> {
        if self.replace {
            let (tmp, f) = ctx
                .temps
                .create_file(&self.dest, creation_mode(self.node))
                .map_err(|e| format!("create temporary file: {e}"))?;
            *lock(&self.written) = Written::Temp(tmp);
            Ok(f)
        } else {
            let f = create_new(&self.dest, self.node).map_err(|e| format!("create: {e}"))?;
            *lock(&self.written) = Written::InPlace;
            Ok(f)
        }
    }

    fn fail(&self, why: String) {
        let mut f = lock(&self.failed);
        if f.is_none() {
            *f = Some(why);
        }
        *lock(&self.handle) = None;
    }

    fn is_failed(&self) -> bool {
        lock(&self.failed).is_some()
    }

    /// Open again the file [`Slot::create`] made (never through a symlink).
    fn reopen(&self) -> Result<fs::File, String> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = match &*lock(&self.written) {
            Written::InPlace => self.dest.clone(),
            Written::Temp(tmp) => tmp.clone(),
            Written::Nothing => return Err("open: file was not created".into()),
        };
        fs::OpenOptions::new()
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(path)
            .map_err(|e| format!("open: {e}"))
    }

    /// The file is complete: set its metadata through the handle, and
    /// when it replaces one, make it durable and rename it over that one.
    fn done(&self, f: Option<fs::File>, ctx: &Ctx) {
        let Some(f) = f else {
            return;
        };
        *lock(&self.meta) = Some(apply_file_metadata(
            &f,
            &self.dest,
            self.node,
            ctx.new_owner,
        ));
        if let Written::Temp(tmp) = &*lock(&self.written) {
            // Durable before it takes the old file's place: a crash then
            // leaves the old file or the new one, never an empty one.
            if let Err(e) = f.sync_data() {
                return self.fail(format!("sync: {e}"));
            }
            if let Err(e) = fs::rename(tmp, &self.dest) {
                return self.fail(format!("rename over the existing file: {e}"));
            }
        }
        ctx.progress.files.fetch_add(1, Ordering::Relaxed);
    }

    /// Write `data` at `off`, opening (or creating) the file on first use
    /// and finishing it after its last blob.
    fn write(&self, data: &[u8], off: u64, ctx: &Ctx) -> bool {
        if self.is_failed() {
            return false;
        }
        let res = {
            let mut h = lock(&self.handle);
            if h.is_none() {
                let opened = if self.lazy {
                    self.create(ctx)
                } else {
                    self.reopen()
                };
                match opened {
                    Ok(f) => *h = Some(f),
                    Err(e) => {
                        drop(h);
                        self.fail(e);
                        return false;
                    }
                }
            }
            match h.as_ref() {
                Some(_) if fail_point!(ctx.fail, RestoreWrite).is_err() => Err(
                    std::io::Error::other(format!("injected failure at offset {off}")),
                ),
                Some(f) => f.write_all_at(data, off),
                None => Ok(()),
            }
        };
        if let Err(e) = res {
            self.fail(format!("write: {e}"));
            return false;
        }
        ctx.progress
            .bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            let f = lock(&self.handle).take();
            if !self.is_failed() {
                self.done(f, ctx);
            }
        }
        true
    }
}

/// A needed blob and where it goes.
struct Want {
    id: Id,
    flags: BlobFlags,
    raw_len: u32,
    offset: u32,
    stored_len: u32,
    /// (slot, offset in file)
    targets: Vec<(usize, u64)>,
}

/// Outcome per file, in the order given.
pub(crate) struct ContentOutcome {
    /// `Some(reason)` for files that could not be restored (removed when
    /// new, left as they were when replacing).
    pub failures: Vec<Option<String>>,
    /// `Some(problems)` for files whose metadata was set already, through
    /// the handle that wrote them; `None` for those still to be done.
    pub metadata: Vec<Option<Vec<String>>>,
    /// Content bytes written.
    pub bytes: u64,
}

impl Repository {
    /// Write the content of `files` with a pool of `pool`'s threads.
    pub(crate) fn restore_contents(
        &self,
        files: &[FileJob],
        pool: &rayon::ThreadPool,
        progress: &Progress,
        new_owner: Option<(u32, u32)>,
        temps: &TempNames,
        #[cfg(feature = "testing")] fail: &crate::failpoint::FailPoints,
    ) -> ContentOutcome {
        let ctx = Ctx {
            progress,
            new_owner,
            temps,
            #[cfg(feature = "testing")]
            fail,
        };
        let slots: Vec<Slot> = files
            .iter()
            .map(
                |&FileJob {
                     ref dest,
                     node,
                     replace,
                 }| Slot {
                    dest: dest.clone(),
                    node,
                    lazy: matches!(node.content.as_slice(), [ContentPart::Blob { .. }]),
                    replace,
                    written: Mutex::new(Written::Nothing),
                    remaining: AtomicUsize::new(
                        node.content
                            .iter()
                            .filter(|p| matches!(p, ContentPart::Blob { .. }))
                            .count(),
                    ),
                    handle: Mutex::new(None),
                    failed: Mutex::new(None),
                    meta: Mutex::new(None),
                },
            )
            .collect();

        // 1. Create and size every file but the one-blob ones (created when
        // written); holes stay unwritten.
        pool.install(|| {
            slots.par_iter().for_each(|s| {
                if s.lazy {
                    return;
                }
                let size: u64 = s.node.content.iter().map(|p| p.len()).sum();
                let res = s.create(&ctx).and_then(|f| {
                    if size > 0 {
                        f.set_len(size).map_err(|e| format!("set size: {e}"))?;
                    }
                    Ok(f)
                });
                match res {
                    Err(e) => s.fail(e),
                    // Empty or all holes: complete already.
                    Ok(f) if s.remaining.load(Ordering::Relaxed) == 0 => s.done(Some(f), &ctx),
                    // Closed until written: a restore may have more files
                    // in flight than this process may have open.
                    Ok(_) => {}
                }
            })
        });

        // 2. Plan: blob -> targets, grouped by pack.
        let mut targets: HashMap<Id, Vec<(usize, u64)>> = HashMap::new();
        let mut lens: HashMap<Id, u32> = HashMap::new();
        for (i, job) in files.iter().enumerate() {
            let mut off = 0u64;
            for part in &job.node.content {
                if let ContentPart::Blob { id, len } = part {
                    targets.entry(*id).or_default().push((i, off));
                    lens.insert(*id, *len);
                }
                off += part.len();
            }
        }
        let mut packs: HashMap<Id, Vec<Want>> = HashMap::new();
        // One lookup per blob, in bulk: through the table's memory map,
        // not a `pread` each (which cost a tenth of a restore's system time).
        self.with_mapped_index(|| {
            let idx = self.index();
            for (id, t) in targets {
                let loc = idx.get(&id);
                let why = match loc {
                    None => Some(Error::BlobNotFound { blob: id }.to_string()),
                    Some(l) if l.blob_type != BlobType::Data => {
                        Some(format!("blob {id} is indexed as {:?}", l.blob_type))
                    }
                    Some(l) if Some(&l.raw_len) != lens.get(&id) => Some(format!(
                        "blob {id} has {} bytes, tree says {}",
                        l.raw_len,
                        lens.get(&id).copied().unwrap_or_default()
                    )),
                    Some(_) => None,
                };
                match (loc, why) {
                    (Some(l), None) => packs.entry(l.pack).or_default().push(Want {
                        id,
                        flags: l.flags,
                        raw_len: l.raw_len,
                        offset: l.offset,
                        stored_len: l.stored_len,
                        targets: t,
                    }),
                    (_, why) => {
                        let why = why.unwrap_or_default();
                        for (s, _) in t {
                            slots[s].fail(why.clone());
                        }
                    }
                }
            }
        });
        let mut packs: Vec<(Id, Vec<Want>)> = packs.into_iter().collect();
        for (_, wants) in &mut packs {
            wants.sort_by_key(|w| w.offset);
        }
        // Most work first (bytes to read, and to write: a blob is written
        // once per use), so that a pack that fills most of a big file is
        // not begun last and left running alone; ties by id, for a
        // repeatable order.
        let work = |wants: &[Want]| -> u64 {
            wants
                .iter()
                .map(|w| u64::from(w.stored_len) + u64::from(w.raw_len) * w.targets.len() as u64)
                .sum()
        };
        packs.sort_by_cached_key(|(id, wants)| (std::cmp::Reverse(work(wants)), *id));

        // 3. Read, verify and write, pack by pack in parallel: each thread
        // takes the next pack in that order.
        let next = AtomicUsize::new(0);
        pool.scope(|s| {
            for _ in 0..pool.current_num_threads() {
                s.spawn(|_| {
                    while let Some((pack, wants)) = packs.get(next.fetch_add(1, Ordering::Relaxed))
                    {
                        if progress.cancel.load(Ordering::Relaxed) {
                            return;
                        }
                        self.restore_pack(pack, wants, &slots, &ctx);
                    }
                });
            }
        });

        // 4. Failed files are reported; what they wrote is removed, and a
        // file they were to replace is left as it was.
        let mut bytes = 0u64;
        let mut metadata = Vec::with_capacity(slots.len());
        let failures = slots
            .into_iter()
            .map(|s| {
                let why = s.failed.into_inner().unwrap_or_else(|p| p.into_inner());
                if why.is_some() {
                    // The handle is closed already (fail drops it).
                    match s.written.into_inner().unwrap_or_else(|p| p.into_inner()) {
                        Written::Nothing => {}
                        Written::InPlace => {
                            let _ = fs::remove_file(&s.dest);
                        }
                        Written::Temp(tmp) => {
                            let _ = fs::remove_file(tmp);
                        }
                    }
                    metadata.push(None);
                } else {
                    bytes += s.node.content.iter().map(|p| p.len()).sum::<u64>();
                    metadata.push(s.meta.into_inner().unwrap_or_else(|p| p.into_inner()));
                }
                why
            })
            .collect();
        ContentOutcome {
            failures,
            metadata,
            bytes,
        }
    }

    /// Read the blobs `wants` (in offset order) of `pack`, open them and
    /// write them into their files. A store that streams ranges
    /// ([`lifeboat_store::Backend::streams_ranges`]) is asked for each run
    /// of nearby blobs in one request, however long, and each blob is
    /// handled as soon as its bytes are in; others are read in spans of at
    /// most [`READ_SPAN`].
    fn restore_pack(&self, pack: &Id, wants: &[Want], slots: &[Slot<'_>], ctx: &Ctx) {
        let streamed = self.backend.streams_ranges();
        let path = object_path(Folder::Data, pack);
        let mut i = 0;
        while i < wants.len() {
            // Extend the span while the next blob is close (and, unless
            // streamed, the span stays small).
            let start = u64::from(wants[i].offset);
            let mut end = start + u64::from(wants[i].stored_len);
            let mut j = i + 1;
            while j < wants.len() {
                let (o, l) = (u64::from(wants[j].offset), u64::from(wants[j].stored_len));
                let prev = &wants[j - 1];
                // Another member of the group just before: the same bytes.
                let same = o == u64::from(prev.offset) && l == u64::from(prev.stored_len);
                let fits = if streamed {
                    // In order and not overlapping: a stream is read once.
                    same || (o >= end && o <= end + STREAM_GAP && j - i < STREAM_BLOBS)
                } else {
                    o <= end + READ_GAP && o + l - start <= READ_SPAN
                };
                if !fits {
                    break;
                }
                end = end.max(o + l);
                j += 1;
            }
            let span = &wants[i..j];
            i = j;
            // Skip a span whose files have all failed already.
            if span
                .iter()
                .all(|w| w.targets.iter().all(|(s, _)| slots[*s].is_failed()))
            {
                continue;
            }
            if streamed {
                self.restore_span_streamed(&path, pack, span, start..end, slots, ctx);
                continue;
            }
            let mut bytes = match self.backend.get_range(&path, start..end) {
                // Blobs are decrypted in this buffer: no copy when the
                // store handed over the only reference to it (a local file).
                Ok(b) => bytes::BytesMut::from(b),
                Err(lifeboat_store::Error::Truncated { .. }) if span.len() > 1 => {
                    // Save what the damaged pack still holds: blob by blob.
                    for w in span {
                        self.restore_pack(pack, std::slice::from_ref(w), slots, ctx);
                    }
                    continue;
                }
                Err(e) => {
                    fail_read(pack, span, &e, slots);
                    continue;
                }
            };
            for w in span {
                let a = (u64::from(w.offset) - start) as usize;
                match bytes.get_mut(a..a + w.stored_len as usize) {
                    Some(stored) => self.restore_blob(pack, w, stored, slots, ctx),
                    None => {
                        for (s, _) in &w.targets {
                            slots[*s].fail(format!("pack {pack}: short read"));
                        }
                    }
                }
            }
        }
    }

    /// Read `range` of the pack, which holds the blobs `span` in order and
    /// apart, in one streamed request, handling each blob as soon as its
    /// bytes are in. Memory: the blob being handled and one piece of the
    /// reply. When the pack turns out shorter, the blobs not handled yet are
    /// read one by one, as elsewhere, so that each is reported on its own.
    fn restore_span_streamed(
        &self,
        path: &str,
        pack: &Id,
        span: &[Want],
        range: std::ops::Range<u64>,
        slots: &[Slot<'_>],
        ctx: &Ctx,
    ) {
        use bytes::Buf as _;
        let mut buf = bytes::BytesMut::new();
        // Pack offset of buf[0].
        let mut at = range.start;
        let mut done = 0;
        // The last group envelope handled, for its other members, which
        // follow it in `span` (opening a member leaves the bytes as read).
        let mut group: Option<(u64, u64, bytes::BytesMut)> = None;
        let res = self.backend.get_range_streamed(path, range, &mut |piece| {
            buf.extend_from_slice(&piece);
            while let Some(w) = span.get(done) {
                let (o, l) = (u64::from(w.offset), u64::from(w.stored_len));
                if let Some((go, gl, stored)) = &mut group
                    && (*go, *gl) == (o, l)
                {
                    self.restore_blob(pack, w, stored, slots, ctx);
                    done += 1;
                    continue;
                }
                // Drop the gap before the blob.
                let skip = o.saturating_sub(at).min(buf.len() as u64);
                buf.advance(skip as usize);
                at += skip;
                if at < o || (buf.len() as u64) < l {
                    break;
                }
                let mut stored = buf.split_to(l as usize);
                at += l;
                self.restore_blob(pack, w, &mut stored, slots, ctx);
                group = w.flags.grouped().then_some((o, l, stored));
                done += 1;
            }
            done < span.len() && !ctx.progress.cancel.load(Ordering::Relaxed)
        });
        let rest = &span[done.min(span.len())..];
        match res {
            Ok(()) => {}
            Err(lifeboat_store::Error::Truncated { .. }) => {
                // Save what the damaged pack still holds: blob by blob.
                for w in rest {
                    self.restore_pack_alone(pack, w, slots, ctx);
                }
            }
            Err(e) => fail_read(pack, rest, &e, slots),
        }
    }

    /// Read one blob with a ranged read of its own.
    fn restore_pack_alone(&self, pack: &Id, w: &Want, slots: &[Slot<'_>], ctx: &Ctx) {
        let path = object_path(Folder::Data, pack);
        let (start, end) = (
            u64::from(w.offset),
            u64::from(w.offset) + u64::from(w.stored_len),
        );
        match self.backend.get_range(&path, start..end) {
            Ok(b) => {
                let mut stored = bytes::BytesMut::from(b);
                self.restore_blob(pack, w, &mut stored, slots, ctx);
            }
            Err(e) => fail_read(pack, std::slice::from_ref(w), &e, slots),
        }
    }

    /// Open (decrypt, verify, decompress) the blob `w` from its `stored`
    /// bytes and write it into every file that uses it.
    fn restore_blob(&self, pack: &Id, w: &Want, stored: &mut [u8], slots: &[Slot<'_>], ctx: &Ctx) {
        // Decrypted where it was read, decompressed into this thread's
        // buffer: no allocation (and no fresh pages to fault in) per blob.
        let opened = SCRATCH.with_borrow_mut(|scratch| {
            let (f, l) = (w.flags, w.raw_len);
            let data = open_blob_in_place(&self.key, BlobType::Data, &w.id, f, l, stored, scratch)?;
            for (s, off) in &w.targets {
                slots[*s].write(data, *off, ctx);
            }
            Ok::<(), lifeboat_format::Error>(())
        });
        if let Err(e) = opened {
            let why = Error::corrupt_blob(*pack, w.id, e).to_string();
            for (s, _) in &w.targets {
                slots[*s].fail(why.clone());
            }
        }
    }
}

/// Fail the files of `wants`, which could not be read from `pack`: the
/// message per blob, as it would be for a read of that blob alone.
fn fail_read(pack: &Id, wants: &[Want], e: &lifeboat_store::Error, slots: &[Slot<'_>]) {
    let reason = match e {
        e if e.is_not_found() => BlobDamage::PackMissing.to_string(),
        lifeboat_store::Error::Truncated { len, .. } => {
            BlobDamage::PackTruncated { len: *len }.to_string()
        }
        other => other.to_string(),
    };
    for w in wants {
        let why = format!("pack {pack}, blob {}: {reason}", w.id);
        for (s, _) in &w.targets {
            slots[*s].fail(why.clone());
        }
    }
}
