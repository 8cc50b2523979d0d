//! The structural pass before the walk: key slots, one listing of the packs
//! against the index, the headers of packs that no index lists, and blobs
//! stored twice.

use lifeboat_core::internals::RepositoryInternals as _;
use std::collections::{BTreeMap, BTreeSet, HashSet};

use lifeboat_format::layout::{Folder, id_of_path};
use lifeboat_format::{Id, IndexSegment, KeySlot};

use crate::error::Result;
use crate::report::Category;
use crate::state::{Loc, Orphan, ReadErr, State};

/// Key slots: each must hash to its name and be a well-formed slot. A
/// slot's password cannot be tried without the password, so a slot whose
/// wrapped key was changed is found by its name.
pub(crate) fn check_keys(st: &mut State<'_>) -> Result<()> {
    for obj in st.backend.list(&Folder::Keys.prefix())? {
        st.report.keys += 1;
        let bytes = match st.backend.get(&obj.path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                st.report.unchecked.push(format!("{}: {e}", obj.path));
                continue;
            }
        };
        let problem = if id_of_path(&obj.path) != Some(Id::of_object(&bytes)) {
            Some("content does not hash to its name".to_string())
        } else {
            match KeySlot::from_json(&bytes) {
                Err(e) => Some(format!("not a valid key slot: {e}")),
                Ok(s) => s.check_shape().err().map(|e| e.to_string()),
            }
        };
        if let Some(p) = problem {
            st.findings.add(
                Category::CorruptKeySlot,
                &obj.path,
                format!("{p}; the password of this slot no longer opens the repository"),
            );
        }
    }
    Ok(())
}

/// One listing of the packs against the index. Returns the listing of the
/// index segments.
pub(crate) fn check_packs(st: &mut State<'_>) -> Result<Vec<String>> {
    for o in st.backend.list(&Folder::Data.prefix())? {
        let Some(id) = id_of_path(&o.path) else {
            continue;
        };
        st.packs.entry(id).or_default().listed = Some(o.size);
    }
    let segments: Vec<String> = st
        .backend
        .list(&Folder::Index.prefix())?
        .into_iter()
        .map(|o| o.path)
        .collect();
    st.report.index_segments = segments.len() as u64;
    {
        let index = st.repo.index();
        for (id, size) in index.packs() {
            st.packs.entry(id).or_default().indexed = Some(size);
        }
    }
    st.report.packs = st.packs.values().filter(|p| p.listed.is_some()).count() as u64;
    let mut ids: Vec<Id> = st.packs.keys().copied().collect();
    ids.sort();
    for id in ids {
        let pack = st.packs[&id];
        match (pack.listed, pack.indexed) {
            (None, Some(i)) => st.findings.add(
                Category::MissingPack,
                id,
                format!("pack is in the index ({i} bytes) but not in the store"),
            ),
            (Some(l), Some(i)) if l < i => st.findings.add(
                Category::WrongSizePack,
                id,
                format!(
                    "pack is truncated: {l} bytes in the store, the index says {i}; \
                     blobs past byte {l} are lost"
                ),
            ),
            (Some(l), Some(i)) if l > i => st.findings.add(
                Category::WrongSizePack,
                id,
                format!("pack has {l} bytes in the store, the index says {i}"),
            ),
            (Some(l), None) => {
                st.orphans.insert(
                    id,
                    Orphan {
                        size: l,
                        header: None,
                    },
                );
            }
            _ => {}
        }
    }
    Ok(segments)
}

/// Headers of packs that no index lists: a missing index segment leaves
/// its packs like this, and the walk looks for needed blobs here.
pub(crate) fn read_orphan_headers(st: &mut State<'_>) {
    let ids: Vec<(Id, u64)> = st.orphans.iter().map(|(id, o)| (*id, o.size)).collect();
    for (id, size) in ids {
        let header = match st.read_header(&id, size) {
            Ok(h) => Some(h),
            Err(ReadErr::Store(e)) => {
                st.report
                    .unchecked
                    .push(format!("header of pack {id}: {e}"));
                None
            }
            Err(ReadErr::NotFound(_)) => {
                // Deleted since the listing (prune): nothing to check.
                st.orphans.remove(&id);
                continue;
            }
            Err(e @ (ReadErr::Corrupt(_) | ReadErr::Truncated(_))) => {
                st.orphan_notes
                    .entry(id)
                    .or_default()
                    .push(format!("its header cannot be read: {e}"));
                None
            }
        };
        if let Some(h) = &header {
            for e in h {
                st.orphan_blobs
                    .entry(e.id)
                    .or_insert_with(|| Loc::from_header(id, e));
            }
        }
        if let Some(o) = st.orphans.get_mut(&id) {
            o.header = header;
        }
    }
}

/// Blobs indexed in more than one pack. The merged index keeps one
/// location per blob; an entry of a live segment that points elsewhere
/// is a duplicate.
pub(crate) fn check_duplicates(st: &mut State<'_>, segments: &[String]) {
    let dups = st.repo.index().duplicates();
    if dups == 0 {
        return;
    }
    let mut decoded: Vec<(Id, IndexSegment)> = Vec::new();
    for path in segments {
        let Some(id) = id_of_path(path) else {
            continue;
        };
        let bytes = match st.backend.get(path) {
            Ok(b) => b,
            Err(e) => {
                st.report.unchecked.push(format!("{path}: {e}"));
                continue;
            }
        };
        match IndexSegment::decode(st.key(), &bytes) {
            Ok(s) => decoded.push((id, s)),
            Err(e) => st.report.unchecked.push(format!("{path}: {e}")),
        }
    }
    let superseded: HashSet<Id> = decoded
        .iter()
        .flat_map(|(_, s)| s.supersedes.iter().copied())
        .collect();
    let mut copies: BTreeMap<Id, BTreeSet<Id>> = BTreeMap::new();
    {
        let index = st.repo.index();
        for (id, seg) in &decoded {
            if superseded.contains(id) {
                continue;
            }
            for p in &seg.packs {
                for b in &p.blobs {
                    if let Some(l) = index.get(&b.id) {
                        if l.pack != p.id {
                            let c = copies.entry(b.id).or_default();
                            c.insert(p.id);
                            c.insert(l.pack);
                            st.other_copies.entry(b.id).or_default().push(Loc {
                                pack: p.id,
                                blob_type: p.blob_type,
                                flags: b.flags,
                                offset: b.offset,
                                stored_len: b.stored_len,
                                raw_len: b.raw_len,
                            });
                        }
                    }
                }
            }
        }
    }
    if copies.is_empty() {
        st.findings.add(
            Category::DuplicateBlob,
            // The object is the index as a whole.
            Folder::Index.name(),
            format!("{dups} blob entries are listed more than once for the same pack"),
        );
    }
    let index = st.repo.index();
    for (blob, packs) in copies {
        let used = index.get(&blob).map(|l| l.pack.short()).unwrap_or_default();
        let names: Vec<String> = packs.iter().map(Id::short).collect();
        st.findings.add(
            Category::DuplicateBlob,
            blob,
            format!(
                "blob is stored in packs {} (reads use {used})",
                names.join(", ")
            ),
        );
    }
}
