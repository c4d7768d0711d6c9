//! Concurrency limits across runs: per-DAG `max_active_tasks` and named pools with slots.
//! (`max_active_runs` is applied where runs start, in the shell's run queue.)

use std::collections::HashMap;

use super::plan::DagPlan;

/// Slots of a pool not listed in the configuration (Airflow's `default_pool` size).
pub const DEFAULT_POOL_SLOTS: usize = 128;

#[derive(Debug, Clone, Default)]
pub struct Admission {
    running_per_dag: HashMap<String, usize>,
    pool_used: HashMap<String, usize>,
    pool_slots: HashMap<String, usize>,
}

impl Admission {
    pub fn new(pool_slots: HashMap<String, usize>) -> Self {
        Admission {
            pool_slots,
            ..Admission::default()
        }
    }

    pub fn slots(&self, pool: &str) -> usize {
        self.pool_slots
            .get(pool)
            .copied()
            .unwrap_or(DEFAULT_POOL_SLOTS)
    }

    /// Takes a slot for a task if the DAG and its pool have one free.
    pub fn try_admit(&mut self, plan: &DagPlan, task: usize) -> bool {
        let pool = plan.tasks[task].policy.pool.as_str();
        let dag_running = self.running_per_dag.get(&plan.dag_id).copied().unwrap_or(0);
        let pool_used = self.pool_used.get(pool).copied().unwrap_or(0);
        if dag_running >= plan.max_active_tasks || pool_used >= self.slots(pool) {
            return false;
        }
        *self.running_per_dag.entry(plan.dag_id.clone()).or_insert(0) += 1;
        *self.pool_used.entry(pool.to_owned()).or_insert(0) += 1;
        true
    }

    /// Takes a slot whatever the limits: for an attempt that already runs (remote work
    /// adopted after a restart), which holds its slot in fact.
    pub fn occupy(&mut self, plan: &DagPlan, task: usize) {
        let pool = plan.tasks[task].policy.pool.as_str();
        *self.running_per_dag.entry(plan.dag_id.clone()).or_insert(0) += 1;
        *self.pool_used.entry(pool.to_owned()).or_insert(0) += 1;
    }

    /// Returns the slot of a task that finished or was cancelled.
    pub fn release(&mut self, dag_id: &str, pool: &str) {
        if let Some(n) = self.running_per_dag.get_mut(dag_id) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = self.pool_used.get_mut(pool) {
            *n = n.saturating_sub(1);
        }
    }

    pub fn running(&self, dag_id: &str) -> usize {
        self.running_per_dag.get(dag_id).copied().unwrap_or(0)
    }

    pub fn pool_used(&self, pool: &str) -> usize {
        self.pool_used.get(pool).copied().unwrap_or(0)
    }
}
