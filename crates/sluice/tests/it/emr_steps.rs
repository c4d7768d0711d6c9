//! Spark tasks with `backend: emr` against the EMR test server (moto's EMR backend behind
//! tests/emr_server/server.py, started by scripts/test through scripts/services/emr, its
//! address in SLUICE_TEST_EMR_ENDPOINT). The real `sluice` binary runs the backfills.

use sluice_tests as support;

use std::path::PathBuf;
use std::process::Command;

type Error = Box<dyn std::error::Error>;

use support::emr::{Step, client, cluster, cluster_named, endpoint, fault, http, runtime, steps};

struct Case {
    root: PathBuf,
    connection: String,
    dag: String,
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Case {
    /// A DAG `emr` with one Spark task on the cluster, with extra task fields.
    fn new(name: &str, cluster: &str, task_fields: &str) -> Result<Case, Error> {
        let root = std::env::temp_dir().join(format!("sluice-emr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dags"))?;
        std::fs::write(
            root.join("dags/emr.yaml"),
            format!(
                "dag: emr\nschedule: \"*/15 * * * *\"\nstart: 2025-09-01T10:00:00Z\ntasks:\n  aggregate:\n    type: spark\n    backend: emr\n    connection: test_emr\n{task_fields}"
            ),
        )?;
        let connection = serde_json::json!({
            "type": "emr", "cluster_id": cluster, "region": "us-east-1", "endpoint_url": endpoint(),
            "poll_initial_seconds": 0.1, "poll_max_seconds": 0.4, "api_attempts": 4
        })
        .to_string();
        Ok(Case {
            root,
            connection,
            dag: "emr".into(),
        })
    }

    /// The same case with more fields in its connection.
    fn with_connection(mut self, extra: serde_json::Value) -> Result<Case, Error> {
        let mut connection: serde_json::Value = serde_json::from_str(&self.connection)?;
        if let (Some(fields), Some(more)) = (connection.as_object_mut(), extra.as_object()) {
            fields.extend(more.clone());
        }
        self.connection = connection.to_string();
        Ok(self)
    }

    /// `sluice` on the case's DAG folder and state, with its connection and test credentials.
    fn sluice(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .arg("--dags")
            .arg(self.root.join("dags"))
            .arg("--state")
            .arg(self.root.join("state"))
            .env("SLUICE_CONN_TEST_EMR", &self.connection)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE");
        command
    }

    /// `sluice backfill` of the 10:00 interval.
    fn backfill_command(&self) -> Command {
        let mut command = self.sluice();
        command.args([
            "backfill",
            &self.dag,
            "--from",
            "2025-09-01T10:00:00Z",
            "--to",
            "2025-09-01T10:15:00Z",
        ]);
        command
    }

    /// Runs the backfill; returns its exit code and stderr.
    fn backfill(&self) -> Result<(i32, String), Error> {
        let out = self.backfill_command().output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// The run's attempts: (task, handle, error).
    fn attempts(&self) -> Result<Vec<(String, Option<String>, String)>, Error> {
        let store = sluice_store::Store::open(&self.root.join("state"))?;
        let at = chrono::DateTime::parse_from_rfc3339("2025-09-01T10:00:00Z")?.into();
        Ok(store
            .attempts_of_run(&self.dag, at)?
            .into_iter()
            .map(|a| {
                (
                    a.task.clone(),
                    a.handle.clone(),
                    a.error.clone().unwrap_or_default(),
                )
            })
            .collect())
    }
}

/// The cluster has exactly one step, and it is the one the (single) attempt followed.
fn the_one_step_is_the_attempts(case: &Case, cluster: &str) -> Result<Step, Error> {
    let mut steps = steps(cluster)?;
    assert_eq!(steps.len(), 1, "{steps:?}");
    let attempts = case.attempts()?;
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(
        attempts[0].1,
        Some(format!("emr {cluster} {}", steps[0].id))
    );
    Ok(steps.remove(0))
}

const KEY_PREFIX: &str = "emr/backfill__2025-09-01T10:00:00Z/aggregate/";

#[test]
fn a_step_runs_to_completion_named_by_the_attempt() -> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "ok",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n    args: [--start, \"{{ data_interval_start }}\"]\n    conf: { spark.sql.shuffle.partitions: \"8\" }\n",
    )?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let step = the_one_step_is_the_attempts(&case, &cluster)?;
    assert_eq!(step.name, format!("{KEY_PREFIX}1"));
    assert_eq!(step.state, "COMPLETED");
    assert_eq!(
        step.args,
        [
            "spark-submit",
            "--deploy-mode",
            "cluster",
            "--name",
            &format!("{KEY_PREFIX}1"),
            "--conf",
            "spark.sql.shuffle.partitions=8",
            "s3://jobs/aggregate_15m.py",
            "--start",
            "2025-09-01T10:00:00Z"
        ]
    );
    Ok(())
}

#[test]
fn a_failed_step_reports_its_failure_details_and_a_retry_is_a_new_step() -> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "failed",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n    args: [--sluice-test-fail]\n    retries: 1\n    retry_delay: 0s\n",
    )?;
    let (code, _) = case.backfill()?;
    assert_eq!(code, 1);
    let steps = steps(&cluster)?;
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [format!("{KEY_PREFIX}1"), format!("{KEY_PREFIX}2")]);
    assert!(steps.iter().all(|s| s.state == "FAILED"));
    let attempts = case.attempts()?;
    assert_eq!(attempts.len(), 2);
    for (_, _, error) in &attempts {
        assert!(
            error.contains("reason: Spark application failed"),
            "{error}"
        );
        assert!(error.contains("injected failure"), "{error}");
        assert!(error.contains("log: s3://logs/"), "{error}");
    }
    Ok(())
}

