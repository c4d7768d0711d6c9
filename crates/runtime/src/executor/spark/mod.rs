//! `type: spark`: one Spark application, on a local Spark ([`local`]), as an EMR step
//! ([`emr`]) or as an EMR Serverless job run ([`serverless`]). All build their
//! `spark-submit` arguments with [`submit`].

pub mod cluster_policies;
pub mod emr;
pub mod local;
pub mod serverless;
pub mod submit;
pub mod transient;

use std::path::PathBuf;
use std::sync::Arc;

use super::command::CommandExecutor;
use super::{Attempt, Executor, Report, Reporter};
use sluice_model::spec::{SparkBackend, TaskKind};

/// Overrides Spark tasks' `backend` in this environment: `local` on a laptop or in tests,
/// `emr` or `emr_serverless` in production; either for every task (`local`), or per
/// connection (`analytics_emr=local,backfill_emr=emr`): the tasks on the named connections only.
pub const BACKEND_VARIABLE: &str = "SLUICE_SPARK_BACKEND";

/// What `SLUICE_SPARK_BACKEND` says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendOverride {
    every_task: Option<SparkBackend>,
    by_connection: std::collections::BTreeMap<String, SparkBackend>,
}

impl BackendOverride {
    pub fn parse(text: &str) -> Result<BackendOverride, String> {
        let backend = |word: &str| match word.trim() {
            "local" => Ok(SparkBackend::Local),
            "emr" => Ok(SparkBackend::Emr),
            "emr_serverless" => Ok(SparkBackend::EmrServerless),
            other => Err(format!(
                "{BACKEND_VARIABLE}: `{other}` is not a backend; expected `local`, `emr` or `emr_serverless`, for every task or as CONNECTION=local|emr|emr_serverless,…"
            )),
        };
        if !text.contains('=') {
            return Ok(BackendOverride {
                every_task: Some(backend(text)?),
                by_connection: Default::default(),
            });
        }
        let mut by_connection = std::collections::BTreeMap::new();
        for entry in text.split(',').filter(|e| !e.trim().is_empty()) {
            let Some((connection, word)) = entry.split_once('=') else {
                return Err(format!(
                    "{BACKEND_VARIABLE}: `{entry}` is not CONNECTION=local|emr|emr_serverless"
                ));
            };
            by_connection.insert(connection.trim().to_owned(), backend(word)?);
        }
        Ok(BackendOverride {
            every_task: None,
            by_connection,
        })
    }

    /// The backend a task runs on here.
    pub fn backend_of(&self, task: &sluice_model::spec::SparkTask) -> SparkBackend {
        task.connection
            .as_ref()
            .and_then(|c| self.by_connection.get(c))
            .copied()
            .or(self.every_task)
            .unwrap_or(task.backend)
    }
}

fn backend_override() -> Result<BackendOverride, String> {
    match std::env::var(BACKEND_VARIABLE) {
        Err(_) => Ok(BackendOverride::default()),
        Ok(v) => BackendOverride::parse(&v),
    }
}

pub struct SparkExecutor {
    backend: Result<BackendOverride, String>,
    command: Arc<CommandExecutor>,
    dags_dir: PathBuf,
    runtime: tokio::runtime::Handle,
    emr: Arc<emr::EmrClients>,
    serverless: Arc<serverless::ServerlessClients>,
    connections: crate::connections::Connections,
    /// Connections whose cluster policies this process applied (once each).
    policies_applied: std::sync::Mutex<std::collections::BTreeSet<String>>,
}

impl SparkExecutor {
    pub fn new(
        command: Arc<CommandExecutor>,
        dags_dir: PathBuf,
        runtime: tokio::runtime::Handle,
        connections: crate::connections::Connections,
        side_effects: crate::ha::SideEffects,
    ) -> Self {
        SparkExecutor {
            backend: backend_override(),
            command,
            dags_dir,
            runtime,
            emr: Arc::new(emr::EmrClients::fenced(side_effects.clone())),
            serverless: Arc::new(serverless::ServerlessClients::fenced(side_effects)),
            connections,
            policies_applied: Default::default(),
        }
    }
}

