use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard};

use lifeboat_chunker::{Chunker, GearTable};
use lifeboat_format::layout::{self, Folder, object_path};
use lifeboat_format::{
    BlobType, ChunkerGear, ChunkerParams, Compression, Config, FORMAT_VERSION, Id, KdfParams,
    KeySlot, MasterKey, SlotKind, Snapshot, Tree, open_blob,
};
use lifeboat_index::{Index, IndexOptions};
use lifeboat_store::{Backend, NoDeleteBackend};

use crate::damage::{Listing, SnapshotList, Warning, WarningKind};
use crate::error::BlobDamage;
use crate::{Error, Result};

/// Settings for a new repository.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// argon2id costs for the first key slot.
    pub kdf: KdfParams,
    /// How new data is compressed (stored in the config).
    pub compression: Compression,
    /// Target pack size in bytes.
    pub pack_size: u32,
    /// Chunk sizes.
    pub chunker: ChunkerParams,
    /// The chunker's gear table: [`ChunkerGear::Keyed`] unless a repository
    /// must chunk like an older one.
    pub chunker_gear: ChunkerGear,
    /// Put every client of the repository in no-delete mode (the config's
    /// `append_only`; docs/security.md).
    pub append_only: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            kdf: KdfParams::default(),
            // docs/benchmarks.md, "Compression modes".
            compression: Compression::Auto,
            pack_size: 16 << 20,
            chunker: ChunkerParams::default(),
            chunker_gear: ChunkerGear::Keyed,
            append_only: false,
        }
    }
}

/// A key slot as listed by [`Repository::keys`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    /// Slot id.
    pub id: Id,
    /// Whether this slot opened the repository.
    pub current: bool,
    /// Creation time.
    pub created: String,
    /// Host it was made on.
    pub hostname: String,
    /// User who made it.
    pub username: String,
    /// What it allows.
    pub kind: SlotKind,
    /// Slot format version: 1 (made before key rotation existed; cannot
    /// receive a rotated key without its password) or 2.
    pub version: u32,
    /// How many rotations it received after it was made.
    pub grants: usize,
}

/// Why a repository is in no-delete mode (see [`Repository::no_delete`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub enum NoDeleteReason {
    /// The config's `append_only` option is set (`init --append-only`).
    RepositoryOption,
    /// It was opened with an append-only key.
    AppendOnlyKey,
}

impl std::fmt::Display for NoDeleteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NoDeleteReason::RepositoryOption => {
                "the repository is append-only (created with `init --append-only`)"
            }
            NoDeleteReason::AppendOnlyKey => "the repository was opened with an append-only key",
        })
    }
}

/// What [`Repository::rotate_key`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RotateReport {
    /// Each key slot rewritten: (old id, new id).
    pub slots: Vec<(Id, Id)>,
    /// Data keys the repository now keeps only to read old data.
    pub retired_keys: usize,
}

/// An open repository. Cheap to share between threads.
pub struct Repository {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) key: MasterKey,
    pub(crate) config: Config,
    key_id: Id,
    slot_kind: SlotKind,
    no_delete: Option<NoDeleteReason>,
    pub(crate) index: RwLock<Index>,
    pub(crate) chunker: Chunker,
    /// Warnings not yet taken (see [`Repository::take_warnings`]).
    warnings: Mutex<Vec<Warning>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.backend.location())
    }
}

pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

pub(crate) fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default()
}

pub(crate) fn username() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_default()
}

/// The chunker `config` and `key` call for. The keyed table is derived
/// from the master key's id key and chunker seed (its bytes 32..72), which
/// a `copy --copy-params` target shares with its source, so both chunk
/// alike; the data key plays no part.
pub(crate) fn chunker_for(config: &Config, key: &MasterKey) -> Result<Chunker> {
    let table = match config.chunker_gear {
        ChunkerGear::Seeded => GearTable::seeded(key.chunker_seed()),
        ChunkerGear::Keyed => {
            let bytes = key.to_bytes();
            GearTable::keyed(&bytes[32..])
        }
    };
    Chunker::with_table(
        config.chunker.min_size as usize,
        config.chunker.avg_size as usize,
        config.chunker.max_size as usize,
        table,
    )
    .map_err(Error::InvalidChunkerParams)
}

