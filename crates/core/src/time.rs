//! Time: the injected `Clock` and the `BusinessDate`, a calendar day in Asia/Seoul.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::{LazyLock, Mutex};

/// Business dates (the daily charge limit, interest, auto-debit) are days in this zone.
pub static SEOUL: LazyLock<TimeZone> =
    LazyLock::new(|| TimeZone::get("Asia/Seoul").expect("the bundled tzdb has Asia/Seoul"));

/// Where every piece of logic reads "now". Never read the OS clock inside logic.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, truncated to whole microseconds (the database's precision),
    /// so that a value written and read back compares equal.
    fn now(&self) -> Timestamp;
}

/// Truncates to microseconds, the precision both databases store.
pub fn to_micros(ts: Timestamp) -> Timestamp {
    Timestamp::from_microsecond(ts.as_microsecond()).expect("in range")
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        to_micros(Timestamp::now())
    }
}

/// A clock that stands still between calls: tests and demos move it by hand.
/// Refused in production mode.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
}

/// Instants given from outside (the manual clock, a job's "as of", a history range, a cursor)
/// stay within these years (UTC), so that every date computation built on them (token expiry,
/// 72-hour holds, a year of interest) stays far from the representable edge.
pub const SUPPORTED_YEARS: std::ops::Range<i16> = 2000..2100;

/// An instant outside [`SUPPORTED_YEARS`]; `what` names it in the message (`at`, `from`, the
/// manual clock...).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} must lie between {}-01-01 and {}-01-01 (UTC)", SUPPORTED_YEARS.start, SUPPORTED_YEARS.end)]
pub struct InstantRangeError {
    pub what: &'static str,
}

/// Checks that an instant given from outside, called `what`, lies within `SUPPORTED_YEARS`;
/// truncated to microseconds.
pub fn plausible_instant(ts: Timestamp, what: &'static str) -> Result<Timestamp, InstantRangeError> {
    let year = ts.to_zoned(TimeZone::UTC).year();
    if SUPPORTED_YEARS.contains(&year) {
        Ok(to_micros(ts))
    } else {
        Err(InstantRangeError { what })
    }
}

/// Checks that a business date given from outside, called `what`, lies within
/// `SUPPORTED_YEARS`.
pub fn plausible_date(date: Date, what: &'static str) -> Result<Date, InstantRangeError> {
    if SUPPORTED_YEARS.contains(&date.year()) {
        Ok(date)
    } else {
        Err(InstantRangeError { what })
    }
}

/// What the manual clock's errors call it.
const MANUAL_CLOCK: &str = "the manual clock";

fn in_manual_range(ts: Timestamp) -> Result<Timestamp, InstantRangeError> {
    plausible_instant(ts, MANUAL_CLOCK)
}

