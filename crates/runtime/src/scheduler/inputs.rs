//! Event-driven readiness: a run of a DAG that `consumes` assets waits, its tasks deferred
//! and holding no slot, until every interval it reads is materialized. A task that
//! `produces` materializes its run's interval when it succeeds; the consumer runs that read
//! that interval are woken in the same loop iteration, so the one group commit holds the
//! producer's success, the materialization and the consumer's first scheduled task. Nothing
//! is looked at on a timer: a waiting run is evaluated when created, reopened or woken.

use chrono::{DateTime, Utc};

use super::assets::{AssetBook, AssetCatalog, Reads, on_grid};
use super::engine::{Engine, EngineError};
use super::gates::GateVerdict;
use super::run_book::ActiveRun;
use sluice_core::{Change, RunKind, TaskState};
use sluice_store::{
    InputsRecord, InputsStatus, MAX_MISSING_SHOWN, MaterializationRecord, MissingInput, Store,
    StoreError,
};

/// Whether a run waits for inputs at all: scheduled and backfill runs of a consuming DAG on
/// its own grid. A manual run (`dags trigger`) runs when asked, as in Airflow.
pub(super) fn waits_for_inputs(run: &ActiveRun) -> bool {
    !run.dag.consumes.is_empty()
        && run.record.state.kind != RunKind::Manual
        && on_grid(&run.dag, run.record.state.interval)
}

/// A cleared run reads its inputs again: it waits for them afresh (a fresh timeout too),
/// and its next readiness takes the versions then.
pub(super) fn reopen_inputs(run: &mut ActiveRun) {
    if let Some(inputs) = run.record.inputs.as_mut() {
        inputs.status = InputsStatus::Waiting;
        inputs.waiting_since = chrono::Utc::now();
        inputs.snapshot = 0;
        run.record_touched = true;
    }
}

/// The earliest of a consuming DAG's `timeout`s, if any.
fn timeout_of(run: &ActiveRun) -> Option<chrono::TimeDelta> {
    run.dag
        .consumes
        .values()
        .filter_map(|c| c.timeout)
        .map(|t| t.as_chrono())
        .min()
}

/// When inputs waited for since `waiting_since` time out: the `timeout` counts from then or
/// from the interval's end, whichever is later.
fn timeout_at(run: &ActiveRun, waiting_since: DateTime<Utc>) -> Option<DateTime<Utc>> {
    waiting_since
        .max(run.record.state.interval.end)
        .checked_add_signed(timeout_of(run)?)
}

/// When a waiting run's inputs time out (the loop wakes for it).
pub(super) fn inputs_deadline(run: &ActiveRun) -> Option<DateTime<Utc>> {
    let inputs = run.record.inputs.as_ref()?;
    if inputs.status != InputsStatus::Waiting || run.record.state.status.is_finished() {
        return None;
    }
    timeout_at(run, inputs.waiting_since)
}

