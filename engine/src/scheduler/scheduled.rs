//! Scheduled runs: created when an interval closes, in order, once each.

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError, Mode};
use crate::core::RunKind;
use crate::core::intervals::due_intervals;

/// Most runs created for one DAG per iteration: a long catchup fills in slices, keeping
/// iterations short.
const CREATE_PER_ITERATION: usize = 64;

impl Engine {
    pub(super) fn create_scheduled_runs(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.config.mode != Mode::Scheduler {
            return Ok(());
        }
        let ids: Vec<String> = self.dags.keys().cloned().collect();
        for id in ids {
            let Some(entry) = self.dags.get(&id) else {
                continue;
            };
            if entry.record.paused {
                continue;
            }
            let due = due_intervals(
                &entry.dag,
                entry.next_start(self.config.not_before),
                now,
                CREATE_PER_ITERATION,
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
