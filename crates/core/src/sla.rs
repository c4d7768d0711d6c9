//! The processing-latency SLA of a scheduled run: `warn_after` and `deadline`, measured from
//! the end of its data interval to the run's success (the data's latency, not the run's
//! duration). Pure: the caller passes `now`, and records what was raised in `SlaMarks` so
//! each event is raised once.
//!
//! A breach is raised as soon as it is certain, not only once the run ends: when the
//! deadline passes with the run not yet succeeded, or earlier when the run has failed (the
//! retry rule already refuses retries that could not start before the deadline, so a failed
//! run cannot make it without an operator). A warning after a breach is noise: none is
//! raised then.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::state::RunStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SlaKind {
    Warn,
    Breach,
}

impl SlaKind {
    pub fn name(self) -> &'static str {
        match self {
            SlaKind::Warn => "warn",
            SlaKind::Breach => "breach",
        }
    }
}

/// A DAG's SLA as durations after the interval's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SlaPolicy {
    pub warn_after: Option<TimeDelta>,
    pub deadline: Option<TimeDelta>,
}

impl SlaPolicy {
    pub fn is_set(&self) -> bool {
        self.warn_after.is_some() || self.deadline.is_some()
    }
}

/// What was raised for a run, so nothing is raised twice (kept on the run's record).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaMarks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warned_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub breached_at: Option<DateTime<Utc>>,
}

impl SlaMarks {
    pub fn is_empty(&self) -> bool {
        self.warned_at.is_none() && self.breached_at.is_none()
    }
}

/// One event to raise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlaEvent {
    pub kind: SlaKind,
    /// The threshold: interval end + warn_after or deadline.
    pub due: DateTime<Utc>,
    /// For people: what happened, in one line.
    pub reason: String,
}

/// Where a run stands, as the SLA sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    pub interval_end: DateTime<Utc>,
    pub status: RunStatus,
    /// When it succeeded (its end, if `status` is success).
    pub succeeded_at: Option<DateTime<Utc>>,
}

