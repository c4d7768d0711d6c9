//! Schedules and data intervals: cron + time zone → the instants a DAG fires and the
//! `[start, end)` intervals between them (Airflow's data-interval semantics).
//!
//! Fire times are computed on the wall clock of the DAG's time zone and mapped to real
//! instants, with these rules across daylight-saving changes (Vixie cron's, made exact):
//! - a schedule whose hour field is `*` follows real time: local times skipped by
//!   spring-forward do not fire, local times repeated by fall-back fire at both instants,
//!   so `*/15` gives 15 real minutes per interval through both nights;
//! - a schedule at fixed hours fires once a day whatever the clock does: a skipped local
//!   time fires at the same wall time shifted by the gap (02:30 on the spring-forward night
//!   in Europe/Berlin fires at 03:30 CEST, RFC 5545's rule), a repeated local time fires at
//!   its first occurrence only.
//!
//! Every boundary is a real instant, and the intervals never overlap nor leave gaps.

mod expression;
pub mod mapping;

use std::fmt;

use chrono::{
    DateTime, Datelike, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub use expression::{CronError, CronFields};

/// How many days the search for a next or previous fire time may span: long enough for
/// `0 0 29 2 *` (leap days), bounded so no expression makes it loop forever.
const SEARCH_DAYS: u64 = 366 * 8 + 2;

/// A parsed schedule: a cron expression (5 fields, or 6 with seconds first) or a preset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    source: String,
    fields: CronFields,
}

/// One data interval `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DataInterval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Schedule {
    pub fn parse(source: &str) -> Result<Self, CronError> {
        Ok(Schedule {
            source: source.trim().to_owned(),
            fields: expression::parse(source)?,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The first fire time strictly after `after`.
    pub fn next_fire(&self, tz: Tz, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.fire_times(tz, after).next()
    }

    /// The last fire time at or before `at`.
    pub fn prev_fire(&self, tz: Tz, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut day = at
            .with_timezone(&tz)
            .date_naive()
            .checked_add_days(Days::new(1))?;
        for _ in 0..SEARCH_DAYS {
            if let Some(t) = self.fires_on(tz, day).into_iter().rev().find(|t| *t <= at) {
                return Some(t);
            }
            day = day.pred_opt()?;
        }
        None
    }

    /// Whether `at` is one of the schedule's fire times.
    pub fn fires_at(&self, tz: Tz, at: DateTime<Utc>) -> bool {
        self.prev_fire(tz, at) == Some(at)
    }

    /// Fire times strictly after `after`, in order.
    pub fn fire_times(&self, tz: Tz, after: DateTime<Utc>) -> FireTimes<'_> {
        // Start a day early: a fall-back repeat can put a fire time of the previous local
        // day after `after`.
        let day = after
            .with_timezone(&tz)
            .date_naive()
            .pred_opt()
            .unwrap_or(NaiveDate::MIN);
        FireTimes {
            schedule: self,
            tz,
            after,
            day: Some(day),
            pending: Vec::new(),
            empty_days: 0,
        }
    }

    /// Data intervals whose start is at or after `from`, in order.
    pub fn intervals(&self, tz: Tz, from: DateTime<Utc>) -> Intervals<'_> {
        let just_before = from - chrono::TimeDelta::nanoseconds(1);
        let mut fires = self.fire_times(tz, just_before);
        let start = fires.next();
        Intervals { fires, start }
    }

    /// The interval that starts at `start`, which must be a fire time.
    pub fn interval_starting(&self, tz: Tz, start: DateTime<Utc>) -> Option<DataInterval> {
        if !self.fires_at(tz, start) {
            return None;
        }
        let end = self.next_fire(tz, start)?;
        Some(DataInterval { start, end })
    }

    /// Fire times on one local calendar day, sorted.
    fn fires_on(&self, tz: Tz, day: NaiveDate) -> Vec<DateTime<Utc>> {
        let f = &self.fields;
        if !f.matches_day(day.month(), day.day(), day.weekday().num_days_from_sunday()) {
            return Vec::new();
        }
        let mut out = Vec::new();
        for &h in &f.hours {
            for &m in &f.minutes {
                for &s in &f.seconds {
                    let Some(time) = NaiveTime::from_hms_opt(h, m, s) else {
                        continue;
                    };
                    let local = day.and_time(time);
                    match tz.from_local_datetime(&local) {
                        LocalResult::Single(t) => out.push(t.with_timezone(&Utc)),
                        LocalResult::Ambiguous(first, second) => {
                            out.push(first.with_timezone(&Utc));
                            if f.every_hour {
                                out.push(second.with_timezone(&Utc));
                            }
                        }
                        LocalResult::None if !f.every_hour => {
                            out.extend(shift_across_gap(tz, local));
                        }
                        LocalResult::None => {}
                    }
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// A local time inside a spring-forward gap, read with the offset in force before the gap.
fn shift_across_gap(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    let mut probe = local;
    for _ in 0..(26 * 4) {
        probe -= chrono::TimeDelta::minutes(15);
        if let Some(before) = tz.from_local_datetime(&probe).earliest() {
            let offset = chrono::TimeDelta::seconds(i64::from(
                chrono::Offset::fix(before.offset()).local_minus_utc(),
            ));
            return Some(Utc.from_utc_datetime(&(local - offset)));
        }
    }
    None
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Display for DataInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}",
            self.start
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            self.end
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
        )
    }
}

/// Iterator over fire times; ends only if the schedule stops firing (past the year 262143,
/// or a search that spans [`SEARCH_DAYS`] without a fire).
pub struct FireTimes<'a> {
    schedule: &'a Schedule,
    tz: Tz,
    after: DateTime<Utc>,
    day: Option<NaiveDate>,
    /// Fire times of the current day not yet returned, in reverse order.
    pending: Vec<DateTime<Utc>>,
    empty_days: u64,
}

impl Iterator for FireTimes<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        loop {
            if let Some(t) = self.pending.pop() {
                if t > self.after {
                    self.after = t;
                    return Some(t);
                }
                continue;
            }
            let day = self.day?;
            if self.empty_days > SEARCH_DAYS {
                return None;
            }
            self.pending = self.schedule.fires_on(self.tz, day);
            self.pending.reverse();
            self.empty_days = if self.pending.is_empty() {
                self.empty_days + 1
            } else {
                0
            };
            self.day = day.succ_opt();
        }
    }
}

/// Iterator over consecutive data intervals.
pub struct Intervals<'a> {
    fires: FireTimes<'a>,
    start: Option<DateTime<Utc>>,
}

impl Iterator for Intervals<'_> {
    type Item = DataInterval;

    fn next(&mut self) -> Option<DataInterval> {
        let start = self.start?;
        let end = self.fires.next();
        self.start = end;
        Some(DataInterval { start, end: end? })
    }
}

#[cfg(test)]
mod tests;
