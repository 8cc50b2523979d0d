//! [`CachedBackend`]: a local cache of content-addressed metadata.

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::Write;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use lifeboat_format::layout::Folder;

use crate::{Backend, Error, ObjectInfo, Result};

/// Folders whose objects are cached whole when read with
/// [`Backend::get`]: index segments and snapshots.
const WHOLE: [Folder; 2] = [Folder::Index, Folder::Snapshots];

/// The folder whose objects are cached whole when read with
/// [`Backend::get_metadata_range`]: packs of tree blobs.
const PACKS: Folder = Folder::Data;

/// The root of Lifeboat's local caches: `$XDG_CACHE_HOME/lifeboat` (when
/// that is an absolute path), else `$HOME/.cache/lifeboat`; `None` if
/// neither is set. Each repository gets its own folders below it.
pub fn default_cache_root() -> Option<PathBuf> {
    let nonempty = |v: &std::ffi::OsString| !v.is_empty();
    let xdg = std::env::var_os("XDG_CACHE_HOME")
        .filter(nonempty)
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    xdg.or_else(|| {
        std::env::var_os("HOME")
            .filter(nonempty)
            .map(|h| PathBuf::from(h).join(".cache"))
    })
    .map(|d| d.join("lifeboat"))
}

/// The cache folder of the repository at `location` under `root`: a folder
/// named by a hash of the location, so that two repositories never share
/// one. (The repository id is inside the encrypted config, which is not
/// readable before the repository is opened, and opening reads the index,
/// which is what the cache is for.)
pub fn cache_dir_for(root: &Path, location: &str) -> PathBuf {
    let h = blake3::hash(location.as_bytes()).to_hex();
    root.join(&h.as_str()[..32])
}

/// Counters of a [`CachedBackend`].
#[derive(Debug, Default)]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: AtomicU64,
    /// Reads that went to the store.
    pub misses: AtomicU64,
    /// Cache entries that failed verification and were fetched again.
    pub corrupt: AtomicU64,
}

/// A [`Backend`] that keeps index segments, snapshots and tree packs in a
/// local directory, so they are fetched from a remote store only once.
///
/// Only objects whose name ends in 64 hex digits are cached: the format names
/// them by the BLAKE3 hash of their bytes, so a cached copy is checked
/// against its name before it is used, and one that fails is deleted and
/// fetched again. (Everything in them is also authenticated by decryption
/// above this layer.) Mutable objects (`config`, `keys/`, locks) are never
/// cached. Listings always go to the store; cached objects no longer listed
/// there (pruned) are removed from the cache then. Failing to write the
/// cache is not an error: the cache is an optimisation.
pub struct CachedBackend {
    inner: Arc<dyn Backend>,
    dir: PathBuf,
    /// Cached files verified in this process (path → length).
    verified: Mutex<std::collections::HashMap<String, u64>>,
    stats: CacheStats,
    tmp_counter: AtomicU64,
}

impl fmt::Debug for CachedBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CachedBackend({:?})", self.inner)
    }
}

