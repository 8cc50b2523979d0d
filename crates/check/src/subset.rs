//! What `--read-data` reads: the whole repository, a subset (`n/m`, `x%`,
//! a size), or, in resumable mode, the packs whose last verification is
//! oldest, within limits of age, time and count (those limits are chosen in
//! the data pass). Also the typed parser for a subset argument.

use std::num::{ParseFloatError, ParseIntError};
use std::str::FromStr;

use bytesize::ByteSize;
use lifeboat_format::Id;

/// Which part of the data to verify.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Subset {
    /// Every pack.
    #[default]
    All,
    /// Group `n` of `m` (1 ≤ n ≤ m): the packs whose id, read as a big-endian
    /// u64 from its first 8 bytes, is `n - 1` modulo `m`. The groups 1/m to
    /// m/m are disjoint and together cover every pack.
    Group {
        /// Which group, from 1.
        n: u64,
        /// How many groups.
        m: u64,
    },
    /// This percentage of the packs (rounded up), chosen at random.
    Percent(f64),
    /// Packs chosen at random whose sizes add up to at most this many bytes.
    Bytes(u64),
}

impl Subset {
    /// Parse `n/m`, `x%` or a size such as `5G`: the same as `str::parse`.
    pub fn parse(s: &str) -> Result<Subset, SubsetError> {
        s.parse()
    }
}

impl FromStr for Subset {
    type Err = SubsetError;

    /// `n/m`, `x%` or a size such as `5G` (K, M, G, T: powers of 1024; an
    /// optional `B` or `iB` after the unit is accepted, in any case).
    fn from_str(s: &str) -> Result<Subset, SubsetError> {
        let input = s;
        let s = s.trim();
        if let Some((n, m)) = s.split_once('/') {
            let whole = |part: &'static str, v: &str| {
                v.trim()
                    .parse::<u64>()
                    .map_err(|source| SubsetError::GroupNumber {
                        input: input.to_string(),
                        part,
                        source,
                    })
            };
            let (n, m) = (whole("n", n)?, whole("m", m)?);
            if m == 0 || n == 0 || n > m {
                return Err(SubsetError::GroupRange {
                    input: input.to_string(),
                });
            }
            return Ok(Subset::Group { n, m });
        }
        if let Some(p) = s.strip_suffix('%') {
            let x: f64 = p.trim().parse().map_err(|source| SubsetError::Percent {
                input: input.to_string(),
                source,
            })?;
            if !(x > 0.0 && x <= 100.0) {
                return Err(SubsetError::PercentRange {
                    input: input.to_string(),
                });
            }
            return Ok(Subset::Percent(x));
        }
        let bytes = parse_size(s).map_err(|kind| SubsetError::Size {
            input: input.to_string(),
            kind,
        })?;
        if bytes == 0 {
            return Err(SubsetError::ZeroSize {
                input: input.to_string(),
            });
        }
        Ok(Subset::Bytes(bytes))
    }
}

/// Why a subset (`n/m`, `x%`, a size) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubsetError {
    /// `n` or `m` in `n/m` is not a whole number.
    #[error("{input:?}: {part} in n/m must be a whole number")]
    GroupNumber {
        /// What was given.
        input: String,
        /// `"n"` or `"m"`.
        part: &'static str,
        /// Why it is not a number.
        source: ParseIntError,
    },
    /// `n/m` outside `1 <= n <= m`.
    #[error("{input:?}: n/m needs 1 <= n <= m")]
    GroupRange {
        /// What was given.
        input: String,
    },
    /// `x` in `x%` is not a number.
    #[error("{input:?}: not a percentage")]
    Percent {
        /// What was given.
        input: String,
        /// Why it is not a number.
        source: ParseFloatError,
    },
    /// `x%` outside `0 < x <= 100`.
    #[error("{input:?}: the percentage must be above 0 and at most 100")]
    PercentRange {
        /// What was given.
        input: String,
    },
    /// Not a size.
    #[error("{input:?}: {kind}")]
    Size {
        /// What was given.
        input: String,
        /// What is wrong with it.
        kind: SizeError,
    },
    /// A size of 0.
    #[error("{input:?}: the size must be above 0")]
    ZeroSize {
        /// What was given.
        input: String,
    },
}

/// Why a size was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// The unit is not K, M, G or T.
    #[error("unknown size unit (use K, M, G or T)")]
    UnknownUnit,
    /// The number is not one ([`bytesize`]'s own message, its only error).
    #[error("not a size (examples: 5G, 500M, 1048576): {reason}")]
    NotANumber {
        /// What `bytesize` said.
        reason: String,
    },
    /// More bytes than a u64 holds.
    #[error("size out of range")]
    OutOfRange,
}

/// A byte size: a number with an optional unit K, M, G or T, optionally
/// followed by `B` or `iB`, case-insensitive (`5G`, `500MiB`, `1.5t`,
/// `4096`). Every unit is a power of 1024, so the unit is spelled out as
/// binary before `bytesize` (which reads `G` as 10^9) parses it.
fn parse_size(s: &str) -> Result<u64, SizeError> {
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let (binary, factor) = match unit {
        "" => ("B", 1u64),
        "k" => ("KiB", 1 << 10),
        "m" => ("MiB", 1 << 20),
        "g" => ("GiB", 1 << 30),
        "t" => ("TiB", 1 << 40),
        _ => return Err(SizeError::UnknownUnit),
    };
    // bytesize saturates instead of refusing a size past u64::MAX.
    if num
        .parse::<f64>()
        .is_ok_and(|v| v * factor as f64 > u64::MAX as f64)
    {
        return Err(SizeError::OutOfRange);
    }
    format!("{num} {binary}")
        .parse::<ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|reason| SizeError::NotANumber { reason })
}

