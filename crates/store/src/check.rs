//! `sluice state check`: the store's invariants, each violation one line. Used after a
//! crash (the crash test), after a restore, and by operators.

use std::collections::HashMap;

use super::{AttemptRecord, LedgerEntry, Result, RunRecord, Store, decode, keys};

impl Store {
    /// Every run, task instance and attempt consistent with the index of unfinished runs and
    /// the interval ledger. Returns the problems found (none: consistent).
    pub fn check(&self) -> Result<Vec<String>> {
        let mut problems = Vec::new();
        // Runs by key, with what the attempts need of them.
        let mut runs: HashMap<Vec<u8>, RunRecord> = HashMap::new();
        for entry in self.runs.iter() {
            let (key, value) = entry?;
            let record: RunRecord = decode("run", &value)?;
            let state = &record.state;
            let indexed = self.active.contains_key(&key)?;
            if !state.status.is_finished() && !indexed {
                problems.push(format!(
                    "run {} {} is {} but not in the index of unfinished runs",
                    state.dag_id, state.run_id, state.status
                ));
            }
            let ledger: Option<LedgerEntry> = self
                .ledger
                .get(keys::dag_time(&state.dag_id, state.interval.start))?
                .map(|v| decode("ledger", &v))
                .transpose()?;
            match ledger {
                None => problems.push(format!(
                    "run {} {} has no ledger entry for its interval",
                    state.dag_id, state.run_id
                )),
                Some(entry) if entry.run_id == state.run_id && entry.status != state.status => {
                    problems.push(format!(
                        "run {} {} is {} but the ledger says {}",
                        state.dag_id, state.run_id, state.status, entry.status
                    ));
                }
                Some(_) => {}
            }
            runs.insert(key.to_vec(), record);
        }
        for key in self.active.iter().keys() {
            let key = key?;
            match runs.get(key.as_ref()) {
                None => problems.push(format!("index entry {key:?} has no run")),
                Some(record) if record.state.status.is_finished() => problems.push(format!(
                    "run {} {} is finished but still indexed as unfinished",
                    record.state.dag_id, record.state.run_id
                )),
                Some(_) => {}
            }
        }
        let mut plans: HashMap<(String, String), Option<sluice_core::DagPlan>> = HashMap::new();
        for entry in self.attempts.iter() {
            let (key, value) = entry?;
            let attempt: AttemptRecord = decode("attempt", &value)?;
            // `dag \0 time` is the attempt key's prefix up to the second 0 byte.
            let run_key = key
                .iter()
                .position(|&b| b == 0)
                .map(|zero| key[..(zero + 9).min(key.len())].to_vec());
            let Some(run) = run_key.and_then(|k| runs.get(&k)) else {
                problems.push(format!("attempt {} has no run", attempt.idempotency_key));
                continue;
            };
            let plan_key = (run.state.dag_id.clone(), run.dag_version.clone());
            if !plans.contains_key(&plan_key) {
                let plan = self
                    .version(&run.state.dag_id, &run.dag_version)?
                    .map(|dag| sluice_core::DagPlan::new(&dag));
                plans.insert(plan_key.clone(), plan);
            }
            let Some(instance) = plans
                .get(&plan_key)
                .and_then(Option::as_ref)
                .and_then(|plan| plan.task_index(&attempt.task))
                .and_then(|i| run.state.tasks.get(i))
            else {
                problems.push(format!(
                    "attempt {} is of a task its run's DAG version does not have",
                    attempt.idempotency_key
                ));
                continue;
            };
            if attempt.try_number > instance.try_number {
                problems.push(format!(
                    "attempt {} is try {} but its task instance has started only {}",
                    attempt.idempotency_key, attempt.try_number, instance.try_number
                ));
            }
            if attempt.ended_at.is_none() && run.state.status.is_finished() {
                problems.push(format!(
                    "attempt {} is still open in a finished run",
                    attempt.idempotency_key
                ));
            }
        }
        Ok(problems)
    }
}
