//! SLA monitoring in the loop: for each scheduled run of a DAG with an `sla`, ask the core
//! which events are due now (`core::sla`), mark them on the run, write them in the
//! iteration's group commit, count and log them, and, once durable, hand them to the
//! notifier. The loop's timer wakes it at the next threshold.

use chrono::{DateTime, Utc};

use super::engine::Engine;
use sluice_core::RunKind;
use sluice_core::sla::{RunProgress, SlaPolicy};
use sluice_store::{Delivery, SlaEventRecord};

impl Engine {
    fn sla_progress(run: &super::engine::ActiveRun, now: DateTime<Utc>) -> RunProgress {
        let state = &run.record.state;
        RunProgress {
            interval_end: state.interval.end,
            status: state.status,
            // A run that succeeded this iteration gets its end time when persisted: now.
            succeeded_at: Some(run.record.ended_at.unwrap_or(now)),
        }
    }

    /// Raises the SLA events due now; they are written with this iteration.
    pub(super) fn check_slas(&mut self, now: DateTime<Utc>) {
        let targets = &self.config.webhooks;
        let mut raised = Vec::new();
        for run in self.runs.values_mut() {
            let policy: SlaPolicy = run.plan.sla;
            if !policy.is_set() || run.record.state.kind != RunKind::Scheduled {
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
                            target: target.name.clone(),
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
            self.metrics.inc(
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
        self.sla_raised.extend(raised);
    }

    /// The next instant an SLA threshold of a run in memory passes, for the timer.
    pub(super) fn next_sla_due(&self) -> Option<DateTime<Utc>> {
        self.runs
            .values()
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

    /// After the flush: the raised events go to the notifier.
    pub(super) fn send_sla_events(&mut self, events: Vec<SlaEventRecord>) {
        if let Some(notifier) = &self.notifier {
            for event in events {
                notifier.send(event);
            }
        }
    }
}