#[test]
fn a_step_over_the_timeout_is_cancelled_and_retried_as_a_new_step() -> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "timeout",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n    args: [--sluice-test-hang]\n    timeout: 2s\n    retries: 1\n    retry_delay: 0s\n",
    )?;
    let (code, _) = case.backfill()?;
    assert_eq!(code, 1);
    let steps = steps(&cluster)?;
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps.iter().all(|s| s.state == "CANCELLED"), "{steps:?}");
    for (_, _, error) in case.attempts()? {
        assert!(
            error.contains("timed out after 2s") && error.contains("cancelled"),
            "{error}"
        );
    }
    Ok(())
}

/// Hostile answers: a state EMR does not have is waited on until the attempt's timeout
/// (then the step is cancelled), and a failure message of a megabyte is cut to a bound in
/// the attempt's reason.
#[test]
fn an_unknown_step_state_waits_for_the_timeout_and_a_huge_failure_message_is_cut()
-> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "hostile",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n    args: [--sluice-test-hang]\n    timeout: 4s\n    retries: 1\n    retry_delay: 0s\n",
    )?;
    let mut backfill = case.backfill_command().spawn()?;
    let set = |try_number: usize, body: serde_json::Value| -> Result<(), Error> {
        let started = std::time::Instant::now();
        loop {
            // Once it runs: the server moves pending steps along by itself.
            if let Some(step) = steps(&cluster)?
                .get(try_number - 1)
                .filter(|s| s.state == "RUNNING")
            {
                let mut body = body;
                body["cluster_id"] = cluster.clone().into();
                body["step_id"] = step.id.clone().into();
                http("POST", "/_sluice/step", &body.to_string())?;
                return Ok(());
            }
            if started.elapsed() > std::time::Duration::from_secs(20) {
                return Err(format!("no step for try {try_number}").into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    set(1, serde_json::json!({"state": "SOMETHING_NEW"}))?;
    set(
        2,
        serde_json::json!({"state": "FAILED", "failure": {
            "Reason": "r", "Message": "m".repeat(1 << 20), "LogFile": "s3://logs/x"}}),
    )?;
    assert_eq!(backfill.wait()?.code(), Some(1));
    let attempts = case.attempts()?;
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(
        attempts[0].2.contains("timed out after 4s"),
        "{}",
        attempts[0].2
    );
    let huge = &attempts[1].2;
    assert!(
        huge.contains("message: mmm") && huge.contains("…(cut)"),
        "{}",
        &huge[..200]
    );
    assert!(
        huge.contains("log: s3://logs/x"),
        "the details after the cut message stay"
    );
    assert!(huge.len() < 10_000, "a reason of {} bytes", huge.len());
    Ok(())
}

#[test]
fn throttling_and_server_errors_are_retried_within_the_attempt() -> Result<(), Error> {
    let cluster = cluster()?;
    fault(&cluster, "ListSteps", 400, 2)?;
    fault(&cluster, "AddJobFlowSteps", 500, 1)?;
    fault(&cluster, "DescribeStep", 500, 6)?;
    let case = Case::new(
        "faults",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n",
    )?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        steps(&cluster)?.len(),
        1,
        "exactly one step despite the failed AddJobFlowSteps"
    );
    assert_eq!(case.attempts()?.len(), 1, "no task try used by API errors");
    Ok(())
}

#[test]
fn an_existing_step_named_by_the_attempt_is_adopted_not_added_again() -> Result<(), Error> {
    let cluster = cluster()?;
    // As if a scheduler had added the step and died before recording it.
    runtime().block_on(async {
        let jar = aws_sdk_emr::types::HadoopJarStepConfig::builder()
            .jar("command-runner.jar")
            .args("spark-submit")
            .build();
        let step = aws_sdk_emr::types::StepConfig::builder()
            .name(format!("{KEY_PREFIX}1"))
            .hadoop_jar_step(jar)
            .build();
        client()
            .await
            .add_job_flow_steps()
            .job_flow_id(&cluster)
            .steps(step)
            .send()
            .await
    })?;
    let case = Case::new(
        "adopt",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n",
    )?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    the_one_step_is_the_attempts(&case, &cluster)?;
    Ok(())
}

#[test]
fn a_local_application_path_is_refused_for_emr_with_what_to_do() -> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "local-path",
        &cluster,
        "    application: jobs/aggregate_15m.py\n",
    )?;
    let (code, _) = case.backfill()?;
    assert_eq!(code, 1);
    let error = &case.attempts()?[0].2;
    assert!(
        error.contains("is a local path") && error.contains("s3://"),
        "{error}"
    );
    assert!(steps(&cluster)?.is_empty());
    Ok(())
}

