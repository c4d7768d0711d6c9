//! One year of 15-minute intervals (35,040 runs) of a 4-task chain of `noop` tasks through
//! `backfill`, with the store flushed durably (group commit), then a restart over that store.
//!
//! Run: `cargo bench -p sluice --bench scheduler_year` (optionally `-- DAYS MAX_ACTIVE_RUNS`).
//! With `-- ha` (or `ha-s3`) the year runs as an HA active instance: a lease on etcd
//! (SLUICE_TEST_ETCD_URL, `scripts/services/etcd start`), the fence checked before each
//! commit and dispatch, and the state shipped to a folder (or to the S3 test server,
//! SLUICE_TEST_S3_ENDPOINT): the cost of HA is the difference to a run without.
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
    let ha_mode = std::env::args().find(|a| a == "ha" || a == "ha-s3");

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
    let store = Store::open(&state)?;
    let ha = match &ha_mode {
        Some(mode) => Some(ha::start(&root, &store, mode == "ha-s3", &mut config)?),
        None => None,
    };
    let mut engine = Engine::new(store, config)?;
    let record = engine.start_backfill("year", from, to, Reprocess::None, Some(max_active_runs))?;
    engine.run()?;
    let elapsed = started.elapsed();
    if let Some(ha) = ha {
        ha.finish(elapsed);
    }
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

/// The HA side of the year: a real lease and real shipping.
mod ha {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use sluice_runtime::ha::ship::Parent;
    use sluice_runtime::ha::target::{DirObjects, Objects};
    use sluice_runtime::ha::{Leadership, ShipConfig, Shipper, Term};
    use sluice_runtime::scheduler::EngineConfig;
    use sluice_store::Store;

    type Error = Box<dyn std::error::Error>;

    pub struct Ha {
        term: Term,
        shipper: Shipper,
        target: String,
        store: Store,
        scratch: std::path::PathBuf,
    }

    pub fn start(
        root: &std::path::Path,
        store: &Store,
        s3: bool,
        config: &mut EngineConfig,
    ) -> Result<Ha, Error> {
        let etcd_url = std::env::var("SLUICE_TEST_ETCD_URL")
            .map_err(|_| "SLUICE_TEST_ETCD_URL: start etcd with `scripts/services/etcd start`")?;
        let etcd = sluice_runtime::ha::etcd::Etcd::new(vec![etcd_url], Duration::from_secs(2))?;
        let deployment = format!("bench-{}", std::process::id());
        let elector = sluice_runtime::ha::Elector::new(
            etcd,
            &deployment,
            "bench".into(),
            None,
            Duration::from_secs(10),
        );
        let term = elector.try_acquire()?.ok_or("the bench's lease is held")?;
        let (objects, target): (Arc<dyn Objects>, String) = if s3 {
            let endpoint = std::env::var("SLUICE_TEST_S3_ENDPOINT").map_err(
                |_| "SLUICE_TEST_S3_ENDPOINT: start it with `scripts/services/s3 start`",
            )?;
            let bucket = format!("bench-{}", std::process::id());
            let (status, body) = sluice_tests::http(&endpoint, "PUT", &format!("/{bucket}"), "")?;
            if status != 200 {
                return Err(format!("creating the bucket: {status} {body}").into());
            }
            let location = sluice_runtime::ha::s3::S3Location {
                region: Some("us-east-1".into()),
                endpoint: Some(endpoint),
            };
            (
                Arc::new(sluice_runtime::ha::s3::S3Objects::new(
                    bucket.clone(),
                    deployment,
                    &location,
                )?),
                format!("s3://{bucket} (moto)"),
            )
        } else {
            let folder = root.join("ship");
            (
                Arc::new(DirObjects::new(folder.clone())),
                folder.display().to_string(),
            )
        };
        let shipper = Shipper::start(
            store.clone(),
            objects,
            term.token(),
            Parent {
                from: None,
                instance: "bench".into(),
                at: chrono::Utc::now(),
            },
            ShipConfig {
                every: Duration::from_secs(1),
                snapshot_every: Duration::from_secs(3600),
                keep_snapshots: 2,
                scratch: root.join("snapshot.partial"),
            },
            term.fence(),
        )?;
        config.leadership = Some(Leadership {
            fence: term.fence(),
            cuts: Some(shipper.handle()),
            shipping: Some(shipper.status_handle()),
            takeover: Duration::ZERO,
        });
        Ok(Ha {
            term,
            shipper,
            target,
            store: store.clone(),
            scratch: root.join("snapshot.partial"),
        })
    }

    impl Ha {
        pub fn finish(self, elapsed: Duration) {
            let lag = self.shipper.status();
            let finishing = Instant::now();
            let status = self.shipper.finish();
            println!(
                "  HA: shipped to {}: {} segment(s), {:.1} MiB, up to cut {}; when the loop ended {} cut(s) were not shipped yet, shipped {:.3} s later",
                self.target,
                status.segments,
                status.bytes as f64 / (1 << 20) as f64,
                status.cut_shipped,
                lag.cut_closed.saturating_sub(lag.cut_shipped),
                finishing.elapsed().as_secs_f64()
            );
            // What each periodic snapshot costs once a year of history is in the store.
            let snapshot_at = Instant::now();
            let file = self.scratch.with_extension("year");
            match std::fs::File::create(&file)
                .map_err(|e| e.to_string())
                .and_then(|f| {
                    self.store
                        .snapshot_into(std::io::BufWriter::new(f))
                        .map_err(|e| e.to_string())
                }) {
                Ok((_, records)) => println!(
                    "  HA: a snapshot of the year's state: {records} records, {:.1} MiB, {:.3} s (the loop ran {:.2} s)",
                    std::fs::metadata(&file).map_or(0, |m| m.len()) as f64 / (1 << 20) as f64,
                    snapshot_at.elapsed().as_secs_f64(),
                    elapsed.as_secs_f64()
                ),
                Err(e) => println!("  HA: the year's snapshot failed: {e}"),
            }
            let _ = std::fs::remove_file(&file);
            self.term.resign();
        }
    }
}
