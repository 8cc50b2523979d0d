//! Restore a single-file snapshot (a block backup, or a stdin one) onto a
//! block device or into a file. A new or empty file is sized and only
//! blob data is written: holes stay sparse. On anything else (a device, a
//! file with content) what must be zero is made zero: punched out
//! (discarded, for a device) where the kernel can, else zeroed, else
//! written with zeros. Every blob is verified before it is written.

use std::collections::HashMap;
use std::fs;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use lifeboat_format::{BlobType, ContentPart, Id, NodeKind, Snapshot};
use nix::fcntl::{FallocateFlags, fallocate};
use rayon::prelude::*;

use crate::{Error, Progress, Repository, Result};

/// Settings of [`Repository::restore_block`].
#[derive(Debug, Clone, Default)]
pub struct BlockRestoreOptions {
    /// The device or file to write (a missing file is created).
    pub target: PathBuf,
    /// Worker threads (default: one per core).
    pub threads: Option<usize>,
}

/// The outcome of [`Repository::restore_block`].
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BlockRestoreReport {
    /// Bytes of the image (the device size recorded at backup).
    pub size: u64,
    /// Bytes of blob data written.
    pub bytes_written: u64,
    /// Bytes made zero on a target that had content (0 for a fresh file,
    /// whose holes are left unwritten).
    pub bytes_zeroed: u64,
    /// Whether the target was a block device.
    pub device: bool,
    /// Whether the target was a new or empty file.
    pub fresh: bool,
}

/// Bytes of zeros written at a time when nothing faster works.
const ZERO_WRITE: usize = 1 << 20;

/// Make `[off, off + len)` of `f` read as zeros, keeping its size: punch a
/// hole (a discard that reads back zeros, on a device), else zero the
/// range in the kernel, else write zeros.
fn zero_range(f: &fs::File, off: u64, len: u64) -> std::io::Result<()> {
    let (o, l) = match (i64::try_from(off), i64::try_from(len)) {
        (Ok(o), Ok(l)) => (o, l),
        _ => return Err(std::io::Error::other("range too large")),
    };
    let punch = FallocateFlags::FALLOC_FL_PUNCH_HOLE | FallocateFlags::FALLOC_FL_KEEP_SIZE;
    if fallocate(f, punch, o, l).is_ok()
        || fallocate(f, FallocateFlags::FALLOC_FL_ZERO_RANGE, o, l).is_ok()
    {
        return Ok(());
    }
    let zeros = vec![0u8; ZERO_WRITE.min(len as usize)];
    let mut pos = off;
    while pos < off + len {
        let n = (off + len - pos).min(zeros.len() as u64) as usize;
        f.write_all_at(&zeros[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

impl Repository {
    /// Restore the one file of `snapshot` (a block backup, or any snapshot
    /// whose root holds exactly one regular file) onto `opts.target`, a
    /// block device or a file. A device must be at least as large as the
    /// image; a file is sized to it. Fails on the first blob that cannot
    /// be read or verified, naming it: a block image is restored whole or
    /// reported as not restored.
    pub fn restore_block(
        &self,
        snapshot: &Snapshot,
        opts: &BlockRestoreOptions,
        progress: &Progress,
    ) -> Result<BlockRestoreReport> {
        let tree = self.load_tree(&snapshot.tree)?;
        let node = match tree.nodes.as_slice() {
            [n] if n.kind == NodeKind::File => n,
            _ => {
                return Err(Error::InvalidArgument(
                    "not a block snapshot: its root does not hold exactly one regular file".into(),
                ));
            }
        };
        let size = node.size;
        let sum: u64 = node.content.iter().map(ContentPart::len).sum();
        if sum != size {
            return Err(Error::InvalidArgument(format!(
                "the snapshot's file is {size} bytes but its content list covers {sum}"
            )));
        }
        let target = opts.target.as_path();
        let (f, device, fresh) = open_target(target)?;
        let mut report = BlockRestoreReport {
            size,
            device,
            fresh,
            ..Default::default()
        };
        if device {
            let dev_size = (&f)
                .seek(SeekFrom::End(0))
                .map_err(|e| Error::io(target, e))?;
            if dev_size < size {
                return Err(Error::InvalidArgument(format!(
                    "{} holds {dev_size} bytes, the image {size}",
                    target.display()
                )));
            }
        } else {
            f.set_len(size).map_err(|e| Error::io(target, e))?;
        }

        // Where each blob goes, and the holes.
        let mut at: HashMap<Id, (u32, Vec<u64>)> = HashMap::new();
        let mut holes: Vec<(u64, u64)> = Vec::new();
        let mut pos = 0u64;
        for p in &node.content {
            match p {
                ContentPart::Blob { id, len } => {
                    at.entry(*id).or_insert((*len, Vec::new())).1.push(pos)
                }
                ContentPart::Hole { len } => holes.push((pos, *len)),
            }
            pos += p.len();
        }
        let mut blobs: Vec<(Id, (u32, Vec<u64>))> = at.into_iter().collect();
        blobs.sort_by_key(|(_, (_, offs))| offs[0]);

        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads.unwrap_or(0))
            .thread_name(|i| format!("lifeboat-restore-block-{i}"))
            .build()
            .map_err(Error::ThreadPool)?;
        if !fresh {
            pool.install(|| {
                holes
                    .par_iter()
                    .try_for_each(|&(off, len)| zero_range(&f, off, len))
            })
            .map_err(|e| Error::io(target, e))?;
            report.bytes_zeroed = holes.iter().map(|h| h.1).sum();
        }
        let written: u64 = pool.install(|| {
            blobs
                .par_iter()
                .map(|(id, (len, offs))| -> Result<u64> {
                    if progress.cancel.load(Ordering::Relaxed) {
                        return Err(Error::Interrupted);
                    }
                    let data = self.read_blob(BlobType::Data, id)?;
                    if data.len() != *len as usize {
                        return Err(Error::InvalidArgument(format!(
                            "blob {id} is {} bytes, the snapshot says {len}",
                            data.len()
                        )));
                    }
                    for &o in offs {
                        f.write_all_at(&data, o).map_err(|e| Error::io(target, e))?;
                        progress
                            .bytes
                            .fetch_add(data.len() as u64, Ordering::Relaxed);
                    }
                    Ok(data.len() as u64 * offs.len() as u64)
                })
                .try_reduce(|| 0, |a, b| Ok(a + b))
        })?;
        report.bytes_written = written;
        f.sync_all().map_err(|e| Error::io(target, e))?;
        progress.files.fetch_add(1, Ordering::Relaxed);
        Ok(report)
    }
}

/// Open the target for writing: (file, is a device, is new or empty). A
/// symlink is followed (device links like /dev/disk/by-id/… are symlinks).
fn open_target(target: &Path) -> Result<(fs::File, bool, bool)> {
    match fs::metadata(target) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(target)
                .map_err(|e| Error::io(target, e))?;
            Ok((f, false, true))
        }
        Err(e) => Err(Error::io(target, e)),
        Ok(md) if md.file_type().is_block_device() || md.is_file() => {
            let f = fs::OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(|e| Error::io(target, e))?;
            let device = md.file_type().is_block_device();
            let fresh = !device && md.len() == 0 && md.blocks() == 0;
            Ok((f, device, fresh))
        }
        Ok(_) => Err(Error::InvalidArgument(format!(
            "{} is neither a block device nor a regular file",
            target.display()
        ))),
    }
}
