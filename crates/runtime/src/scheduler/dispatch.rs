//! Granting slots, starting attempts after the flush, and applying executors' reports.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::Input;
use super::engine::{Dispatch, Engine};
use super::run_book::RunKey;
use crate::executor::{Attempt, AttemptId, Report, Reporter};
use sluice_core::Outcome;
use sluice_model::spec::TaskKind;
use sluice_model::template::{Renderer, RunContext};
use sluice_store::{AttemptRecord, AttemptResult};

/// A run's params: the DAG's, with the keys of the run's `conf` over them (Airflow's
/// `dag_run.conf` overriding `params`).
fn params_of_run(
    params: &serde_json::Map<String, serde_json::Value>,
    conf: &serde_json::Value,
) -> serde_json::Map<String, serde_json::Value> {
    let mut merged = params.clone();
    if let Some(overrides) = conf.as_object() {
        for (key, value) in overrides {
            merged.insert(key.clone(), value.clone());
        }
    }
    merged
}

/// Most bytes of rendered text kept per field, and per attempt, for the UI.
const MAX_RENDERED_FIELD_BYTES: usize = 16 * 1024;
const MAX_RENDERED_BYTES: usize = 64 * 1024;

/// The task's templated fields as rendered, for the task page: secrets masked (the
/// scheduler's installed secrets, and the whole value of a field named like a secret, such
/// as `env.API_TOKEN`, Airflow's sensitive field names), each field and the whole cut to a
/// bound.
fn rendered_fields(kind: &mut TaskKind) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    let mut kept_bytes = 0;
    kind.visit_templates_mut(&mut |field, text| {
        let name = field.rsplit(['.', '[']).next().unwrap_or(field);
        let masked = if crate::masking::is_secret_name(name) {
            crate::masking::MASK.into()
        } else {
            crate::masking::mask(text)
        };
        let room = MAX_RENDERED_FIELD_BYTES.min(MAX_RENDERED_BYTES.saturating_sub(kept_bytes));
        let mut kept = cut_at_char(&masked, room).to_owned();
        if kept.len() < masked.len() {
            kept.push_str("\n… (cut to the bound the task page keeps)");
        }
        kept_bytes += kept.len();
        fields.insert(field.to_owned(), kept);
    });
    fields
}

