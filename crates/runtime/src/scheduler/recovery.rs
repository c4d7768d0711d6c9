//! Start-up after a stop or a crash: runs left active are loaded again; attempts that were
//! running in this process (in-process executors) died with it and are failed-by-crash,
//! then retried under the task's retry policy; remote attempts (EMR steps) are started
//! again with the same try, and their executor adopts the step by name. No run stays stuck
//! in running or queued.

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError, Mode};
use sluice_core::Outcome;
use sluice_store::{AttemptRecord, AttemptResult};

pub const CRASH_REASON: &str =
    "failed by crash: the scheduler stopped while this attempt was running";

/// Newest runs of each DAG that reprocesses late data looked at, at start, for a success
/// with late data still pending: late events come for recent intervals.
const LATE_PENDING_SCAN_RUNS: usize = 1_000;

impl Engine {
    /// A run that succeeded with late data pending is cleared in the next iteration from a
    /// list kept in memory: a stop between that run's flush and the clear would lose the
    /// reprocessing. Finds such runs again (the newest of each DAG with
    /// `reprocess_late_data`) and queues them the same way.
    fn find_late_data_to_reprocess(&mut self, only: Option<&str>) -> Result<(), EngineError> {
        let reprocessing: Vec<String> = self
            .registry
            .entries()
            .filter(|e| {
                e.dag
                    .gate
                    .as_ref()
                    .is_some_and(|g| g.kafka.reprocess_late_data)
            })
            .map(|e| e.dag.dag.clone())
            .filter(|dag| only.is_none_or(|o| o == dag))
            .collect();
        for dag in reprocessing {
            for record in self.store.runs_of(&dag).rev().take(LATE_PENDING_SCAN_RUNS) {
                let record = record?;
                if record.state.status == sluice_core::RunStatus::Success
                    && record.gate.as_ref().is_some_and(|g| g.late_pending)
                {
                    self.log(format!(
                        "{dag} {}: late data was pending when the scheduler stopped: reprocessing",
                        record.state.run_id
                    ));
                    self.gates
                        .reprocess_later(dag.clone(), record.state.logical_date);
                }
            }
        }
        Ok(())
    }

    pub(super) fn recover(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let only = match &self.config.mode {
            Mode::Scheduler => None,
            Mode::Backfill { dag } | Mode::Test { dag } => Some(dag.clone()),
        };
        for dag in self.registry.ids() {
            if let Some(record) = self.store.backfill(&dag)?
                && record.status.is_open()
            {
                self.backfills.open(record);
            }
        }
        self.find_late_data_to_reprocess(only.as_deref())?;
        // Attempts failed by crash whose processes may have outlived the old scheduler.
        let mut leftovers = Vec::new();
        for record in self.store.active_runs()? {
            if !self.registry.in_scope(&record.state.dag_id) {
                continue;
            }
            let Some(key) = self.reopen_run(record)? else {
                continue;
            };
            let Some(run) = self.runs.get_mut(&key) else {
                continue;
            };
            let plan = std::sync::Arc::clone(&run.plan);
            let crashed: Vec<(usize, u32)> = run
                .record
                .state
                .tasks
                .iter()
                .enumerate()
                .filter(|(_, t)| t.state.holds_slot())
                .map(|(i, t)| (i, t.try_number))
                .collect();
            for (index, try_number) in crashed {
                let task = plan.tasks[index].id.clone();
                let started_at = run.record.state.tasks[index].started_at.unwrap_or(now);
                let mut attempt = match self.store.attempt(&key.0, key.1, &task, try_number)? {
                    Some(attempt) => attempt,
                    None => AttemptRecord {
                        idempotency_key: run.record.state.idempotency_key(&plan, index, try_number),
                        executor: run
                            .dag
                            .tasks
                            .get(&task)
                            .map_or("unknown", |t| t.kind.type_name())
                            .to_owned(),
                        handle: None,
                        started_at,
                        ended_at: None,
                        result: None,
                        error: None,
                        log: self.store.log_path(
                            &key.0,
                            &run.record.state.run_id,
                            &task,
                            try_number,
                        ),
                        task: task.clone(),
                        try_number,
                        dag_version: Some(run.record.dag_version.clone()),
                        rendered: Default::default(),
                    },
                };
                if super::engine::is_remote(&self.executors, run, index) {
                    // The step may still run (or have ended) on the cluster: start the same
                    // try again; the executor finds the step by its name and follows it.
                    self.admission.occupy(&plan, index);
                    run.attempts.insert((index, try_number), attempt);
                    self.attempts.adopt(super::engine::Dispatch {
                        key: key.clone(),
                        task: index,
                        try_number,
                        enabled_at: None,
                    });
                    continue;
                }
                leftovers.push(attempt.idempotency_key.clone());
                let changes = run.record.state.finish(
                    &plan,
                    index,
                    try_number,
                    &Outcome::Failed {
                        retryable: true,
                        reason: CRASH_REASON.into(),
                    },
                    now,
                );
                run.changes.extend(changes);
                self.stats.recovered_attempts += 1;
                attempt.ended_at = Some(now);
                attempt.result = Some(AttemptResult::FailedByCrash);
                attempt.error = Some(CRASH_REASON.into());
                self.attempts.record(key.0.clone(), key.1, attempt);
            }
            run.dirty = true;
        }
        let killed = crate::executor::orphans::kill_leftovers(&leftovers);
        if !killed.is_empty() {
            self.log(format!(
                "killed {} process(es) left running by attempts failed by crash (pids {killed:?}) before retrying them",
                killed.len()
            ));
        }
        // Transient EMR clusters of runs that ended while no scheduler could terminate them.
        let dags: Vec<_> = self
            .registry
            .entries()
            .filter(|d| only.as_ref().is_none_or(|o| *o == d.dag.dag))
            .map(|d| std::sync::Arc::clone(&d.dag))
            .collect();
        for dag in dags {
            let store = self.store.clone();
            let run_is_over = |at: DateTime<Utc>| {
                store
                    .run(&dag.dag, at)
                    .ok()
                    .flatten()
                    .is_none_or(|r| r.state.status.is_finished())
            };
            for note in self.executors.spark.sweep(&dag, run_is_over) {
                self.log(note);
            }
            for note in self.executors.spark.apply_cluster_policies(&dag) {
                match note {
                    Ok(done) => self.log(done),
                    // Not fatal (EMR may be down for a while), but never silent: the
                    // scheduler's log, or a backfill's stderr (it installs no logger).
                    Err(problem) if self.config.verbose => {
                        tracing::warn!(dag = %dag.dag, "{problem}")
                    }
                    Err(problem) => eprintln!("warning: {}: {problem}", dag.dag),
                }
            }
        }
        if self.attempts.adopted() > 0 {
            self.log(format!(
                "adopting {} remote attempt(s) left running by a previous process",
                self.attempts.adopted()
            ));
        }
        if self.stats.recovered_attempts > 0 {
            self.log(format!(
                "recovered {} attempt(s) left running by a previous process",
                self.stats.recovered_attempts
            ));
        }
        Ok(())
    }
}
