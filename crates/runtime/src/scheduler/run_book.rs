//! The run book: the runs in memory (unfinished, or reopened by a clear), each with its
//! record, the compiled DAG version it runs, and the loop's bookkeeping for it. Runs are
//! created and reopened here and leave once their end is durable.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::registry::CompiledDag;
use sluice_core::{Change, DagPlan, RunKind, RunState, RunStatus};
use sluice_model::schedule::DataInterval;
use sluice_model::spec::Dag;
use sluice_store::{GateStatus, RunRecord, Store, StoreError};

pub type RunKey = (String, DateTime<Utc>);

/// A run in memory: its record, the plan of its DAG version, and loop bookkeeping.
pub(super) struct ActiveRun {
    pub record: RunRecord,
    pub plan: Arc<DagPlan>,
    pub dag: Arc<Dag>,
    /// Needs a core evaluation this iteration.
    pub dirty: bool,
    /// Changes made this iteration, to persist.
    pub changes: Vec<Change>,
    /// When each task's success report arrived (latency measurement).
    pub succeeded_at: Vec<Option<Instant>>,
    /// Attempts not yet ended, by (task index, try): updated in memory, written on change.
    pub attempts: HashMap<(usize, u32), sluice_store::AttemptRecord>,
    /// The record changed without a state change (a gate decision): write it.
    pub record_touched: bool,
    /// Why the run moves this iteration when it is not the loop's own doing (a rerun for a
    /// rewritten input): on the next run event.
    pub reason: Option<String>,
    /// How many of `changes` were looked at for materializations.
    pub materialized_upto: usize,
}

impl ActiveRun {
    fn new(record: RunRecord, compiled: CompiledDag, changes: Vec<Change>) -> ActiveRun {
        let tasks = compiled.plan.tasks.len();
        ActiveRun {
            record,
            plan: compiled.plan,
            dag: compiled.dag,
            dirty: true,
            changes,
            succeeded_at: vec![None; tasks],
            attempts: HashMap::new(),
            record_touched: false,
            reason: None,
            materialized_upto: 0,
        }
    }

    /// Its tasks wait on the DAG's gate.
    pub fn waits_on_gate(&self) -> bool {
        self.record
            .gate
            .as_ref()
            .is_some_and(|g| g.status == GateStatus::Waiting)
    }
}

/// The runs in memory, ordered by DAG and logical date.
#[derive(Default)]
pub(super) struct RunBook {
    runs: BTreeMap<RunKey, ActiveRun>,
}

impl RunBook {
    /// Adds a new run (persisted with the iteration). `None` if the logical date already has
    /// a run, in memory or in the store.
    pub fn create(
        &mut self,
        store: &Store,
        compiled: CompiledDag,
        kind: RunKind,
        interval: DataInterval,
        conf: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<Option<&ActiveRun>, StoreError> {
        let key: RunKey = (compiled.plan.dag_id.clone(), interval.start);
        if self.runs.contains_key(&key) || store.run(&key.0, key.1)?.is_some() {
            return Ok(None);
        }
        let record = RunRecord {
            state: RunState::new(&compiled.plan, kind, interval),
            created_at: now,
            started_at: None,
            ended_at: None,
            dag_version: compiled.id.clone(),
            conf,
            gate: None,
            sla: Default::default(),
            inputs: None,
        };
        let created = Change::Run {
            from: RunStatus::Queued,
            to: RunStatus::Queued,
        };
        let run = ActiveRun::new(record, compiled, vec![created]);
        Ok(Some(self.runs.entry(key).or_insert(run)))
    }

    /// Brings a finished (or unloaded) run back with the DAG version it ran.
    pub fn reopen(&mut self, record: RunRecord, compiled: CompiledDag) -> RunKey {
        let key: RunKey = (record.state.dag_id.clone(), record.state.logical_date);
        self.runs
            .entry(key.clone())
            .or_insert_with(|| ActiveRun::new(record, compiled, Vec::new()));
        key
    }

    pub fn get(&self, key: &RunKey) -> Option<&ActiveRun> {
        self.runs.get(key)
    }

    pub fn get_mut(&mut self, key: &RunKey) -> Option<&mut ActiveRun> {
        self.runs.get_mut(key)
    }

    pub fn contains_key(&self, key: &RunKey) -> bool {
        self.runs.contains_key(key)
    }

    pub fn remove(&mut self, key: &RunKey) -> Option<ActiveRun> {
        self.runs.remove(key)
    }

    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.runs.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&RunKey, &ActiveRun)> {
        self.runs.iter()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&RunKey, &mut ActiveRun)> {
        self.runs.iter_mut()
    }

    pub fn keys(&self) -> impl Iterator<Item = &RunKey> {
        self.runs.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &ActiveRun> {
        self.runs.values()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut ActiveRun> {
        self.runs.values_mut()
    }

    /// The run of the same DAG just before `key`, if it is in memory.
    pub fn previous(&self, key: &RunKey) -> Option<&ActiveRun> {
        match self.runs.range(..key.clone()).next_back() {
            Some((k, run)) if k.0 == key.0 => Some(run),
            _ => None,
        }
    }

    /// The next run of the same DAG may wait on this one (`depends_on_past`): evaluate it.
    /// Only then: a run woken for nothing would be looked at for nothing (its inputs too).
    pub fn wake_next(&mut self, key: &RunKey) {
        if let Some((_, next)) = self
            .runs
            .range_mut(key.clone()..)
            .find(|(k, _)| k.0 == key.0)
            && next.plan.tasks.iter().any(|t| t.depends_on_past)
        {
            next.dirty = true;
        }
    }

    /// Whether the DAG has runs in memory.
    pub fn has_runs_of(&self, dag: &str) -> bool {
        self.runs.keys().any(|(d, _)| d == dag)
    }

    /// The DAG's runs in memory not finished yet.
    pub fn unfinished_of(&self, dag: &str) -> usize {
        self.runs
            .iter()
            .filter(|((d, _), r)| d == dag && !r.record.state.status.is_finished())
            .count()
    }

    /// Runs of a DAG whose tasks wait on its gate.
    pub fn waiting_on_gate(&self, dag: &str) -> usize {
        self.runs
            .iter()
            .filter(|(k, r)| k.0 == dag && r.waits_on_gate())
            .count()
    }

    /// Queued runs per DAG.
    pub fn queued_per_dag(&self) -> HashMap<&str, usize> {
        let mut queued = HashMap::new();
        for (key, run) in &self.runs {
            if run.record.state.status == RunStatus::Queued {
                *queued.entry(key.0.as_str()).or_insert(0) += 1;
            }
        }
        queued
    }
}
