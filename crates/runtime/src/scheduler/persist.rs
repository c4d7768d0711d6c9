//! Writing an iteration's changes: runs, the event log, the ledger, attempts and outputs,
//! then one flush (group commit). Finished runs leave memory once they are durable.

use chrono::Utc;

use super::engine::{Engine, EngineError};
use super::run_book::RunKey;
use sluice_core::{Change, RunStatus};
use sluice_store::{EventRecord, LedgerEntry};

impl Engine {
    /// Persists everything changed this iteration and flushes once. Returns whether
    /// anything was written.
    pub(super) fn persist_and_flush(&mut self) -> Result<bool, EngineError> {
        let now = Utc::now();
        // Successes recorded outside the loop's own steps (an operator's mark) materialize too.
        self.record_materializations(now)?;
        // Writes made outside the runs (the gate monitor's memory) need the flush too.
        let mut wrote = std::mem::take(&mut self.side_writes);
        let mut finished: Vec<RunKey> = Vec::new();
        let mut ledger_moves = Vec::new();
        let mut events = Vec::new();
        let mut writes = self.store.writes();
        for (key, run) in self.runs.iter_mut() {
            if run.changes.is_empty() && std::mem::take(&mut run.record_touched) {
                // Only the record moved (a gate decision): write it, no event.
                wrote = true;
                writes.put_run(&run.record);
                continue;
            }
            if run.changes.is_empty() {
                // A run loaded finished (a crash fell between its final record and its
                // removal from the index of unfinished runs): finish that removal.
                if run.record.state.status.is_finished() {
                    wrote = true;
                    let state = &run.record.state;
                    writes.set_active(&state.dag_id, state.logical_date, false);
                    finished.push(key.clone());
                }
                continue;
            }
            wrote = true;
            run.record_touched = false;
            let changes = std::mem::take(&mut run.changes);
            run.materialized_upto = 0;
            let state = &run.record.state;
            let mut ledger_status = None;
            for change in &changes {
                let event = match change {
                    Change::Task {
                        index,
                        from,
                        to,
                        try_number,
                    } => {
                        self.stats.transitions += 1;
                        self.metrics.inc(
                            "sluice_task_transitions_total",
                            &[("dag", &state.dag_id), ("state", to.name())],
                        );
                        if self.config.verbose {
                            let task = &run.plan.tasks[*index].id;
                            let reason = state.tasks[*index].reason.as_deref().unwrap_or("");
                            tracing::info!(
                                dag = %state.dag_id,
                                run = %state.run_id,
                                task = %task,
                                "try" = *try_number,
                                reason,
                                "task {task} {} → {}",
                                from.name(),
                                to.name()
                            );
                        }
                        if *to == sluice_core::TaskState::UpForRetry {
                            self.metrics
                                .inc("sluice_task_retries_total", &[("dag", &state.dag_id)]);
                        }
                        EventRecord {
                            at: now,
                            dag: state.dag_id.clone(),
                            run_id: state.run_id.clone(),
                            task: Some(run.plan.tasks[*index].id.clone()),
                            from: from.name().to_owned(),
                            to: to.name().to_owned(),
                            try_number: Some(*try_number),
                            reason: None,
                        }
                    }
                    Change::Run { from, to } => {
                        ledger_status = Some(*to);
                        EventRecord {
                            at: now,
                            dag: state.dag_id.clone(),
                            run_id: state.run_id.clone(),
                            task: None,
                            from: from.name().to_owned(),
                            to: to.name().to_owned(),
                            try_number: None,
                            reason: run.reason.take(),
                        }
                    }
                };
                events.push(event);
            }
            if state.status.is_finished() {
                run.record.ended_at.get_or_insert(now);
                finished.push(key.clone());
            } else {
                run.record.ended_at = None;
            }
            writes.put_run(&run.record);
            if ledger_status.is_some() {
                writes.set_active(
                    &state.dag_id,
                    state.logical_date,
                    !state.status.is_finished(),
                );
            }
            if let Some(status) = ledger_status {
                let previous = self
                    .store
                    .ledger_entry(&state.dag_id, state.interval.start)?;
                ledger_moves.push((
                    state.dag_id.clone(),
                    state.interval.start,
                    previous.as_ref().map(|p| p.status),
                    status,
                ));
                let successes =
                    previous.map_or(0, |p| p.successes) + u32::from(status == RunStatus::Success);
                writes.put_ledger(
                    &state.dag_id,
                    state.interval.start,
                    &LedgerEntry {
                        interval_end: state.interval.end,
                        run_id: state.run_id.clone(),
                        status,
                        successes,
                        updated_at: now,
                    },
                );
            }
        }
        writes.append_events(events);
        for (dag, start, from, to) in ledger_moves {
            self.backfills.track(&dag, start, from, to);
        }
        wrote |= self.attempts.write_into(&mut writes);
        // Cursors (DAGs' and backfills') go after the runs they created (`Store::apply`).
        for (id, record) in self.registry.take_changed() {
            wrote = true;
            writes.put_dag(&id, &record);
        }
        wrote |= self.backfills.write_into(&mut writes);
        // Kept until the loop hands them to the notifier after this flush.
        wrote |= self.slas.write_into(&mut writes);
        wrote |= self.assets.write_into(&mut writes);
        self.store.apply(writes)?;
        if wrote {
            let started = std::time::Instant::now();
            self.store.flush()?;
            self.stats.flush_time += started.elapsed();
            self.stats.flushes += 1;
        }
        if !finished.is_empty() {
            // A producer's run ended: a stale interval may have settled.
            self.assets.recheck = true;
        }
        for key in finished {
            if let Some(run) = self.runs.remove(&key) {
                self.stats.runs_finished += 1;
                self.observe_finished(&run);
                if run.record.state.status == RunStatus::Success
                    && run.record.gate.as_ref().is_some_and(|g| g.late_pending)
                {
                    self.gates.reprocess_later(key.0.clone(), key.1);
                }
                self.executors.spark.run_ended(&run.dag, key.1);
                self.log_run(
                    &run.record.state.dag_id,
                    &run.record.state.run_id,
                    format!(
                        "{} {} {}",
                        run.record.state.dag_id, run.record.state.run_id, run.record.state.status
                    ),
                );
                // The next run of the DAG may wait on this one (`depends_on_past`).
                self.runs.wake_next(&key);
            }
        }
        Ok(wrote)
    }
}
