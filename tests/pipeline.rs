//! The platform's 15-minute DAG end to end on real components, unchanged but for the
//! environment: generated events → Kafka (a broker of its own) and the raw zone → the
//! stream-layer stand-in (1-minute aggregates and raw events in ClickHouse) → Sluice runs
//! `dags/events_aggregation_15m.yaml`: the Kafka gate, the Spark cube on local Spark, the
//! idempotent ClickHouse load, `dq_checks` — and every event is accounted for per interval.
//!
//! Needs what scripts/test starts and exports: ClickHouse (SLUICE_TEST_CLICKHOUSE_URL and
//! its user_files folder), local Spark (SPARK_HOME), the broker's build (scripts/services/kafka).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::Parser;
use sluice_demo::services::{OwnBroker, clickhouse_text as clickhouse, create_topic};
use sluice_tests::{repo_root, sluice};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: scripts/test starts the services and sets it")
    })
}

#[test]
fn the_15_minute_dag_accounts_for_every_event_of_each_interval() -> Result<(), Error> {
    let id = std::process::id();
    let root = std::env::temp_dir().join(format!("sluice-pipeline-{id}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let user_files = PathBuf::from(env("SLUICE_TEST_CLICKHOUSE_USER_FILES"));
    let in_warehouse = format!("pipeline-{id}/agg_15m");
    let output_zone = user_files.join(&in_warehouse);
    let database = format!("pipeline_{id}");
    let url = env("SLUICE_TEST_CLICKHOUSE_URL");
    let warehouse = clickhouse::Client::default()
        .with_url(&url)
        .with_validation(false);
    clickhouse(
        &warehouse,
        &format!("CREATE DATABASE IF NOT EXISTS {database}"),
    )?;
    let warehouse = warehouse.with_database(&database);
    let ddl = std::fs::read_to_string(repo_root().join("dags/sql/warehouse.sql"))?;
    for statement in sluice::clickhouse::statements::split(&ddl) {
        clickhouse(&warehouse, &statement)?;
    }

    // A broker of this test's own: the DAG watches the topic `events`, which must start empty.
    let broker = OwnBroker::start(19900 + u16::try_from(id % 90)?)?;
    let bootstrap = broker.bootstrap.clone();
    create_topic(&bootstrap, "events", 4)?;

    // 10:00–11:10 of event time: the hour 10:00–11:00 (four intervals) to process, and data
    // past its end + the gate's 5 minutes of lateness, so the gate opens for all four.
    let raw_zone = root.join("raw");
    let manifest = sluice_demo::eventgen::run(&sluice_demo::eventgen::Args::parse_from([
        "sluice-eventgen",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "events",
        "--partitions",
        "4",
        "--raw-zone",
        &raw_zone.display().to_string(),
        "--from",
        "2025-09-01T10:00:00Z",
        "--to",
        "2025-09-01T11:10:00Z",
        "--rate",
        "3",
        "--seed",
        "5",
    ]))?;
    let streamed = sluice_demo::stream_layer::run(&sluice_demo::stream_layer::Args::parse_from([
        "sluice-stream-layer",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "events",
        "--group",
        "realtime-aggregator",
        "--clickhouse",
        &url,
        "--table",
        &format!("{database}.stream_agg_1m"),
        "--raw-table",
        &format!("{database}.raw_events"),
        "--idle-exit-seconds",
        "3",
    ]))?;
    assert_eq!(streamed, manifest.total());

    // dq_checks, built from source.
    let plugins = root.join("plugins");
    let built = sluice(&[
        "plugins",
        "build",
        &repo_root().join("plugins/dq_checks").display().to_string(),
        "--out",
        &plugins.display().to_string(),
    ]);
    assert_eq!(built.code, 0, "{}", built.stderr);

    // The environment a laptop gives the unchanged DAG. SAFETY: this test binary runs this
    // one test; nothing else reads the environment concurrently.
    let settings = [
        ("SLUICE_SPARK_BACKEND", "local".to_owned()),
        ("SLUICE_CONN_WAREHOUSE", serde_json::json!({"type": "clickhouse", "url": url, "database": database, "validation": false}).to_string()),
        ("SLUICE_CONN_EVENTS_KAFKA", serde_json::json!({"type": "kafka", "bootstrap_servers": bootstrap}).to_string()),
        ("SLUICE_VAR_RAW_ZONE", raw_zone.display().to_string()),
        ("SLUICE_VAR_OUTPUT_ZONE", output_zone.display().to_string()),
        ("SLUICE_VAR_OUTPUT_FORMAT", "json".to_owned()),
        ("SLUICE_VAR_WAREHOUSE_READS", "file".to_owned()),
        ("SLUICE_VAR_OUTPUT_ZONE_IN_WAREHOUSE", in_warehouse.clone()),
    ];
    for (name, value) in &settings {
        unsafe { std::env::set_var(name, value) };
    }
    let state = root.join("state");
    // `sluice` on the platform's DAG folder, this test's state and plugins.
    let on_platform = |args: &[&str]| {
        let mut argv = vec![
            "--dags".to_owned(),
            repo_root().join("dags").display().to_string(),
            "--state".to_owned(),
            state.display().to_string(),
            "--plugins".to_owned(),
            plugins.display().to_string(),
        ];
        argv.extend(args.iter().map(|a| (*a).to_owned()));
        sluice(&argv.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let result = on_platform(&[
        "backfill",
        "events_aggregation_15m",
        "--from",
        "2025-09-01T10:00:00Z",
        "--to",
        "2025-09-01T11:00:00Z",
    ]);
    assert_eq!(result.code, 0, "{}\n{}", result.stdout, result.stderr);
    // The hour's reconciliation of the stream layer against the batch layer: its run of
    // [10:45, 11:45) checks 10:00–11:00.
    let reconciled = on_platform(&[
        "backfill",
        "cross_layer_validation",
        "--from",
        "2025-09-01T10:45:00Z",
        "--to",
        "2025-09-01T11:45:00Z",
    ]);
    if reconciled.code != 0 {
        let store = sluice::store::Store::open(&state)?;
        let errors: Vec<String> = store
            .attempts_of_run("cross_layer_validation", "2025-09-01T10:45:00Z".parse()?)?
            .into_iter()
            .map(|a| {
                let log = std::fs::read_to_string(&a.log).unwrap_or_default();
                format!(
                    "{} try {}: {}\n{log}",
                    a.task,
                    a.try_number,
                    a.error.unwrap_or_default()
                )
            })
            .collect();
        panic!(
            "{}\n{}\n{}",
            reconciled.stdout,
            reconciled.stderr,
            errors.join("\n")
        );
    }
    let audit = on_platform(&[
        "audit",
        "events_aggregation_15m",
        "--from",
        "2025-09-01T10:00:00Z",
        "--to",
        "2025-09-01T11:00:00Z",
    ]);
    assert_eq!(audit.code, 0, "{}\n{}", audit.stdout, audit.stderr);

    // Per interval: produced = in the batch aggregates (finest grain) = raw events seen by
    // the stream layer, and the dq_checks report passed.
    let batch = clickhouse(
        &warehouse,
        "SELECT window_start, sum(event_count) FROM agg_15m WHERE rollup_level = 0 GROUP BY window_start ORDER BY window_start",
    )?;
    let batch: BTreeMap<String, u64> = batch
        .lines()
        .filter_map(|l| {
            let (w, n) = l.split_once('\t')?;
            Some((w.replace(' ', "T") + "Z", n.parse().ok()?))
        })
        .collect();
    let store = sluice::store::Store::open(&state)?;
    println!("interval              produced  batch  validated");
    for (start, counts) in manifest.intervals.iter().take(4) {
        let key = start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let report = store
            .output("events_aggregation_15m", *start, "validate")?
            .ok_or("no validation report")?;
        println!(
            "{key}  {:>8}  {:>5}  {}",
            counts.events,
            batch.get(&key).copied().unwrap_or(0),
            report["passed"]
        );
        assert_eq!(
            batch.get(&key).copied(),
            Some(counts.events),
            "interval {key}"
        );
        assert_eq!(report["passed"], true, "{report}");
    }
    let comparison = store
        .output(
            "cross_layer_validation",
            "2025-09-01T10:45:00Z".parse()?,
            "compare",
        )?
        .ok_or("no reconciliation report")?;
    assert_eq!(comparison["passed"], true, "{comparison}");
    println!("{}", audit.stdout.trim_end());
    let _ = std::fs::remove_dir_all(user_files.join(format!("pipeline-{id}")));
    clickhouse(&warehouse, &format!("DROP DATABASE IF EXISTS {database}"))?;
    let _ = std::fs::remove_dir_all(Path::new(&root));
    drop(broker);
    Ok(())
}
