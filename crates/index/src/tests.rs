#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Mutex;

use bytes::Bytes;
use lifeboat_format::{IndexEntry, PackBuilder, seal_blob};
use lifeboat_store::{ObjectInfo, ObjectStoreBackend};

use super::*;

fn pack_path(id: &Id) -> String {
    layout::object_path(Folder::Data, id)
}

fn segment_path(id: &Id) -> String {
    layout::object_path(Folder::Index, id)
}

fn mem() -> Arc<dyn Backend> {
    Arc::new(ObjectStoreBackend::memory().unwrap())
}

/// A deterministic id from two numbers.
fn id(a: u64, b: u64) -> Id {
    let mut s = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_add(0x1234_5678);
    let mut out = [0u8; 32];
    for c in out.chunks_mut(8) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        c.copy_from_slice(&s.to_le_bytes());
    }
    Id(out)
}

/// Pack `n` with `blobs` blobs whose ids derive from (n, i).
fn pack(n: u64, blobs: u64) -> IndexPack {
    IndexPack {
        id: id(n, u64::MAX),
        blob_type: if n % 5 == 0 {
            BlobType::Tree
        } else {
            BlobType::Data
        },
        size: 1000 + n,
        blobs: (0..blobs)
            .map(|i| IndexEntry {
                id: id(n, i),
                flags: BlobFlags((i % 2) as u8),
                offset: (i * 100) as u32,
                stored_len: 90 + i as u32,
                raw_len: 80 + i as u32,
            })
            .collect(),
    }
}

fn segment(packs: impl IntoIterator<Item = IndexPack>) -> IndexSegment {
    let mut s = IndexSegment::new();
    s.packs.extend(packs);
    s
}

/// Every (id, location) the packs describe, sorted.
fn expected(packs: &[IndexPack]) -> Vec<(Id, BlobLocation)> {
    let mut v: Vec<(Id, BlobLocation)> = packs
        .iter()
        .flat_map(|p| {
            p.blobs.iter().map(move |b| {
                (
                    b.id,
                    BlobLocation {
                        pack: p.id,
                        blob_type: p.blob_type,
                        flags: b.flags,
                        offset: b.offset,
                        stored_len: b.stored_len,
                        raw_len: b.raw_len,
                    },
                )
            })
        })
        .collect();
    v.sort_by_key(|(id, _)| *id);
    v
}

fn cached(dir: &Path) -> IndexOptions {
    IndexOptions {
        cache_dir: Some(dir.to_path_buf()),
        ..IndexOptions::default()
    }
}

#[test]
fn load_skips_superseded_segments() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let id1 = write_segment(&b, &k, &segment([pack(1, 1)])).unwrap();
    write_segment(&b, &k, &segment([pack(2, 1)])).unwrap();
    let idx = Index::load(&b, &k).unwrap();
    assert_eq!(idx.len(), 2);
    assert_eq!(idx.get(&id(1, 0)).unwrap().pack, id(1, u64::MAX));

    let mut s3 = IndexSegment::new();
    s3.supersedes.push(id1);
    write_segment(&b, &k, &s3).unwrap();
    let idx = Index::load(&b, &k).unwrap();
    assert_eq!(idx.len(), 1);
    assert!(!idx.contains(&id(1, 0)));
    assert_eq!(idx.segments().len(), 2);

    // Segments that do not open under the key are skipped, each with a
    // warning, rather than failing the load (issue 15).
    let other = MasterKey::generate().unwrap();
    let idx = Index::load(&b, &other).unwrap();
    assert_eq!(idx.len(), 0);
    let warnings = idx.take_warnings();
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(warnings.iter().all(|w| matches!(
        w,
        IndexWarning::DamagedSegment { source, .. } if matches!(**source, Error::Segment { .. })
    )));
}

