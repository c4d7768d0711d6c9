//! Data-readiness gates: given what was last seen of a Kafka topic and its consumer group,
//! may a run's tasks start?
//!
//! - The topic's **event-time watermark** is the minimum, over its partitions, of the newest
//!   event time seen in each (a partition's own watermark never goes back). A partition
//!   with no new message for `idle_after` is *idle* and does not hold the watermark back; if
//!   every partition is idle the watermark is the newest event time of any (Flink's
//!   idleness). A partition that never had a message and is not idle holds it back.
//! - The gate of an interval `[start, end)` is **open** when the watermark has reached
//!   `end + lateness` and, if `max_lag` is set, the group's total lag is at most that, and,
//!   if `max_lag_time` is set, no partition is further behind in time than that
//!   ([`crate::time_lag`]).
//!   Once open, a run's gate stays open (the shell latches it).
//! - It **times out** when still closed `timeout` after the later of the interval's end
//!   and the moment the run began waiting (a backfill of old intervals gets its full
//!   timeout), and fails the run with the reason.
//! - No view of the topic (broker down, topic missing) keeps it closed, never open.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::lag::LagStatus;

/// What a gate waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateRule {
    pub lateness: TimeDelta,
    pub max_lag: Option<u64>,
    pub max_lag_time: Option<TimeDelta>,
    pub timeout: Option<TimeDelta>,
    pub idle_after: Option<TimeDelta>,
}

/// A further consumer group a gate watches, with its own rule (the gate's own group is
/// the one of [`GateRule`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCheck {
    pub group: String,
    pub max_lag: Option<u64>,
    pub max_lag_time: Option<TimeDelta>,
    /// Whether the gate waits for it; if not, it is only shown.
    pub required: bool,
}

/// What a further group's look said, recorded with the decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupFigures {
    pub group: String,
    pub required: bool,
    /// Its total lag; none while it could not be seen.
    pub lag: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<u64>,
    /// The most any partition is behind in time, in milliseconds.
    pub time_lag_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_time_ms: Option<i64>,
    pub lag_status: Option<LagStatus>,
    /// Within its rule.
    pub ok: bool,
}

/// The group's total lag, how far its worst partition is behind in time, its status.
fn lag_of(view: &TopicView) -> (u64, TimeDelta, LagStatus) {
    let lag = view.partitions.iter().map(PartitionView::lag).sum();
    let behind = view
        .partitions
        .iter()
        .map(|p| TimeDelta::milliseconds(p.time_lag_ms))
        .max()
        .unwrap_or_default();
    let status = super::lag::group_status(view.partitions.iter().map(|p| p.lag_status));
    (lag, behind, status)
}

/// Why a group with this lag is over its rule (`max_lag` first, then `max_lag_time`), if it
/// is. The same rule for a gate's own group and its further ones.
fn over_rule(
    max_lag: Option<u64>,
    max_lag_time: Option<TimeDelta>,
    lag: u64,
    behind: TimeDelta,
) -> Option<String> {
    if let Some(max) = max_lag.filter(|max| lag > *max) {
        return Some(format!("consumer lag {lag} > max_lag {max}"));
    }
    max_lag_time.filter(|max| behind > *max).map(|max| {
        format!(
            "consumer {} behind > max_lag_time {}",
            format_delta(behind),
            format_delta(max)
        )
    })
}

/// Checks a further group: its figures, and why it is not within its rule.
pub fn check_group(
    check: &GroupCheck,
    view: Result<&TopicView, &str>,
) -> (GroupFigures, Option<String>) {
    let mut figures = GroupFigures {
        group: check.group.clone(),
        required: check.required,
        lag: None,
        max_lag: check.max_lag,
        time_lag_ms: None,
        max_lag_time_ms: check.max_lag_time.map(|t| t.num_milliseconds()),
        lag_status: None,
        ok: false,
    };
    let why = match view {
        Err(e) => Some(format!("group {}: no view: {e}", check.group)),
        Ok(view) => {
            let (lag, behind, status) = lag_of(view);
            figures.lag = Some(lag);
            figures.time_lag_ms = Some(behind.num_milliseconds());
            figures.lag_status = Some(status);
            over_rule(check.max_lag, check.max_lag_time, lag, behind)
                .map(|why| format!("group {}: {why}", check.group))
        }
    };
    figures.ok = why.is_none();
    (figures, why)
}

/// One partition as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionView {
    pub partition: i32,
    pub low_watermark: i64,
    pub high_watermark: i64,
    /// The group's committed offset; none when it never committed on this partition.
    pub committed: Option<i64>,
    /// Newest event time seen in this partition (message timestamps, milliseconds).
    pub event_time: Option<DateTime<Utc>>,
    /// When the high watermark was last seen to move (or the partition first seen).
    pub last_append: DateTime<Utc>,
    /// Burrow's status of the group on this partition over the lag window.
    pub lag_status: LagStatus,
    /// How far behind in time the group is on this partition, in milliseconds
    /// ([`crate::time_lag::time_lag`] at the look).
    #[serde(default)]
    pub time_lag_ms: i64,
}

