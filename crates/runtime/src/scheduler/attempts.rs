//! The attempt book: attempt records and task outputs waiting for the group commit, and the
//! remote attempts found running at start-up, started again (so adopted by their executor)
//! after the first flush.

use chrono::{DateTime, Utc};

use super::engine::Dispatch;
use sluice_store::{AttemptRecord, Writes};

#[derive(Default)]
pub(super) struct AttemptBook {
    records: Vec<(String, DateTime<Utc>, AttemptRecord)>,
    outputs: Vec<(String, DateTime<Utc>, String, serde_json::Value)>,
    adopted: Vec<Dispatch>,
}

impl AttemptBook {
    /// An attempt record to write with the iteration.
    pub fn record(&mut self, dag: String, logical_date: DateTime<Utc>, record: AttemptRecord) {
        self.records.push((dag, logical_date, record));
    }

    /// A task's output to write with the iteration.
    pub fn output(
        &mut self,
        dag: String,
        logical_date: DateTime<Utc>,
        task: String,
        output: serde_json::Value,
    ) {
        self.outputs.push((dag, logical_date, task, output));
    }

    /// A remote attempt to start again after the first flush.
    pub fn adopt(&mut self, dispatch: Dispatch) {
        self.adopted.push(dispatch);
    }

    pub fn adopted(&self) -> usize {
        self.adopted.len()
    }

    pub fn take_adopted(&mut self) -> Vec<Dispatch> {
        std::mem::take(&mut self.adopted)
    }

    /// Adds what waits to the group commit; whether any attempt record was among it (outputs
    /// always come with an attempt's end).
    pub fn write_into(&mut self, writes: &mut Writes) -> bool {
        let wrote = !self.records.is_empty();
        for (dag, logical, attempt) in self.records.drain(..) {
            writes.put_attempt(&dag, logical, &attempt);
        }
        for (dag, logical, task, output) in self.outputs.drain(..) {
            writes.put_output(&dag, logical, &task, &output);
        }
        wrote
    }
}