#[test]
fn lookups_iteration_and_packs_match_the_segments() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let packs: Vec<IndexPack> = (0..200).map(|n| pack(n, 1 + n % 7)).collect();
    for chunk in packs.chunks(30) {
        write_segment(&b, &k, &segment(chunk.iter().cloned())).unwrap();
    }
    // A tiny sort budget forces spilled runs and a k-way merge.
    let opts = IndexOptions {
        sort_memory: 1,
        ..IndexOptions::default()
    };
    let idx = Index::open(&b, &k, &opts).unwrap();
    let want = expected(&packs);
    assert_eq!(idx.len(), want.len());
    assert_eq!(idx.duplicates(), 0);
    let got: Vec<(Id, BlobLocation)> = idx.iter().collect();
    assert_eq!(got, want);
    for (id, loc) in &want {
        assert_eq!(idx.get(id), Some(*loc));
        assert!(idx.contains(id));
    }
    assert_eq!(idx.get(&id(999, 0)), None);
    assert!(!idx.contains(&id(999, 0)));
    let mut got_packs: Vec<(Id, u64)> = idx.packs().collect();
    got_packs.sort();
    let mut want_packs: Vec<(Id, u64)> = packs.iter().map(|p| (p.id, p.size)).collect();
    want_packs.sort();
    assert_eq!(got_packs, want_packs);
    assert_eq!(idx.pack_size(&packs[3].id), Some(packs[3].size));
    assert_eq!(idx.segments().len(), 7);
}

#[test]
fn the_same_pack_in_two_segments_is_not_a_duplicate_but_a_moved_blob_is() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    write_segment(&b, &k, &segment([pack(1, 3), pack(2, 2)])).unwrap();
    write_segment(&b, &k, &segment([pack(1, 3)])).unwrap();
    let idx = Index::load(&b, &k).unwrap();
    assert_eq!(idx.len(), 5);
    assert_eq!(idx.duplicates(), 0);
    assert_eq!(idx.packs().count(), 2);

    // Blob id(1, 0) also in another pack.
    let mut p = pack(3, 1);
    p.blobs[0].id = id(1, 0);
    write_segment(&b, &k, &segment([p])).unwrap();
    let idx = Index::load(&b, &k).unwrap();
    assert_eq!(idx.len(), 5);
    assert_eq!(idx.duplicates(), 1);
}

#[test]
fn cached_table_is_reused_and_refreshed_incrementally() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for s in 0..4 {
        let ps: Vec<IndexPack> = (s * 10..s * 10 + 10).map(|n| pack(n, 3)).collect();
        write_segment(&b, &k, &segment(ps.iter().cloned())).unwrap();
        all.extend(ps);
    }
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    let st = idx.load_stats();
    assert!(st.full_build && !st.cache_used);
    assert_eq!(st.segments_read, 4);
    let path = st.table_path.clone().unwrap();
    assert!(path.starts_with(cache.path()));
    drop(idx);

    // Nothing new: the table is reused and no segment is read.
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    let st = idx.load_stats();
    assert!(st.cache_used && !st.full_build);
    assert_eq!(st.segments_read, 0);
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&all));

    // Two new segments: only they are read.
    let mut idx = idx;
    for s in 4..6 {
        let ps: Vec<IndexPack> = (s * 10..s * 10 + 10).map(|n| pack(n, 3)).collect();
        write_segment(&b, &k, &segment(ps.iter().cloned())).unwrap();
        all.extend(ps);
    }
    idx.refresh(&b, &k).unwrap();
    let st = idx.load_stats();
    assert!(!st.full_build);
    assert_eq!(st.segments_read, 2);
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&all));
    assert_eq!(idx.segments().len(), 6);
    drop(idx);

    // And a later process sees all six without reading any.
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert_eq!(idx.load_stats().segments_read, 0);
    assert_eq!(idx.len(), 180);
}

