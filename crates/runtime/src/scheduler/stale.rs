//! Reprocessing propagates: when an interval of an asset is materialized again, every
//! consumer interval that read an older version is marked stale (durably, in the same
//! commit as the rewrite) and, by the consumer's `on_upstream_change`, run again once its
//! inputs settle: no producer run or backfill still about to write one of them, so a
//! four-window repair reruns the hour once. Reruns per interval are bounded by
//! `max_reruns`, counted on the consumer's run record and never reset by a success.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::assets::{IntervalKey, Reads};
use super::engine::{Engine, EngineError};
use sluice_model::schedule::DataInterval;
use sluice_model::spec::assets::MAX_UPSTREAM_INTERVALS;
use sluice_model::spec::{Dag, UpstreamChange};
use sluice_store::{MaterializationRecord, StaleCause};

impl Engine {
    /// Wakes the consumer runs that read the interval just materialized, and marks stale
    /// those that read an older version of it.
    pub(super) fn after_materialized(
        &mut self,
        written: &MaterializationRecord,
        producer: &Dag,
        by_backfill: bool,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let catalog = self.registry.catalog();
        let Some(upstream) = producer.grid() else {
            return Ok(());
        };
        let interval = DataInterval {
            start: written.interval_start,
            end: written.interval_end,
        };
        for consumer in catalog.consumers(&written.asset) {
            let (Some(grid), Some(consumes)) =
                (consumer.grid(), consumer.consumes.get(&written.asset))
            else {
                continue;
            };
            let readers =
                consumes
                    .mapping()
                    .consumers_of(grid, upstream, interval, MAX_UPSTREAM_INTERVALS);
            for reader in readers {
                let key: IntervalKey = (consumer.dag.clone(), reader.start);
                let read_older = match self.runs.get_mut(&key) {
                    Some(run) => {
                        run.dirty = true;
                        run.record
                            .inputs
                            .as_ref()
                            .is_some_and(|i| i.read_before(written.seq))
                    }
                    None => match self.store.run(&key.0, key.1)? {
                        // A run that never waited for inputs (a manual run, a run from before
                        // the DAG declared `consumes`) recorded nothing it read: not tracked.
                        Some(record) => record
                            .inputs
                            .as_ref()
                            .is_some_and(|i| i.read_before(written.seq)),
                        None => {
                            if by_backfill {
                                self.run_consumer_of_backfill(consumer, reader, now)?;
                            }
                            false
                        }
                    },
                };
                if read_older {
                    self.assets.mark_stale(
                        key,
                        reader.end,
                        consumes.on_upstream_change == UpstreamChange::Rerun,
                        StaleCause {
                            asset: written.asset.clone(),
                            interval_start: written.interval_start,
                            seq: written.seq,
                            dag: written.dag.clone(),
                            run_id: written.run_id.clone(),
                            at: written.at,
                        },
                        now,
                    );
                }
            }
        }
        Ok(())
    }

    /// A backfill wrote an input of a consumer interval that never ran: once all its inputs
    /// are there, it runs (a backfill run of the consumer), if the consumer is one this
    /// engine runs, not paused, and the interval is one it covers and its clock has passed
    /// (later ones are the clock's).
    fn run_consumer_of_backfill(
        &mut self,
        consumer: &Arc<Dag>,
        interval: DataInterval,
        now: DateTime<Utc>,
    ) -> Result<(), EngineError> {
        let Some(entry) = self.registry.get(&consumer.dag) else {
            return Ok(());
        };
        let within = consumer.start.is_some_and(|s| interval.start >= s)
            && consumer.end.is_none_or(|e| interval.end <= e);
        let clock_passed = self.config.mode != super::Mode::Scheduler
            || entry
                .record
                .next_start
                .is_some_and(|next| interval.start < next);
        if entry.record.paused || !within || !clock_passed {
            return Ok(());
        }
        let compiled = entry.version();
        let catalog = self.registry.catalog();
        if !super::inputs::all_materialized(
            consumer,
            interval,
            &self.store,
            &self.assets,
            &catalog,
        )? {
            return Ok(());
        }
        if self.create_run(
            compiled,
            sluice_core::RunKind::Backfill,
            interval,
            serde_json::Value::Null,
            now,
        )? {
            self.log_run(
                &consumer.dag,
                &sluice_core::RunKind::Backfill.run_id(interval.start),
                format!(
                    "{}: every input of {} written by the backfill: runs",
                    consumer.dag,
                    interval.start.to_rfc3339()
                ),
            );
        }
        Ok(())
    }

