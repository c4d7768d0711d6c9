//! The interval mappings against arithmetic worked out independently of the schedule code:
//! quarter hours of an hour, hours of a Berlin day (23 on the last Sunday of March, 25 on
//! the last Sunday of October, else 24), offsets and shifts, and the round trip between a
//! consumer interval and the upstream intervals it reads.

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;

const CAP: usize = 10_000;

fn schedule(text: &str) -> Schedule {
    match Schedule::parse(text) {
        Ok(s) => s,
        Err(e) => panic!("{text}: {e}"),
    }
}

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Seconds from 2000-01-01 to 2100-01-01.
fn instant_in_century() -> impl Strategy<Value = DateTime<Utc>> {
    (946_684_800i64..4_102_444_800).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
}

fn last_sunday(year: i32, month: u32) -> NaiveDate {
    let mut day = NaiveDate::from_ymd_opt(year, month + 1, 1)
        .unwrap()
        .pred_opt()
        .unwrap();
    while day.weekday() != Weekday::Sun {
        day = day.pred_opt().unwrap();
    }
    day
}

/// Hours in a Berlin calendar day, by the EU rule (since 1996): clocks go forward on the
/// last Sunday of March and back on the last Sunday of October.
fn berlin_day_hours(day: NaiveDate) -> usize {
    if day == last_sunday(day.year(), 3) {
        23
    } else if day == last_sunday(day.year(), 10) {
        25
    } else {
        24
    }
}

