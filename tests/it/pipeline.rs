//! The platform's DAGs end to end on real components, unchanged but for the environment:
//! generated events → Kafka (a broker of its own) and the raw zone → the stream-layer
//! stand-in (1-minute aggregates and raw events in a ClickHouse server of its own) → Sluice
//! runs `dags/`: the Kafka gate, the Spark cube on local Spark, the idempotent ClickHouse
//! load, `dq_checks`, the hourly reconciliation of both layers, `historical_backfill`.
//!
//! Time is compressed, not faked: two hours of historical event time are generated in
//! seconds and backfills drive the eight 15-minute intervals through the real scheduler.
//!
//! Act 1, zero data loss under faults: one Spark driver is killed mid-job and ClickHouse
//! goes down for a while; retries recover both, and every interval's events are accounted
//! for in both layers, every validation passes, the audit shows no gap. The hourly
//! reconciliation reads the hour's four windows (`consumes`): the backfill of the windows
//! runs it too, each hour starting in the commit that loads its fourth window.
//! Act 2, bad data is caught: one interval's raw data is damaged; `historical_backfill`
//! reprocesses its hour (bounded concurrency) and fails validation for exactly that interval, the reconciliation
//! names exactly that window; once repaired, reprocessing makes both pass.
//! Act 3, either path without the other: the stream layer is stopped for the third hour;
//! the batch layer still processes and validates every interval of it (its gate waits for
//! the raw-zone sink, its checks compare with the ingest path's counts), the
//! reconciliation names the stream layer's gap as the stream layer's and reprocesses
//! nothing; the stream layer, restarted, catches up and the hour reconciles.
//! Act 4, late data repaired by default: events of an interval arrive while its run is
//! aggregating it; the gate counts them from the sink's reports, and once the run has
//! succeeded it runs again by itself and the batch layer holds them; the hour it belongs
//! to is reconciled again by itself, and nothing is left stale.
//! Act 5, a mismatch repaired by default, under `sluice scheduler`: a lossy load leaves
//! one window of the batch layer short of one country's cells; the hour's reconciliation
//! finds the batch layer lower than the stream layer and its `reprocess_mismatches` task
//! starts `historical_backfill` of the hour, which the scheduler runs: the window is whole
//! again, and the hour's reconciliation runs again by itself and passes.
//!
//! Needs what scripts/test provides: the ClickHouse and broker builds (started here on
//! ports of this test's own), local Spark (SPARK_HOME).

mod corruption;
mod faults;
mod figures;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::{Outcome, sluice};
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use sluice_core::RunStatus;
use sluice_demo::manifest::Manifest;
use sluice_demo::services::{
    OwnBroker, OwnClickHouse, clickhouse_text as clickhouse, create_topic,
};
use sluice_store::Store;
use sluice_tests::repo_root;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The eight intervals processed: 10:00–12:00.
const FROM: &str = "2025-09-01T10:00:00Z";
const TO: &str = "2025-09-01T12:00:00Z";
/// Event time generated: past TO by more than the gate's 5 minutes of lateness.
const EVENTS_TO: &str = "2025-09-01T12:10:00Z";
/// The reconciliation runs of the hours 10:00–11:00 and 11:00–12:00.
const RECONCILE_FROM: &str = "2025-09-01T10:00:00Z";
/// Act 2 reprocesses the first hour.
const HOUR_END: &str = "2025-09-01T11:00:00Z";
/// Act 3: the third hour, without the stream layer; its events go on to 13:10.
const THIRD_HOUR: &str = "2025-09-01T12:00:00Z";
const THIRD_HOUR_END: &str = "2025-09-01T13:00:00Z";
const THIRD_EVENTS_TO: &str = "2025-09-01T13:10:00Z";
/// The first hour's reconciliation run again, after the damage and after the repair.
const RECONCILE_FIRST_HOUR_AGAIN: [&str; 8] = [
    "backfill",
    "cross_layer_validation",
    "--from",
    RECONCILE_FROM,
    "--to",
    HOUR_END,
    "--reprocess",
    "completed",
];

/// Everything a run of the platform needs, on this test's own services.
struct Platform {
    root: PathBuf,
    bootstrap: String,
    state: PathBuf,
    plugins: PathBuf,
    raw_zone: PathBuf,
    output_zone: PathBuf,
    warehouse: clickhouse::Client,
    server: Arc<OwnClickHouse>,
    _broker: OwnBroker,
    manifest: Manifest,
}

