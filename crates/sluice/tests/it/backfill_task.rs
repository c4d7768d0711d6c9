//! `type: backfill` tasks through the real engine (scheduler mode): a validation that fails
//! has its hour reprocessed in another DAG when its opt-in switch is on, and does nothing
//! when it is off; a bad target fails the task with the reason.

use std::time::{Duration, Instant};

use crate::in_process;

use in_process::Scheduler;
use sluice_core::RunStatus;
use sluice_runtime::scheduler::{Control, Input};

const CHECKER: &str = r#"dag: checker
schedule: "@hourly"
start: 2030-01-01T00:00:00Z
params: { reprocess: false, target: windows }
tasks:
  compare: { type: command, retries: 0, command: "exit 1" }
  reprocess:
    type: backfill
    depends_on: [compare]
    trigger_rule: all_failed
    target: "{{ params.target }}"
    enabled: "{{ params.reprocess }}"
"#;

const WINDOWS: &str = r#"dag: windows
schedule: "*/15 * * * *"
start: 2030-01-01T00:00:00Z
tasks:
  aggregate: { type: noop }
"#;

fn scheduler() -> Scheduler {
    // `start` in the future: no scheduled runs, only what the test triggers.
    in_process::start(
        "backfill-task",
        &[("checker.yaml", CHECKER), ("windows.yaml", WINDOWS)],
        |_| {},
    )
}

fn trigger(s: &Scheduler, hour: u32, conf: serde_json::Value) {
    let (reply, answer) = std::sync::mpsc::channel();
    s.sender
        .send(Input::Control {
            command: Control::Trigger {
                dag: "checker".into(),
                logical_date: Some(
                    chrono::DateTime::parse_from_rfc3339(&format!("2030-01-01T{hour:02}:00:00Z"))
                        .unwrap()
                        .into(),
                ),
                conf,
            },
            reply,
        })
        .unwrap();
    answer.recv().unwrap().unwrap();
}

/// The finished `checker` run of an hour, with its `reprocess` task's output.
fn finished(s: &Scheduler, hour: u32) -> (RunStatus, Option<serde_json::Value>, String) {
    let logical: chrono::DateTime<chrono::Utc> =
        chrono::DateTime::parse_from_rfc3339(&format!("2030-01-01T{hour:02}:00:00Z"))
            .unwrap()
            .into();
    let started = Instant::now();
    loop {
        if let Some(run) = s.store.run("checker", logical).unwrap()
            && run.state.status.is_finished()
        {
            let output = s.store.output("checker", logical, "reprocess").unwrap();
            let reason = run.state.tasks[1].reason.clone().unwrap_or_default();
            return (run.state.status, output, reason);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "checker run of {hour}:00"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_failed_check_reprocesses_its_hour_in_another_dag_only_when_opted_in() {
    let s = scheduler();

    // Off (the DAG's default): the task succeeds and starts nothing.
    trigger(&s, 0, serde_json::Value::Null);
    let (_, output, _) = finished(&s, 0);
    assert_eq!(
        output.as_ref().map(|o| o["started"].clone()),
        Some(serde_json::json!(false))
    );
    assert!(s.store.backfill("windows").unwrap().is_none());

    // On: the hour's four 15-minute windows run again in `windows`.
    trigger(&s, 1, serde_json::json!({"reprocess": true}));
    let (status, output, reason) = finished(&s, 1);
    let output = output.unwrap_or_else(|| panic!("no output: run {status:?}, {reason}"));
    assert_eq!(output["started"], true);
    assert_eq!(output["intervals"], 4);
    assert_eq!(output["from"], "2030-01-01T01:00:00Z");
    assert_eq!(output["to"], "2030-01-01T02:00:00Z");
    let from = chrono::DateTime::parse_from_rfc3339("2030-01-01T01:00:00Z")
        .unwrap()
        .into();
    let to = chrono::DateTime::parse_from_rfc3339("2030-01-01T02:00:00Z")
        .unwrap()
        .into();
    let started = Instant::now();
    loop {
        let done = s
            .store
            .ledger_between("windows", from, to)
            .unwrap()
            .iter()
            .filter(|(_, e)| e.status == RunStatus::Success)
            .count();
        if done == 4 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{done} of 4 windows"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(
        s.metrics.value(
            "sluice_runs_finished_total",
            &[("dag", "windows"), ("state", "success")]
        ),
        Some(4.0)
    );

    // A target that does not exist fails the task, saying which.
    trigger(
        &s,
        2,
        serde_json::json!({"reprocess": true, "target": "nope"}),
    );
    let (status, _, reason) = finished(&s, 2);
    assert_eq!(status, RunStatus::Failed);
    assert!(
        reason.contains("no DAG `nope` in this scheduler"),
        "{reason}"
    );
}