/// Starts `sluice backfill` of the case's interval in the background.
fn spawn_backfill(case: &Case) -> Result<std::process::Child, Error> {
    Ok(case
        .backfill_command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?)
}

#[test]
fn a_scheduler_killed_after_adding_the_step_adopts_it_on_restart() -> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "crash-after",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n",
    )?;
    let mut child = spawn_backfill(&case)?;
    let started = std::time::Instant::now();
    while steps(&cluster)?.is_empty() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no step was added"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill()?; // SIGKILL, with the step added and (most likely) not yet recorded
    child.wait()?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    // The restart adopted the step (same try) instead of adding one.
    let step = the_one_step_is_the_attempts(&case, &cluster)?;
    assert_eq!(step.name, format!("{KEY_PREFIX}1"));
    Ok(())
}

#[test]
fn a_scheduler_killed_before_adding_the_step_adds_it_once_on_restart() -> Result<(), Error> {
    let cluster = cluster()?;
    // The first ListSteps (the look-up before AddJobFlowSteps) answers after 2 s: the kill
    // lands between the recorded intent and the add.
    let body = serde_json::json!({"operation": "ListSteps", "cluster_id": cluster, "status": 0, "count": 1, "delay": 2.0});
    http("POST", "/_sluice/faults", &body.to_string())?;
    let case = Case::new(
        "crash-before",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n",
    )?;
    let mut child = spawn_backfill(&case)?;
    std::thread::sleep(std::time::Duration::from_millis(1200));
    child.kill()?;
    child.wait()?;
    std::thread::sleep(std::time::Duration::from_millis(1200));
    assert!(steps(&cluster)?.is_empty(), "no step before the restart");
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let steps = steps(&cluster)?;
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert_eq!(
        steps[0].name,
        format!("{KEY_PREFIX}1"),
        "the same try, not a retry"
    );
    Ok(())
}

const TRANSIENT: &str = "    application: s3://jobs/aggregate_15m.py\n    transient_cluster:\n      release_label: emr-7.5.0\n      instance_groups:\n        - { role: master, instance_type: m5.xlarge, count: 1 }\n        - { role: core, instance_type: m5.2xlarge, count: 2, market: spot }\n      managed_scaling: { min_units: 2, max_units: 10 }\n      keep_alive: true\n";
const TRANSIENT_NAME: &str = "sluice:emr:2025-09-01T10:00:00Z:aggregate";

/// Clusters named `name`: (id, state).
fn clusters_named(name: &str) -> Result<Vec<(String, String)>, Error> {
    runtime().block_on(async {
        let client = client().await;
        let mut found = Vec::new();
        let mut marker = None;
        loop {
            let page = client.list_clusters().set_marker(marker).send().await?;
            for c in page.clusters().iter().filter(|c| c.name() == Some(name)) {
                let state = c
                    .status()
                    .and_then(|s| s.state())
                    .map(|s| s.as_str().to_owned());
                found.push((
                    c.id().unwrap_or_default().to_owned(),
                    state.unwrap_or_default(),
                ));
            }
            match page.marker() {
                Some(next) => marker = Some(next.to_owned()),
                None => return Ok(found),
            }
        }
    })
}

