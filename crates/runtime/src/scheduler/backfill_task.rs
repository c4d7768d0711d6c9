//! `type: backfill` tasks: the loop itself starts the backfill of the target DAG (no
//! executor: it is a scheduling action), records what it did in the attempt's log and
//! output, and reports the attempt finished. A target with another backfill open is a
//! retryable failure (it will be free later); a bad range or an unknown target is fatal, and
//! so is an enabled task outside `sluice scheduler` (a backfill process runs to its end).

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError};
use crate::executor::Attempt;
use sluice_core::Outcome;
use sluice_model::spec::BackfillTask;
use sluice_store::Reprocess;

fn fatal(reason: String) -> (Outcome, Option<serde_json::Value>) {
    (
        Outcome::Failed {
            retryable: false,
            reason,
        },
        None,
    )
}

fn instant(field: &str, text: &str) -> Result<DateTime<Utc>, String> {
    sluice_model::spec::instant::parse_instant(text.trim(), chrono_tz::UTC)
        .map_err(|e| format!("`{field}` rendered to `{text}`: {e}"))
}

impl Engine {
    pub(super) fn run_backfill_task(
        &mut self,
        attempt: &Attempt,
        task: &BackfillTask,
    ) -> (Outcome, Option<serde_json::Value>) {
        let (outcome, output) = self.start_backfill_for_task(attempt, task);
        let line = match (&outcome, &output) {
            (Outcome::Success, Some(output)) => format!("{output}"),
            (Outcome::Failed { reason, .. }, _) => format!("failed: {reason}"),
            (Outcome::Success, None) => String::new(),
        };
        if let Some(dir) = attempt.log_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(
            &attempt.log_path,
            format!(
                "[sluice {}] backfill task: {line}\n",
                sluice_model::spec::instant::format_instant(Utc::now())
            ),
        );
        (outcome, output)
    }

    fn start_backfill_for_task(
        &mut self,
        attempt: &Attempt,
        task: &BackfillTask,
    ) -> (Outcome, Option<serde_json::Value>) {
        match task.enabled.trim() {
            "true" | "True" => {}
            "false" | "False" | "" => {
                return (
                    Outcome::Success,
                    Some(serde_json::json!({
                        "started": false,
                        "reason": "`enabled` rendered to false",
                    })),
                );
            }
            other => {
                return fatal(format!(
                    "`enabled` must render to true or false, not `{other}`"
                ));
            }
        }
        // A backfill process runs its DAG and that DAG's consumers, to their end: what
        // they would start is for the scheduler (and would never end here).
        if self.config.mode != super::engine::Mode::Scheduler {
            return fatal(
                "backfill tasks run under `sluice scheduler`, not in a `sluice backfill` or `dags test` process".into(),
            );
        }
        if task.target == attempt.dag_id {
            return fatal("a DAG cannot backfill itself from one of its tasks".into());
        }
        let (from, to) = match (instant("from", &task.from), instant("to", &task.to)) {
            (Ok(from), Ok(to)) => (from, to),
            (Err(e), _) | (_, Err(e)) => return fatal(e),
        };
        let reprocess = match task.reprocess.as_str() {
            "none" => Reprocess::None,
            "failed" => Reprocess::Failed,
            _ => Reprocess::Completed,
        };
        let limit = task.max_active_runs.map(|n| n as usize);
        match self.start_backfill(&task.target, from, to, reprocess, limit) {
            Ok(record) => {
                self.log(format!(
                    "{} {}: backfill of `{}` started by task {} ({} interval(s))",
                    attempt.dag_id, attempt.run_id, task.target, attempt.task_id, record.total
                ));
                (
                    Outcome::Success,
                    Some(serde_json::json!({
                        "started": true,
                        "target": task.target,
                        "from": sluice_model::spec::instant::format_instant(from),
                        "to": sluice_model::spec::instant::format_instant(to),
                        "reprocess": task.reprocess,
                        "intervals": record.total,
                    })),
                )
            }
            Err(EngineError::UnknownDag(dag)) => fatal(format!(
                "no DAG `{dag}` in this scheduler (backfill tasks run under `sluice scheduler`)"
            )),
            // Another backfill of the target is open: it will be free later.
            Err(EngineError::Invalid(reason)) if reason.contains("already has a backfill") => (
                Outcome::Failed {
                    retryable: true,
                    reason,
                },
                None,
            ),
            Err(e) => fatal(e.to_string()),
        }
    }
}
