//! Backfills: runs for a range of intervals through the same rules as scheduled runs,
//! created as slots free up (bounded by the backfill's `max_active_runs`), resumable from
//! the record's cursor after any stop. One active backfill per DAG.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError};
use sluice_core::{RunKind, RunStatus};
use sluice_store::{BackfillRecord, BackfillStatus, Reprocess, Store, Writes};

/// Intervals of a backfill and how far it got, from the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BackfillProgress {
    pub total: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub running: usize,
}

impl BackfillProgress {
    fn count(&mut self, status: RunStatus, delta: isize) {
        let slot = match status {
            RunStatus::Success => &mut self.succeeded,
            RunStatus::Failed => &mut self.failed,
            RunStatus::Queued | RunStatus::Running => &mut self.running,
        };
        *slot = slot.saturating_add_signed(delta);
    }

    /// Intervals finished, successfully or not.
    pub fn done(&self) -> usize {
        self.succeeded + self.failed
    }
}

/// The open backfills (one per DAG at most) with their progress.
#[derive(Default)]
pub(super) struct Backfills {
    records: HashMap<String, BackfillRecord>,
    progress: HashMap<String, BackfillProgress>,
    /// Backfills whose record changed this iteration, written after its runs.
    changed: Vec<String>,
}

impl Backfills {
    pub fn get(&self, dag: &str) -> Option<&BackfillRecord> {
        self.records.get(dag)
    }

    pub fn dags(&self) -> Vec<String> {
        self.records.keys().cloned().collect()
    }

    /// Whether the DAG's backfill creates runs now.
    pub fn is_running(&self, dag: &str) -> bool {
        self.records
            .get(dag)
            .is_some_and(|b| b.status == BackfillStatus::Running)
    }

    /// Takes an open backfill found in the store (start-up) or just written.
    pub fn open(&mut self, record: BackfillRecord) {
        self.records.insert(record.dag.clone(), record);
    }

    /// Keeps a moved cursor or a new status; written with the iteration.
    pub fn update(&mut self, record: BackfillRecord) {
        self.changed.push(record.dag.clone());
        self.records.insert(record.dag.clone(), record);
    }

    /// Adds the changed records to the group commit; whether there were any.
    pub fn write_into(&mut self, writes: &mut Writes) -> bool {
        let changed = std::mem::take(&mut self.changed);
        for dag in &changed {
            if let Some(record) = self.records.get(dag) {
                writes.put_backfill(record);
            }
        }
        !changed.is_empty()
    }

    /// Counts a backfill's progress from the ledger; kept up to date as runs finish.
    pub fn count_progress(
        &mut self,
        store: &Store,
        record: &BackfillRecord,
    ) -> Result<(), EngineError> {
        let mut progress = BackfillProgress {
            total: record.total,
            ..BackfillProgress::default()
        };
        for (_, entry) in store.ledger_between(&record.dag, record.from, record.to)? {
            progress.count(entry.status, 1);
        }
        self.progress.insert(record.dag.clone(), progress);
        Ok(())
    }

    pub fn progress(&self, dag: &str) -> Option<BackfillProgress> {
        self.progress.get(dag).copied()
    }

    /// Keeps backfill progress in step with a ledger change.
    pub fn track(
        &mut self,
        dag: &str,
        interval_start: DateTime<Utc>,
        from: Option<RunStatus>,
        to: RunStatus,
    ) {
        let Some(record) = self.records.get(dag) else {
            return;
        };
        if interval_start < record.from || interval_start >= record.to {
            return;
        }
        if let Some(progress) = self.progress.get_mut(dag) {
            if let Some(from) = from {
                progress.count(from, -1);
            }
            progress.count(to, 1);
        }
    }

