//! The effective policy of a task: retries, delays, timeout and pool after applying the
//! DAG's `defaults` and Sluice's own. Merged here and nowhere else (validation, the
//! scheduling plan and `dags show` all ask this).

use super::duration::Duration;
use super::model::{Dag, RetryBackoff, Task, TaskPolicy, defaults};

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

impl EffectivePolicy {
    /// The one merge: a task's own setting, else the DAG's `defaults`, else Sluice's.
    pub fn merge(own: &TaskPolicy, dag: &TaskPolicy) -> EffectivePolicy {
        EffectivePolicy {
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
        }
    }

    /// The settings `task` of `dag` runs with.
    pub fn of(dag: &Dag, task: &Task) -> EffectivePolicy {
        EffectivePolicy::merge(&task.settings.policy, &dag.defaults)
    }
}

impl Dag {
    /// The settings a task runs with; `None` for an unknown task id.
    pub fn effective_policy(&self, task_id: &str) -> Option<EffectivePolicy> {
        Some(EffectivePolicy::of(self, self.tasks.get(task_id)?))
    }
}
