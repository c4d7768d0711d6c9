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
        let queued = self.runs.queued_per_dag();
        let room: Vec<(String, usize)> = self
            .registry
            .entries()
            .map(|entry| {
                let id = &entry.dag.dag;
                let bound = entry.dag.max_active_runs as usize + QUEUED_AHEAD;
                let waiting = queued.get(id.as_str()).copied().unwrap_or(0);
                (
                    id.clone(),
                    bound.saturating_sub(waiting).min(CREATE_PER_ITERATION),
                )
            })
            .collect();
        for (id, room) in room {
            let Some(entry) = self.registry.get(&id) else {
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
            self.registry.advance_cursor(&id, last.end, now);
        }
        Ok(())
    }
}
