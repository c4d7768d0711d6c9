//! Overload: ten thousand intervals due at once (a DAG whose catchup spans them) are worked
//! through with back-pressure — the scheduler creates runs as earlier ones finish, so the
//! runs it holds stay bounded by `max_active_runs` + [`QUEUED_AHEAD`], not by the length
//! of the catchup — and every interval gets its run.

#[path = "support/in_process.rs"]
mod in_process;

use std::time::{Duration, Instant};

use chrono::{TimeDelta, Timelike, Utc};
use sluice::core::RunStatus;

const INTERVALS: i64 = 10_000;
const MAX_ACTIVE_RUNS: usize = 16;
/// `scheduler::scheduled::QUEUED_AHEAD`: queued runs allowed beyond `max_active_runs`.
const QUEUED_AHEAD: usize = 16;

#[test]
fn ten_thousand_due_intervals_are_run_with_a_bounded_number_of_runs_in_flight() {
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
    let mut most_active = 0;
    loop {
        let active = scheduler.store.active_runs().map(|r| r.len()).unwrap_or(0);
        most_active = most_active.max(active);
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
    println!(
        "{INTERVALS} intervals in {:.1?}; at most {most_active} runs active at once",
        began.elapsed()
    );
    assert!(
        most_active <= 2 * MAX_ACTIVE_RUNS + QUEUED_AHEAD,
        "{most_active} runs active at once"
    );
    assert!(
        most_active >= MAX_ACTIVE_RUNS,
        "the runs did not overlap: {most_active}"
    );
}
