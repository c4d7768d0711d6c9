//! Late data: events that reach Kafka after their interval's gate opened. The monitor
//! reports what arrived since its previous look, per event-time second; each arrival is
//! attributed to the interval of every DAG gated on that topic. Counted on the run's gate
//! record; a DAG with `reprocess_late_data` gets the interval cleared and run again once its
//! run has succeeded (its tasks write intervals idempotently, so the rerun replaces).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError};
use super::run_book::RunKey;
use crate::gate::kafka::GateSource;
use sluice_core::RunStatus;
use sluice_model::schedule::DataInterval;
use sluice_store::GateStatus;

impl Engine {
    /// Attributes arrivals (event second → messages) to the intervals of the DAGs gated on
    /// `source`.
    pub(super) fn count_late_data(
        &mut self,
        source: &GateSource,
        arrivals: &BTreeMap<i64, u64>,
    ) -> Result<(), EngineError> {
        let gated: Vec<_> = self
            .registry
            .entries()
            .filter(|e| {
                e.dag
                    .gate
                    .as_ref()
                    .is_some_and(|g| GateSource::of(&g.kafka) == *source)
            })
            .map(|e| std::sync::Arc::clone(&e.dag))
            .collect();
        for dag in gated {
            let (Some(schedule), Some(gate)) = (&dag.schedule, &dag.gate) else {
                continue;
            };
            let tz = dag.timezone.tz();
            let mut per_interval: BTreeMap<DateTime<Utc>, u64> = BTreeMap::new();
            // Arrivals come sorted by time: most share the previous one's interval.
            let mut current: Option<DataInterval> = None;
            for (second, n) in arrivals {
                let Some(t) = DateTime::from_timestamp(*second, 0) else {
                    continue;
                };
                if !current.is_some_and(|i| i.start <= t && t < i.end) {
                    current = schedule.prev_fire(tz, t).and_then(|start| {
                        let end = schedule.next_fire(tz, start)?;
                        Some(DataInterval { start, end })
                    });
                }
                if let Some(i) = current {
                    *per_interval.entry(i.start).or_insert(0) += n;
                }
            }
            for (start, n) in per_interval {
                self.late_events((dag.dag.clone(), start), n, gate.kafka.reprocess_late_data)?;
            }
        }
        Ok(())
    }

    /// `n` events arrived for the interval of `key` after its gate opened (if it did).
    fn late_events(&mut self, key: RunKey, n: u64, reprocess: bool) -> Result<(), EngineError> {
        if let Some(run) = self.runs.get_mut(&key) {
            // Active: the run may have read its input before these arrived; rerun it
            // once it has succeeded.
            let Some(gate) = run.record.gate.as_mut() else {
                return Ok(());
            };
            if gate.status != GateStatus::Open {
                return Ok(());
            }
            gate.late_events += n;
            gate.late_pending |= reprocess;
            run.record_touched = true;
            return Ok(());
        }
        let Some(mut record) = self.store.run(&key.0, key.1)? else {
            return Ok(());
        };
        let Some(gate) = record.gate.as_mut() else {
            return Ok(());
        };
        if gate.status != GateStatus::Open {
            return Ok(());
        }
        gate.late_events += n;
        gate.late_pending |= reprocess;
        let pending = gate.late_pending;
        let mut writes = self.store.writes();
        writes.put_run(&record);
        self.store.apply(writes)?;
        if pending && record.state.status == RunStatus::Success {
            self.reprocess_late(&record.state.dag_id, record.state.logical_date);
        }
        Ok(())
    }

    /// A successful run with late events pending and `reprocess_late_data`: run it again,
    /// unless the interval was already run again `max_late_reprocessing` times (then the
    /// late events stay counted on the run for an operator, and nothing reruns).
    pub(super) fn reprocess_late(&mut self, dag: &str, logical_date: DateTime<Utc>) {
        let record = match self.store.run(dag, logical_date) {
            Ok(Some(record)) => record,
            Ok(None) => return,
            Err(e) => {
                eprintln!("{dag} {logical_date}: cannot read the run to reprocess late data: {e}");
                return;
            }
        };
        let run_id = record.state.run_id.clone();
        let done = record.gate.as_ref().map_or(0, |g| g.late_reprocessed);
        let most = self
            .registry
            .entries()
            .find(|e| e.dag.dag == dag)
            .and_then(|e| e.dag.gate.as_ref())
            .map_or(
                sluice_model::spec::model::defaults::MAX_LATE_REPROCESSING,
                |g| g.kafka.max_late_reprocessing,
            );
        if done >= most {
            let mut record = record;
            if let Some(gate) = record.gate.as_mut() {
                gate.late_pending = false;
            }
            let mut writes = self.store.writes();
            writes.put_run(&record);
            if let Err(e) = self.store.apply(writes) {
                eprintln!("{dag} {run_id}: cannot record the late data left: {e}");
            }
            eprintln!(
                "{dag} {run_id}: late events arrived, but the interval was already reprocessed {done} time(s) (max_late_reprocessing {most}): not again; `sluice clear {dag} {run_id}` reprocesses it"
            );
            return;
        }
        match self.clear(dag, &run_id, &[], false, false) {
            Ok(_) => {
                let late = self
                    .runs
                    .iter_mut()
                    .find(|(k, r)| k.0 == dag && r.record.state.run_id == run_id)
                    .and_then(|(_, r)| {
                        let gate = r.record.gate.as_mut()?;
                        gate.late_pending = false;
                        gate.late_reprocessed = done + 1;
                        r.record_touched = true;
                        Some(gate.late_events)
                    })
                    .unwrap_or_default();
                eprintln!(
                    "{dag} {run_id}: reprocessing ({} of at most {most}), {late} late event(s) arrived after its gate opened",
                    done + 1
                );
            }
            Err(e) => eprintln!("{dag} {run_id}: cannot reprocess for late data: {e}"),
        }
    }
}