/// A case whose connection names no cluster (transient clusters only), and whose runs'
/// clusters are told apart by a DAG id unique to the test.
fn transient_case(name: &str, dag: &str, task_fields: &str) -> Result<Case, Error> {
    let mut case = Case::new(name, "unused", task_fields)?;
    let yaml = std::fs::read_to_string(case.root.join("dags/emr.yaml"))?
        .replace("dag: emr\n", &format!("dag: {dag}\n"));
    std::fs::remove_file(case.root.join("dags/emr.yaml"))?;
    std::fs::write(case.root.join(format!("dags/{dag}.yaml")), yaml)?;
    case.connection = serde_json::json!({
        "type": "emr", "region": "us-east-1", "endpoint_url": endpoint(),
        "poll_initial_seconds": 0.1, "poll_max_seconds": 0.4, "api_attempts": 4
    })
    .to_string();
    case.dag = dag.to_owned();
    Ok(case)
}

#[test]
fn a_transient_cluster_is_created_for_the_run_and_terminated_when_it_ends() -> Result<(), Error> {
    // Unique per process: the test server keeps terminated clusters of earlier runs.
    let dag = &format!("transient_ok_{}", std::process::id());
    let case = transient_case("transient-ok", dag, TRANSIENT)?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let name = TRANSIENT_NAME.replace(":emr:", &format!(":{dag}:"));
    let clusters = clusters_named(&name)?;
    assert_eq!(clusters.len(), 1, "{clusters:?}");
    assert!(clusters[0].1.starts_with("TERMINAT"), "{clusters:?}");
    let steps = steps(&clusters[0].0)?;
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].state, "COMPLETED");
    // Created with an idle auto-termination (default 1 h): a cluster whose run's end no
    // scheduler sees still goes.
    let idle = runtime().block_on(async {
        client()
            .await
            .get_auto_termination_policy()
            .cluster_id(&clusters[0].0)
            .send()
            .await
    })?;
    assert_eq!(
        idle.auto_termination_policy()
            .and_then(|p| p.idle_timeout()),
        Some(3600)
    );

    // A cluster of that (finished) run left behind, as by a scheduler killed before it
    // could terminate it: the next start sweeps it.
    let leaked = cluster_named(&name)?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let state = clusters_named(&name)?
        .into_iter()
        .find(|(id, _)| *id == leaked)
        .map(|(_, s)| s);
    assert!(
        state.as_deref().is_some_and(|s| s.starts_with("TERMINAT")),
        "{state:?}\n{stderr}"
    );
    Ok(())
}

#[test]
fn a_transient_cluster_is_terminated_when_the_run_fails_too() -> Result<(), Error> {
    let dag = &format!("transient_failed_{}", std::process::id());
    // With instance fleets this time.
    let fleets = TRANSIENT.replace(
        "      instance_groups:\n        - { role: master, instance_type: m5.xlarge, count: 1 }\n        - { role: core, instance_type: m5.2xlarge, count: 2, market: spot }\n",
        "      instance_fleets:\n        - { role: master, target_on_demand_capacity: 1, instance_types: [{ instance_type: m5.xlarge }] }\n        - { role: core, target_spot_capacity: 4, instance_types: [{ instance_type: m5.2xlarge, weighted_capacity: 2 }, { instance_type: r5.2xlarge, weighted_capacity: 2 }] }\n",
    );
    assert!(fleets.contains("instance_fleets"));
    let fields =
        format!("{fleets}    args: [--sluice-test-fail]\n    retries: 1\n    retry_delay: 0s\n");
    let case = transient_case("transient-failed", dag, &fields)?;
    let (code, _) = case.backfill()?;
    assert_eq!(code, 1);
    let clusters = clusters_named(&TRANSIENT_NAME.replace(":emr:", &format!(":{dag}:")))?;
    assert_eq!(
        clusters.len(),
        1,
        "the retry found the run's cluster again: {clusters:?}"
    );
    assert!(clusters[0].1.starts_with("TERMINAT"), "{clusters:?}");
    assert_eq!(
        steps(&clusters[0].0)?.len(),
        2,
        "two tries, two steps, one cluster"
    );
    Ok(())
}

