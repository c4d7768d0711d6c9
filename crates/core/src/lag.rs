//! Consumer lag evaluation over a sliding window, with Burrow's rules.
//!
//! Each observation of a partition is the group's committed offset and the partition's high
//! watermark at one instant (lag = high watermark − committed offset). Over a window of
//! observations, oldest first, a partition is (Burrow's `calculatePartitionStatus`):
//! - `Ok` when the lag was zero at any point of the window;
//! - otherwise `Rewind` when the committed offset went backwards;
//! - `Stop` when the committed offset has not moved for more than twice the window's span:
//!   the consumer stopped;
//! - `Stall` when the committed offset did not move at all across the window while the lag
//!   stayed: the consumer is stuck;
//! - `Warn` when the offsets move but the lag grew at every step: falling behind;
//! - `Ok` otherwise.
//!
//! A group's status is its worst partition's. Burrow reads each commit with its timestamp
//! from `__consumer_offsets` and tells a consumer committing the same offset (stall) from one
//! not committing (stop); Sluice polls committed offsets and cannot, so it calls a stall that
//! outlasts two windows a stop.

use chrono::{DateTime, Utc};

/// One look at a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Observation {
    pub at: DateTime<Utc>,
    pub committed: i64,
    pub high_watermark: i64,
}

impl Observation {
    pub fn lag(&self) -> i64 {
        (self.high_watermark - self.committed).max(0)
    }
}

/// Burrow's partition statuses, from best to worst.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum LagStatus {
    Ok,
    Warn,
    Rewind,
    Stall,
    Stop,
}

impl LagStatus {
    /// Burrow's name for it.
    pub fn name(self) -> &'static str {
        match self {
            LagStatus::Ok => "OK",
            LagStatus::Warn => "WARN",
            LagStatus::Rewind => "REWIND",
            LagStatus::Stall => "STALL",
            LagStatus::Stop => "STOP",
        }
    }
}

/// The status of one partition over its window (oldest observation first) at `now`.
pub fn partition_status(window: &[Observation], now: DateTime<Utc>) -> LagStatus {
    let (Some(first), Some(last)) = (window.first(), window.last()) else {
        return LagStatus::Ok;
    };
    if window.iter().any(|o| o.lag() == 0) {
        return LagStatus::Ok;
    }
    if window.windows(2).any(|w| w[1].committed < w[0].committed) {
        return LagStatus::Rewind;
    }
    // When the committed offset last changed (the first observation holding the last value).
    let last_move = window
        .iter()
        .rev()
        .take_while(|o| o.committed == last.committed)
        .last()
        .map_or(last.at, |o| o.at);
    let span = last.at - first.at;
    if window.len() > 1 && last.committed == first.committed && now - last_move > span * 2 {
        return LagStatus::Stop;
    }
    if window.len() > 1 && first.committed == last.committed {
        return LagStatus::Stall;
    }
    if window.len() > 2 && window.windows(2).all(|w| w[1].lag() > w[0].lag()) {
        return LagStatus::Warn;
    }
    LagStatus::Ok
}

/// A group's status: the worst of its partitions'.
pub fn group_status(statuses: impl IntoIterator<Item = LagStatus>) -> LagStatus {
    statuses.into_iter().max().unwrap_or(LagStatus::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A window from (seconds, committed, high watermark) triples, starting at 10:00.
    fn window(points: &[(i64, i64, i64)]) -> Vec<Observation> {
        let start = DateTime::parse_from_rfc3339("2025-09-01T10:00:00Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        points
            .iter()
            .map(|&(s, committed, high_watermark)| Observation {
                at: start + chrono::TimeDelta::seconds(s),
                committed,
                high_watermark,
            })
            .collect()
    }

    fn at(seconds: i64) -> DateTime<Utc> {
        window(&[(seconds, 0, 0)])[0].at
    }

    // Recorded shapes of offset histories (Burrow's documentation examples, one commit a
    // minute over a 10-commit window).

    #[test]
    fn a_consumer_that_catches_up_at_some_point_is_ok() {
        let w = window(&[
            (0, 100, 150),
            (60, 150, 200),
            (120, 200, 200),
            (180, 210, 260),
        ]);
        assert_eq!(partition_status(&w, at(200)), LagStatus::Ok);
    }

    #[test]
    fn a_consumer_keeping_pace_with_a_steady_lag_is_ok() {
        let w = window(&[
            (0, 100, 150),
            (60, 160, 200),
            (120, 210, 260),
            (180, 260, 300),
        ]);
        assert_eq!(partition_status(&w, at(200)), LagStatus::Ok);
    }

    #[test]
    fn offsets_moving_while_lag_grows_every_time_is_a_warning() {
        let w = window(&[
            (0, 100, 110),
            (60, 110, 130),
            (120, 120, 150),
            (180, 130, 170),
        ]);
        assert_eq!(partition_status(&w, at(200)), LagStatus::Warn);
    }

    #[test]
    fn offsets_that_do_not_move_while_lag_stays_stall() {
        let w = window(&[
            (0, 100, 110),
            (60, 100, 120),
            (120, 100, 130),
            (180, 100, 140),
        ]);
        assert_eq!(partition_status(&w, at(200)), LagStatus::Stall);
    }

    #[test]
    fn no_commit_for_longer_than_the_window_is_a_stop() {
        let w = window(&[
            (0, 100, 110),
            (60, 100, 110),
            (120, 100, 110),
            (180, 100, 110),
        ]);
        // The window spans 180 s; 400 s (more than two spans) have passed since the offset
        // last moved.
        assert_eq!(partition_status(&w, at(400)), LagStatus::Stop);
    }

    #[test]
    fn offsets_going_back_are_a_rewind() {
        let w = window(&[
            (0, 100, 150),
            (60, 120, 160),
            (120, 40, 170),
            (180, 60, 180),
        ]);
        assert_eq!(partition_status(&w, at(200)), LagStatus::Rewind);
    }

    #[test]
    fn a_group_is_as_bad_as_its_worst_partition() {
        assert_eq!(
            group_status([LagStatus::Ok, LagStatus::Stall, LagStatus::Warn]),
            LagStatus::Stall
        );
        assert_eq!(group_status([]), LagStatus::Ok);
    }

    proptest::proptest! {
        /// Whatever the history, a window where the lag touched zero is OK, and a window
        /// whose offsets only move forward is never a rewind.
        #[test]
        fn zero_lag_is_ok_and_forward_offsets_never_rewind(
            steps in proptest::collection::vec((0i64..50, 0i64..50), 1..12),
            touch_zero in proptest::bool::ANY,
        ) {
            let mut committed = 1000;
            let mut high = 1000;
            let mut points = Vec::new();
            for (i, (consumed, produced)) in steps.iter().enumerate() {
                high += produced;
                committed = (committed + consumed).min(high);
                points.push((i as i64 * 60, committed, high));
            }
            if touch_zero {
                let last = points.len() - 1;
                points[last].1 = points[last].2;
            }
            let w = window(&points);
            let status = partition_status(&w, at(points.len() as i64 * 60));
            if touch_zero {
                proptest::prop_assert_eq!(status, LagStatus::Ok);
            }
            proptest::prop_assert_ne!(status, LagStatus::Rewind);
        }
    }
}