#[test]
fn a_tampered_or_foreign_table_is_rebuilt_not_trusted() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let packs: Vec<IndexPack> = (0..20).map(|n| pack(n, 4)).collect();
    write_segment(&b, &k, &segment(packs.iter().cloned())).unwrap();
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    let path = idx.load_stats().table_path.clone().unwrap();
    drop(idx);

    // Point blob (0, 0) at another offset: a valid-looking table.
    let mut bytes = std::fs::read(&path).unwrap();
    let target = id(0, 0);
    let at = bytes
        .windows(32)
        .rposition(|w| w == target.0)
        .expect("blob id in table");
    bytes[at + 36] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    let st = idx.load_stats();
    assert!(!st.cache_used && st.full_build);
    assert!(
        st.cache_rejected.as_deref().unwrap().contains("MAC"),
        "{st:?}"
    );
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&packs));
    drop(idx);

    // Truncated.
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert!(idx.load_stats().cache_rejected.is_some());
    assert_eq!(idx.len(), 80);
    drop(idx);

    // A valid table of another repository (other key) in the same place.
    let b2 = mem();
    let k2 = MasterKey::generate().unwrap();
    write_segment(&b2, &k2, &segment([pack(77, 2)])).unwrap();
    drop(Index::open(&b2, &k2, &cached(cache.path())).unwrap());
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert!(idx.load_stats().cache_rejected.is_some());
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&packs));
}

#[test]
fn a_superseded_or_deleted_segment_forces_a_full_build() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let s1 = write_segment(&b, &k, &segment([pack(1, 2)])).unwrap();
    let s2 = write_segment(&b, &k, &segment([pack(2, 2)])).unwrap();
    let mut idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert_eq!(idx.len(), 4);

    // "Prune": a segment replacing s1 and s2 without pack 1.
    let mut s3 = segment([pack(2, 2)]);
    s3.supersedes = vec![s1, s2];
    write_segment(&b, &k, &s3).unwrap();
    idx.refresh(&b, &k).unwrap();
    assert!(idx.load_stats().full_build);
    assert_eq!(idx.len(), 2);
    assert!(!idx.contains(&id(1, 0)));

    // Every segment deleted, no superseder: the table must not keep them.
    for o in b.list(&Folder::Index.prefix()).unwrap() {
        b.delete(&o.path).unwrap();
    }
    idx.refresh(&b, &k).unwrap();
    assert!(idx.load_stats().full_build);
    assert!(idx.is_empty());
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert!(idx.is_empty());
}

#[test]
fn delta_holds_added_blobs_until_a_refresh_merges_them() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    write_segment(&b, &k, &segment([pack(1, 3)])).unwrap();
    let mut idx = Index::load(&b, &k).unwrap();
    let p = pack(2, 4);
    idx.add_pack(&p);
    idx.add_pack(&pack(1, 3)); // already in the table: no change
    assert_eq!(idx.len(), 7);
    assert_eq!(idx.duplicates(), 0);
    assert!(idx.contains(&id(2, 3)));
    assert_eq!(idx.packs().count(), 2);
    let all: Vec<Id> = idx.iter().map(|(id, _)| id).collect();
    assert!(all.windows(2).all(|w| w[0] < w[1]), "iter is in id order");
    assert_eq!(all.len(), 7);

    let sid = write_segment(&b, &k, &segment([p])).unwrap();
    idx.refresh(&b, &k).unwrap();
    assert_eq!(idx.len(), 7);
    assert!(idx.delta.is_empty());
    assert!(idx.segments().contains(&sid));
}

#[test]
fn used_blobs_marks_table_and_delta_blobs_with_a_bit_each() {
    let packs: Vec<IndexPack> = (0..50).map(|n| pack(n, 10)).collect();
    let k = MasterKey::generate().unwrap();
    let mut idx = Index::from_packs(packs.clone(), &k, &IndexOptions::default()).unwrap();
    idx.add_pack(&pack(100, 5));
    let mut used = UsedBlobs::new(&idx);
    assert!(used.memory_bytes() < 100 + 500 / 8);
    assert_eq!(used.insert(&id(3, 4)), Some(true));
    assert_eq!(used.insert(&id(3, 4)), Some(false));
    assert_eq!(used.insert(&id(100, 1)), Some(true));
    assert_eq!(used.insert(&id(999, 1)), None);
    assert!(used.contains(&id(3, 4)) && used.contains(&id(100, 1)));
    assert!(!used.contains(&id(3, 5)));
    assert_eq!(used.len(), 2);
    let unused: Vec<Id> = used.unused().map(|(id, _)| id).collect();
    assert_eq!(unused.len(), 505 - 2);
    assert!(!unused.contains(&id(3, 4)) && !unused.contains(&id(100, 1)));
    assert!(unused.contains(&id(100, 2)));
}

