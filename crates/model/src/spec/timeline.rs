//! A DAG's data intervals over time: its schedule clipped to `start` and `end`, and the
//! effective settings of its tasks.

use chrono::{DateTime, Utc};

use super::duration::Duration;
use super::model::{Dag, RetryBackoff, defaults};
use crate::schedule::DataInterval;

/// A task's retry, timeout and pool settings after applying the DAG's `defaults`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EffectivePolicy {
    pub retries: u32,
    pub retry_delay: Duration,
    pub retry_backoff: RetryBackoff,
    pub max_retry_delay: Duration,
    pub timeout: Option<Duration>,
    pub pool: String,
}

impl Dag {
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

    /// The settings a task runs with: its own, else the DAG's `defaults`, else Sluice's.
    pub fn effective_policy(&self, task_id: &str) -> Option<EffectivePolicy> {
        let own = &self.tasks.get(task_id)?.settings.policy;
        let dag = &self.defaults;
        Some(EffectivePolicy {
            retries: own.retries.or(dag.retries).unwrap_or(defaults::RETRIES),
            retry_delay: own
                .retry_delay
                .or(dag.retry_delay)
                .unwrap_or(defaults::RETRY_DELAY),
            retry_backoff: own
                .retry_backoff
                .or(dag.retry_backoff)
                .unwrap_or(RetryBackoff::Constant),
            max_retry_delay: own
                .max_retry_delay
                .or(dag.max_retry_delay)
                .unwrap_or(defaults::MAX_RETRY_DELAY),
            timeout: own.timeout.or(dag.timeout),
            pool: own
                .pool
                .clone()
                .or_else(|| dag.pool.clone())
                .unwrap_or_else(|| defaults::POOL.to_owned()),
        })
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
