//! What the loop tells the metrics registry: counts at its hook points, and once a second
//! a recount of the gauges from the runs in memory (cheap, and never more often however
//! busy the loop is).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::engine::{Engine, is_remote};
use super::run_book::ActiveRun;
use sluice_core::{RunKind, RunStatus, TaskState};

const GAUGE_REFRESH: Duration = Duration::from_secs(1);

impl Engine {
    /// A run left memory finished: its duration, and for a scheduled success the data's
    /// processing latency (interval end → success).
    pub(super) fn observe_finished(&self, run: &ActiveRun) {
        let record = &run.record;
        let dag = record.state.dag_id.as_str();
        let status = record.state.status;
        self.metrics.inc(
            "sluice_runs_finished_total",
            &[("dag", dag), ("state", status.name())],
        );
        if let (Some(started), Some(ended)) = (record.started_at, record.ended_at) {
            self.metrics.observe(
                "sluice_run_duration_seconds",
                &[("dag", dag)],
                seconds(ended - started),
            );
        }
        if status == RunStatus::Success
            && record.state.kind == RunKind::Scheduled
            && let Some(ended) = record.ended_at
        {
            self.metrics.observe(
                "sluice_processing_latency_seconds",
                &[("dag", dag)],
                seconds(ended - record.state.interval.end),
            );
        }
    }

    /// Recounts task instances by state, queue depth, active runs, pool use, EMR steps in
    /// flight and gate-deferred runs, at most once a second.
    pub(super) fn refresh_gauges(&mut self) {
        if self
            .gauges_refreshed
            .is_some_and(|at| at.elapsed() < GAUGE_REFRESH)
        {
            return;
        }
        self.gauges_refreshed = Some(Instant::now());
        self.refresh_ha_gauges();
        let mut states: BTreeMap<&'static str, f64> = BTreeMap::new();
        let mut active: BTreeMap<String, f64> = BTreeMap::new();
        let mut waiting: BTreeMap<String, f64> = BTreeMap::new();
        let mut emr_steps = 0.0;
        let mut input_waiting: BTreeMap<String, f64> = BTreeMap::new();
        for run in self.runs.values() {
            if run
                .record
                .inputs
                .as_ref()
                .is_some_and(|i| i.status == sluice_store::InputsStatus::Waiting)
            {
                *input_waiting
                    .entry(run.record.state.dag_id.clone())
                    .or_default() += 1.0;
            }
            *active.entry(run.record.state.dag_id.clone()).or_default() += 1.0;
            if run
                .record
                .gate
                .as_ref()
                .is_some_and(|g| g.status == sluice_store::GateStatus::Waiting)
            {
                *waiting.entry(run.record.state.dag_id.clone()).or_default() += 1.0;
            }
            for (index, task) in run.record.state.tasks.iter().enumerate() {
                *states.entry(task.state.name()).or_default() += 1.0;
                if task.state == TaskState::Running && is_remote(&self.executors, run, index) {
                    emr_steps += 1.0;
                }
            }
        }
        let by = |label: &'static str, map: BTreeMap<String, f64>| -> Vec<_> {
            map.into_iter()
                .map(|(k, v)| (vec![(label, k)], v))
                .collect()
        };
        self.metrics.set(
            "sluice_executor_queue_depth",
            &[],
            states.get("scheduled").copied().unwrap_or(0.0),
        );
        self.metrics.reset_gauge(
            "sluice_task_instances",
            &states
                .into_iter()
                .map(|(state, n)| (vec![("state", state.to_owned())], n))
                .collect::<Vec<_>>(),
        );
        self.metrics
            .reset_gauge("sluice_active_runs", &by("dag", active));
        self.metrics
            .reset_gauge("sluice_gate_waiting_runs", &by("dag", waiting));
        self.metrics
            .set("sluice_emr_steps_in_flight", &[], emr_steps);
        self.metrics
            .reset_gauge("sluice_asset_input_waiting_runs", &by("dag", input_waiting));
        let mut stale: BTreeMap<String, f64> = BTreeMap::new();
        for (dag, _) in self.assets.stale().keys() {
            *stale.entry(dag.clone()).or_default() += 1.0;
        }
        self.metrics
            .reset_gauge("sluice_asset_stale_intervals", &by("dag", stale));
        for (pool, slots) in &self.config.pools {
            self.metrics.set(
                "sluice_pool_slots_used",
                &[("pool", pool)],
                self.admission.pool_used(pool) as f64,
            );
            self.metrics
                .set("sluice_pool_slots", &[("pool", pool)], *slots as f64);
        }
    }
}

pub(super) fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.num_milliseconds() as f64 / 1000.0
}

impl Engine {
    /// The lease and shipping of an HA term (nothing without `[ha]`).
    fn refresh_ha_gauges(&self) {
        let Some(lead) = &self.config.leadership else {
            return;
        };
        let m = &self.metrics;
        m.set("sluice_ha_active", &[], 1.0);
        m.set("sluice_ha_lease_revision", &[], lead.fence.token() as f64);
        m.set(
            "sluice_ha_lease_remaining_seconds",
            &[],
            lead.fence.remaining().as_secs_f64(),
        );
        m.set(
            "sluice_ha_takeover_seconds",
            &[],
            lead.takeover.as_secs_f64(),
        );
        if let Some(shipping) = &lead.shipping {
            let status = shipping.get();
            m.set(
                "sluice_ha_ship_lag_cuts",
                &[],
                status.cut_closed.saturating_sub(status.cut_shipped) as f64,
            );
            if let Some(at) = status.last_shipped_at {
                let age = (chrono::Utc::now() - at).num_milliseconds().max(0) as f64 / 1000.0;
                m.set("sluice_ha_ship_age_seconds", &[], age);
            }
            m.set("sluice_ha_shipped_bytes_total", &[], status.bytes as f64);
        }
    }
}
