//! Verification of a snapshot as its bytes pass: the bbolt meta pages as
//! soon as they have gone by, the size and the sha256 trailer at the end.

use std::io::{self, Read};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::bbolt::{META_END, Meta, parse_meta};
use crate::error::VerifyError;

/// Bytes of the sha256 trailer.
pub const TRAILER: usize = 32;

/// What a verified snapshot is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Bytes of the database (the snapshot less its trailer).
    pub db_size: u64,
    /// The sha256 of the database, which is also the trailer.
    pub sha256: [u8; 32],
    /// bbolt page size.
    pub page_size: u32,
    /// bbolt transaction id of meta page 0.
    pub txid: u64,
}

impl Verified {
    /// The sha256, lowercase hex.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Incremental verification of `db || sha256(db)`: feed every byte to
/// [`update`](SnapshotCheck::update), in order, then call
/// [`finish`](SnapshotCheck::finish).
#[derive(Debug, Clone)]
pub struct SnapshotCheck {
    hasher: Sha256,
    /// Last bytes seen, not hashed yet: they may be the trailer.
    tail: Vec<u8>,
    /// The first bytes, until both meta pages are in.
    head: Vec<u8>,
    meta: Option<Meta>,
    failed: Option<VerifyError>,
    len: u64,
    announced: Option<u64>,
}

impl Default for SnapshotCheck {
    fn default() -> Self {
        Self::new()
    }
}

impl SnapshotCheck {
    /// A check with nothing seen yet.
    pub fn new() -> Self {
        SnapshotCheck {
            hasher: Sha256::new(),
            tail: Vec::with_capacity(2 * TRAILER),
            head: Vec::new(),
            meta: None,
            failed: None,
            len: 0,
            announced: None,
        }
    }

    /// Require the database to be `db_size` bytes (the size etcd announced).
    pub fn expect_db_size(&mut self, db_size: u64) {
        self.announced = Some(db_size);
    }

    /// The bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no byte was seen.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The failure found so far, before the end (a damaged meta page).
    pub fn failure(&self) -> Option<&VerifyError> {
        self.failed.as_ref()
    }

    /// Take the next bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        if self.meta.is_none() && self.failed.is_none() {
            self.take_head(data);
        }
        if data.len() >= TRAILER {
            self.hasher.update(&self.tail);
            let (body, last) = data.split_at(data.len() - TRAILER);
            self.hasher.update(body);
            self.tail.clear();
            self.tail.extend_from_slice(last);
        } else {
            self.tail.extend_from_slice(data);
            if self.tail.len() > TRAILER {
                let extra = self.tail.len() - TRAILER;
                self.hasher.update(&self.tail[..extra]);
                self.tail.drain(..extra);
            }
        }
    }

    /// Collect the first bytes; check both meta pages once they are in.
    fn take_head(&mut self, data: &[u8]) {
        let want = match self.head.get(..META_END) {
            // Page 0's meta gives the page size, hence where page 1 ends.
            Some(m0) => match parse_meta(m0, 0) {
                Ok(m) => m.page_size as usize + META_END,
                Err(problem) => {
                    self.fail(VerifyError::Meta { page: 0, problem });
                    return;
                }
            },
            None => META_END,
        };
        let need = want.saturating_sub(self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..need]);
        if self.head.len() < want {
            return;
        }
        if want == META_END {
            // Page 0 is complete: go on for page 1 with the rest.
            return self.take_head(&data[need..]);
        }
        let m0 = match parse_meta(&self.head, 0) {
            Ok(m) => m,
            Err(problem) => return self.fail(VerifyError::Meta { page: 0, problem }),
        };
        let p1 = &self.head[m0.page_size as usize..];
        let m1 = match parse_meta(p1, 1) {
            Ok(m) => m,
            Err(problem) => return self.fail(VerifyError::Meta { page: 1, problem }),
        };
        if (m0.page_size, m0.pgid) != (m1.page_size, m1.pgid) {
            return self.fail(VerifyError::MetaMismatch {
                page0: (m0.page_size, m0.pgid),
                page1: (m1.page_size, m1.pgid),
            });
        }
        self.meta = Some(m0);
        self.head = Vec::new();
    }

    fn fail(&mut self, e: VerifyError) {
        if self.failed.is_none() {
            self.failed = Some(e);
        }
        self.head = Vec::new();
    }

    /// Verify what was seen as a whole snapshot.
    pub fn finish(self) -> Result<Verified, VerifyError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        let len = self.len;
        let Some(meta) = self.meta else {
            return Err(VerifyError::TooShort { len });
        };
        if len < TRAILER as u64 {
            return Err(VerifyError::TooShort { len });
        }
        if len % 512 != TRAILER as u64 {
            return Err(VerifyError::Size { len });
        }
        let db_size = len - TRAILER as u64;
        if let Some(announced) = self.announced {
            if announced != db_size {
                return Err(VerifyError::Announced {
                    announced,
                    actual: db_size,
                });
            }
        }
        let expected = meta.pgid.saturating_mul(u64::from(meta.page_size));
        if expected != db_size {
            return Err(VerifyError::DbSize {
                expected,
                actual: db_size,
            });
        }
        let computed: [u8; 32] = self.hasher.finalize().into();
        if computed[..] != self.tail[..] {
            return Err(VerifyError::Sha256 {
                trailer: hex::encode(&self.tail),
                computed: hex::encode(computed),
            });
        }
        Ok(Verified {
            db_size,
            sha256: computed,
            page_size: meta.page_size,
            txid: meta.txid,
        })
    }
}

