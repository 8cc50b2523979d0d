//! Access to a repository's insides for the other Lifeboat crates; not part
//! of the embedding API.

pub use crate::repo::RepositoryInternals;
