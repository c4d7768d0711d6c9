//! The batch layer's interval replace against a live ClickHouse (scripts/services/clickhouse):
//! while the shipped `load` task of `events_aggregation_15m` reloads one interval 50 times,
//! run by the real `sluice` binary, a reader querying the interval in a loop never sees it
//! empty, short or mixing two loads. The former delete-then-insert, under the same reader,
//! is seen empty: the reader can tell.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use sluice_model::spec::TaskKind;
use sluice_tests::clickhouse::{sql, url, user_files};
use sluice_tests::repo_root;

type Error = Box<dyn std::error::Error>;

/// Rows of the interval's aggregates: enough that a load takes a while.
const ROWS: u64 = 20_000;
const RELOADS: u64 = 50;
const LOGICAL_DATE: &str = "2025-09-01T10:00:00Z";
const WINDOW: &str = "toDateTime('2025-09-01 10:00:00', 'UTC')";

/// The design before: delete the interval, wait for the mutation, insert (the control).
const DELETE_THEN_INSERT_DDL: &str = "CREATE TABLE agg_15m (window_start DateTime('UTC'), \
    window_end DateTime('UTC'), country String, device String, event_type String, \
    rollup_level UInt8, event_count UInt64, distinct_users UInt64, value_sum Float64, \
    latency_p50 Float64, latency_p95 Float64) ENGINE = MergeTree \
    PARTITION BY toYYYYMMDD(window_start) ORDER BY (window_start, rollup_level, country, device, event_type)";
const DELETE_THEN_INSERT: &str = r#"ALTER TABLE agg_15m DELETE
  WHERE window_start = toDateTime('{{ data_interval_start | strftime("%Y-%m-%d %H:%M:%S") }}', 'UTC');
INSERT INTO agg_15m
SELECT parseDateTimeBestEffort(window_start), parseDateTimeBestEffort(window_end),
       country, device, event_type, rollup_level, event_count, distinct_users,
       value_sum, latency_p50, latency_p95
FROM file({{ (var.output_zone_in_warehouse ~ '/window_start=' ~ (data_interval_start | strftime('%Y%m%dT%H%M')) ~ '/data.json') | sql_string }},
          'JSONEachRow',
          'window_start String, window_end String, country String, device String, event_type String, rollup_level UInt8, event_count UInt64, distinct_users UInt64, value_sum Float64, latency_p50 Float64, latency_p95 Float64')
"#;

/// A database of its own, a DAG folder whose one task runs the given load SQL, and Spark's
/// output for the interval in the server's user_files.
struct Reloads {
    database: String,
    root: PathBuf,
    in_warehouse: String,
}

impl Reloads {
    fn new(name: &str, ddl: &[String], load_sql: &str) -> Result<Reloads, Error> {
        let database = format!("{name}_{}", std::process::id());
        sql(&format!("DROP DATABASE IF EXISTS {database}"))?;
        sql(&format!("CREATE DATABASE {database}"))?;
        let in_db = |statement: &str| {
            sluice_tests::http(&url(), "POST", &format!("/?database={database}"), statement)
        };
        for statement in ddl {
            let (status, body) = in_db(statement)?;
            if status != 200 {
                return Err(format!("{statement}: {body}").into());
            }
        }
        let root = std::env::temp_dir().join(format!("sluice-{database}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dags"))?;
        let body: String = load_sql
            .lines()
            .map(|line| format!("      {line}\n"))
            .collect();
        std::fs::write(
            root.join("dags/reload.yaml"),
            format!(
                "dag: reload\nschedule: \"*/15 * * * *\"\nstart: 2025-09-01T00:00:00Z\nparams:\n  output_zone: s3://unused/agg\ntasks:\n  load:\n    type: clickhouse\n    connection: warehouse\n    sql: |\n{body}"
            ),
        )?;
        Ok(Reloads {
            in_warehouse: format!("{database}/agg"),
            database,
            root,
        })
    }

    /// Spark's output of load number `version`: every row counts `version` events.
    fn write_output(&self, version: u64) -> Result<(), Error> {
        let folder = user_files()
            .join(&self.in_warehouse)
            .join("window_start=20250901T1000");
        std::fs::create_dir_all(&folder)?;
        let mut text = String::with_capacity(usize::try_from(ROWS)? * 220);
        for row in 0..ROWS {
            text += &serde_json::json!({
                "window_start": "2025-09-01T10:00:00Z", "window_end": "2025-09-01T10:15:00Z",
                "country": format!("c{}", row % 200), "device": format!("d{}", row / 200),
                "event_type": "view", "rollup_level": 0, "event_count": version,
                "distinct_users": 1, "value_sum": 1.0, "latency_p50": 1.0, "latency_p95": 2.0
            })
            .to_string();
            text.push('\n');
        }
        let staged = folder.join("data.json.tmp");
        std::fs::write(&staged, text)?;
        std::fs::rename(staged, folder.join("data.json"))?;
        let events = ROWS * version;
        std::fs::write(
            folder.join("input.json"),
            serde_json::json!({"manifests": 1, "ingested_events": events,
                "rows_read": events, "distinct_events": events})
            .to_string(),
        )?;
        Ok(())
    }

