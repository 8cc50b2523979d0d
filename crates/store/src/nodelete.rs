//! [`NoDeleteBackend`]: a store layer that adds objects but never deletes
//! or replaces one, for repositories opened in no-delete (append-only)
//! mode.
//!
//! This binds only the client that uses it: whoever holds the store's
//! credentials can delete with any other tool. The protection that holds
//! against a compromised client is the store's own policy (an S3 key
//! allowed `PutObject` but not `DeleteObject`, and Object Lock);
//! `docs/security.md` says how to set that up. What this layer gives is
//! that an honest client in no-delete mode needs nothing more than such a
//! policy allows, and fails early and clearly where it would need more.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;

use crate::{Backend, Error, ObjectInfo, Result};

/// What a [`NoDeleteBackend`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefusedOperation {
    /// Deleting an object.
    Delete,
    /// Writing over an object that exists, under a name that is not the
    /// hash of its bytes (such as `config`).
    Overwrite,
}

/// The cause of the [`Error::PermissionDenied`] a [`NoDeleteBackend`]
/// returns; downcast the error's `source()` to it to tell a no-delete
/// refusal from one of the store.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}: the repository is open in no-delete (append-only) mode", match .operation {
    RefusedOperation::Delete => "deleting is refused",
    RefusedOperation::Overwrite => "overwriting is refused",
})]
pub struct NoDeleteRefusal {
    /// What was refused.
    pub operation: RefusedOperation,
}

impl NoDeleteRefusal {
    /// Whether `e` is a refusal of a [`NoDeleteBackend`].
    pub fn is_refusal(e: &Error) -> bool {
        match e {
            Error::PermissionDenied { source, .. } => source.is::<NoDeleteRefusal>(),
            _ => false,
        }
    }
}

/// Whether the last component of `path` is 64 hex digits: the repository
/// names such an object by the BLAKE3 hash of its bytes.
fn content_addressed(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or(path);
    last.len() == 64 && last.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A [`Backend`] that refuses [`delete`](Backend::delete) and never writes
/// over an existing object.
///
/// - `delete` fails with [`Error::PermissionDenied`] whose source is a
///   [`NoDeleteRefusal`], without asking the store.
/// - `put` becomes [`create`](Backend::create). When the name is taken and
///   is content-addressed (64 hex digits, the hash of the object's bytes),
///   the object there already holds these bytes, so the put succeeds
///   without writing: a retried upload or a blob saved twice. Any other
///   taken name (`config`) is refused as [`RefusedOperation::Overwrite`].
/// - `stage` gives `None`: a staged object replaces what is at its name
///   when committed, so objects are sent whole through `put`.
///
/// On S3 a create is a conditional `PutObject` (`If-None-Match: *`),
/// allowed by a policy that grants `s3:PutObject` alone; on stores without
/// conditional writes it looks first, then writes.
#[derive(Debug)]
pub struct NoDeleteBackend {
    inner: Arc<dyn Backend>,
}

impl NoDeleteBackend {
    /// Wrap `inner`.
    pub fn new(inner: Arc<dyn Backend>) -> NoDeleteBackend {
        NoDeleteBackend { inner }
    }

    fn refuse(path: &str, operation: RefusedOperation) -> Error {
        Error::permission_denied(path, NoDeleteRefusal { operation })
    }
}

impl Backend for NoDeleteBackend {
    fn put(&self, path: &str, data: Bytes) -> Result<()> {
        match self.inner.create(path, data) {
            Err(Error::AlreadyExists { .. }) if content_addressed(path) => Ok(()),
            Err(Error::AlreadyExists { .. }) => {
                Err(NoDeleteBackend::refuse(path, RefusedOperation::Overwrite))
            }
            other => other,
        }
    }

    fn create(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.create(path, data)
    }

    fn get(&self, path: &str) -> Result<Bytes> {
        self.inner.get(path)
    }

    fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(path, range)
    }

    fn get_metadata_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_metadata_range(path, range)
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

    fn exclusive_create(&self) -> Result<bool> {
        self.inner.exclusive_create()
    }

    fn head(&self, path: &str) -> Result<ObjectInfo> {
        self.inner.head(path)
    }

    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        self.inner.list(prefix)
    }

    fn delete(&self, path: &str) -> Result<()> {
        Err(NoDeleteBackend::refuse(path, RefusedOperation::Delete))
    }

    fn location(&self) -> String {
        self.inner.location()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObjectStoreBackend;

    const HASHED: &str =
        "snapshots/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn pair() -> (Arc<dyn Backend>, NoDeleteBackend) {
        let inner: Arc<dyn Backend> = Arc::new(ObjectStoreBackend::memory().unwrap());
        (inner.clone(), NoDeleteBackend::new(inner))
    }

    #[test]
    fn deletes_are_refused_and_nothing_is_removed() {
        let (inner, nd) = pair();
        nd.put(HASHED, Bytes::from_static(b"a")).unwrap();
        let e = nd.delete(HASHED).unwrap_err();
        assert!(NoDeleteRefusal::is_refusal(&e), "{e:?}");
        assert!(matches!(e, Error::PermissionDenied { .. }));
        assert!(e.to_string().contains("deleting is refused"), "{e}");
        assert_eq!(inner.get(HASHED).unwrap(), Bytes::from_static(b"a"));
        // A missing object too: the store is not asked.
        assert!(nd.delete("snapshots/none").is_err());
    }

    #[test]
    fn puts_never_replace_an_object() {
        let (inner, nd) = pair();
        inner.put("config", Bytes::from_static(b"old")).unwrap();
        let e = nd.put("config", Bytes::from_static(b"new")).unwrap_err();
        assert!(NoDeleteRefusal::is_refusal(&e), "{e:?}");
        assert!(e.to_string().contains("overwriting is refused"), "{e}");
        assert_eq!(inner.get("config").unwrap(), Bytes::from_static(b"old"));
        // A content-addressed name that is taken holds these bytes already:
        // the put succeeds and leaves the object as it was.
        inner.put(HASHED, Bytes::from_static(b"first")).unwrap();
        nd.put(HASHED, Bytes::from_static(b"other")).unwrap();
        assert_eq!(inner.get(HASHED).unwrap(), Bytes::from_static(b"first"));
        // New names are written.
        nd.put("index/new", Bytes::from_static(b"x")).unwrap();
        assert_eq!(inner.get("index/new").unwrap(), Bytes::from_static(b"x"));
        assert!(nd.stage().unwrap().is_none());
        assert!(!NoDeleteRefusal::is_refusal(&Error::NotFound {
            path: "x".into()
        }));
    }
}