impl Repository {
    /// Create a repository in an empty store, protected by `password`.
    /// Refuses if a repository (a `config` object) is already there.
    pub fn init(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
    ) -> Result<Repository> {
        let key =
            MasterKey::generate().map_err(|e| Error::format("generating the master key", e))?;
        Repository::init_with_key(backend, password, opts, key)
    }

    /// [`init`](Repository::init) with a given master key (see
    /// `copy::init_with_params_from`).
    pub(crate) fn init_with_key(
        backend: Arc<dyn Backend>,
        password: &[u8],
        opts: &InitOptions,
        key: MasterKey,
    ) -> Result<Repository> {
        match backend.head(layout::CONFIG) {
            Ok(_) => {
                return Err(Error::AlreadyInitialized {
                    location: backend.location(),
                });
            }
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
        // Validate the sizes now; the keyed chunker is built once the key exists.
        Chunker::new(
            opts.chunker.min_size as usize,
            opts.chunker.avg_size as usize,
            opts.chunker.max_size as usize,
            0,
        )
        .map_err(Error::InvalidChunkerParams)?;
        if opts.pack_size < (1 << 20) {
            return Err(Error::InvalidArgument(
                "pack size must be at least 1 MiB".into(),
            ));
        }
        let config = Config {
            version: FORMAT_VERSION,
            id: Id::random().map_err(|e| Error::format("generating the repository id", e))?,
            chunker: opts.chunker,
            chunker_gear: opts.chunker_gear,
            compression_level: opts.compression.level(),
            compression: Some(opts.compression),
            pack_size: opts.pack_size,
            created: now_rfc3339(),
            append_only: opts.append_only,
        };
        let slot = KeySlot::create(
            &key,
            password,
            opts.kdf,
            now_rfc3339(),
            hostname(),
            username(),
        )
        .map_err(Error::InvalidKdf)?;
        let slot_bytes = slot.to_json();
        let key_id = Id::of_object(&slot_bytes);
        backend.create(&object_path(Folder::Keys, &key_id), slot_bytes.into())?;
        let cfg_bytes = config
            .encode(&key)
            .map_err(|e| Error::corrupt(layout::CONFIG, e))?;
        match backend.create(layout::CONFIG, cfg_bytes.into()) {
            Ok(()) => {}
            Err(lifeboat_store::Error::AlreadyExists { .. }) => {
                let _ = backend.delete(&object_path(Folder::Keys, &key_id));
                return Err(Error::AlreadyInitialized {
                    location: backend.location(),
                });
            }
            Err(e) => return Err(e.into()),
        }
        Repository::assemble(backend, key, config, (key_id, SlotKind::Full), Index::new())
    }

    /// Open an existing repository with `password`: checks the format
    /// version first, then tries each key slot. The index's local table is
    /// kept under [`lifeboat_store::default_cache_root`].
    pub fn open(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        Repository::open_with_cache(backend, password, lifeboat_store::default_cache_root())
    }

    /// [`open`](Repository::open), keeping the index's local table in
    /// `cache_root/<repository id>/index/`; with `None`, in an unlinked
    /// temporary file rebuilt from the repository's index on every open.
    pub fn open_with_cache(
        backend: Arc<dyn Backend>,
        password: &[u8],
        cache_root: Option<std::path::PathBuf>,
    ) -> Result<Repository> {
        Repository::open_inner(backend, password, Some(cache_root))
    }

    /// [`open`](Repository::open) without reading the index, which stays
    /// empty: for `index rebuild` and `index compact`, which read the index
    /// segments themselves and must work when they are damaged.
    pub fn open_without_index(backend: Arc<dyn Backend>, password: &[u8]) -> Result<Repository> {
        Repository::open_inner(backend, password, None)
    }

    /// `load_index`: `None` to skip the index, else the cache root.
    fn open_inner(
        backend: Arc<dyn Backend>,
        password: &[u8],
        load_index: Option<Option<std::path::PathBuf>>,
    ) -> Result<Repository> {
        let cfg_bytes = match backend.get(layout::CONFIG) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => {
                return Err(Error::RepositoryNotFound {
                    location: backend.location(),
                });
            }
            Err(e) => return Err(e.into()),
        };
        let version =
            Config::peek_version(&cfg_bytes).map_err(|e| Error::corrupt(layout::CONFIG, e))?;
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion(
                lifeboat_format::Error::UnsupportedVersion {
                    what: "repository format",
                    found: version,
                    supported: FORMAT_VERSION,
                },
            ));
        }
        let (opened, mut warnings) = open_key_slots(&backend, password)?;
        let (key, key_id, slot_kind) = opened;
        let config =
            Config::decode(&key, &cfg_bytes).map_err(|e| Error::corrupt(layout::CONFIG, e))?;
        let index = match load_index {
            None => Index::new(),
            Some(cache_root) => {
                let opts = IndexOptions {
                    cache_dir: cache_root
                        .map(|r| lifeboat_index::repository_cache_dir(&r, &config.id)),
                    ..IndexOptions::default()
                };
                Index::open(&backend, &key, &opts)?
            }
        };
        let repo = Repository::assemble(backend, key, config, (key_id, slot_kind), index)?;
        repo.push_warnings(warnings.drain(..));
        Ok(repo)
    }

    fn assemble(
        backend: Arc<dyn Backend>,
        key: MasterKey,
        config: Config,
        (key_id, slot_kind): (Id, SlotKind),
        index: Index,
    ) -> Result<Repository> {
        let no_delete = no_delete_reason(&config, slot_kind);
        // Every write and delete of this handle goes through the wrapper.
        let backend = match no_delete {
            Some(_) => Arc::new(NoDeleteBackend::new(backend)) as Arc<dyn Backend>,
            None => backend,
        };
        let chunker = chunker_for(&config, &key)?;
        Ok(Repository {
            backend,
            key,
            config,
            key_id,
            slot_kind,
            no_delete,
            index: RwLock::new(index),
            chunker,
            warnings: Mutex::new(Vec::new()),
        })
    }

    /// The chunker this repository cuts new data with.
    pub fn chunker(&self) -> &Chunker {
        &self.chunker
    }

    fn push_warnings(&self, more: impl IntoIterator<Item = Warning>) {
        self.warnings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(more);
    }

    /// What was skipped since the repository was opened or this was last
    /// called, outside the listings that return their own
    /// ([`snapshots`](Repository::snapshots), [`keys`](Repository::keys)):
    /// key slots that were damaged or refused while opening, index segments
    /// that could not be read, packs whose headers were read because no
    /// segment lists them, and stray names in `index/` and `data/`.
    pub fn take_warnings(&self) -> Vec<Warning> {
        let mut out = std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|p| p.into_inner()));
        out.extend(
            self.index()
                .take_warnings()
                .into_iter()
                .map(Warning::from_index),
        );
        out
    }

    /// Whether a blob lookup that misses may read the headers of packs that
    /// no loaded index segment lists (on by default; see
    /// [`lifeboat_index::Index::open`]). Check turns it off to report what
    /// the index says; so must anything that deletes packs the index lacks.
    pub fn set_index_fallback(&self, enabled: bool) {
        self.index
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .set_pack_fallback(enabled);
    }

    /// The repository's settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Run `f` with index lookups going through the local table's memory
    /// map rather than a `pread` each (see [`lifeboat_index::Lookups`]),
    /// then put back how they were. For bulk work that looks up every blob:
    /// check and restore. Mapped pages are dropped every 16k lookups, so at
    /// most 64 MiB of a huge table stays resident.
    pub fn with_mapped_index<T>(&self, f: impl FnOnce() -> T) -> T {
        let set = |mode, every| {
            let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
            let before = idx.lookups();
            idx.set_lookups(mode, every);
            before
        };
        let before = set(lifeboat_index::Lookups::Mapped, 16 << 10);
        let out = f();
        set(before.0, before.1);
        out
    }

    /// Bring the index up to date with the store: reads only the segments
    /// written since it was loaded (all of them after a compaction).
    pub fn reload_index(&self) -> Result<()> {
        let mut idx = self.index.write().unwrap_or_else(|p| p.into_inner());
        Ok(idx.refresh(&self.backend, &self.key)?)
    }

    // ---- keys -------------------------------------------------------------

    /// All key slots that parse; a slot that does not, or a name in `keys/`
    /// that is not an id, is skipped with a warning.
    pub fn keys(&self) -> Result<Listing<KeyInfo>> {
        let mut out = Vec::new();
        let mut skipped = Vec::new();
        for obj in self.backend.list(&Folder::Keys.prefix())? {
            if layout::id_of_path(&obj.path).is_none() {
                skipped.push(Warning::new(obj.path, WarningKind::StrayObject, None));
                continue;
            }
            let bytes = match self.backend.get(&obj.path) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue, // removed since the listing
                Err(e) => return Err(e.into()),
            };
            let id = Id::of_object(&bytes);
            let slot = match KeySlot::from_json(&bytes) {
                Ok(s) => s,
                Err(e) => {
                    skipped.push(Warning::new(
                        obj.path,
                        WarningKind::DamagedKeySlot,
                        Some(Box::new(e)),
                    ));
                    continue;
                }
            };
            out.push(KeyInfo {
                id,
                current: id == self.key_id,
                created: slot.created,
                hostname: slot.hostname,
                username: slot.username,
                kind: slot.kind,
                version: slot.version,
                grants: slot.grants.len(),
            });
        }
        Ok(Listing::new(out, skipped))
    }

    /// Why this handle may not delete or overwrite anything, if it may
    /// not: [`forget`, `prune`, `key remove`, ...] refuse, and its store
    /// refuses deletes ([`lifeboat_store::NoDeleteBackend`]).
    pub fn no_delete(&self) -> Option<NoDeleteReason> {
        self.no_delete
    }

    /// The kind of the key slot that opened the repository.
    pub fn slot_kind(&self) -> SlotKind {
        self.slot_kind
    }

    /// [`Error::InvalidArgument`] naming `operation` if the repository is
    /// in no-delete mode: for operations that delete or overwrite, to
    /// refuse before they change anything.
    pub fn require_delete(&self, operation: &str) -> Result<()> {
        match self.no_delete {
            None => Ok(()),
            Some(why) => Err(Error::InvalidArgument(format!(
                "{operation} deletes or replaces objects, which is refused: {why}; \
                 run it with a full key on a repository without the append-only option"
            ))),
        }
    }

    /// Add a key slot for another password.
    pub fn add_key(&self, password: &[u8], kdf: KdfParams) -> Result<Id> {
        self.add_key_of_kind(password, kdf, SlotKind::Full)
    }

    /// Add a key slot of `kind` for another password. A handle opened with
    /// an append-only key can add only append-only keys.
    pub fn add_key_of_kind(&self, password: &[u8], kdf: KdfParams, kind: SlotKind) -> Result<Id> {
        if self.slot_kind == SlotKind::AppendOnly && kind == SlotKind::Full {
            return Err(Error::InvalidArgument(
                "an append-only key can add only append-only keys".into(),
            ));
        }
        let slot = KeySlot::create_of_kind(
            &self.key,
            password,
            kdf,
            kind,
            now_rfc3339(),
            hostname(),
            username(),
        )
        .map_err(Error::InvalidKdf)?;
        let bytes = slot.to_json();
        let id = Id::of_object(&bytes);
        self.backend
            .create(&object_path(Folder::Keys, &id), bytes.into())?;
        Ok(id)
    }

    /// Remove a key slot given by id or unique prefix. The slot in use
    /// cannot be removed.
    pub fn remove_key(&self, spec: &str) -> Result<Id> {
        self.require_delete("key remove")?;
        let keys = self.keys()?.items;
        let matches: Vec<&KeyInfo> = keys
            .iter()
            .filter(|k| k.id.to_hex().starts_with(spec))
            .collect();
        let k = match matches.as_slice() {
            [one] => *one,
            [] => return Err(Error::KeyNotFound(spec.into())),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "key prefix {spec:?} is ambiguous"
                )));
            }
        };
        if k.current {
            return Err(Error::KeyInUse(k.id.short()));
        }
        self.backend.delete(&object_path(Folder::Keys, &k.id))?;
        Ok(k.id)
    }

    /// Replace the password of the slot in use: add a new slot (of the same
    /// kind), then remove the old one. Returns the new slot's id.
    pub fn change_password(&mut self, new_password: &[u8], kdf: KdfParams) -> Result<Id> {
        self.require_delete("key passwd")?;
        let new_id = self.add_key_of_kind(new_password, kdf, self.slot_kind)?;
        let old = self.key_id;
        self.key_id = new_id;
        self.backend.delete(&object_path(Folder::Keys, &old))?;
        Ok(new_id)
    }

    /// Rotate the master key: a new data key seals everything written from
    /// now on, the current one joins the retired keys that still open old
    /// data, and every key slot gets the new keyring. `password` must open
    /// the slot in use (it rewrites that slot if it is a version-1 slot).
    ///
    /// Version-2 slots receive the keyring as a grant sealed to their
    /// public key, without their passwords; a version-1 slot other than the
    /// one in use cannot, so the rotation is refused (before anything is
    /// written) while one is there: change its password (`key passwd`,
    /// which rewrites it as version 2) or remove it first. Blob ids and
    /// chunk boundaries do not change, so deduplication goes on.
    ///
    /// New slots are written before the old ones are deleted, so a crash
    /// leaves both (the same slot before and after, sharing a public key);
    /// a later rotation refuses until the older of each pair is removed.
    /// This handle keeps sealing with the key it was opened with (still
    /// readable after the rotation): open the repository again to use the
    /// new one.
    pub fn rotate_key(&self, password: &[u8]) -> Result<RotateReport> {
        self.require_delete("key rotate")?;
        let mut slots = Vec::new();
        for obj in self.backend.list(&Folder::Keys.prefix())? {
            let Some(id) = layout::id_of_path(&obj.path) else {
                continue;
            };
            let bytes = match self.backend.get(&obj.path) {
                Ok(b) => b,
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e.into()),
            };
            let slot =
                KeySlot::from_json(&bytes).map_err(|e| Error::corrupt(obj.path.clone(), e))?;
            slots.push((id, slot));
        }
        let stuck: Vec<String> = slots
            .iter()
            .filter(|(id, s)| !s.takes_grants() && *id != self.key_id)
            .map(|(id, _)| id.short())
            .collect();
        if !stuck.is_empty() {
            return Err(Error::InvalidArgument(format!(
                "key slot(s) {} predate key rotation (version 1) and cannot receive the new \
                 key without their password: open the repository with each one and run \
                 `lifeboat key passwd` (which rewrites it), or remove it, then rotate again",
                stuck.join(", ")
            )));
        }
        let mut seen = std::collections::HashMap::new();
        for (id, s) in slots.iter().filter(|(_, s)| s.takes_grants()) {
            if let Some(other) = seen.insert(s.public_key.clone(), *id) {
                return Err(Error::InvalidArgument(format!(
                    "key slots {} and {} are one slot before and after an interrupted \
                     rotation: remove the one with fewer grants (`lifeboat key list`), \
                     then rotate again",
                    other.short(),
                    id.short()
                )));
            }
        }
        let next = self
            .key
            .rotated()
            .map_err(|e| Error::format("generating the new data key", e))?;
        let mut written = Vec::new();
        for (id, slot) in &slots {
            let new_slot = if slot.takes_grants() {
                slot.with_grant(&next)
                    .map_err(|e| Error::format("sealing the new keyring to a key slot", e))?
            } else {
                // The slot in use, version 1: rewritten with the password.
                match slot.open(password) {
                    Ok(_) => {}
                    Err(lifeboat_format::Error::WrongPassword) => return Err(Error::WrongPassword),
                    Err(e) => return Err(Error::corrupt(object_path(Folder::Keys, id), e)),
                }
                KeySlot::create_of_kind(
                    &next,
                    password,
                    slot.params,
                    slot.kind,
                    slot.created.clone(),
                    slot.hostname.clone(),
                    slot.username.clone(),
                )
                .map_err(Error::InvalidKdf)?
            };
            let bytes = new_slot.to_json();
            let new_id = Id::of_object(&bytes);
            self.backend
                .create(&object_path(Folder::Keys, &new_id), bytes.into())?;
            written.push((*id, new_id));
        }
        for (old, _) in &written {
            self.backend.delete(&object_path(Folder::Keys, old))?;
        }
        Ok(RotateReport {
            slots: written,
            retired_keys: next.retired_count(),
        })
    }

    // ---- snapshots ----------------------------------------------------------

    /// Ids of all snapshots, as listed; names in `snapshots/` that are not
    /// ids are left out ([`snapshots`](Repository::snapshots) warns of them).
    pub fn snapshot_ids(&self) -> Result<Vec<Id>> {
        Ok(self.list_snapshot_ids()?.items)
    }

    fn list_snapshot_ids(&self) -> Result<Listing<Id>> {
        let mut ids = Vec::new();
        let mut strays = Vec::new();
        for o in self.backend.list(&Folder::Snapshots.prefix())? {
            match layout::id_of_path(&o.path) {
                Some(id) => ids.push(id),
                None => strays.push(Warning::new(o.path, WarningKind::StrayObject, None)),
            }
        }
        Ok(Listing::new(ids, strays))
    }

    /// Load one snapshot.
    pub fn load_snapshot(&self, id: &Id) -> Result<Snapshot> {
        let path = object_path(Folder::Snapshots, id);
        let bytes = self.backend.get(&path)?;
        if Id::of_object(&bytes) != *id {
            return Err(Error::corrupt(
                path,
                lifeboat_format::Error::Malformed {
                    what: "snapshot",
                    reason: "content does not match its name".into(),
                },
            ));
        }
        Snapshot::decode(&self.key, &bytes).map_err(|e| Error::corrupt(path, e))
    }

    /// All readable snapshots, oldest first. A snapshot that cannot be read
    /// (other than for a store error that may be transient, which fails the
    /// call), decrypted or decoded, or that does not hash to its name, is
    /// left out with a [`WarningKind::DamagedSnapshot`] warning; a name that
    /// is not an id with a [`WarningKind::StrayObject`] one.
    pub fn snapshots(&self) -> Result<SnapshotList> {
        let Listing {
            items: ids,
            mut skipped,
        } = self.list_snapshot_ids()?;
        let mut out = Vec::new();
        for id in ids {
            match self.load_snapshot(&id) {
                Ok(s) => out.push((id, s)),
                // Forgotten since the listing (or listed late by the store).
                Err(Error::Store(e)) if e.is_not_found() => {}
                Err(e) if e.is_transient() => return Err(e),
                Err(e) => skipped.push(Warning::new(
                    object_path(Folder::Snapshots, &id),
                    WarningKind::DamagedSnapshot,
                    Some(Box::new(e)),
                )),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok(Listing::new(out, skipped))
    }

    /// Store a snapshot. Call only after everything it references is stored
    /// and indexed.
    pub fn save_snapshot(&self, snap: &Snapshot) -> Result<Id> {
        let bytes = snap
            .encode(&self.key, self.config.compression_level)
            .map_err(|e| Error::corrupt("snapshot", e))?;
        let id = Id::of_object(&bytes);
        self.backend
            .put(&object_path(Folder::Snapshots, &id), bytes.into())?;
        Ok(id)
    }

    /// Remove a snapshot object (its data stays until prune).
    pub fn delete_snapshot(&self, id: &Id) -> Result<()> {
        Ok(self.backend.delete(&object_path(Folder::Snapshots, id))?)
    }

    /// Resolve `spec` (`latest`, a full id or a unique prefix) among the
    /// readable snapshots that pass `filter`. An id or prefix that matches
    /// only a damaged snapshot gives [`Error::DamagedSnapshot`]; damaged
    /// snapshots count towards an ambiguous prefix (whatever the filter,
    /// which cannot be applied to them), never towards `latest`.
    pub fn find_snapshot(
        &self,
        spec: &str,
        filter: &crate::SnapshotFilter,
    ) -> Result<(Id, Snapshot)> {
        let list = self.snapshots()?;
        let spec_l = spec.to_ascii_lowercase();
        // Damaged snapshots the spec may name decide the error below; every
        // other one is reported through `take_warnings`.
        let (mut damaged, others): (Vec<Warning>, Vec<Warning>) =
            list.skipped.into_iter().partition(|w| {
                spec != "latest"
                    && !spec.is_empty()
                    && w.kind == WarningKind::DamagedSnapshot
                    && w.id().is_some_and(|id| id.to_hex().starts_with(&spec_l))
            });
        self.push_warnings(others);
        let mut all = list.items.into_iter().filter(|(_, s)| filter.matches(s));
        if spec == "latest" {
            return all
                .next_back()
                .ok_or_else(|| Error::SnapshotNotFound { spec: spec.into() });
        }
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound { spec: spec.into() });
        }
        let mut m: Vec<(Id, Snapshot)> = all
            .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
            .collect();
        match (m.len(), damaged.len()) {
            (0, 0) => Err(Error::SnapshotNotFound { spec: spec.into() }),
            (1, 0) => Ok(m.remove(0)),
            (0, 1) => {
                let w = damaged.remove(0);
                let object = w.object.clone();
                Err(Error::DamagedSnapshot {
                    object,
                    source: w
                        .into_cause()
                        .unwrap_or_else(|| "unreadable".to_string().into()),
                })
            }
            _ => Err(Error::AmbiguousSnapshot {
                spec: spec.into(),
                matches: m
                    .iter()
                    .map(|(id, _)| id.short())
                    .chain(damaged.iter().filter_map(|w| w.id()).map(|id| id.short()))
                    .collect(),
            }),
        }
    }

    // ---- blobs ----------------------------------------------------------------

    /// Read, decrypt and verify a blob.
    pub fn read_blob(&self, blob_type: BlobType, id: &Id) -> Result<Vec<u8>> {
        let loc = self
            .index()
            .get(id)
            .ok_or(Error::BlobNotFound { blob: *id })?;
        if loc.blob_type != blob_type {
            return Err(Error::corrupt_blob(
                loc.pack,
                *id,
                BlobDamage::WrongType {
                    indexed: loc.blob_type,
                    expected: blob_type,
                },
            ));
        }
        let start = u64::from(loc.offset);
        let (path, range) = (
            object_path(Folder::Data, &loc.pack),
            start..start + u64::from(loc.stored_len),
        );
        // Tree packs are metadata: a caching store keeps them locally.
        let stored = match blob_type {
            BlobType::Tree => self.backend.get_metadata_range(&path, range),
            BlobType::Data => self.backend.get_range(&path, range),
        }
        .map_err(|e| Error::pack_read(loc.pack, *id, e))?;
        open_blob(&self.key, blob_type, id, loc.flags, loc.raw_len, &stored)
            .map_err(|e| Error::corrupt_blob(loc.pack, *id, e))
    }

    /// Load and decode a tree blob.
    pub fn load_tree(&self, id: &Id) -> Result<Tree> {
        let bytes = self.read_blob(BlobType::Tree, id)?;
        self.decode_tree(id, &bytes)
    }

    /// Decode the plaintext of tree blob `id`.
    pub(crate) fn decode_tree(&self, id: &Id, bytes: &[u8]) -> Result<Tree> {
        Tree::decode(bytes).map_err(|e| match e {
            lifeboat_format::Error::UnsupportedVersion { .. } => Error::UnsupportedVersion(e),
            e => Error::corrupt_blob(
                self.index().get(id).map(|l| l.pack).unwrap_or_default(),
                *id,
                e,
            ),
        })
    }
}

