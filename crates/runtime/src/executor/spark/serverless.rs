//! `backend: emr_serverless`: the application runs as a job run of an EMR Serverless
//! application (StartJobRun with a `sparkSubmit` driver).
//!
//! Idempotency: StartJobRun takes a client token, and EMR Serverless answers a repeated
//! token with the job run it already started. The token is derived from the attempt's
//! idempotency key (its SHA-256 in hex: a token allows no `/` or `:`), and the job run is
//! named by the key itself. So the StartJobRun of a restarted scheduler re-dispatching the
//! attempt, or one repeated after a lost answer, finds the same job run: it is adopted,
//! never started a second time. That makes the SDK's own retry safe here (unlike EMR's
//! AddJobFlowSteps). A retry of the task (a new try number) is a new key: a new job run.
//!
//! Polling: GetJobRun with the growing, jittered waits of the EMR backend; throttling and
//! 5xx answers are retried by the SDK and, beyond that, polling goes on. The attempt's
//! timeout and `sluice clear` cancel the job run (CancelJobRun).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_emrserverless::Client;
use aws_sdk_emrserverless::types::{JobDriver, JobRunState, SparkSubmit};
use sha2::{Digest, Sha256};

use super::emr::{api_error, bounded, failed_poll, follow, poll_until, with_remote_paths};
use super::submit;
use crate::connections::EmrConnection;
use crate::executor::{Attempt, Report, Reporter};
use sluice_core::Outcome;
use sluice_model::spec::SparkTask;

/// Clients by connection name, and the job runs of running attempts (what `cancel` stops).
#[derive(Default)]
pub struct ServerlessClients {
    clients: Mutex<HashMap<String, Client>>,
    /// By idempotency key: (client, application id, job run id).
    running: Mutex<HashMap<String, (Client, String, String)>>,
    /// Asked before a job run is started (HA: only while the lease is ours).
    side_effects: crate::ha::SideEffects,
}

impl ServerlessClients {
    pub fn fenced(side_effects: crate::ha::SideEffects) -> ServerlessClients {
        ServerlessClients {
            side_effects,
            ..ServerlessClients::default()
        }
    }

    async fn for_connection(&self, name: &str, conn: &EmrConnection) -> Client {
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
        let client = Client::new(&loader.load().await);
        if let Ok(mut map) = self.clients.lock() {
            map.insert(name.to_owned(), client.clone());
        }
        client
    }

    /// Asks EMR Serverless to cancel the job run of a running attempt.
    pub fn cancel(&self, idempotency_key: &str, runtime: &tokio::runtime::Handle) {
        let found = self
            .running
            .lock()
            .ok()
            .and_then(|m| m.get(idempotency_key).cloned());
        if let Some((client, application, job_run)) = found {
            runtime.spawn(async move {
                let _ = cancel_job_run(&client, &application, &job_run).await;
            });
        }
    }
}

