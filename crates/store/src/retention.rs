//! History retention: runs finished before a cutoff are compacted away — their task
//! instances, attempts, outputs and log files — and so are event-log batches older than
//! it. The interval ledger is kept whole: it is the proof that every interval was
//! processed (`sluice audit`), small (one entry per interval), and what history is for.
//! The newest run of every DAG is kept too (`depends_on_past` and the next catchup read it).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{EventRecord, Result, RunRecord, Store, decode, keys};

/// What one compaction removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub runs: usize,
    pub attempts: usize,
    pub outputs: usize,
    pub event_batches: usize,
    pub log_folders: usize,
}

impl Compacted {
    pub fn is_empty(&self) -> bool {
        *self == Compacted::default()
    }
}

impl std::fmt::Display for Compacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} run(s), {} attempt(s), {} output(s), {} log folder(s), {} event batch(es)",
            self.runs, self.attempts, self.outputs, self.log_folders, self.event_batches
        )
    }
}

impl Store {
    /// Removes the history that ended before `cutoff` (see the module's doc).
    pub fn compact(&self, cutoff: DateTime<Utc>) -> Result<Compacted> {
        let mut compacted = Compacted::default();
        let mut newest: HashMap<String, Vec<u8>> = HashMap::new();
        for key in self.runs.iter().keys() {
            let key = key?;
            if let Some((dag, _)) = keys::split_dag_time(&key) {
                newest.insert(dag, key.to_vec());
            }
        }
        let mut doomed = Vec::new();
        for entry in self.runs.iter() {
            let (key, value) = entry?;
            let Some((dag, _)) = keys::split_dag_time(&key) else {
                continue;
            };
            if newest.get(&dag).is_some_and(|k| k.as_slice() == &*key)
                || self.active.contains_key(&key)?
            {
                continue;
            }
            let run: RunRecord = decode("run", &value)?;
            let ended = run.ended_at.unwrap_or(run.created_at);
            if run.state.status.is_finished() && ended < cutoff {
                doomed.push((key.to_vec(), dag, run.state.run_id));
            }
        }
        for (key, dag, run_id) in doomed {
            // `dag \0 time \0 …`: the run's outputs and attempts.
            let mut children = key.clone();
            children.push(0);
            for attempt in self.attempts.scan_prefix(&children).keys() {
                self.attempts.remove(attempt?)?;
                compacted.attempts += 1;
            }
            for output in self.outputs.scan_prefix(&children).keys() {
                self.outputs.remove(output?)?;
                compacted.outputs += 1;
            }
            self.runs.remove(&key)?;
            compacted.runs += 1;
            let logs = self.root.join("logs").join(&dag).join(&run_id);
            if std::fs::remove_dir_all(&logs).is_ok() {
                compacted.log_folders += 1;
            }
        }
        // The event log is in time order: drop whole batches from the front.
        for entry in self.events.iter() {
            let (key, value) = entry?;
            let batch: Vec<EventRecord> = decode("events", &value)?;
            if batch.iter().any(|e| e.at >= cutoff) {
                break;
            }
            self.events.remove(key)?;
            compacted.event_batches += 1;
        }
        self.db.flush()?;
        Ok(compacted)
    }
}