    /// Pauses, resumes or cancels a DAG's open backfill; durable right away. Runs already
    /// created go on either way: a pause or cancel only stops new ones (Airflow's backfill
    /// pause does the same).
    pub fn change(
        &mut self,
        store: &Store,
        dag: &str,
        action: BackfillAction,
    ) -> Result<String, super::ControlError> {
        let refused = |message: String| super::ControlError::Refused {
            message,
            hint: Some("`GET /api/v1/backfills` lists backfills and their state".into()),
        };
        let Some(mut record) = self.records.get(dag).cloned() else {
            return Err(refused(format!("DAG `{dag}` has no open backfill")));
        };
        let (from, to) = (record.status, action.target());
        let allowed = match action {
            BackfillAction::Pause => from == BackfillStatus::Running,
            BackfillAction::Resume => from == BackfillStatus::Paused,
            BackfillAction::Cancel => from.is_open(),
        };
        if !allowed {
            return Err(refused(format!(
                "the backfill of `{dag}` is {from:?}, it cannot be {}",
                action.past_tense()
            )));
        }
        record.status = to;
        store.put_backfill(&record)?;
        if to.is_open() {
            self.records.insert(dag.to_owned(), record);
        } else {
            self.records.remove(dag);
        }
        Ok(format!("backfill of `{dag}` {}", action.past_tense()))
    }
}

impl Engine {
    /// Starts a backfill, or resumes the one with the same arguments.
    pub fn start_backfill(
        &mut self,
        dag: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        reprocess: Reprocess,
        max_active_runs: Option<usize>,
    ) -> Result<BackfillRecord, EngineError> {
        let entry = self
            .registry
            .get(dag)
            .ok_or_else(|| EngineError::UnknownDag(dag.to_owned()))?;
        let range = sluice_core::intervals::backfill_range(
            &entry.dag,
            from,
            to,
            self.config.max_backfill_intervals,
        )
        .map_err(|e| EngineError::Invalid(format!("{e}: {}", e.hint())))?;
        let (from, to) = (range.from, range.to);
        if let Some(existing) = self.store.backfill(dag)?
            && existing.status.is_open()
        {
            if existing.from == from && existing.to == to && existing.reprocess == reprocess {
                self.backfills.open(existing.clone());
                self.backfills.count_progress(&self.store, &existing)?;
                return Ok(existing);
            }
            return Err(EngineError::Invalid(format!(
                "DAG `{dag}` already has a backfill {} ({} to {}); let it finish or cancel it first",
                if existing.status == BackfillStatus::Paused {
                    "paused"
                } else {
                    "running"
                },
                sluice_model::spec::instant::format_instant(existing.from),
                sluice_model::spec::instant::format_instant(existing.to)
            )));
        }
        let limit = max_active_runs
            .or_else(|| self.registry.get(dag).map(|e| e.plan.max_active_runs))
            .unwrap_or(16);
        let record = BackfillRecord {
            dag: dag.to_owned(),
            from,
            to,
            reprocess,
            max_active_runs: limit.max(1),
            next_start: range.first.map(|i| i.start),
            total: range.total,
            status: BackfillStatus::Running,
            created_at: Utc::now(),
        };
        self.store.put_backfill(&record)?;
        self.store.flush()?;
        self.backfills.open(record.clone());
        self.backfills.count_progress(&self.store, &record)?;
        Ok(record)
    }

