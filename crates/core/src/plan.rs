//! A DAG compiled for scheduling: tasks by index with their neighbours and effective policy.

use std::collections::HashMap;

use sluice_model::spec::{Dag, EffectivePolicy, TriggerRule};

#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    pub id: String,
    pub upstream: Vec<usize>,
    pub downstream: Vec<usize>,
    pub trigger_rule: TriggerRule,
    pub depends_on_past: bool,
    pub policy: EffectivePolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DagPlan {
    pub dag_id: String,
    /// Tasks in topological order (upstream first).
    pub tasks: Vec<TaskPlan>,
    pub max_active_runs: usize,
    pub max_active_tasks: usize,
    /// `sla.deadline`: a run must succeed within this after its interval ends.
    pub sla_deadline: Option<chrono::TimeDelta>,
    /// `sla.warn_after` and `sla.deadline`.
    pub sla: super::sla::SlaPolicy,
    index: HashMap<String, usize>,
}

impl DagPlan {
    /// Compiles a validated DAG (no unknown dependencies, no cycles).
    pub fn new(dag: &Dag) -> Self {
        let order = dag.topological_order();
        let index: HashMap<String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, id)| ((*id).to_owned(), i))
            .collect();
        let mut tasks: Vec<TaskPlan> = order
            .iter()
            .map(|id| {
                let task = &dag.tasks[*id];
                TaskPlan {
                    id: (*id).to_owned(),
                    upstream: task
                        .settings
                        .depends_on
                        .iter()
                        .filter_map(|u| index.get(u).copied())
                        .collect(),
                    downstream: Vec::new(),
                    trigger_rule: task.settings.trigger_rule,
                    depends_on_past: task.settings.depends_on_past,
                    policy: EffectivePolicy::of(dag, task),
                }
            })
            .collect();
        for i in 0..tasks.len() {
            let upstream = tasks[i].upstream.clone();
            for u in upstream {
                tasks[u].downstream.push(i);
            }
        }
        DagPlan {
            dag_id: dag.dag.clone(),
            tasks,
            max_active_runs: dag.max_active_runs.max(1) as usize,
            max_active_tasks: dag.max_active_tasks.max(1) as usize,
            sla_deadline: dag
                .sla
                .as_ref()
                .and_then(|s| s.deadline)
                .map(|d| d.as_chrono()),
            sla: super::sla::SlaPolicy {
                warn_after: dag
                    .sla
                    .as_ref()
                    .and_then(|s| s.warn_after)
                    .map(|d| d.as_chrono()),
                deadline: dag
                    .sla
                    .as_ref()
                    .and_then(|s| s.deadline)
                    .map(|d| d.as_chrono()),
            },
            index,
        }
    }

    pub fn task_index(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Tasks downstream of `roots`, transitively, roots included.
    pub fn downstream_closure(&self, roots: &[usize]) -> Vec<usize> {
        let mut seen = vec![false; self.tasks.len()];
        let mut stack: Vec<usize> = roots.to_vec();
        while let Some(i) = stack.pop() {
            if i < seen.len() && !seen[i] {
                seen[i] = true;
                stack.extend(self.tasks[i].downstream.iter().copied());
            }
        }
        (0..seen.len()).filter(|&i| seen[i]).collect()
    }

    /// Tasks with no downstream: they decide whether a run succeeded.
    pub fn is_leaf(&self, index: usize) -> bool {
        self.tasks[index].downstream.is_empty()
    }
}
