//! The gate tracker: what the monitor is told to watch, the latest view of each watched
//! source, and each waiting run's gate decided by `sluice_core::gate` and recorded on the
//! run; runs that succeeded with late data pending wait here to be reprocessed.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::engine::Engine;
use super::run_book::ActiveRun;
use crate::gate::kafka::observer::{Look, SourceMemory};
use crate::gate::kafka::{GateMonitor, GateSource, ViewSink, Watch, Watchlist};
use crate::metrics::Metrics;
use sluice_core::gate::{GateDecision, GateRule, TopicView};
use sluice_model::spec::Gate;
use sluice_store::{GateRecord, GateStatus, Store};

/// What the loop does with a run's tasks this evaluation.
pub(super) enum GateVerdict {
    /// No gate, or it opened: tasks may be scheduled.
    Open,
    /// Closed: ready tasks are deferred.
    Closed,
    /// Timed out: the run fails with the reason.
    TimedOut(String),
}

/// The rule of the gate's primary group (its own, or the first required of `groups`).
pub(super) fn rule_of(gate: &sluice_model::spec::KafkaGate) -> GateRule {
    let (_, group) = gate.primary();
    GateRule {
        lateness: gate.watermark_lateness.as_chrono(),
        max_lag: group.max_lag,
        max_lag_time: group.max_lag_time.map(|t| t.as_chrono()),
        timeout: gate.timeout.map(|t| t.as_chrono()),
        idle_after: gate.idle_partition_timeout.map(|t| t.as_chrono()),
    }
}

pub(super) struct GateTracker {
    /// Watches the topics of readiness gates (a thread, started for the first gate).
    monitor: GateMonitor,
    /// The latest view of each watched topic and group.
    views: HashMap<GateSource, Result<TopicView, String>>,
    /// Every gate counts as open (`dags test --ignore-gate`).
    ignore: bool,
    /// Runs that succeeded with late data pending: cleared next iteration.
    late_reprocess: Vec<(String, DateTime<Utc>)>,
    /// Sources whose arrival reports cannot be read, with why (logged when it changes).
    arrivals_errors: HashMap<GateSource, String>,
}

impl GateTracker {
    pub fn new(
        sink: Arc<dyn ViewSink>,
        connections: crate::connections::Connections,
        ignore: bool,
    ) -> GateTracker {
        GateTracker {
            monitor: GateMonitor::new(sink, connections),
            views: HashMap::new(),
            ignore,
            late_reprocess: Vec::new(),
            arrivals_errors: HashMap::new(),
        }
    }

