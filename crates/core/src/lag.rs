//! Consumer lag evaluation with Burrow's rules (linkedin/Burrow,
//! `core/internal/evaluator/caching.go`, `calculatePartitionStatus`), in Burrow's order:
//!
//! 1. the partition's **current lag is zero** → `Ok`, whatever the history;
//! 2. **stopped**: the time since the last commit exceeds the span of the commit window
//!    (last − first commit) → `Stop`, unless the consumer was caught up with one of the
//!    recent high watermarks (Burrow's "recent lag zero"). Checked before rule 3: an old
//!    moment of zero lag does not hide a consumer that stopped since;
//! 3. the lag was **zero at some commit** of the window → `Ok`;
//! 4. otherwise, the worst that holds of: the committed offset went **backwards** →
//!    `Rewind`; the committed offset **never changed** → `Stall`; the lag **never decreased**
//!    from one commit to the next → `Warn` (not only when it strictly grew);
//! 5. `Ok`.
//!
//! A group's status is its worst partition's. Burrow reads every commit with its timestamp
//! from `__consumer_offsets`; Sluice polls committed offsets, so a commit is approximated
//! from the polls: each poll is a commit of the offset it saw, stamped with the time that
//! offset was **first** seen (a repeated commit of the same offset cannot be told from no
//! commit at all). So a consumer whose offset does not move is `Stop` (it commits nothing
//! new), never `Stall`, and the window should span several of the consumer's commit
//! intervals (10 looks at the gate's poll interval).

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

/// How many of the latest looks count as "recent" for Burrow's recent-lag-zero rule.
pub const RECENT_LOOKS: usize = 3;

/// One commit of a group on a partition, as Burrow keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub offset: i64,
    pub at: DateTime<Utc>,
    /// The lag when it was committed; `None` when unknown (Burrow's nil lag).
    pub lag: Option<i64>,
}

/// Burrow's status of a partition: its commit window (oldest first), the recent high
/// watermarks of the partition, its current lag, at `now`.
pub fn evaluate(
    commits: &[Commit],
    recent_high_watermarks: &[i64],
    current_lag: i64,
    now: DateTime<Utc>,
) -> LagStatus {
    if current_lag <= 0 || commits.is_empty() {
        return LagStatus::Ok;
    }
    if stopped(commits, now) && !recent_lag_zero(commits, recent_high_watermarks) {
        return LagStatus::Stop;
    }
    if !lag_always_not_zero(commits) {
        return LagStatus::Ok;
    }
    if rewound(commits) {
        LagStatus::Rewind
    } else if stalled(commits) {
        LagStatus::Stall
    } else if lag_not_decreasing(commits) {
        LagStatus::Warn
    } else {
        LagStatus::Ok
    }
}

/// Rule 1: no commit of the window saw zero lag.
pub fn lag_always_not_zero(commits: &[Commit]) -> bool {
    commits.iter().all(|c| c.lag != Some(0))
}

/// Rule 2: the committed offset went backwards somewhere.
pub fn rewound(commits: &[Commit]) -> bool {
    commits.windows(2).any(|w| w[1].offset < w[0].offset)
}

/// Rule 3: the time since the last commit is longer than the window's span.
pub fn stopped(commits: &[Commit], now: DateTime<Utc>) -> bool {
    match (commits.first(), commits.last()) {
        (Some(first), Some(last)) => now - last.at > last.at - first.at,
        _ => false,
    }
}

/// Rule 4: every commit is of the same offset.
pub fn stalled(commits: &[Commit]) -> bool {
    commits.windows(2).all(|w| w[1].offset == w[0].offset)
}

/// Rule 5: the lag never decreased from one known lag to the next.
pub fn lag_not_decreasing(commits: &[Commit]) -> bool {
    let lags: Vec<i64> = commits.iter().filter_map(|c| c.lag).collect();
    lags.windows(2).all(|w| w[1] >= w[0])
}

/// The consumer's last committed offset reached one of the recent high watermarks: it was
/// caught up moments ago, so it is not called stopped yet.
pub fn recent_lag_zero(commits: &[Commit], recent_high_watermarks: &[i64]) -> bool {
    commits
        .last()
        .is_some_and(|last| recent_high_watermarks.iter().any(|&h| h <= last.offset))
}

/// The commits a window of polls stands for: each poll a commit of the offset it saw,
/// stamped with the time that offset was first seen in the window.
pub fn commits_of(window: &[Observation]) -> Vec<Commit> {
    let mut commits: Vec<Commit> = Vec::with_capacity(window.len());
    for o in window {
        let at = match commits.last() {
            Some(previous) if previous.offset == o.committed => previous.at,
            _ => o.at,
        };
        commits.push(Commit {
            offset: o.committed,
            at,
            lag: Some(o.lag()),
        });
    }
    commits
}

