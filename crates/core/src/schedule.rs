//! Job schedules: the slots at which a scheduled job runs (daily Seoul wall-clock times or fixed intervals).

use crate::time::BusinessDate;
use jiff::Timestamp;
use jiff::civil::Time;

const NANOS_PER_SECOND: i128 = 1_000_000_000;

/// When a scheduled job runs. Daily slots are wall-clock times in Asia/Seoul
/// (`crate::time::SEOUL` / `BusinessDate`).
///
/// A slot is an instant that names one run: instances claim `(job, slot)` once, so the same
/// slot computed by any instance, or by a rerun "as of" a later time, is the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Every day at `hour:minute` in Seoul (`hour` in `0..=23`, `minute` in `0..=59`).
    Daily { hour: i8, minute: i8 },
    /// Every `seconds` (at least 1), at multiples of `seconds` since the Unix epoch, so every
    /// instance agrees on the slots without sharing a start time.
    Every { seconds: i64 },
}

impl Schedule {
    /// The latest slot at or before `now` (a daily slot: today's or yesterday's hh:mm in Seoul;
    /// an interval slot: `now` floored to a multiple of `seconds` since the Unix epoch).
    pub fn slot_at_or_before(&self, now: Timestamp) -> Timestamp {
        match *self {
            Self::Daily { hour, minute } => {
                let at = daily_time(hour, minute);
                let today = BusinessDate::containing(now);
                let slot = today.at(at);
                if slot <= now { slot } else { previous(today).at(at) }
            }
            Self::Every { seconds } => {
                let period = interval_nanos(seconds);
                let floored = now.as_nanosecond().div_euclid(period) * period;
                Timestamp::from_nanosecond(floored).expect("a floored instant is in range")
            }
        }
    }

    /// The first slot strictly after `now`.
    pub fn next_slot_after(&self, now: Timestamp) -> Timestamp {
        match *self {
            Self::Daily { hour, minute } => {
                let at = daily_time(hour, minute);
                let today = BusinessDate::containing(now);
                let slot = today.at(at);
                if slot > now { slot } else { today.next().at(at) }
            }
            Self::Every { seconds } => {
                let next = self.slot_at_or_before(now).as_nanosecond() + interval_nanos(seconds);
                Timestamp::from_nanosecond(next).expect("the next slot is in range")
            }
        }
    }
}

/// The wall-clock time of a daily slot. A schedule is configuration written in code, so an
/// impossible time is a programming error, not input to reject.
fn daily_time(hour: i8, minute: i8) -> Time {
    Time::new(hour, minute, 0, 0).unwrap_or_else(|_| panic!("daily slot {hour}:{minute} is not a time of day"))
}

fn interval_nanos(seconds: i64) -> i128 {
    assert!(seconds >= 1, "an interval of {seconds} s never advances");
    i128::from(seconds) * NANOS_PER_SECOND
}

