//! Interval mappings between two schedules: which intervals of an upstream grid one interval
//! of a consuming grid reads (Dagster's time-window partition mappings, computed on real
//! instants). The base of data shared per interval between DAGs (issue 22): an hourly
//! validation reads the four 15-minute windows of its hour; a Berlin day reads the 23, 24 or
//! 25 hours it holds.
//!
//! For a consumer interval `I` the mapping first takes the range
//! `R(I) = [shift(I, a).start + offset, shift(I, b).end + offset)`, where `shift(I, k)` is
//! the k-th consumer interval after `I` (before it for k < 0: a calendar step, so a Berlin
//! "previous day" is 23, 24 or 25 hours) and `offset` is real time. Then:
//! - `same`: `R(I)` must be one upstream interval, and is the one read;
//! - `within`: `R(I)` must start and end on upstream fire times, and every upstream interval
//!   inside it is read (they tile it: contiguous, disjoint, in order).
//!
//! A range whose boundary is not an upstream fire time is misaligned: an error that names
//! the boundary and the upstream fire times around it, never a silent rounding.

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;

use super::{DataInterval, Schedule};

/// A schedule in its time zone: the intervals of one DAG.
#[derive(Debug, Clone, Copy)]
pub struct Grid<'a> {
    pub schedule: &'a Schedule,
    pub tz: Tz,
}

impl Grid<'_> {
    /// The interval that holds `at` (its start ≤ `at` < its end).
    pub fn interval_holding(&self, at: DateTime<Utc>) -> Option<DataInterval> {
        let start = self.schedule.prev_fire(self.tz, at)?;
        let end = self.schedule.next_fire(self.tz, start)?;
        Some(DataInterval { start, end })
    }

    /// The k-th interval after `interval` on this grid (before it for k < 0).
    pub fn shift(&self, interval: DataInterval, k: i32) -> Option<DataInterval> {
        let mut current = interval;
        for _ in 0..k.unsigned_abs() {
            current = if k > 0 {
                let end = self.schedule.next_fire(self.tz, current.end)?;
                DataInterval {
                    start: current.end,
                    end,
                }
            } else {
                let start = self
                    .schedule
                    .prev_fire(self.tz, current.start - TimeDelta::nanoseconds(1))?;
                DataInterval {
                    start,
                    end: current.start,
                }
            };
        }
        Some(current)
    }
}

/// How the intervals read are chosen from the range.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum MappingKind {
    /// The range is one upstream interval.
    Same,
    /// Every upstream interval inside the range.
    Within,
}

/// A consumer's mapping onto an upstream grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IntervalMapping {
    pub kind: MappingKind,
    /// Real time added to both ends of the range.
    pub offset: TimeDelta,
    /// Consumer intervals the range spans, relative to the interval: `(0, 0)` is the
    /// interval itself, `(-1, -1)` the one before, `(-1, 0)` both.
    pub shift: (i32, i32),
}

impl IntervalMapping {
    pub const SAME: IntervalMapping = IntervalMapping {
        kind: MappingKind::Same,
        offset: TimeDelta::zero(),
        shift: (0, 0),
    };
    pub const WITHIN: IntervalMapping = IntervalMapping {
        kind: MappingKind::Within,
        offset: TimeDelta::zero(),
        shift: (0, 0),
    };
}

/// Why a consumer interval has no upstream intervals.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MappingError {
    #[error(
        "the range's boundary {} is not an upstream interval boundary (the nearest are {} and {})",
        boundary.to_rfc3339(),
        show(nearest_before),
        show(nearest_after)
    )]
    Misaligned {
        boundary: DateTime<Utc>,
        nearest_before: Option<DateTime<Utc>>,
        nearest_after: Option<DateTime<Utc>>,
    },
    #[error("`same` reads one upstream interval, but the range holds {count}: use `within`")]
    NotOne { count: usize },
    #[error("the range holds more than {cap} upstream intervals")]
    TooWide { cap: usize },
    #[error("the schedule has no interval there")]
    OffSchedule,
}

fn show(t: &Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "none".to_owned(), |t| t.to_rfc3339())
}

impl IntervalMapping {
    /// The range `R(I)` of the consumer interval `interval`.
    pub fn range(&self, consumer: Grid<'_>, interval: DataInterval) -> Option<DataInterval> {
        let (a, b) = self.shift;
        let first = consumer.shift(interval, a)?;
        let last = consumer.shift(interval, b)?;
        Some(DataInterval {
            start: first.start.checked_add_signed(self.offset)?,
            end: last.end.checked_add_signed(self.offset)?,
        })
    }