    /// One load of the interval by `sluice dags test`, through the ClickHouse executor.
    fn load(&self, version: u64) -> Result<(), Error> {
        self.write_output(version)?;
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--dags")
            .arg(self.root.join("dags"))
            .arg("--state")
            .arg(self.root.join("state"))
            .args(["dags", "test", "reload", "--logical-date", LOGICAL_DATE])
            .args(["--ignore-gate"])
            .env(
                "SLUICE_CONN_WAREHOUSE",
                serde_json::json!({"type": "clickhouse", "url": url(), "database": self.database, "validation": false})
                    .to_string(),
            )
            .env("SLUICE_VAR_WAREHOUSE_READS", "file")
            .env("SLUICE_VAR_OUTPUT_ZONE_IN_WAREHOUSE", &self.in_warehouse)
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "load {version}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(())
    }

    /// Reloads `reloads` times with a reader querying `agg_15m` throughout; what it read.
    fn under_a_reader(&self, reloads: u64) -> Result<Reads, Error> {
        self.load(1)?;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = read_in_a_loop(&self.database, Arc::clone(&stop));
        let mut loaded = Ok(());
        for version in 2..=reloads + 1 {
            loaded = self.load(version);
            if loaded.is_err() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let reads = reader.join().map_err(|_| "the reader panicked")??;
        loaded?;
        Ok(reads)
    }

    fn query(&self, statement: &str) -> Result<String, Error> {
        sql(&statement.replace("{db}", &self.database))
    }
}

impl Drop for Reloads {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
        let _ = std::fs::remove_dir_all(user_files().join(&self.database));
        let _ = sql(&format!("DROP DATABASE IF EXISTS {}", self.database));
    }
}

/// What the reader saw of the interval.
#[derive(Debug, Default)]
struct Reads {
    total: u64,
    /// No row at all.
    empty: u64,
    /// Rows missing, or rows of two loads at once.
    partial: u64,
    /// The load versions seen whole.
    versions: std::collections::BTreeSet<u64>,
}

fn read_in_a_loop(database: &str, stop: Arc<AtomicBool>) -> JoinHandle<Result<Reads, String>> {
    let query = format!(
        "SELECT count(), sum(event_count), min(event_count), max(event_count) FROM {database}.agg_15m WHERE window_start = {WINDOW}"
    );
    std::thread::spawn(move || {
        let mut reads = Reads::default();
        while !stop.load(Ordering::Relaxed) {
            let answer = sql(&query).map_err(|e| e.to_string())?;
            let figures: Vec<u64> = answer
                .split_whitespace()
                .map(str::parse)
                .collect::<Result<_, _>>()
                .map_err(|e| format!("{answer}: {e}"))?;
            let [rows, _, low, high] = figures[..] else {
                return Err(format!("unexpected answer {answer}"));
            };
            reads.total += 1;
            if rows == 0 {
                reads.empty += 1;
            } else if rows != ROWS || low != high {
                reads.partial += 1;
            } else {
                reads.versions.insert(low);
            }
        }
        Ok(reads)
    })
}

fn warehouse_ddl() -> Result<Vec<String>, Error> {
    let ddl = std::fs::read_to_string(repo_root().join("dags/sql/warehouse.sql"))?;
    Ok(sluice_runtime::clickhouse::statements::split(&ddl))
}

fn shipped_load_sql(path: &Path) -> Result<String, Error> {
    let loaded = sluice_model::spec::load_file(path)
        .map_err(|report| format!("{}: {report:?}", path.display()))?;
    match loaded.dag.tasks.get("load").map(|t| &t.kind) {
        Some(TaskKind::Clickhouse(task)) => Ok(task.sql.clone()),
        other => Err(format!("no clickhouse task `load` in {}: {other:?}", path.display()).into()),
    }
}

#[test]
fn a_reader_never_sees_an_interval_empty_or_partly_loaded_while_it_is_reloaded() -> Result<(), Error>
{
    let load = shipped_load_sql(&repo_root().join("dags/events_aggregation_15m.yaml"))?;
    // Both shipped DAGs load with the same statements.
    assert_eq!(
        shipped_load_sql(&repo_root().join("dags/historical_backfill.yaml"))?,
        load
    );
    let reloads = Reloads::new("replace", &warehouse_ddl()?, &load)?;
    let reads = reloads.under_a_reader(RELOADS)?;
    println!("atomic replace, {RELOADS} reloads: {reads:?}");
    assert_eq!((reads.empty, reads.partial), (0, 0), "{reads:?}");
    // The reader ran throughout and saw several loads come and go.
    assert!(reads.total >= RELOADS, "{reads:?}");
    assert!(reads.versions.len() >= 10, "{reads:?}");
    // The last load is current, whole; the earlier loads' rows are gone.
    assert_eq!(
        reloads
            .query(&format!(
                "SELECT count(), sum(event_count) FROM {{db}}.agg_15m WHERE window_start = {WINDOW}"
            ))?
            .trim(),
        format!("{ROWS}\t{}", ROWS * (RELOADS + 1))
    );
    assert_eq!(
        reloads
            .query("SELECT count(), uniqExact(load_id) FROM {db}.agg_15m_versions")?
            .trim(),
        format!("{ROWS}\t1")
    );
    drop(reloads);

    // The control: the same reader sees the former design's gap.
    let control = Reloads::new(
        "delete_insert",
        &[DELETE_THEN_INSERT_DDL.to_owned()],
        DELETE_THEN_INSERT,
    )?;
    let reads = control.under_a_reader(10)?;
    println!("delete-then-insert, 10 reloads: {reads:?}");
    assert!(reads.empty + reads.partial > 0, "{reads:?}");
    Ok(())
}