/// The hash a content-addressed name promises, if `path` is one.
fn content_id(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next()?;
    (name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then_some(name)
}

fn matches_name(path: &str, bytes: &[u8]) -> bool {
    content_id(path).is_some_and(|id| blake3::hash(bytes).to_hex().as_str() == id)
}

fn cached_whole(path: &str) -> bool {
    content_id(path).is_some() && WHOLE.iter().any(|f| f.holds(path))
}

impl CachedBackend {
    /// Cache `inner`'s metadata in `dir` (created if missing).
    pub fn new(inner: Arc<dyn Backend>, dir: PathBuf) -> Result<CachedBackend> {
        fs::create_dir_all(&dir).map_err(|e| Error::InvalidLocation {
            location: dir.display().to_string(),
            reason: "cannot create the cache directory".into(),
            source: Some(e.into()),
        })?;
        // For people looking at the cache folder; errors do not matter.
        let _ = fs::write(dir.join("location"), inner.location());
        Ok(CachedBackend {
            inner,
            dir,
            verified: Mutex::new(std::collections::HashMap::new()),
            stats: CacheStats::default(),
            tmp_counter: AtomicU64::new(0),
        })
    }

    /// The cache folder of this repository.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Hit and miss counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    fn file(&self, path: &str) -> PathBuf {
        self.dir.join(path)
    }

    /// The cached object, if present and intact; a corrupt copy is removed.
    fn read_verified(&self, path: &str) -> Option<Bytes> {
        let bytes = fs::read(self.file(path)).ok()?;
        if matches_name(path, &bytes) {
            self.stats.hits.fetch_add(1, Ordering::Relaxed);
            Some(Bytes::from(bytes))
        } else {
            self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
            let _ = fs::remove_file(self.file(path));
            None
        }
    }

    /// Store `bytes` for `path` if they match its name; atomically (write a
    /// temporary file, then rename).
    fn store(&self, path: &str, bytes: &[u8]) {
        if !matches_name(path, bytes) {
            return;
        }
        let dest = self.file(path);
        let Some(parent) = dest.parent() else { return };
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = parent.join(format!(".tmp-{}-{n}", std::process::id()));
        let res = fs::create_dir_all(parent)
            .and_then(|_| fs::File::create(&tmp))
            .and_then(|mut f| f.write_all(bytes))
            .and_then(|_| fs::rename(&tmp, &dest));
        if res.is_err() {
            let _ = fs::remove_file(&tmp);
        }
    }

    fn forget(&self, path: &str) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(path);
        let _ = fs::remove_file(self.file(path));
    }

    /// Read `range` from a cached whole object verified in this process.
    fn read_range_cached(&self, path: &str, range: &Range<u64>) -> Option<Result<Bytes>> {
        let len = *self
            .verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)?;
        if range.end > len || range.start > range.end {
            return Some(Err(Error::Truncated {
                path: path.to_string(),
                start: range.start,
                end: range.end,
                len,
            }));
        }
        let f = fs::File::open(self.file(path)).ok()?;
        let mut buf = vec![0u8; (range.end - range.start) as usize];
        f.read_exact_at(&mut buf, range.start).ok()?;
        self.stats.hits.fetch_add(1, Ordering::Relaxed);
        Some(Ok(Bytes::from(buf)))
    }

    fn slice(path: &str, whole: &Bytes, range: Range<u64>) -> Result<Bytes> {
        let len = whole.len() as u64;
        if range.end > len || range.start > range.end {
            return Err(Error::Truncated {
                path: path.to_string(),
                start: range.start,
                end: range.end,
                len,
            });
        }
        Ok(whole.slice(range.start as usize..range.end as usize))
    }

    /// Remove cached objects under `prefix` that `listed` no longer has.
    fn drop_unlisted(&self, prefix: &str, listed: &[ObjectInfo]) {
        let live: HashSet<&str> = listed.iter().map(|o| o.path.as_str()).collect();
        let mut stack = vec![self.file(prefix)];
        while let Some(d) = stack.pop() {
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                    continue;
                }
                let Ok(rel) = p.strip_prefix(&self.dir) else {
                    continue;
                };
                let rel = rel.to_string_lossy();
                if content_id(&rel).is_some() && !live.contains(rel.as_ref()) {
                    self.forget(&rel);
                }
            }
        }
    }
}