fn previous(day: BusinessDate) -> BusinessDate {
    BusinessDate::from_date(day.date().yesterday().expect("date in range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::SignedDuration;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const INTEREST: Schedule = Schedule::Daily { hour: 4, minute: 0 };

    #[test]
    fn daily_slot_just_before_and_at_four_in_seoul() {
        // 04:00 Seoul is 19:00 UTC the day before.
        assert_eq!(
            INTEREST.slot_at_or_before(ts("2026-11-21T18:59:59Z")),
            ts("2026-11-20T19:00:00Z")
        );
        assert_eq!(
            INTEREST.next_slot_after(ts("2026-11-21T18:59:59Z")),
            ts("2026-11-21T19:00:00Z")
        );
        assert_eq!(
            INTEREST.slot_at_or_before(ts("2026-11-21T19:00:00Z")),
            ts("2026-11-21T19:00:00Z")
        );
        assert_eq!(
            INTEREST.next_slot_after(ts("2026-11-21T19:00:00Z")),
            ts("2026-11-22T19:00:00Z")
        );
    }

    #[test]
    fn daily_slot_across_the_seoul_midnight() {
        // 08:00 Seoul = 23:00 UTC. Just after Seoul midnight, today's 08:00 is still ahead.
        let auto_debit = Schedule::Daily { hour: 8, minute: 0 };
        let after_midnight = ts("2026-11-21T15:00:01Z");
        assert_eq!(auto_debit.slot_at_or_before(after_midnight), ts("2026-11-20T23:00:00Z"));
        assert_eq!(auto_debit.next_slot_after(after_midnight), ts("2026-11-21T23:00:00Z"));
        // 23:30 Seoul runs late in the same Seoul day.
        let late = Schedule::Daily { hour: 23, minute: 30 };
        assert_eq!(late.slot_at_or_before(after_midnight), ts("2026-11-21T14:30:00Z"));
    }

    #[test]
    fn every_minute_floors_to_the_minute() {
        let minutely = Schedule::Every { seconds: 60 };
        assert_eq!(
            minutely.slot_at_or_before(ts("2026-11-21T10:15:42.5Z")),
            ts("2026-11-21T10:15:00Z")
        );
        assert_eq!(
            minutely.next_slot_after(ts("2026-11-21T10:15:42.5Z")),
            ts("2026-11-21T10:16:00Z")
        );
        assert_eq!(
            minutely.slot_at_or_before(ts("2026-11-21T10:15:00Z")),
            ts("2026-11-21T10:15:00Z")
        );
        assert_eq!(
            minutely.next_slot_after(ts("2026-11-21T10:15:00Z")),
            ts("2026-11-21T10:16:00Z")
        );
    }

    #[test]
    fn intervals_floor_toward_the_past_before_the_epoch() {
        let minutely = Schedule::Every { seconds: 60 };
        assert_eq!(
            minutely.slot_at_or_before(ts("1969-12-31T23:59:59.5Z")),
            ts("1969-12-31T23:59:00Z")
        );
    }

    #[test]
    #[should_panic(expected = "not a time of day")]
    fn an_impossible_daily_time_is_a_bug() {
        Schedule::Daily { hour: 24, minute: 0 }.slot_at_or_before(ts("2026-11-21T00:00:00Z"));
    }

    #[test]
    #[should_panic(expected = "never advances")]
    fn a_zero_interval_is_a_bug() {
        Schedule::Every { seconds: 0 }.next_slot_after(ts("2026-11-21T00:00:00Z"));
    }

    // Instants between 1990 and 2100, with sub-second parts: Seoul has had no DST since 1988.
    fn modern_instant() -> impl Strategy<Value = Timestamp> {
        (631_152_000i64..4_102_444_800, 0i32..1_000_000_000).prop_map(|(s, ns)| Timestamp::new(s, ns).unwrap())
    }

    fn schedule() -> impl Strategy<Value = Schedule> {
        prop_oneof![
            (0i8..=23, 0i8..=59).prop_map(|(hour, minute)| Schedule::Daily { hour, minute }),
            (1i64..=172_800).prop_map(|seconds| Schedule::Every { seconds }),
        ]
    }

    fn period(schedule: Schedule) -> SignedDuration {
        match schedule {
            Schedule::Daily { .. } => SignedDuration::from_hours(24),
            Schedule::Every { seconds } => SignedDuration::from_secs(seconds),
        }
    }

    proptest! {
        #[test]
        fn now_lies_between_its_slot_and_the_next(schedule in schedule(), now in modern_instant()) {
            let slot = schedule.slot_at_or_before(now);
            let next = schedule.next_slot_after(now);
            prop_assert!(slot <= now);
            prop_assert!(now < next);
            prop_assert_eq!(next.duration_since(slot), period(schedule));
        }

        #[test]
        fn a_slot_is_its_own_slot(schedule in schedule(), now in modern_instant()) {
            let slot = schedule.slot_at_or_before(now);
            prop_assert_eq!(schedule.slot_at_or_before(slot), slot);
            prop_assert_eq!(schedule.next_slot_after(slot), slot + period(schedule));
        }

        #[test]
        fn daily_slots_fall_on_the_seoul_wall_clock(hour in 0i8..=23, minute in 0i8..=59, now in modern_instant()) {
            let slot = Schedule::Daily { hour, minute }.slot_at_or_before(now);
            let seoul = slot.to_zoned(crate::time::SEOUL.clone());
            prop_assert_eq!((seoul.hour(), seoul.minute(), seoul.second(), seoul.subsec_nanosecond()), (hour, minute, 0, 0));
        }

        #[test]
        fn interval_slots_are_multiples_of_the_interval(seconds in 1i64..=172_800, now in modern_instant()) {
            let slot = Schedule::Every { seconds }.slot_at_or_before(now);
            prop_assert_eq!(slot.subsec_nanosecond(), 0);
            prop_assert_eq!(slot.as_second().rem_euclid(seconds), 0);
        }
    }
}
