//! Writing a restored snapshot file: into a temporary file beside the
//! target, synced, verified again from the disk, and only then renamed to
//! its name; the folder is synced after the rename.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, VerifyError};
use crate::verify::{Verified, verify_reader};

/// A snapshot file being written. Write the snapshot's bytes into it, then
/// [`commit`](SnapshotFile::commit); dropped without a commit, the
/// temporary file is removed and the target is untouched.
#[derive(Debug)]
pub struct SnapshotFile {
    target: PathBuf,
    temp: PathBuf,
    file: Option<File>,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SnapshotFile {
    /// Start writing `target`, which must not exist (a snapshot file is
    /// never overwritten).
    pub fn create(target: &Path) -> Result<SnapshotFile> {
        let name = target.file_name().ok_or_else(|| Error::Io {
            path: target.to_path_buf(),
            source: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        if target.symlink_metadata().is_ok() {
            return Err(Error::Io {
                path: target.to_path_buf(),
                source: io::Error::new(io::ErrorKind::AlreadyExists, "the file exists already"),
            });
        }
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".lifeboat-part-{}", std::process::id()));
        let temp = dir.join(temp_name);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io_err(&temp))?;
        Ok(SnapshotFile {
            target: target.to_path_buf(),
            temp,
            file: Some(file),
        })
    }

    /// The temporary file's path.
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Sync the file, verify it as read back from the disk, rename it to
    /// its target and sync the folder. A file that fails verification is
    /// removed and the error says why.
    pub fn commit(self) -> Result<Verified> {
        self.commit_expecting(None)
    }

    /// [`commit`](SnapshotFile::commit), also requiring the database's
    /// sha256 to be `sha256` (hex), as recorded when it was backed up.
    pub fn commit_expecting(mut self, sha256: Option<&str>) -> Result<Verified> {
        let Some(file) = self.file.take() else {
            return Err(Error::Io {
                path: self.temp.clone(),
                source: io::Error::other("already committed"),
            });
        };
        file.sync_all().map_err(io_err(&self.temp))?;
        drop(file);
        let f = File::open(&self.temp).map_err(io_err(&self.temp))?;
        let verified = verify_reader(io::BufReader::with_capacity(1 << 20, f))
            .map_err(io_err(&self.temp))?
            .map_err(|source| Error::Verify {
                path: self.target.display().to_string(),
                source,
            })?;
        if let Some(want) = sha256 {
            if want != verified.sha256_hex() {
                return Err(Error::Verify {
                    path: self.target.display().to_string(),
                    source: VerifyError::Recorded {
                        recorded: want.to_string(),
                        found: verified.sha256_hex(),
                    },
                });
            }
        }
        std::fs::rename(&self.temp, &self.target).map_err(io_err(&self.target))?;
        let dir = self.temp.parent().unwrap_or(Path::new("."));
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
        Ok(verified)
    }
}

impl Write for SnapshotFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.file.as_mut() {
            Some(f) => f.write(buf),
            None => Err(io::Error::other("the snapshot file is committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for SnapshotFile {
    fn drop(&mut self) {
        // After a successful commit the temporary name is gone; otherwise
        // remove what was written.
        if self.temp.symlink_metadata().is_ok() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::bbolt::meta_page;
    use sha2::{Digest, Sha256};

    fn snapshot() -> Vec<u8> {
        let mut db = meta_page(0, 4096, 3, 5);
        db.extend(meta_page(1, 4096, 3, 4));
        db.extend(vec![7u8; 4096]);
        let sum: [u8; 32] = Sha256::digest(&db).into();
        db.extend_from_slice(&sum);
        db
    }

    #[test]
    fn a_good_file_is_committed_and_a_bad_one_never_appears() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("snap.db");
        let s = snapshot();
        let mut f = SnapshotFile::create(&target).unwrap();
        f.write_all(&s).unwrap();
        let v = f.commit().unwrap();
        assert_eq!(v.db_size, 3 * 4096);
        assert_eq!(std::fs::read(&target).unwrap(), s);
        assert!(matches!(
            SnapshotFile::create(&target),
            Err(Error::Io { .. })
        ));

        let bad_target = dir.path().join("bad.db");
        let mut bad = s.clone();
        bad[2 * 4096 + 1] ^= 1;
        let mut f = SnapshotFile::create(&bad_target).unwrap();
        f.write_all(&bad).unwrap();
        let e = f.commit().unwrap_err();
        assert!(matches!(e, Error::Verify { .. }), "{e}");
        assert!(!bad_target.exists());
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "only snap.db is left: {left:?}");
    }
}