/// Where a [`VerifyingReader`] leaves its verdict, for whoever consumed
/// the stream through another owner (the backup pipeline).
#[derive(Debug, Clone, Default)]
pub struct Verdict(Arc<Mutex<Option<Result<Verified, VerifyError>>>>);

impl Verdict {
    /// The verdict, once the reader reached the end; `None` before.
    pub fn get(&self) -> Option<Result<Verified, VerifyError>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, v: Result<Verified, VerifyError>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
    }
}

/// A reader that passes a snapshot through unchanged and verifies it. A
/// damaged meta page is an error as soon as it has gone by; a bad size or
/// sha256 is an error instead of the end of the stream, so that whoever
/// reads it to the end never takes a bad snapshot for a whole one.
#[derive(Debug)]
pub struct VerifyingReader<R> {
    inner: R,
    check: Option<SnapshotCheck>,
    verdict: Verdict,
}

impl<R: Read> VerifyingReader<R> {
    /// Verify `inner` as it is read.
    pub fn new(inner: R) -> Self {
        Self::with_check(inner, SnapshotCheck::new())
    }

    /// Verify `inner` with a prepared check (one that expects a size).
    pub fn with_check(inner: R, check: SnapshotCheck) -> Self {
        VerifyingReader {
            inner,
            check: Some(check),
            verdict: Verdict::default(),
        }
    }

    /// A handle on the verdict, readable after this reader is gone.
    pub fn verdict(&self) -> Verdict {
        self.verdict.clone()
    }

    /// Require the database to be `db_size` bytes (the size the server
    /// announced); no effect once the end was reached.
    pub fn expect_db_size(&mut self, db_size: u64) {
        if let Some(c) = self.check.as_mut() {
            c.expect_db_size(db_size);
        }
    }

    /// The source.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }
}

fn invalid(e: VerifyError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(check) = self.check.as_mut() else {
            // Finished: the end again, or the same failure again.
            return match self.verdict.get() {
                Some(Err(e)) => Err(invalid(e)),
                _ => Ok(0),
            };
        };
        if buf.is_empty() {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n > 0 {
            check.update(&buf[..n]);
            if let Some(e) = check.failure() {
                let e = e.clone();
                self.check = None;
                self.verdict.set(Err(e.clone()));
                return Err(invalid(e));
            }
            return Ok(n);
        }
        let Some(check) = self.check.take() else {
            return Ok(0);
        };
        let v = check.finish();
        self.verdict.set(v.clone());
        match v {
            Ok(_) => Ok(0),
            Err(e) => Err(invalid(e)),
        }
    }
}

