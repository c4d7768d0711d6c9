//! Retries, exit codes, timeouts and the SLA-deadline rule, through the real engine and the
//! `command` executor (real processes).

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_core::{RunStatus, TaskState};
use sluice_runtime::scheduler::{Control, Engine, EngineConfig, Mode};
use sluice_store::{AttemptRecord, AttemptResult, RunRecord, Store};

struct Outcome {
    run: RunRecord,
    attempts: Vec<AttemptRecord>,
    /// Each attempt's log, read before the scratch folder goes.
    logs: Vec<String>,
    elapsed: Duration,
}

/// Runs one interval of a one-task DAG in memory, like `sluice dags test`.
fn run_once(name: &str, task: &str, extra: &str) -> Result<Outcome, Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-retries-{name}-{}", std::process::id()));
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("d.yaml"),
        format!(
            "dag: {name}\nschedule: \"@hourly\"\nstart: 2025-01-01T00:00:00Z\n{extra}tasks:\n  t:\n{task}"
        ),
    )?;
    let store = Store::temporary(&root)?;
    let mut engine = Engine::new(
        store,
        EngineConfig::new(dags, Mode::Test { dag: name.into() }),
    )?;
    let started = Instant::now();
    engine.control(Control::Trigger {
        dag: name.into(),
        logical_date: Some(chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")?.into()),
        conf: serde_json::Value::Null,
    })?;
    engine.run()?;
    let elapsed = started.elapsed();
    let run = engine.store().runs_of(name).next().ok_or("no run")??;
    let attempts = engine
        .store()
        .attempts_of_run(name, run.state.logical_date)?;
    let logs = attempts
        .iter()
        .map(|a| std::fs::read_to_string(Path::new(&a.log)).unwrap_or_default())
        .collect();
    let _ = std::fs::remove_dir_all(&root);
    Ok(Outcome {
        run,
        attempts,
        logs,
        elapsed,
    })
}

fn results(outcome: &Outcome) -> Vec<AttemptResult> {
    outcome.attempts.iter().filter_map(|a| a.result).collect()
}

/// Why the first task is in its state.
fn reason(outcome: &Outcome) -> String {
    outcome.run.state.tasks[0]
        .reason
        .clone()
        .unwrap_or_default()
}

#[test]
fn any_failing_exit_is_retried_until_the_tries_run_out() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "retryable",
        "    type: command\n    command: \"exit 1\"\n    retries: 2\n    retry_delay: 0s\n",
        "",
    )?;
    assert_eq!(results(&outcome), vec![AttemptResult::Failed; 3]);
    assert_eq!(outcome.run.state.status, RunStatus::Failed);
    let task = &outcome.run.state.tasks[0];
    assert_eq!(task.state, TaskState::Failed);
    let reason = task.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("exit code 1") && reason.contains("no retries left"),
        "{reason}"
    );
    Ok(())
}

/// The first flaky task of a user coming from Airflow: exit 1 once, then 0, `retries: 2`.
#[test]
fn a_flaky_command_exiting_1_once_succeeds_on_its_second_try()
-> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "flaky",
        "    type: command\n    command: \"[ \\\"$SLUICE_TRY_NUMBER\\\" -ge 2 ] || exit 1\"\n    retries: 2\n    retry_delay: 0s\n",
        "",
    )?;
    assert_eq!(
        results(&outcome),
        vec![AttemptResult::Failed, AttemptResult::Success]
    );
    assert_eq!(outcome.run.state.status, RunStatus::Success);
    Ok(())
}

#[test]
fn a_fatal_exit_code_skips_the_remaining_retries() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "fatal",
        "    type: command\n    command: \"echo broken >&2; exit 3\"\n    retries: 5\n    retry_delay: 0s\n    fatal_exit_codes: [3]\n",
        "",
    )?;
    assert_eq!(results(&outcome), vec![AttemptResult::Failed]);
    let reason = reason(&outcome);
    assert!(
        reason.contains("exit code 3 (listed in fatal_exit_codes: no retry)"),
        "{reason}"
    );
    assert!(
        outcome.logs[0].contains("broken"),
        "stderr goes to the attempt log"
    );
    Ok(())
}

#[test]
fn a_retryable_list_retries_only_its_codes() -> Result<(), Box<dyn std::error::Error>> {
    // Fails with 3 on the first try, succeeds on the second.
    let outcome = run_once(
        "custom_codes",
        "    type: command\n    command: \"[ \\\"$SLUICE_TRY_NUMBER\\\" -ge 2 ] || exit 3\"\n    retryable_exit_codes: [3]\n    retries: 1\n    retry_delay: 0s\n",
        "",
    )?;
    assert_eq!(
        results(&outcome),
        vec![AttemptResult::Failed, AttemptResult::Success]
    );
    assert_eq!(outcome.run.state.status, RunStatus::Success);
    // A code outside the list fails for good.
    let outcome = run_once(
        "outside_list",
        "    type: command\n    command: \"exit 4\"\n    retryable_exit_codes: [3]\n    retries: 3\n    retry_delay: 0s\n",
        "",
    )?;
    assert_eq!(results(&outcome), vec![AttemptResult::Failed]);
    let reason = reason(&outcome);
    assert!(reason.contains("not in retryable_exit_codes"), "{reason}");
    Ok(())
}

