//! `backend: emr`: the application runs as an EMR step, `command-runner.jar spark-submit …`.
//!
//! Idempotency: EMR's AddJobFlowSteps takes no client token, so the step is named with the
//! attempt's idempotency key (`<dag>/<run_id>/<task>/<try>`). Before adding, the cluster's
//! steps are listed and a step with that name is adopted instead of adding a second one —
//! after a crash, a re-dispatch, or an AddJobFlowSteps whose answer was lost. For the same
//! reason AddJobFlowSteps is never retried blindly (the SDK's retry is off for it): each try
//! lists first. A retry of the task (a new try number) is a new step, by design.
//!
//! Polling: DescribeStep with a wait that grows by half each time up to a cap, with jitter,
//! so that many steps do not poll in lockstep. Throttling and 5xx answers are retried by
//! the SDK (standard retry, `api_attempts`) and, beyond that, polling just goes on: neither
//! uses a task try. The attempt's timeout and `sluice clear` cancel the step (CancelSteps).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_emr::Client;
use aws_sdk_emr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_emr::types::{ActionOnFailure, HadoopJarStepConfig, StepConfig, StepState};
use chrono::{DateTime, Utc};

use super::{submit, transient};
use crate::connections::EmrConnection;
use crate::executor::{Attempt, Report, Reporter};
use sluice_core::Outcome;
use sluice_model::spec::SparkTask;

/// Clients by connection name: one per connection, shared by its attempts.
#[derive(Default)]
pub struct EmrClients {
    clients: Mutex<HashMap<String, Clients>>,
    /// Steps of running attempts, by idempotency key: what `cancel` stops.
    running: Mutex<HashMap<String, (Client, String, String)>>,
    /// Cluster terminations under way.
    cleanups: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Asked before a step is added or a cluster started (HA: only while the lease is ours).
    side_effects: crate::ha::SideEffects,
}

#[derive(Clone)]
struct Clients {
    /// With the SDK's standard retry (throttling, 5xx, timeouts).
    retrying: Client,
    /// Without retry: for AddJobFlowSteps, which must not be repeated without listing first.
    once: Client,
    side_effects: crate::ha::SideEffects,
}

impl EmrClients {
    pub fn fenced(side_effects: crate::ha::SideEffects) -> EmrClients {
        EmrClients {
            side_effects,
            ..EmrClients::default()
        }
    }

    async fn for_connection(&self, name: &str, conn: &EmrConnection) -> Clients {
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(name).cloned()) {
            return c;
        }
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(conn.region.clone()))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(conn.api_attempts.max(1)),
            );
        if let Some(url) = &conn.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        let shared = loader.load().await;
        let once = aws_sdk_emr::config::Builder::from(&shared)
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build();
        let clients = Clients {
            retrying: Client::new(&shared),
            once: Client::from_conf(once),
            side_effects: self.side_effects.clone(),
        };
        if let Ok(mut map) = self.clients.lock() {
            map.insert(name.to_owned(), clients.clone());
        }
        clients
    }

    /// Terminates the transient clusters with these names (a run ended).
    pub fn terminate_clusters(
        self: &Arc<Self>,
        connection_name: String,
        conn: EmrConnection,
        names: Vec<String>,
        runtime: &tokio::runtime::Handle,
    ) {
        let clients = Arc::clone(self);
        let cleanup = runtime.spawn(async move {
            let api = clients.for_connection(&connection_name, &conn).await;
            for name in names {
                if let Ok(found) = transient::active_clusters(&api.retrying, &name).await {
                    let ids = found
                        .into_iter()
                        .filter(|(n, _)| *n == name)
                        .map(|(_, id)| id)
                        .collect();
                    let _ = transient::terminate(&api.retrying, ids).await;
                }
            }
        });
        if let Ok(mut cleanups) = self.cleanups.lock() {
            cleanups.retain(|c| !c.is_finished());
            cleanups.push(cleanup);
        }
    }

    /// Waits (at most `limit`) for cluster terminations still under way: before the
    /// process exits. What does not finish is swept at the next start.
    pub fn finish_cleanups(&self, limit: Duration, runtime: &tokio::runtime::Handle) {
        let cleanups = self
            .cleanups
            .lock()
            .map(|mut c| std::mem::take(&mut *c))
            .unwrap_or_default();
        if cleanups.is_empty() {
            return;
        }
        let _ = runtime.block_on(async move {
            tokio::time::timeout(limit, async move {
                for cleanup in cleanups {
                    let _ = cleanup.await;
                }
            })
            .await
        });
    }

    /// Terminates the DAG's transient clusters whose run has ended (or is unknown): those a
    /// previous process could not terminate. Blocks until done; call at start-up, outside
    /// the runtime.
    pub fn sweep(
        self: &Arc<Self>,
        connection_name: &str,
        conn: &EmrConnection,
        dag: &str,
        run_is_over: impl Fn(DateTime<Utc>) -> bool,
        runtime: &tokio::runtime::Handle,
    ) -> Result<usize, String> {
        let prefix = format!("sluice:{dag}:");
        let api = runtime.block_on(self.for_connection(connection_name, conn));
        // Start-up must not hang on an unreachable EMR: the next start sweeps again.
        // The timer must be made inside the runtime.
        let listed = runtime.block_on(async {
            tokio::time::timeout(
                std::time::Duration::from_secs(30),
                transient::active_clusters(&api.retrying, &prefix),
            )
            .await
        });
        let found = match listed {
            Ok(found) => found.map_err(|e| e.message)?,
            Err(_) => return Err("EMR did not answer within 30 s".into()),
        };
        let stale: Vec<String> = found
            .into_iter()
            .filter(|(name, _)| {
                transient::owner(name).is_some_and(|(owner, at)| owner == dag && run_is_over(at))
            })
            .map(|(_, id)| id)
            .collect();
        let count = stale.len();
        runtime
            .block_on(transient::terminate(&api.retrying, stale))
            .map_err(|e| e.message)?;
        Ok(count)
    }

    /// Applies and reads back the policies the connection sets on its long-running
    /// cluster (managed scaling, idle auto-termination). Blocks, at most 30 s; call at
    /// start-up, outside the runtime.
    pub fn apply_cluster_policies(
        &self,
        connection_name: &str,
        conn: &EmrConnection,
        runtime: &tokio::runtime::Handle,
    ) -> Result<Vec<String>, String> {
        let api = runtime.block_on(self.for_connection(connection_name, conn));
        let applied = runtime.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(30),
                super::cluster_policies::apply(&api.retrying, conn),
            )
            .await
        });
        applied.unwrap_or_else(|_| Err("EMR did not answer within 30 s".into()))
    }

    /// Asks EMR to cancel the step of a running attempt.
    pub fn cancel(&self, idempotency_key: &str, runtime: &tokio::runtime::Handle) {
        let found = self
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(idempotency_key).cloned());
        if let Some((client, cluster, step)) = found {
            runtime.spawn(async move {
                let _ = cancel_step(&client, &cluster, &step).await;
            });
        }
    }
}

