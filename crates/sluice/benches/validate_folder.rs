//! Validating a large DAG folder: 1,000 files of 20 tasks each (goal: ≤ 1 s in release).
//!
//! Run: `cargo bench -p sluice --bench validate_folder` (optionally `-- FILES TASKS RUNS`).
//! The files mix every task type, templates, dependencies and a Kafka gate, so the run
//! exercises YAML parsing, decoding, cycle checks, cron parsing and template analysis.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn dag_file(index: usize, tasks: usize) -> String {
    let mut text = format!(
        "dag: generated_{index:04}\n\
         description: Generated DAG {index} for the validation benchmark\n\
         owner: bench\n\
         tags: [bench, generated]\n\
         schedule: \"*/15 * * * *\"\n\
         timezone: Europe/Berlin\n\
         start: 2025-09-01T00:00:00Z\n\
         catchup: true\n\
         max_active_runs: 4\n\
         sla: {{ warn_after: 50m, deadline: 100m }}\n\
         gate:\n  kafka: {{ connection: events_kafka, topic: events, group: g{index}, watermark_lateness: 5m, max_lag: 100000, timeout: 45m }}\n\
         defaults:\n  retries: 3\n  retry_delay: 1m\n  retry_backoff: exponential\n  max_retry_delay: 15m\n  timeout: 20m\n\
         params:\n  table: events_{index}\n  dims: [country, device, event_type]\n\
         tasks:\n"
    );
    for t in 0..tasks {
        let deps = match t {
            0 => String::new(),
            1..=3 => "    depends_on: [t00]\n".to_owned(),
            _ => format!("    depends_on: [t{:02}, t{:02}]\n", t - 1, t - 3),
        };
        let body = match t % 5 {
            0 => "    type: noop\n".to_owned(),
            1 => "    type: command\n    command: [\"sh\", \"-c\", \"echo {{ ds }} {{ params.table }}\"]\n    env: { RUN: \"{{ run_id }}\" }\n".to_owned(),
            2 => "    type: spark\n    backend: emr\n    connection: emr\n    application: s3://jobs/aggregate.py\n    args: [\"--start\", \"{{ data_interval_start }}\", \"--end\", \"{{ data_interval_end }}\", \"--dims\", \"{{ params.dims | join(',') }}\"]\n    conf: { spark.app.name: \"agg-{{ ts_nodash }}\" }\n".to_owned(),
            3 => "    type: clickhouse\n    connection: warehouse\n    sql: |\n      ALTER TABLE {{ params.table }} DELETE WHERE window_start = '{{ data_interval_start | strftime('%Y-%m-%d %H:%M:%S') }}';\n      INSERT INTO {{ params.table }} SELECT * FROM staging WHERE ts >= '{{ data_interval_start }}' AND ts < '{{ data_interval_end }}';\n".to_owned(),
            _ => "    type: wasm\n    plugin: dq_checks\n    config: { table: \"{{ params.table }}\", checks: [{ check: row_count, min: 1 }] }\n    capabilities: { clickhouse: warehouse }\n".to_owned(),
        };
        text.push_str(&format!("  t{t:02}:\n{body}{deps}    retries: 2\n"));
    }
    text
}

fn write_folder(dir: &Path, files: usize, tasks: usize) -> std::io::Result<u64> {
    std::fs::create_dir_all(dir)?;
    let mut bytes = 0;
    for i in 0..files {
        let text = dag_file(i, tasks);
        bytes += text.len() as u64;
        std::fs::write(dir.join(format!("dag_{i:04}.yaml")), text)?;
    }
    Ok(bytes)
}

fn main() -> std::io::Result<()> {
    // `cargo bench` passes `--bench`; numbers after it choose the size.
    let numbers: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let files = numbers.first().copied().unwrap_or(1000);
    let tasks = numbers.get(1).copied().unwrap_or(20);
    let runs = numbers.get(2).copied().unwrap_or(10);

    let dir: PathBuf = std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id()));
    let bytes = write_folder(&dir, files, tasks)?;
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut loaded = 0;
    // One warm-up run fills the page cache, so every timed run reads from memory.
    for run in 0..=runs {
        let started = Instant::now();
        let set = sluice_model::spec::load_paths(std::slice::from_ref(&dir)).map_err(|(_, e)| e)?;
        let elapsed = started.elapsed();
        if !set.failures.is_empty() {
            let report = set.failures[0].render(false);
            let _ = std::fs::remove_dir_all(&dir);
            return Err(std::io::Error::other(format!(
                "generated DAG failed:\n{report}"
            )));
        }
        loaded = set.dags.len();
        if run > 0 {
            times.push(elapsed);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    times.sort();
    let median = times[times.len() / 2];
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "validate_folder: {loaded} DAG files x {tasks} tasks ({:.1} MiB), {runs} runs, {cores} threads",
        bytes as f64 / f64::from(1 << 20)
    );
    println!(
        "  min {:.1} ms  median {:.1} ms  max {:.1} ms  ({:.0} tasks/s at the median)",
        times[0].as_secs_f64() * 1e3,
        median.as_secs_f64() * 1e3,
        times[times.len() - 1].as_secs_f64() * 1e3,
        (loaded * tasks) as f64 / median.as_secs_f64()
    );
    println!(
        "  goal <= 1000 ms: {}",
        if median <= Duration::from_secs(1) {
            "met"
        } else {
            "MISSED"
        }
    );
    Ok(())
}