/// A pack that could be read, as listed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListedPack {
    pub id: Id,
    pub size: u64,
}

fn group_of(id: &Id, m: u64) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    u64::from_be_bytes(b) % m
}

/// Packs `subset` selects from `packs` (sorted by id for the group rule;
/// the random rules draw a fresh order each run).
pub(crate) fn select(packs: &[ListedPack], subset: Subset, seed: &Id) -> Vec<ListedPack> {
    match subset {
        Subset::All => packs.to_vec(),
        Subset::Group { n, m } => packs
            .iter()
            .filter(|p| group_of(&p.id, m) == n - 1)
            .copied()
            .collect(),
        Subset::Percent(x) => {
            let want = ((packs.len() as f64) * x / 100.0).ceil() as usize;
            let mut v = shuffled(packs, seed);
            v.truncate(want.min(packs.len()));
            v
        }
        Subset::Bytes(limit) => {
            let mut total = 0u64;
            shuffled(packs, seed)
                .into_iter()
                .filter(|p| {
                    if total.saturating_add(p.size) <= limit {
                        total += p.size;
                        true
                    } else {
                        false
                    }
                })
                .collect()
        }
    }
}

/// `packs` in a random order: sorted by BLAKE3(seed ‖ pack id).
fn shuffled(packs: &[ListedPack], seed: &Id) -> Vec<ListedPack> {
    let mut v: Vec<(Id, ListedPack)> = packs
        .iter()
        .map(|p| {
            let mut b = [0u8; 64];
            b[..32].copy_from_slice(&seed.0);
            b[32..].copy_from_slice(&p.id.0);
            (Id::of_object(&b), *p)
        })
        .collect();
    v.sort_by_key(|e| e.0);
    v.into_iter().map(|(_, p)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subsets_parse() {
        assert_eq!(Subset::parse("2/5"), Ok(Subset::Group { n: 2, m: 5 }));
        assert_eq!(Subset::parse("10%"), Ok(Subset::Percent(10.0)));
        assert_eq!(Subset::parse("2.5%"), Ok(Subset::Percent(2.5)));
        assert_eq!(Subset::parse("5G"), Ok(Subset::Bytes(5 << 30)));
        assert_eq!(Subset::parse("500MiB"), Ok(Subset::Bytes(500 << 20)));
        assert_eq!(Subset::parse("1024"), Ok(Subset::Bytes(1024)));
        for bad in [
            "0/3", "4/3", "1/0", "x/3", "0%", "101%", "-1%", "5X", "", "0", "%",
        ] {
            assert!(Subset::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn sizes_are_binary_and_typed() {
        assert_eq!("1.5t".parse(), Ok(Subset::Bytes(3 << 39)));
        assert_eq!(" 5 gb ".parse(), Ok(Subset::Bytes(5 << 30)));
        assert_eq!("4096b".parse(), Ok(Subset::Bytes(4096)));
        assert!(matches!(
            "5X".parse::<Subset>(),
            Err(SubsetError::Size {
                kind: SizeError::UnknownUnit,
                ..
            })
        ));
        assert!(matches!(
            "99999999999T".parse::<Subset>(),
            Err(SubsetError::Size {
                kind: SizeError::OutOfRange,
                ..
            })
        ));
        assert!(matches!(
            "x/3".parse::<Subset>(),
            Err(SubsetError::GroupNumber { part: "n", .. })
        ));
    }

    /// The forms `--max-age` and `--max-duration` document; the CLI parses
    /// them with humantime, which must keep accepting (and refusing) these.
    #[test]
    fn durations_parse() {
        use humantime::parse_duration;
        use std::time::Duration;
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        for bad in ["", "30", "d", "1x", "h1", "99999999999999999999w"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    fn packs(n: u8) -> Vec<ListedPack> {
        (0..n)
            .map(|i| ListedPack {
                id: Id::of_object(&[i]),
                size: 100 + u64::from(i),
            })
            .collect()
    }

    #[test]
    fn groups_partition_the_packs() {
        let all = packs(50);
        let seed = Id([7; 32]);
        let mut seen: Vec<Id> = Vec::new();
        for n in 1..=7 {
            let g = select(&all, Subset::Group { n, m: 7 }, &seed);
            for p in &g {
                assert!(!seen.contains(&p.id), "packs in two groups");
                seen.push(p.id);
            }
        }
        assert_eq!(seen.len(), all.len());
    }

    #[test]
    fn percent_and_size_limits() {
        let all = packs(50);
        let seed = Id([1; 32]);
        assert_eq!(select(&all, Subset::Percent(10.0), &seed).len(), 5);
        assert_eq!(select(&all, Subset::Percent(1.0), &seed).len(), 1);
        assert_eq!(select(&all, Subset::Percent(100.0), &seed).len(), 50);
        let s = select(&all, Subset::Bytes(1000), &seed);
        let total: u64 = s.iter().map(|p| p.size).sum();
        assert!(total <= 1000 && total > 1000 - 150, "{total}");
        assert!(select(&all, Subset::Bytes(10), &seed).is_empty());
    }
}