impl PartitionView {
    /// Messages the group has not consumed; everything retained when it never committed.
    pub fn lag(&self) -> u64 {
        let from = self.committed.unwrap_or(self.low_watermark);
        u64::try_from(self.high_watermark - from).unwrap_or(0)
    }
}

/// A topic and group as last seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicView {
    pub at: DateTime<Utc>,
    pub partitions: Vec<PartitionView>,
}

/// The watermark of a topic at `now`, and which partitions were idle.
pub fn watermark(
    view: &TopicView,
    idle_after: Option<TimeDelta>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Vec<i32>) {
    let idle: Vec<i32> = view
        .partitions
        .iter()
        .filter(|p| idle_after.is_some_and(|after| now - p.last_append >= after))
        .map(|p| p.partition)
        .collect();
    let active: Vec<&PartitionView> = view
        .partitions
        .iter()
        .filter(|p| !idle.contains(&p.partition))
        .collect();
    let mark = if active.is_empty() {
        view.partitions.iter().filter_map(|p| p.event_time).max()
    } else {
        // Any active partition without an event time holds the watermark back entirely.
        active
            .iter()
            .map(|p| p.event_time)
            .collect::<Option<Vec<_>>>()
            .and_then(|times| times.into_iter().min())
    };
    (mark, idle)
}

/// The figures a decision was based on, recorded on the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateFigures {
    /// When the topic was seen.
    pub observed_at: DateTime<Utc>,
    pub watermark: Option<DateTime<Utc>>,
    /// The watermark the gate waits for: interval end + lateness.
    pub required_watermark: DateTime<Utc>,
    pub lag: u64,
    pub max_lag: Option<u64>,
    /// The most any partition is behind in time, in milliseconds.
    #[serde(default)]
    pub time_lag_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_time_ms: Option<i64>,
    pub lag_status: LagStatus,
    pub partitions: usize,
    /// Idle partitions, left out of the watermark.
    pub idle_partitions: Vec<i32>,
    /// Active partitions whose event time is still short of the required watermark.
    pub behind_partitions: Vec<i32>,
    /// The gate's further consumer groups, each with its rule's verdict.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<GroupFigures>,
}

/// What a gate says at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateDecision {
    Open(GateFigures),
    Closed {
        reason: String,
        figures: Option<GateFigures>,
    },
    TimedOut {
        reason: String,
        figures: Option<GateFigures>,
    },
}

/// Decides the gate of an interval ending at `interval_end` for a run waiting since
/// `waiting_since`, from the latest view of the topic (or why there is none) and of each
/// further group the gate watches.
pub fn decide(
    rule: &GateRule,
    interval_end: DateTime<Utc>,
    waiting_since: DateTime<Utc>,
    view: Result<&TopicView, &str>,
    others: &[(GroupCheck, Result<&TopicView, &str>)],
    now: DateTime<Utc>,
) -> GateDecision {
    let required = interval_end + rule.lateness;
    let (reason, figures) = match view {
        Err(why) => (format!("no view of the topic: {why}"), None),
        Ok(view) => {
            let (mark, idle) = watermark(view, rule.idle_after, now);
            let (lag, behind, lag_status) = lag_of(view);
            let mut groups = Vec::with_capacity(others.len());
            let mut blocking = None;
            for (check, view) in others {
                let (figures, why) = check_group(check, *view);
                if check.required && blocking.is_none() {
                    blocking = why;
                }
                groups.push(figures);
            }
            let figures = GateFigures {
                observed_at: view.at,
                watermark: mark,
                required_watermark: required,
                lag,
                max_lag: rule.max_lag,
                time_lag_ms: behind.num_milliseconds(),
                max_lag_time_ms: rule.max_lag_time.map(|t| t.num_milliseconds()),
                lag_status,
                groups,
                partitions: view.partitions.len(),
                behind_partitions: view
                    .partitions
                    .iter()
                    .filter(|p| !idle.contains(&p.partition))
                    .filter(|p| p.event_time.is_none_or(|t| t < required))
                    .map(|p| p.partition)
                    .collect(),
                idle_partitions: idle,
            };
            let watermark_ok = mark.is_some_and(|m| m >= required);
            let over = over_rule(rule.max_lag, rule.max_lag_time, lag, behind);
            if view.partitions.is_empty() {
                ("the topic has no partitions".to_owned(), Some(figures))
            } else if watermark_ok && over.is_none() && blocking.is_none() {
                return GateDecision::Open(figures);
            } else if !watermark_ok {
                let seen = mark.map_or(
                    "none yet".to_owned(),
                    sluice_model::spec::instant::format_instant,
                );
                (
                    format!(
                        "event-time watermark {seen} < {} (interval end + lateness); partitions behind: {:?}",
                        sluice_model::spec::instant::format_instant(required),
                        figures.behind_partitions
                    ),
                    Some(figures),
                )
            } else {
                (over.or(blocking).unwrap_or_default(), Some(figures))
            }
        }
    };
    match rule.timeout {
        Some(timeout) if now >= interval_end.max(waiting_since) + timeout => {
            GateDecision::TimedOut {
                reason: format!(
                    "the gate was still closed after {}: {reason}",
                    sluice_model::spec::Duration::from_std(timeout.to_std().unwrap_or_default())
                ),
                figures,
            }
        }
        _ => GateDecision::Closed { reason, figures },
    }
}

