//! What `--read-data` reads: the whole repository, a subset (`n/m`, `x%`,
//! a size), or, in resumable mode, the packs whose last verification is
//! oldest, within limits of age, time and count. Also the parsers for those
//! arguments.

use std::time::Duration;

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
    /// Parse `n/m`, `x%` or a size such as `5G` (K, M, G, T: powers of
    /// 1024; an optional `B` or `iB` after the unit is accepted).
    pub fn parse(s: &str) -> Result<Subset, String> {
        let s = s.trim();
        if let Some((n, m)) = s.split_once('/') {
            let n: u64 = n
                .trim()
                .parse()
                .map_err(|_| format!("{s:?}: n in n/m must be a whole number"))?;
            let m: u64 = m
                .trim()
                .parse()
                .map_err(|_| format!("{s:?}: m in n/m must be a whole number"))?;
            if m == 0 || n == 0 || n > m {
                return Err(format!("{s:?}: n/m needs 1 <= n <= m"));
            }
            return Ok(Subset::Group { n, m });
        }
        if let Some(p) = s.strip_suffix('%') {
            let x: f64 = p
                .trim()
                .parse()
                .map_err(|_| format!("{s:?}: not a percentage"))?;
            if !(x > 0.0 && x <= 100.0) {
                return Err(format!(
                    "{s:?}: the percentage must be above 0 and at most 100"
                ));
            }
            return Ok(Subset::Percent(x));
        }
        let bytes = parse_size(s)?;
        if bytes == 0 {
            return Err(format!("{s:?}: the size must be above 0"));
        }
        Ok(Subset::Bytes(bytes))
    }
}

/// Parse a byte size: a number with an optional unit K, M, G or T (powers of
/// 1024), optionally followed by `B` or `iB`, case-insensitive: `5G`,
/// `500MiB`, `1.5t`, `4096`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: not a size (examples: 5G, 500M, 1048576)"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit
        .strip_suffix("ib")
        .or_else(|| unit.strip_suffix('b'))
        .unwrap_or(&unit);
    let mult: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("{s:?}: unknown size unit (use K, M, G or T)")),
    };
    let bytes = v * mult as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("{s:?}: size out of range"));
    }
    Ok(bytes as u64)
}

/// Parse a duration: one or more `<number><unit>` with units `s`, `m`
/// (minutes), `h`, `d` (24 h) and `w` (7 d): `30d`, `1h30m`, `90s`, `0s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => {
                return Err(format!(
                    "{s:?}: unknown duration unit {c:?} (use s, m, h, d, w: 30d, 1h30m)"
                ));
            }
        };
        let n: u64 = num
            .parse()
            .map_err(|_| format!("{s:?}: a number must come before each unit"))?;
        num.clear();
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(|| format!("{s:?}: duration too long"))?;
    }
    if !num.is_empty() {
        return Err(format!(
            "{s:?}: a unit is needed after {num} (s, m, h, d, w)"
        ));
    }
    Ok(Duration::from_secs(total))
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
    fn durations_parse() {
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