/// What other Lifeboat crates (check, prune, the facade) need from inside a
/// [`Repository`]; not part of the embedding API. Bring the trait into scope
/// to call its methods.
#[doc(hidden)]
pub trait RepositoryInternals {
    /// The underlying store.
    fn backend(&self) -> &Arc<dyn Backend>;
    /// The master key (never print it).
    fn master_key(&self) -> &MasterKey;
    /// The merged index.
    fn index(&self) -> RwLockReadGuard<'_, Index>;
}

impl RepositoryInternals for Repository {
    fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    fn master_key(&self) -> &MasterKey {
        &self.key
    }

    fn index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }
}

/// Try each key slot with `password`. Damaged slots (unparseable, unknown
/// kdf or version) and slots whose argon2id costs are out of bounds are
/// skipped with a warning; stray names in `keys/` too. When no slot opens:
/// a store error if one stopped a slot from being read, else the
/// parameters error of a refused slot, else [`Error::WrongPassword`].
fn open_key_slots(
    backend: &Arc<dyn Backend>,
    password: &[u8],
) -> Result<((MasterKey, Id, SlotKind), Vec<Warning>)> {
    let mut warnings = Vec::new();
    let mut store_err = None;
    let mut refused = None;
    for obj in backend.list(&Folder::Keys.prefix())? {
        if layout::id_of_path(&obj.path).is_none() {
            warnings.push(Warning::new(obj.path, WarningKind::StrayObject, None));
            continue;
        }
        let bytes = match backend.get(&obj.path) {
            Ok(b) => b,
            // Removed since the listing: some stores (Garage) may list
            // an object for a moment after its delete.
            Err(e) if e.is_not_found() => continue,
            Err(e) => {
                store_err = Some(Error::from(e));
                continue;
            }
        };
        let slot = match KeySlot::from_json(&bytes) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(Warning::new(
                    obj.path,
                    WarningKind::DamagedKeySlot,
                    Some(Box::new(e)),
                ));
                continue;
            }
        };
        match slot.open(password) {
            Ok(k) => return Ok(((k, Id::of_object(&bytes), slot.kind), warnings)),
            Err(lifeboat_format::Error::WrongPassword) => {}
            Err(source @ lifeboat_format::Error::KdfOutOfBounds { .. }) => {
                warnings.push(Warning::new(
                    obj.path.clone(),
                    WarningKind::KeySlotParameters,
                    None,
                ));
                refused.get_or_insert(Error::KeySlotParameters {
                    slot: obj.path,
                    source,
                });
            }
            Err(e) => warnings.push(Warning::new(
                obj.path,
                WarningKind::DamagedKeySlot,
                Some(Box::new(e)),
            )),
        }
    }
    Err(store_err.or(refused).unwrap_or(Error::WrongPassword))
}

/// Whether a handle with `config`, opened through a slot of `kind`, is in
/// no-delete mode, and why.
fn no_delete_reason(config: &Config, kind: SlotKind) -> Option<NoDeleteReason> {
    if config.append_only {
        Some(NoDeleteReason::RepositoryOption)
    } else if kind == SlotKind::AppendOnly {
        Some(NoDeleteReason::AppendOnlyKey)
    } else {
        None
    }
}