/// Verify a whole snapshot read from `r`.
pub fn verify_reader(r: impl Read) -> io::Result<Result<Verified, VerifyError>> {
    let mut reader = VerifyingReader::new(r);
    let verdict = reader.verdict();
    match io::copy(&mut reader, &mut io::sink()) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::InvalidData && verdict.get().is_some() => {}
        Err(e) => return Err(e),
    }
    Ok(verdict
        .get()
        .unwrap_or(Err(VerifyError::TooShort { len: 0 })))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::bbolt::meta_page;

    /// A fake database of `pages` pages of 4096 bytes with its trailer.
    pub(crate) fn snapshot(pages: u64) -> Vec<u8> {
        let mut db = meta_page(0, 4096, pages, 9);
        db.extend(meta_page(1, 4096, pages, 8));
        for i in 2..pages {
            db.extend((0..4096u32).map(|j| (i as u32 * 7 + j) as u8));
        }
        let sum: [u8; 32] = Sha256::digest(&db).into();
        db.extend_from_slice(&sum);
        db
    }

    /// Feed `data` in pieces of `step` bytes.
    fn check_in_steps(data: &[u8], step: usize) -> Result<Verified, VerifyError> {
        let mut c = SnapshotCheck::new();
        for piece in data.chunks(step) {
            c.update(piece);
        }
        c.finish()
    }

    #[test]
    fn a_good_snapshot_passes_whatever_the_pieces() {
        let s = snapshot(6);
        for step in [1, 7, 31, 32, 33, 4096, 5000, s.len()] {
            let v = check_in_steps(&s, step).unwrap();
            assert_eq!(v.db_size, 6 * 4096);
            assert_eq!(v.page_size, 4096);
            assert_eq!(v.txid, 9);
            assert_eq!(&v.sha256[..], &s[s.len() - 32..]);
        }
    }

    #[test]
    fn any_flipped_byte_fails() {
        let s = snapshot(4);
        // A meta byte, a data byte, a trailer byte.
        for at in [20, 4096 + 30, 3 * 4096 + 5, s.len() - 1, s.len() - 32] {
            let mut bad = s.clone();
            bad[at] ^= 0x40;
            let e = check_in_steps(&bad, 1000).unwrap_err();
            if at >= 4 * 4096 || at == 3 * 4096 + 5 {
                assert!(matches!(e, VerifyError::Sha256 { .. }), "{at}: {e}");
            } else {
                assert!(matches!(e, VerifyError::Meta { .. }), "{at}: {e}");
            }
        }
    }

    #[test]
    fn sizes_are_checked() {
        let s = snapshot(4);
        assert!(matches!(
            check_in_steps(&s[..s.len() - 1], 100),
            Err(VerifyError::Size { .. })
        ));
        assert!(matches!(
            check_in_steps(&s[..100], 100),
            Err(VerifyError::TooShort { .. })
        ));
        // Whole pages but fewer than the meta page says.
        let mut short = s[..3 * 4096].to_vec();
        let sum: [u8; 32] = Sha256::digest(&short).into();
        short.extend_from_slice(&sum);
        assert_eq!(
            check_in_steps(&short, 100),
            Err(VerifyError::DbSize {
                expected: 4 * 4096,
                actual: 3 * 4096
            })
        );
        let mut c = SnapshotCheck::new();
        c.expect_db_size(5 * 4096);
        c.update(&s);
        assert!(matches!(c.finish(), Err(VerifyError::Announced { .. })));
    }

    #[test]
    fn the_reader_fails_early_on_a_bad_meta_and_at_the_end_on_a_bad_sum() {
        let s = snapshot(40);
        let mut bad = s.clone();
        bad[4096 + 17] ^= 1; // page 1's magic
        let mut r = VerifyingReader::new(&bad[..]);
        let mut buf = vec![0u8; 8192];
        let e = r.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("meta page 1"), "{e}");
        assert!(r.read(&mut buf).is_err(), "the failure sticks");

        let mut bad = s.clone();
        bad[20 * 4096] ^= 1;
        let mut r = VerifyingReader::new(&bad[..]);
        let verdict = r.verdict();
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert!(e.to_string().contains("sha256 mismatch"), "{e}");
        assert!(matches!(
            verdict.get(),
            Some(Err(VerifyError::Sha256 { .. }))
        ));

        let mut r = VerifyingReader::new(&s[..]);
        let verdict = r.verdict();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, s, "passed through unchanged");
        assert_eq!(verdict.get().unwrap().unwrap().db_size, 40 * 4096);
        assert_eq!(verify_reader(&s[..]).unwrap().unwrap().db_size, 40 * 4096);
    }
}
