//! `sluice scheduler` as ops run it: catchup of missed intervals, the state lock seen by a
//! second process, a bad DAG edit that keeps the last good version, graceful SIGTERM.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{Timelike, Utc};

fn sluice(dags: &Path, state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.arg("--dags").arg(dags).arg("--state").arg(state);
    command
}

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// SIGTERM, as ops stop the scheduler.
fn terminate(child: &std::process::Child) -> Result<(), Box<dyn std::error::Error>> {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id())?),
        nix::sys::signal::Signal::SIGTERM,
    )?;
    Ok(())
}

#[test]
fn the_scheduler_catches_up_keeps_good_dags_and_stops_gracefully()
-> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-scheduler-{}", std::process::id()));
    let dags = root.join("dags");
    let state = root.join("state");
    std::fs::create_dir_all(&dags)?;
    let effects = root.join("effects.txt");
    let now = Utc::now();
    let start = (now - chrono::TimeDelta::minutes(10))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .ok_or("time")?;
    let start_text = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    // The DAG's life begins five minutes earlier; `--not-before` leaves those intervals to
    // a backfill (a backfill covers only the DAG's life).
    let before =
        (start - chrono::TimeDelta::minutes(5)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dag_file = dags.join("minutely.yaml");
    std::fs::write(
        &dag_file,
        format!(
            "dag: minutely\nschedule: \"* * * * *\"\nstart: {before}\ncatchup: true\ntasks:\n  \
             mark: {{ type: noop }}\n  record: {{ type: command, depends_on: [mark], command: 'echo $SLUICE_LOGICAL_DATE >> {}' }}\n",
            effects.display()
        ),
    )?;
    let mut scheduler = sluice(&dags, &state)
        .args([
            "scheduler",
            "--grace",
            "5",
            "--listen",
            "off",
            "--not-before",
            &start_text,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;

    // Ten closed one-minute intervals since `start`: all caught up.
    let lines = || {
        std::fs::read_to_string(&effects)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    wait_for("catchup", Duration::from_secs(60), || lines() >= 10);

    // Other commands reach the running scheduler through its control socket.
    let listed = sluice(&dags, &state)
        .args(["runs", "list", "minutely"])
        .output()?;
    assert_eq!(
        listed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("scheduled__"));
    let paused = sluice(&dags, &state)
        .args(["dags", "pause", "minutely"])
        .output()?;
    assert!(String::from_utf8_lossy(&paused.stdout).contains("DAG `minutely` paused"));
    // `dags list` without a folder shows the scheduler's DAGs, paused flag and version, and
    // says whose they are; with `--dags` it lists the folder it was given.
    let only_state = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .arg("--state")
            .arg(&state)
            .env_remove("SLUICE_DAGS")
            .env_remove("SLUICE_CONFIG");
        command
    };
    let listed = only_state()
        .args(["--output", "json", "dags", "list"])
        .output()?;
    let items: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
    assert_eq!(items[0]["dag"], "minutely", "{items}");
    assert_eq!(items[0]["paused"], true, "{items}");
    assert!(items[0]["version"].as_str().is_some_and(|v| v.len() == 12));
    let table = only_state().args(["dags", "list"]).output()?;
    let (out, err) = (
        String::from_utf8_lossy(&table.stdout),
        String::from_utf8_lossy(&table.stderr),
    );
    assert!(out.contains("PAUSED") && out.contains("minutely"), "{out}");
    assert!(
        err.contains("the DAGs of the scheduler running on")
            && err.contains(&dags.display().to_string()),
        "{err}"
    );
    let elsewhere = root.join("other-dags");
    std::fs::create_dir_all(&elsewhere)?;
    let named = sluice(&elsewhere, &state).args(["dags", "list"]).output()?;
    assert!(
        !String::from_utf8_lossy(&named.stdout).contains("minutely"),
        "--dags names the folder listed"
    );
    let unpaused = sluice(&dags, &state)
        .args(["dags", "unpause", "minutely"])
        .output()?;
    assert!(unpaused.status.success());
    // A backfill is handed to the scheduler, which runs it; the command follows it to the end.
    let backfill = sluice(&dags, &state)
        .args([
            "backfill",
            "minutely",
            "--from",
            &before,
            "--to",
            &start_text,
        ])
        .output()?;
    let said = String::from_utf8_lossy(&backfill.stderr);
    assert!(backfill.status.success(), "{said}");
    assert!(said.contains("handed to the running scheduler"), "{said}");
    // Progress lines while it runs, ending with the whole count.
    assert!(
        said.contains("backfill minutely: 5/5 interval(s) done: 5 succeeded, 0 failed"),
        "{said}"
    );
    assert!(String::from_utf8_lossy(&backfill.stdout).contains("5 interval(s), 5 succeeded"));

    // A broken edit: the scheduler reports it and keeps running the last good version.
    std::fs::write(
        &dag_file,
        "dag: minutely\nschedule: \"* * * * *\"\ntasks: [\n",
    )?;
    std::thread::sleep(Duration::from_secs(6));
    assert!(
        scheduler.try_wait()?.is_none(),
        "the scheduler died on a bad DAG file"
    );

    // SIGTERM: graceful stop, exit 0.
    terminate(&scheduler)?;
    let stopped = Instant::now();
    let status = scheduler.wait()?;
    assert!(status.success(), "{status}");
    assert!(stopped.elapsed() < Duration::from_secs(10));
    let mut stderr = String::new();
    if let Some(mut pipe) = scheduler.stderr.take() {
        pipe.read_to_string(&mut stderr)?;
    }
    assert!(stderr.contains("keeps its last good version"), "{stderr}");
    assert!(stderr.contains("stopped; state is consistent"), "{stderr}");

    // With the good file back, the ledger shows every interval from start to the catch-up point.
    std::fs::write(
        &dag_file,
        format!(
            "dag: minutely\nschedule: \"* * * * *\"\nstart: {start_text}\ncatchup: true\ntasks:\n  mark: {{ type: noop }}\n"
        ),
    )?;
    let until =
        (start + chrono::TimeDelta::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let audit = sluice(&dags, &state)
        .args(["audit", "minutely", "--from", &start_text, "--to", &until])
        .output()?;
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "{report}");
    assert!(
        report.contains("10 interval(s), 10 processed, 0 gap(s)"),
        "{report}"
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn a_command_against_a_state_held_by_another_process_says_so()
-> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-locked-{}", std::process::id()));
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    let state = root.join("state");
    // This test process holds the state, as a backfill would; no scheduler socket answers.
    let held = sluice_store::Store::open(&state)?;
    let blocked = sluice(&dags, &state)
        .args(["runs", "list", "any"])
        .output()?;
    assert_eq!(blocked.status.code(), Some(1));
    let message = String::from_utf8_lossy(&blocked.stderr);
    assert!(
        message.contains("in use by another sluice process (pid"),
        "{message}"
    );
    assert!(message.contains("help:"), "{message}");
    drop(held);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn not_before_keeps_a_long_catchup_to_the_recent_intervals()
-> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-not-before-{}", std::process::id()));
    let dags = root.join("dags");
    let state = root.join("state");
    std::fs::create_dir_all(&dags)?;
    let effects = root.join("effects.txt");
    // A DAG that starts a year ago with catchup: half a million one-minute intervals.
    let floor = (Utc::now() - chrono::TimeDelta::minutes(3))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .ok_or("time")?;
    let floor_text = floor.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(
        dags.join("minutely.yaml"),
        format!(
            "dag: minutely\nschedule: \"* * * * *\"\nstart: 2025-11-01T00:00:00Z\ncatchup: true\ntasks:\n  \
             record: {{ type: command, command: 'echo $SLUICE_LOGICAL_DATE >> {}' }}\n",
            effects.display()
        ),
    )?;
    let mut scheduler = sluice(&dags, &state)
        .args([
            "scheduler",
            "--grace",
            "5",
            "--listen",
            "off",
            "--not-before",
            &floor_text,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let dates = || -> Vec<chrono::DateTime<Utc>> {
        std::fs::read_to_string(&effects)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    wait_for("the recent intervals", Duration::from_secs(60), || {
        dates().len() >= 3
    });
    std::thread::sleep(Duration::from_secs(2));
    terminate(&scheduler)?;
    scheduler.wait()?;
    let mut ran = dates();
    ran.sort();
    // From the floor on, each closed interval once; nothing before it.
    assert_eq!(ran.first(), Some(&floor), "{ran:?}");
    assert!(
        ran.windows(2)
            .all(|w| w[1] - w[0] == chrono::TimeDelta::minutes(1)),
        "{ran:?}"
    );
    assert!((3..=5).contains(&ran.len()), "{ran:?}");
    // The intervals before it were never processed, and the audit says so.
    let before =
        (floor - chrono::TimeDelta::minutes(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let audit = sluice(&dags, &state)
        .args(["audit", "minutely", "--from", &before, "--to", &floor_text])
        .output()?;
    assert_eq!(audit.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&audit.stdout).contains("2 interval(s), 0 processed, 2 gap(s)"),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// `--log-format json`: every line the scheduler writes is one JSON object, and the lines
/// about a task carry its DAG, run, task and try as fields.
#[test]
fn json_logs_are_one_object_per_line_with_task_fields() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-json-logs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    let done = root.join("done");
    let start = (Utc::now() - chrono::TimeDelta::minutes(2))
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .ok_or("time")?
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(
        dags.join("d.yaml"),
        format!(
            "dag: logged\nschedule: \"* * * * *\"\nstart: {start}\ncatchup: true\ntasks:\n  \
             work: {{ type: command, command: 'touch {}' }}\n",
            done.display()
        ),
    )?;
    let mut scheduler = sluice(&dags, &root.join("state"))
        .args([
            "--log-format",
            "json",
            "scheduler",
            "--grace",
            "5",
            "--listen",
            "off",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    wait_for("a task", Duration::from_secs(30), || done.exists());
    std::thread::sleep(Duration::from_millis(500));
    terminate(&scheduler)?;
    let mut stderr = String::new();
    std::io::Read::read_to_string(scheduler.stderr.as_mut().ok_or("stderr")?, &mut stderr)?;
    scheduler.wait()?;
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("not JSON: {l}: {e}")))
        .collect::<Result<_, _>>()?;
    let success = lines
        .iter()
        .find(|l| {
            l["task"] == "work"
                && l["message"]
                    .as_str()
                    .is_some_and(|m| m.ends_with("→ success"))
        })
        .ok_or_else(|| format!("no task line in:\n{stderr}"))?;
    assert_eq!(success["dag"], "logged");
    assert!(
        success["run"]
            .as_str()
            .is_some_and(|r| r.starts_with("scheduled__")),
        "{success}"
    );
    assert_eq!(success["try"], 1);
    assert_eq!(success["level"], "INFO");
    assert!(success["timestamp"].is_string());
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "sluice scheduler: stopped; state is consistent"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// With a scheduler serving its API and a token in the environment, the CLI's changes go
/// through the API: its checks and answers (a wrong token is refused with the API's own
/// message), trigger, pause, clear, mark and a followed backfill.
#[test]
fn state_changing_commands_use_the_running_schedulers_api() -> Result<(), Box<dyn std::error::Error>>
{
    let root = std::env::temp_dir().join(format!("sluice-cli-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (dags, state) = (root.join("dags"), root.join("state"));
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("d.yaml"),
        "dag: hourly\nschedule: \"@hourly\"\nstart: 2030-01-01T00:00:00Z\ntasks:\n  a: { type: noop }\n",
    )?;
    let mut scheduler = sluice(&dags, &state)
        .args(["scheduler", "--grace", "1", "--listen", "127.0.0.1:0"])
        .env("SLUICE_API_TOKEN", "cli-token")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_for("the API address", Duration::from_secs(30), || {
        state.join("api.json").exists()
    });
    let run = |token: &str, args: &[&str]| {
        sluice(&dags, &state)
            .args(args)
            .env("SLUICE_API_TOKEN", token)
            .output()
    };
    let text = |o: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    let refused = run("wrong", &["dags", "pause", "hourly"])?;
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("the request had a wrong token"),
        "{}",
        text(&refused)
    );

    let paused = run("cli-token", &["dags", "pause", "hourly"])?;
    assert!(
        text(&paused).contains("DAG `hourly` paused"),
        "{}",
        text(&paused)
    );
    let unpaused = run("cli-token", &["dags", "unpause", "hourly"])?;
    assert!(unpaused.status.success(), "{}", text(&unpaused));
    let triggered = run(
        "cli-token",
        &[
            "dags",
            "trigger",
            "hourly",
            "--logical-date",
            "2031-01-01T05:00:00Z",
        ],
    )?;
    assert!(
        text(&triggered).contains("triggered manual__2031-01-01T05:00:00Z"),
        "{}",
        text(&triggered)
    );
    let backfill = run(
        "cli-token",
        &[
            "backfill",
            "hourly",
            "--from",
            "2030-01-01T00:00:00Z",
            "--to",
            "2030-01-01T03:00:00Z",
        ],
    )?;
    assert!(backfill.status.success(), "{}", text(&backfill));
    assert!(
        text(&backfill).contains("through its API"),
        "{}",
        text(&backfill)
    );
    assert!(
        text(&backfill).contains("backfill hourly: 3 interval(s), 3 succeeded, 0 failed"),
        "{}",
        text(&backfill)
    );
    let cleared = run(
        "cli-token",
        &[
            "clear",
            "hourly",
            "--run",
            "backfill__2030-01-01T00:00:00Z",
            "--task",
            "a",
        ],
    )?;
    assert!(cleared.status.success(), "{}", text(&cleared));
    let unknown = run(
        "cli-token",
        &[
            "tasks",
            "mark",
            "hourly",
            "backfill__2030-01-01T00:00:00Z",
            "zzz",
            "success",
        ],
    )?;
    assert!(
        text(&unknown).contains("no task `zzz`"),
        "{}",
        text(&unknown)
    );

    // A read goes through the control socket, and its run summary is the API's, field for
    // field: one shape computed in the store, rendered by both.
    let listed = run("cli-token", &["--output", "json", "runs", "list", "hourly"])?;
    assert!(listed.status.success(), "{}", text(&listed));
    let from_cli: serde_json::Value = serde_json::from_slice(&listed.stdout)?;
    let address: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("api.json"))?)?;
    let url = address["url"].as_str().ok_or("api.json has no url")?;
    let from_api: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{url}/api/v1/dags/hourly/runs?limit=100"))
        .bearer_auth("cli-token")
        .send()?
        .json()?;
    let by_id = |runs: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        let mut runs: Vec<_> = runs
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["run_id"].as_str().unwrap_or_default().to_owned(),
                    r.clone(),
                )
            })
            .collect();
        runs.sort_by(|a, b| a.0.cmp(&b.0));
        runs
    };
    let (cli_runs, api_runs) = (by_id(&from_cli), by_id(&from_api["runs"]));
    assert_eq!(cli_runs.len(), 4, "{from_cli}");
    assert_eq!(cli_runs, api_runs);
    assert_eq!(cli_runs[0].1["dag_id"], "hourly");

    terminate(&scheduler)?;
    scheduler.wait()?;
    assert!(
        !state.join("api.json").exists(),
        "the address file goes with the scheduler"
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