const BERLIN: Tz = chrono_tz::Europe::Berlin;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// An hour reads its four quarter hours, which tile it; each quarter hour is read by
    /// the hour that holds it, and by no other.
    #[test]
    fn an_hour_reads_its_four_quarter_hours(at in instant_in_century()) {
        let (quarters, hours) = (schedule("*/15 * * * *"), schedule("0 * * * *"));
        let (up, down) = (Grid { schedule: &quarters, tz: chrono_tz::UTC }, Grid { schedule: &hours, tz: chrono_tz::UTC });
        let hour = down.interval_holding(at).unwrap();
        let read = IntervalMapping::WITHIN.upstream_of(down, up, hour, CAP).unwrap();
        prop_assert_eq!(read.len(), 4);
        prop_assert_eq!(read[0].start, hour.start);
        prop_assert_eq!(read[3].end, hour.end);
        for pair in read.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start);
        }
        for quarter in read {
            prop_assert_eq!(IntervalMapping::WITHIN.consumers_of(down, up, quarter, CAP), vec![hour]);
        }
    }

    /// A Berlin day reads its hours (UTC or Berlin hours alike: both follow real time) and
    /// its quarter hours: 23/92 on the spring-forward Sunday, 25/100 on the fall-back one.
    #[test]
    fn a_berlin_day_reads_the_hours_it_holds(at in instant_in_century(), in_berlin in any::<bool>()) {
        let (days, hours, quarters) = (schedule("0 0 * * *"), schedule("0 * * * *"), schedule("*/15 * * * *"));
        let day_grid = Grid { schedule: &days, tz: BERLIN };
        let hour_zone = if in_berlin { BERLIN } else { chrono_tz::UTC };
        let day = day_grid.interval_holding(at).unwrap();
        let local = day.start.with_timezone(&BERLIN).date_naive();
        let read = IntervalMapping::WITHIN
            .upstream_of(day_grid, Grid { schedule: &hours, tz: hour_zone }, day, CAP)
            .unwrap();
        prop_assert_eq!(read.len(), berlin_day_hours(local), "{}", local);
        prop_assert_eq!((read[0].start, read[read.len() - 1].end), (day.start, day.end));
        let read = IntervalMapping::WITHIN
            .upstream_of(day_grid, Grid { schedule: &quarters, tz: BERLIN }, day, CAP)
            .unwrap();
        prop_assert_eq!(read.len(), 4 * berlin_day_hours(local));
    }

    /// `45 * * * *` with a -45 m offset reads the four windows of the whole hour before its
    /// fire time: the same windows as an hourly run, 45 minutes later.
    #[test]
    fn an_offset_moves_the_range_in_real_time(at in instant_in_century()) {
        let (quarters, at_45) = (schedule("*/15 * * * *"), schedule("45 * * * *"));
        let up = Grid { schedule: &quarters, tz: chrono_tz::UTC };
        let down = Grid { schedule: &at_45, tz: chrono_tz::UTC };
        let mapping = IntervalMapping { offset: TimeDelta::minutes(-45), ..IntervalMapping::WITHIN };
        let interval = down.interval_holding(at).unwrap();
        let read = mapping.upstream_of(down, up, interval, CAP).unwrap();
        let hour_start = interval.start - TimeDelta::minutes(45);
        prop_assert_eq!(hour_start.timestamp() % 3600, 0);
        prop_assert_eq!(read.len(), 4);
        prop_assert_eq!((read[0].start, read[3].end), (hour_start, hour_start + TimeDelta::hours(1)));
    }

    /// A shift of (-1, -1) over Berlin days reads the previous local day, whatever its
    /// length; (-1, 0) reads both days.
    #[test]
    fn a_shift_steps_by_the_consumers_calendar(at in instant_in_century()) {
        let (days, hours) = (schedule("0 0 * * *"), schedule("0 * * * *"));
        let day_grid = Grid { schedule: &days, tz: BERLIN };
        let hour_grid = Grid { schedule: &hours, tz: chrono_tz::UTC };
        let day = day_grid.interval_holding(at).unwrap();
        let yesterday = day.start.with_timezone(&BERLIN).date_naive().pred_opt().unwrap();
        let previous = IntervalMapping { shift: (-1, -1), ..IntervalMapping::WITHIN };
        let read = previous.upstream_of(day_grid, hour_grid, day, CAP).unwrap();
        prop_assert_eq!(read.len(), berlin_day_hours(yesterday));
        prop_assert_eq!(read[read.len() - 1].end, day.start);
        let both = IntervalMapping { shift: (-1, 0), ..IntervalMapping::WITHIN };
        let read_both = both.upstream_of(day_grid, hour_grid, day, CAP).unwrap();
        prop_assert_eq!(read_both.len(), read.len() + (day.end - day.start).num_hours() as usize);
    }

    /// Round trip: J is read by I exactly when I is among J's consumers, for random
    /// intervals, zones and mappings.
    #[test]
    fn reading_and_being_read_agree(
        at in instant_in_century(),
        later in 0i64..(3 * 86_400),
        zone in prop::sample::select(vec![chrono_tz::UTC, BERLIN, chrono_tz::America::New_York, chrono_tz::Australia::Lord_Howe]),
        consumer_cron in prop::sample::select(vec!["0 * * * *", "0 0 * * *", "30 * * * *"]),
        a in -2i32..=0,
        width in 0i32..=1,
        offset_quarters in -4i64..=4,
    ) {
        let (quarters, consumer_schedule) = (schedule("*/15 * * * *"), schedule(consumer_cron));
        let up = Grid { schedule: &quarters, tz: chrono_tz::UTC };
        let down = Grid { schedule: &consumer_schedule, tz: zone };
        let mapping = IntervalMapping {
            kind: MappingKind::Within,
            offset: TimeDelta::minutes(15 * offset_quarters),
            shift: (a, a + width),
        };
        let consumer_interval = down.interval_holding(at).unwrap();
        let upstream_interval = up.interval_holding(at + TimeDelta::seconds(later)).unwrap();
        let reads = match mapping.upstream_of(down, up, consumer_interval, CAP) {
            Ok(read) => read.contains(&upstream_interval),
            // Every grid here is made of real quarter hours (Lord Howe's half-hour shift
            // included): an error is a defect.
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
        };
        let read_by = mapping.consumers_of(down, up, upstream_interval, CAP).contains(&consumer_interval);
        prop_assert_eq!(reads, read_by);
    }

    /// On one grid, `within` with no offset or shift is `same`; consecutive consumer
    /// intervals read disjoint, ordered upstream intervals.
    #[test]
    fn same_is_within_on_one_grid_and_ranges_do_not_overlap(at in instant_in_century()) {
        let hours = schedule("0 * * * *");
        let grid = Grid { schedule: &hours, tz: BERLIN };
        let hour = grid.interval_holding(at).unwrap();
        prop_assert_eq!(
            IntervalMapping::SAME.upstream_of(grid, grid, hour, CAP).unwrap(),
            IntervalMapping::WITHIN.upstream_of(grid, grid, hour, CAP).unwrap()
        );
        let quarters = schedule("*/15 * * * *");
        let up = Grid { schedule: &quarters, tz: chrono_tz::UTC };
        let next = grid.shift(hour, 1).unwrap();
        let (this_read, next_read) = (
            IntervalMapping::WITHIN.upstream_of(grid, up, hour, CAP).unwrap(),
            IntervalMapping::WITHIN.upstream_of(grid, up, next, CAP).unwrap(),
        );
        prop_assert!(this_read[this_read.len() - 1].end <= next_read[0].start);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// The one-walk check over a horizon finds exactly the first interval whose own
    /// mapping fails, for grids that nest and grids that do not.
    #[test]
    fn the_walk_finds_the_first_interval_that_fails_alone(
        at in instant_in_century(),
        consumer_cron in prop::sample::select(vec!["0 * * * *", "*/20 * * * *", "0 */5 * * *", "30 * * * *"]),
        upstream_cron in prop::sample::select(vec!["*/15 * * * *", "0 * * * *", "*/10 * * * *"]),
        zone in prop::sample::select(vec![chrono_tz::UTC, BERLIN, chrono_tz::Asia::Kolkata]),
        same in any::<bool>(),
    ) {
        let (consumer_schedule, upstream_schedule) = (schedule(consumer_cron), schedule(upstream_cron));
        let down = Grid { schedule: &consumer_schedule, tz: zone };
        let up = Grid { schedule: &upstream_schedule, tz: chrono_tz::UTC };
        let mapping = if same { IntervalMapping::SAME } else { IntervalMapping::WITHIN };
        let until = at + TimeDelta::days(3);
        let one_by_one = down
            .schedule
            .intervals(zone, at)
            .take_while(|i| i.start < until)
            .find_map(|i| mapping.upstream_of(down, up, i, CAP).err().map(|e| (i, e)));
        let walked = mapping.first_misaligned(down, up, at, until, CAP);
        prop_assert_eq!(walked.as_ref().map(|(i, _)| *i), one_by_one.as_ref().map(|(i, _)| *i));
        prop_assert_eq!(walked.map(|(_, e)| e), one_by_one.map(|(_, e)| e));
    }
}

