use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::*;

mod dst_reference;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

fn schedule(text: &str) -> Schedule {
    match Schedule::parse(text) {
        Ok(s) => s,
        Err(e) => panic!("{text}: {e}"),
    }
}

/// Intervals from one local midnight to the next.
fn local_day(s: &Schedule, tz: Tz, day: &str) -> Vec<DataInterval> {
    let date = NaiveDate::from_str(day).unwrap_or(NaiveDate::MIN);
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap_or_default())
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    };
    let (from, to) = (midnight(date), midnight(date.succ_opt().unwrap_or(date)));
    s.intervals(tz, from).take_while(|i| i.end <= to).collect()
}

fn assert_contiguous_quarter_hours(intervals: &[DataInterval]) {
    for pair in intervals.windows(2) {
        assert_eq!(pair[0].end, pair[1].start, "gap or overlap at {}", pair[0]);
    }
    for i in intervals {
        assert_eq!(i.end - i.start, chrono::TimeDelta::minutes(15), "{i}");
    }
}

#[test]
fn quarter_hours_in_berlin_across_spring_forward() {
    let s = schedule("*/15 * * * *");
    let day = local_day(&s, chrono_tz::Europe::Berlin, "2025-03-30");
    // The local day has 23 hours: 92 quarter hours, none doubled, none missing.
    assert_eq!(day.len(), 92);
    assert_contiguous_quarter_hours(&day);
    // 01:45 CET is followed directly by 03:00 CEST, both real instants.
    assert!(day.contains(&DataInterval {
        start: utc("2025-03-30T00:45:00Z"),
        end: utc("2025-03-30T01:00:00Z"),
    }));
}

#[test]
fn quarter_hours_in_berlin_across_fall_back() {
    let s = schedule("*/15 * * * *");
    let day = local_day(&s, chrono_tz::Europe::Berlin, "2025-10-26");
    // The local day has 25 hours; the repeated hour 02:00-03:00 runs twice, once per offset.
    assert_eq!(day.len(), 100);
    assert_contiguous_quarter_hours(&day);
    let two_am: Vec<_> = day
        .iter()
        .filter(|i| {
            let local = i.start.with_timezone(&chrono_tz::Europe::Berlin);
            local.hour() == 2 && local.minute() == 0
        })
        .map(|i| i.start)
        .collect();
    assert_eq!(
        two_am,
        vec![utc("2025-10-26T00:00:00Z"), utc("2025-10-26T01:00:00Z")]
    );
}

#[test]
fn daily_0230_on_the_spring_forward_day_runs_at_0330_summer_time() {
    let s = schedule("30 2 * * *");
    let tz = chrono_tz::Europe::Berlin;
    let intervals: Vec<_> = s
        .intervals(tz, utc("2025-03-29T00:00:00Z"))
        .take(3)
        .collect();
    assert_eq!(
        intervals,
        vec![
            // 02:30 CET on the 29th to 03:30 CEST on the 30th: 24 real hours.
            DataInterval {
                start: utc("2025-03-29T01:30:00Z"),
                end: utc("2025-03-30T01:30:00Z"),
            },
            // then back to 02:30 CEST: a 23-hour interval.
            DataInterval {
                start: utc("2025-03-30T01:30:00Z"),
                end: utc("2025-03-31T00:30:00Z"),
            },
            DataInterval {
                start: utc("2025-03-31T00:30:00Z"),
                end: utc("2025-04-01T00:30:00Z"),
            },
        ]
    );
}

#[test]
fn daily_0230_on_the_fall_back_day_runs_once() {
    let s = schedule("30 2 * * *");
    let tz = chrono_tz::Europe::Berlin;
    let fires: Vec<_> = s
        .fire_times(tz, utc("2025-10-25T12:00:00Z"))
        .take(2)
        .collect();
    // The first 02:30 (CEST) only; the repeated 02:30 CET does not fire again.
    assert_eq!(
        fires,
        vec![utc("2025-10-26T00:30:00Z"), utc("2025-10-27T01:30:00Z")]
    );
}

#[test]
fn hourly_fires_in_both_copies_of_the_repeated_hour() {
    let s = schedule("@hourly");
    let tz = chrono_tz::Europe::Berlin;
    let fires: Vec<_> = s
        .fire_times(tz, utc("2025-10-25T23:30:00Z"))
        .take(3)
        .collect();
    assert_eq!(
        fires,
        vec![
            utc("2025-10-26T00:00:00Z"),
            utc("2025-10-26T01:00:00Z"),
            utc("2025-10-26T02:00:00Z")
        ]
    );
}

#[test]
fn previous_and_next_fire_agree() {
    let s = schedule("*/15 * * * *");
    let tz = chrono_tz::UTC;
    let t = utc("2025-09-01T10:07:00Z");
    assert_eq!(s.prev_fire(tz, t), Some(utc("2025-09-01T10:00:00Z")));
    assert_eq!(s.next_fire(tz, t), Some(utc("2025-09-01T10:15:00Z")));
    assert!(s.fires_at(tz, utc("2025-09-01T10:15:00Z")));
    assert!(!s.fires_at(tz, t));
    assert_eq!(
        s.interval_starting(tz, utc("2025-09-01T10:15:00Z")),
        Some(DataInterval {
            start: utc("2025-09-01T10:15:00Z"),
            end: utc("2025-09-01T10:30:00Z"),
        })
    );
}

