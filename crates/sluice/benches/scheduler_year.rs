//! One year of 15-minute intervals (35,040 runs) of a 4-task chain of `noop` tasks through
//! `backfill`, with the store flushed durably (group commit), then a restart over that store.
//!
//! Run: `cargo bench -p sluice --bench scheduler_year` (optionally `-- DAYS MAX_ACTIVE_RUNS`).
//! Goals (issue 3): year ≤ 30 s; task-to-task latency p50 ≤ 1 ms, p99 ≤ 10 ms; throughput
//! ≥ 20,000 task instances/s; restart to scheduling again ≤ 2 s; peak RSS ≤ 200 MB.

use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use sluice_runtime::scheduler::{Engine, EngineConfig, Input, Mode};
use sluice_store::{Reprocess, Store};

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let numbers: Vec<i64> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let days = numbers.first().copied().unwrap_or(365);
    let max_active_runs = numbers.get(1).copied().unwrap_or(256) as usize;

    let root = std::env::temp_dir().join(format!("sluice-bench-year-{}", std::process::id()));
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("year.yaml"),
        "dag: year\nschedule: \"*/15 * * * *\"\nstart: 2025-01-01T00:00:00Z\npaused_on_creation: true\nmax_active_tasks: 1024\n\
         tasks:\n  extract: { type: noop }\n  transform: { type: noop, depends_on: [extract] }\n  \
         load: { type: noop, depends_on: [transform] }\n  check: { type: noop, depends_on: [load] }\n",
    )?;
    let state = root.join("state");
    let from = Utc
        .with_ymd_and_hms(2025, 1, 1, 0, 0, 0)
        .single()
        .ok_or("date")?;
    let to = from + TimeDelta::days(days);

    let mut config = EngineConfig::new(dags.clone(), Mode::Backfill { dag: "year".into() });
    config.measure_latency = true;
    let started = Instant::now();
    let mut engine = Engine::new(Store::open(&state)?, config)?;
    let record = engine.start_backfill("year", from, to, Reprocess::None, Some(max_active_runs))?;
    engine.run()?;
    let elapsed = started.elapsed();
    let stats = engine.stats().clone();
    let progress = engine.backfill_progress("year").unwrap_or_default();
    drop(engine);
    let peak = peak_rss_mib();

    let task_instances = stats.attempts_started;
    let mut latencies = stats.latencies.clone();
    latencies.sort();
    println!(
        "scheduler_year: {} runs x 4 noop tasks ({} task instances), backfill max_active_runs {max_active_runs}",
        record.total, task_instances
    );
    println!(
        "  end to end {:.2} s (goal <= 30 s)   succeeded {} failed {}",
        elapsed.as_secs_f64(),
        progress.succeeded,
        progress.failed
    );
    println!(
        "  throughput {:.0} task instances/s (goal >= 20000)   {} loop iterations, {} flushes ({:.1} transitions per flush)",
        task_instances as f64 / elapsed.as_secs_f64(),
        stats.iterations,
        stats.flushes,
        stats.transitions as f64 / stats.flushes.max(1) as f64
    );
    println!(
        "  time in flush (fsync) {:.2} s of {:.2} s",
        stats.flush_time.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "  task-to-task latency under saturation ({} samples): p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms (goal p50 <= 1 ms, p99 <= 10 ms)",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!("  peak RSS during the year backfill {peak:.1} MiB (goal <= 200 MB)");

    // Restart: open the store of the year, recover, and schedule a new run to its first attempt.
    let restart = Instant::now();
    let store = Store::open(&state)?;
    let mut engine = Engine::new(
        store,
        EngineConfig::new(dags, Mode::Backfill { dag: "year".into() }),
    )?;
    let opened = restart.elapsed();
    engine.start_backfill(
        "year",
        to,
        to + TimeDelta::hours(1),
        Reprocess::None,
        Some(4),
    )?;
    let sender = engine.sender();
    let mut first_attempt = None;
    engine.run_with(&mut |e| {
        if first_attempt.is_none() && e.stats().attempts_started > 0 {
            first_attempt = Some(restart.elapsed());
            let _ = sender.send(Input::Shutdown);
        }
    })?;
    println!(
        "  restart over {} task instances: store + DAGs + recovery {:.3} s, first new attempt after {:.3} s (goal <= 2 s)",
        task_instances,
        opened.as_secs_f64(),
        first_attempt.unwrap_or_default().as_secs_f64()
    );
    drop(engine);

    // Latency without saturation: the same chain, one run at a time, as a single DAG sees it
    // in production (a 15-minute interval's four tasks one after the other).
    let latency_state = root.join("latency-state");
    let mut config = EngineConfig::new(root.join("dags"), Mode::Backfill { dag: "year".into() });
    config.measure_latency = true;
    let mut engine = Engine::new(Store::open(&latency_state)?, config)?;
    engine.start_backfill(
        "year",
        from,
        from + TimeDelta::days(5),
        Reprocess::None,
        Some(1),
    )?;
    engine.run()?;
    let mut latencies = engine.stats().latencies.clone();
    latencies.sort();
    println!(
        "  task-to-task latency, one run at a time ({} samples): p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms (goal p50 <= 1 ms, p99 <= 10 ms)",
        latencies.len(),
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        latencies.last().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