/// Grids that do not nest are found at their first misaligned interval, with the upstream
/// boundaries around it named; grids that nest pass a year, both DST changes included.
#[test]
fn misaligned_grids_are_found_with_the_boundary_and_its_neighbours() {
    let (every_20, every_15) = (schedule("*/20 * * * *"), schedule("*/15 * * * *"));
    let (hours, days) = (schedule("0 * * * *"), schedule("0 0 * * *"));
    let year = (utc("2025-01-01T00:00:00Z"), utc("2026-01-01T00:00:00Z"));
    let quarter_grid = Grid {
        schedule: &every_15,
        tz: chrono_tz::UTC,
    };
    let found = IntervalMapping::WITHIN.first_misaligned(
        Grid {
            schedule: &every_20,
            tz: chrono_tz::UTC,
        },
        quarter_grid,
        year.0,
        year.1,
        CAP,
    );
    let Some((
        interval,
        MappingError::Misaligned {
            boundary,
            nearest_before,
            nearest_after,
        },
    )) = found
    else {
        panic!("*/20 over */15 does not nest: {found:?}");
    };
    // [00:00, 00:20): 00:20 is between the quarter hours 00:15 and 00:30.
    assert_eq!(interval.start, year.0);
    assert_eq!(boundary, utc("2025-01-01T00:20:00Z"));
    assert_eq!(nearest_before, Some(utc("2025-01-01T00:15:00Z")));
    assert_eq!(nearest_after, Some(utc("2025-01-01T00:30:00Z")));
    // Hours and Berlin days over quarter hours nest all year.
    for (consumer, zone) in [
        (&hours, chrono_tz::UTC),
        (&days, BERLIN),
        (&hours, chrono_tz::Australia::Lord_Howe),
    ] {
        assert_eq!(
            IntervalMapping::WITHIN.first_misaligned(
                Grid {
                    schedule: consumer,
                    tz: zone
                },
                quarter_grid,
                year.0,
                year.1,
                CAP
            ),
            None
        );
    }
    // Kolkata (UTC+5:30) hours over UTC hours do not nest; over quarter hours they do.
    let kolkata = Grid {
        schedule: &hours,
        tz: chrono_tz::Asia::Kolkata,
    };
    assert!(
        IntervalMapping::WITHIN
            .first_misaligned(
                kolkata,
                Grid {
                    schedule: &hours,
                    tz: chrono_tz::UTC
                },
                year.0,
                year.1,
                CAP
            )
            .is_some()
    );
    assert_eq!(
        IntervalMapping::WITHIN.first_misaligned(kolkata, quarter_grid, year.0, year.1, CAP),
        None
    );
    // `same` needs one interval: an hour holds four quarter hours, said the same way by the
    // walk over a year and by one interval.
    let hour_grid = Grid {
        schedule: &hours,
        tz: chrono_tz::UTC,
    };
    assert_eq!(
        IntervalMapping::SAME.upstream_of(
            hour_grid,
            quarter_grid,
            DataInterval {
                start: year.0,
                end: year.0 + TimeDelta::hours(1)
            },
            CAP
        ),
        Err(MappingError::NotOne { count: 4 })
    );
    assert_eq!(
        IntervalMapping::SAME
            .first_misaligned(hour_grid, quarter_grid, year.0, year.1, CAP)
            .map(|(_, e)| e),
        Some(MappingError::NotOne { count: 4 })
    );
    assert_eq!(
        IntervalMapping::SAME.first_misaligned(hour_grid, hour_grid, year.0, year.1, CAP),
        None
    );
}

/// A day of quarter hours is 96 reads: a cap below it is refused, not cut.
#[test]
fn a_range_wider_than_the_cap_is_refused() {
    let (days, quarters) = (schedule("0 0 * * *"), schedule("*/15 * * * *"));
    let day = DataInterval {
        start: utc("2025-06-01T00:00:00Z"),
        end: utc("2025-06-02T00:00:00Z"),
    };
    let (down, up) = (
        Grid {
            schedule: &days,
            tz: chrono_tz::UTC,
        },
        Grid {
            schedule: &quarters,
            tz: chrono_tz::UTC,
        },
    );
    assert_eq!(
        IntervalMapping::WITHIN
            .upstream_of(down, up, day, 96)
            .map(|r| r.len()),
        Ok(96)
    );
    assert_eq!(
        IntervalMapping::WITHIN.upstream_of(down, up, day, 95),
        Err(MappingError::TooWide { cap: 95 })
    );
}