    /// Creates (or reopens) runs for the next intervals while the backfill has free slots;
    /// marks it done when the cursor passed the end and its runs finished.
    pub(super) fn advance_backfills(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        for dag in self.backfills.dags() {
            let Some(mut record) = self.backfills.get(&dag).cloned() else {
                continue;
            };
            if record.status != BackfillStatus::Running {
                continue;
            }
            let Some(entry) = self.registry.get(&dag) else {
                continue;
            };
            let version = entry.version();
            let spec = Arc::clone(&version.dag);
            let Some(schedule) = spec.schedule.clone() else {
                continue;
            };
            let tz = spec.timezone.tz();
            let mut active = self.runs.unfinished_of(&dag);
            let mut changed = false;
            // One iterator per iteration: consecutive intervals cost one step each.
            let mut upcoming = record.next_start.map(|start| schedule.intervals(tz, start));
            while active < record.max_active_runs {
                let Some(start) = record.next_start else {
                    break;
                };
                let next = upcoming.as_mut().and_then(Iterator::next);
                let Some(interval) = next.filter(|i| i.start == start && i.end <= record.to) else {
                    record.next_start = None;
                    changed = true;
                    break;
                };
                record.next_start = Some(interval.end);
                changed = true;
                let key = (dag.clone(), interval.start);
                if self.runs.contains_key(&key) {
                    continue;
                }
                match self.store.run(&dag, interval.start)? {
                    None => {
                        self.create_run(
                            version.clone(),
                            RunKind::Backfill,
                            interval,
                            serde_json::Value::Null,
                            now,
                        )?;
                        active += 1;
                    }
                    Some(existing) => {
                        // A run left unfinished and unloaded (older stores, manual edits)
                        // is picked up again whatever `--reprocess` says.
                        if !existing.state.status.is_finished() {
                            self.reopen_run(existing)?;
                            active += 1;
                            continue;
                        }
                        let rerun = match record.reprocess {
                            Reprocess::None => false,
                            Reprocess::Failed => existing.state.status == RunStatus::Failed,
                            Reprocess::Completed => true,
                        };
                        if rerun && let Some(key) = self.reopen_to_rerun(existing)? {
                            if let Some(run) = self.runs.get_mut(&key) {
                                let plan = Arc::clone(&run.plan);
                                let roots: Vec<usize> = match record.reprocess {
                                    Reprocess::Failed => run
                                        .record
                                        .state
                                        .tasks
                                        .iter()
                                        .enumerate()
                                        .filter(|(_, t)| t.state.is_failure())
                                        .map(|(i, _)| i)
                                        .collect(),
                                    _ => (0..plan.tasks.len()).collect(),
                                };
                                let changes = run.record.state.clear(&plan, &roots, true);
                                run.changes.extend(changes);
                                super::inputs::reopen_inputs(run);
                                run.dirty = true;
                            }
                            active += 1;
                        }
                    }
                }
            }
            let own_runs = self.runs.has_runs_of(&dag);
            if record.next_start.is_none() && !own_runs {
                record.status = BackfillStatus::Done;
                changed = true;
                self.log(format!("backfill of `{dag}` done"));
            }
            if changed {
                self.backfills.update(record);
            }
        }
        Ok(())
    }

    /// Progress of a DAG's backfill started or resumed by this engine.
    pub fn backfill_progress(&self, dag: &str) -> Option<BackfillProgress> {
        self.backfills.progress(dag)
    }

    pub fn backfill(&self, dag: &str) -> Option<&BackfillRecord> {
        self.backfills.get(dag)
    }

    /// Pauses, resumes or cancels a DAG's open backfill.
    pub(super) fn change_backfill(
        &mut self,
        dag: &str,
        action: BackfillAction,
    ) -> Result<String, super::ControlError> {
        let message = self.backfills.change(&self.store, dag, action)?;
        self.log(message.clone());
        Ok(message)
    }
}

/// What an operator does to a backfill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackfillAction {
    Pause,
    Resume,
    Cancel,
}

impl BackfillAction {
    /// The action's name in the API's path (`/backfills/{action}`).
    pub fn name(self) -> &'static str {
        match self {
            BackfillAction::Pause => "pause",
            BackfillAction::Resume => "resume",
            BackfillAction::Cancel => "cancel",
        }
    }

    fn target(self) -> BackfillStatus {
        match self {
            BackfillAction::Pause => BackfillStatus::Paused,
            BackfillAction::Resume => BackfillStatus::Running,
            BackfillAction::Cancel => BackfillStatus::Cancelled,
        }
    }

    fn past_tense(self) -> &'static str {
        match self {
            BackfillAction::Pause => "paused",
            BackfillAction::Resume => "resumed",
            BackfillAction::Cancel => "cancelled",
        }
    }
}