impl SparkExecutor {
    /// Where a task's attempts run in this environment: its `backend`, unless
    /// `SLUICE_SPARK_BACKEND` overrides it (an invalid override fails the attempts).
    pub fn backend_of(&self, task: &sluice_model::spec::SparkTask) -> Result<SparkBackend, String> {
        match &self.backend {
            Ok(chosen) => Ok(chosen.backend_of(task)),
            Err(e) => Err(e.clone()),
        }
    }

    /// Whether a task's attempts run outside this process (an EMR step, an EMR Serverless
    /// job run), and so survive it.
    pub fn runs_remotely(&self, kind: &TaskKind) -> bool {
        matches!(kind, TaskKind::Spark(s) if self.backend_of(s).is_ok_and(SparkBackend::is_remote))
    }

    /// The EMR tasks of a DAG that create transient clusters: (task id, connection name).
    fn transient_tasks(&self, dag: &sluice_model::spec::Dag) -> Vec<(String, String)> {
        dag.tasks
            .iter()
            .filter_map(|(id, spec)| match &spec.kind {
                TaskKind::Spark(s)
                    if self.backend_of(s) == Ok(SparkBackend::Emr)
                        && s.transient_cluster.is_some() =>
                {
                    s.connection.clone().map(|c| (id.clone(), c))
                }
                _ => None,
            })
            .collect()
    }

    /// A run ended: its transient clusters go.
    pub fn run_ended(
        &self,
        dag: &sluice_model::spec::Dag,
        logical_date: chrono::DateTime<chrono::Utc>,
    ) {
        for (task, connection) in self.transient_tasks(dag) {
            if let Ok(conn) = self.connections.emr(&connection) {
                let name = transient::cluster_name(&dag.dag, logical_date, &task);
                self.emr
                    .terminate_clusters(connection, conn, vec![name], &self.runtime);
            }
        }
    }

    /// Before the process exits: lets cluster terminations under way finish (bounded).
    pub fn finish_cleanups(&self) {
        self.emr
            .finish_cleanups(std::time::Duration::from_secs(30), &self.runtime);
    }

    /// At start-up: applies and checks the managed scaling and idle auto-termination that
    /// the DAG's EMR connections set on their long-running clusters, once per connection.
    /// Each policy set, or why a connection's are not in place.
    pub fn apply_cluster_policies(
        &self,
        dag: &sluice_model::spec::Dag,
    ) -> Vec<Result<String, String>> {
        let mut notes = Vec::new();
        for spec in dag.tasks.values() {
            let TaskKind::Spark(s) = &spec.kind else {
                continue;
            };
            let (Some(name), None) = (&s.connection, &s.transient_cluster) else {
                continue;
            };
            if self.backend_of(s) != Ok(SparkBackend::Emr) {
                continue;
            }
            let Ok(conn) = self.connections.emr(name) else {
                continue;
            };
            if conn.managed_scaling.is_none() && conn.idle_timeout_seconds.is_none() {
                continue;
            }
            let first = self
                .policies_applied
                .lock()
                .is_ok_and(|mut seen| seen.insert(name.clone()));
            if !first {
                continue;
            }
            match self.emr.apply_cluster_policies(name, &conn, &self.runtime) {
                Ok(done) => notes.extend(
                    done.into_iter()
                        .map(|d| Ok(format!("{d} (connection `{name}`, set and read back)"))),
                ),
                Err(e) => notes.push(Err(format!(
                    "the cluster policies of connection `{name}` are not in place: {e}"
                ))),
            }
        }
        notes
    }

    /// At start-up: terminates transient clusters of the DAG's runs that are over.
    pub fn sweep(
        &self,
        dag: &sluice_model::spec::Dag,
        run_is_over: impl Fn(chrono::DateTime<chrono::Utc>) -> bool,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (_, connection) in self.transient_tasks(dag) {
            if !seen.insert(connection.clone()) {
                continue;
            }
            let Ok(conn) = self.connections.emr(&connection) else {
                continue;
            };
            match self
                .emr
                .sweep(&connection, &conn, &dag.dag, &run_is_over, &self.runtime)
            {
                Ok(0) => {}
                Ok(n) => notes.push(format!(
                    "terminated {n} transient EMR cluster(s) of ended runs of {}",
                    dag.dag
                )),
                Err(e) => notes.push(format!(
                    "could not sweep the transient EMR clusters of {}: {e}",
                    dag.dag
                )),
            }
        }
        notes
    }
}

