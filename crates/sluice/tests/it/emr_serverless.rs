//! Spark tasks with `backend: emr_serverless` against the EMR test server (moto's EMR
//! Serverless backend behind tests/emr_server/server.py, which gives job runs a life, keeps
//! client tokens as EMR Serverless does, and injects faults; SLUICE_TEST_EMR_ENDPOINT).
//! The real `sluice` binary runs the backfills; each test has an application of its own.

use sluice_tests as support;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use support::emr::{JobRun, calls, endpoint, job_runs, serverless_application, serverless_fault};

type Error = Box<dyn std::error::Error>;

const KEY_PREFIX: &str = "serverless/backfill__2025-09-01T10:00:00Z/aggregate/";

struct Case {
    root: PathBuf,
    connection: String,
    application: String,
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Case {
    /// An application of its own and a DAG `serverless` with one Spark task on it.
    fn new(name: &str, task_fields: &str) -> Result<Case, Error> {
        let application = serverless_application(&format!("sluice-{name}"))?;
        let root =
            std::env::temp_dir().join(format!("sluice-serverless-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dags"))?;
        std::fs::write(
            root.join("dags/serverless.yaml"),
            format!(
                "dag: serverless\nschedule: \"*/15 * * * *\"\nstart: 2025-09-01T10:00:00Z\ntasks:\n  aggregate:\n    type: spark\n    backend: emr_serverless\n    connection: test_serverless\n    application: s3://jobs/aggregate_15m.py\n{task_fields}"
            ),
        )?;
        let connection = serde_json::json!({
            "type": "emr", "application_id": application, "region": "us-east-1",
            "endpoint_url": endpoint(),
            "execution_role_arn": "arn:aws:iam::123456789012:role/EMRServerlessJobRole",
            "poll_initial_seconds": 0.1, "poll_max_seconds": 0.4, "api_attempts": 4
        })
        .to_string();
        Ok(Case {
            root,
            connection,
            application,
        })
    }

    fn backfill_command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .arg("--dags")
            .arg(self.root.join("dags"))
            .arg("--state")
            .arg(self.root.join("state"))
            .env("SLUICE_CONN_TEST_SERVERLESS", &self.connection)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .args([
                "backfill",
                "serverless",
                "--from",
                "2025-09-01T10:00:00Z",
                "--to",
                "2025-09-01T10:15:00Z",
            ]);
        command
    }

