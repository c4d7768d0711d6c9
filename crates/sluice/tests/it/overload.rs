//! Overload: ten thousand intervals due at once (a DAG whose catchup spans them) are worked
//! through with back-pressure — the scheduler creates runs as earlier ones finish, so the
//! runs it holds stay bounded by `max_active_runs` + [`QUEUED_AHEAD`], not by the length
//! of the catchup — and every interval gets its run.

use crate::in_process;

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Timelike, Utc};
use sluice_core::RunStatus;

const INTERVALS: i64 = 10_000;
const MAX_ACTIVE_RUNS: usize = 16;
/// `scheduler::scheduled::QUEUED_AHEAD`: queued runs allowed beyond `max_active_runs`.
const QUEUED_AHEAD: usize = 16;

#[test]
fn ten_thousand_due_intervals_are_run_with_a_bounded_number_of_runs_in_flight()
-> Result<(), Box<dyn std::error::Error>> {
    let now = Utc::now()
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or_default();
    let start = now - TimeDelta::minutes(INTERVALS);
    let dag = format!(
        "dag: overload\nschedule: \"* * * * *\"\nstart: {}\nend: {}\ncatchup: true\nmax_active_runs: {MAX_ACTIVE_RUNS}\ntasks:\n  extract: {{ type: noop }}\n  load: {{ type: noop, depends_on: [extract] }}\n",
        start.to_rfc3339(),
        now.to_rfc3339(),
    );
    let scheduler = in_process::start("overload", &[("overload.yaml", &dag)], |_| {});
    let began = Instant::now();
    loop {
        let succeeded = scheduler
            .store
            .ledger_between("overload", start, now)
            .map(|l| {
                l.iter()
                    .filter(|(_, e)| e.status == RunStatus::Success)
                    .count()
            })
            .unwrap_or(0);
        if succeeded == usize::try_from(INTERVALS).unwrap_or(usize::MAX) {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "{succeeded} of {INTERVALS} intervals after {:?}",
            began.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let elapsed = began.elapsed();
    // The engine's own count: a scan of the store's index of unfinished runs, taken while
    // the loop commits, can count a run that ended and the one created in its place.
    let most_active = scheduler.stop().ok_or("the engine stopped")?.most_runs_held;
    println!("{INTERVALS} intervals in {elapsed:.1?}; at most {most_active} runs held at once");
    assert!(
        most_active <= 2 * MAX_ACTIVE_RUNS + QUEUED_AHEAD,
        "{most_active} runs active at once"
    );
    assert!(
        most_active >= MAX_ACTIVE_RUNS,
        "the runs did not overlap: {most_active}"
    );
    Ok(())
}

/// A thousand DAG files: all loaded, each one's due intervals run, every interval in the
/// ledger; the folder is read again only when a file changes.
#[test]
fn a_thousand_dag_files_are_loaded_and_all_their_intervals_run() {
    const FILES: usize = 1_000;
    const HOURS: i64 = 3;
    let now = Utc::now()
        .with_minute(0)
        .and_then(|t| t.with_second(0))
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or_default();
    let start = now - TimeDelta::hours(HOURS);
    let files: Vec<(String, String)> = (0..FILES)
        .map(|i| {
            (
                format!("dag_{i:04}.yaml"),
                format!(
                    "dag: dag_{i:04}\nschedule: \"@hourly\"\nstart: {}\nend: {}\ncatchup: true\ntasks:\n  extract: {{ type: noop }}\n  load: {{ type: noop, depends_on: [extract] }}\n",
                    start.to_rfc3339(),
                    now.to_rfc3339()
                ),
            )
        })
        .collect();
    let borrowed: Vec<(&str, &str)> = files
        .iter()
        .map(|(name, text)| (name.as_str(), text.as_str()))
        .collect();
    let began = Instant::now();
    let scheduler = in_process::start("thousand", &borrowed, |_| {});
    let loaded = began.elapsed();
    let expected = FILES * usize::try_from(HOURS).unwrap_or(0);
    loop {
        let done: usize = scheduler
            .store
            .dag_ids()
            .unwrap_or_default()
            .iter()
            .map(|dag| {
                scheduler
                    .store
                    .ledger_between(dag, start, now)
                    .map(|l| {
                        l.iter()
                            .filter(|(_, e)| e.status == RunStatus::Success)
                            .count()
                    })
                    .unwrap_or(0)
            })
            .sum();
        if done == expected {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(600),
            "{done} of {expected} intervals after {:?}",
            began.elapsed()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        scheduler.store.dag_ids().map(|d| d.len()).unwrap_or(0),
        FILES
    );
    println!(
        "{FILES} DAG files: loaded (engine started) in {loaded:.1?}; {expected} intervals done in {:.1?}",
        began.elapsed()
    );
}