/// A backend that, on the first read of `victim`, lets a "concurrent
/// compaction" write a superseding segment and delete the victim.
#[derive(Debug)]
struct RacingCompaction {
    inner: Arc<dyn Backend>,
    key: MasterKey,
    victim: Mutex<Option<(Id, IndexSegment)>>,
}

impl Backend for RacingCompaction {
    fn put(&self, path: &str, data: Bytes) -> lifeboat_store::Result<()> {
        self.inner.put(path, data)
    }
    fn create(&self, path: &str, data: Bytes) -> lifeboat_store::Result<()> {
        self.inner.create(path, data)
    }
    fn get(&self, path: &str) -> lifeboat_store::Result<Bytes> {
        let mut v = self.victim.lock().unwrap();
        if let Some((vid, seg)) = v.as_ref() {
            if path == segment_path(vid) {
                let mut s = seg.clone();
                s.supersedes = vec![*vid];
                write_segment(&self.inner, &self.key, &s).unwrap();
                self.inner.delete(path)?;
                *v = None;
            }
        }
        drop(v);
        self.inner.get(path)
    }
    fn get_range(&self, path: &str, range: std::ops::Range<u64>) -> lifeboat_store::Result<Bytes> {
        self.inner.get_range(path, range)
    }
    fn head(&self, path: &str) -> lifeboat_store::Result<ObjectInfo> {
        self.inner.head(path)
    }
    fn list(&self, prefix: &str) -> lifeboat_store::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> lifeboat_store::Result<()> {
        self.inner.delete(path)
    }
    fn location(&self) -> String {
        "racing".into()
    }
}

#[test]
fn a_segment_compacted_away_during_load_is_found_in_its_superseder() {
    let inner = mem();
    let k = MasterKey::generate().unwrap();
    let seg = segment([pack(1, 3), pack(2, 3)]);
    let vid = write_segment(&inner, &k, &seg).unwrap();
    write_segment(&inner, &k, &segment([pack(3, 3)])).unwrap();
    let b: Arc<dyn Backend> = Arc::new(RacingCompaction {
        inner: inner.clone(),
        key: k.clone(),
        victim: Mutex::new(Some((vid, seg))),
    });
    let idx = Index::load(&b, &k).unwrap();
    assert_eq!(idx.len(), 9);
    assert!(idx.contains(&id(1, 2)));
    assert!(!idx.segments().contains(&vid));
}

#[test]
fn compaction_merges_small_segments_and_keeps_every_blob() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let mut all = Vec::new();
    let mut first = None;
    for s in 0..12 {
        let ps: Vec<IndexPack> = (s * 5..s * 5 + 5).map(|n| pack(n, 4)).collect();
        let sid = write_segment(&b, &k, &segment(ps.iter().cloned())).unwrap();
        first.get_or_insert(sid);
        all.extend(ps);
    }
    // One segment superseded (by a copy) already but still listed.
    let mut sup = segment(all[..5].iter().cloned());
    sup.supersedes = vec![first.unwrap()];
    write_segment(&b, &k, &sup).unwrap();

    let opts = CompactOptions {
        target_blobs: 100,
        sort_memory: 1,
        ..CompactOptions::default()
    };
    let r = compact(&b, &k, &opts, &IndexProgress::default()).unwrap();
    assert_eq!(r.segments_listed, 13);
    assert_eq!(r.segments_merged, 12);
    assert_eq!(r.packs, 60);
    assert_eq!(r.blobs, 240);
    assert_eq!(r.written.len(), 3, "240 blobs at 100 per segment");
    assert_eq!(r.deleted.len(), 13);
    assert!(r.delete_errors.is_empty());
    let left = list_ids(&b);
    let mut written = r.written.clone();
    written.sort();
    assert_eq!(left, written);
    let idx = Index::load(&b, &k).unwrap();
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&all));
    assert_eq!(idx.duplicates(), 0);

    // Nothing left to do: two segments of 100 are not small.
    let r = compact(&b, &k, &opts, &IndexProgress::default()).unwrap();
    assert!(r.written.is_empty() && r.deleted.is_empty(), "{r:?}");
}

