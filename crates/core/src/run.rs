//! The run state machine: task instances move as upstreams finish, attempts end, timers fire
//! and operators clear or mark. Every method returns the changes it made, in order, so the
//! shell can persist them before acting.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::plan::DagPlan;
use super::retry::{self, RetryDecision};
use super::state::{Cause, RunKind, RunStatus, TaskState};
use super::trigger::{self, Past, Upstream, Verdict};
use sluice_model::schedule::DataInterval;

/// One task in one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInstance {
    pub state: TaskState,
    /// Attempts started so far; the running attempt's number while running.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub try_number: u32,
    /// `try_number` when the instance was last cleared: retries count from here.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tries_before_clear: u32,
    /// When the current (or last) attempt started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<DateTime<Utc>>,
    /// Why it is in its state (a failure's error, a skipped retry's reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl TaskInstance {
    fn new() -> Self {
        TaskInstance {
            state: TaskState::None,
            try_number: 0,
            tries_before_clear: 0,
            started_at: None,
            retry_at: None,
            reason: None,
        }
    }
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Success,
    /// `retryable: false` skips any remaining retries.
    Failed {
        retryable: bool,
        reason: String,
    },
}

/// One state change, for persistence, the event log and the shell's actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Task {
        index: usize,
        from: TaskState,
        to: TaskState,
        try_number: u32,
    },
    Run {
        from: RunStatus,
        to: RunStatus,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunState {
    pub dag_id: String,
    pub run_id: String,
    pub kind: RunKind,
    pub logical_date: DateTime<Utc>,
    pub interval: DataInterval,
    pub status: RunStatus,
    pub tasks: Vec<TaskInstance>,
    /// The interval runs again after it succeeded, because an input was rewritten: history
    /// reprocessed, as in a backfill, so no SLA deadline cuts its retries (nor is its SLA
    /// measured again: it was met or missed the first time).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reprocessing: bool,
}

impl RunState {
    pub fn new(plan: &DagPlan, kind: RunKind, interval: DataInterval) -> Self {
        RunState {
            dag_id: plan.dag_id.clone(),
            run_id: kind.run_id(interval.start),
            kind,
            logical_date: interval.start,
            interval,
            status: RunStatus::Queued,
            tasks: (0..plan.tasks.len()).map(|_| TaskInstance::new()).collect(),
            reprocessing: false,
        }
    }

    /// `<dag>/<run_id>/<task>/<try>`: names the attempt's side effects (EMR step names,
    /// log files) so a retry or a recovery can find them.
    pub fn idempotency_key(&self, plan: &DagPlan, index: usize, try_number: u32) -> String {
        format!(
            "{}/{}/{}/{}",
            self.dag_id, self.run_id, plan.tasks[index].id, try_number
        )
    }

    /// Moves a finished run onto another version of its DAG before it runs again (a clear
    /// or a reprocessing after the file was fixed): each task instance is carried over by
    /// task id, a task gone from `to` is dropped, a task new in `to` starts afresh with its
    /// try count at `tries_so_far(task id)` (the attempts a task of that id already made in
    /// this run under an older version), so a try number, and the attempt record, log and
    /// idempotency key it names, is never used twice. Returns false, changing nothing,
    /// while any task holds a slot (its attempt would report against the wrong index).
    pub fn adopt_plan(
        &mut self,
        from: &DagPlan,
        to: &DagPlan,
        tries_so_far: impl Fn(&str) -> u32,
    ) -> bool {
        if self.tasks.iter().any(|t| t.state.holds_slot()) {
            return false;
        }
        self.tasks = to
            .tasks
            .iter()
            .map(|task| {
                from.task_index(&task.id)
                    .and_then(|i| self.tasks.get(i).cloned())
                    .unwrap_or_else(|| {
                        let tries = tries_so_far(&task.id);
                        TaskInstance {
                            try_number: tries,
                            tries_before_clear: tries,
                            ..TaskInstance::new()
                        }
                    })
            })
            .collect();
        true
    }

    /// The instant by which the run must have succeeded (`interval end + sla.deadline`).
    /// Only scheduled runs have one: a backfill or manual run reprocesses history whose
    /// deadline passed long ago, and must keep its retries (as Airflow keeps SLAs to
    /// scheduled runs); so does a scheduled run rerun for a rewritten input.
    pub fn deadline(&self, plan: &DagPlan) -> Option<DateTime<Utc>> {
        if self.kind != RunKind::Scheduled || self.reprocessing {
            return None;
        }
        plan.sla_deadline
            .and_then(|d| self.interval.end.checked_add_signed(d))
    }

    /// Moves a task instance, if the transition table allows it: a move outside the table
    /// is refused (and stops a debug build, so the property tests find it).
    fn set(&mut self, index: usize, to: TaskState, cause: Cause, changes: &mut Vec<Change>) {
        let task = &mut self.tasks[index];
        if task.state != to {
            if !task.state.may_move(cause, to) {
                debug_assert!(false, "{cause:?} may not move a task {} → {to}", task.state);
                return;
            }
            changes.push(Change::Task {
                index,
                from: task.state,
                to,
                try_number: task.try_number,
            });
            task.state = to;
        }
    }

    /// Moves the run, if the transition table allows it (as `set`).
    fn set_status(&mut self, to: RunStatus, cause: Cause, changes: &mut Vec<Change>) {
        if self.status != to {
            if !self.status.may_move(cause, to) {
                debug_assert!(false, "{cause:?} may not move a run {} → {to}", self.status);
                return;
            }
            changes.push(Change::Run {
                from: self.status,
                to,
            });
            self.status = to;
        }
    }

    /// Moves waiting tasks as far as the rules allow: trigger rules, `depends_on_past`
    /// (`past(i)` is the task's state in the previous interval's run), the gate, due retries.
    /// Then settles the run's status. Idempotent.
    pub fn evaluate(
        &mut self,
        plan: &DagPlan,
        past: &dyn Fn(usize) -> Past,
        gate_open: bool,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.status == RunStatus::Queued {
            self.set_status(RunStatus::Running, Cause::Evaluate, &mut changes);
        }
        // Topological order: a skip or upstream failure reaches every descendant in one pass.
        for i in 0..plan.tasks.len() {
            match self.tasks[i].state {
                TaskState::None | TaskState::Deferred => {
                    let task = &plan.tasks[i];
                    let upstream =
                        Upstream::count(task.upstream.iter().map(|&u| self.tasks[u].state));
                    match trigger::evaluate(task.trigger_rule, upstream) {
                        Verdict::Wait => {}
                        Verdict::Skip => {
                            self.set(i, TaskState::Skipped, Cause::Evaluate, &mut changes)
                        }
                        Verdict::UpstreamFailed => {
                            self.set(i, TaskState::UpstreamFailed, Cause::Evaluate, &mut changes)
                        }
                        Verdict::Run => {
                            if task.depends_on_past && past(i) == Past::Blocking {
                                continue;
                            }
                            let to = if gate_open {
                                TaskState::Scheduled
                            } else {
                                TaskState::Deferred
                            };
                            self.set(i, to, Cause::Evaluate, &mut changes);
                        }
                    }
                }
                TaskState::UpForRetry if self.tasks[i].retry_at.is_none_or(|at| at <= now) => {
                    self.tasks[i].retry_at = None;
                    self.set(i, TaskState::Scheduled, Cause::Evaluate, &mut changes);
                }
                _ => {}
            }
        }
        self.settle(&mut changes);
        changes
    }

    /// The run's gate stayed closed past its timeout: every task waiting on it fails with
    /// the reason, and so does any task that becomes ready after that (an `all_done` clean-up
    /// included: no task of the run touches data the gate never declared complete). The
    /// run then settles as failed. Idempotent; the shell calls it on every evaluation of a
    /// run whose gate timed out.
    pub fn gate_timed_out(
        &mut self,
        plan: &DagPlan,
        past: &dyn Fn(usize) -> Past,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        // Each pass fails at least one more task, or stops.
        for _ in 0..=self.tasks.len() {
            changes.extend(self.evaluate(plan, past, false, now));
            let deferred: Vec<usize> = (0..self.tasks.len())
                .filter(|&i| self.tasks[i].state == TaskState::Deferred)
                .collect();
            if deferred.is_empty() {
                break;
            }
            for i in deferred {
                self.tasks[i].reason = Some(reason.to_owned());
                self.set(i, TaskState::Failed, Cause::GateTimeout, &mut changes);
            }
        }
        self.settle(&mut changes);
        changes
    }

    /// Finishes the run once every task is finished: success only if every task succeeded
    /// or was skipped by its trigger rule; failed if any failed or never ran because an
    /// upstream failed. (Stricter than Airflow, which looks at leaves only: a failure handled
    /// by an `all_done` clean-up task still fails the run, and so does a task left
    /// `upstream_failed` after its upstream was marked success by hand: the ledger never
    /// counts an interval as processed while one of its tasks did not do its work.)
    fn settle(&mut self, changes: &mut Vec<Change>) {
        if !self.tasks.iter().all(|t| t.state.is_finished()) {
            if self.status.is_finished() {
                self.set_status(RunStatus::Running, Cause::Settle, changes);
            }
            return;
        }
        let failed = self.tasks.iter().any(|t| t.state.is_failure());
        let to = if failed {
            RunStatus::Failed
        } else {
            RunStatus::Success
        };
        self.set_status(to, Cause::Settle, changes);
    }

    /// A granted slot: `Scheduled → Running`, starting the next try.
    pub fn start(&mut self, index: usize, now: DateTime<Utc>) -> Vec<Change> {
        let mut changes = Vec::new();
        if self.tasks[index].state != TaskState::Scheduled {
            return changes;
        }
        self.tasks[index].try_number += 1;
        self.tasks[index].started_at = Some(now);
        self.tasks[index].reason = None;
        self.set(index, TaskState::Running, Cause::Start, &mut changes);
        changes
    }

    /// An attempt ended. Stale reports (another try, a cleared instance) change nothing.
    pub fn finish(
        &mut self,
        plan: &DagPlan,
        index: usize,
        try_number: u32,
        outcome: &Outcome,
        now: DateTime<Utc>,
    ) -> Vec<Change> {
        let mut changes = Vec::new();
        let task = &self.tasks[index];
        if !task.state.holds_slot() || task.try_number != try_number {
            return changes;
        }
        match outcome {
            Outcome::Success => self.set(index, TaskState::Success, Cause::Finish, &mut changes),
            Outcome::Failed { retryable, reason } => {
                let used = try_number.saturating_sub(task.tries_before_clear);
                let key = self.idempotency_key(plan, index, try_number);
                let deadline = self.deadline(plan);
                match retry::decide(
                    &plan.tasks[index].policy,
                    used,
                    *retryable,
                    now,
                    deadline,
                    &key,
                ) {
                    RetryDecision::RetryAt(at) => {
                        self.tasks[index].retry_at = Some(at);
                        self.tasks[index].reason = Some(reason.clone());
                        self.set(index, TaskState::UpForRetry, Cause::Finish, &mut changes);
                    }
                    RetryDecision::Fail(why) => {
                        self.tasks[index].reason = Some(format!("{reason}; {why}"));
                        self.set(index, TaskState::Failed, Cause::Finish, &mut changes);
                    }
                }
            }
        }
        changes
    }

    /// Resets task instances so they run again (and, with `downstream`, everything after
    /// them). Their running attempts become stale; the shell cancels them.
    pub fn clear(&mut self, plan: &DagPlan, roots: &[usize], downstream: bool) -> Vec<Change> {
        let mut changes = Vec::new();
        let targets = if downstream {
            plan.downstream_closure(roots)
        } else {
            roots.to_vec()
        };
        for i in targets {
            let task = &mut self.tasks[i];
            task.tries_before_clear = task.try_number;
            task.retry_at = None;
            task.reason = None;
            self.set(i, TaskState::None, Cause::Clear, &mut changes);
        }
        if self.status.is_finished() {
            self.set_status(RunStatus::Running, Cause::Clear, &mut changes);
        }
        changes
    }

    /// An operator sets a task's outcome by hand (`success` or `failed`).
    pub fn mark(&mut self, index: usize, to: TaskState, reason: &str) -> Vec<Change> {
        let mut changes = Vec::new();
        self.tasks[index].retry_at = None;
        self.tasks[index].reason = Some(reason.to_owned());
        self.set(index, to, Cause::Mark, &mut changes);
        self.settle(&mut changes);
        changes
    }

    /// The earliest pending retry, for the shell's timer.
    pub fn next_retry_at(&self) -> Option<DateTime<Utc>> {
        self.tasks
            .iter()
            .filter(|t| t.state == TaskState::UpForRetry)
            .filter_map(|t| t.retry_at)
            .min()
    }

    /// Tasks waiting for a slot, upstream first.
    pub fn scheduled(&self) -> impl Iterator<Item = usize> + '_ {
        self.tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state == TaskState::Scheduled)
            .map(|(i, _)| i)
    }
}