impl Backend for CachedBackend {
    /// Staged objects bypass the cache: they are packs, which it keeps only
    /// as they are read.
    fn stage(&self) -> Result<Option<Box<dyn crate::StagedObject>>> {
        self.inner.stage()
    }

    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.put(path, data.clone())?;
        if cached_whole(path) {
            self.store(path, &data);
        }
        Ok(())
    }

    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.create(path, data.clone())?;
        if cached_whole(path) {
            self.store(path, &data);
        }
        Ok(())
    }

    fn get(&self, path: &str) -> Result<Bytes> {
        if !cached_whole(path) {
            return self.inner.get(path);
        }
        if let Some(b) = self.read_verified(path) {
            return Ok(b);
        }
        self.stats.misses.fetch_add(1, Ordering::Relaxed);
        let b = self.inner.get(path)?;
        self.store(path, &b);
        Ok(b)
    }

    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(path, range)
    }

    fn get_range_streamed(
        &self,
        path: &str,
        range: Range<u64>,
        sink: &mut dyn FnMut(Bytes) -> bool,
    ) -> Result<()> {
        self.inner.get_range_streamed(path, range, sink)
    }

    fn streams_ranges(&self) -> bool {
        self.inner.streams_ranges()
    }

    fn upload_parallelism(&self) -> usize {
        self.inner.upload_parallelism()
    }

    fn get_metadata_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        if content_id(path).is_none() || !PACKS.holds(path) {
            return self.inner.get_metadata_range(path, range);
        }
        if let Some(r) = self.read_range_cached(path, &range) {
            return r;
        }
        let whole = match self.read_verified(path) {
            Some(b) => b,
            None => {
                self.stats.misses.fetch_add(1, Ordering::Relaxed);
                let b = self.inner.get(path)?;
                if !matches_name(path, &b) {
                    // Damaged in the store: do not cache, let the layer
                    // above find out from the bytes it asked for.
                    return Self::slice(path, &b, range);
                }
                self.store(path, &b);
                b
            }
        };
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(path.to_string(), whole.len() as u64);
        Self::slice(path, &whole, range)
    }

    fn exclusive_create(&self) -> Result<bool> {
        self.inner.exclusive_create()
    }

    fn head(&self, path: &str) -> Result<ObjectInfo> {
        self.inner.head(path)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let listed = self.inner.list(prefix)?;
        let folder = |f: &Folder| prefix.strip_suffix('/') == Some(f.name());
        if WHOLE.iter().any(folder) || folder(&PACKS) {
            self.drop_unlisted(prefix, &listed);
        }
        Ok(listed)
    }

    fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path)?;
        self.forget(path);
        Ok(())
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectStoreBackend;
    use crate::testing::{FaultConfig, FaultyBackend, Op, pattern};

    fn named(folder: &str, bytes: &[u8]) -> String {
        format!("{folder}{}", blake3::hash(bytes).to_hex())
    }

    fn setup() -> (tempfile::TempDir, Arc<FaultyBackend>, CachedBackend) {
        let tmp = tempfile::tempdir().unwrap();
        let mem: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        let counted = Arc::new(FaultyBackend::new(mem, FaultConfig::default()));
        let c = CachedBackend::new(counted.clone(), tmp.path().join("c")).unwrap();
        (tmp, counted, c)
    }

    #[test]
    fn metadata_is_fetched_once_then_served_from_the_cache() {
        let (_tmp, counted, c) = setup();
        let seg = pattern(1, 1000);
        let p = named(&Folder::Index.prefix(), &seg);
        counted.put(&p, Bytes::from(seg.clone())).unwrap();
        for _ in 0..3 {
            assert_eq!(c.get(&p).unwrap().as_ref(), seg.as_slice());
        }
        assert_eq!(counted.stats().of(Op::Get), 1);
        // A second process (a new CachedBackend on the same folder) reads
        // the cache too.
        let c2 = CachedBackend::new(counted.clone(), c.dir().to_path_buf()).unwrap();
        assert_eq!(c2.get(&p).unwrap().as_ref(), seg.as_slice());
        assert_eq!(counted.stats().of(Op::Get), 1);
        // Mutable objects are never cached.
        counted.put("config", Bytes::from_static(b"c")).unwrap();
        c.get("config").unwrap();
        c.get("config").unwrap();
        assert_eq!(counted.stats().of(Op::Get), 3);
    }

    #[test]
    fn a_corrupt_cache_entry_is_refetched() {
        let (_tmp, counted, c) = setup();
        let snap = pattern(2, 300);
        let p = named(&Folder::Snapshots.prefix(), &snap);
        c.put(&p, Bytes::from(snap.clone())).unwrap();
        let file = c.dir().join(&p);
        assert!(file.is_file(), "put writes through to the cache");
        let mut bad = snap.clone();
        bad[17] ^= 1;
        fs::write(&file, &bad).unwrap();
        assert_eq!(c.get(&p).unwrap().as_ref(), snap.as_slice());
        assert_eq!(c.stats().corrupt.load(Ordering::Relaxed), 1);
        assert_eq!(counted.stats().of(Op::Get), 1);
        assert_eq!(fs::read(&file).unwrap(), snap, "repaired in the cache");
        // Truncated too.
        fs::write(&file, &snap[..10]).unwrap();
        assert_eq!(c.get(&p).unwrap().as_ref(), snap.as_slice());
        assert_eq!(c.stats().corrupt.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn tree_packs_are_fetched_whole_once() {
        let (_tmp, counted, c) = setup();
        let pack = pattern(3, 100_000);
        let p =
            lifeboat_format::layout::object_path(Folder::Data, &named("", &pack).parse().unwrap());
        counted.put(&p, Bytes::from(pack.clone())).unwrap();
        for i in 0..20u64 {
            let r = i * 1000..i * 1000 + 777;
            let got = c.get_metadata_range(&p, r.clone()).unwrap();
            assert_eq!(got.as_ref(), &pack[r.start as usize..r.end as usize]);
        }
        assert!(matches!(
            c.get_metadata_range(&p, 99_999..100_001),
            Err(Error::Truncated { len: 100_000, .. })
        ));
        let s = counted.stats();
        assert_eq!(s.of(Op::Get) + s.of(Op::GetRange), 1);
        // Data reads are not cached.
        c.get_range(&p, 0..10).unwrap();
        c.get_range(&p, 0..10).unwrap();
        assert_eq!(s.of(Op::GetRange), 2);
        // A corrupt cached pack is refetched by the next process.
        let file = c.dir().join(&p);
        let mut bad = pack.clone();
        bad[5] ^= 0xff;
        fs::write(&file, &bad).unwrap();
        let c2 = CachedBackend::new(counted.clone(), c.dir().to_path_buf()).unwrap();
        assert_eq!(
            c2.get_metadata_range(&p, 0..10).unwrap().as_ref(),
            &pack[..10]
        );
        assert_eq!(s.of(Op::Get), 2);
    }

    #[test]
    fn pruned_objects_leave_the_cache() {
        let (_tmp, counted, c) = setup();
        let a = pattern(4, 50);
        let b = pattern(5, 50);
        let index = Folder::Index.prefix();
        let (pa, pb) = (named(&index, &a), named(&index, &b));
        c.put(&pa, Bytes::from(a)).unwrap();
        c.put(&pb, Bytes::from(b)).unwrap();
        counted.delete(&pa).unwrap(); // deleted by someone else
        assert_eq!(c.list(&index).unwrap().len(), 1);
        assert!(!c.dir().join(&pa).exists());
        assert!(c.dir().join(&pb).exists());
        c.delete(&pb).unwrap();
        assert!(!c.dir().join(&pb).exists());
    }

    #[test]
    fn cache_dirs_differ_by_location() {
        let r = Path::new("/c");
        assert_ne!(cache_dir_for(r, "s3://a"), cache_dir_for(r, "s3://b"));
        assert_eq!(cache_dir_for(r, "s3://a"), cache_dir_for(r, "s3://a"));
    }
}
