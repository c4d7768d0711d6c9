//! The batch layer stopped, then catching up, in real time: a `sluice scheduler` process
//! runs a one-minute DAG shaped like events_aggregation_15m's Spark step (an EMR step on
//! the EMR test server, retries through an outage, an SLA), scaled down from 15 minutes to
//! one. EMR is unreachable for the first minute (a fault proxy refusing connections): the
//! runs of the intervals that ended meanwhile wait in retries. When EMR is back, those
//! whose deadline still allows it catch up by themselves; a retry that could only start
//! after its run's deadline is refused, so that run fails; later intervals run on time.
//! `sluice sla report` names every interval that was late, and no other.

use sluice_tests as support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use sluice_core::RunStatus;
use support::fault_proxy::{Fault, FaultProxy};

type Error = Box<dyn std::error::Error>;

/// The SLA, scaled: warn 40 s, deadline 150 s after an interval's end.
const WARN_AFTER_S: i64 = 40;
const DEADLINE_S: i64 = 150;
const OUTAGE: Duration = Duration::from_secs(60);

#[test]
fn the_batch_layer_catches_up_after_an_outage_and_the_sla_report_names_the_late_intervals()
-> Result<(), Error> {
    let cluster = support::emr::cluster()?;
    let emr = support::emr::endpoint();
    let proxy = FaultProxy::start(
        emr.trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()?,
    )?;
    proxy.set(Fault::Refuse);

    // Four intervals already over when the scheduler starts (catchup), two to come.
    let now = Utc::now();
    let start = now.duration_trunc(TimeDelta::minutes(1))? - TimeDelta::minutes(4);
    let end = start + TimeDelta::minutes(6);
    let root = std::env::temp_dir().join(format!("sluice-outage-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("dags"))?;
    std::fs::write(
        root.join("dags/outage.yaml"),
        format!(
            "dag: outage\nschedule: \"* * * * *\"\nstart: {}\nend: {}\ncatchup: true\n\
             max_active_runs: 10\nsla: {{ warn_after: {WARN_AFTER_S}s, deadline: {DEADLINE_S}s }}\n\
             tasks:\n  aggregate:\n    type: spark\n    backend: emr\n    connection: test_emr\n    \
             application: s3://jobs/aggregate_15m.py\n    retries: 100\n    retry_delay: 3s\n    \
             retry_backoff: constant\n",
            start.to_rfc3339(),
            end.to_rfc3339()
        ),
    )?;
    let connection = serde_json::json!({
        "type": "emr", "cluster_id": cluster, "region": "us-east-1",
        "endpoint_url": format!("http://{}", proxy.address()),
        "poll_initial_seconds": 0.2, "poll_max_seconds": 0.5, "api_attempts": 2
    });
    let log = std::fs::File::create(root.join("scheduler.log"))?;
    let mut scheduler = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--dags")
        .arg(root.join("dags"))
        .arg("--state")
        .arg(root.join("state"))
        .args(["scheduler", "--listen", "off"])
        .env("SLUICE_CONN_TEST_EMR", connection.to_string())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()?;
    let began = Instant::now();
    std::thread::sleep(OUTAGE);
    let back = Utc::now();
    proxy.set(Fault::None);

    // The last interval ends at `end`; its step takes a few seconds more.
    let intervals: Vec<DateTime<Utc>> = (0..6).map(|i| start + TimeDelta::minutes(i)).collect();
    let state = root.join("state");
    let wait = (end + TimeDelta::seconds(30) - Utc::now())
        .to_std()
        .unwrap_or_default();
    std::thread::sleep(wait);
    let _ = Command::new("kill")
        .args(["-TERM", &scheduler.id().to_string()])
        .status();
    let _ = scheduler.wait();
    println!("{:.0?} in all", began.elapsed());

    let store = sluice_store::Store::open(&state)?;
    let ended: Vec<_> = intervals
        .iter()
        .map(|at| store.run("outage", *at).ok().flatten())
        .collect::<Option<_>>()
        .ok_or_else(|| {
            let log = std::fs::read_to_string(root.join("scheduler.log")).unwrap_or_default();
            format!("a run is missing\n{log}")
        })?;
    let report = sluice_store::reports::sla_report(&store, "outage", start, end)?;
    println!(
        "EMR back at {back}; SLA report: {} warning(s), {} breach(es)",
        report.warnings, report.breaches
    );
    let (mut failed, mut caught_up, mut on_time) = (0, 0, 0);
    for run in &ended {
        let interval_end = run.state.logical_date + TimeDelta::minutes(1);
        let deadline = interval_end + TimeDelta::seconds(DEADLINE_S);
        let named: Vec<&str> = report
            .misses
            .iter()
            .filter(|m| m.run_id == run.state.run_id)
            .map(|m| m.kind.as_str())
            .collect();
        let latency = run.ended_at.map(|t| (t - interval_end).num_milliseconds());
        println!(
            "  interval ending {interval_end}: {:?} after {latency:?} ms, SLA {named:?}",
            run.state.status
        );
        match run.state.status {
            RunStatus::Success => {
                let latency = latency.ok_or("a finished run without an end")?;
                if latency > WARN_AFTER_S * 1000 {
                    caught_up += 1;
                    assert!(named.contains(&"warn"), "late, so named: {named:?}");
                } else {
                    on_time += 1;
                    assert!(named.is_empty(), "on time, so not named: {named:?}");
                }
                assert!(!named.contains(&"breach"), "{named:?}");
            }
            RunStatus::Failed => {
                failed += 1;
                assert!(named.contains(&"breach"), "failed, so named: {named:?}");
                // It failed because its deadline left no room once EMR was back.
                assert!(
                    deadline < back + TimeDelta::seconds(30),
                    "a run with time left after the outage failed: deadline {deadline}"
                );
            }
            other => return Err(format!("run {} ended {other:?}", run.state.run_id).into()),
        }
        // A run whose deadline was well after EMR came back caught up.
        if deadline > back + TimeDelta::seconds(30) {
            assert_eq!(run.state.status, RunStatus::Success, "{}", run.state.run_id);
        }
    }
    assert!(
        failed >= 1,
        "the oldest interval's deadline passed during the outage"
    );
    assert!(caught_up >= 1, "some intervals caught up late");
    assert!(on_time >= 1, "intervals after the outage ran on time");
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
