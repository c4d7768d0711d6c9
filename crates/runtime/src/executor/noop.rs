//! `type: noop`: succeeds at once.

use super::{Attempt, Executor, Report, Reporter};
use sluice_core::Outcome;

pub struct NoopExecutor;

impl Executor for NoopExecutor {
    fn name(&self) -> &'static str {
        "noop"
    }

    fn start(&self, _attempt: Attempt, reporter: Reporter) {
        reporter.send(Report::Finished {
            outcome: Outcome::Success,
            output: None,
        });
    }

    fn cancel(&self, _idempotency_key: &str) {}
}