/// The client token of an attempt's job run: the same for every StartJobRun of the
/// attempt, different for every attempt (64 hex digits, what a token allows).
pub fn client_token(idempotency_key: &str) -> String {
    Sha256::digest(idempotency_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What StartJobRun is given for a task: the entry point, its arguments and the
/// `spark-submit` options as one string (EMR Serverless splits it at spaces, so an
/// option with whitespace, a quote or a backslash is refused rather than passed broken).
pub fn spark_submit(task: &SparkTask, name: &str) -> Result<SparkSubmit, String> {
    let options = submit::options(task, name);
    let unsafe_char = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\');
    if let Some(bad) = options.iter().find(|o| o.chars().any(unsafe_char)) {
        return Err(format!(
            "`{bad}` holds whitespace, a quote or a backslash, which EMR Serverless's \
             sparkSubmitParameters (one string, split at spaces) cannot carry safely: remove it \
             from the task's conf, files or name"
        ));
    }
    SparkSubmit::builder()
        .entry_point(&task.application)
        .set_entry_point_arguments(Some(task.args.clone()))
        .spark_submit_parameters(options.join(" "))
        .build()
        .map_err(|e| format!("the job driver: {e}"))
}

/// Runs one attempt's job run to its end: start (or find, by the client token), then poll.
pub async fn run(
    clients: Arc<ServerlessClients>,
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
    let (Some(application), Some(role)) = (&conn.application_id, &conn.execution_role_arn) else {
        return fail(
            false,
            format!(
                "connection `{connection_name}` needs `application_id` (the EMR Serverless \
                 application) and `execution_role_arn` (the job runs' role) for `backend: emr_serverless`"
            ),
        );
    };
    let task = match with_remote_paths(task, conn) {
        Ok(task) => task,
        Err(reason) => return fail(false, reason),
    };
    let name = attempt.idempotency_key.clone();
    let driver = match spark_submit(&task, &name) {
        Ok(driver) => driver,
        Err(reason) => return fail(false, reason),
    };
    let client = clients.for_connection(connection_name, conn).await;
    if let Err(reason) = clients.side_effects.allow("StartJobRun") {
        return fail(true, reason);
    }
    if attempt.try_number > 1 {
        cancel_earlier_tries(&client, application, &name, attempt.try_number).await;
    }
    let mut start = client
        .start_job_run()
        .application_id(application)
        .client_token(client_token(&name))
        .execution_role_arn(role)
        .name(&name)
        .job_driver(JobDriver::SparkSubmit(driver));
    // EMR Serverless cancels a job run over this itself, should the scheduler be gone.
    if let Some(limit) = attempt.timeout {
        let minutes = limit.as_std().as_secs().div_ceil(60).max(5);
        start = start.execution_timeout_minutes(i64::try_from(minutes).unwrap_or(i64::MAX));
    }
    let job_run = match start.send().await {
        Ok(out) => out.job_run_id().to_owned(),
        Err(e) => {
            let e = api_error("StartJobRun", &e);
            return fail(e.transient, e.message);
        }
    };
    if let Ok(mut running) = clients.running.lock() {
        running.insert(
            name.clone(),
            (client.clone(), application.clone(), job_run.clone()),
        );
    }
    reporter.send(Report::Started {
        handle: Some(format!("emr-serverless {application} {job_run}")),
    });
    let ended = follow(
        attempt,
        &format!("job run {job_run}"),
        poll(&client, application, &job_run, &name, conn),
        || cancel_job_run(&client, application, &job_run),
    )
    .await;
    if let Ok(mut running) = clients.running.lock() {
        running.remove(&name);
    }
    let output = serde_json::json!({"application_id": application, "job_run_id": job_run});
    match ended {
        Outcome::Success => (Outcome::Success, Some(output)),
        failed => (failed, None),
    }
}

/// Polls the job run until it ends; maps its final state to an outcome.
async fn poll(
    client: &Client,
    application: &str,
    job_run: &str,
    key: &str,
    conn: &EmrConnection,
) -> Outcome {
    poll_until(conn, key, || async {
        let got = client
            .get_job_run()
            .application_id(application)
            .job_run_id(job_run)
            .send()
            .await;
        let out = match got {
            Ok(out) => out,
            Err(e) => return failed_poll(api_error("GetJobRun", &e)),
        };
        let run = out.job_run()?;
        let ended = match run.state() {
            JobRunState::Success => return Some(Outcome::Success),
            JobRunState::Failed => "failed",
            JobRunState::Cancelled => "was cancelled",
            // Submitted, pending, scheduled, queued, running, cancelling, and any state
            // this SDK does not know: still going; the attempt's timeout bounds the wait.
            _ => return None,
        };
        let details = bounded(run.state_details());
        Some(Outcome::Failed {
            retryable: true,
            reason: if details.is_empty() {
                format!("EMR Serverless job run {job_run} {ended}")
            } else {
                format!("EMR Serverless job run {job_run} {ended}: {details}")
            },
        })
    })
    .await
}

/// Most pages of ListJobRuns looked at for an attempt's earlier tries (50 job runs each,
/// newest first).
const EARLIER_TRIES_PAGES: usize = 10;

/// Before try N > 1: cancels the job runs of the same task instance's earlier tries that
/// are still going. A try whose StartJobRun took effect but whose every answer was lost
/// failed without knowing its job run; the next try has a new key and token, so without
/// this the two would run side by side. Best effort: a listing that fails is left alone
/// (the earlier job run ends at its own `executionTimeoutMinutes`).
async fn cancel_earlier_tries(client: &Client, application: &str, key: &str, try_number: u32) {
    let Some((task_instance, _)) = key.rsplit_once('/') else {
        return;
    };
    let mut token = None;
    for _ in 0..EARLIER_TRIES_PAGES {
        let Ok(page) = client
            .list_job_runs()
            .application_id(application)
            .max_results(50)
            .set_next_token(token)
            .send()
            .await
        else {
            return;
        };
        for run in page.job_runs() {
            let earlier = run
                .name()
                .and_then(|n| n.strip_prefix(task_instance)?.strip_prefix('/'))
                .and_then(|t| t.parse::<u32>().ok())
                .is_some_and(|t| t < try_number);
            let going = !matches!(
                run.state(),
                JobRunState::Success
                    | JobRunState::Failed
                    | JobRunState::Cancelled
                    | JobRunState::Cancelling
            );
            if earlier && going {
                let _ = cancel_job_run(client, application, run.id()).await;
            }
        }
        match page.next_token() {
            Some(next) => token = Some(next.to_owned()),
            None => return,
        }
    }
}

async fn cancel_job_run(client: &Client, application: &str, job_run: &str) -> Result<(), String> {
    client
        .cancel_job_run()
        .application_id(application)
        .job_run_id(job_run)
        .send()
        .await
        .map(|_| ())
        .map_err(|e| api_error("CancelJobRun", &e).message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_attempts_token_is_stable_per_attempt_and_a_valid_token() {
        let first =
            client_token("events_aggregation_15m/scheduled__2025-09-01T10:00:00Z/aggregate/1");
        assert_eq!(
            first,
            client_token("events_aggregation_15m/scheduled__2025-09-01T10:00:00Z/aggregate/1")
        );
        assert_ne!(
            first,
            client_token("events_aggregation_15m/scheduled__2025-09-01T10:00:00Z/aggregate/2")
        );
        assert_eq!(first.len(), 64);
        assert!(first.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn options_with_whitespace_are_refused_and_the_rest_become_parameters() {
        let mut task: SparkTask = serde_json::from_value(serde_json::json!({
            "application": "s3://jobs/agg.py",
            "args": ["--start", "2025-09-01T10:15:00Z"],
            "conf": {"spark.sql.shuffle.partitions": "64"},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let driver = spark_submit(&task, "dag/run/aggregate/1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(driver.entry_point(), "s3://jobs/agg.py");
        assert_eq!(
            driver.entry_point_arguments(),
            ["--start", "2025-09-01T10:15:00Z"]
        );
        assert_eq!(
            driver.spark_submit_parameters(),
            Some("--name dag/run/aggregate/1 --conf spark.sql.shuffle.partitions=64")
        );
        for hostile in ["-Da=1 -Db=2", "x\"--conf", "a'b", "a\\b"] {
            task.conf
                .insert("spark.driver.extraJavaOptions".into(), hostile.into());
            let refused = spark_submit(&task, "dag/run/aggregate/1")
                .err()
                .unwrap_or_default();
            assert!(
                refused.contains("a quote or a backslash"),
                "{hostile}: {refused}"
            );
        }
    }
}
