//! The daily loop of a data engineer, through the real engine (issue 21's "broken or
//! wrong"): triggering a DAG that is up to date, a paused DAG, a clear after the DAG file
//! was fixed, a broken DAG file reported where it is.

use std::path::{Path, PathBuf};

use sluice_core::RunStatus;
use sluice_runtime::scheduler::{Control, ControlError, Engine, EngineConfig, Mode};
use sluice_store::Store;

type Error = Box<dyn std::error::Error>;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(name: &str) -> Result<Scratch, Error> {
    let root = std::env::temp_dir().join(format!("sluice-daily-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("dags"))?;
    Ok(Scratch(root))
}

fn engine(root: &Path, mode: Mode) -> Result<Engine, Error> {
    let store = Store::open(&root.join("state"))?;
    Ok(Engine::new(
        store,
        EngineConfig::new(root.join("dags"), mode),
    )?)
}

fn trigger(engine: &mut Engine, dag: &str) -> Result<String, ControlError> {
    engine.control(Control::Trigger {
        dag: dag.into(),
        logical_date: None,
        conf: serde_json::Value::Null,
    })
}

fn refusal(result: Result<String, ControlError>) -> Result<(String, String), Error> {
    match result {
        Err(ControlError::Refused { message, hint }) => Ok((message, hint.unwrap_or_default())),
        other => Err(format!("expected a refusal, got {other:?}").into()),
    }
}

const DAILY: &str = "dag: daily\nschedule: \"@daily\"\nstart: 2025-01-01T00:00:00Z\ncatchup: false\n\
    params:\n  why: \"\"\ntasks:\n  a:\n    type: command\n    command: \"true\"\n";

/// Trigger with no date on a DAG whose last closed interval has a finished run: that run
/// runs again (it answered 409 before); while it runs, a trigger says which run to follow.
#[test]
fn triggering_an_up_to_date_dag_runs_its_latest_interval_again() -> Result<(), Error> {
    let root = scratch("uptodate")?;
    std::fs::write(root.0.join("dags/daily.yaml"), DAILY)?;
    let mut engine = engine(
        &root.0,
        Mode::Test {
            dag: "daily".into(),
        },
    )?;
    let first = trigger(&mut engine, "daily")?;
    let run_id = sluice_runtime::scheduler::control::triggered_run_id(&first)
        .ok_or("no run named")?
        .to_owned();
    assert!(
        !run_id.contains('.'),
        "run ids to the second, no fraction: {run_id}"
    );
    // Still queued: a second trigger names the run to follow, with the real ids.
    let (message, hint) = refusal(trigger(&mut engine, "daily"))?;
    assert!(message.contains(&run_id), "{message}");
    assert_eq!(
        hint,
        format!("follow it with `sluice runs show daily {run_id}`")
    );
    engine.run()?;

    // Finished: the trigger runs the interval again, conf and all.
    let again = engine.control(Control::Trigger {
        dag: "daily".into(),
        logical_date: None,
        conf: serde_json::json!({"why": "again"}),
    })?;
    assert!(
        again.contains(&run_id) && again.contains("run again"),
        "{again}"
    );
    engine.run()?;
    let logical = sluice_runtime::scheduler::control::logical_date_of(&run_id).ok_or("date")?;
    let run = engine.store().run("daily", logical)?.ok_or("no run")?;
    assert_eq!(run.state.status, RunStatus::Success);
    assert_eq!(run.conf["why"], "again");
    let attempts = engine.store().attempts_of_run("daily", logical)?;
    assert_eq!(attempts.len(), 2, "the task ran twice: {attempts:?}");

    // With an explicit date the run is refused, and the hint is the real command.
    let (message, hint) = refusal(engine.control(Control::Trigger {
        dag: "daily".into(),
        logical_date: Some(logical),
        conf: serde_json::Value::Null,
    }))?;
    assert!(message.contains("already has run"), "{message}");
    assert_eq!(
        hint,
        format!("run it again with `sluice clear daily --run {run_id}`")
    );
    Ok(())
}

/// A paused DAG's run would wait unseen: the trigger says so and how to unpause.
#[test]
fn triggering_a_paused_dag_is_refused_with_how_to_unpause() -> Result<(), Error> {
    let root = scratch("paused")?;
    std::fs::write(
        root.0.join("dags/daily.yaml"),
        DAILY.replace(
            "catchup: false\n",
            "catchup: false\npaused_on_creation: true\n",
        ),
    )?;
    let mut engine = engine(&root.0, Mode::Scheduler)?;
    let (message, hint) = refusal(trigger(&mut engine, "daily"))?;
    assert!(message.contains("DAG `daily` is paused"), "{message}");
    assert!(hint.contains("`sluice dags unpause daily`"), "{hint}");
    assert_eq!(engine.store().runs_of("daily").count(), 0, "no run created");
    engine.control(Control::Pause {
        dag: "daily".into(),
        paused: false,
    })?;
    let triggered = trigger(&mut engine, "daily")?;
    assert!(triggered.starts_with("triggered manual__"), "{triggered}");
    Ok(())
}

/// A run cleared after its DAG file was fixed runs the fixed version; each attempt records
/// the version it ran.
#[test]
fn a_clear_after_the_file_was_fixed_runs_the_new_version() -> Result<(), Error> {
    let root = scratch("fixed")?;
    let file = root.0.join("dags/daily.yaml");
    std::fs::write(
        &file,
        DAILY.replace("command: \"true\"", "command: \"echo broken; exit 3\""),
    )?;
    let mut first = engine(
        &root.0,
        Mode::Test {
            dag: "daily".into(),
        },
    )?;
    let answer = trigger(&mut first, "daily")?;
    first.run()?;
    let run_id = sluice_runtime::scheduler::control::triggered_run_id(&answer)
        .ok_or("no run named")?
        .to_owned();
    let logical = sluice_runtime::scheduler::control::logical_date_of(&run_id).ok_or("date")?;
    let failed = first.store().run("daily", logical)?.ok_or("no run")?;
    assert_eq!(failed.state.status, RunStatus::Failed);
    let old_version = failed.dag_version.clone();
    drop(first);

    // The fix: the same task, a command that works, and a task added after it.
    std::fs::write(
        &file,
        format!("{DAILY}  b:\n    type: command\n    depends_on: [a]\n    command: \"true\"\n"),
    )?;
    let mut second = engine(
        &root.0,
        Mode::Test {
            dag: "daily".into(),
        },
    )?;
    second.control(Control::Clear {
        dag: "daily".into(),
        run_id: run_id.clone(),
        tasks: Vec::new(),
        downstream: false,
        failed_only: false,
    })?;
    second.run()?;
    let run = second.store().run("daily", logical)?.ok_or("no run")?;
    assert_eq!(
        run.state.status,
        RunStatus::Success,
        "{:?}",
        run.state.tasks
    );
    assert_ne!(
        run.dag_version, old_version,
        "the run moved to the fixed version"
    );
    assert_eq!(
        run.state.tasks.len(),
        2,
        "the added task is part of the run"
    );
    let mut attempts = second.store().attempts_of_run("daily", logical)?;
    attempts.sort_by_key(|a| (a.task.clone(), a.try_number));
    let versions: Vec<(&str, u32, Option<&str>)> = attempts
        .iter()
        .map(|a| (a.task.as_str(), a.try_number, a.dag_version.as_deref()))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("a", 1, Some(old_version.as_str())),
            ("a", 2, Some(run.dag_version.as_str())),
            ("b", 1, Some(run.dag_version.as_str())),
        ]
    );
    Ok(())
}