/// The status of one partition over its window of polls (oldest first) at `now`.
pub fn partition_status(window: &[Observation], now: DateTime<Utc>) -> LagStatus {
    let Some(last) = window.last() else {
        return LagStatus::Ok;
    };
    // Burrow keeps the last few high watermarks (minutes), not the whole commit window.
    let recent: Vec<i64> = window
        .iter()
        .rev()
        .take(RECENT_LOOKS)
        .map(|o| o.high_watermark)
        .collect();
    evaluate(&commits_of(window), &recent, last.lag(), now)
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
    fn offsets_that_do_not_move_while_lag_stays_are_a_stop() {
        // Polls cannot tell a consumer committing the same offset (Burrow's stall) from one
        // committing nothing: no new commit is seen, so it is stopped.
        let w = window(&[
            (0, 100, 110),
            (60, 100, 120),
            (120, 100, 130),
            (180, 100, 140),
        ]);
        assert_eq!(partition_status(&w, at(200)), LagStatus::Stop);
    }

    #[test]
    fn a_consumer_that_stopped_after_catching_up_is_a_stop_not_ok() {
        // Zero lag at the start of the window does not hide that commits stopped since.
        let w = window(&[
            (0, 100, 100),
            (60, 150, 200),
            (120, 150, 260),
            (180, 150, 320),
            (240, 150, 380),
        ]);
        assert_eq!(partition_status(&w, at(240)), LagStatus::Stop);
        // While the time since its last commit is within the window's span, it is not yet.
        assert_eq!(partition_status(&w[..3], at(120)), LagStatus::Ok);
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

    /// Burrow's own correctness table (linkedin/Burrow, `caching_test.go`, cases 0–11):
    /// (commits as (offset, timestamp ms, lag or -1 for unknown), recent high watermarks,
    /// current lag, now in s, and the expected [always-not-zero, rewind, stopped, stalled,
    /// not-decreasing, recent-zero] and status).
    #[test]
    fn burrows_evaluator_table() {
        type Case = (
            Vec<(i64, i64, i64)>,
            Vec<i64>,
            i64,
            i64,
            [bool; 6],
            LagStatus,
        );
        let steady = |lags: [i64; 5], offsets: [i64; 5]| -> Vec<(i64, i64, i64)> {
            (0..5)
                .map(|i| (offsets[i], (i as i64 + 1) * 100_000, lags[i]))
                .collect()
        };
        let moving = [1000, 2000, 3000, 4000, 5000];
        let fixed = [1000; 5];
        let seconds: Vec<(i64, i64, i64)> = (0..15)
            .map(|i| (792_748_079 + i, 1_512_224_618_356 + i * 1003, 0))
            .collect();
        let cases: Vec<Case> = vec![
            (
                steady([0, 50, 100, 150, 200], moving),
                vec![5200],
                200,
                600,
                [false, false, false, false, true, false],
                LagStatus::Ok,
            ),
            (
                steady([0, 50, 100, 150, 200], moving),
                vec![5200],
                200,
                900,
                [false, false, false, false, true, false],
                LagStatus::Ok,
            ),
            (
                steady([0, 50, 100, 150, 200], moving),
                vec![5200],
                200,
                1000,
                [false, false, true, false, true, false],
                LagStatus::Stop,
            ),
            (
                steady([50, 100, 150, 200, 250], moving),
                vec![5250],
                250,
                1000,
                [true, false, true, false, true, false],
                LagStatus::Stop,
            ),
            (
                steady([0, 50, 100, 150, 200], fixed),
                vec![1200],
                200,
                600,
                [false, false, false, true, true, false],
                LagStatus::Ok,
            ),
            (
                steady([100, 150, 200, 250, 300], fixed),
                vec![1300],
                300,
                600,
                [true, false, false, true, true, false],
                LagStatus::Stall,
            ),
            (
                steady([100; 5], fixed),
                vec![1100],
                100,
                600,
                [true, false, false, true, true, false],
                LagStatus::Stall,
            ),
            (
                steady([100, 150, 200, 1250, 300], [1000, 2000, 3000, 2000, 4000]),
                vec![4300],
                300,
                600,
                [true, true, false, false, false, false],
                LagStatus::Rewind,
            ),
            (
                steady([50, 100, 150, 200, 250], moving),
                vec![5250],
                0,
                1000,
                [true, false, true, false, true, false],
                LagStatus::Ok,
            ),
            (
                seconds.clone(),
                vec![
                    792_749_024,
                    792_749_000,
                    792_748_800,
                    792_748_600,
                    792_748_500,
                ],
                931,
                1_512_224_650,
                [false, false, true, false, true, false],
                LagStatus::Stop,
            ),
            (
                seconds,
                vec![792_748_094, 792_748_093, 792_748_093, 792_748_093],
                1,
                1_512_224_650,
                [false, false, true, false, true, true],
                LagStatus::Ok,
            ),
            (
                (0..10)
                    .map(|i| {
                        (
                            1000 + i * 500,
                            100_000 + i * 50_000,
                            if i % 2 == 0 { i * 25 } else { -1 },
                        )
                    })
                    .collect(),
                vec![5700],
                200,
                600,
                [false, false, false, false, true, false],
                LagStatus::Ok,
            ),
        ];
        for (i, (points, broker, current, now, rules, status)) in cases.into_iter().enumerate() {
            let commits: Vec<Commit> = points
                .iter()
                .map(|&(offset, ms, lag)| Commit {
                    offset,
                    at: DateTime::from_timestamp_millis(ms).unwrap_or_default(),
                    lag: (lag >= 0).then_some(lag),
                })
                .collect();
            let now = DateTime::from_timestamp(now, 0).unwrap_or_default();
            let seen = [
                lag_always_not_zero(&commits),
                rewound(&commits),
                stopped(&commits, now),
                stalled(&commits),
                lag_not_decreasing(&commits),
                recent_lag_zero(&commits, &broker),
            ];
            assert_eq!(seen, rules, "case {i}: rules");
            assert_eq!(
                evaluate(&commits, &broker, current, now),
                status,
                "case {i}"
            );
        }
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
