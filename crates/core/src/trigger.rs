//! Trigger rules: given the states of a task's upstream tasks, may it run, must it be
//! skipped or marked upstream_failed, or must it wait? Airflow's semantics.

use super::state::TaskState;
use sluice_model::spec::TriggerRule;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Wait,
    Run,
    Skip,
    UpstreamFailed,
}

/// Counts of upstream outcomes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Upstream {
    pub total: usize,
    pub success: usize,
    pub skipped: usize,
    /// `failed` or `upstream_failed`.
    pub failed: usize,
    pub done: usize,
}

impl Upstream {
    pub fn count(states: impl IntoIterator<Item = TaskState>) -> Self {
        let mut u = Upstream::default();
        for s in states {
            u.total += 1;
            match s {
                TaskState::Success => u.success += 1,
                TaskState::Skipped => u.skipped += 1,
                TaskState::Failed | TaskState::UpstreamFailed => u.failed += 1,
                _ => {}
            }
            if s.is_finished() {
                u.done += 1;
            }
        }
        u
    }
}

pub fn evaluate(rule: TriggerRule, u: Upstream) -> Verdict {
    let all_done = u.done == u.total;
    match rule {
        TriggerRule::Always => Verdict::Run,
        TriggerRule::AllSuccess => {
            if u.failed > 0 {
                Verdict::UpstreamFailed
            } else if u.skipped > 0 {
                Verdict::Skip
            } else if u.success == u.total {
                Verdict::Run
            } else {
                Verdict::Wait
            }
        }
        TriggerRule::AllDone => {
            if all_done {
                Verdict::Run
            } else {
                Verdict::Wait
            }
        }
        TriggerRule::AllFailed => {
            if u.success > 0 || u.skipped > 0 {
                Verdict::Skip
            } else if u.failed == u.total {
                Verdict::Run
            } else {
                Verdict::Wait
            }
        }
        TriggerRule::OneSuccess => {
            if u.success > 0 || u.total == 0 {
                Verdict::Run
            } else if all_done {
                if u.failed > 0 {
                    Verdict::UpstreamFailed
                } else {
                    Verdict::Skip
                }
            } else {
                Verdict::Wait
            }
        }
        TriggerRule::OneFailed => {
            if u.failed > 0 {
                Verdict::Run
            } else if all_done {
                Verdict::Skip
            } else {
                Verdict::Wait
            }
        }
        TriggerRule::NoneFailed => {
            if u.failed > 0 {
                Verdict::UpstreamFailed
            } else if all_done {
                Verdict::Run
            } else {
                Verdict::Wait
            }
        }
    }
}

/// What the same task's state in the previous interval's run means for `depends_on_past`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Past {
    /// No earlier run (the first interval), or the task succeeded or was skipped there.
    Satisfied,
    /// Not finished there yet, or failed: wait (an operator clears or marks it).
    Blocking,
}

impl Past {
    pub fn from_previous(state: Option<TaskState>) -> Past {
        match state {
            None | Some(TaskState::Success | TaskState::Skipped) => Past::Satisfied,
            Some(_) => Past::Blocking,
        }
    }
}
