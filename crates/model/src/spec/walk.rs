//! Walking a DAG: its data intervals over time (the schedule clipped to `start` and `end`)
//! and its tasks in dependency order.

use chrono::{DateTime, Utc};

use super::model::Dag;
use crate::schedule::DataInterval;

impl Dag {
    /// The DAG's schedule in its time zone (none for unscheduled DAGs): what interval
    /// mappings between DAGs are computed on.
    pub fn grid(&self) -> Option<crate::schedule::mapping::Grid<'_>> {
        self.schedule
            .as_ref()
            .map(|schedule| crate::schedule::mapping::Grid {
                schedule,
                tz: self.timezone.tz(),
            })
    }

    /// Intervals that close after `after` (the runs still to be created at that instant),
    /// none starting before `start` or ending after `end`. Empty for unscheduled DAGs.
    pub fn intervals_ending_after(
        &self,
        after: DateTime<Utc>,
    ) -> Box<dyn Iterator<Item = DataInterval> + '_> {
        let (Some(schedule), Some(start)) = (&self.schedule, self.start) else {
            return Box::new(std::iter::empty());
        };
        let tz = self.timezone.tz();
        let from = schedule
            .prev_fire(tz, after)
            .map_or(start, |containing| containing.max(start));
        let end = self.end;
        Box::new(
            schedule
                .intervals(tz, from)
                .take_while(move |i| end.is_none_or(|end| i.end <= end)),
        )
    }

    /// Task ids upstream first; ties keep the file's order.
    pub fn topological_order(&self) -> Vec<&str> {
        let mut remaining: Vec<(&str, usize)> = self
            .tasks
            .iter()
            .map(|(id, t)| (id.as_str(), t.settings.depends_on.len()))
            .collect();
        let mut order = Vec::with_capacity(remaining.len());
        while !remaining.is_empty() {
            let ready = remaining.iter().position(|(_, waiting)| *waiting == 0);
            // A cycle cannot pass validation; still, never loop forever on one.
            let index = ready.unwrap_or(0);
            let (id, _) = remaining.remove(index);
            order.push(id);
            for (other, waiting) in &mut remaining {
                let deps = &self.tasks[*other].settings.depends_on;
                *waiting = waiting.saturating_sub(deps.iter().filter(|d| *d == id).count());
            }
        }
        order
    }
}