    /// Reruns the stale intervals whose policy is `rerun`, whose DAG this process runs,
    /// whose inputs settled and whose reruns are not used up.
    pub(super) fn rerun_stale(&mut self) -> Result<(), EngineError> {
        if !std::mem::take(&mut self.assets.recheck) {
            return Ok(());
        }
        let candidates: Vec<IntervalKey> = self
            .assets
            .stale()
            .iter()
            .filter(|(_, r)| r.rerun && r.held.is_none())
            .map(|(k, _)| k.clone())
            .collect();
        for key in candidates {
            // Runs in memory are looked at again when they end.
            if self.runs.contains_key(&key) {
                continue;
            }
            let Some(entry) = self.registry.get(&key.0) else {
                continue;
            };
            if entry.record.paused {
                continue;
            }
            let dag = Arc::clone(&entry.dag);
            let Some(stale) = self.assets.stale_of(&key).cloned() else {
                continue;
            };
            let Some(record) = self.store.run(&key.0, key.1)? else {
                // Compacted away: nothing to rerun, nothing to show it by.
                self.assets.clear_stale(&key);
                continue;
            };
            let most = stale
                .causes
                .iter()
                .filter_map(|c| dag.consumes.get(&c.asset))
                .map(|c| c.max_reruns)
                .min()
                .unwrap_or(sluice_model::spec::model::defaults::MAX_UPSTREAM_RERUNS);
            let done = record.inputs.as_ref().map_or(0, |i| i.upstream_reruns);
            let run_id = record.state.run_id.clone();
            if done >= most {
                self.assets.hold(
                    &key,
                    format!(
                        "rewritten again after {done} rerun(s) (max_reruns {most}): `sluice clear {} {run_id}` runs it",
                        key.0
                    ),
                );
                continue;
            }
            if !self.inputs_settled(&dag, record.state.interval) {
                continue;
            }
            let reason = format!(
                "upstream changed: {}; rerun {} of at most {most}",
                stale.describe(),
                done + 1
            );
            match self.clear(&key.0, &run_id, &[], false, false) {
                Ok(_) => {
                    if let Some(run) = self.runs.get_mut(&key) {
                        if let Some(inputs) = run.record.inputs.as_mut() {
                            inputs.upstream_reruns = done + 1;
                        }
                        run.record.state.reprocessing = true;
                        run.reason = Some(reason.clone());
                        run.record_touched = true;
                    }
                    self.log_run(&key.0, &run_id, format!("{} {run_id}: {reason}", key.0));
                }
                Err(e) => eprintln!(
                    "{} {run_id}: cannot rerun for a rewritten input: {e}",
                    key.0
                ),
            }
        }
        Ok(())
    }

    /// The consumers a backfill of `dag` runs with it (the chain): each with its runs in
    /// memory and its stale intervals still to rerun, for one progress display.
    pub fn downstream_progress(&self, dag: &str) -> Vec<(String, usize, usize)> {
        let mut out: Vec<(String, usize, usize)> = self
            .registry
            .entries()
            .filter(|e| e.dag.dag != dag && !e.dag.consumes.is_empty())
            .map(|e| (e.dag.dag.clone(), 0, 0))
            .collect();
        for (name, running, to_rerun) in &mut out {
            *running = self.runs.unfinished_of(name);
            *to_rerun = self
                .assets
                .stale()
                .iter()
                .filter(|((d, _), r)| d == name && r.rerun && r.held.is_none())
                .count();
        }
        out.sort();
        out
    }

    /// Whether nothing is about to write an interval the consumer interval reads: no
    /// unfinished run of a producer for it, no running backfill of a producer still to
    /// create it.
    fn inputs_settled(&self, dag: &Dag, interval: DataInterval) -> bool {
        let catalog = self.registry.catalog();
        for (asset, reads) in catalog.reads(dag, interval) {
            let Reads::Intervals(needed) = reads else {
                continue;
            };
            for producer in catalog.producers(asset) {
                let backfill = self
                    .backfills
                    .get(&producer.dag)
                    .filter(|_| self.backfills.is_running(&producer.dag));
                for j in &needed {
                    let key = (producer.dag.clone(), j.start);
                    // Running, or done but about to run again for late data.
                    if self.runs.get(&key).is_some_and(|r| {
                        !r.record.state.status.is_finished()
                            || r.record.gate.as_ref().is_some_and(|g| g.late_pending)
                    }) || self.gates.reprocess_pending(&key.0, key.1)
                    {
                        return false;
                    }
                    if let Some(b) = backfill
                        && b.next_start.is_some_and(|next| next <= j.start)
                        && j.start < b.to
                    {
                        return false;
                    }
                }
            }
        }
        true
    }
}
