//! SLA monitoring in the loop: for each scheduled run of a DAG with an `sla`, ask the core
//! which events are due now (`core::sla`), mark them on the run, write them in the
//! iteration's group commit, count and log them, and, once durable, hand them to the
//! notifier. The loop's timer wakes it at the next threshold.

use chrono::{DateTime, Utc};

use super::run_book::{ActiveRun, RunBook};
use crate::metrics::Metrics;
use crate::notify::Notifier;
use sluice_core::RunKind;
use sluice_core::sla::{RunProgress, SlaPolicy};
use sluice_store::{Delivery, SlaEventRecord, Writes};

/// The SLA watch: raises each run's warnings and breaches once, keeps them until they are
/// durable, then hands them to the notifier.
pub(super) struct SlaWatch {
    /// The webhooks every event is to be delivered to, by name.
    targets: Vec<String>,
    /// Raised this iteration: written with it, then sent.
    raised: Vec<SlaEventRecord>,
    notifier: Option<Notifier>,
}

impl SlaWatch {
    pub fn new(targets: Vec<String>, notifier: Option<Notifier>) -> SlaWatch {
        SlaWatch {
            targets,
            raised: Vec::new(),
            notifier,
        }
    }

    fn sla_progress(run: &ActiveRun, now: DateTime<Utc>) -> RunProgress {
        let state = &run.record.state;
        RunProgress {
            interval_end: state.interval.end,
            status: state.status,
            // A run that succeeded this iteration gets its end time when persisted: now.
            succeeded_at: Some(run.record.ended_at.unwrap_or(now)),
        }
    }

    /// Raises the SLA events due now; they are written with this iteration.
    pub fn check(&mut self, runs: &mut RunBook, now: DateTime<Utc>, metrics: &Metrics) {
        let targets = &self.targets;
        let mut raised = Vec::new();
        for run in runs.values_mut() {
            let policy: SlaPolicy = run.plan.sla;
            // A rerun for a rewritten input reprocesses history: its SLA was met or missed
            // the first time.
            if !policy.is_set()
                || run.record.state.kind != RunKind::Scheduled
                || run.record.state.reprocessing
            {
                continue;
            }
            let progress = Self::sla_progress(run, now);
            let events = sluice_core::sla::due(&policy, &progress, &run.record.sla, now);
            if events.is_empty() {
                continue;
            }
            sluice_core::sla::mark(&mut run.record.sla, &events, now);
            run.record_touched = true;
            let state = &run.record.state;
            for event in events {
                raised.push(SlaEventRecord {
                    dag: state.dag_id.clone(),
                    run_id: state.run_id.clone(),
                    logical_date: state.logical_date,
                    interval_end: state.interval.end,
                    kind: event.kind,
                    due: event.due,
                    raised_at: now,
                    run_state: state.status.name().to_owned(),
                    reason: event.reason,
                    deliveries: targets
                        .iter()
                        .map(|target| Delivery {
                            target: target.clone(),
                            attempts: 0,
                            delivered_at: None,
                            last_error: None,
                            gave_up: false,
                        })
                        .collect(),
                });
            }
        }
        for event in &raised {
            metrics.inc(
                "sluice_sla_misses_total",
                &[("dag", &event.dag), ("kind", event.kind.name())],
            );
            // Logged whether or not the engine is verbose: an SLA event is never silent.
            tracing::warn!(
                dag = %event.dag,
                run = %event.run_id,
                sla = event.kind.name(),
                "{} {} SLA {}: {}",
                event.dag,
                event.run_id,
                event.kind.name(),
                event.reason
            );
        }
        self.raised.extend(raised);
    }

    /// The next instant an SLA threshold of a run in memory passes, for the timer.
    pub fn next_due(&self, runs: &RunBook) -> Option<DateTime<Utc>> {
        runs.values()
            .filter(|r| r.plan.sla.is_set() && r.record.state.kind == RunKind::Scheduled)
            .filter_map(|r| {
                sluice_core::sla::next_due(
                    &r.plan.sla,
                    &Self::sla_progress(r, Utc::now()),
                    &r.record.sla,
                )
            })
            .min()
    }

    /// Adds the raised events to the group commit; whether there were any.
    pub fn write_into(&self, writes: &mut Writes) -> bool {
        for event in &self.raised {
            writes.put_sla_event(event);
        }
        !self.raised.is_empty()
    }

    /// After the flush: the raised events go to the notifier.
    pub fn send_raised(&mut self) {
        let events = std::mem::take(&mut self.raised);
        if let Some(notifier) = &self.notifier {
            for event in events {
                notifier.send(event);
            }
        }
    }
}