/// Whether every interval a consumer interval reads is materialized (false when the
/// mapping cannot say).
pub(super) fn all_materialized(
    dag: &sluice_model::spec::Dag,
    interval: sluice_model::schedule::DataInterval,
    store: &Store,
    book: &AssetBook,
    catalog: &AssetCatalog,
) -> Result<bool, StoreError> {
    if dag.grid().is_none() {
        return Ok(false);
    }
    for (asset, reads) in catalog.reads(dag, interval) {
        let Reads::Intervals(needed) = reads else {
            return Ok(false);
        };
        let since = book.tracked_since(store, asset)?;
        for j in needed {
            if !materialized(store, book, catalog, asset, since, j.start)? {
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// Whether the interval of `asset` starting at `start` is materialized: this iteration, in
/// the store, or, written before the asset was tracked (`since`: its first recorded
/// materialization), by a successful run of a producing DAG in the ledger. After that, a
/// producing run that succeeded without its producing task (skipped) wrote nothing.
fn materialized(
    store: &Store,
    book: &AssetBook,
    catalog: &AssetCatalog,
    asset: &str,
    since: Option<DateTime<Utc>>,
    start: DateTime<Utc>,
) -> Result<bool, StoreError> {
    if book.pending(asset, start) || store.latest_materialization(asset, start)?.is_some() {
        return Ok(true);
    }
    for producer in catalog.producers(asset) {
        if store
            .ledger_entry(&producer.dag, start)?
            .is_some_and(|e| e.successes > 0 && since.is_none_or(|since| e.updated_at < since))
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Decides a consuming run's inputs now and records it on the run: ready (with the
/// version read), waiting (with what is missing) or timed out. Also whether it became
/// ready just now.
pub(super) fn decide(
    run: &mut ActiveRun,
    store: &Store,
    book: &AssetBook,
    catalog: &AssetCatalog,
    now: DateTime<Utc>,
) -> Result<(GateVerdict, bool), StoreError> {
    match &run.record.inputs {
        Some(i) if i.status == InputsStatus::Ready => return Ok((GateVerdict::Open, false)),
        Some(i) if i.status == InputsStatus::TimedOut => {
            return Ok((GateVerdict::TimedOut(i.describe()), false));
        }
        _ => {}
    }
    let interval = run.record.state.interval;
    let mut missing = Vec::new();
    let mut missing_count = 0;
    let mut problem = None;
    let mut unresolvable = None;
    // Materializations are never taken back: what was there at the last look still is, so a
    // look starts at the first interval then missing of each asset.
    let first_missing = |asset: &str| -> Option<DateTime<Utc>> {
        let last = run.record.inputs.as_ref().filter(|i| i.problem.is_none())?;
        if let Some(m) = last.missing.iter().find(|m| m.asset == asset) {
            return Some(m.start);
        }
        // Every missing interval was listed and none of this asset: it had them all.
        (last.missing_count == last.missing.len()).then_some(DateTime::<Utc>::MAX_UTC)
    };
    for (asset, reads) in catalog.reads(&run.dag, interval) {
        let needed = match reads {
            Reads::Intervals(needed) => needed,
            Reads::NoProducer => {
                problem = Some(format!("no loaded DAG produces `{asset}`"));
                continue;
            }
            // Past the load-time horizon the grids stopped nesting (a zone's rules
            // changed): nothing will ever make it ready, so the run fails, saying so.
            Reads::Unresolvable(why) => {
                unresolvable = Some(why);
                continue;
            }
        };
        let since = book.tracked_since(store, asset)?;
        let from = first_missing(asset);
        for j in needed {
            if from.is_some_and(|from| j.start < from) {
                continue;
            }
            if !materialized(store, book, catalog, asset, since, j.start)? {
                missing_count += 1;
                if missing.len() < MAX_MISSING_SHOWN {
                    missing.push(MissingInput {
                        asset: asset.to_owned(),
                        start: j.start,
                        end: j.end,
                    });
                }
            }
        }
    }
    let previous = run.record.inputs.as_ref();
    let waiting_since = previous.map_or(now, |i| i.waiting_since);
    let upstream_reruns = previous.map_or(0, |i| i.upstream_reruns);
    if let Some(reason) = &unresolvable {
        problem = Some(reason.clone());
    }
    let ready = missing_count == 0 && problem.is_none();
    let mut record = InputsRecord {
        status: if ready {
            InputsStatus::Ready
        } else {
            InputsStatus::Waiting
        },
        waiting_since,
        decided_at: now,
        snapshot: if ready { book.snapshot() } else { 0 },
        missing,
        missing_count,
        problem,
        upstream_reruns,
    };
    let deadline = timeout_at(run, waiting_since);
    let verdict = if ready {
        GateVerdict::Open
    } else if unresolvable.is_some() || deadline.is_some_and(|d| now >= d) {
        record.status = InputsStatus::TimedOut;
        GateVerdict::TimedOut(format!("inputs timed out: {}", record.describe()))
    } else {
        GateVerdict::Closed
    };
    let changed = previous.is_none_or(|p| {
        p.status != record.status || p.missing != record.missing || p.problem != record.problem
    });
    if changed {
        run.record.inputs = Some(record);
        run.record_touched = true;
    }
    Ok((verdict, ready))
}

/// The gate's verdict and the inputs' together: a task runs when both let it.
pub(super) fn combine(gate: GateVerdict, inputs: GateVerdict) -> GateVerdict {
    match (gate, inputs) {
        (GateVerdict::TimedOut(reason), _) | (_, GateVerdict::TimedOut(reason)) => {
            GateVerdict::TimedOut(reason)
        }
        (GateVerdict::Open, GateVerdict::Open) => GateVerdict::Open,
        _ => GateVerdict::Closed,
    }
}

/// A producing task's success, found in a run's changes.
struct Written {
    record: MaterializationRecord,
    producer: std::sync::Arc<sluice_model::spec::Dag>,
    /// Written by a backfill run: consumers' intervals with no run yet get one.
    by_backfill: bool,
}

impl Engine {
    /// Records the materializations of this iteration's producing successes not recorded
    /// yet, wakes the consumer runs that read them and marks stale the ones that read an
    /// older version. Called after the inbox is drained (so consumers move in this same
    /// iteration) and before every commit.
    pub(super) fn record_materializations(
        &mut self,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let mut written = Vec::new();
        for run in self.runs.values_mut() {
            let from = run.materialized_upto.min(run.changes.len());
            run.materialized_upto = run.changes.len();
            for change in &run.changes[from..] {
                let Change::Task {
                    index,
                    to: TaskState::Success,
                    try_number,
                    ..
                } = change
                else {
                    continue;
                };
                let task_id = &run.plan.tasks[*index].id;
                let Some(task) = run.dag.tasks.get(task_id) else {
                    continue;
                };
                if task.settings.produces.is_empty() {
                    continue;
                }
                let state = &run.record.state;
                if !on_grid(&run.dag, state.interval) {
                    eprintln!(
                        "{} {}: `{task_id}` succeeded on an interval off the DAG's schedule; what it produces is not recorded as materialized",
                        state.dag_id, state.run_id
                    );
                    continue;
                }
                for asset in &task.settings.produces {
                    written.push(Written {
                        record: MaterializationRecord {
                            asset: asset.clone(),
                            interval_start: state.interval.start,
                            interval_end: state.interval.end,
                            seq: 0,
                            dag: state.dag_id.clone(),
                            run_id: state.run_id.clone(),
                            task: task_id.clone(),
                            try_number: *try_number,
                            at: now,
                            dag_version: run.record.dag_version.clone(),
                        },
                        producer: std::sync::Arc::clone(&run.dag),
                        by_backfill: state.kind == RunKind::Backfill,
                    });
                }
            }
        }
        for Written {
            record,
            producer,
            by_backfill,
        } in written
        {
            let record = self.assets.record(&self.store, record)?;
            self.metrics.inc(
                "sluice_asset_materializations_total",
                &[("asset", &record.asset)],
            );
            self.after_materialized(&record, &producer, by_backfill, now)?;
        }
        Ok(())
    }

    /// Decides the inputs of a run in memory (see [`decide`]).
    pub(super) fn inputs_verdict(
        &mut self,
        key: &super::run_book::RunKey,
        now: DateTime<Utc>,
    ) -> Result<GateVerdict, EngineError> {
        let Some(run) = self.runs.get_mut(key) else {
            return Ok(GateVerdict::Open);
        };
        if self.config.ignore_gates || !waits_for_inputs(run) {
            return Ok(GateVerdict::Open);
        }
        if run
            .record
            .inputs
            .as_ref()
            .is_none_or(|i| i.status == InputsStatus::Waiting)
        {
            // Each look at what is missing: once per creation and per wake-up, never a poll.
            self.metrics
                .inc("sluice_asset_readiness_checks_total", &[("dag", &key.0)]);
        }
        let catalog = self.registry.catalog();
        let (verdict, became_ready) = decide(run, &self.store, &self.assets, &catalog, now)?;
        if became_ready {
            // It reads the latest of everything now.
            self.assets.clear_stale(key);
            if let Some(inputs) = &run.record.inputs {
                let waited = now - run.record.state.interval.end;
                self.metrics.observe(
                    "sluice_asset_input_wait_seconds",
                    &[("dag", &key.0)],
                    super::observe::seconds(waited.max(chrono::TimeDelta::zero())),
                );
                if self.config.verbose {
                    tracing::info!(dag = %key.0, run = %run.record.state.run_id, "{}", inputs.describe());
                }
            }
        }
        Ok(verdict)
    }
}