fn list_ids(b: &Arc<dyn Backend>) -> Vec<Id> {
    build::list_segments(b).unwrap()
}

#[test]
fn compaction_refuses_to_touch_an_undecodable_index() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    write_segment(&b, &k, &segment([pack(1, 2)])).unwrap();
    write_segment(&b, &k, &segment([pack(2, 2)])).unwrap();
    let bad = b"not a segment".to_vec();
    let bad_id = Id::of_object(&bad);
    b.put(&segment_path(&bad_id), bad.into()).unwrap();
    let before = list_ids(&b);
    let e = compact(
        &b,
        &k,
        &CompactOptions::default(),
        &IndexProgress::default(),
    )
    .unwrap_err();
    assert!(matches!(e, Error::Segment { .. }), "{e}");
    assert_eq!(list_ids(&b), before);
}

/// Real packs holding real sealed blobs.
fn store_packs(b: &Arc<dyn Backend>, k: &MasterKey, n: usize) -> Vec<IndexPack> {
    let mut out = Vec::new();
    for i in 0..n {
        let t = if i % 3 == 2 {
            BlobType::Tree
        } else {
            BlobType::Data
        };
        let mut pb = PackBuilder::new(t, 0);
        for j in 0..(i + 1) {
            let data = format!("blob {i} {j} ").repeat(50 * j + 1);
            pb.add(&seal_blob(k, t, data.as_bytes(), 3).unwrap())
                .unwrap();
        }
        let (bytes, pid, entries) = pb.finish(k).unwrap();
        let size = bytes.len() as u64;
        b.put(&pack_path(&pid), bytes.into()).unwrap();
        out.push(IndexPack {
            id: pid,
            blob_type: t,
            size,
            blobs: entries.iter().map(IndexEntry::from).collect(),
        });
    }
    out
}

#[test]
fn rebuild_restores_the_index_from_pack_headers() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let packs = store_packs(&b, &k, 9);
    write_segment(&b, &k, &segment(packs[..4].iter().cloned())).unwrap();
    // A damaged segment and a junk name: rebuild supersedes and removes both.
    let bad = b"garbage".to_vec();
    b.put(&segment_path(&Id::of_object(&bad)), bad.into())
        .unwrap();
    let junk = format!("{}not-an-id", Folder::Index.prefix());
    b.put(&junk, Bytes::from_static(b"x")).unwrap();
    // Loading skips both with a warning; a lookup that misses finds the
    // blobs of the five packs no segment lists from their headers.
    let idx = Index::load(&b, &k).unwrap();
    let warnings = idx.take_warnings();
    assert!(
        matches!(
            warnings.as_slice(),
            [
                IndexWarning::StrayName { .. },
                IndexWarning::DamagedSegment { .. }
            ]
        ),
        "{warnings:?}"
    );
    let unindexed = packs[4].blobs[0].id;
    assert!(!idx.contains(&unindexed));
    assert_eq!(idx.get(&unindexed).map(|l| l.pack), Some(packs[4].id));
    // A backup must store it again rather than reference an unindexed pack.
    assert!(!idx.contains(&unindexed));
    let recovered = idx.take_warnings();
    assert_eq!(recovered.len(), 5, "{recovered:?}");
    assert!(
        recovered
            .iter()
            .all(|w| matches!(w, IndexWarning::UnindexedPack { .. }))
    );
    // A pack with a broken trailer is reported, not indexed.
    b.put(
        &pack_path(&Id([9; 32])),
        Bytes::from_static(b"definitely not a pack"),
    )
    .unwrap();

    let opts = RebuildOptions {
        target_blobs: 10,
        read_concurrency: 3,
    };
    let r = rebuild(&b, &k, &opts, &IndexProgress::default()).unwrap();
    assert_eq!(r.packs_listed, 10);
    assert_eq!(r.packs_indexed, 9);
    assert_eq!(r.unreadable.len(), 1);
    assert_eq!(r.blobs, 45);
    assert_eq!(r.superseded.len(), 2);
    assert_eq!(r.junk, vec![junk]);
    assert!(r.delete_errors.is_empty());
    assert!(r.written.len() >= 4);
    let idx = Index::load(&b, &k).unwrap();
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&packs));
    assert_eq!(idx.segments().len(), r.written.len());
}

