//! `type: spark`: one Spark application, on a local Spark ([`local`]) or as an EMR step.
//! Both build their `spark-submit` arguments with [`submit`].

pub mod emr;
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
    runtime: tokio::runtime::Handle,
    emr: Arc<emr::EmrClients>,
}

impl SparkExecutor {
    pub fn new(
        command: Arc<CommandExecutor>,
        dags_dir: PathBuf,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        SparkExecutor {
            command,
            dags_dir,
            runtime,
            emr: Arc::default(),
        }
    }
}

fn fatal(reporter: &Reporter, reason: String) {
    reporter.send(Report::Finished {
        outcome: Outcome::Failed {
            retryable: false,
            reason,
        },
        output: None,
    });
}

impl Executor for SparkExecutor {
    fn name(&self) -> &'static str {
        "spark"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let TaskKind::Spark(task) = &attempt.kind else {
            return fatal(
                &reporter,
                format!(
                    "the spark executor cannot run a `{}` task",
                    attempt.kind.type_name()
                ),
            );
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
            SparkBackend::Emr => {
                let Some(name) = task.connection.clone() else {
                    return fatal(
                        &reporter,
                        "`backend: emr` needs `connection`: the EMR connection (cluster, region) to submit to".into(),
                    );
                };
                let conn = match crate::connections::emr(&name) {
                    Ok(conn) => conn,
                    Err(e) => return fatal(&reporter, e.to_string()),
                };
                let task = task.clone();
                let clients = Arc::clone(&self.emr);
                self.runtime.spawn(async move {
                    let (outcome, output) =
                        emr::run(clients, &attempt, &task, &name, &conn, &reporter).await;
                    reporter.send(Report::Finished { outcome, output });
                });
            }
        }
    }

    /// Local runs are processes of the command executor, which the scheduler cancels
    /// itself; EMR steps are cancelled here (CancelSteps).
    fn cancel(&self, idempotency_key: &str) {
        self.emr.cancel(idempotency_key, &self.runtime);
    }
}