impl ManualClock {
    /// Starts at `start`, or at the start of the allowed range if `start` is outside it.
    pub fn new(start: Timestamp) -> Self {
        let start = in_manual_range(start).unwrap_or_else(|_| {
            let first = Date::new(SUPPORTED_YEARS.start, 1, 1).expect("valid date");
            first.to_zoned(TimeZone::UTC).expect("valid instant").timestamp()
        });
        Self { now: Mutex::new(start) }
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, Timestamp> {
        // The value is a plain Copy timestamp: a panic elsewhere cannot leave it half-written.
        self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets the clock; refuses (changing nothing) an instant outside `SUPPORTED_YEARS`.
    pub fn set(&self, now: Timestamp) -> Result<Timestamp, InstantRangeError> {
        let now = in_manual_range(now)?;
        *self.guard() = now;
        Ok(now)
    }

    /// Moves the clock forward (or back, for a negative duration) and returns the new now;
    /// refuses (changing nothing) to leave `SUPPORTED_YEARS`.
    pub fn advance(&self, by: SignedDuration) -> Result<Timestamp, InstantRangeError> {
        let mut now = self.guard();
        let next = now
            .checked_add(by)
            .map_err(|_| InstantRangeError { what: MANUAL_CLOCK })?;
        *now = in_manual_range(next)?;
        Ok(*now)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.guard()
    }
}

/// A calendar day in Asia/Seoul. Keys the daily charge limit, so the limit "resets" at
/// 00:00 Seoul time simply because the key changes — no reset job, no blackout window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusinessDate(Date);

impl BusinessDate {
    /// The Seoul calendar day that contains `at`.
    pub fn containing(at: Timestamp) -> Self {
        Self(at.to_zoned(SEOUL.clone()).date())
    }

    pub const fn from_date(date: Date) -> Self {
        Self(date)
    }

    pub const fn date(self) -> Date {
        self.0
    }

    /// The instant this day begins (00:00 in Seoul).
    pub fn starts_at(self) -> Timestamp {
        self.at(Time::midnight())
    }

    /// The instant of a wall-clock time on this day in Seoul (e.g. 04:00 for interest).
    pub fn at(self, time: Time) -> Timestamp {
        self.0
            .to_datetime(time)
            .to_zoned(SEOUL.clone())
            .expect("Seoul wall-clock times exist")
            .timestamp()
    }

    pub fn next(self) -> Self {
        Self(self.0.tomorrow().expect("date in range"))
    }

    /// The instant this day ends and the next begins: when a daily limit resets.
    pub fn ends_at(self) -> Timestamp {
        self.next().starts_at()
    }
}

impl fmt::Display for BusinessDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A calendar month in Asia/Seoul: the unit of statements, of history partitions and of
/// retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusinessMonth {
    year: i16,
    month: i8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a month is written YYYY-MM, between 2000-01 and 2099-12")]
pub struct MonthError;

impl BusinessMonth {
    /// The Seoul calendar month that contains `at`.
    pub fn containing(at: Timestamp) -> Self {
        let date = BusinessDate::containing(at).date();
        Self {
            year: date.year(),
            month: date.month(),
        }
    }

    /// Parses `YYYY-MM` (the years the manual clock allows).
    pub fn parse(raw: &str) -> Result<Self, MonthError> {
        let (y, m) = raw.split_once('-').ok_or(MonthError)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(MonthError);
        }
        let year: i16 = y.parse().map_err(|_| MonthError)?;
        let month: i8 = m.parse().map_err(|_| MonthError)?;
        if !SUPPORTED_YEARS.contains(&year) || !(1..=12).contains(&month) {
            return Err(MonthError);
        }
        Ok(Self { year, month })
    }

    pub fn first_day(self) -> BusinessDate {
        BusinessDate(Date::new(self.year, self.month, 1).expect("a valid month"))
    }

    /// 00:00 in Seoul on the first day.
    pub fn starts_at(self) -> Timestamp {
        self.first_day().starts_at()
    }

    /// 00:00 in Seoul on the first day of the next month.
    pub fn ends_at(self) -> Timestamp {
        self.next().starts_at()
    }

    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                month: self.month + 1,
                ..self
            }
        }
    }

    pub fn previous(self) -> Self {
        if self.month == 1 {
            Self {
                year: self.year - 1,
                month: 12,
            }
        } else {
            Self {
                month: self.month - 1,
                ..self
            }
        }
    }

    /// This month minus `n` months.
    pub fn minus(self, n: u32) -> Self {
        (0..n).fold(self, |m, _| m.previous())
    }

    /// `YYYYMM`, for names (partitions, archives).
    pub fn compact(self) -> String {
        format!("{:04}{:02}", self.year, self.month)
    }
}