/// The longest prefix of `text` of at most `bytes` bytes that ends on a character boundary.
fn cut_at_char(text: &str, bytes: usize) -> &str {
    let mut end = bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

impl Engine {
    /// Grants free slots to scheduled tasks, oldest run first, upstream first. Each granted
    /// task is `running` (in-process executors) in memory; it starts after the flush.
    pub(super) fn admit(&mut self, now: DateTime<Utc>) -> Vec<Dispatch> {
        let mut granted = Vec::new();
        for (key, run) in self.runs.iter_mut() {
            if run.record.state.status.is_finished() {
                continue;
            }
            let paused = self.registry.is_paused(&key.0)
                && run.record.state.kind != sluice_core::RunKind::Backfill;
            if paused {
                continue;
            }
            let ready: Vec<usize> = run.record.state.scheduled().collect();
            for task in ready {
                if !self.admission.try_admit(&run.plan, task) {
                    continue;
                }
                let changes = run.record.state.start(task, now);
                run.changes.extend(changes);
                let try_number = run.record.state.tasks[task].try_number;
                let enabled_at = run.plan.tasks[task]
                    .upstream
                    .iter()
                    .map(|&u| run.succeeded_at[u])
                    .collect::<Option<Vec<Instant>>>()
                    .and_then(|times| times.into_iter().max());
                let idempotency_key = run
                    .record
                    .state
                    .idempotency_key(&run.plan, task, try_number);
                let task_id = run.plan.tasks[task].id.clone();
                let log =
                    self.store
                        .log_path(&key.0, &run.record.state.run_id, &task_id, try_number);
                let attempt = AttemptRecord {
                    task: task_id,
                    try_number,
                    idempotency_key,
                    executor: run.dag.tasks[&run.plan.tasks[task].id]
                        .kind
                        .type_name()
                        .to_owned(),
                    handle: None,
                    started_at: now,
                    ended_at: None,
                    result: None,
                    error: None,
                    log,
                    dag_version: Some(run.record.dag_version.clone()),
                    rendered: Default::default(),
                };
                // In-process attempts: the run record (task running, try N) is the intent
                // flushed before the start; the attempt record is written when there is
                // something to add (a pid, the end). Remote executors write it up front.
                run.attempts.insert((task, try_number), attempt);
                self.stats.attempts_started += 1;
                self.metrics
                    .inc("sluice_task_attempts_total", &[("dag", &key.0)]);
                granted.push(Dispatch {
                    key: key.clone(),
                    task,
                    try_number,
                    enabled_at,
                });
            }
        }
        granted
    }

    /// Starts granted attempts; their state is durable by now.
    pub(super) fn dispatch(&mut self, dispatches: Vec<Dispatch>) {
        for d in dispatches {
            let Some(run) = self.runs.get(&d.key) else {
                continue;
            };
            let plan_task = &run.plan.tasks[d.task];
            let id = AttemptId {
                dag_id: d.key.0.clone(),
                logical_date: d.key.1,
                task_id: plan_task.id.clone(),
                try_number: d.try_number,
            };
            let reporter = Reporter {
                id: id.clone(),
                sink: Arc::clone(&self.inbox_sink),
            };
            let Some(spec) = run.dag.tasks.get(&plan_task.id) else {
                continue;
            };
            let state = &run.record.state;
            let mut outputs = BTreeMap::new();
            for &u in &plan_task.upstream {
                let upstream = &run.plan.tasks[u].id;
                if let Ok(Some(value)) = self.store.output(&d.key.0, d.key.1, upstream) {
                    outputs.insert(upstream.clone(), value);
                }
            }
            let context = RunContext {
                dag_id: state.dag_id.clone(),
                run_id: state.run_id.clone(),
                task_id: plan_task.id.clone(),
                try_number: d.try_number,
                logical_date: state.logical_date,
                data_interval: state.interval,
                params: params_of_run(&run.dag.params, &run.record.conf),
                conn: BTreeMap::new(),
                var: self.variables.clone(),
                outputs,
            };
            let mut kind = spec.kind.clone();
            let mut templated = false;
            kind.visit_templates_mut(&mut |_, text| {
                templated |= sluice_model::template::is_template(text)
            });
            let mut failures = Vec::new();
            if templated {
                let renderer = Renderer::new(&context);
                kind.visit_templates_mut(&mut |field, text| match renderer.render(text) {
                    Ok(rendered) => *text = rendered,
                    Err(e) => failures.push(format!("{field}: {e}")),
                });
            }
            // An adopted remote attempt (after a restart) keeps what it first rendered: its
            // step runs the arguments it was given then.
            let recorded = run
                .attempts
                .get(&(d.task, d.try_number))
                .is_some_and(|a| !a.rendered.is_empty());
            if templated && failures.is_empty() && !recorded {
                let rendered = rendered_fields(&mut kind);
                self.update_attempt(&id, |record| record.rendered = rendered.clone());
            }
            // Borrowed again: the attempt's update above needed the engine whole.
            let Some(run) = self.runs.get(&d.key) else {
                continue;
            };
            let plan_task = &run.plan.tasks[d.task];
            let state = &run.record.state;
            if !failures.is_empty() {
                self.local.push_back(Input::Report {
                    attempt: id,
                    at: Utc::now(),
                    report: Report::Finished {
                        outcome: Outcome::Failed {
                            retryable: false,
                            reason: format!("template error: {}", failures.join("; ")),
                        },
                        output: None,
                    },
                });
                continue;
            }
            let plugin_context = serde_json::json!({
                "dag": context.dag_id,
                "run_id": context.run_id,
                "task": context.task_id,
                "try_number": context.try_number,
                "logical_date": sluice_model::spec::instant::format_instant(context.logical_date),
                "data_interval": {
                    "start": sluice_model::spec::instant::format_instant(context.data_interval.start),
                    "end": sluice_model::spec::instant::format_instant(context.data_interval.end),
                },
                "params": context.params,
                "outputs": context.outputs,
            });
            let attempt = Attempt {
                dag_id: d.key.0.clone(),
                run_id: state.run_id.clone(),
                logical_date: d.key.1,
                task_id: plan_task.id.clone(),
                try_number: d.try_number,
                idempotency_key: state.idempotency_key(&run.plan, d.task, d.try_number),
                timeout: plan_task.policy.timeout,
                log_path: self
                    .store
                    .log_path(&d.key.0, &state.run_id, &plan_task.id, d.try_number),
                work_dir: self.store.root().join("work").join(&d.key.0),
                context: plugin_context,
                kind,
            };
            match &attempt.kind {
                TaskKind::Backfill(task) => {
                    let task = task.clone();
                    let (outcome, output) = self.run_backfill_task(&attempt, &task);
                    self.local.push_back(Input::Report {
                        attempt: id,
                        report: Report::Finished { outcome, output },
                        at: Utc::now(),
                    });
                }
                _ => self.executors.start(attempt, reporter),
            }
        }
    }

    /// Applies one input to the runs.
    pub(super) fn handle(&mut self, input: Input, now: DateTime<Utc>) {
        match input {
            Input::Shutdown => {
                if self.shutdown_at.is_none() {
                    self.log("shutting down: no new attempts; waiting for running ones");
                    self.shutdown_at = Some(Instant::now() + self.config.shutdown_grace);
                }
            }
            Input::Report {
                attempt,
                report,
                at,
            } => self.apply_report(attempt, report, at, now),
            Input::Backup { to, reply } => {
                // Nothing of this iteration is pending: the last flush left the store whole.
                let answer = self
                    .store
                    .backup_to(&to)
                    .map(|m| {
                        format!(
                            "backup of {} run(s) written to {} ({})",
                            m.runs(),
                            to.display(),
                            sluice_model::spec::instant::format_instant(m.created_at)
                        )
                    })
                    .map_err(|e| (e.to_string(), e.hint().map(str::to_owned)));
                let _ = reply.send(answer);
            }
            Input::Ping { reply } => {
                let answer = match self.shutdown_at {
                    None => Ok("ready".to_owned()),
                    Some(_) => Err(("shutting down".to_owned(), None)),
                };
                let _ = reply.send(answer);
            }
            Input::GateView(view) => {
                if let Some(memory) = view.remember {
                    self.remember_gate_source(&view.source, &memory);
                }
                self.apply_gate_view(view.source, view.look)
            }
            Input::Control { command, reply } => {
                let result = self.control(command).map_err(|e| match e {
                    super::ControlError::Refused { message, hint } => (message, hint),
                    super::ControlError::Engine(e) => (e.to_string(), None),
                });
                let _ = reply.send(result);
            }
            Input::Backfill {
                dag,
                from,
                to,
                reprocess,
                max_active_runs,
                reply,
            } => {
                let result = self
                    .start_backfill(&dag, from, to, reprocess, max_active_runs)
                    .map(|record| format!("backfill of `{dag}`: {} interval(s)", record.total))
                    .map_err(|e| (e.to_string(), None));
                let _ = reply.send(result);
            }
        }
    }

    /// Applies an executor's report made at `at` (the attempt's end time) in the iteration
    /// of `now` (the time the state machine moves at).
    fn apply_report(
        &mut self,
        id: AttemptId,
        report: Report,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        let key: RunKey = (id.dag_id.clone(), id.logical_date);
        let Some(run) = self.runs.get_mut(&key) else {
            return;
        };
        let Some(index) = run.plan.task_index(&id.task_id) else {
            return;
        };
        match report {
            Report::Started { handle } => {
                if let Some(handle) = handle {
                    self.update_attempt(&id, |a| a.handle = Some(handle.clone()));
                }
            }
            Report::Finished { outcome, output } => {
                let held = run.record.state.tasks[index].state.holds_slot()
                    && run.record.state.tasks[index].try_number == id.try_number;
                let plan = std::sync::Arc::clone(&run.plan);
                let changes = run
                    .record
                    .state
                    .finish(&plan, index, id.try_number, &outcome, now);
                if changes.is_empty() {
                    return;
                }
                if held {
                    self.admission
                        .release(&plan.dag_id, &plan.tasks[index].policy.pool);
                }
                if outcome == Outcome::Success {
                    run.succeeded_at[index] = Some(Instant::now());
                }
                run.changes.extend(changes);
                run.dirty = true;
                let (result, error) = match &outcome {
                    Outcome::Success => (AttemptResult::Success, None),
                    Outcome::Failed { reason, .. } => (AttemptResult::Failed, Some(reason.clone())),
                };
                if let Some(output) = output {
                    self.attempts.output(
                        id.dag_id.clone(),
                        id.logical_date,
                        id.task_id.clone(),
                        output,
                    );
                }
                self.update_attempt(&id, |a| {
                    a.ended_at = Some(at);
                    a.result = Some(result);
                    a.error = error.clone();
                });
            }
        }
    }

    /// Updates an attempt record kept in memory (or, for attempts of an earlier process,
    /// read from the store) and queues the write.
    pub(super) fn update_attempt(&mut self, id: &AttemptId, update: impl Fn(&mut AttemptRecord)) {
        let key: RunKey = (id.dag_id.clone(), id.logical_date);
        let index = self
            .runs
            .get(&key)
            .and_then(|run| run.plan.task_index(&id.task_id));
        let in_memory = index.and_then(|i| {
            self.runs
                .get_mut(&key)
                .and_then(|run| run.attempts.get_mut(&(i, id.try_number)))
        });
        let record = match in_memory {
            Some(record) => {
                update(record);
                Some(record.clone())
            }
            None => self
                .store
                .attempt(&id.dag_id, id.logical_date, &id.task_id, id.try_number)
                .ok()
                .flatten()
                .map(|mut record| {
                    update(&mut record);
                    record
                }),
        };
        if let Some(record) = record {
            if record.ended_at.is_some()
                && let (Some(i), Some(run)) = (index, self.runs.get_mut(&key))
            {
                run.attempts.remove(&(i, id.try_number));
            }
            self.attempts
                .record(id.dag_id.clone(), id.logical_date, record);
        }
    }

    /// Stops if the lease is no longer provably ours: every local attempt is killed (a
    /// successor will run it again) and nothing more is written, shipped or started.
    /// Remote attempts (EMR steps) go on; the successor adopts them by name.
    pub(super) fn hold_lead(&mut self) -> Result<(), super::EngineError> {
        let Some(lead) = &self.config.leadership else {
            return Ok(());
        };
        let Err(deposed) = lead.fence.check() else {
            return Ok(());
        };
        // Killed here and now too, not only through the executors' cancel (which acts later,
        // on their runtime): the lease can pass to a standby a tenth of its TTL after this.
        let keys: Vec<String> = self
            .cancel_local_attempts()
            .into_iter()
            .map(|(_, key)| key)
            .collect();
        let killed = crate::executor::orphans::kill_leftovers(&keys);
        tracing::error!(
            "{deposed}; killed {} process(es) of {} local attempt(s), writing nothing more",
            killed.len(),
            keys.len()
        );
        Err(deposed.into())
    }

    /// Asks the executors to stop every attempt running in this process (remote ones, EMR
    /// steps, go on without it); answers each with its idempotency key.
    fn cancel_local_attempts(&self) -> Vec<(AttemptId, String)> {
        let mut cancelled = Vec::new();
        for (key, run) in self.runs.iter() {
            for (index, task) in run.record.state.tasks.iter().enumerate() {
                if task.state.holds_slot() && !super::engine::is_remote(&self.executors, run, index)
                {
                    let idempotency_key =
                        run.record
                            .state
                            .idempotency_key(&run.plan, index, task.try_number);
                    self.executors.cancel(&idempotency_key);
                    cancelled.push((
                        AttemptId {
                            dag_id: key.0.clone(),
                            logical_date: key.1,
                            task_id: run.plan.tasks[index].id.clone(),
                            try_number: task.try_number,
                        },
                        idempotency_key,
                    ));
                }
            }
        }
        cancelled
    }

    /// After a group commit: the shipper closes a cut of the changes so far.
    pub(super) fn mark_cut(&self) {
        if let Some(cuts) = self
            .config
            .leadership
            .as_ref()
            .and_then(|lead| lead.cuts.as_ref())
        {
            cuts.cut(&self.store);
        }
    }

    /// During shutdown: once the grace period is over, stop what still runs and record it
    /// as interrupted (a retryable failure), so the store says what happened.
    pub(super) fn wind_down(&mut self, now: DateTime<Utc>) {
        let Some(deadline) = self.shutdown_at else {
            return;
        };
        if Instant::now() < deadline {
            return;
        }
        for (id, _) in self.cancel_local_attempts() {
            self.apply_report(
                id,
                Report::Finished {
                    outcome: Outcome::Failed {
                        retryable: true,
                        reason: "interrupted: the scheduler shut down".into(),
                    },
                    output: None,
                },
                now,
                now,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendered_fields_hide_secret_named_fields_and_stay_bounded() -> Result<(), serde_json::Error>
    {
        let mut kind: TaskKind = serde_json::from_value(serde_json::json!({
            "type": "command",
            "command": format!("echo {}", "é".repeat(20_000)),
            "env": { "API_TOKEN": "s3cr3t-value", "REGION": "eu" },
        }))?;
        let fields = rendered_fields(&mut kind);
        assert_eq!(fields.get("env.API_TOKEN").map(String::as_str), Some("***"));
        assert_eq!(fields.get("env.REGION").map(String::as_str), Some("eu"));
        let command = fields.get("command").cloned().unwrap_or_default();
        assert!(
            command.len() <= MAX_RENDERED_FIELD_BYTES + 64,
            "{}",
            command.len()
        );
        assert!(command.ends_with("(cut to the bound the task page keeps)"));
        Ok(())
    }
}