/// A DAG file that stops validating while the scheduler runs: the DAG keeps its last good
/// version, and the store records where the file broke (the API, the UI's banner and the
/// metric read it); a new file that never loaded is listed too.
#[test]
fn a_broken_dag_file_is_recorded_with_its_place() -> Result<(), Error> {
    let root = scratch("broken")?;
    std::fs::write(root.0.join("dags/daily.yaml"), DAILY)?;
    let store = Store::open(&root.0.join("state"))?;
    let mut config = EngineConfig::new(root.0.join("dags"), Mode::Scheduler);
    config.reload_every = std::time::Duration::from_millis(100);
    config.shutdown_grace = std::time::Duration::from_secs(1);
    let mut engine = Engine::new(store.clone(), config)?;
    let (sender, metrics) = (engine.sender(), engine.metrics());
    let running = std::thread::spawn(move || engine.run().map_err(|e| e.to_string()));
    // Once the first read is done: line 9 names a task kind that does not exist, and a new
    // file has a syntax error.
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::write(
        root.0.join("dags/daily.yaml"),
        DAILY.replace("type: command", "type: comand"),
    )?;
    std::fs::write(root.0.join("dags/new.yaml"), "dag: new\ntasks: [\n")?;
    let began = std::time::Instant::now();
    let mut errors = Vec::new();
    let mut rendered = String::new();
    // The gauge is set just after the store is written: wait for both.
    while !(errors.len() == 2 && rendered.contains("sluice_dag_import_errors 2"))
        && began.elapsed() < std::time::Duration::from_secs(20)
    {
        std::thread::sleep(std::time::Duration::from_millis(100));
        errors = store.import_errors()?;
        rendered = metrics.render();
    }
    let _ = sender.send(sluice_runtime::scheduler::Input::Shutdown);
    running.join().map_err(|_| "the engine panicked")??;
    errors.sort_by(|a, b| a.file.cmp(&b.file));
    assert_eq!(errors.len(), 2, "{errors:?}");
    let kept = &errors[0];
    assert!(kept.file.ends_with("daily.yaml"), "{kept:?}");
    assert_eq!((kept.line, kept.column), (Some(9), Some(11)), "{kept:?}");
    assert_eq!(kept.kept_dag.as_deref(), Some("daily"));
    assert!(kept.message.contains("comand"), "{}", kept.message);
    assert!(errors[1].file.ends_with("new.yaml"));
    assert_eq!(errors[1].kept_dag, None);
    assert!(
        rendered.contains("sluice_dag_import_errors 2"),
        "{rendered}"
    );
    Ok(())
}

/// An unscheduled DAG triggered twice within a second: two runs (run ids carry no fraction,
/// so the second takes the next free second), never the first run cleared and reused.
#[test]
fn two_triggers_of_an_unscheduled_dag_in_one_second_make_two_runs() -> Result<(), Error> {
    let root = scratch("unscheduled")?;
    std::fs::write(
        root.0.join("dags/adhoc.yaml"),
        "dag: adhoc\ntasks:\n  a: { type: noop }\n",
    )?;
    let mut engine = engine(&root.0, Mode::Scheduler)?;
    let ids: Vec<String> = (0..3)
        .map(|_| -> Result<String, Error> {
            let answer = trigger(&mut engine, "adhoc")?;
            Ok(
                sluice_runtime::scheduler::control::triggered_run_id(&answer)
                    .ok_or("no run named")?
                    .to_owned(),
            )
        })
        .collect::<Result<_, _>>()?;
    let mut distinct = ids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "three runs: {ids:?}");
    assert!(ids.iter().all(|id| !id.contains('.')), "{ids:?}");
    Ok(())
}