#[test]
fn leap_day_schedules_find_the_next_leap_year() {
    let s = schedule("0 0 29 2 *");
    assert_eq!(
        s.next_fire(chrono_tz::UTC, utc("2025-03-01T00:00:00Z")),
        Some(utc("2028-02-29T00:00:00Z"))
    );
}

const ZONES: &[Tz] = &[
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::America::Sao_Paulo,
    chrono_tz::Australia::Lord_Howe,
    chrono_tz::Asia::Kolkata,
    chrono_tz::Asia::Kathmandu,
    chrono_tz::Pacific::Chatham,
    chrono_tz::America::Havana,
];

fn minute_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (1u32..=30).prop_map(|k| format!("*/{k}")),
        (0u32..60).prop_map(|m| m.to_string()),
        (0u32..30, 30u32..60).prop_map(|(a, b)| format!("{a},{b}")),
        (0u32..30, 30u32..60, 1u32..10).prop_map(|(a, b, k)| format!("{a}-{b}/{k}")),
    ]
}

fn hour_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (1u32..=12).prop_map(|k| format!("*/{k}")),
        (0u32..24).prop_map(|h| h.to_string()),
        (0u32..12, 12u32..24).prop_map(|(a, b)| format!("{a},{b}")),
    ]
}

fn day_fields() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("* * *".to_owned()),
        (1u32..=28).prop_map(|d| format!("{d} * *")),
        Just("* * 1-5".to_owned()),
        Just("* * SUN".to_owned()),
        (1u32..=12).prop_map(|m| format!("* {m} *")),
        Just("1,15 * MON".to_owned()),
    ]
}

fn expression() -> impl Strategy<Value = String> {
    (minute_field(), hour_field(), day_fields()).prop_map(|(m, h, d)| format!("{m} {h} {d}"))
}

fn instant() -> impl Strategy<Value = DateTime<Utc>> {
    (1_577_836_800i64..1_893_456_000i64)
        .prop_map(|s| Utc.timestamp_opt(s, 0).single().unwrap_or_default())
}

fn wall_matches(fields: &CronFields, local: chrono::NaiveDateTime) -> bool {
    fields.minutes.contains(&local.minute())
        && fields.hours.contains(&local.hour())
        && fields.seconds.contains(&local.second())
        && fields.matches_day(
            local.month(),
            local.day(),
            local.weekday().num_days_from_sunday(),
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn intervals_are_contiguous_increasing_and_aligned(
        expr in expression(),
        zone in 0..ZONES.len(),
        from in instant(),
    ) {
        let tz = ZONES[zone];
        let s = schedule(&expr);
        let intervals: Vec<_> = s.intervals(tz, from).take(60).collect();
        prop_assert_eq!(intervals.len(), 60);
        prop_assert!(intervals[0].start >= from);
        for pair in intervals.windows(2) {
            prop_assert_eq!(pair[0].end, pair[1].start);
        }
        for i in &intervals {
            prop_assert!(i.start < i.end, "{} not increasing", i);
            let offset_now = tz.offset_from_utc_datetime(&i.start.naive_utc()).fix();
            // A fixed-time schedule may fire at a wall time shifted across a DST gap: its
            // wall time under the offset in force before the gap matches the cron.
            let offset_before = tz
                .offset_from_utc_datetime(&(i.start - chrono::TimeDelta::hours(3)).naive_utc())
                .fix();
            let aligned = wall_matches(&s.fields, i.start.naive_utc() + offset_now)
                || (!s.fields.every_hour
                    && wall_matches(&s.fields, i.start.naive_utc() + offset_before));
            prop_assert!(aligned, "{} in {} is not aligned to `{}`", i.start, tz, expr);
            prop_assert!(s.fires_at(tz, i.start));
        }
    }

    #[test]
    fn starting_midway_gives_the_same_sequence(
        expr in expression(),
        zone in 0..ZONES.len(),
        from in instant(),
        skip in 0usize..40,
    ) {
        let tz = ZONES[zone];
        let s = schedule(&expr);
        let all: Vec<_> = s.intervals(tz, from).take(50).collect();
        let resumed: Vec<_> = s.intervals(tz, all[skip].start).take(50 - skip).collect();
        prop_assert_eq!(&all[skip..], &resumed[..]);
        prop_assert_eq!(s.prev_fire(tz, all[skip].end - chrono::TimeDelta::seconds(1)), Some(all[skip].start));
    }

    #[test]
    fn agrees_with_the_cron_crate_in_utc(
        minute in minute_field(),
        hour in hour_field(),
        day in prop_oneof![Just("* * *"), Just("1 * *"), Just("* * MON-FRI"), Just("* 2 *")],
        from in instant(),
    ) {
        let ours = schedule(&format!("{minute} {hour} {day}"));
        let reference = cron::Schedule::from_str(&format!("0 {minute} {hour} {day}"))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let expected: Vec<_> = reference.after(&from).take(30).collect();
        let actual: Vec<_> = ours.fire_times(chrono_tz::UTC, from).take(30).collect();
        prop_assert_eq!(actual, expected);
    }
}