#[test]
fn constant_backoff_waits_the_same_delay_between_tries() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "constant",
        "    type: command\n    command: \"exit 75\"\n    retries: 2\n    retry_delay: 300ms\n",
        "",
    )?;
    let starts: Vec<_> = outcome.attempts.iter().map(|a| a.started_at).collect();
    assert_eq!(starts.len(), 3);
    for pair in starts.windows(2) {
        let gap = (pair[1] - pair[0]).num_milliseconds();
        assert!((300..1500).contains(&gap), "gap {gap} ms");
    }
    Ok(())
}

#[test]
fn exponential_backoff_grows_and_stays_under_its_cap() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "exponential",
        "    type: command\n    command: \"exit 75\"\n    retries: 3\n    retry_delay: 200ms\n    retry_backoff: exponential\n    max_retry_delay: 500ms\n",
        "",
    )?;
    let ends: Vec<_> = outcome.attempts.iter().filter_map(|a| a.ended_at).collect();
    let starts: Vec<_> = outcome.attempts.iter().map(|a| a.started_at).collect();
    assert_eq!(starts.len(), 4);
    // Waits: ~200-300 ms, ~400-500 ms (capped), 500 ms (capped).
    let waits: Vec<i64> = (1..4)
        .map(|i| (starts[i] - ends[i - 1]).num_milliseconds())
        .collect();
    assert!(waits[0] >= 200 && waits[0] < 1200, "{waits:?}");
    assert!(waits[1] >= 400 && waits[1] < 1400, "{waits:?}");
    assert!(waits[2] >= 500 && waits[2] < 1500, "{waits:?}");
    Ok(())
}

#[test]
fn a_timeout_kills_a_process_that_ignores_sigterm() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "timeout",
        "    type: command\n    command: \"trap '' TERM; echo started; sleep 30; echo never\"\n    timeout: 500ms\n    kill_grace: 500ms\n",
        "",
    )?;
    assert_eq!(results(&outcome), vec![AttemptResult::Failed]);
    let reason = reason(&outcome);
    assert!(
        reason.contains("timed out after 500ms") && reason.contains("SIGKILL after 500ms"),
        "{reason}"
    );
    assert!(
        outcome.elapsed < Duration::from_secs(10),
        "took {:?}",
        outcome.elapsed
    );
    let log = &outcome.logs[0];
    assert!(
        log.lines().any(|l| l == "started") && !log.lines().any(|l| l == "never"),
        "{log}"
    );
    Ok(())
}

#[test]
fn a_process_that_stops_on_sigterm_is_not_sigkilled() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "polite",
        "    type: command\n    command: \"sleep 30\"\n    timeout: 300ms\n    kill_grace: 5s\n",
        "",
    )?;
    let reason = reason(&outcome);
    assert!(
        reason.contains("sent SIGTERM") && !reason.contains("SIGKILL"),
        "{reason}"
    );
    assert!(outcome.elapsed < Duration::from_secs(4));
    Ok(())
}

#[test]
fn a_manual_run_of_an_old_interval_keeps_its_retries_past_the_sla_deadline()
-> Result<(), Box<dyn std::error::Error>> {
    // The 2025 interval's deadline passed long ago. The deadline rule is for scheduled runs
    // (core::tests::a_retry_that_would_start_after_the_sla_deadline_is_not_started); a
    // manual or backfill run reprocessing history keeps every try.
    let outcome = run_once(
        "sla",
        "    type: command\n    command: \"exit 75\"\n    retries: 3\n    retry_delay: 0s\n",
        "sla: { deadline: 100m }\n",
    )?;
    assert_eq!(results(&outcome), vec![AttemptResult::Failed; 4]);
    let reason = reason(&outcome);
    assert!(!reason.contains("SLA deadline"), "{reason}");
    Ok(())
}

/// A process printing 100 MB: its log stops at the limit and says so, the process is not
/// blocked (it runs to its end and succeeds), and a background child holding the output
/// open does not hold up the attempt's end.
#[test]
fn a_huge_output_is_cut_at_the_log_limit_and_the_task_still_succeeds()
-> Result<(), Box<dyn std::error::Error>> {
    let outcome = run_once(
        "huge_log",
        "    type: command\n    command: \"head -c 100000000 /dev/zero | tr '\\\\0' x; echo; (sleep 30 &) ; echo done >&2\"\n",
        "",
    )?;
    assert_eq!(results(&outcome), vec![AttemptResult::Success]);
    let log = &outcome.logs[0];
    let limit = usize::try_from(sluice_runtime::executor::command::MAX_LOG_BYTES)?;
    assert!(log.len() <= limit + 4096, "log of {} bytes", log.len());
    assert!(
        log.contains("reached its 64 MiB limit"),
        "{}",
        &log[log.len() - 300..]
    );
    assert!(log.contains("bytes of output dropped"));
    assert!(
        outcome.elapsed < Duration::from_secs(25),
        "{:?}",
        outcome.elapsed
    );
    Ok(())
}
