//! The prune lock: `locks/prune-<n>`, taken with create-if-absent and valid
//! for a time to live, so a killed prune never blocks the next one for
//! longer than that. Only prunes take it; backups never do.
//!
//! To take it: list `locks/`; if any lock there has not expired, fail;
//! else create the next number (exclusive, so of two prunes that saw the
//! same listing one fails). Then list again, in case another prune created
//! a different number meanwhile: the later of two such creators sees the
//! other and backs off. The holder renews its lock (rewrites its own
//! object with a new time) once half the time to live has passed, and
//! stops before any further change once less than a quarter is left.

use std::sync::Arc;

use lifeboat_format::layout::{self, Folder};
use lifeboat_format::{Id, MasterKey, PRUNE_OBJECT_VERSION, PruneLock};
use lifeboat_store::Backend;

use super::options::{Clock, Error, Result};

/// A held prune lock; released on [`HeldLock::release`] (a dropped one
/// just expires).
#[derive(Debug)]
pub(crate) struct HeldLock {
    backend: Arc<dyn Backend>,
    key: MasterKey,
    clock: Clock,
    path: String,
    lock: PruneLock,
}

/// The live locks in `locks/` other than `skip`: (path, lock).
fn live_locks(
    backend: &Arc<dyn Backend>,
    key: &MasterKey,
    now: u64,
    skip: Option<&str>,
) -> Result<(u64, Vec<(String, PruneLock)>)> {
    let mut max = 0;
    let mut live = Vec::new();
    for obj in backend.list(&Folder::Locks.prefix())? {
        let Some(n) = layout::prune_lock_number(&obj.path) else {
            continue;
        };
        max = max.max(n);
        if Some(obj.path.as_str()) == skip {
            continue;
        }
        let bytes = match backend.get(&obj.path) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(e.into()),
        };
        // A lock that does not open cannot be anyone's: it counts as expired.
        if let Ok(l) = PruneLock::decode(key, &bytes)
            && l.expires() > now
        {
            live.push((obj.path, l));
        }
    }
    Ok((max, live))
}

fn locked(path: String, l: PruneLock) -> Error {
    Error::Locked {
        path,
        expires: l.expires(),
        hostname: l.hostname,
    }
}

impl HeldLock {
    /// Take the lock, or fail with [`Error::Locked`].
    pub fn acquire(
        backend: &Arc<dyn Backend>,
        key: &MasterKey,
        clock: &Clock,
        ttl_secs: u64,
        hostname: &str,
    ) -> Result<HeldLock> {
        if !backend.exclusive_create()? {
            return Err(Error::NoExclusiveCreate {
                location: backend.location(),
            });
        }
        let now = clock.now();
        let (max, live) = live_locks(backend, key, now, None)?;
        if let Some((p, l)) = live.into_iter().next() {
            return Err(locked(p, l));
        }
        let lock = PruneLock {
            version: PRUNE_OBJECT_VERSION,
            nonce: Id::random().map_err(|e| Error::Format {
                what: "prune lock".into(),
                source: e,
            })?,
            created: now,
            ttl_secs: ttl_secs.max(4),
            hostname: hostname.to_string(),
        };
        let path = layout::prune_lock_path(max.saturating_add(1));
        let bytes = encode(key, &lock)?;
        match backend.create(&path, bytes.into()) {
            Ok(()) => {}
            Err(lifeboat_store::Error::AlreadyExists { .. }) => {
                let (_, live) = live_locks(backend, key, clock.now(), None)?;
                return Err(match live.into_iter().next() {
                    Some((p, l)) => locked(p, l),
                    None => Error::Locked {
                        path,
                        hostname: String::new(),
                        expires: now,
                    },
                });
            }
            Err(e) => return Err(e.into()),
        }
        let held = HeldLock {
            backend: backend.clone(),
            key: key.clone(),
            clock: clock.clone(),
            path,
            lock,
        };
        let (_, others) = live_locks(backend, key, clock.now(), Some(&held.path))?;
        if let Some((p, l)) = others.into_iter().next() {
            held.release();
            return Err(locked(p, l));
        }
        // Expired locks of killed prunes are litter now.
        if let Ok(all) = backend.list(&Folder::Locks.prefix()) {
            for o in all {
                if o.path < held.path && layout::prune_lock_number(&o.path).is_some() {
                    let _ = backend.delete(&o.path);
                }
            }
        }
        Ok(held)
    }

    /// Make sure the lock is still held for a while: renew it once half its
    /// time has passed; fail with [`Error::LockLost`] when less than a
    /// quarter is left (another prune may take it over soon) or when it is
    /// no longer ours.
    pub fn ensure(&mut self) -> Result<()> {
        let now = self.clock.now();
        let ttl = self.lock.ttl_secs;
        let lost = || Error::LockLost {
            path: self.path.clone(),
        };
        if now.saturating_add(ttl / 4) >= self.lock.expires() {
            return Err(lost());
        }
        if now < self.lock.created.saturating_add(ttl / 2) {
            return Ok(());
        }
        let current = match self.backend.get(&self.path) {
            Ok(b) => PruneLock::decode(&self.key, &b).ok(),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        if current.as_ref().map(|l| l.nonce) != Some(self.lock.nonce) {
            return Err(lost());
        }
        let renewed = PruneLock {
            created: now,
            ..self.lock.clone()
        };
        self.backend
            .put(&self.path, encode(&self.key, &renewed)?.into())?;
        self.lock = renewed;
        Ok(())
    }

    /// Give the lock back.
    pub fn release(self) {
        let _ = self.backend.delete(&self.path);
    }
}

/// What [`unlock`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UnlockReport {
    /// Lock objects deleted: expired ones (left by a killed prune) and,
    /// with `all`, live ones too.
    pub removed: Vec<String>,
    /// Live locks left in place (none with `all`).
    pub live: Vec<String>,
}

/// Delete prune locks: those that have expired (a prune killed before it
/// released its lock leaves one; it blocks nothing, but is litter), and
/// with `all` the live ones too, which only makes sense when no prune can
/// be running. Backups take no lock, so this never affects them.
pub fn unlock(repo: &lifeboat_core::Repository, all: bool, clock: &Clock) -> Result<UnlockReport> {
    use lifeboat_core::internals::RepositoryInternals;
    let (backend, key) = (repo.backend(), repo.master_key());
    let now = clock.now();
    let (_, live) = live_locks(backend, key, now, None)?;
    let live: Vec<String> = live.into_iter().map(|(p, _)| p).collect();
    let mut report = UnlockReport::default();
    for obj in backend.list(&Folder::Locks.prefix())? {
        if layout::prune_lock_number(&obj.path).is_none() {
            continue;
        }
        if live.contains(&obj.path) && !all {
            report.live.push(obj.path);
            continue;
        }
        match backend.delete(&obj.path) {
            Ok(()) => report.removed.push(obj.path),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

fn encode(key: &MasterKey, l: &PruneLock) -> Result<Vec<u8>> {
    l.encode(key).map_err(|e| Error::Format {
        what: "prune lock".into(),
        source: e,
    })
}