impl Platform {
    /// Services, schema, two hours and ten minutes of events in Kafka, the raw zone and
    /// the stream layer, dq_checks built, the environment a laptop gives the DAGs.
    fn start() -> Result<Platform, Error> {
        let id = std::process::id();
        let root = std::env::temp_dir().join(format!("sluice-pipeline-{id}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;

        // Servers of this test's own: act 1 stops ClickHouse, and the DAGs watch the topic
        // `events`, which must start empty.
        let server = Arc::new(OwnClickHouse::start(18400 + 3 * u16::try_from(id % 50)?)?);
        let database = "pipeline";
        let warehouse = clickhouse::Client::default()
            .with_url(&server.url)
            .with_validation(false);
        clickhouse(&warehouse, &format!("DROP DATABASE IF EXISTS {database}"))?;
        clickhouse(&warehouse, &format!("CREATE DATABASE {database}"))?;
        let warehouse = warehouse.with_database(database);
        let ddl = std::fs::read_to_string(repo_root().join("dags/sql/warehouse.sql"))?;
        for statement in sluice_runtime::clickhouse::statements::split(&ddl) {
            clickhouse(&warehouse, &statement)?;
        }
        let broker = OwnBroker::start(19900 + u16::try_from(id % 90)?)?;
        create_topic(&broker.bootstrap, "events", 4)?;
        create_topic(&broker.bootstrap, "events.arrivals", 1)?;

        let raw_zone = root.join("raw");
        let manifest = sluice_demo::eventgen::run(&sluice_demo::eventgen::Args::parse_from([
            "sluice-eventgen",
            "--bootstrap",
            &broker.bootstrap,
            "--partitions",
            "4",
            "--from",
            FROM,
            "--to",
            EVENTS_TO,
            "--rate",
            "3",
            "--seed",
            "5",
        ]))?;
        // The raw zone is written from the topic by the sink whose group the gate waits for.
        let written = sluice_demo::raw_sink::until_idle(&broker.bootstrap, &raw_zone, 10)?;
        assert_eq!(written, manifest.total());
        let streamed = run_stream_layer(&broker.bootstrap, &server.url, database)?;
        assert_eq!(streamed, manifest.total());

        let plugins = root.join("plugins");
        let built = sluice(&[
            "plugins",
            "build",
            &repo_root().join("plugins/dq_checks").display().to_string(),
            "--out",
            &plugins.display().to_string(),
        ]);
        assert_eq!(built.code, 0, "{}", built.stderr);

        // Spark writes into ClickHouse's user_files folder, which file() reads.
        let in_warehouse = "pipeline/agg_15m";
        let output_zone = server.user_files.join(in_warehouse);
        let settings = [
            ("SLUICE_SPARK_BACKEND", "local".to_owned()),
            ("SLUICE_CONN_WAREHOUSE", serde_json::json!({"type": "clickhouse", "url": server.url, "database": database, "validation": false, "plugins": true}).to_string()),
            ("SLUICE_CONN_EVENTS_KAFKA", serde_json::json!({"type": "kafka", "bootstrap_servers": broker.bootstrap}).to_string()),
            ("SLUICE_VAR_RAW_ZONE", raw_zone.display().to_string()),
            ("SLUICE_VAR_OUTPUT_ZONE", output_zone.display().to_string()),
            ("SLUICE_VAR_OUTPUT_FORMAT", "json".to_owned()),
            ("SLUICE_VAR_WAREHOUSE_READS", "file".to_owned()),
            ("SLUICE_VAR_OUTPUT_ZONE_IN_WAREHOUSE", in_warehouse.to_owned()),
        ];
        for (name, value) in &settings {
            // SAFETY: this test binary runs this one test; nothing else reads the
            // environment concurrently.
            unsafe { std::env::set_var(name, value) };
        }
        Ok(Platform {
            bootstrap: broker.bootstrap.clone(),
            state: root.join("state"),
            plugins,
            raw_zone,
            output_zone,
            root,
            warehouse,
            server,
            _broker: broker,
            manifest,
        })
    }

    /// The stream layer, from its group's committed offsets until idle: events aggregated.
    fn stream_layer(&self) -> Result<u64, Error> {
        run_stream_layer(&self.bootstrap, &self.server.url, "pipeline")
    }

    /// `sluice` on the platform's DAG folder, this test's state and plugins.
    fn sluice(&self, args: &[&str]) -> Outcome {
        let argv = self.argv(args);
        sluice(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// The whole command line of [`Platform::sluice`], owned (for a command in a thread).
    fn argv(&self, args: &[&str]) -> Vec<String> {
        let mut argv = vec![
            "--dags".to_owned(),
            repo_root().join("dags").display().to_string(),
            "--state".to_owned(),
            self.state.display().to_string(),
            "--plugins".to_owned(),
            self.plugins.display().to_string(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        argv
    }

    /// A `sluice` command that must succeed; its failed attempts' logs otherwise.
    fn must(&self, args: &[&str]) -> Result<Outcome, Error> {
        self.succeeded(self.sluice(args), args)
    }

    /// The outcome if it succeeded; an error with every failed attempt's log otherwise.
    fn succeeded(&self, outcome: Outcome, args: &[&str]) -> Result<Outcome, Error> {
        if outcome.code == 0 {
            return Ok(outcome);
        }
        let mut failures = String::new();
        // The store is the scheduler's while one runs: then the command's own words only.
        let store = match Store::open(&self.state) {
            Ok(store) => store,
            Err(e) => {
                return Err(format!(
                    "sluice {args:?} exited {}\n{}\n{}\n(attempt logs not read: {e})",
                    outcome.code, outcome.stdout, outcome.stderr
                )
                .into());
            }
        };
        for dag in store.dag_ids()? {
            for run in store.runs_of(&dag) {
                let run = run?;
                for a in store.attempts_of_run(&dag, run.state.logical_date)? {
                    if let Some(error) = a.error {
                        let log = std::fs::read_to_string(&a.log).unwrap_or_default();
                        failures += &format!(
                            "{dag} {} {} try {}: {error}\n{log}\n",
                            run.state.run_id, a.task, a.try_number
                        );
                    }
                }
            }
        }
        Err(format!(
            "sluice {args:?} exited {}\n{}\n{}\n{failures}",
            outcome.code, outcome.stdout, outcome.stderr
        )
        .into())
    }

    /// The batch layer's events per window (finest grain of the cube).
    fn batch_counts(&self) -> Result<std::collections::BTreeMap<DateTime<Utc>, u64>, Error> {
        figures::per_window(
            &self.warehouse,
            "SELECT window_start, sum(event_count) FROM agg_15m WHERE rollup_level = 0 GROUP BY window_start ORDER BY window_start",
        )
    }

    fn intervals(&self) -> Vec<DateTime<Utc>> {
        self.manifest
            .intervals
            .keys()
            .copied()
            .filter(|start| *start < at(TO))
            .collect()
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.output_zone);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The stream-layer stand-in (group `realtime-aggregator`) until idle.
fn run_stream_layer(bootstrap: &str, clickhouse_url: &str, database: &str) -> Result<u64, Error> {
    sluice_demo::stream_layer::run(&sluice_demo::stream_layer::Args::parse_from([
        "sluice-stream-layer",
        "--bootstrap",
        bootstrap,
        "--group",
        "realtime-aggregator",
        "--clickhouse",
        clickhouse_url,
        "--table",
        &format!("{database}.stream_agg_1m"),
        "--raw-table",
        &format!("{database}.raw_events"),
        "--idle-exit-seconds",
        "3",
    ]))
}

fn at(instant: &str) -> DateTime<Utc> {
    instant.parse().unwrap_or_default()
}

fn compact(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M").to_string()
}

#[test]
fn every_event_is_accounted_for_through_faults_and_bad_data_is_caught() -> Result<(), Error> {
    let platform = Platform::start()?;
    zero_data_loss_under_faults(&platform)?;
    damaged_interval_fails_validation_until_repaired(&platform)?;
    the_batch_layer_goes_on_without_the_stream_layer(&platform)?;
    late_data_is_reprocessed_without_an_operator(&platform)?;
    a_mismatch_is_repaired_without_an_operator(&platform)
}

/// Act 1.
fn zero_data_loss_under_faults(platform: &Platform) -> Result<(), Error> {
    let killed_interval = at("2025-09-01T10:45:00Z");
    let outage_interval = at("2025-09-01T11:15:00Z");
    let done = Arc::new(AtomicBool::new(false));
    let killer = faults::kill_spark_once(
        format!("agg15m-{}00", compact(killed_interval)),
        Arc::clone(&done),
    );
    let outage = faults::warehouse_outage(
        Arc::clone(&platform.server),
        platform
            .output_zone
            .join(format!("window_start={}", compact(outage_interval)))
            .join("data.json"),
        Duration::from_secs(20),
        Arc::clone(&done),
    );
    let backfill = [
        "backfill",
        "events_aggregation_15m",
        "--from",
        FROM,
        "--to",
        TO,
    ];
    let processed = platform.sluice(&backfill);
    done.store(true, Ordering::Relaxed);
    let killed = killer.join().map_err(|_| "the Spark killer panicked")?;
    let down = outage.join().map_err(|_| "the outage thread panicked")?;
    assert!(
        killed,
        "no Spark driver of {killed_interval} was seen to kill"
    );
    let down = down.ok_or("the outage never happened")?;
    platform.succeeded(processed, &backfill)?;

    // The reconciliation ran with the backfill (one command for the chain): each hour in
    // the very commit its fourth window was loaded in, with no sensor and no polling.
    let store = Store::open(&platform.state)?;
    for hour in [at(RECONCILE_FROM), at(HOUR_END)] {
        let (fourth, started, delay) = started_with_its_fourth_window(&store, hour)?;
        println!(
            "reconciliation of {hour}: started in commit {started}, its fourth window loaded in commit {fourth} ({delay} ms between them)"
        );
        assert_eq!(
            started, fourth,
            "the hour {hour} waited past its fourth window"
        );
        let run = store
            .run("cross_layer_validation", hour)?
            .ok_or("no reconciliation run")?;
        assert_eq!(run.state.status, RunStatus::Success, "{hour}");
        assert_eq!(
            run.inputs.map(|i| i.status),
            Some(sluice_store::InputsStatus::Ready),
            "{hour}"
        );
    }
    drop(store);
    let audit = platform.must(&[
        "audit",
        "events_aggregation_15m",
        "--from",
        FROM,
        "--to",
        TO,
    ])?;

    let stream = figures::per_window(
        &platform.warehouse,
        "SELECT toStartOfFifteenMinutes(minute) AS w, sum(event_count) FROM stream_agg_1m GROUP BY w ORDER BY w",
    )?;
    let batch = platform.batch_counts()?;
    let store = Store::open(&platform.state)?;
    let mut durations = figures::Durations::default();
    let mut warehouse_failures = 0;
    println!(
        "interval              produced  stream   batch  dq      aggregate  load       validate"
    );
    for start in platform.intervals() {
        let produced = platform.manifest.intervals[&start].events;
        let attempts = figures::attempts(&store, "events_aggregation_15m", start)?;
        durations.add(&attempts);
        warehouse_failures += attempts
            .iter()
            .filter(|a| a.task != "aggregate" && a.error.is_some())
            .count();
        let report = store
            .output("events_aggregation_15m", start, "validate")?
            .ok_or("no validation report")?;
        println!(
            "{}  {produced:>8}  {:>6}  {:>6}  {:<6}  {:<9}  {:<9}  {}",
            start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            stream.get(&start).copied().unwrap_or(0),
            batch.get(&start).copied().unwrap_or(0),
            if report["passed"] == true {
                "passed"
            } else {
                "FAILED"
            },
            figures::tries(&attempts, "aggregate"),
            figures::tries(&attempts, "load"),
            figures::tries(&attempts, "validate"),
        );
        assert_eq!(
            batch.get(&start),
            Some(&produced),
            "batch layer, interval {start}"
        );
        assert_eq!(
            stream.get(&start),
            Some(&produced),
            "stream layer, interval {start}"
        );
        assert_eq!(report["passed"], true, "{report}");
    }
    for hour in [at(RECONCILE_FROM), at(HOUR_END)] {
        let comparison = store
            .output("cross_layer_validation", hour, "compare")?
            .ok_or("no reconciliation report")?;
        assert_eq!(comparison["passed"], true, "{comparison}");
    }
    println!("reconciliation of both layers: 10:00–11:00 and 11:00–12:00 passed");
    println!("{}", audit.stdout.trim_end());

    // Both faults happened and retries recovered them.
    let killed_run = figures::attempts(&store, "events_aggregation_15m", killed_interval)?;
    let spark = killed_run
        .iter()
        .filter(|a| a.task == "aggregate")
        .collect::<Vec<_>>();
    assert!(
        spark.len() >= 2
            && spark[0]
                .error
                .as_deref()
                .is_some_and(|e| e.contains("signal")),
        "the killed driver's attempt: {spark:?}"
    );
    assert!(
        warehouse_failures >= 1,
        "no ClickHouse task failed during the {down:.0?} outage"
    );
    println!(
        "faults: Spark driver of {killed_interval} killed ({}), ClickHouse down {down:.1?} ({warehouse_failures} failed ClickHouse attempts); all recovered by retries",
        spark[0].error.as_deref().unwrap_or_default()
    );
    println!("task durations (successful attempts):");
    for line in durations.summary() {
        println!("  {line}");
    }
    Ok(())
}

/// Act 2.
fn damaged_interval_fails_validation_until_repaired(platform: &Platform) -> Result<(), Error> {
    let damaged = at("2025-09-01T10:15:00Z");
    let damage = corruption::damage_interval(
        &platform.raw_zone,
        damaged,
        damaged + TimeDelta::minutes(15),
    )?;
    assert!(damage.lost_events > 0);

    // The damaged hour again, two intervals at a time: exactly the damaged one fails.
    let reprocessed = platform.sluice(&[
        "backfill",
        "historical_backfill",
        "--from",
        FROM,
        "--to",
        HOUR_END,
        "--max-active-runs",
        "2",
    ]);
    assert_ne!(reprocessed.code, 0, "{}", reprocessed.stdout);
    let store = Store::open(&platform.state)?;
    for start in platform
        .intervals()
        .into_iter()
        .filter(|s| *s < at(HOUR_END))
    {
        let run = store
            .run("historical_backfill", start)?
            .ok_or("no backfill run")?;
        let expected = if start == damaged {
            RunStatus::Failed
        } else {
            RunStatus::Success
        };
        assert_eq!(run.state.status, expected, "historical_backfill {start}");
    }
    let validation = figures::attempts(&store, "historical_backfill", damaged)?
        .into_iter()
        .find(|a| a.task == "validate")
        .ok_or("the damaged interval was not validated")?;
    let summary = validation.error.clone().unwrap_or_default();
    println!("validation of the damaged interval {damaged}: {summary}");
    let produced = platform.manifest.intervals[&damaged].events;
    // The readable report: which check, and both figures: the lines Spark could read
    // against the events the sink's manifests say it wrote (no count over raw events).
    let expected = format!(
        "raw_zone_holds_every_ingested_event (events {} vs {produced})",
        produced - damage.lost_events
    );
    assert!(summary.contains(&expected), "{summary}");
    assert_eq!(
        platform.batch_counts()?.get(&damaged),
        Some(&(produced - damage.lost_events)),
        "the batch layer misses exactly the unreadable events"
    );
    drop(store);

    // The reconciliation of that hour names exactly the damaged window.
    let reconciled = platform.sluice(&RECONCILE_FIRST_HOUR_AGAIN);
    assert_ne!(reconciled.code, 0, "{}", reconciled.stdout);
    let store = Store::open(&platform.state)?;
    let compare = figures::attempts(&store, "cross_layer_validation", at(RECONCILE_FROM))?
        .into_iter()
        .rfind(|a| a.task == "compare")
        .ok_or("no comparison")?;
    let report = std::fs::read_to_string(&compare.log)?;
    let summary = compare.error.clone().unwrap_or_default();
    println!("reconciliation after the damage: {summary}");
    // The one-line summary names the damaged window and no other; so does the full report.
    assert!(
        summary.contains("by window_start: 2025-09-01 10:15:00 (") && !summary.contains("), 2025-"),
        "{summary}"
    );
    for clean in ["10:00:00", "10:30:00", "10:45:00"] {
        assert!(
            !report.contains(&format!("2025-09-01 {clean}")),
            "{clean} named: {report}"
        );
    }
    drop(store);

    // Repaired (the files put back, as a re-export from Kafka would), reprocessed: both pass.
    damage.repair()?;
    platform.must(&[
        "backfill",
        "historical_backfill",
        "--from",
        "2025-09-01T10:15:00Z",
        "--to",
        "2025-09-01T10:30:00Z",
        "--reprocess",
        "completed",
    ])?;
    platform.must(&RECONCILE_FIRST_HOUR_AGAIN)?;
    let batch = platform.batch_counts()?;
    for start in platform.intervals() {
        assert_eq!(
            batch.get(&start),
            Some(&platform.manifest.intervals[&start].events),
            "interval {start}"
        );
    }
    let audit = platform.must(&[
        "audit",
        "historical_backfill",
        "--from",
        FROM,
        "--to",
        HOUR_END,
    ])?;
    println!("after the repair:\n{}", audit.stdout.trim_end());
    Ok(())
}

/// Act 3.
fn the_batch_layer_goes_on_without_the_stream_layer(platform: &Platform) -> Result<(), Error> {
    // The third hour's events reach Kafka and the raw zone; the stream layer is down.
    let third = sluice_demo::eventgen::run(&sluice_demo::eventgen::Args::parse_from([
        "sluice-eventgen",
        "--bootstrap",
        &platform.bootstrap,
        "--partitions",
        "4",
        "--from",
        EVENTS_TO,
        "--to",
        THIRD_EVENTS_TO,
        "--rate",
        "3",
        "--seed",
        "6",
    ]))?;
    let written = sluice_demo::raw_sink::until_idle(&platform.bootstrap, &platform.raw_zone, 10)?;
    assert_eq!(written, third.total());
    let windows: Vec<DateTime<Utc>> = (0..4)
        .map(|i| at(THIRD_HOUR) + TimeDelta::minutes(15 * i))
        .collect();
    let produced = |start: &DateTime<Utc>| {
        [&platform.manifest, &third]
            .iter()
            .filter_map(|m| m.intervals.get(start))
            .map(|c| c.events)
            .sum::<u64>()
    };

    // The batch layer: every interval of the hour, on the sink's group alone.
    platform.must(&[
        "backfill",
        "events_aggregation_15m",
        "--from",
        THIRD_HOUR,
        "--to",
        THIRD_HOUR_END,
    ])?;
    let batch = platform.batch_counts()?;
    let store = Store::open(&platform.state)?;
    for start in &windows {
        assert_eq!(
            batch.get(start),
            Some(&produced(start)),
            "batch layer, {start}"
        );
        let report = store
            .output("events_aggregation_15m", *start, "validate")?
            .ok_or("no validation report")?;
        assert_eq!(report["passed"], true, "{report}");
        // The gate showed the stream layer's group behind, and did not wait for it.
        let run = store
            .run("events_aggregation_15m", *start)?
            .ok_or("no run")?;
        let shown = serde_json::to_string(&run.gate)?;
        assert!(shown.contains("realtime-aggregator"), "{shown}");
    }
    drop(store);
    let audit = platform.must(&[
        "audit",
        "events_aggregation_15m",
        "--from",
        THIRD_HOUR,
        "--to",
        THIRD_HOUR_END,
    ])?;
    println!(
        "stream layer down, batch layer on its own:\n{}",
        audit.stdout.trim_end()
    );

    // The reconciliation names the stream layer's gap, window by window, as the stream
    // layer's: the batch layer holds everything it saw, so nothing is reprocessed.
    let reconcile = [
        "backfill",
        "cross_layer_validation",
        "--from",
        THIRD_HOUR,
        "--to",
        THIRD_HOUR_END,
    ];
    // It ran with the batch layer's backfill (the chain), once the hour's windows were in.
    let store = Store::open(&platform.state)?;
    let hour = at(THIRD_HOUR);
    let chained = store
        .run("cross_layer_validation", hour)?
        .ok_or("the hour was not reconciled with the backfill")?;
    assert_eq!(
        chained.state.status,
        RunStatus::Failed,
        "the reconciliation without the stream layer"
    );
    let attempts = figures::attempts(&store, "cross_layer_validation", hour)?;
    let compare = attempts
        .iter()
        .rfind(|a| a.task == "compare")
        .ok_or("no comparison")?;
    let summary = compare.error.clone().unwrap_or_default();
    println!("reconciliation without the stream layer: {summary}");
    for window in ["12:15:00", "12:30:00", "12:45:00"] {
        assert!(
            summary.contains(&format!("2025-09-01 {window} (")),
            "window {window} not named: {summary}"
        );
    }
    assert!(
        summary.contains(" only in batch") && summary.contains("0 only in stream"),
        "{summary}"
    );
    let held = store
        .output("cross_layer_validation", hour, "batch_holds_the_stream")?
        .ok_or("no batch_holds_the_stream report")?;
    assert_eq!(
        held["passed"], true,
        "the batch layer holds what the stream saw: {held}"
    );
    let reprocessing = store
        .output("cross_layer_validation", hour, "reprocess_mismatches")?
        .ok_or("no reprocess_mismatches output")?;
    assert_eq!(
        reprocessing["started"], false,
        "nothing reprocessed: {reprocessing}"
    );
    drop(store);

    // The stream layer back: it catches up from its committed offsets, and the hour
    // reconciles.
    let streamed = platform.stream_layer()?;
    assert_eq!(streamed, third.total());
    // The whole run again (its stream rollup too), not only the failed comparison.
    let mut again = reconcile.to_vec();
    again.extend(["--reprocess", "completed"]);
    platform.must(&again)?;
    println!("after the stream layer caught up: the hour 12:00–13:00 reconciles");
    Ok(())
}

/// Act 4.
fn late_data_is_reprocessed_without_an_operator(platform: &Platform) -> Result<(), Error> {
    let interval = at("2025-09-01T12:15:00Z");
    let before = platform
        .batch_counts()?
        .get(&interval)
        .copied()
        .unwrap_or(0);
    let bootstrap = platform.bootstrap.clone();
    // The interval again, as the scheduler would run it: its gate opens, Spark starts ...
    let args = [
        "backfill",
        "events_aggregation_15m",
        "--from",
        "2025-09-01T12:15:00Z",
        "--to",
        "2025-09-01T12:30:00Z",
        "--reprocess",
        "completed",
    ];
    let argv = platform.argv(&args);
    let backfill =
        std::thread::spawn(move || sluice(&argv.iter().map(String::as_str).collect::<Vec<_>>()));
    let started = faults::spark_started("agg15m-20250901T121500", Duration::from_secs(120));
    assert!(started, "the interval's Spark job never started");
    // ... and meanwhile late events of that interval reach Kafka and the raw zone.
    let late = sluice_demo::eventgen::run(&sluice_demo::eventgen::Args::parse_from([
        "sluice-eventgen",
        "--bootstrap",
        &bootstrap,
        "--partitions",
        "4",
        "--from",
        "2025-09-01T12:16:00Z",
        "--to",
        "2025-09-01T12:20:00Z",
        "--rate",
        "1",
        "--seed",
        "8",
    ]))?;
    let written = sluice_demo::raw_sink::until_idle(&bootstrap, &platform.raw_zone, 10)?;
    assert_eq!(written, late.total());
    // The stream layer sees them too (the hour is reconciled again once the window is).
    let streamed = platform.stream_layer()?;
    assert_eq!(streamed, late.total());
    let outcome = backfill
        .join()
        .map_err(|_| "the backfill thread panicked")?;
    platform.succeeded(outcome, &args)?;

    let after = platform
        .batch_counts()?
        .get(&interval)
        .copied()
        .unwrap_or(0);
    println!(
        "late data: {} event(s) of {interval} arrived while it was aggregated; the batch layer held {before}, now {after}",
        late.total()
    );
    assert_eq!(
        after,
        before + late.total(),
        "the late events are in the batch layer"
    );
    let store = Store::open(&platform.state)?;
    let run = store
        .run("events_aggregation_15m", interval)?
        .ok_or("no run")?;
    let gate = run.gate.ok_or("no gate record")?;
    assert_eq!(gate.late_events, late.total(), "every late event counted");
    assert_eq!(gate.late_reprocessed, 1, "reprocessed once, by itself");
    assert_eq!(run.state.status, RunStatus::Success);
    let validation = store
        .output("events_aggregation_15m", interval, "validate")?
        .ok_or("no validation report")?;
    assert_eq!(validation["passed"], true, "{validation}");
    // Its hour was reconciled again by itself, after the late data was in, and passed.
    let hour = store
        .run("cross_layer_validation", at(THIRD_HOUR))?
        .ok_or("no reconciliation of the hour")?;
    let reruns = hour.inputs.as_ref().map_or(0, |i| i.upstream_reruns);
    // Once, though the window was written twice (the backfill's run, then its late-data
    // reprocessing): the hour waits until its windows settle.
    assert_eq!(reruns, 1, "the hour's reruns: {:?}", hour.inputs);
    assert_eq!(
        hour.state.status,
        RunStatus::Success,
        "the hour's reconciliation"
    );
    let reason = last_rerun_reason(&store, &hour.state.run_id);
    assert!(
        reason.contains(
            "warehouse.agg_15m 2025-09-01T12:15:00+00:00 rewritten by events_aggregation_15m"
        ),
        "{reason}"
    );
    println!(
        "late data: the hour 12:00–13:00 reconciled again by itself ({reruns} rerun(s)): {reason}"
    );
    drop(store);
    let stale = platform.must(&["audit", "--stale"])?;
    assert!(
        stale.stdout.contains("0 stale interval(s)"),
        "{}",
        stale.stdout
    );
    Ok(())
}

/// Why a reconciliation run last ran again by itself (its latest event with a reason).
fn last_rerun_reason(store: &Store, run_id: &str) -> String {
    store
        .events()
        .filter_map(Result::ok)
        .filter(|e| e.dag == "cross_layer_validation" && e.run_id == run_id)
        .filter_map(|e| e.reason)
        .last()
        .unwrap_or_default()
}

/// The commit (event-log batch) in which the last of an hour's four windows was loaded, the
/// one in which the hour's reconciliation scheduled its first task, and the time between
/// those two events.
fn started_with_its_fourth_window(
    store: &Store,
    hour: DateTime<Utc>,
) -> Result<(usize, usize, i64), Error> {
    let batches: Vec<Vec<sluice_store::EventRecord>> =
        store.event_batches().collect::<Result<_, _>>()?;
    let suffix = |t: DateTime<Utc>| sluice_model::spec::instant::format_instant(t);
    let mut fourth: Option<(usize, DateTime<Utc>)> = None;
    for k in 0..4 {
        let window = suffix(hour + TimeDelta::minutes(15 * k));
        let loaded = batches.iter().enumerate().find_map(|(i, batch)| {
            batch
                .iter()
                .find(|e| {
                    e.dag == "events_aggregation_15m"
                        && e.run_id.ends_with(&window)
                        && e.task.as_deref() == Some("load")
                        && e.to == "success"
                })
                .map(|e| (i, e.at))
        });
        let loaded = loaded.ok_or(format!("window {window} never loaded"))?;
        fourth = Some(fourth.map_or(loaded, |f: (usize, DateTime<Utc>)| f.max(loaded)));
    }
    let (fourth, loaded_at) = fourth.ok_or("no windows")?;
    let (started, started_at) = batches
        .iter()
        .enumerate()
        .find_map(|(i, batch)| {
            batch
                .iter()
                .find(|e| {
                    e.dag == "cross_layer_validation"
                        && e.run_id.ends_with(&suffix(hour))
                        && e.task.as_deref() == Some("rollup_stream")
                        && e.to == "scheduled"
                })
                .map(|e| (i, e.at))
        })
        .ok_or(format!("the reconciliation of {hour} never started"))?;
    Ok((fourth, started, (started_at - loaded_at).num_milliseconds()))
}

/// Act 5.
fn a_mismatch_is_repaired_without_an_operator(platform: &Platform) -> Result<(), Error> {
    let window = at("2025-09-01T11:30:00Z");
    let hour: Vec<DateTime<Utc>> = (0..4)
        .map(|i| at("2025-09-01T11:00:00Z") + TimeDelta::minutes(15 * i))
        .collect();
    let produced = platform.manifest.intervals[&window].events;
    let (country, lost) = corruption::lossy_load(&platform.warehouse, window)?;
    assert!(lost > 0, "the lossy load lost nothing");
    assert_eq!(
        platform.batch_counts()?.get(&window),
        Some(&(produced - lost)),
        "the lossy load is the window's current one"
    );
    println!("a lossy load of {window} dropped the cells of {country}: {lost} event(s)");

    // The scheduler, with no scheduled run of its own (their intervals are all earlier than
    // --not-before): only what it is asked for, and what its tasks start.
    let log = std::fs::File::create(platform.root.join("scheduler.log"))?;
    let mut scheduler = std::process::Command::new(sluice_tests::commands::sluice_binary())
        .args(platform.argv(&[
            "scheduler",
            "--listen",
            "off",
            "--grace",
            "5",
            "--not-before",
            "2099-01-01T00:00:00Z",
        ]))
        .env_remove("SLUICE_API_TOKEN")
        .env_remove("SLUICE_CONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()?;
    let outcome = repair_under_the_scheduler(platform, &hour);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &scheduler.id().to_string()])
        .status();
    let stopped = scheduler.wait()?;
    let scheduler_log =
        std::fs::read_to_string(platform.root.join("scheduler.log")).unwrap_or_default();
    if let Err(e) = outcome {
        return Err(format!("{e}\nscheduler log:\n{scheduler_log}").into());
    }
    assert!(
        stopped.success(),
        "the scheduler: {stopped}\n{scheduler_log}"
    );

    let store = Store::open(&platform.state)?;
    let reconciliation = at(HOUR_END);
    let attempts = figures::attempts(&store, "cross_layer_validation", reconciliation)?;
    // Its first look named the short window and started the reprocessing of the hour ...
    let first_compare = attempts
        .iter()
        .rfind(|a| a.task == "compare" && a.error.is_some())
        .ok_or("no failed comparison")?;
    let summary = first_compare.error.clone().unwrap_or_default();
    assert!(
        summary.contains("2025-09-01 11:30:00"),
        "the short window is named: {summary}"
    );
    // (The hour's earlier runs, from act 1, started nothing: the one that did is this act's.)
    let reprocessing = attempts
        .iter()
        .filter(|a| a.task == "reprocess_mismatches")
        .filter_map(|a| std::fs::read_to_string(&a.log).ok())
        .find(|log| log.contains(r#""started":true"#))
        .ok_or("no reprocess_mismatches attempt started the reprocessing")?;
    for part in [
        r#""started":true"#,
        r#""target":"historical_backfill""#,
        r#""intervals":4"#,
    ] {
        assert!(reprocessing.contains(part), "{part} in {reprocessing}");
    }
    println!("reconciliation of 11:00–12:00: {}", reprocessing.trim_end());
    let batch = platform.batch_counts()?;
    for start in &hour {
        let run = store
            .run("historical_backfill", *start)?
            .ok_or("no historical_backfill run")?;
        assert_eq!(run.state.status, RunStatus::Success, "{start}");
        assert_eq!(run.state.kind, sluice_core::RunKind::Backfill, "{start}");
        let report = store
            .output("historical_backfill", *start, "validate")?
            .ok_or("no validation report")?;
        assert_eq!(report["passed"], true, "{report}");
        assert_eq!(
            batch.get(start),
            Some(&platform.manifest.intervals[start].events),
            "the batch layer, {start}"
        );
    }
    println!("after the reprocessing: every window of 11:00–12:00 whole again");

    // ... and, its windows rewritten, the hour was reconciled again by itself, and passed.
    let run = store
        .run("cross_layer_validation", reconciliation)?
        .ok_or("no reconciliation run")?;
    assert_eq!(
        run.state.status,
        RunStatus::Success,
        "the hour's reconciliation"
    );
    assert_eq!(
        run.inputs.as_ref().map(|i| i.upstream_reruns),
        Some(1),
        "{:?}",
        run.inputs
    );
    let held = store
        .output(
            "cross_layer_validation",
            reconciliation,
            "batch_holds_the_stream",
        )?
        .ok_or("no batch_holds_the_stream report")?;
    assert_eq!(held["passed"], true, "{held}");
    let reason = last_rerun_reason(&store, &run.state.run_id);
    assert!(
        reason.contains("rewritten by historical_backfill"),
        "{reason}"
    );
    println!("the hour reconciled again by itself: {reason}");
    drop(store);
    let stale = platform.must(&["audit", "--stale"])?;
    assert!(
        stale.stdout.contains("0 stale interval(s)"),
        "{}",
        stale.stdout
    );
    Ok(())
}

/// With the scheduler running: the hour's reconciliation asked for, then waits until the
/// reprocessing it starts has run every window of the hour.
fn repair_under_the_scheduler(platform: &Platform, hour: &[DateTime<Utc>]) -> Result<(), Error> {
    let socket = platform.state.join("control.sock");
    let ready = std::time::Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if ready.elapsed() > Duration::from_secs(60) {
            return Err("the scheduler never listened on its control socket".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    // The scheduler runs it to its end: the comparison fails (the run names the short
    // window), and the reprocessing it started goes on.
    let reconciled = platform.sluice(&[
        "backfill",
        "cross_layer_validation",
        "--from",
        HOUR_END,
        "--to",
        TO,
        "--reprocess",
        "completed",
    ]);
    if reconciled.code == 0 {
        return Err(format!("the reconciliation passed: {}", reconciled.stdout).into());
    }
    let began = std::time::Instant::now();
    loop {
        let listed = platform.must(&[
            "--output",
            "json",
            "runs",
            "list",
            "historical_backfill",
            "--limit",
            "100",
        ])?;
        let runs: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout)?;
        let ended = hour
            .iter()
            .filter(|start| {
                runs.iter().any(|r| {
                    r["logical_date"].as_str().and_then(|t| t.parse().ok()) == Some(**start)
                        && matches!(r["state"].as_str(), Some("success" | "failed"))
                })
            })
            .count();
        // Then the hour's reconciliation runs again by itself, once its windows settled.
        let listed = platform.must(&[
            "--output",
            "json",
            "runs",
            "list",
            "cross_layer_validation",
            "--limit",
            "100",
        ])?;
        let reconciliations: Vec<serde_json::Value> = serde_json::from_str(&listed.stdout)?;
        let again = reconciliations.iter().any(|r| {
            r["logical_date"].as_str().and_then(|t| t.parse().ok()) == Some(hour[0])
                && r["state"] == "success"
                && r["inputs"]["upstream_reruns"] == 1
        });
        if ended == hour.len() && again {
            return Ok(());
        }
        if began.elapsed() > Duration::from_secs(900) {
            return Err(format!("the reprocessing did not end in 15 minutes: {runs:?}").into());
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}
