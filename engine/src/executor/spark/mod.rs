//! `type: spark`: one Spark application, on a local Spark ([`local`]) or as an EMR step.
//! Both build their `spark-submit` arguments with [`submit`].

pub mod local;
pub mod submit;

use std::path::PathBuf;
use std::sync::Arc;

use super::command::CommandExecutor;
use super::{Attempt, Executor, Report, Reporter};
use crate::core::Outcome;
use crate::spec::{SparkBackend, TaskKind};

pub struct SparkExecutor {
    command: Arc<CommandExecutor>,
    dags_dir: PathBuf,
}

impl SparkExecutor {
    pub fn new(command: Arc<CommandExecutor>, dags_dir: PathBuf) -> Self {
        SparkExecutor { command, dags_dir }
    }
}

impl Executor for SparkExecutor {
    fn name(&self) -> &'static str {
        "spark"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let TaskKind::Spark(task) = &attempt.kind else {
            return reporter.send(Report::Finished {
                outcome: Outcome::Failed {
                    retryable: false,
                    reason: format!(
                        "the spark executor cannot run a `{}` task",
                        attempt.kind.type_name()
                    ),
                },
                output: None,
            });
        };
        match task.backend {
            SparkBackend::Local => {
                let command = local::command(task, &self.dags_dir, &attempt.idempotency_key);
                let attempt = Attempt {
                    kind: TaskKind::Command(command),
                    ..attempt
                };
                self.command.start(attempt, reporter);
            }
            SparkBackend::Emr => reporter.send(Report::Finished {
                outcome: Outcome::Failed {
                    retryable: false,
                    reason:
                        "the EMR backend is not available in this build yet; use `backend: local`"
                            .into(),
                },
                output: None,
            }),
        }
    }

    /// Local runs are processes of the command executor, which the scheduler cancels
    /// itself; EMR steps are cancelled here (CancelSteps) once that backend lands.
    fn cancel(&self, _idempotency_key: &str) {}
}
