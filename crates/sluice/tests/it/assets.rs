//! Assets through the real engine (issue 22): an hourly consumer waits for the four
//! 15-minute windows it reads and starts in the very group commit that makes the fourth one
//! durable, with no polling; a rewritten window reruns its hour once, with the reason in the
//! history; a backfill of another producer over a day reruns that day's 24 hours, and only
//! those.

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use sluice_core::RunStatus;
use sluice_runtime::scheduler::{Control, Input};
use sluice_store::{EventRecord, InputsStatus, Reprocess, RunRecord, Store};

use crate::in_process;

type Error = Box<dyn std::error::Error>;

fn at(text: &str) -> Result<DateTime<Utc>, Error> {
    Ok(DateTime::parse_from_rfc3339(text)?.with_timezone(&Utc))
}

/// A `*/15` producer of `warehouse.agg_15m` over `[start, end)`, `parallel` windows at once.
fn producer(dag: &str, start: &str, end: &str, paused: bool, parallel: usize) -> String {
    format!(
        "dag: {dag}\nschedule: \"*/15 * * * *\"\nstart: {start}\nend: {end}\ncatchup: true\n\
         paused_on_creation: {paused}\nmax_active_runs: {parallel}\ntasks:\n  aggregate:\n    type: command\n    command: \"true\"\n\
         \x20 load:\n    type: noop\n    depends_on: [aggregate]\n    produces: [warehouse.agg_15m]\n"
    )
}

/// An hourly consumer of the four windows of its hour.
fn validation(start: &str, end: &str) -> String {
    format!(
        "dag: validation\nschedule: \"@hourly\"\nstart: {start}\nend: {end}\ncatchup: true\n\
         max_active_runs: 64\nconsumes:\n  warehouse.agg_15m: within\ntasks:\n  check:\n    type: command\n    command: \"true\"\n"
    )
}

fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, Error>,
) -> Result<(), Error> {
    let started = Instant::now();
    while !done()? {
        if started.elapsed() > timeout {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn runs(store: &Store, dag: &str) -> Result<Vec<RunRecord>, Error> {
    Ok(store.runs_of(dag).collect::<Result<Vec<_>, _>>()?)
}

fn all_succeeded(store: &Store, dag: &str, count: usize) -> Result<bool, Error> {
    let runs = runs(store, dag)?;
    Ok(runs.len() == count && runs.iter().all(|r| r.state.status == RunStatus::Success))
}

fn batches(store: &Store) -> Result<Vec<Vec<EventRecord>>, Error> {
    Ok(store.event_batches().collect::<Result<Vec<_>, _>>()?)
}

/// The index of the first batch holding an event that matches.
fn batch_of(batches: &[Vec<EventRecord>], matches: impl Fn(&EventRecord) -> bool) -> Option<usize> {
    batches.iter().position(|b| b.iter().any(&matches))
}

fn metric(scheduler: &in_process::Scheduler, line_start: &str) -> f64 {
    scheduler
        .metrics
        .render()
        .lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn send(scheduler: &in_process::Scheduler, command: Control) -> Result<String, Error> {
    let (reply, answer) = std::sync::mpsc::channel();
    scheduler.sender.send(Input::Control { command, reply })?;
    answer
        .recv_timeout(Duration::from_secs(10))?
        .map_err(|(message, hint)| format!("{message} ({hint:?})").into())
}

/// Writes a window of `agg` again: its run cleared, as late data or an operator would.
fn rewrite(scheduler: &in_process::Scheduler, window: &str) -> Result<String, Error> {
    send(
        scheduler,
        Control::Clear {
            dag: "agg".into(),
            run_id: window.into(),
            tasks: Vec::new(),
            downstream: false,
            failed_only: false,
        },
    )
}

#[test]
fn an_hour_starts_in_the_commit_of_its_fourth_window_and_reruns_once_when_one_is_rewritten()
-> Result<(), Error> {
    let (start, end) = ("2025-09-01T00:00:00Z", "2025-09-01T02:00:00Z");
    let scheduler = in_process::start(
        "assets-ready",
        &[
            ("agg.yaml", &producer("agg", start, end, false, 1)),
            ("validation.yaml", &validation(start, end)),
        ],
        |_| {},
    );
    let store = scheduler.store.clone();
    wait_until("both hours validated", Duration::from_secs(60), || {
        Ok(all_succeeded(&store, "agg", 8)? && all_succeeded(&store, "validation", 2)?)
    })?;
    let batches = batches(&store)?;
    for hour in ["2025-09-01T00:00:00Z", "2025-09-01T01:00:00Z"] {
        let hour_start = at(hour)?;
        let windows: Vec<String> = (0..4)
            .map(|k| {
                format!(
                    "scheduled__{}",
                    sluice_model::spec::instant::format_instant(
                        hour_start + TimeDelta::minutes(15 * k)
                    )
                )
            })
            .collect();
        // The commits in which the hour's windows were loaded, one after the other.
        let loaded: Vec<usize> = windows
            .iter()
            .filter_map(|run| {
                batch_of(&batches, |e| {
                    e.dag == "agg"
                        && e.run_id == *run
                        && e.task.as_deref() == Some("load")
                        && e.to == "success"
                })
            })
            .collect();
        assert_eq!(
            loaded.len(),
            4,
            "{hour}: windows loaded in commits {loaded:?}"
        );
        assert!(loaded.is_sorted() && loaded[0] < loaded[3], "{loaded:?}");
        let fourth = loaded[3];
        let run_id = format!("scheduled__{hour}");
        let scheduled = batch_of(&batches, |e| {
            e.dag == "validation"
                && e.run_id == run_id
                && e.task.as_deref() == Some("check")
                && e.from == "deferred"
                && e.to == "scheduled"
        })
        .ok_or(format!("{run_id}: its check never waited for its inputs"))?;
        eprintln!(
            "{hour}: fourth window loaded in commit {fourth}, check scheduled in commit {scheduled}"
        );
        assert_eq!(
            scheduled, fourth,
            "{run_id}: scheduled in commit {scheduled}, its fourth window loaded in commit {fourth}"
        );
        let record = store.run("validation", hour_start)?.ok_or("no hour run")?;
        let inputs = record.inputs.ok_or("no inputs recorded")?;
        assert_eq!(inputs.status, InputsStatus::Ready);
        let fourth_seq = (0..4)
            .filter_map(|k| {
                store
                    .latest_materialization(
                        "warehouse.agg_15m",
                        hour_start + TimeDelta::minutes(15 * k),
                    )
                    .ok()
                    .flatten()
                    .map(|m| m.seq)
            })
            .max()
            .ok_or("no materializations")?;
        assert!(
            inputs.snapshot > fourth_seq,
            "{inputs:?} read before window seq {fourth_seq}"
        );
    }
    // No polling: each waiting run was looked at when created and when one of its windows
    // was written, never on a timer.
    let checks = metric(
        &scheduler,
        "sluice_asset_readiness_checks_total{dag=\"validation\"}",
    );
    eprintln!("readiness checks of validation: {checks} (2 runs, 8 windows)");
    assert!((2.0..=10.0).contains(&checks), "readiness checks: {checks}");

    // Late data: the 00:15 window is loaded again; its hour reruns on its own, once.
    let window = "scheduled__2025-09-01T00:15:00Z";
    rewrite(&scheduler, window)?;
    let first_hour = at(start)?;
    wait_until(
        "the first hour validated again",
        Duration::from_secs(60),
        || {
            Ok(store.run("validation", first_hour)?.is_some_and(|r| {
                r.state.status == RunStatus::Success
                    && r.inputs
                        .as_ref()
                        .is_some_and(|i| i.upstream_reruns == 1 && i.status == InputsStatus::Ready)
            }))
        },
    )?;
    // Let a second rerun for the same change show itself, if there were one.
    std::thread::sleep(Duration::from_millis(500));
    let reruns: Vec<EventRecord> = store
        .events()
        .filter_map(Result::ok)
        .filter(|e| e.dag == "validation" && e.reason.is_some())
        .collect();
    assert_eq!(reruns.len(), 1, "{reruns:#?}");
    let rerun = reruns
        .into_iter()
        .next()
        .ok_or("no rerun event with its reason")?;
    let reason = rerun.reason.unwrap_or_default();
    let first = store
        .run("validation", first_hour)?
        .ok_or("no first hour")?;
    assert_eq!(
        first.state.tasks[0].try_number, 2,
        "the hour's check ran once more"
    );
    assert!(
        first.state.reprocessing,
        "a rerun reprocesses history: no SLA deadline"
    );
    assert_eq!(rerun.run_id, "scheduled__2025-09-01T00:00:00Z");
    assert!(
        reason.contains("warehouse.agg_15m 2025-09-01T00:15:00+00:00 rewritten by agg scheduled__2025-09-01T00:15:00Z")
            && reason.contains("rerun 1 of at most 3"),
        "{reason}"
    );
    let second_hour = store
        .run("validation", at("2025-09-01T01:00:00Z")?)?
        .ok_or("no second hour")?;
    assert_eq!(second_hour.inputs.map(|i| i.upstream_reruns), Some(0));
    assert_eq!(
        second_hour.state.tasks[0].try_number, 1,
        "the other hour did not run again"
    );
    assert_eq!(store.stale_count(), 0, "nothing left stale");
    let history = store.materializations("warehouse.agg_15m", first_hour, at(end)?, 100)?;
    assert_eq!(history.len(), 9, "eight windows, one of them twice");
    drop(scheduler);
    Ok(())
}

#[test]
fn a_backfill_of_another_producer_over_a_day_revalidates_that_days_hours_and_only_those()
-> Result<(), Error> {
    let (start, end) = ("2025-09-01T00:00:00Z", "2025-09-03T00:00:00Z");
    let scheduler = in_process::start(
        "assets-backfill",
        &[
            ("agg.yaml", &producer("agg", start, end, false, 16)),
            (
                "historical.yaml",
                &producer("historical", start, end, true, 16),
            ),
            ("validation.yaml", &validation(start, end)),
        ],
        |_| {},
    );
    let store = scheduler.store.clone();
    wait_until("two days validated", Duration::from_secs(240), || {
        Ok(all_succeeded(&store, "agg", 192)? && all_succeeded(&store, "validation", 48)?)
    })?;
    let (reply, answer) = std::sync::mpsc::channel();
    scheduler.sender.send(Input::Backfill {
        dag: "historical".into(),
        from: at("2025-09-02T00:00:00Z")?,
        to: at("2025-09-03T00:00:00Z")?,
        reprocess: Reprocess::Completed,
        max_active_runs: Some(8),
        reply,
    })?;
    answer
        .recv_timeout(Duration::from_secs(10))?
        .map_err(|(m, h)| format!("{m} ({h:?})"))?;
    let second_day = at("2025-09-02T00:00:00Z")?;
    wait_until(
        "the second day revalidated",
        Duration::from_secs(240),
        || {
            let hours = runs(&store, "validation")?;
            Ok(hours
                .iter()
                .filter(|r| r.state.logical_date >= second_day)
                .all(|r| {
                    r.state.status == RunStatus::Success
                        && r.inputs.as_ref().is_some_and(|i| {
                            i.upstream_reruns >= 1 && i.status == InputsStatus::Ready
                        })
                }))
        },
    )?;
    // Let any extra rerun show itself before counting.
    std::thread::sleep(Duration::from_millis(500));
    for hour in runs(&store, "validation")? {
        let reruns = hour.inputs.as_ref().map_or(0, |i| i.upstream_reruns);
        let expected = u32::from(hour.state.logical_date >= second_day);
        assert_eq!(
            (reruns, hour.state.tasks[0].try_number),
            (expected, 1 + expected),
            "{}: reruns and tries",
            hour.state.run_id
        );
    }
    let reasons: Vec<String> = store
        .events()
        .filter_map(Result::ok)
        .filter_map(|e| e.reason)
        .collect();
    assert_eq!(reasons.len(), 24, "one rerun per hour of the day");
    assert!(
        reasons
            .iter()
            .all(|r| r.contains("rewritten by historical backfill__")),
        "{reasons:#?}"
    );
    assert_eq!(store.stale_count(), 0);
    drop(scheduler);
    Ok(())
}

/// `sluice scheduler` on `root`'s DAGs, state and config, its stderr collected.
struct Process {
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    fn start(root: &std::path::Path) -> Result<Process, Error> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--dags")
            .arg(root.join("dags"))
            .arg("--state")
            .arg(root.join("state"))
            .arg("--config")
            .arg(root.join("sluice.toml"))
            .args(["scheduler", "--grace", "5", "--listen", "off"])
            .env_remove("SLUICE_API_TOKEN")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Ok(Process { child, lines })
    }

    fn output(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn wait_for(&mut self, text: &str, limit: Duration) -> Result<(), Error> {
        let started = Instant::now();
        while !self.output().contains(text) {
            if let Some(status) = self.child.try_wait()? {
                return Err(
                    format!("exited ({status}) before `{text}`:\n{}", self.output()).into(),
                );
            }
            if started.elapsed() > limit {
                return Err(format!("no `{text}` within {limit:?}:\n{}", self.output()).into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// SIGKILL: nothing of the process's memory survives, only what it flushed.
    fn kill(mut self) -> Result<(), Error> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// The hour's fourth window succeeds and the hour's check is ready, but the one slot of its
/// pool is held by another task; the scheduler is SIGKILLed then. The readiness was in the
/// same commit as the window's success: after a restart (with a second slot) the check runs.
#[test]
fn a_sigkill_between_the_fourth_window_and_the_hours_start_loses_no_readiness() -> Result<(), Error>
{
    let root = std::env::temp_dir().join(format!("sluice-assets-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("dags"))?;
    let (start, end) = ("2025-09-01T00:00:00Z", "2025-09-01T01:00:00Z");
    std::fs::write(
        root.join("dags/agg.yaml"),
        producer("agg", start, end, false, 1),
    )?;
    std::fs::write(
        root.join("dags/validation.yaml"),
        validation(start, end).replace(
            "    command: \"true\"\n",
            "    command: \"true\"\n    pool: serial\n",
        ),
    )?;
    std::fs::write(
        root.join("dags/blocker.yaml"),
        format!(
            "dag: blocker\nschedule: \"@hourly\"\nstart: {start}\nend: {end}\ncatchup: true\n\
             tasks:\n  hold:\n    type: command\n    command: \"sleep 30\"\n    pool: serial\n"
        ),
    )?;
    std::fs::write(root.join("sluice.toml"), "[pools]\nserial = 1\n")?;
    let mut first = Process::start(&root)?;
    first.wait_for(
        "agg scheduled__2025-09-01T00:45:00Z success",
        Duration::from_secs(60),
    )?;
    first.kill()?;
    let store = Store::open(&root.join("state"))?;
    let hour = store
        .run("validation", at(start)?)?
        .ok_or("the hour's run was not created")?;
    let check = &hour.state.tasks[0];
    assert_eq!(
        (check.state, check.try_number),
        (sluice_core::TaskState::Scheduled, 0),
        "killed after the window's success and before the check started"
    );
    assert_eq!(
        hour.inputs.as_ref().map(|i| i.status),
        Some(InputsStatus::Ready)
    );
    let fourth = store
        .latest_materialization("warehouse.agg_15m", at("2025-09-01T00:45:00Z")?)?
        .ok_or("the fourth window's materialization was lost")?;
    drop(store);
    // Restarted with a second slot: the check runs.
    std::fs::write(root.join("sluice.toml"), "[pools]\nserial = 2\n")?;
    let mut second = Process::start(&root)?;
    second.wait_for(
        "validation scheduled__2025-09-01T00:00:00Z success",
        Duration::from_secs(60),
    )?;
    second.kill()?;
    let store = Store::open(&root.join("state"))?;
    let hour = store.run("validation", at(start)?)?.ok_or("no hour run")?;
    assert_eq!(hour.state.status, RunStatus::Success);
    let inputs = hour.inputs.ok_or("no inputs")?;
    assert!(
        inputs.snapshot > fourth.seq,
        "{inputs:?} vs window {}",
        fourth.seq
    );
    assert_eq!(inputs.upstream_reruns, 0);
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// `sluice backfill` of a producer (the engine in backfill mode): its consumers' intervals
/// run as their inputs complete (one command for the chain), and a second backfill of part
/// of the range reruns exactly the hours it rewrote.
#[test]
fn backfilling_a_producer_runs_its_consumers_as_their_inputs_complete() -> Result<(), Error> {
    use sluice_runtime::scheduler::{Engine, EngineConfig, Mode};
    let root = std::env::temp_dir().join(format!("sluice-assets-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("dags"))?;
    let (start, end) = ("2025-09-01T00:00:00Z", "2025-09-02T00:00:00Z");
    std::fs::write(
        root.join("dags/agg.yaml"),
        producer("agg", start, end, true, 4),
    )?;
    std::fs::write(root.join("dags/validation.yaml"), validation(start, end))?;
    let backfill = |from: &str, to: &str, reprocess: Reprocess| -> Result<(), Error> {
        let store = Store::open(&root.join("state"))?;
        let mut engine = Engine::new(
            store,
            EngineConfig::new(root.join("dags"), Mode::Backfill { dag: "agg".into() }),
        )?;
        engine.start_backfill("agg", at(from)?, at(to)?, reprocess, None)?;
        engine.run()?;
        Ok(())
    };
    backfill(start, end, Reprocess::None)?;
    let store = Store::open(&root.join("state"))?;
    let hours = runs(&store, "validation")?;
    assert_eq!(
        hours.len(),
        24,
        "every hour of the day ran with the backfill"
    );
    for hour in &hours {
        assert_eq!(
            hour.state.status,
            RunStatus::Success,
            "{}",
            hour.state.run_id
        );
        assert_eq!(hour.state.kind, sluice_core::RunKind::Backfill);
        let inputs = hour.inputs.as_ref().ok_or("no inputs")?;
        let newest = store
            .materializations(
                "warehouse.agg_15m",
                hour.state.interval.start,
                hour.state.interval.end,
                8,
            )?
            .iter()
            .map(|m| m.seq)
            .max()
            .ok_or("no windows")?;
        assert!(
            inputs.snapshot > newest,
            "{}: ran before its fourth window",
            hour.state.run_id
        );
    }
    drop(store);
    // The first two hours again: exactly those two rerun, once.
    backfill(start, "2025-09-01T02:00:00Z", Reprocess::Completed)?;
    let store = Store::open(&root.join("state"))?;
    for hour in runs(&store, "validation")? {
        let again = hour.state.logical_date < at("2025-09-01T02:00:00Z")?;
        assert_eq!(
            (
                hour.state.status,
                hour.inputs.as_ref().map_or(0, |i| i.upstream_reruns),
                hour.state.tasks[0].try_number
            ),
            (RunStatus::Success, u32::from(again), 1 + u32::from(again)),
            "{}",
            hour.state.run_id
        );
    }
    assert_eq!(store.stale_count(), 0);
    drop(store);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// `max_reruns` bounds the reruns of one interval; `mark_stale` never reruns; what stays
/// out of date is listed by `sluice audit --stale` (exit 1), counted by a metric, and is a
/// gap in `sluice audit`.
#[test]
fn reruns_are_bounded_and_what_stays_stale_is_audited() -> Result<(), Error> {
    let (start, end) = ("2025-09-01T00:00:00Z", "2025-09-01T01:00:00Z");
    let consumer = |dag: &str, policy: &str| {
        validation(start, end)
            .replace("dag: validation", &format!("dag: {dag}"))
            .replace(
                "warehouse.agg_15m: within",
                &format!("warehouse.agg_15m: {{ intervals: within, {policy} }}"),
            )
    };
    let scheduler = in_process::start(
        "assets-bounded",
        &[
            ("agg.yaml", &producer("agg", start, end, false, 4)),
            ("bounded.yaml", &consumer("bounded", "max_reruns: 1")),
            (
                "marked.yaml",
                &consumer("marked", "on_upstream_change: mark_stale"),
            ),
        ],
        |_| {},
    );
    let store = scheduler.store.clone();
    wait_until("the hour checked by both", Duration::from_secs(60), || {
        Ok(all_succeeded(&store, "bounded", 1)? && all_succeeded(&store, "marked", 1)?)
    })?;
    let hour = at(start)?;
    let window = "scheduled__2025-09-01T00:15:00Z";
    for round in 1..=2u32 {
        let before = store
            .latest_materialization("warehouse.agg_15m", at("2025-09-01T00:15:00Z")?)?
            .map(|m| m.seq);
        rewrite(&scheduler, window)?;
        wait_until("the window written again", Duration::from_secs(30), || {
            let now = store
                .latest_materialization("warehouse.agg_15m", at("2025-09-01T00:15:00Z")?)?
                .map(|m| m.seq);
            Ok(now > before && all_succeeded(&store, "agg", 4)?)
        })?;
        wait_until("the bounded hour settled", Duration::from_secs(30), || {
            Ok(store
                .run("bounded", hour)?
                .is_some_and(|r| r.state.status == RunStatus::Success)
                && (round == 2
                    || store
                        .run("bounded", hour)?
                        .and_then(|r| r.inputs)
                        .is_some_and(|i| i.upstream_reruns == 1)))
        })?;
    }
    wait_until("both marked stale", Duration::from_secs(30), || {
        Ok(store
            .stale_interval("bounded", hour)?
            .is_some_and(|s| s.held.is_some())
            && store
                .stale_interval("marked", hour)?
                .is_some_and(|s| s.causes.len() == 2))
    })?;
    let bounded = store.run("bounded", hour)?.ok_or("no bounded run")?;
    assert_eq!(
        bounded.inputs.map(|i| i.upstream_reruns),
        Some(1),
        "one rerun, then held"
    );
    assert_eq!(bounded.state.tasks[0].try_number, 2);
    let marked = store.run("marked", hour)?.ok_or("no marked run")?;
    assert_eq!(
        marked.state.tasks[0].try_number, 1,
        "mark_stale never reruns"
    );
    wait_until("the stale gauge", Duration::from_secs(10), || {
        Ok(
            metric(&scheduler, "sluice_asset_stale_intervals{dag=\"marked\"}") == 1.0
                && metric(&scheduler, "sluice_asset_stale_intervals{dag=\"bounded\"}") == 1.0,
        )
    })?;
    let dags = scheduler.dags_dir();
    let state = scheduler.state_dir();
    drop(store);
    let root = scheduler.stop_and_keep();
    let sluice = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--dags")
            .arg(&dags)
            .arg("--state")
            .arg(&state)
            .args(args)
            .env_remove("SLUICE_CONFIG")
            .output()
    };
    let listed = sluice(&["audit", "--stale"])?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&listed.stdout),
        String::from_utf8_lossy(&listed.stderr)
    );
    assert_eq!(listed.status.code(), Some(1), "{text}");
    assert!(text.contains("2 stale interval(s)"), "{text}");
    assert!(
        text.contains("held: rewritten again after 1 rerun(s) (max_reruns 1)"),
        "{text}"
    );
    assert!(text.contains("mark_stale: not rerun"), "{text}");
    assert!(
        text.contains("warehouse.agg_15m 2025-09-01T00:15:00+00:00 rewritten by agg"),
        "{text}"
    );
    let audit = sluice(&["audit", "marked", "--from", start, "--to", end])?;
    let text = String::from_utf8_lossy(&audit.stdout).into_owned();
    assert_eq!(audit.status.code(), Some(1), "{text}");
    assert!(
        text.contains("success (stale)") && text.contains("1 gap(s)"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

/// A consumer whose input never comes fails at its `timeout`, naming what is missing.
#[test]
fn a_run_still_missing_inputs_at_its_timeout_fails_saying_what_is_missing() -> Result<(), Error> {
    let scheduler = in_process::start(
        "assets-timeout",
        &[
            // Three of the hour's four windows: 00:45 is never written.
            (
                "agg.yaml",
                &producer(
                    "agg",
                    "2025-09-01T00:00:00Z",
                    "2025-09-01T00:45:00Z",
                    false,
                    4,
                ),
            ),
            (
                "validation.yaml",
                &validation("2025-09-01T00:00:00Z", "2025-09-01T01:00:00Z").replace(
                    "warehouse.agg_15m: within",
                    "warehouse.agg_15m: { intervals: within, timeout: 1s }",
                ),
            ),
        ],
        |_| {},
    );
    let store = scheduler.store.clone();
    let hour = at("2025-09-01T00:00:00Z")?;
    wait_until("the hour failed", Duration::from_secs(30), || {
        Ok(store
            .run("validation", hour)?
            .is_some_and(|r| r.state.status == RunStatus::Failed))
    })?;
    let run = store.run("validation", hour)?.ok_or("no run")?;
    let inputs = run.inputs.ok_or("no inputs")?;
    assert_eq!(inputs.status, InputsStatus::TimedOut);
    assert_eq!(inputs.missing_count, 1);
    let reason = run.state.tasks[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("inputs timed out: warehouse.agg_15m 2025-09-01T00:45:00+00:00–2025-09-01T01:00:00+00:00 not materialized yet"),
        "{reason}"
    );
    assert_eq!(run.state.tasks[0].try_number, 0, "it never ran");
    drop(store);
    drop(scheduler);
    Ok(())
}
