//! The platform the chaos test runs: ClickHouse and a broker of its own (so that the test
//! may stop them), the shared EMR test server, events generated over the window into
//! Kafka, the raw zone and the stream layer, `dq_checks` built, and a DAG folder with the
//! platform's DAGs bounded to the window.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use sluice_demo::services::{OwnBroker, OwnClickHouse, clickhouse_text, create_topic};

pub type Error = Box<dyn std::error::Error + Send + Sync>;

pub const DATABASE: &str = "chaos";
/// Where Spark's output lands inside ClickHouse's user_files (read by `file()`).
pub const IN_WAREHOUSE: &str = "chaos/agg_15m";

pub struct Platform {
    pub root: PathBuf,
    pub dags: PathBuf,
    pub state: PathBuf,
    pub plugins: PathBuf,
    pub raw_zone: PathBuf,
    pub output_zone: PathBuf,
    pub clickhouse: Arc<OwnClickHouse>,
    pub broker: Arc<OwnBroker>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Events produced per 15-minute interval.
    pub produced: BTreeMap<DateTime<Utc>, u64>,
}

impl Drop for Platform {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.output_zone);
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Platform {
    pub fn start(from: DateTime<Utc>, intervals: u32) -> Result<Platform, Error> {
        let id = std::process::id();
        let root = std::env::temp_dir().join(format!("sluice-chaos-{id}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root)?;
        let to = from + TimeDelta::minutes(15 * i64::from(intervals));

        let clickhouse = OwnClickHouse::start(18700 + 3 * u16::try_from(id % 40)?)?;
        let admin = clickhouse::Client::default()
            .with_url(&clickhouse.url)
            .with_validation(false);
        clickhouse_text(&admin, &format!("DROP DATABASE IF EXISTS {DATABASE}"))?;
        clickhouse_text(&admin, &format!("CREATE DATABASE {DATABASE}"))?;
        let warehouse = admin.with_database(DATABASE);
        let ddl = std::fs::read_to_string(repo().join("dags/sql/warehouse.sql"))?;
        for statement in sluice_runtime::clickhouse::statements::split(&ddl) {
            clickhouse_text(&warehouse, &statement)?;
        }
        let broker = OwnBroker::start(19700 + u16::try_from(id % 90)?)?;
        create_topic(&broker.bootstrap, "events", 4)?;
        create_topic(&broker.bootstrap, "events.arrivals", 1)?;

        // Events past the window's end by more than the gate's lateness, so every gate opens.
        let raw_zone = root.join("raw");
        let events_to = to + TimeDelta::minutes(10);
        let manifest = sluice_demo::eventgen::run(&sluice_demo::eventgen::Args::parse_from([
            "sluice-eventgen",
            "--bootstrap",
            &broker.bootstrap,
            "--partitions",
            "4",
            "--from",
            &from.to_rfc3339(),
            "--to",
            &events_to.to_rfc3339(),
            "--rate",
            "2",
            "--seed",
            "11",
        ]))?;
        // The raw zone is written from the topic by the sink whose group the gate waits for.
        // Long enough for a broker slow to hand out the next batch under load.
        let written = sluice_demo::raw_sink::until_idle(&broker.bootstrap, &raw_zone, 20)?;
        if written != manifest.total() {
            return Err(format!("the sink wrote {written} of {} events", manifest.total()).into());
        }
        let streamed =
            sluice_demo::stream_layer::run(&sluice_demo::stream_layer::Args::parse_from([
                "sluice-stream-layer",
                "--bootstrap",
                &broker.bootstrap,
                "--group",
                "realtime-aggregator",
                "--clickhouse",
                &clickhouse.url,
                "--table",
                &format!("{DATABASE}.stream_agg_1m"),
                "--raw-table",
                &format!("{DATABASE}.raw_events"),
                // Long enough for a broker slow to hand out the next batch under load.
                "--idle-exit-seconds",
                "20",
            ]))?;
        if streamed != manifest.total() {
            return Err(format!("streamed {streamed} of {} events", manifest.total()).into());
        }
        let produced = manifest
            .intervals
            .iter()
            .filter(|(start, _)| **start < to)
            .map(|(start, counts)| (*start, counts.events))
            .collect();

        let plugins = root.join("plugins");
        let mut out = Vec::new();
        let mut err = Vec::new();
        let built = sluice::cli::run(
            [
                "sluice".into(),
                "plugins".into(),
                "build".into(),
                repo().join("plugins/dq_checks").into_os_string(),
                "--out".into(),
                plugins.clone().into_os_string(),
            ],
            &mut sluice::cli::Streams {
                out: &mut out,
                err: &mut err,
                color: false,
                remote: None,
            },
        );
        if built != 0 {
            return Err(format!("dq_checks: {}", String::from_utf8_lossy(&err)).into());
        }

        let dags = root.join("dags");
        write_dags(&dags, from, to)?;
        Ok(Platform {
            output_zone: clickhouse.user_files.join(IN_WAREHOUSE),
            state: root.join("state"),
            dags,
            plugins,
            raw_zone,
            root,
            clickhouse: Arc::new(clickhouse),
            broker: Arc::new(broker),
            from,
            to,
            produced,
        })
    }

    /// The warehouse client (directly, not through the fault proxy).
    pub fn warehouse(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(&self.clickhouse.url)
            .with_validation(false)
            .with_database(DATABASE)
    }

    /// The environment the scheduler gets: the platform's, with ClickHouse reached at
    /// `warehouse_url` (the fault proxy).
    pub fn environment(&self, warehouse_url: &str, emr: &str) -> Vec<(String, String)> {
        let warehouse = serde_json::json!({"type": "clickhouse", "url": warehouse_url, "database": DATABASE, "validation": false, "plugins": true});
        let kafka =
            serde_json::json!({"type": "kafka", "bootstrap_servers": self.broker.bootstrap});
        [
            // The platform's aggregation on local Spark; emr_steps on the EMR test server.
            ("SLUICE_SPARK_BACKEND", "analytics_emr=local".to_owned()),
            ("SLUICE_CONN_WAREHOUSE", warehouse.to_string()),
            ("SLUICE_CONN_EVENTS_KAFKA", kafka.to_string()),
            ("SLUICE_CONN_CHAOS_EMR", emr.to_owned()),
            ("SLUICE_VAR_RAW_ZONE", self.raw_zone.display().to_string()),
            (
                "SLUICE_VAR_OUTPUT_ZONE",
                self.output_zone.display().to_string(),
            ),
            ("SLUICE_VAR_OUTPUT_FORMAT", "json".to_owned()),
            ("SLUICE_VAR_WAREHOUSE_READS", "file".to_owned()),
            (
                "SLUICE_VAR_OUTPUT_ZONE_IN_WAREHOUSE",
                IN_WAREHOUSE.to_owned(),
            ),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The platform's DAGs, bounded to [from, to) and with their retry delays scaled to the
/// compressed time of the test (minutes become seconds; more tries, since every scheduler
/// kill fails the attempts it was running); plus `emr_steps`, one Spark step per interval
/// on the EMR test server. Their SLAs go: a deadline counts real minutes after an
/// interval's end, the test's intervals are in 2025, and a scheduled run past its deadline
/// starts no retry (docs/scheduling.md, "SLA deadline rule").
fn write_dags(dags: &Path, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<(), Error> {
    let source = repo().join("dags");
    std::fs::create_dir_all(dags)?;
    for folder in ["jobs", "sql"] {
        std::fs::create_dir_all(dags.join(folder))?;
        for entry in std::fs::read_dir(source.join(folder))? {
            let entry = entry?;
            std::fs::copy(entry.path(), dags.join(folder).join(entry.file_name()))?;
        }
    }
    let bounded = |start: DateTime<Utc>, end: DateTime<Utc>| {
        format!("start: {}\nend: {}", start.to_rfc3339(), end.to_rfc3339())
    };
    let edits: [(&str, Vec<(&str, String)>); 3] = [
        (
            "events_aggregation_15m.yaml",
            vec![
                ("start: 2025-09-01T00:00:00Z", bounded(from, to)),
                ("sla: { warn_after: 50m, deadline: 100m }\n", String::new()),
                (
                    "  retries: 3\n  retry_delay: 1m",
                    "  retries: 30\n  retry_delay: 2s".into(),
                ),
                ("max_retry_delay: 15m", "max_retry_delay: 20s".into()),
                ("  timeout: 20m", "  timeout: 4m".into()),
                ("    retries: 1\n", "    retries: 30\n".into()),
            ],
        ),
        (
            "cross_layer_validation.yaml",
            vec![
                // The hours of the windows: each runs once its four windows are loaded.
                ("start: 2025-09-01T00:00:00Z", bounded(from, to)),
                ("sla: { warn_after: 60m, deadline: 100m }\n", String::new()),
                (
                    "  retries: 2\n  retry_delay: 2m",
                    "  retries: 30\n  retry_delay: 2s".into(),
                ),
            ],
        ),
        ("historical_backfill.yaml", vec![]),
    ];
    for (file, replacements) in edits {
        let mut text = std::fs::read_to_string(source.join(file))?;
        for (old, new) in replacements {
            if text.matches(old).count() != 1 {
                return Err(
                    format!("{file}: `{old}` is not there once; update the chaos test").into(),
                );
            }
            text = text.replace(old, &new);
        }
        std::fs::write(dags.join(file), text)?;
    }
    std::fs::write(
        dags.join("emr_steps.yaml"),
        format!(
            "dag: emr_steps
description: One EMR step per interval, through the fault proxy
schedule: \"*/15 * * * *\"
{}
catchup: true
max_active_runs: 8
defaults: {{ retries: 12, retry_delay: 2s, timeout: 2m }}
tasks:
  step:
    type: spark
    backend: emr
    connection: chaos_emr
    application: s3://jobs/aggregate_15m.py
    args: [--start, \"{{{{ data_interval_start }}}}\"]
",
            bounded(from, to)
        ),
    )?;
    Ok(())
}