fn minutes(delta: TimeDelta) -> String {
    let seconds = delta.num_seconds();
    if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

/// The events due now, in the order to raise them (warn before breach), given what was
/// already raised.
pub fn due(
    policy: &SlaPolicy,
    run: &RunProgress,
    marks: &SlaMarks,
    now: DateTime<Utc>,
) -> Vec<SlaEvent> {
    let mut events = Vec::new();
    let succeeded = run
        .succeeded_at
        .filter(|_| run.status == RunStatus::Success);
    let breach = policy.deadline.and_then(|deadline| {
        if marks.breached_at.is_some() {
            return None;
        }
        let due = run.interval_end + deadline;
        let reason = match succeeded {
            Some(at) if at > due => format!(
                "succeeded {} after its interval ended; the deadline is {}",
                minutes(at - run.interval_end),
                minutes(deadline)
            ),
            Some(_) => return None,
            None if now >= due => format!(
                "not succeeded {} after its interval ended (run {})",
                minutes(deadline),
                run.status.name()
            ),
            None if run.status == RunStatus::Failed => format!(
                "the run failed {} before its deadline and cannot succeed without an operator",
                minutes(due - now)
            ),
            None => return None,
        };
        Some(SlaEvent {
            kind: SlaKind::Breach,
            due,
            reason,
        })
    });
    let breached = marks.breached_at.is_some() || breach.is_some();
    if let Some(warn_after) = policy.warn_after
        && marks.warned_at.is_none()
        && !breached
    {
        let due = run.interval_end + warn_after;
        let reason = match succeeded {
            Some(at) if at > due => Some(format!(
                "succeeded {} after its interval ended; warn_after is {}",
                minutes(at - run.interval_end),
                minutes(warn_after)
            )),
            Some(_) => None,
            None if now >= due => Some(format!(
                "not succeeded {} after its interval ended (run {})",
                minutes(warn_after),
                run.status.name()
            )),
            None => None,
        };
        if let Some(reason) = reason {
            events.push(SlaEvent {
                kind: SlaKind::Warn,
                due,
                reason,
            });
        }
    }
    events.extend(breach);
    events
}

/// When the next event could become due by the clock alone (the loop's timer), if any.
pub fn next_due(policy: &SlaPolicy, run: &RunProgress, marks: &SlaMarks) -> Option<DateTime<Utc>> {
    if run.status == RunStatus::Success || marks.breached_at.is_some() {
        return None;
    }
    let warn = policy
        .warn_after
        .filter(|_| marks.warned_at.is_none())
        .map(|w| run.interval_end + w);
    let breach = policy.deadline.map(|d| run.interval_end + d);
    warn.into_iter().chain(breach).min()
}

/// Records raised events on the marks.
pub fn mark(marks: &mut SlaMarks, events: &[SlaEvent], now: DateTime<Utc>) {
    for event in events {
        match event.kind {
            SlaKind::Warn => marks.warned_at = Some(now),
            SlaKind::Breach => marks.breached_at = Some(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_756_720_800 + minute * 60, 0).unwrap_or_default()
    }

    const POLICY: SlaPolicy = SlaPolicy {
        warn_after: Some(TimeDelta::minutes(50)),
        deadline: Some(TimeDelta::minutes(100)),
    };

    fn progress(status: RunStatus, succeeded_at: Option<DateTime<Utc>>) -> RunProgress {
        RunProgress {
            interval_end: at(0),
            status,
            succeeded_at,
        }
    }

    /// Walks a fake clock minute by minute, raising and marking as the loop does.
    fn replay(run: impl Fn(i64) -> RunProgress, until: i64) -> Vec<(i64, SlaKind)> {
        let mut marks = SlaMarks::default();
        let mut raised = Vec::new();
        for minute in 0..=until {
            let events = due(&POLICY, &run(minute), &marks, at(minute));
            mark(&mut marks, &events, at(minute));
            raised.extend(events.iter().map(|e| (minute, e.kind)));
        }
        raised
    }

    #[test]
    fn an_on_time_success_raises_nothing() {
        let raised = replay(
            |m| {
                if m < 30 {
                    progress(RunStatus::Running, None)
                } else {
                    progress(RunStatus::Success, Some(at(30)))
                }
            },
            200,
        );
        assert_eq!(raised, []);
    }

    #[test]
    fn a_slow_run_warns_at_warn_after_and_breaches_at_the_deadline_while_still_running() {
        let raised = replay(|_| progress(RunStatus::Running, None), 200);
        assert_eq!(raised, [(50, SlaKind::Warn), (100, SlaKind::Breach)]);
        let events = due(
            &POLICY,
            &progress(RunStatus::Running, None),
            &SlaMarks::default(),
            at(100),
        );
        // Seen only at the deadline (the loop was down): the breach alone, no stale warning.
        assert_eq!(events.len(), 1);
        assert_eq!((events[0].kind, events[0].due), (SlaKind::Breach, at(100)));
        assert!(
            events[0]
                .reason
                .contains("not succeeded 100m after its interval ended (run running)")
        );
    }

    #[test]
    fn a_failed_run_breaches_at_once_before_its_deadline() {
        let raised = replay(
            |m| {
                if m < 20 {
                    progress(RunStatus::Running, None)
                } else {
                    progress(RunStatus::Failed, None)
                }
            },
            200,
        );
        assert_eq!(raised, [(20, SlaKind::Breach)]);
    }

    #[test]
    fn a_late_success_seen_only_at_its_end_raises_what_it_missed() {
        // The loop was down from minute 10 to 120; it sees the success at 70 afterwards.
        let events = due(
            &POLICY,
            &progress(RunStatus::Success, Some(at(70))),
            &SlaMarks::default(),
            at(120),
        );
        let kinds: Vec<SlaKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [SlaKind::Warn]);
        assert!(events[0].reason.contains("succeeded 70m after"));
    }

    #[test]
    fn the_timer_points_at_the_next_threshold_and_stops_when_done() {
        let running = progress(RunStatus::Running, None);
        assert_eq!(
            next_due(&POLICY, &running, &SlaMarks::default()),
            Some(at(50))
        );
        let warned = SlaMarks {
            warned_at: Some(at(50)),
            breached_at: None,
        };
        assert_eq!(next_due(&POLICY, &running, &warned), Some(at(100)));
        let breached = SlaMarks {
            breached_at: Some(at(100)),
            ..warned
        };
        assert_eq!(next_due(&POLICY, &running, &breached), None);
        assert_eq!(
            next_due(
                &POLICY,
                &progress(RunStatus::Success, Some(at(5))),
                &SlaMarks::default()
            ),
            None
        );
    }

    #[test]
    fn a_policy_with_only_a_deadline_never_warns() {
        let policy = SlaPolicy {
            warn_after: None,
            deadline: Some(TimeDelta::minutes(10)),
        };
        let events = due(
            &policy,
            &progress(RunStatus::Running, None),
            &SlaMarks::default(),
            at(11),
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, SlaKind::Breach);
    }

    proptest::proptest! {
        /// However a run goes, each event is raised at most once, a breach exactly when the
        /// run did not succeed by its deadline, and never a warning after a breach.
        #[test]
        fn each_event_is_raised_once_and_only_when_due(
            warn in 1i64..120,
            extra in 0i64..120,
            ends_at in 0i64..300,
            outcome in 0u8..3,
        ) {
            let policy = SlaPolicy {
                warn_after: Some(TimeDelta::minutes(warn)),
                deadline: Some(TimeDelta::minutes(warn + extra + 1)),
            };
            let deadline = warn + extra + 1;
            let run = |m: i64| match outcome {
                _ if m < ends_at => progress(RunStatus::Running, None),
                0 => progress(RunStatus::Success, Some(at(ends_at))),
                1 => progress(RunStatus::Failed, None),
                _ => progress(RunStatus::Running, None),
            };
            let mut marks = SlaMarks::default();
            let mut raised = Vec::new();
            for minute in 0..=400 {
                let events = due(&policy, &run(minute), &marks, at(minute));
                mark(&mut marks, &events, at(minute));
                raised.extend(events.iter().map(|e| (minute, e.kind)));
            }
            let warns: Vec<i64> = raised.iter().filter(|e| e.1 == SlaKind::Warn).map(|e| e.0).collect();
            let breaches: Vec<i64> = raised.iter().filter(|e| e.1 == SlaKind::Breach).map(|e| e.0).collect();
            proptest::prop_assert!(warns.len() <= 1 && breaches.len() <= 1);
            let made_it = outcome == 0 && ends_at <= deadline;
            proptest::prop_assert_eq!(breaches.is_empty(), made_it);
            if let (Some(w), Some(b)) = (warns.first(), breaches.first()) {
                proptest::prop_assert!(w <= b);
            }
            if outcome == 0 && ends_at <= warn {
                proptest::prop_assert!(raised.is_empty());
            }
        }
    }
}
