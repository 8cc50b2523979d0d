//! Snapshot times as retention sees them: the instant, plus the wall clock in
//! the snapshot's own UTC offset (restic takes hour/day/week/month/year
//! buckets in the offset the snapshot was written with), and restic's
//! `1y5m7d2h` durations.

use std::fmt;
use std::str::FromStr;

use jiff::fmt::temporal::Pieces;
use jiff::tz::{Offset, TimeZone};
use jiff::{Span, Timestamp, Zoned};

/// A snapshot's `time` field, parsed: the instant and its wall clock in the
/// offset it was recorded with (`Z` is UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotTime {
    local: Zoned,
}

impl SnapshotTime {
    /// Parse an RFC 3339 time with an offset (`2026-03-08T01:30:00-05:00`).
    pub fn parse(time: &str) -> Result<SnapshotTime, jiff::Error> {
        let instant: Timestamp = time.parse()?;
        let offset = Pieces::parse(time)?
            .to_numeric_offset()
            .unwrap_or(Offset::UTC);
        Ok(SnapshotTime {
            local: instant.to_zoned(TimeZone::fixed(offset)),
        })
    }

    /// The instant.
    pub fn instant(&self) -> Timestamp {
        self.local.timestamp()
    }

    /// The wall clock in the snapshot's own offset.
    pub fn local(&self) -> &Zoned {
        &self.local
    }

    /// The bucket this time falls in for `period`, in its own offset: two
    /// times share a bucket exactly when their keys are equal.
    pub(crate) fn bucket(&self, period: Period) -> i64 {
        let d = self.local.date();
        let (y, m, day) = (
            i64::from(d.year()),
            i64::from(d.month()),
            i64::from(d.day()),
        );
        match period {
            Period::Hour => ((y * 100 + m) * 100 + day) * 100 + i64::from(self.local.hour()),
            Period::Day => (y * 100 + m) * 100 + day,
            // ISO 8601 weeks: 2027-01-01 (a Friday) is in week 53 of 2026.
            Period::Week => {
                let w = d.iso_week_date();
                i64::from(w.year()) * 100 + i64::from(w.week())
            }
            Period::Month => y * 100 + m,
            Period::Year => y,
        }
    }
}

/// A calendar period that buckets snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    Hour,
    Day,
    Week,
    Month,
    Year,
}

/// A restic duration (`--keep-within 1y5m7d2h`): whole years, months, days
/// and hours, counted back on the calendar from the newest snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeepWithin {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
}

impl KeepWithin {
    /// Whether every part is zero (the rule is off, as in restic).
    pub fn is_zero(&self) -> bool {
        *self == KeepWithin::default()
    }

    /// The instant `self` before `reference`, computed on `reference`'s wall
    /// clock (calendar years, months and days, then hours). Snapshots strictly
    /// after it are within. Saturates at the earliest representable instant.
    pub(crate) fn before(&self, reference: &Zoned) -> Timestamp {
        let calendar = Span::new()
            .try_years(i64::from(self.years))
            .and_then(|s| s.try_months(i64::from(self.months)))
            .and_then(|s| s.try_days(i64::from(self.days)));
        let hours = Span::new().try_hours(i64::from(self.hours));
        match (calendar, hours) {
            (Ok(calendar), Ok(hours)) => reference
                .checked_sub(calendar)
                .and_then(|z| z.checked_sub(hours))
                .map(|z| z.timestamp())
                .unwrap_or(Timestamp::MIN),
            _ => Timestamp::MIN,
        }
    }
}

impl fmt::Display for KeepWithin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_zero() {
            return f.write_str("0h");
        }
        for (n, unit) in [
            (self.years, 'y'),
            (self.months, 'm'),
            (self.days, 'd'),
            (self.hours, 'h'),
        ] {
            if n != 0 {
                write!(f, "{n}{unit}")?;
            }
        }
        Ok(())
    }
}

