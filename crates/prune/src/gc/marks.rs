//! Mark objects (`marks/<id>`): which packs and leftovers a prune found
//! unused, and since when. Each prune writes one new object holding every
//! mark that still holds, naming the objects it replaces in `supersedes`,
//! and only then deletes them; so a mark is visible without a gap from the
//! run that made it until the run that drops it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{Id, MarkedObject, MasterKey, PRUNE_OBJECT_VERSION, PruneMarks};
use lifeboat_store::Backend;

use super::options::{Error, Result};

/// The marks found on the store.
#[derive(Debug, Default)]
pub(crate) struct Marks {
    /// Marked objects by path, merged over the live mark objects (the
    /// latest deletion time wins).
    pub objects: BTreeMap<String, MarkedObject>,
    /// Every mark object listed (live or superseded): the next one
    /// supersedes them all.
    pub listed: Vec<Id>,
}

/// Read every mark object. One that does not open is an error: guessing
/// what it marked could delete too early.
pub(crate) fn read(backend: &Arc<dyn Backend>, key: &MasterKey) -> Result<Marks> {
    let mut marks = Marks::default();
    let mut read = Vec::new();
    let mut superseded = HashSet::new();
    for obj in backend.list(&Folder::Marks.prefix())? {
        let Some(id) = layout::id_of_path(&obj.path) else {
            continue;
        };
        let bytes = match backend.get(&obj.path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        let m = PruneMarks::decode(key, &bytes).map_err(|e| Error::Format {
            what: obj.path.clone(),
            source: e,
        })?;
        marks.listed.push(id);
        superseded.extend(m.supersedes.iter().copied());
        read.push((id, m));
    }
    for (id, m) in read {
        if superseded.contains(&id) {
            continue;
        }
        for o in m.objects {
            match marks.objects.get(&o.path) {
                Some(old) if old.delete_after >= o.delete_after => {}
                _ => {
                    marks.objects.insert(o.path.clone(), o);
                }
            }
        }
    }
    Ok(marks)
}

/// Write a mark object holding `objects` that supersedes `old`, then delete
/// `old`. With nothing left to mark, only deletes `old` (a crash part-way
/// leaves some of them live, whose marks were visible all along anyway).
pub(crate) fn write(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    created: u64,
    objects: Vec<MarkedObject>,
    old: &[Id],
) -> Result<Option<Id>> {
    let mut new = None;
    if !objects.is_empty() {
        let m = PruneMarks {
            version: PRUNE_OBJECT_VERSION,
            created,
            supersedes: old.to_vec(),
            objects,
        };
        let bytes = m.encode(key).map_err(|e| Error::Format {
            what: "prune marks".into(),
            source: e,
        })?;
        let id = Id::of_object(&bytes);
        backend.put(&layout::object_path(Folder::Marks, &id), bytes.into())?;
        new = Some(id);
    }
    for id in old {
        if Some(*id) != new {
            backend.delete(&layout::object_path(Folder::Marks, id))?;
        }
    }
    Ok(new)
}