/// A backend whose ranged reads of packs time out, as a store under load
/// does, while everything else works.
#[derive(Debug)]
struct TimingOutPackReads {
    inner: Arc<dyn Backend>,
}

impl Backend for TimingOutPackReads {
    fn put(&self, path: &str, data: Bytes) -> lifeboat_store::Result<()> {
        self.inner.put(path, data)
    }
    fn create(&self, path: &str, data: Bytes) -> lifeboat_store::Result<()> {
        self.inner.create(path, data)
    }
    fn get(&self, path: &str) -> lifeboat_store::Result<Bytes> {
        self.inner.get(path)
    }
    fn get_range(&self, path: &str, range: std::ops::Range<u64>) -> lifeboat_store::Result<Bytes> {
        if Folder::Data.holds(path) {
            return Err(lifeboat_store::Error::unavailable(
                path,
                std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"),
            ));
        }
        self.inner.get_range(path, range)
    }
    fn head(&self, path: &str) -> lifeboat_store::Result<ObjectInfo> {
        self.inner.head(path)
    }
    fn list(&self, prefix: &str) -> lifeboat_store::Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }
    fn delete(&self, path: &str) -> lifeboat_store::Result<()> {
        self.inner.delete(path)
    }
    fn location(&self) -> String {
        "timing out".into()
    }
}

#[test]
fn rebuild_stops_on_a_store_timeout_and_leaves_the_old_segments() {
    let plain = mem();
    let k = MasterKey::generate().unwrap();
    let packs = store_packs(&plain, &k, 6);
    write_segment(&plain, &k, &segment(packs[..3].iter().cloned())).unwrap();
    write_segment(&plain, &k, &segment(packs[3..].iter().cloned())).unwrap();
    let before = list_ids(&plain);
    assert_eq!(before.len(), 2);

    let slow: Arc<dyn Backend> = Arc::new(TimingOutPackReads {
        inner: plain.clone(),
    });
    let opts = RebuildOptions {
        target_blobs: 1000,
        read_concurrency: 3,
    };
    let e = rebuild(&slow, &k, &opts, &IndexProgress::default()).unwrap_err();
    assert!(e.is_transient(), "{e:?}");
    assert!(matches!(e, Error::RebuildStopped { .. }), "{e:?}");
    // The chain goes through the store's error down to the timeout.
    let mut chain = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cur {
        chain.push(c);
        cur = c.source();
    }
    let store_err = chain
        .iter()
        .find_map(|c| c.downcast_ref::<lifeboat_store::Error>())
        .unwrap_or_else(|| panic!("no store error in the chain of {e:?}"));
    assert!(store_err.is_transient());
    let timeout = chain
        .iter()
        .find_map(|c| c.downcast_ref::<std::io::Error>())
        .unwrap_or_else(|| panic!("no I/O error in the chain of {e:?}"));
    assert_eq!(timeout.kind(), std::io::ErrorKind::TimedOut);
    assert!(e.to_string().contains("timed out"), "{e}");
    // Every old segment is still there, and the index still loads whole.
    let after = list_ids(&plain);
    assert!(
        before.iter().all(|s| after.contains(s)),
        "{before:?} vs {after:?}"
    );
    let idx = Index::load(&plain, &k).unwrap();
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&packs));

    // A really truncated pack is still reported as damaged and left out.
    let victim = pack_path(&packs[0].id);
    let bytes = plain.get(&victim).unwrap();
    plain.put(&victim, bytes.slice(..bytes.len() - 40)).unwrap();
    let r = rebuild(&plain, &k, &opts, &IndexProgress::default()).unwrap();
    assert_eq!(r.packs_listed, 6);
    assert_eq!(r.packs_indexed, 5);
    assert_eq!(r.unreadable.len(), 1);
    assert_eq!(r.unreadable[0].path, victim);
    assert!(
        matches!(r.unreadable[0].reason, PackDamage::Header(_)),
        "{:?}",
        r.unreadable[0].reason
    );
    let idx = Index::load(&plain, &k).unwrap();
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&packs[1..]));
}

