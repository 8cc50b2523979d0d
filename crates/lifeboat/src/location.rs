//! Opening a store from a location string.

use std::sync::Arc;

use lifeboat_store::{Backend, Location, OpenOptions};

use crate::error::{Error, Result};

/// Open the store at `location` (a path, `file://...`, or `memory://` for
/// tests). With `create`, a missing local directory is created.
pub fn open_location(location: &str, create: bool) -> Result<Arc<dyn Backend>> {
    open_location_with(location, create, &OpenOptions::default())
}

/// [`open_location`] with options: cache, retries, connections (see
/// [`OpenOptions`]). `location` may also be `s3://bucket/prefix`,
/// `gs://bucket/prefix` or `az://container/prefix`, with credentials from
/// each cloud's environment variables.
pub fn open_location_with(
    location: &str,
    create: bool,
    opts: &OpenOptions,
) -> Result<Arc<dyn Backend>> {
    let loc = Location::parse(location)?;
    match loc.open_with(create, opts) {
        Ok(b) => Ok(b),
        Err(e) if e.is_not_found() => Err(Error::RepositoryNotFound {
            location: location.to_string(),
        }),
        Err(e) => Err(e.into()),
    }
}
