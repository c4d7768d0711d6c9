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