#[test]
fn rebuild_reads_headers_larger_than_the_first_ranged_read() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    // 500 blobs: a 23 KB header, more than the 16 KiB first read.
    let mut pb = PackBuilder::new(BlobType::Data, 0);
    for j in 0..500 {
        pb.add(&seal_blob(&k, BlobType::Data, format!("b{j}").as_bytes(), 0).unwrap())
            .unwrap();
    }
    let (bytes, pid, entries) = pb.finish(&k).unwrap();
    b.put(&pack_path(&pid), bytes.into()).unwrap();
    let r = rebuild(
        &b,
        &k,
        &RebuildOptions::default(),
        &IndexProgress::default(),
    )
    .unwrap();
    assert_eq!(r.blobs, 500);
    let idx = Index::load(&b, &k).unwrap();
    for e in &entries {
        let l = idx.get(&e.id).unwrap();
        assert_eq!(
            (l.pack, l.offset, l.stored_len),
            (pid, e.offset, e.stored_len)
        );
    }
}

#[test]
fn ids_sharing_a_prefix_across_pages_are_all_found() {
    // 400 ids with one 8-byte prefix span five blob pages of 85 records:
    // the fence cannot tell those pages apart.
    let mut p = pack(1, 400);
    for (i, b) in p.blobs.iter_mut().enumerate() {
        b.id.0[..8].copy_from_slice(&[0x42; 8]);
        b.id.0[8..16].copy_from_slice(&(i as u64).to_be_bytes());
    }
    let packs = vec![p, pack(2, 300), pack(3, 7)];
    let k = MasterKey::generate().unwrap();
    let idx = Index::from_packs(packs.clone(), &k, &IndexOptions::default()).unwrap();
    let want = expected(&packs);
    assert_eq!(idx.len(), 707);
    for (id, loc) in &want {
        assert_eq!(idx.get(id), Some(*loc), "{id}");
    }
    let mut absent = want[0].0;
    absent.0[..8].copy_from_slice(&[0x42; 8]);
    absent.0[8..16].copy_from_slice(&1000u64.to_be_bytes());
    assert!(!idx.contains(&absent));
    assert_eq!(idx.iter().collect::<Vec<_>>(), want);
}

#[test]
fn empty_tables_work() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert!(idx.is_empty());
    assert!(!idx.contains(&id(1, 1)));
    assert_eq!(idx.iter().count(), 0);
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert!(idx.load_stats().cache_used);
    // Segments without packs.
    write_segment(&b, &k, &IndexSegment::new()).unwrap();
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert!(idx.is_empty());
    assert_eq!(idx.segments().len(), 1);
}

#[test]
fn mapped_and_read_lookups_agree() {
    let packs: Vec<IndexPack> = (0..300).map(|n| pack(n, 1 + n % 9)).collect();
    let want = expected(&packs);
    let k = MasterKey::generate().unwrap();
    let opts = IndexOptions {
        lookups: Lookups::Mapped,
        release_every: 7,
        ..IndexOptions::default()
    };
    let mut idx = Index::from_packs(packs.clone(), &k, &opts).unwrap();
    for mode in [Lookups::Mapped, Lookups::Read] {
        idx.set_lookups(mode, 7);
        for (id, loc) in &want {
            assert_eq!(idx.get(id), Some(*loc), "{mode:?}");
        }
        assert!(!idx.contains(&id(5000, 1)));
        for p in &packs {
            assert_eq!(idx.pack_size(&p.id), Some(p.size), "{mode:?}");
        }
        assert_eq!(idx.pack_size(&id(5000, 1)), None);
        assert_eq!(idx.iter().collect::<Vec<_>>(), want);
    }
    // The fence and segment list, not the blobs: 8 bytes per 85 blobs.
    assert!(idx.heap_bytes() < 4096, "{}", idx.heap_bytes());
}