    fn backfill(&self) -> Result<(i32, String), Error> {
        let out = self.backfill_command().output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The run's attempts: (handle, error).
    fn attempts(&self) -> Result<Vec<(Option<String>, String)>, Error> {
        let store = sluice_store::Store::open(&self.root.join("state"))?;
        let at = chrono::DateTime::parse_from_rfc3339("2025-09-01T10:00:00Z")?.into();
        Ok(store
            .attempts_of_run("serverless", at)?
            .into_iter()
            .map(|a| (a.handle.clone(), a.error.clone().unwrap_or_default()))
            .collect())
    }

    fn job_runs(&self) -> Result<Vec<JobRun>, Error> {
        job_runs(&self.application)
    }

    /// The application has exactly one job run, the one the single attempt followed.
    fn the_one_job_run(&self) -> Result<JobRun, Error> {
        let mut runs = self.job_runs()?;
        assert_eq!(runs.len(), 1, "{runs:?}");
        let attempts = self.attempts()?;
        assert_eq!(attempts.len(), 1, "{attempts:?}");
        assert_eq!(
            attempts[0].0,
            Some(format!(
                "emr-serverless {} {}",
                self.application, runs[0].id
            ))
        );
        Ok(runs.remove(0))
    }
}

fn token_of(key: &str) -> String {
    sluice_runtime::executor::spark::serverless::client_token(key)
}

#[test]
fn a_job_run_runs_to_success_named_and_tokened_by_the_attempt() -> Result<(), Error> {
    let case = Case::new(
        "ok",
        "    args: [--start, \"{{ data_interval_start }}\"]\n    conf: { spark.sql.shuffle.partitions: \"8\" }\n    timeout: 20m\n",
    )?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let run = case.the_one_job_run()?;
    let key = format!("{KEY_PREFIX}1");
    assert_eq!(run.state, "SUCCESS");
    assert_eq!(run.name.as_deref(), Some(key.as_str()));
    assert_eq!(run.client_token, Some(token_of(&key)));
    assert_eq!(run.args, ["--start", "2025-09-01T10:00:00Z"]);
    assert_eq!(
        run.parameters.as_deref(),
        Some(format!("--name {key} --conf spark.sql.shuffle.partitions=8").as_str())
    );
    // EMR Serverless's own limit is the attempt's, should the scheduler be gone.
    assert_eq!(run.timeout_minutes, Some(20));
    Ok(())
}

#[test]
fn a_failed_job_run_reports_its_details_and_a_retry_is_a_new_job_run() -> Result<(), Error> {
    let case = Case::new(
        "failed",
        "    args: [--sluice-test-fail]\n    retries: 1\n    retry_delay: 0s\n",
    )?;
    let (code, _) = case.backfill()?;
    assert_eq!(code, 1);
    let runs = case.job_runs()?;
    let names: Vec<Option<&str>> = runs.iter().map(|r| r.name.as_deref()).collect();
    let (first, second) = (format!("{KEY_PREFIX}1"), format!("{KEY_PREFIX}2"));
    assert_eq!(names, [Some(first.as_str()), Some(second.as_str())]);
    assert!(runs.iter().all(|r| r.state == "FAILED"), "{runs:?}");
    assert_ne!(runs[0].client_token, runs[1].client_token);
    let attempts = case.attempts()?;
    assert_eq!(attempts.len(), 2);
    for (_, error) in &attempts {
        assert!(error.contains("EMR Serverless job run"), "{error}");
        assert!(error.contains("failed: Job failed"), "{error}");
        assert!(error.contains("injected failure"), "{error}");
    }
    Ok(())
}

#[test]
fn a_job_run_over_the_timeout_is_cancelled() -> Result<(), Error> {
    let case = Case::new(
        "timeout",
        "    args: [--sluice-test-hang]\n    timeout: 2s\n",
    )?;
    let (code, _) = case.backfill()?;
    assert_eq!(code, 1);
    let run = case.the_one_job_run()?;
    assert_eq!(run.state, "CANCELLED", "{run:?}");
    // EMR Serverless takes no limit under 5 minutes: its own is 5, the attempt's is 2 s.
    assert_eq!(run.timeout_minutes, Some(5));
    let (_, error) = &case.attempts()?[0];
    assert!(
        error.contains("timed out after 2s")
            && error.contains(&format!("job run {} cancelled", run.id)),
        "{error}"
    );
    Ok(())
}

/// StartJobRun takes effect and its answer is lost: the retry carries the same client
/// token and finds the same job run. Two calls, one job run.
#[test]
fn a_lost_answer_never_starts_a_second_job_run() -> Result<(), Error> {
    let case = Case::new("lost", "")?;
    serverless_fault(&case.application, "StartJobRun", 500, 1, true)?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let run = case.the_one_job_run()?;
    assert_eq!(run.state, "SUCCESS");
    let starts = calls()?
        .get(&format!("StartJobRun {}", case.application))
        .copied();
    assert_eq!(
        starts,
        Some(2),
        "the first answer was lost, the retry found the run"
    );
    Ok(())
}

/// Every answer of a try's StartJobRun is lost although the first took effect: the try
/// fails without knowing its job run, and the next try, before starting its own, cancels
/// it. Never two job runs going for one task instance. (The job runs hang, as a long
/// Spark job would outlast the retries: only a cancel ends the first one.)
#[test]
fn a_job_run_whose_every_start_answer_was_lost_is_cancelled_by_the_next_try() -> Result<(), Error> {
    let case = Case::new(
        "orphan",
        "    args: [--sluice-test-hang]\n    timeout: 3s\n    retries: 1\n    retry_delay: 0s\n",
    )?;
    // The connection's 4 API attempts: all four answers lost.
    serverless_fault(&case.application, "StartJobRun", 500, 4, true)?;
    let (code, _) = case.backfill()?;
    assert_eq!(code, 1, "the second try hangs until its timeout");
    let runs = case.job_runs()?;
    let named: Vec<(Option<&str>, &str)> = runs
        .iter()
        .map(|r| (r.name.as_deref(), r.state.as_str()))
        .collect();
    let (first, second) = (format!("{KEY_PREFIX}1"), format!("{KEY_PREFIX}2"));
    assert_eq!(
        named,
        [
            (Some(first.as_str()), "CANCELLED"),
            (Some(second.as_str()), "CANCELLED")
        ],
        "the first try's job run was cancelled by the second try, the second by its timeout"
    );
    let attempts = case.attempts()?;
    assert_eq!(attempts.len(), 2);
    assert!(
        attempts[0].0.is_none(),
        "the first try never knew its job run"
    );
    assert!(attempts[0].1.contains("StartJobRun"), "{}", attempts[0].1);
    assert!(
        attempts[1].1.contains("timed out after 3s"),
        "{}",
        attempts[1].1
    );
    let starts = calls()?
        .get(&format!("StartJobRun {}", case.application))
        .copied();
    assert_eq!(
        starts,
        Some(5),
        "four lost answers, then the second try's start"
    );
    Ok(())
}

/// The scheduler is killed (SIGKILL) after StartJobRun: the restarted one starts the same
/// attempt again, with the same token, and adopts the job run instead of starting one.
#[test]
fn a_scheduler_killed_after_starting_the_job_run_adopts_it_on_restart() -> Result<(), Error> {
    let case = Case::new("crash", "")?;
    let mut child = case
        .backfill_command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let started = Instant::now();
    while case.job_runs()?.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no job run was started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill()?;
    child.wait()?;
    let before = case.job_runs()?;
    assert_eq!(before.len(), 1);
    assert_ne!(
        before[0].state, "SUCCESS",
        "killed while the job run was going"
    );
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let run = case.the_one_job_run()?;
    assert_eq!(run.id, before[0].id, "the same job run, adopted");
    assert_eq!(run.name, Some(format!("{KEY_PREFIX}1")), "the same try");
    assert_eq!(run.state, "SUCCESS");
    Ok(())
}