impl fmt::Display for BusinessMonth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn seoul_midnight_is_15_utc() {
        let d = BusinessDate::containing(ts("2026-11-21T14:59:59Z"));
        assert_eq!(d.to_string(), "2026-11-21");
        let d2 = BusinessDate::containing(ts("2026-11-21T15:00:00Z"));
        assert_eq!(d2.to_string(), "2026-11-22");
        assert_eq!(d.ends_at(), ts("2026-11-21T15:00:00Z"));
        assert_eq!(d2.starts_at(), ts("2026-11-21T15:00:00Z"));
    }

    #[test]
    fn wall_clock_slots() {
        let d = BusinessDate::containing(ts("2026-11-21T00:00:00Z"));
        assert_eq!(d.at(Time::constant(4, 0, 0, 0)), ts("2026-11-20T19:00:00Z"));
    }

    #[test]
    fn manual_clock_stands_still_and_truncates() {
        let c = ManualClock::new(ts("2026-01-01T00:00:00.123456789Z"));
        assert_eq!(c.now(), ts("2026-01-01T00:00:00.123456Z"));
        assert_eq!(c.now(), c.now());
        c.advance(SignedDuration::from_secs(60)).unwrap();
        assert_eq!(c.now(), ts("2026-01-01T00:01:00.123456Z"));
    }

    #[test]
    fn months_are_seoul_calendar_months() {
        let m = BusinessMonth::containing(ts("2026-11-30T15:00:00Z")); // 00:00 on 1 Dec in Seoul
        assert_eq!(m.to_string(), "2026-12");
        let nov = BusinessMonth::parse("2026-11").unwrap();
        assert_eq!(nov.starts_at(), ts("2026-10-31T15:00:00Z"));
        assert_eq!(nov.ends_at(), ts("2026-11-30T15:00:00Z"));
        assert_eq!(BusinessMonth::parse("2026-12").unwrap().next().to_string(), "2027-01");
        assert_eq!(
            BusinessMonth::parse("2027-01").unwrap().previous().to_string(),
            "2026-12"
        );
        assert_eq!(
            BusinessMonth::parse("2027-12").unwrap().minus(13).to_string(),
            "2026-11"
        );
        assert_eq!(nov.compact(), "202611");
        for bad in [
            "2026-13", "2026-00", "2026-1", "26-11", "2026/11", "1999-12", "2100-01", "",
        ] {
            assert!(BusinessMonth::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn manual_clock_refuses_to_leave_its_range() {
        let c = ManualClock::new(ts("2099-12-31T23:00:00Z"));
        assert!(c.advance(SignedDuration::from_hours(2)).is_err());
        assert!(c.advance(SignedDuration::MIN).is_err());
        assert!(c.set(ts("1999-12-31T23:59:59Z")).is_err());
        assert_eq!(c.now(), ts("2099-12-31T23:00:00Z"), "a refused move changes nothing");
        assert!(c.set(ts("2000-01-01T00:00:00Z")).is_ok());
    }

    // Unix seconds between 1990 and 2100: Seoul has had no DST since 1988.
    fn modern_instant() -> impl Strategy<Value = Timestamp> {
        (631_152_000i64..4_102_444_800).prop_map(|s| Timestamp::from_second(s).unwrap())
    }

    proptest! {
        #[test]
        fn an_instant_lies_inside_its_business_date(at in modern_instant()) {
            let d = BusinessDate::containing(at);
            prop_assert!(d.starts_at() <= at);
            prop_assert!(at < d.ends_at());
        }

        #[test]
        fn business_days_are_24_hours_and_contiguous(at in modern_instant()) {
            let d = BusinessDate::containing(at);
            prop_assert_eq!(d.ends_at().duration_since(d.starts_at()), SignedDuration::from_hours(24));
            prop_assert_eq!(BusinessDate::containing(d.ends_at()), d.next());
            prop_assert_eq!(d.next().starts_at(), d.ends_at());
        }

                #[test]
        fn an_instant_lies_inside_its_month(at in modern_instant()) {
            let m = BusinessMonth::containing(at);
            prop_assert!(m.starts_at() <= at && at < m.ends_at());
            prop_assert_eq!(m.next().previous(), m);
            prop_assert_eq!(BusinessMonth::containing(m.ends_at()), m.next());
            prop_assert_eq!(BusinessMonth::parse(&m.to_string()).ok().filter(|_| (2000..2100).contains(&m.year)).unwrap_or(m), m);
        }

        #[test]
        fn business_date_ignores_the_process_time_zone(at in modern_instant()) {
            // The date is a function of the instant alone: 00:00 Seoul is 15:00 UTC the day before.
            let utc_date = at.to_zoned(TimeZone::UTC).date();
            let seoul = BusinessDate::containing(at).date();
            let hour = at.to_zoned(TimeZone::UTC).hour();
            if hour >= 15 {
                prop_assert_eq!(seoul, utc_date.tomorrow().unwrap());
            } else {
                prop_assert_eq!(seoul, utc_date);
            }
        }
    }
}
