//! Scheduled runs: created when an interval closes, in order, once each.

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError, Mode};
use sluice_core::RunKind;
use sluice_core::intervals::due_intervals;

/// Most runs created for one DAG per iteration: a long catchup fills in slices, keeping
/// iterations short.
const CREATE_PER_ITERATION: usize = 64;

/// Queued runs a DAG may have waiting beyond its `max_active_runs`: a catchup of ten
/// thousand intervals creates its runs as earlier ones finish (back-pressure, as Airflow
/// stops creating runs at `max_active_runs`), so the scheduler's memory does not grow with
/// the length of the catchup. The cursor only advances past intervals that have a run.
pub const QUEUED_AHEAD: usize = 16;

impl Engine {
    pub(super) fn create_scheduled_runs(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.config.mode != Mode::Scheduler {
            return Ok(());
        }
        let mut queued: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
        for (key, run) in &self.runs {
            if run.record.state.status == sluice_core::RunStatus::Queued {
                *queued.entry(key.0.as_str()).or_insert(0) += 1;
            }
        }
        let room: Vec<(String, usize)> = self
            .dags
            .iter()
            .map(|(id, entry)| {
                let bound = entry.dag.max_active_runs as usize + QUEUED_AHEAD;
                let waiting = queued.get(id.as_str()).copied().unwrap_or(0);
                (
                    id.clone(),
                    bound.saturating_sub(waiting).min(CREATE_PER_ITERATION),
                )
            })
            .collect();
        for (id, room) in room {
            let Some(entry) = self.dags.get(&id) else {
                continue;
            };
            if entry.record.paused || room == 0 {
                continue;
            }
            let due = due_intervals(
                &entry.dag,
                entry.next_start(self.config.not_before),
                now,
                room,
            );
            let Some(last) = due.last().copied() else {
                continue;
            };
            let version = entry.version();
            for interval in due {
                self.create_run(
                    version.clone(),
                    RunKind::Scheduled,
                    interval,
                    serde_json::Value::Null,
                    now,
                )?;
            }
            if let Some(entry) = self.dags.get_mut(&id) {
                entry.record.next_start = Some(last.end);
                entry.record.updated_at = now;
                self.cursor_writes.push(id.clone());
            }
        }
        Ok(())
    }
}