/// Why an EMR call failed, and whether waiting could help.
pub(super) struct ApiError {
    pub message: String,
    pub transient: bool,
}

pub(super) fn api_error<
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
>(
    what: &str,
    e: &SdkError<E, R>,
) -> ApiError {
    let transient = match e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code.contains("InternalServer")
                || code.contains("ServiceUnavailable")
        }
        _ => false,
    };
    ApiError {
        message: format!("{what}: {}", DisplayErrorContext(e)),
        transient,
    }
}

/// The task with its application and Python files as the cluster's side reads them: S3
/// paths as they are, relative ones under the connection's `jobs_uri`; a local path is
/// refused with what to do.
pub(super) fn with_remote_paths(
    task: &SparkTask,
    conn: &EmrConnection,
) -> Result<SparkTask, String> {
    let remote = |path: &str| -> Result<String, String> {
        if path.contains("://") {
            return Ok(path.to_owned());
        }
        match &conn.jobs_uri {
            Some(root) if !path.starts_with('/') => {
                Ok(format!("{}/{path}", root.trim_end_matches('/')))
            }
            _ => Err(format!(
                "`{path}` is a local path; the EMR backends run files from S3 (s3://bucket/key) \
                 — upload it, set the connection's `jobs_uri` for relative paths, or use `backend: local`"
            )),
        }
    };
    let mut task = task.clone();
    task.application = remote(&task.application)?;
    task.py_files = task
        .py_files
        .iter()
        .map(|p| remote(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(task)
}

/// Runs one attempt's step to its end: adopt or add, then poll.
pub async fn run(
    clients: Arc<EmrClients>,
    attempt: &Attempt,
    task: &SparkTask,
    connection_name: &str,
    conn: &EmrConnection,
    reporter: &Reporter,
) -> (Outcome, Option<serde_json::Value>) {
    let fail = |retryable: bool, reason: String| {
        (
            Outcome::Failed { retryable, reason },
            None::<serde_json::Value>,
        )
    };
    let task = match with_remote_paths(task, conn) {
        Ok(task) => task,
        Err(reason) => return fail(false, reason),
    };
    let task = &task;
    let api = clients.for_connection(connection_name, conn).await;
    let cluster = match (&task.transient_cluster, &conn.cluster_id) {
        (Some(spec), _) => {
            let name =
                transient::cluster_name(&attempt.dag_id, attempt.logical_date, &attempt.task_id);
            if let Err(reason) = api.side_effects.allow("RunJobFlow") {
                return fail(true, reason);
            }
            match transient::find_or_create(&api.retrying, &api.once, conn, spec, &name).await {
                Ok(id) => id,
                Err(e) => return fail(true, e.message),
            }
        }
        (None, Some(id)) => id.clone(),
        (None, None) => {
            return fail(
                false,
                format!(
                    "connection `{connection_name}` has no `cluster_id` and the task no `transient_cluster`: \
                     say which cluster runs the step"
                ),
            );
        }
    };
    let name = attempt.idempotency_key.clone();
    let mut args = vec![
        "spark-submit".to_owned(),
        "--deploy-mode".to_owned(),
        "cluster".to_owned(),
    ];
    args.extend(submit::arguments(task, &task.application, &name));

    let step_id = match adopt_or_add(&api, &cluster, &name, args, conn).await {
        Ok(id) => id,
        Err(e) => return fail(true, e.message),
    };
    if let Ok(mut running) = clients.running.lock() {
        running.insert(
            name.clone(),
            (api.retrying.clone(), cluster.clone(), step_id.clone()),
        );
    }
    reporter.send(Report::Started {
        handle: Some(format!("emr {cluster} {step_id}")),
    });
    let ended = follow(
        attempt,
        &format!("step {step_id}"),
        poll(&api.retrying, &cluster, &step_id, &name, conn),
        || async {
            cancel_step(&api.retrying, &cluster, &step_id)
                .await
                .map_err(|e| e.message)
        },
    )
    .await;
    if let Ok(mut running) = clients.running.lock() {
        running.remove(&name);
    }
    let output = serde_json::json!({"cluster_id": cluster, "step_id": step_id});
    match ended {
        Outcome::Success => (Outcome::Success, Some(output)),
        failed => (failed, None),
    }
}

/// Follows a remote run (`polled` until it ends) within the attempt's timeout; past it,
/// `cancel`s it and fails retryably, saying whether the cancel took. `what` names the
/// run in that reason ("step s-1", "job run 00f…").
pub(super) async fn follow<C, F>(
    attempt: &Attempt,
    what: &str,
    polled: impl std::future::Future<Output = Outcome>,
    cancel: C,
) -> Outcome
where
    C: FnOnce() -> F,
    F: std::future::Future<Output = Result<(), String>>,
{
    let Some(limit) = attempt.timeout else {
        return polled.await;
    };
    if let Ok(ended) = tokio::time::timeout(limit.as_std(), polled).await {
        return ended;
    }
    let cancelled = match cancel().await {
        Ok(()) => "cancelled".to_owned(),
        Err(e) => format!("could not be cancelled ({e})"),
    };
    Outcome::Failed {
        retryable: true,
        reason: format!("timed out after {limit}: {what} {cancelled}"),
    }
}

/// The id of the step named `name` on the cluster, adding it when there is none.
async fn adopt_or_add(
    api: &Clients,
    cluster: &str,
    name: &str,
    args: Vec<String>,
    conn: &EmrConnection,
) -> Result<String, ApiError> {
    let mut wait = Duration::from_secs_f64(conn.poll_initial_seconds);
    let mut last_error = None;
    for _ in 0..conn.api_attempts.max(1) {
        match find_step(&api.retrying, cluster, name).await {
            Ok(Some(id)) => return Ok(id),
            Ok(None) => {}
            Err(e) if e.transient => {
                last_error = Some(e);
                tokio::time::sleep(wait).await;
                wait = grow(wait, conn);
                continue;
            }
            Err(e) => return Err(e),
        }
        // After the lookup, right before the one call EMR cannot deduplicate.
        api.side_effects
            .allow("AddJobFlowSteps")
            .map_err(|message| ApiError {
                message,
                transient: false,
            })?;
        let jar = HadoopJarStepConfig::builder()
            .jar("command-runner.jar")
            .set_args(Some(args.clone()))
            .build();
        let step = StepConfig::builder()
            .name(name)
            .action_on_failure(ActionOnFailure::Continue)
            .hadoop_jar_step(jar)
            .build();
        let added = api
            .once
            .add_job_flow_steps()
            .job_flow_id(cluster)
            .steps(step)
            .set_execution_role_arn(conn.execution_role_arn.clone())
            .send()
            .await;
        match added {
            Ok(out) => {
                return out.step_ids().first().cloned().ok_or(ApiError {
                    message: "AddJobFlowSteps answered no step id".into(),
                    transient: true,
                });
            }
            // The step may have been added before the answer was lost: list again first.
            Err(e) => {
                let e = api_error("AddJobFlowSteps", &e);
                if !e.transient {
                    return Err(e);
                }
                last_error = Some(e);
                tokio::time::sleep(wait).await;
                wait = grow(wait, conn);
            }
        }
    }
    Err(last_error.unwrap_or(ApiError {
        message: "could not add the step".into(),
        transient: true,
    }))
}

/// The newest step named `name` on the cluster.
async fn find_step(client: &Client, cluster: &str, name: &str) -> Result<Option<String>, ApiError> {
    let mut marker = None;
    loop {
        let page = client
            .list_steps()
            .cluster_id(cluster)
            .set_marker(marker)
            .send()
            .await
            .map_err(|e| api_error("ListSteps", &e))?;
        if let Some(step) = page.steps().iter().find(|s| s.name() == Some(name)) {
            return Ok(step.id().map(str::to_owned));
        }
        match page.marker() {
            Some(next) => marker = Some(next.to_owned()),
            None => return Ok(None),
        }
    }
}

/// Asks `look` at growing, jittered intervals (see [`grow`], [`jitter`]) until it gives an
/// outcome; the attempt's timeout, around this, bounds the wait.
pub(super) async fn poll_until<F, Fut>(conn: &EmrConnection, key: &str, mut look: F) -> Outcome
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Outcome>>,
{
    let mut wait = Duration::from_secs_f64(conn.poll_initial_seconds);
    let mut round: u64 = 0;
    loop {
        tokio::time::sleep(jitter(wait, key, round)).await;
        round += 1;
        wait = grow(wait, conn);
        if let Some(outcome) = look().await {
            return outcome;
        }
    }
}

/// A poll's failed call: nothing yet when waiting may help (throttling, 5xx, network: the
/// SDK retried already, polling goes on), else a retryable failure of the attempt.
pub(super) fn failed_poll(e: ApiError) -> Option<Outcome> {
    (!e.transient).then_some(Outcome::Failed {
        retryable: true,
        reason: e.message,
    })
}

/// Polls the step until it ends; maps its final state to an outcome.
async fn poll(
    client: &Client,
    cluster: &str,
    step_id: &str,
    key: &str,
    conn: &EmrConnection,
) -> Outcome {
    poll_until(conn, key, || async {
        let described = client
            .describe_step()
            .cluster_id(cluster)
            .step_id(step_id)
            .send()
            .await;
        let out = match described {
            Ok(out) => out,
            Err(e) => return failed_poll(api_error("DescribeStep", &e)),
        };
        let status = out.step().and_then(|s| s.status())?;
        match status.state() {
            Some(StepState::Completed) => Some(Outcome::Success),
            Some(StepState::Failed) => {
                let details = status.failure_details();
                // EMR's texts go into the attempt record as they are, up to a bound: a
                // failure message of megabytes would not fit a reason.
                let part = |label: &str, value: Option<&str>| {
                    value
                        .map(|v| format!("; {label}: {}", bounded(v)))
                        .unwrap_or_default()
                };
                Some(Outcome::Failed {
                    retryable: true,
                    reason: format!(
                        "EMR step {step_id} failed{}{}{}",
                        part("reason", details.and_then(|d| d.reason())),
                        part("message", details.and_then(|d| d.message())),
                        part("log", details.and_then(|d| d.log_file())),
                    ),
                })
            }
            Some(StepState::Cancelled) | Some(StepState::Interrupted) => Some(Outcome::Failed {
                retryable: true,
                reason: format!(
                    "EMR step {step_id} was {}",
                    status
                        .state()
                        .map(|s| s.as_str().to_lowercase())
                        .unwrap_or_default()
                ),
            }),
            // Pending, running, and any state this SDK does not know: still going; the
            // attempt's timeout bounds the wait.
            _ => None,
        }
    })
    .await
}

/// A text from EMR cut to [`MAX_DETAIL_CHARS`], saying so when it was.
pub(super) fn bounded(text: &str) -> String {
    let mut kept: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    if kept.len() < text.len() {
        kept.push_str(" …(cut)");
    }
    kept
}

/// The most of each EMR failure detail (reason, message, log) kept in an attempt's reason.
const MAX_DETAIL_CHARS: usize = 2000;

async fn cancel_step(client: &Client, cluster: &str, step_id: &str) -> Result<(), ApiError> {
    client
        .cancel_steps()
        .cluster_id(cluster)
        .step_ids(step_id)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| api_error("CancelSteps", &e))
}

/// Half as long again, up to the cap.
fn grow(wait: Duration, conn: &EmrConnection) -> Duration {
    wait.mul_f64(1.5).min(Duration::from_secs_f64(
        conn.poll_max_seconds.max(conn.poll_initial_seconds),
    ))
}

/// ±20 %, different per step and round, so that steps started together poll apart.
fn jitter(wait: Duration, key: &str, round: u64) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (key, round).hash(&mut hasher);
    let factor = 0.8 + (hasher.finish() % 401) as f64 / 1000.0;
    wait.mul_f64(factor)
}
