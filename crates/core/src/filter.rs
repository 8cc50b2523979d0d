use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use lifeboat_format::Snapshot;

use crate::{Error, Result};

/// Glob patterns over paths, with restic's rules:
/// - `*` and `?` stay within one path component, `**` crosses components;
/// - a pattern starting with `/` matches from the root;
/// - any other pattern matches at any depth (a pattern without `/` matches a
///   file name anywhere);
/// - a matching directory matches everything below it.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    set: Option<GlobSet>,
    patterns: Vec<String>,
}

impl PathFilter {
    /// Compile patterns; an empty list matches nothing.
    pub fn new(patterns: &[String]) -> Result<PathFilter> {
        if patterns.is_empty() {
            return Ok(PathFilter::default());
        }
        let mut b = GlobSetBuilder::new();
        for p in patterns {
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                return Err(Error::InvalidArgument("empty pattern".into()));
            }
            let full = if p.starts_with('/') {
                p.to_string()
            } else {
                format!("**/{p}")
            };
            let g = GlobBuilder::new(&full)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|source| Error::InvalidPattern {
                    pattern: p.to_string(),
                    source,
                })?;
            b.add(g);
        }
        let set = b.build().map_err(|source| Error::InvalidPattern {
            pattern: patterns.join(", "),
            source,
        })?;
        Ok(PathFilter {
            set: Some(set),
            patterns: patterns.to_vec(),
        })
    }

    /// Whether there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.set.is_none()
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the absolute path `p` itself matches (ancestors not considered).
    pub fn matches(&self, p: &Path) -> bool {
        self.set.as_ref().is_some_and(|s| s.is_match(p))
    }
}

/// Chooses among snapshots, as restic's `--host`, `--path` and `--tag`.
#[derive(Debug, Clone, Default)]
pub struct SnapshotFilter {
    /// Keep snapshots from any of these hosts (empty: any host).
    pub hosts: Vec<String>,
    /// Keep snapshots whose paths include all of these (empty: any).
    pub paths: Vec<String>,
    /// Keep snapshots that carry every tag of at least one group (empty: any).
    pub tags: Vec<Vec<String>>,
}

impl SnapshotFilter {
    /// Whether `s` passes.
    pub fn matches(&self, s: &Snapshot) -> bool {
        (self.hosts.is_empty() || self.hosts.contains(&s.hostname))
            && self.paths.iter().all(|p| s.paths.contains(p))
            && (self.tags.is_empty()
                || self
                    .tags
                    .iter()
                    .any(|g| g.iter().all(|t| s.tags.contains(t))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restic_style_patterns() {
        let f = PathFilter::new(&["*.log".into(), "/srv/cache".into(), "tmp/x*".into()]).unwrap();
        assert!(f.matches(Path::new("/a/b/c.log")));
        assert!(f.matches(Path::new("/c.log")));
        assert!(!f.matches(Path::new("/a/c.log.gz")));
        assert!(f.matches(Path::new("/srv/cache")));
        assert!(!f.matches(Path::new("/x/srv/cache")));
        assert!(f.matches(Path::new("/q/tmp/xyz")));
        assert!(!f.matches(Path::new("/q/tmp/a/xyz")));
        assert!(PathFilter::new(&["[".into()]).is_err());
        assert!(!PathFilter::new(&[]).unwrap().matches(Path::new("/a")));
    }
}
