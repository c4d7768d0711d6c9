//! Operator commands: trigger, pause/unpause, clear, mark. Applied to the engine's state
//! and persisted like any other change.

use std::sync::Arc;

use chrono::{DateTime, DurationRound, Utc};

use super::engine::{Engine, EngineError};
use super::run_book::RunKey;
use sluice_core::{RunKind, TaskState};
use sluice_model::schedule::DataInterval;
use sluice_model::spec::instant::{format_instant, parse_instant};

#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// A manual run; `logical_date` defaults to now.
    Trigger {
        dag: String,
        logical_date: Option<DateTime<Utc>>,
        conf: serde_json::Value,
    },
    Pause {
        dag: String,
        paused: bool,
    },
    /// Reset task instances so they run again; no `tasks` means every task.
    Clear {
        dag: String,
        run_id: String,
        tasks: Vec<String>,
        downstream: bool,
        failed_only: bool,
    },
    /// Set a task instance's state by hand (`success` or `failed`).
    Mark {
        dag: String,
        run_id: String,
        task: String,
        state: TaskState,
    },
    /// Pause, resume or cancel a DAG's backfill.
    Backfill {
        dag: String,
        action: super::backfill::BackfillAction,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("{message}")]
    Refused {
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<sluice_store::StoreError> for ControlError {
    fn from(e: sluice_store::StoreError) -> Self {
        ControlError::Engine(e.into())
    }
}

fn refused(message: impl Into<String>, hint: Option<&str>) -> ControlError {
    ControlError::Refused {
        message: message.into(),
        hint: hint.map(str::to_owned),
    }
}

const TRIGGERED: &str = "triggered ";

/// Seconds ahead an unscheduled DAG's trigger looks for a free run id.
const MAX_SAME_SECOND_TRIGGERS: usize = 600;

/// The run a trigger's answer names (`triggered manual__… for …`): an off-schedule date
/// gets the interval closed at that time, so the caller cannot know the id in advance.
pub fn triggered_run_id(answer: &str) -> Option<&str> {
    answer.strip_prefix(TRIGGERED)?.split_whitespace().next()
}

/// The logical date a run id names (`scheduled__2025-09-01T00:00:00Z`).
pub fn logical_date_of(run_id: &str) -> Option<DateTime<Utc>> {
    let (_, date) = run_id.split_once("__")?;
    parse_instant(date, chrono_tz::UTC).ok()
}

impl Engine {
    /// Applies an operator command and makes it durable; returns what was done.
    pub fn control(&mut self, command: Control) -> Result<String, ControlError> {
        let now = Utc::now();
        let message = match command {
            Control::Trigger {
                dag,
                logical_date,
                conf,
            } => self.trigger(&dag, logical_date, conf, now)?,
            Control::Pause { dag, paused } => {
                self.registry
                    .set_paused(&self.store, &dag, paused, now)?
                    .ok_or_else(|| refused(format!("no DAG `{dag}`"), None))?;
                // Its stale intervals may rerun now.
                self.assets.recheck = true;
                format!("DAG `{dag}` {}", if paused { "paused" } else { "unpaused" })
            }
            Control::Clear {
                dag,
                run_id,
                tasks,
                downstream,
                failed_only,
            } => self.clear(&dag, &run_id, &tasks, downstream, failed_only)?,
            Control::Mark {
                dag,
                run_id,
                task,
                state,
            } => self.mark(&dag, &run_id, &task, state)?,
            Control::Backfill { dag, action } => self.change_backfill(&dag, action)?,
        };
        self.persist_and_flush()?;
        Ok(message)
    }

    /// A manual run. Without a logical date: the last interval closed now, and when that
    /// interval has a finished run already (a DAG up to date), that run runs again, on the
    /// DAG's current version and with this conf (one run per interval: the ledger's). With
    /// a date: the interval starting there (or the last one closed then), which must have
    /// no run. A paused DAG is refused: its run would wait, unseen, until unpaused.
    fn trigger(
        &mut self,
        dag: &str,
        at: Option<DateTime<Utc>>,
        conf: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<String, ControlError> {
        let entry = self.registry.get(dag).ok_or_else(|| {
            refused(
                format!("no DAG `{dag}`"),
                Some("`sluice dags list` shows the DAGs"),
            )
        })?;
        // The conf fills only declared params, each as declared: it reaches templates,
        // and through them shell lines and SQL.
        sluice_model::spec::params::check_conf(
            &entry.dag.param_specs,
            entry.dag.allow_undeclared_conf,
            &conf,
        )
        .map_err(|e| ControlError::Refused {
            hint: Some(e.hint()),
            message: e.to_string(),
        })?;
        if self.config.mode == super::Mode::Scheduler && self.registry.is_paused(dag) {
            return Err(ControlError::Refused {
                message: format!(
                    "DAG `{dag}` is paused: a run of it would wait until it is unpaused"
                ),
                hint: Some(format!(
                    "unpause it first (`sluice dags unpause {dag}`, or the Unpause button), \
                     then trigger"
                )),
            });
        }
        let tz = entry.dag.timezone.tz();
        // Run ids to the second: `manual__2025-09-01T10:00:00Z`.
        let now_s = now
            .duration_trunc(chrono::TimeDelta::seconds(1))
            .unwrap_or(now);
        let last_closed = |at: DateTime<Utc>| -> Result<DataInterval, ControlError> {
            let Some(schedule) = &entry.dag.schedule else {
                return Ok(DataInterval { start: at, end: at });
            };
            let end = schedule.prev_fire(tz, at).ok_or_else(|| {
                refused(
                    format!(
                        "no interval of `{dag}` closes before {}",
                        format_instant(at)
                    ),
                    None,
                )
            })?;
            let start = schedule
                .prev_fire(tz, end - chrono::TimeDelta::nanoseconds(1))
                .ok_or_else(|| refused("no interval before that date", None))?;
            Ok(DataInterval { start, end })
        };
        // Airflow's manual runs: an aligned date is its interval's start; any other instant
        // gets the last interval closed at that time; unscheduled DAGs an empty interval.
        let interval = match (at, &entry.dag.schedule) {
            // Unscheduled: every trigger is a new run; two in one second take the next free
            // second (run ids carry no fraction), never the other's run.
            (None, None) => {
                let mut start = now_s;
                for _ in 0..MAX_SAME_SECOND_TRIGGERS {
                    let key = (dag.to_owned(), start);
                    if !self.runs.contains_key(&key) && self.store.run(dag, start)?.is_none() {
                        break;
                    }
                    start += chrono::TimeDelta::seconds(1);
                }
                DataInterval { start, end: start }
            }
            (None, Some(_)) => last_closed(now_s)?,
            (Some(at), Some(schedule)) => match schedule.interval_starting(tz, at) {
                Some(i) => i,
                None => last_closed(at)?,
            },
            (Some(at), None) => last_closed(at)?,
        };
        let unscheduled = entry.dag.schedule.is_none();
        let version = entry.version();
        let created = self.create_run(version, RunKind::Manual, interval, conf.clone(), now)?;
        if created {
            return Ok(format!(
                "{TRIGGERED}{} for {} → {}",
                RunKind::Manual.run_id(interval.start),
                format_instant(interval.start),
                format_instant(interval.end)
            ));
        }
        if unscheduled && at.is_none() {
            return Err(refused(
                format!(
                    "`{dag}` was triggered {MAX_SAME_SECOND_TRIGGERS} times in as many seconds"
                ),
                Some("trigger it again in a while"),
            ));
        }
        let key = (dag.to_owned(), interval.start);
        let existing = self
            .run_as_it_stands(&key)?
            .ok_or_else(|| refused("the interval's run vanished", None))?;
        let run_id = existing.state.run_id.clone();
        if !existing.state.status.is_finished() || at.is_some() {
            let (message, hint) = if existing.state.status.is_finished() {
                (
                    format!(
                        "interval {} already has run {run_id} ({})",
                        format_instant(interval.start),
                        existing.state.status
                    ),
                    format!("run it again with `sluice clear {dag} --run {run_id}`"),
                )
            } else {
                (
                    format!(
                        "interval {} is being run by {run_id} ({})",
                        format_instant(interval.start),
                        existing.state.status
                    ),
                    format!("follow it with `sluice runs show {dag} {run_id}`"),
                )
            };
            return Err(ControlError::Refused {
                message,
                hint: Some(hint),
            });
        }
        // The DAG is up to date: its latest interval runs again.
        let key = self
            .reopen_to_rerun(existing)?
            .ok_or_else(|| refused(format!("the DAG version of `{run_id}` is missing"), None))?;
        let Some(run) = self.runs.get_mut(&key) else {
            return Err(refused("run vanished", None));
        };
        if !conf.is_null() {
            run.record.conf = conf;
        }
        let plan = Arc::clone(&run.plan);
        let all: Vec<usize> = (0..plan.tasks.len()).collect();
        let changes = run.record.state.clear(&plan, &all, true);
        run.changes.extend(changes);
        run.dirty = true;
        Ok(format!(
            "{TRIGGERED}{run_id} for {} → {} (run again: the interval had this run)",
            format_instant(interval.start),
            format_instant(interval.end)
        ))
    }

    /// A run as it stands: the one in memory (ahead of the store until flushed), else the
    /// stored one.
    fn run_as_it_stands(
        &self,
        key: &RunKey,
    ) -> Result<Option<sluice_store::RunRecord>, ControlError> {
        Ok(match self.runs.get(key) {
            Some(active) => Some(active.record.clone()),
            None => self.store.run(&key.0, key.1)?,
        })
    }

    /// Loads a run into memory by id, for clear (`rerun`: on the DAG's current version) and
    /// mark (on its own).
    fn open_run(&mut self, dag: &str, run_id: &str, rerun: bool) -> Result<RunKey, ControlError> {
        let logical = logical_date_of(run_id).ok_or_else(|| {
            refused(
                format!("`{run_id}` is not a run id"),
                Some("run ids look like scheduled__2025-09-01T00:00:00Z; `sluice runs list DAG` shows them"),
            )
        })?;
        let key = (dag.to_owned(), logical);
        if self.runs.contains_key(&key) {
            return Ok(key);
        }
        let record = self
            .store
            .run(dag, logical)?
            .filter(|r| r.state.run_id == run_id)
            .ok_or_else(|| {
                refused(
                    format!("DAG `{dag}` has no run `{run_id}`"),
                    Some("`sluice runs list DAG` shows its runs"),
                )
            })?;
        let reopened = if rerun {
            self.reopen_to_rerun(record)?
        } else {
            self.reopen_run(record)?
        };
        reopened.ok_or_else(|| {
            refused(
                format!("the DAG version of `{run_id}` is missing from the store"),
                None,
            )
        })
    }

    /// Stops attempts of tasks about to be reset and gives their slots back.
    fn stop_attempts(&mut self, key: &RunKey, tasks: &[usize]) {
        let Some(run) = self.runs.get(key) else {
            return;
        };
        let plan = Arc::clone(&run.plan);
        let mut stopped = Vec::new();
        for &i in tasks {
            let task = &run.record.state.tasks[i];
            if task.state.holds_slot() {
                let idempotency_key = run.record.state.idempotency_key(&plan, i, task.try_number);
                self.executors.cancel(&idempotency_key);
                stopped.push(i);
            }
        }
        for i in stopped {
            self.admission
                .release(&plan.dag_id, &plan.tasks[i].policy.pool);
        }
    }

    pub(super) fn clear(
        &mut self,
        dag: &str,
        run_id: &str,
        tasks: &[String],
        downstream: bool,
        failed_only: bool,
    ) -> Result<String, ControlError> {
        // Nothing failed: nothing to run again, and the run stays on its own version (moving
        // it would run the tasks a newer version added, which nobody asked for).
        if failed_only && let Some(logical) = logical_date_of(run_id) {
            let stored = self.run_as_it_stands(&(dag.to_owned(), logical))?;
            if let Some(record) = stored.filter(|r| r.state.run_id == run_id)
                && !record.state.tasks.iter().any(|t| t.state.is_failure())
            {
                return Ok(format!(
                    "cleared 0 task instance(s) of {run_id}: none failed"
                ));
            }
        }
        let key = self.open_run(dag, run_id, true)?;
        let Some(run) = self.runs.get(&key) else {
            return Err(refused("run vanished", None));
        };
        let plan = Arc::clone(&run.plan);
        let mut roots = Vec::new();
        for task in tasks {
            roots.push(
                plan.task_index(task)
                    .ok_or_else(|| refused(format!("DAG `{dag}` has no task `{task}`"), None))?,
            );
        }
        if roots.is_empty() {
            roots = (0..plan.tasks.len()).collect();
        }
        if failed_only {
            roots.retain(|&i| run.record.state.tasks[i].state.is_failure());
        }
        let targets = if downstream {
            plan.downstream_closure(&roots)
        } else {
            roots.clone()
        };
        self.stop_attempts(&key, &targets);
        let Some(run) = self.runs.get_mut(&key) else {
            return Err(refused("run vanished", None));
        };
        let changes = run.record.state.clear(&plan, &roots, downstream);
        super::inputs::reopen_inputs(run);
        let count = changes
            .iter()
            .filter(|c| matches!(c, sluice_core::Change::Task { .. }))
            .count();
        run.changes.extend(changes);
        run.dirty = true;
        Ok(format!("cleared {count} task instance(s) of {run_id}"))
    }

    fn mark(
        &mut self,
        dag: &str,
        run_id: &str,
        task: &str,
        state: TaskState,
    ) -> Result<String, ControlError> {
        if !matches!(state, TaskState::Success | TaskState::Failed) {
            return Err(refused("a task can be marked `success` or `failed`", None));
        }
        let key = self.open_run(dag, run_id, false)?;
        let Some(run) = self.runs.get(&key) else {
            return Err(refused("run vanished", None));
        };
        let plan = Arc::clone(&run.plan);
        let index = plan
            .task_index(task)
            .ok_or_else(|| refused(format!("DAG `{dag}` has no task `{task}`"), None))?;
        self.stop_attempts(&key, &[index]);
        let Some(run) = self.runs.get_mut(&key) else {
            return Err(refused("run vanished", None));
        };
        let changes = run.record.state.mark(index, state, "marked by an operator");
        run.changes.extend(changes);
        run.dirty = true;
        Ok(format!("marked {task} of {run_id} {state}"))
    }
}
