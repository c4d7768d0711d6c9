//! Crash test: a backfill of 2,000 intervals of a 4-task DAG whose `command` tasks append a
//! line to a file, with the `sluice backfill` process SIGKILLed at random moments at least 50
//! times and started again with the same arguments each time.
//!
//! At the end: `sluice audit` reports no gap, every interval succeeded exactly once in the
//! ledger, no run is left active, and every task's side-effect file shows each (interval,
//! task) at least once — more than once only for attempts marked failed-by-crash.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sluice_store::{AttemptResult, Store};

const INTERVALS: i64 = 2000;
const KILLS: usize = 50;
const FROM: &str = "2025-01-01T00:00:00Z";

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small deterministic generator; the seed is printed so a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % bound
    }
}

fn to() -> String {
    let from = chrono::DateTime::parse_from_rfc3339(FROM).map(|t| t.with_timezone(&chrono::Utc));
    let end = from
        .map(|t| t + chrono::TimeDelta::minutes(15 * INTERVALS))
        .unwrap_or_default();
    end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn backfill(dags: &Path, state: &Path) -> std::io::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state.with_extension("stderr"))?;
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--dags"])
        .arg(dags)
        .arg("--state")
        .arg(state)
        .args([
            "backfill",
            "crash",
            "--from",
            FROM,
            "--to",
            &to(),
            "--max-active-runs",
            "24",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
}

#[test]
fn backfill_survives_repeated_sigkill_without_losing_or_duplicating_work()
-> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-crash-{}", std::process::id()));
    let _cleanup = Scratch(root.clone());
    let dags = root.join("dags");
    let state = root.join("state");
    let effects = root.join("effects");
    std::fs::create_dir_all(&dags)?;
    std::fs::create_dir_all(&effects)?;
    let append = format!(
        "echo \"$SLUICE_LOGICAL_DATE $SLUICE_TASK_ID $SLUICE_TRY_NUMBER\" >> {}/$SLUICE_TASK_ID.txt",
        effects.display()
    );
    // Every kill fails the attempts in flight (failed_by_crash, which uses a try). Under a
    // loaded machine the recovered attempts can be in flight at many kills in a row: the
    // retry budget is large so that the test is about losing or duplicating work, not about
    // running out of tries.
    std::fs::write(
        dags.join("crash.yaml"),
        format!(
            "dag: crash\nschedule: \"*/15 * * * *\"\nstart: {FROM}\npaused_on_creation: true\n\
             max_active_tasks: 48\ndefaults: {{ retries: 100, retry_delay: 0s }}\ntasks:\n\
             \x20 extract: {{ type: command, command: '{append}' }}\n\
             \x20 transform: {{ type: command, depends_on: [extract], command: '{append}' }}\n\
             \x20 load: {{ type: command, depends_on: [transform], command: '{append}' }}\n\
             \x20 check: {{ type: command, depends_on: [load], command: '{append}' }}\n"
        ),
    )?;

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    println!("crash test seed {seed}");
    let mut random = Lcg(seed);
    let started = Instant::now();
    let mut kills = 0;
    let mut finished_runs = 0;
    while kills < KILLS {
        let mut child = backfill(&dags, &state)?;
        // Between 20 ms and 400 ms: some kills land while the store opens and recovers,
        // others mid-iteration, between a flush and the start of the attempts it decided.
        std::thread::sleep(Duration::from_millis(20 + random.next(380)));
        match child.try_wait()? {
            Some(_) => {
                finished_runs += 1;
                let stderr =
                    std::fs::read_to_string(state.with_extension("stderr")).unwrap_or_default();
                assert!(
                    finished_runs < 3,
                    "the backfill finished before {KILLS} kills; make it longer\n{stderr}"
                );
            }
            None => {
                child.kill()?; // SIGKILL
                child.wait()?;
                kills += 1;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "crash loop too slow"
        );
    }
    let status = backfill(&dags, &state)?.wait()?;
    assert!(
        status.success(),
        "the final backfill did not succeed: {status}\n{}",
        std::fs::read_to_string(state.with_extension("stderr")).unwrap_or_default()
    );
    println!(
        "{kills} SIGKILLs in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let audit = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--dags")
        .arg(&dags)
        .arg("--state")
        .arg(&state)
        .args([
            "--output",
            "json",
            "audit",
            "crash",
            "--from",
            FROM,
            "--to",
            &to(),
        ])
        .output()?;
    assert!(
        audit.status.success(),
        "audit found gaps: {}",
        String::from_utf8_lossy(&audit.stdout)
    );
    let report: serde_json::Value = serde_json::from_slice(&audit.stdout)?;
    assert_eq!(report["intervals"], INTERVALS);
    assert_eq!(report["gaps"], 0);
    let entries = report["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len() as i64, INTERVALS);
    assert!(
        entries.iter().all(|e| e["successes"] == 1),
        "an interval succeeded more than once in the ledger"
    );

    // The store after every process is gone: no run stuck, and what each attempt did.
    let store = Store::open(&state)?;
    assert!(store.active_runs()?.is_empty(), "a run was left active");
    assert_eq!(
        store.check()?,
        Vec::<String>::new(),
        "the store is inconsistent"
    );
    let mut attempts: HashMap<(String, String, u32), AttemptResult> = HashMap::new();
    let mut crashed = 0;
    for run in store.runs_of("crash") {
        let run = run?;
        assert!(
            run.state
                .tasks
                .iter()
                .all(|t| t.state == sluice_core::TaskState::Success)
        );
        let date = sluice_model::spec::instant::format_instant(run.state.logical_date);
        for attempt in store.attempts_of_run("crash", run.state.logical_date)? {
            let result = attempt.result.ok_or("an attempt without a result")?;
            crashed += usize::from(result == AttemptResult::FailedByCrash);
            attempts.insert(
                (date.clone(), attempt.task.clone(), attempt.try_number),
                result,
            );
        }
    }
    println!("{crashed} attempt(s) failed by crash and were retried");

    let mut lines: BTreeMap<(String, String), Vec<u32>> = BTreeMap::new();
    for task in ["extract", "transform", "load", "check"] {
        let text = std::fs::read_to_string(effects.join(format!("{task}.txt")))?;
        for line in text.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "garbled line {line:?}");
            assert_eq!(parts[1], task);
            lines
                .entry((parts[0].to_owned(), task.to_owned()))
                .or_default()
                .push(parts[2].parse()?);
        }
    }
    assert_eq!(
        lines.len() as i64,
        INTERVALS * 4,
        "some (interval, task) never ran"
    );
    let mut duplicated = 0;
    for ((date, task), tries) in &lines {
        let successes = tries
            .iter()
            .filter(|t| {
                attempts.get(&(date.clone(), task.clone(), **t)) == Some(&AttemptResult::Success)
            })
            .count();
        assert_eq!(successes, 1, "{date} {task}: tries {tries:?}");
        if tries.len() > 1 {
            duplicated += 1;
            for t in tries {
                let result = attempts.get(&(date.clone(), task.clone(), *t));
                assert!(
                    matches!(
                        result,
                        Some(AttemptResult::Success | AttemptResult::FailedByCrash)
                    ),
                    "{date} {task} try {t} ran but is recorded as {result:?}"
                );
            }
        }
    }
    println!(
        "{duplicated} (interval, task) side effects ran more than once, each explained by a crash"
    );
    Ok(())
}