    /// Tells the monitor what to watch: every gate given, each at the shortest poll interval
    /// asked for it.
    pub fn watch<'a>(&mut self, gates: impl Iterator<Item = &'a Gate>, store: &Store) {
        if self.ignore {
            return;
        }
        let mut list = Watchlist::new();
        for gate in gates {
            let every = gate.kafka.poll_interval.as_std();
            let others = GateSource::others_of(&gate.kafka)
                .into_iter()
                .map(|(s, _)| s);
            for source in std::iter::once(GateSource::of(&gate.kafka)).chain(others) {
                if let Some(watch) = list.get_mut(&source) {
                    watch.every = watch.every.min(every);
                    continue;
                }
                let remembered = if source.lag_only {
                    SourceMemory::default()
                } else {
                    recall(store, &source)
                };
                list.insert(source, Watch { every, remembered });
            }
        }
        self.monitor.watch(list);
    }

    /// Keeps a source's view (logged when the topic's availability changes).
    pub fn keep_view(&mut self, source: GateSource, view: Result<TopicView, String>) {
        let was_ok = self.views.get(&source).map(|v| v.is_ok());
        match (&view, was_ok) {
            (Err(e), Some(true) | None) => {
                eprintln!("gate {source}: cannot see the topic ({e}); gates on it stay closed")
            }
            (Ok(_), Some(false)) => eprintln!("gate {source}: the topic is visible again"),
            _ => {}
        }
        self.views.insert(source, view);
    }

    /// Logs when a source's arrival reports become unreadable, or readable again.
    pub fn keep_arrivals_error(&mut self, source: &GateSource, error: Option<String>) {
        match error {
            Some(e) => {
                if self.arrivals_errors.get(source) != Some(&e) {
                    eprintln!("gate {source}: late data is not counted: {e}");
                    self.arrivals_errors.insert(source.clone(), e);
                }
            }
            None => {
                if self.arrivals_errors.remove(source).is_some() {
                    eprintln!("gate {source}: arrival reports readable again");
                }
            }
        }
    }

    /// A run that succeeded with late data pending, to clear next iteration.
    pub fn reprocess_later(&mut self, dag: String, logical_date: DateTime<Utc>) {
        self.late_reprocess.push((dag, logical_date));
    }

    /// Whether the interval waits to be reprocessed for late data.
    pub fn reprocess_pending(&self, dag: &str, logical_date: DateTime<Utc>) -> bool {
        self.late_reprocess
            .iter()
            .any(|(d, t)| d == dag && *t == logical_date)
    }

    pub fn take_reprocess(&mut self) -> Vec<(String, DateTime<Utc>)> {
        std::mem::take(&mut self.late_reprocess)
    }

    /// Decides a run's gate now and records the decision on the run; the line to announce
    /// it with, when it is news (the first decision, and every change to open or timed out).
    pub fn verdict(
        &self,
        run: &mut ActiveRun,
        now: DateTime<Utc>,
        metrics: &Metrics,
    ) -> (GateVerdict, Option<String>) {
        if self.ignore {
            return (GateVerdict::Open, None);
        }
        let Some(gate) = run.dag.gate.clone() else {
            return (GateVerdict::Open, None);
        };
        let cleared_after_timeout = run.record.gate.as_ref().is_some_and(|g| {
            g.status == GateStatus::TimedOut && !run.record.state.status.is_finished()
        });
        match &run.record.gate {
            Some(g) if g.status == GateStatus::Open => return (GateVerdict::Open, None),
            Some(g) if g.status == GateStatus::TimedOut && !cleared_after_timeout => {
                return (
                    GateVerdict::TimedOut(g.reason.clone().unwrap_or_default()),
                    None,
                );
            }
            _ => {}
        }
        // A run cleared after its gate timed out waits again, with a fresh timeout.
        let waiting_since = match &run.record.gate {
            Some(g) if !cleared_after_timeout => g.waiting_since,
            _ => now,
        };
        let view_of = |source: &GateSource| match self.views.get(source) {
            Some(Ok(view)) => Ok(view),
            Some(Err(e)) => Err(e.as_str()),
            None => Err("not looked at yet"),
        };
        let others: Vec<_> = GateSource::others_of(&gate.kafka)
            .into_iter()
            .map(|(source, check)| (check, view_of(&source)))
            .collect();
        let decision = sluice_core::gate::decide(
            &rule_of(&gate.kafka),
            run.record.state.interval.end,
            waiting_since,
            view_of(&GateSource::of(&gate.kafka)),
            &others,
            now,
        );
        let (status, reason, figures, verdict) = match decision {
            GateDecision::Open(figures) => {
                (GateStatus::Open, None, Some(figures), GateVerdict::Open)
            }
            GateDecision::Closed { reason, figures } => (
                GateStatus::Waiting,
                Some(reason),
                figures,
                GateVerdict::Closed,
            ),
            GateDecision::TimedOut { reason, figures } => (
                GateStatus::TimedOut,
                Some(reason.clone()),
                figures,
                GateVerdict::TimedOut(reason),
            ),
        };
        if let Some(f) = &figures {
            let dag = [("dag", run.record.state.dag_id.as_str())];
            metrics.set("sluice_gate_consumer_lag_messages", &dag, f.lag as f64);
            if let Some(watermark) = f.watermark {
                metrics.set(
                    "sluice_gate_watermark_delay_seconds",
                    &dag,
                    super::observe::seconds(f.observed_at - watermark),
                );
            }
        }
        let late_events = run.record.gate.as_ref().map_or(0, |g| g.late_events);
        let late_pending = run.record.gate.as_ref().is_some_and(|g| g.late_pending);
        let late_reprocessed = run.record.gate.as_ref().map_or(0, |g| g.late_reprocessed);
        let record = GateRecord {
            status,
            waiting_since,
            decided_at: now,
            reason,
            figures,
            late_events,
            late_pending,
            late_reprocessed,
        };
        let changed = run.record.gate.as_ref().is_none_or(|g| {
            g.status != record.status || g.reason != record.reason || g.figures != record.figures
        });
        if !changed {
            return (verdict, None);
        }
        // Announced: the first decision and every change to open or timed out (not each
        // new look while it waits).
        let announce = status != GateStatus::Waiting || run.record.gate.is_none();
        let message = announce.then(|| {
            let what = match status {
                GateStatus::Open => "gate open",
                GateStatus::Waiting => "waiting on its gate",
                GateStatus::TimedOut => "gate timed out",
            };
            let reason = record.reason.as_ref().map(|r| format!(": {r}"));
            format!(
                "{} {} {what}{}",
                run.record.state.dag_id,
                run.record.state.run_id,
                reason.unwrap_or_default()
            )
        });
        run.record.gate = Some(record);
        run.record_touched = true;
        (verdict, message)
    }
}