    /// The upstream intervals the consumer interval reads, in order; at most `cap`.
    pub fn upstream_of(
        &self,
        consumer: Grid<'_>,
        upstream: Grid<'_>,
        interval: DataInterval,
        cap: usize,
    ) -> Result<Vec<DataInterval>, MappingError> {
        let range = self
            .range(consumer, interval)
            .ok_or(MappingError::OffSchedule)?;
        let misaligned = |boundary: DateTime<Utc>| MappingError::Misaligned {
            boundary,
            nearest_before: upstream.schedule.prev_fire(upstream.tz, boundary),
            nearest_after: upstream.schedule.next_fire(upstream.tz, boundary),
        };
        if !upstream.schedule.fires_at(upstream.tz, range.start) {
            return Err(misaligned(range.start));
        }
        match self.kind {
            MappingKind::Same => {
                let next = upstream.schedule.next_fire(upstream.tz, range.start);
                if next == Some(range.end) {
                    return Ok(vec![range]);
                }
                if !upstream.schedule.fires_at(upstream.tz, range.end) {
                    return Err(misaligned(range.end));
                }
                let count = upstream
                    .schedule
                    .intervals(upstream.tz, range.start)
                    .take_while(|j| j.end <= range.end)
                    .take(cap.saturating_add(1))
                    .count();
                Err(MappingError::NotOne { count })
            }
            MappingKind::Within => {
                if !upstream.schedule.fires_at(upstream.tz, range.end) {
                    return Err(misaligned(range.end));
                }
                let mut read = Vec::new();
                for j in upstream.schedule.intervals(upstream.tz, range.start) {
                    if j.end > range.end {
                        break;
                    }
                    if read.len() == cap {
                        return Err(MappingError::TooWide { cap });
                    }
                    read.push(j);
                }
                Ok(read)
            }
        }
    }

    /// The consumer intervals that read the upstream interval `upstream_interval`, in order
    /// (the inverse of [`IntervalMapping::upstream_of`]: exact, each candidate checked).
    pub fn consumers_of(
        &self,
        consumer: Grid<'_>,
        upstream: Grid<'_>,
        upstream_interval: DataInterval,
        cap: usize,
    ) -> Vec<DataInterval> {
        let Some(at) = upstream_interval.start.checked_sub_signed(self.offset) else {
            return Vec::new();
        };
        let Some(holding) = consumer.interval_holding(at) else {
            return Vec::new();
        };
        let (a, b) = self.shift;
        (-b..=-a)
            .filter_map(|k| consumer.shift(holding, k))
            .filter(|candidate| {
                self.upstream_of(consumer, upstream, *candidate, cap)
                    .is_ok_and(|read| read.contains(&upstream_interval))
            })
            .collect()
    }

    /// The first consumer interval from `from` on whose range does not align with the
    /// upstream grid (or holds more than `cap` upstream intervals), looking at the consumer
    /// intervals that start before `until`: `None` when the grids nest over that horizon (a
    /// year covers every month and both daylight-saving changes of any zone). One walk over
    /// both grids' fire times, whatever the ranges' overlap: the load-time check.
    pub fn first_misaligned(
        &self,
        consumer: Grid<'_>,
        upstream: Grid<'_>,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        cap: usize,
    ) -> Option<(DataInterval, MappingError)> {
        let mut intervals = consumer
            .schedule
            .intervals(consumer.tz, from)
            .take_while(|i| i.start < until)
            .peekable();
        let first = self.range(consumer, *intervals.peek()?)?;
        // Range starts and range ends each only grow: one cursor over the upstream fire
        // times for each, both counting from the same fire.
        let just_before = first.start - TimeDelta::nanoseconds(1);
        let mut starts = Cursor::new(upstream, just_before);
        let mut ends = Cursor::new(upstream, just_before);
        for interval in intervals {
            let Some(range) = self.range(consumer, interval) else {
                return Some((interval, MappingError::OffSchedule));
            };
            let at_start = match starts.seek(range.start) {
                Ok(index) => index,
                Err(e) => return Some((interval, e)),
            };
            let at_end = match ends.seek(range.end) {
                Ok(index) => index,
                Err(e) => return Some((interval, e)),
            };
            let read = at_end - at_start;
            if self.kind == MappingKind::Same && read != 1 {
                return Some((interval, MappingError::NotOne { count: read }));
            }
            if read > cap {
                return Some((interval, MappingError::TooWide { cap }));
            }
        }
        None
    }
}

/// A walk over a grid's fire times that counts them: [`Cursor::seek`] says how many fire
/// times come before an instant that is one, or which ones surround it.
struct Cursor<'a> {
    fires: std::iter::Peekable<super::FireTimes<'a>>,
    passed: usize,
    last: Option<DateTime<Utc>>,
}

impl<'a> Cursor<'a> {
    fn new(grid: Grid<'a>, after: DateTime<Utc>) -> Self {
        Cursor {
            fires: grid.schedule.fire_times(grid.tz, after).peekable(),
            passed: 0,
            last: grid.schedule.prev_fire(grid.tz, after),
        }
    }

    /// The number of fire times before `boundary`, which must be one (instants only grow
    /// from call to call); else the misalignment with the fire times around it.
    fn seek(&mut self, boundary: DateTime<Utc>) -> Result<usize, MappingError> {
        while let Some(&fire) = self.fires.peek() {
            if fire >= boundary {
                break;
            }
            self.last = Some(fire);
            self.passed += 1;
            self.fires.next();
        }
        match self.fires.peek() {
            Some(&fire) if fire == boundary => Ok(self.passed),
            next => Err(MappingError::Misaligned {
                boundary,
                nearest_before: self.last,
                nearest_after: next.copied(),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