/// `sluice dags test` of the platform's `events_aggregation_15m` for 10:15–10:30, with
/// the environment given; returns the exit code and stdout+stderr.
fn test_platform_dag(
    state: &std::path::Path,
    conf: &serde_json::Value,
    env: &[(&str, String)],
) -> Result<(i32, String), Error> {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--dags")
        .arg(repo.join("dags"))
        .arg("--state")
        .arg(state)
        .args([
            "dags",
            "test",
            "events_aggregation_15m",
            "--logical-date",
            "2025-09-01T10:15:00Z",
            // The Kafka gate is tested on its own (kafka_gates.rs); this is about Spark.
            "--ignore-gate",
            "--conf",
        ])
        .arg(conf.to_string())
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()?;
    Ok((
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    ))
}

#[test]
fn the_platform_dag_runs_its_spark_task_on_emr_and_locally_with_only_the_backend_changed()
-> Result<(), Error> {
    // On EMR, as the DAG says: the job from the connection's jobs_uri, the data from S3.
    let cluster = cluster()?;
    let root = std::env::temp_dir().join(format!("sluice-platform-dag-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let connection = serde_json::json!({
        "type": "emr", "cluster_id": cluster, "region": "us-east-1", "endpoint_url": endpoint(),
        "jobs_uri": "s3://analytics-jobs/", "poll_initial_seconds": 0.1, "poll_max_seconds": 0.4
    });
    let (_, output) = test_platform_dag(
        &root.join("emr"),
        &serde_json::Value::Null,
        &[("SLUICE_CONN_ANALYTICS_EMR", connection.to_string())],
    )?;
    let steps = steps(&cluster)?;
    assert_eq!(steps.len(), 1, "{output}");
    assert_eq!(steps[0].state, "COMPLETED", "{output}");
    let args = steps[0].args.join(" ");
    assert!(args.contains("s3://analytics-jobs/jobs/aggregate_15m.py --input s3://analytics-raw/events --output s3://analytics-batch/agg_15m/window_start=20250901T1015 --start 2025-09-01T10:15:00Z --end 2025-09-01T10:30:00Z"), "{args}");

    // Locally: only the backend changes (and, through the run's conf, where the data is).
    if std::env::var_os("SPARK_HOME").is_none() {
        panic!("SPARK_HOME is not set: scripts/test installs Spark (scripts/install-spark)");
    }
    let raw = root.join("raw/event_date=2025-09-01/event_hour=10");
    std::fs::create_dir_all(&raw)?;
    let events: Vec<String> = (0..200)
        .map(|i| {
            serde_json::json!({"event_id": format!("e{i}"), "event_time": format!("2025-09-01T10:{:02}:00Z", 10 + i % 30),
                "user_id": format!("u{}", i % 7), "country": "DE", "device": "ios", "event_type": "view",
                "value": 1.0, "latency_ms": 5.0}).to_string()
        })
        .collect();
    std::fs::write(raw.join("part-0.jsonl"), events.join("\n"))?;
    let conf = serde_json::json!({
        "raw_zone": root.join("raw").display().to_string(),
        "output_zone": root.join("agg").display().to_string(),
    });
    let (_, output) = test_platform_dag(
        &root.join("local"),
        &conf,
        &[("SLUICE_SPARK_BACKEND", "local".into())],
    )?;
    let partition = root.join("agg/window_start=20250901T1015");
    assert!(partition.join("_SUCCESS").exists(), "{output}");
    let parquet = std::fs::read_dir(&partition)?
        .filter_map(Result::ok)
        .any(|e| e.path().extension().is_some_and(|x| x == "parquet"));
    assert!(parquet, "{output}");
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn clearing_a_running_attempt_cancels_its_step() -> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "clear",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n    args: [--sluice-test-hang]\n",
    )?;
    // A scheduler catching up from 10:00: the first run's step hangs on the cluster.
    let yaml = std::fs::read_to_string(case.root.join("dags/emr.yaml"))?.replace(
        "start: 2025-09-01T10:00:00Z\n",
        "start: 2025-09-01T10:00:00Z\nend: 2025-09-01T10:15:00Z\n",
    );
    std::fs::write(case.root.join("dags/emr.yaml"), yaml)?;
    let mut scheduler = case
        .sluice()
        .args(["scheduler", "--listen", "off"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    let started = std::time::Instant::now();
    let running = loop {
        let steps = steps(&cluster)?;
        if let Some(step) = steps.into_iter().find(|s| s.state == "RUNNING") {
            break step;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "no running step"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let cleared = case
        .sluice()
        .args([
            "clear",
            "emr",
            "--run",
            "scheduled__2025-09-01T10:00:00Z",
            "--task",
            "aggregate",
        ])
        .output()?;
    assert!(
        cleared.status.success(),
        "{}",
        String::from_utf8_lossy(&cleared.stderr)
    );
    let cancelled = loop {
        let state = steps(&cluster)?
            .into_iter()
            .find(|s| s.id == running.id)
            .map(|s| s.state);
        if state.as_deref() == Some("CANCELLED")
            || started.elapsed() > std::time::Duration::from_secs(30)
        {
            break state;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let _ = nix_kill(&scheduler);
    let _ = scheduler.wait();
    assert_eq!(cancelled.as_deref(), Some("CANCELLED"));
    Ok(())
}

/// SIGTERM: a graceful stop.
fn nix_kill(child: &std::process::Child) -> std::io::Result<std::process::ExitStatus> {
    Command::new("kill").arg(child.id().to_string()).status()
}

/// The connection's long-running cluster gets the managed scaling and idle
/// auto-termination the connection sets, when the process starts, read back from EMR.
#[test]
fn the_connections_cluster_gets_its_managed_scaling_and_idle_timeout_at_start() -> Result<(), Error>
{
    let cluster = cluster()?;
    let case = Case::new(
        "policies",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n",
    )?
    .with_connection(serde_json::json!({
        "managed_scaling": {"min_units": 2, "max_units": 20, "max_on_demand_units": 4},
        "idle_timeout_seconds": 5400
    }))?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    let (scaling, idle) = runtime().block_on(async {
        let api = client().await;
        let scaling = api
            .get_managed_scaling_policy()
            .cluster_id(&cluster)
            .send()
            .await;
        let idle = api
            .get_auto_termination_policy()
            .cluster_id(&cluster)
            .send()
            .await;
        (scaling, idle)
    });
    let limits = scaling?
        .managed_scaling_policy()
        .and_then(|p| p.compute_limits())
        .cloned()
        .ok_or("no managed scaling policy")?;
    assert_eq!(limits.minimum_capacity_units(), Some(2));
    assert_eq!(limits.maximum_capacity_units(), Some(20));
    assert_eq!(limits.maximum_on_demand_capacity_units(), Some(4));
    assert_eq!(limits.unit_type().map(|u| u.as_str()), Some("Instances"));
    assert_eq!(
        idle?
            .auto_termination_policy()
            .and_then(|p| p.idle_timeout()),
        Some(5400)
    );
    Ok(())
}

/// A policy EMR does not keep (the test server drops a scaling of 999 units) is reported
/// at start, and the work still runs.
#[test]
fn a_cluster_policy_that_did_not_take_is_reported() -> Result<(), Error> {
    let cluster = cluster()?;
    let case = Case::new(
        "policy-lost",
        &cluster,
        "    application: s3://jobs/aggregate_15m.py\n",
    )?
    .with_connection(serde_json::json!({
        "managed_scaling": {"min_units": 2, "max_units": 999}
    }))?;
    let (code, stderr) = case.backfill()?;
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("the cluster policies of connection `test_emr` are not in place")
            && stderr.contains("managed scaling of"),
        "{stderr}"
    );
    Ok(())
}

/// Connection policies EMR would refuse are refused before any call, each saying why; the
/// work still runs.
#[test]
fn hostile_cluster_policies_are_refused_with_the_reason() -> Result<(), Error> {
    let cluster = cluster()?;
    for (name, policy, reason) in [
        (
            "policy-min-max",
            serde_json::json!({"managed_scaling": {"min_units": 9, "max_units": 2}}),
            "min_units 9 is above max_units 2",
        ),
        (
            "policy-idle",
            serde_json::json!({"idle_timeout_seconds": 10}),
            "idle_timeout_seconds 10 is outside what EMR takes",
        ),
    ] {
        let case = Case::new(
            name,
            &cluster,
            "    application: s3://jobs/aggregate_15m.py\n",
        )?
        .with_connection(policy)?;
        let (code, stderr) = case.backfill()?;
        assert_eq!(code, 0, "{stderr}");
        assert!(stderr.contains(reason), "{name}: {stderr}");
    }
    Ok(())
}