fn format_delta(delta: TimeDelta) -> String {
    sluice_model::spec::Duration::from_std(delta.to_std().unwrap_or_default()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_756_720_800 + minutes * 60, 0).unwrap_or_default()
    }

    fn partition(id: i32, event_minute: Option<i64>, last_append_minute: i64) -> PartitionView {
        PartitionView {
            partition: id,
            low_watermark: 0,
            high_watermark: 100,
            committed: Some(90),
            event_time: event_minute.map(t),
            last_append: t(last_append_minute),
            lag_status: LagStatus::Ok,
            time_lag_ms: 0,
        }
    }

    fn rule() -> GateRule {
        GateRule {
            lateness: TimeDelta::minutes(5),
            max_lag: None,
            max_lag_time: None,
            timeout: Some(TimeDelta::minutes(45)),
            idle_after: Some(TimeDelta::minutes(2)),
        }
    }

    #[test]
    fn the_watermark_is_the_slowest_active_partition() {
        let view = TopicView {
            at: t(30),
            partitions: vec![partition(0, Some(25), 30), partition(1, Some(21), 30)],
        };
        assert_eq!(watermark(&view, None, t(30)), (Some(t(21)), vec![]));
    }

    #[test]
    fn idle_partitions_do_not_hold_the_watermark_back() {
        let view = TopicView {
            at: t(30),
            partitions: vec![
                partition(0, Some(25), 30),
                partition(1, Some(3), 10),
                partition(2, None, 0),
            ],
        };
        assert_eq!(
            watermark(&view, Some(TimeDelta::minutes(2)), t(30)),
            (Some(t(25)), vec![1, 2])
        );
        // Without idleness the empty partition holds it back entirely.
        assert_eq!(watermark(&view, None, t(30)).0, None);
        // All idle: the newest event time of any.
        assert_eq!(
            watermark(&view, Some(TimeDelta::minutes(2)), t(40)),
            (Some(t(25)), vec![0, 1, 2])
        );
    }

    #[test]
    fn opens_exactly_at_interval_end_plus_lateness() {
        let view = |minute| TopicView {
            at: t(minute),
            partitions: vec![partition(0, Some(minute), minute)],
        };
        // Interval ends at minute 15; lateness 5.
        let closed = decide(&rule(), t(15), t(15), Ok(&view(19)), &[], t(19));
        assert!(matches!(closed, GateDecision::Closed { .. }), "{closed:?}");
        let open = decide(&rule(), t(15), t(15), Ok(&view(20)), &[], t(20));
        assert!(matches!(open, GateDecision::Open(_)), "{open:?}");
    }

    #[test]
    fn lag_above_the_maximum_keeps_it_closed() {
        let view = TopicView {
            at: t(30),
            partitions: vec![partition(0, Some(30), 30), partition(1, Some(30), 30)],
        };
        let rule = GateRule {
            max_lag: Some(19),
            ..rule()
        };
        match decide(&rule, t(15), t(15), Ok(&view), &[], t(30)) {
            GateDecision::Closed { reason, figures } => {
                assert!(reason.contains("consumer lag 20 > max_lag 19"), "{reason}");
                assert_eq!(figures.map(|f| f.lag), Some(20));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_group_further_behind_in_time_than_allowed_keeps_it_closed() {
        let mut view = TopicView {
            at: t(30),
            partitions: vec![partition(0, Some(30), 30), partition(1, Some(30), 30)],
        };
        view.partitions[1].time_lag_ms = 150_000;
        let rule = GateRule {
            max_lag_time: Some(TimeDelta::minutes(2)),
            ..rule()
        };
        match decide(&rule, t(15), t(15), Ok(&view), &[], t(30)) {
            GateDecision::Closed { reason, figures } => {
                assert!(
                    reason.contains("consumer 2m30s behind > max_lag_time 2m"),
                    "{reason}"
                );
                assert_eq!(figures.map(|f| f.time_lag_ms), Some(150_000));
            }
            other => panic!("{other:?}"),
        }
        view.partitions[1].time_lag_ms = 120_000;
        assert!(matches!(
            decide(&rule, t(15), t(15), Ok(&view), &[], t(30)),
            GateDecision::Open(_)
        ));
    }

    #[test]
    fn a_further_group_blocks_only_when_required() {
        let view = TopicView {
            at: t(30),
            partitions: vec![partition(0, Some(30), 30)],
        };
        let mut stalled = view.clone();
        stalled.partitions[0].time_lag_ms = 600_000;
        let check = |required| GroupCheck {
            group: "realtime-aggregator".into(),
            max_lag: None,
            max_lag_time: Some(TimeDelta::minutes(5)),
            required,
        };
        // The stream layer's group, 10 minutes behind: shown, not waited for.
        match decide(
            &rule(),
            t(15),
            t(15),
            Ok(&view),
            &[(check(false), Ok(&stalled))],
            t(30),
        ) {
            GateDecision::Open(f) => {
                assert_eq!(f.groups.len(), 1);
                assert!(!f.groups[0].ok && f.groups[0].time_lag_ms == Some(600_000));
            }
            other => panic!("{other:?}"),
        }
        // Required, it keeps the gate closed, and so does not being seen at all.
        match decide(
            &rule(),
            t(15),
            t(15),
            Ok(&view),
            &[(check(true), Ok(&stalled))],
            t(30),
        ) {
            GateDecision::Closed { reason, .. } => assert!(
                reason.contains("group realtime-aggregator: consumer 10m behind > max_lag_time 5m"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            decide(
                &rule(),
                t(15),
                t(15),
                Ok(&view),
                &[(check(true), Err("down"))],
                t(30)
            ),
            GateDecision::Closed { .. }
        ));
        assert!(matches!(
            decide(
                &rule(),
                t(15),
                t(15),
                Ok(&view),
                &[(check(true), Ok(&view))],
                t(30)
            ),
            GateDecision::Open(_)
        ));
    }

    #[test]
    fn a_missing_view_stays_closed_then_times_out() {
        let closed = decide(&rule(), t(15), t(15), Err("broker down"), &[], t(59));
        assert!(
            matches!(&closed, GateDecision::Closed { reason, figures: None } if reason.contains("broker down"))
        );
        let timed_out = decide(&rule(), t(15), t(15), Err("broker down"), &[], t(60));
        assert!(matches!(timed_out, GateDecision::TimedOut { .. }));
        // A backfill run that began waiting later gets its full timeout.
        let backfill = decide(&rule(), t(15), t(500), Err("broker down"), &[], t(544));
        assert!(matches!(backfill, GateDecision::Closed { .. }));
    }

    proptest! {
        /// The gate is open iff the watermark (slowest partition) reached end + lateness:
        /// never before the data is complete, and never closed once it is.
        #[test]
        fn open_iff_every_partition_passed_end_plus_lateness(
            event_minutes in proptest::collection::vec(0i64..120, 1..16),
            end in 0i64..100,
            lateness in 0i64..20,
        ) {
            let view = TopicView {
                at: t(120),
                partitions: event_minutes
                    .iter()
                    .enumerate()
                    .map(|(i, m)| partition(i32::try_from(i).unwrap_or_default(), Some(*m), 120))
                    .collect(),
            };
            let rule = GateRule { lateness: TimeDelta::minutes(lateness), idle_after: None, timeout: None, max_lag: None, max_lag_time: None };
            let open = matches!(decide(&rule, t(end), t(end), Ok(&view), &[], t(120)), GateDecision::Open(_));
            let complete = event_minutes.iter().all(|m| *m >= end + lateness);
            prop_assert_eq!(open, complete);
        }

        /// The watermark never passes an active partition's event time.
        #[test]
        fn the_watermark_never_passes_an_active_partition(
            parts in proptest::collection::vec((proptest::option::of(0i64..120), 0i64..120), 1..16),
            idle in 1i64..60,
        ) {
            let view = TopicView {
                at: t(120),
                partitions: parts
                    .iter()
                    .enumerate()
                    .map(|(i, (m, last))| partition(i32::try_from(i).unwrap_or_default(), *m, *last))
                    .collect(),
            };
            let (mark, idle_ids) = watermark(&view, Some(TimeDelta::minutes(idle)), t(120));
            for p in &view.partitions {
                if !idle_ids.contains(&p.partition) {
                    prop_assert!(mark.is_none() || p.event_time.is_some_and(|e| Some(e) >= mark));
                }
            }
        }
    }
}