impl Executor for SparkExecutor {
    fn name(&self) -> &'static str {
        "spark"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let TaskKind::Spark(task) = &attempt.kind else {
            return reporter.fatal(super::wrong_kind("spark", &attempt.kind));
        };
        let backend = match self.backend_of(task) {
            Ok(backend) => backend,
            Err(e) => return reporter.fatal(e),
        };
        match backend {
            SparkBackend::Local => {
                let command = local::command(task, &self.dags_dir, &attempt.idempotency_key);
                let attempt = Attempt {
                    kind: TaskKind::Command(command),
                    ..attempt
                };
                self.command.start(attempt, reporter);
            }
            remote => {
                let Some(name) = task.connection.clone() else {
                    return reporter.fatal(match remote {
                        SparkBackend::EmrServerless => "`backend: emr_serverless` needs `connection`: the EMR connection (application_id, execution_role_arn, region) to run on",
                        _ => "`backend: emr` needs `connection`: the EMR connection (cluster, region) to submit to",
                    }.into());
                };
                let conn = match self.connections.emr(&name) {
                    Ok(conn) => conn,
                    Err(e) => return reporter.fatal(e.to_string()),
                };
                let task = task.clone();
                let (emr, serverless) = (Arc::clone(&self.emr), Arc::clone(&self.serverless));
                self.runtime.spawn(async move {
                    let (outcome, output) = if remote == SparkBackend::EmrServerless {
                        serverless::run(serverless, &attempt, &task, &name, &conn, &reporter).await
                    } else {
                        emr::run(emr, &attempt, &task, &name, &conn, &reporter).await
                    };
                    reporter.send(Report::Finished { outcome, output });
                });
            }
        }
    }

    /// Local runs are processes of the command executor, which the scheduler cancels
    /// itself; EMR steps (CancelSteps) and EMR Serverless job runs (CancelJobRun) here.
    fn cancel(&self, idempotency_key: &str) {
        self.emr.cancel(idempotency_key, &self.runtime);
        self.serverless.cancel(idempotency_key, &self.runtime);
    }
}

#[cfg(test)]
mod override_tests {
    use super::{BackendOverride, SparkBackend};
    use sluice_model::spec::SparkTask;

    fn task(connection: Option<&str>, backend: SparkBackend) -> SparkTask {
        let mut task: SparkTask = serde_json::from_value(serde_json::json!({
            "application": "jobs/a.py"
        }))
        .expect("a minimal Spark task");
        task.connection = connection.map(str::to_owned);
        task.backend = backend;
        task
    }

    #[test]
    fn one_word_overrides_every_task_and_a_list_only_the_named_connections() {
        let every = BackendOverride::parse("local").expect("valid");
        assert_eq!(
            every.backend_of(&task(Some("a"), SparkBackend::Emr)),
            SparkBackend::Local
        );
        assert_eq!(
            every.backend_of(&task(None, SparkBackend::Emr)),
            SparkBackend::Local
        );

        let some = BackendOverride::parse("analytics_emr=local, other = emr").expect("valid");
        assert_eq!(
            some.backend_of(&task(Some("analytics_emr"), SparkBackend::Emr)),
            SparkBackend::Local
        );
        assert_eq!(
            some.backend_of(&task(Some("other"), SparkBackend::Local)),
            SparkBackend::Emr
        );
        assert_eq!(
            some.backend_of(&task(Some("chaos_emr"), SparkBackend::Emr)),
            SparkBackend::Emr,
            "an unnamed connection keeps its task's backend"
        );
    }

    #[test]
    fn a_bad_override_says_what_is_expected() {
        for bad in ["yarn", "analytics_emr=yarn", "analytics_emr=local,nonsense"] {
            let error = BackendOverride::parse(bad).expect_err(bad);
            assert!(error.contains("SLUICE_SPARK_BACKEND"), "{error}");
            assert!(error.contains("local"), "{error}");
        }
    }
}