/// What the state folder remembers of a watched source (nothing when unreadable: the first
/// look then starts afresh).
fn recall(store: &Store, source: &GateSource) -> SourceMemory {
    store
        .gate_memory()
        .get(&source.key())
        .ok()
        .flatten()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default()
}

impl Engine {
    /// Runs of a DAG whose tasks wait on its gate (for progress displays).
    pub fn waiting_on_gate(&self, dag: &str) -> usize {
        self.runs.waiting_on_gate(dag)
    }

    /// Tells the monitor what to watch: every gate of a loaded DAG or of an active run's
    /// DAG version.
    pub(super) fn refresh_gate_watch(&mut self) {
        let gates = self
            .registry
            .entries()
            .filter_map(|e| e.dag.gate.as_ref())
            .chain(self.runs.values().filter_map(|r| r.dag.gate.as_ref()));
        self.gates.watch(gates, &self.store);
    }

    /// Keeps what the monitor learnt of a source; durable with the iteration's flush.
    pub(super) fn remember_gate_source(&mut self, source: &GateSource, memory: &SourceMemory) {
        let Ok(bytes) = serde_json::to_vec(memory) else {
            return;
        };
        match self.store.gate_memory().put(&source.key(), &bytes) {
            Ok(()) => self.side_writes = true,
            Err(e) => eprintln!("gate {source}: cannot keep what was seen of the topic: {e}"),
        }
    }

    /// A look from the monitor: its arrivals are checked for late data, its view kept, and
    /// every run waiting on it is evaluated again.
    pub(super) fn apply_gate_view(&mut self, source: GateSource, look: Result<Look, String>) {
        let view = match look {
            Ok(look) => {
                self.gates
                    .keep_arrivals_error(&source, look.arrivals_error.clone());
                if !look.arrivals.is_empty()
                    && let Err(e) = self.count_late_data(&source, &look.arrivals)
                {
                    eprintln!("gate {source}: counting late data failed: {e}");
                }
                Ok(look.view)
            }
            Err(e) => Err(e),
        };
        self.gates.keep_view(source.clone(), view);
        for run in self.runs.values_mut() {
            let waits = run
                .record
                .gate
                .as_ref()
                .is_none_or(|g| g.status != GateStatus::Open);
            if waits
                && run
                    .dag
                    .gate
                    .as_ref()
                    .is_some_and(|g| source.serves(&g.kafka))
            {
                run.dirty = true;
            }
        }
    }

    /// Announces a gate decision that is news.
    pub(super) fn announce_gate(&self, message: Option<String>) {
        match message {
            // `dags test` prints no transitions, but a wait must not be silent.
            Some(m) if matches!(self.config.mode, super::Mode::Test { .. }) => eprintln!("{m}"),
            Some(m) => self.log(m),
            None => {}
        }
    }
}
