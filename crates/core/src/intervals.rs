//! Which scheduled runs to create: an interval's run is created once the clock passes its
//! end (Airflow's semantics), never twice, in order, within `start` and `end`.

use chrono::{DateTime, Utc};

use sluice_model::schedule::DataInterval;
use sluice_model::spec::Dag;

/// Intervals due at `now` that have no scheduled run yet. `next_start` is where the DAG's
/// last created scheduled interval ended (`None`: none created yet). With `catchup` every
/// missed interval is due, oldest first; without it only the latest closed one.
/// `limit` bounds how many are returned at once (a new DAG with a 2015 start and catchup
/// is created in slices, not all in one go).
pub fn due_intervals(
    dag: &Dag,
    next_start: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<DataInterval> {
    let (Some(schedule), Some(start)) = (&dag.schedule, dag.start) else {
        return Vec::new();
    };
    let tz = dag.timezone.tz();
    let from = next_start.map_or(start, |n| n.max(start));
    let closed = |i: &DataInterval| i.end <= now && dag.end.is_none_or(|end| i.end <= end);
    if dag.catchup {
        return schedule
            .intervals(tz, from)
            .take_while(closed)
            .take(limit)
            .collect();
    }
    // Latest closed interval: the one ending at the last fire time at or before now.
    let Some(last_end) = schedule.prev_fire(tz, now.min(dag.end.unwrap_or(now))) else {
        return Vec::new();
    };
    let Some(last_start) = schedule.prev_fire(tz, last_end - chrono::TimeDelta::nanoseconds(1))
    else {
        return Vec::new();
    };
    if last_start < from || limit == 0 {
        return Vec::new();
    }
    vec![DataInterval {
        start: last_start,
        end: last_end,
    }]
}

/// What a backfill of `[from, to)` covers: the range clamped to the DAG's `start` and `end`,
/// its first whole interval, and how many whole intervals it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackfillRange {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub first: Option<DataInterval>,
    pub total: usize,
}

/// Why a backfill range is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("`from` must be before `to`")]
    Empty,
    #[error("DAG `{0}` has no schedule to cut the range into intervals")]
    Unscheduled(String),
    #[error(
        "the range holds more than {cap} intervals of `{dag}` (scheduler.max_backfill_intervals)"
    )]
    TooMany { dag: String, cap: usize },
}

impl RangeError {
    pub fn hint(&self) -> &'static str {
        match self {
            RangeError::Empty => "give a `to` after `from`",
            RangeError::Unscheduled(_) => "trigger runs of unscheduled DAGs instead",
            RangeError::TooMany { .. } => "backfill it in parts, or raise the cap",
        }
    }
}

/// The whole intervals a backfill of `[from, to)` covers, clamped to the DAG's life and
/// counted, never collected, up to `cap`: a range of ten thousand years is refused after
/// `cap + 1` steps of the schedule.
pub fn backfill_range(
    dag: &Dag,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    cap: usize,
) -> Result<BackfillRange, RangeError> {
    if from >= to {
        return Err(RangeError::Empty);
    }
    let schedule = dag
        .schedule
        .as_ref()
        .ok_or_else(|| RangeError::Unscheduled(dag.dag.clone()))?;
    let from = dag.start.map_or(from, |start| from.max(start));
    let to = dag.end.map_or(to, |end| to.min(end));
    let mut intervals = schedule
        .intervals(dag.timezone.tz(), from)
        .take_while(|i| i.end <= to);
    let first = intervals.next();
    let total = usize::from(first.is_some()) + intervals.take(cap).count();
    if total > cap {
        return Err(RangeError::TooMany {
            dag: dag.dag.clone(),
            cap,
        });
    }
    Ok(BackfillRange {
        from,
        to,
        first,
        total,
    })
}