#[test]
fn small_refreshes_go_to_an_overlay_until_it_outgrows_an_eighth_of_the_base() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut all: Vec<IndexPack> = (0..100).map(|n| pack(n, 10)).collect();
    write_segment(&b, &k, &segment(all.iter().cloned())).unwrap();
    let mut idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    assert!(idx.load_stats().overlay_path.is_none());

    // 50 new blobs, one shared pack with a moved blob: an overlay.
    let mut moved = pack(3, 10);
    moved.blobs[0].offset += 1;
    let new: Vec<IndexPack> = (100..105).map(|n| pack(n, 10)).collect();
    write_segment(&b, &k, &segment(new.iter().cloned().chain([moved]))).unwrap();
    all.extend(new);
    idx.refresh(&b, &k).unwrap();
    let st = idx.load_stats().clone();
    assert_eq!(st.segments_read, 1);
    assert!(!st.full_build);
    let overlay = st.overlay_path.clone().expect("an overlay");
    assert!(overlay.is_file());
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&all));
    assert_eq!(idx.len(), 1050);
    assert_eq!(idx.pack_count(), 105);
    assert_eq!(idx.packs().count(), 105);
    assert_eq!(idx.duplicates(), 1);
    assert_eq!(idx.segments().len(), 2);
    let mut used = UsedBlobs::new(&idx);
    for (id, _) in expected(&all) {
        assert_eq!(used.insert(&id), Some(true));
    }
    assert_eq!(used.unused().count(), 0);
    drop(used);
    drop(idx);

    // A later process uses base and overlay as they are.
    let mut idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    let st = idx.load_stats();
    assert!(st.cache_used && st.segments_read == 0, "{st:?}");
    assert_eq!(st.overlay_path.as_deref(), Some(overlay.as_path()));
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&all));

    // Past 1/8 of the base: everything goes into a new base.
    let more: Vec<IndexPack> = (200..210).map(|n| pack(n, 10)).collect();
    write_segment(&b, &k, &segment(more.iter().cloned())).unwrap();
    all.extend(more);
    idx.refresh(&b, &k).unwrap();
    let st = idx.load_stats();
    assert!(st.overlay_path.is_none(), "{st:?}");
    assert_eq!(st.segments_read, 2, "the overlay's segment is read again");
    assert!(!overlay.exists());
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&all));
    assert_eq!(idx.pack_count(), 115);
    assert_eq!(idx.duplicates(), 1);
}

#[test]
fn a_tampered_overlay_is_dropped_and_its_segments_read_again() {
    let b = mem();
    let k = MasterKey::generate().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut all: Vec<IndexPack> = (0..100).map(|n| pack(n, 10)).collect();
    write_segment(&b, &k, &segment(all.iter().cloned())).unwrap();
    drop(Index::open(&b, &k, &cached(cache.path())).unwrap());
    let new = vec![pack(500, 20)];
    write_segment(&b, &k, &segment(new.iter().cloned())).unwrap();
    all.extend(new);
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    let overlay = idx.load_stats().overlay_path.clone().unwrap();
    drop(idx);
    let mut bytes = std::fs::read(&overlay).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&overlay, &bytes).unwrap();
    let idx = Index::open(&b, &k, &cached(cache.path())).unwrap();
    let st = idx.load_stats();
    assert!(st.cache_used && !st.full_build, "{st:?}");
    assert!(
        st.cache_rejected.as_deref().unwrap().contains("MAC"),
        "{st:?}"
    );
    assert_eq!(st.segments_read, 1);
    assert_eq!(idx.iter().collect::<Vec<_>>(), expected(&all));
}