/// Why a duration did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// Empty input.
    #[error("empty duration (expected e.g. 1y5m7d2h)")]
    Empty,
    /// A unit without a number before it, or a negative number.
    #[error("expected a number at {rest:?} (durations look like 1y5m7d2h)")]
    NoNumber {
        /// The unparsed rest of the input.
        rest: String,
    },
    /// A number without a unit after it.
    #[error("no unit after {number} (use y, m, d or h)")]
    NoUnit {
        /// The number.
        number: String,
    },
    /// A unit other than y, m, d, h.
    #[error("unknown unit {unit:?} (use y, m, d or h)")]
    UnknownUnit {
        /// The unit.
        unit: char,
    },
    /// A number too large.
    #[error("{number} is too large")]
    TooLarge {
        /// The number.
        number: String,
    },
}

impl FromStr for KeepWithin {
    type Err = DurationError;

    /// restic's syntax: numbers each followed by `y`, `m`, `d` or `h`, in
    /// any order; a unit given twice takes the last value, as restic does.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(DurationError::Empty);
        }
        let mut d = KeepWithin::default();
        while !rest.is_empty() {
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            if digits == 0 {
                return Err(DurationError::NoNumber { rest: rest.into() });
            }
            let (number, after) = rest.split_at(digits);
            let n: u32 = number.parse().map_err(|_| DurationError::TooLarge {
                number: number.into(),
            })?;
            let mut chars = after.chars();
            let unit = chars.next().ok_or_else(|| DurationError::NoUnit {
                number: number.into(),
            })?;
            match unit {
                'y' => d.years = n,
                'm' => d.months = n,
                'd' => d.days = n,
                'h' => d.hours = n,
                unit => return Err(DurationError::UnknownUnit { unit }),
            }
            rest = chars.as_str();
        }
        Ok(d)
    }
}

impl serde::Serialize for KeepWithin {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_as_restic_does() {
        let d: KeepWithin = "1y5m7d2h".parse().unwrap();
        assert_eq!(
            d,
            KeepWithin {
                years: 1,
                months: 5,
                days: 7,
                hours: 2
            }
        );
        assert_eq!(d.to_string(), "1y5m7d2h");
        assert_eq!("2h3d".parse::<KeepWithin>().unwrap().to_string(), "3d2h");
        assert_eq!("1d5d".parse::<KeepWithin>().unwrap().days, 5);
        assert_eq!("".parse::<KeepWithin>(), Err(DurationError::Empty));
        assert!(matches!(
            "5".parse::<KeepWithin>(),
            Err(DurationError::NoUnit { .. })
        ));
        assert!(matches!(
            "5w".parse::<KeepWithin>(),
            Err(DurationError::UnknownUnit { unit: 'w' })
        ));
        assert!(matches!(
            "-1d".parse::<KeepWithin>(),
            Err(DurationError::NoNumber { .. })
        ));
        assert!(matches!(
            "99999999999d".parse::<KeepWithin>(),
            Err(DurationError::TooLarge { .. })
        ));
    }

    #[test]
    fn buckets_use_the_snapshots_own_offset() {
        // 23:30 on Mar 1 at -05:00 is Mar 2 in UTC; the day bucket is Mar 1.
        let t = SnapshotTime::parse("2026-03-01T23:30:00-05:00").unwrap();
        assert_eq!(t.bucket(Period::Day), 20260301);
        assert_eq!(t.bucket(Period::Hour), 2026030123);
        assert_eq!(t.instant().to_string(), "2026-03-02T04:30:00Z");
        // ISO week year differs from the calendar year at the boundary.
        let t = SnapshotTime::parse("2027-01-01T12:00:00Z").unwrap();
        assert_eq!(t.bucket(Period::Week), 202653);
        assert_eq!(t.bucket(Period::Year), 2027);
        assert!(SnapshotTime::parse("2026-03-01T23:30:00").is_err());
    }

    #[test]
    fn within_counts_back_on_the_calendar() {
        let newest = SnapshotTime::parse("2026-03-31T10:00:00+02:00").unwrap();
        let d: KeepWithin = "1m1d2h".parse().unwrap();
        // One month back clamps Mar 31 to Feb 28, then a day and two hours.
        assert_eq!(d.before(newest.local()).to_string(), "2026-02-27T06:00:00Z");
    }
}
