//! `type: clickhouse` tasks against a live ClickHouse (scripts/services/clickhouse, address in
//! SLUICE_TEST_CLICKHOUSE_URL), run by the real `sluice` binary: a SELECT's rows as the
//! output (bounded), retryable against fatal errors, time-outs that kill the query on the
//! server, and both idempotent interval-write patterns leaving byte-identical tables when an
//! interval is reprocessed.

use sluice_tests as support;

use std::path::PathBuf;
use std::process::{Command, Output};

use sluice_core::RunStatus;
use sluice_store::Store;
use support::clickhouse::{connection, sql};

type Error = Box<dyn std::error::Error>;

struct Sandbox {
    root: PathBuf,
}

impl Sandbox {
    fn new(name: &str, dag: &str) -> Result<Sandbox, Error> {
        let root = std::env::temp_dir().join(format!("sluice-ch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dags"))?;
        std::fs::write(root.join("dags/dag.yaml"), dag)?;
        Ok(Sandbox { root })
    }

    fn sluice(&self, args: &[&str]) -> Result<Output, Error> {
        Ok(Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--dags")
            .arg(self.root.join("dags"))
            .arg("--state")
            .arg(self.root.join("state"))
            .args(args)
            .env("SLUICE_CONN_WAREHOUSE", connection())
            // Nothing listens on port 1: every request is refused.
            .env(
                "SLUICE_CONN_NOWHERE",
                r#"{"type": "clickhouse", "url": "http://127.0.0.1:1", "validation": false}"#,
            )
            .output()?)
    }

    /// `sluice backfill DAG` from 2025-09-01T00:00:00Z to `to`, with more arguments.
    fn backfill(&self, dag: &str, to: &str, more: &[&str]) -> Result<Output, Error> {
        let mut args = vec![
            "backfill",
            dag,
            "--from",
            "2025-09-01T00:00:00Z",
            "--to",
            to,
        ];
        args.extend_from_slice(more);
        self.sluice(&args)
    }

    fn store(&self) -> Result<Store, Error> {
        Ok(Store::open(&self.root.join("state"))?)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn select_rows_become_the_bounded_output_of_the_last_query() -> Result<(), Error> {
    let table = format!("ch_out_{}", std::process::id());
    let dag = format!(
        r#"dag: out
schedule: "@hourly"
start: 2025-09-01T00:00:00Z
tasks:
  write_then_read:
    type: clickhouse
    connection: warehouse
    sql: |
      DROP TABLE IF EXISTS {table};
      CREATE TABLE {table} (n UInt64, label String) ENGINE = MergeTree ORDER BY n;
      -- a comment; with a semicolon
      INSERT INTO {table} SELECT number, concat('row;', toString(number)) FROM system.numbers LIMIT 5;
      SELECT count() AS rows, sum(n) AS total, '{{{{ ds }}}}' AS day FROM {table}
  bounded:
    type: clickhouse
    connection: warehouse
    max_output_rows: 3
    sql: SELECT n, label FROM {table} ORDER BY n
    depends_on: [write_then_read]
"#
    );
    let sandbox = Sandbox::new("out", &dag)?;
    let out = sandbox.backfill("out", "2025-09-01T01:00:00Z", &[])?;
    assert!(out.status.success(), "{}", stderr(&out));
    let store = sandbox.store()?;
    let date = "2025-09-01T00:00:00Z".parse()?;
    let written = store
        .output("out", date, "write_then_read")?
        .ok_or("no output")?;
    assert_eq!(
        written,
        serde_json::json!({"row_count": 1, "truncated": false, "statements": 4,
                           "rows": [{"rows": 5, "total": 10, "day": "2025-09-01"}]})
    );
    let bounded = store.output("out", date, "bounded")?.ok_or("no output")?;
    assert_eq!(bounded["truncated"], true);
    assert_eq!(bounded["row_count"], 3);
    assert_eq!(
        bounded["rows"],
        serde_json::json!([{"n": 0, "label": "row;0"}, {"n": 1, "label": "row;1"},
                           {"n": 2, "label": "row;2"}])
    );
    let attempts = store.attempts_of_run("out", date)?;
    let first = attempts
        .iter()
        .find(|a| a.task == "write_then_read")
        .ok_or("no attempt")?;
    let log = std::fs::read_to_string(&first.log)?;
    assert!(log.contains("4 statement(s)"), "{log}");
    assert!(log.contains("statement 3/4 (query id out/"), "{log}");
    sql(&format!("DROP TABLE IF EXISTS {table}"))?;
    Ok(())
}

#[test]
fn syntax_errors_are_fatal_and_load_or_network_errors_are_retried() -> Result<(), Error> {
    let dag = r#"dag: errors
schedule: "@hourly"
start: 2025-09-01T00:00:00Z
defaults:
  retries: 2
  retry_delay: 1s
tasks:
  syntax:
    type: clickhouse
    connection: warehouse
    sql: SELEC 1
  too_slow_for_the_server:
    type: clickhouse
    connection: warehouse
    settings: { max_execution_time: 1 }
    sql: SELECT count() FROM system.numbers_mt WHERE number < 100000000000
  server_down:
    type: clickhouse
    connection: nowhere
    sql: SELECT 1
"#;
    let sandbox = Sandbox::new("errors", dag)?;
    let out = sandbox.backfill("errors", "2025-09-01T01:00:00Z", &[])?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let store = sandbox.store()?;
    let attempts = store.attempts_of_run("errors", "2025-09-01T00:00:00Z".parse()?)?;
    let of = |task: &str| -> Vec<String> {
        attempts
            .iter()
            .filter(|a| a.task == task)
            .map(|a| a.error.clone().unwrap_or_default())
            .collect()
    };
    let syntax = of("syntax");
    assert_eq!(syntax.len(), 1, "a syntax error is fatal: {syntax:?}");
    assert!(syntax[0].contains("Code: 62"), "{syntax:?}");
    let slow = of("too_slow_for_the_server");
    assert_eq!(slow.len(), 3, "TIMEOUT_EXCEEDED is retried: {slow:?}");
    assert!(slow.iter().all(|e| e.contains("Code: 159")), "{slow:?}");
    let down = of("server_down");
    assert_eq!(down.len(), 3, "a refused connection is retried: {down:?}");
    assert!(
        down.iter().all(|e| e.contains("statement 1 of 1 failed")),
        "{down:?}"
    );
    Ok(())
}

#[test]
fn a_timed_out_statement_is_killed_on_the_server() -> Result<(), Error> {
    let dag = r#"dag: slow
schedule: "@hourly"
start: 2025-09-01T00:00:00Z
tasks:
  forever:
    type: clickhouse
    connection: warehouse
    timeout: 1s
    sql: SELECT count() FROM system.numbers WHERE number < 10000000000000
"#;
    let sandbox = Sandbox::new("slow", dag)?;
    let out = sandbox.backfill("slow", "2025-09-01T01:00:00Z", &[])?;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let store = sandbox.store()?;
    let attempts = store.attempts_of_run("slow", "2025-09-01T00:00:00Z".parse()?)?;
    assert_eq!(attempts.len(), 1);
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(error.contains("timed out after 1s"), "{error}");
    let log = std::fs::read_to_string(&attempts[0].log)?;
    assert!(log.contains("asked the server to kill query"), "{log}");
    let query_id = format!("{}#1", attempts[0].idempotency_key);
    let mut still_running = String::new();
    for _ in 0..50 {
        still_running = sql(&format!(
            "SELECT count() FROM system.processes WHERE query_id = '{query_id}'"
        ))?;
        if still_running.trim() == "0" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(still_running.trim(), "0", "query {query_id} still runs");
    Ok(())
}

/// Both documented patterns, side by side: delete-then-insert into a table partitioned by
/// day, and a partition replace from a per-interval staging table into a table partitioned
/// by the interval.
#[test]
fn reprocessing_intervals_twice_leaves_byte_identical_tables() -> Result<(), Error> {
    let p = std::process::id();
    let (raw, by_delete, by_replace) = (
        format!("ch_raw_{p}"),
        format!("ch_agg_delete_{p}"),
        format!("ch_agg_replace_{p}"),
    );
    for t in [&raw, &by_delete, &by_replace] {
        sql(&format!("DROP TABLE IF EXISTS {t}"))?;
    }
    sql(&format!(
        "CREATE TABLE {raw} (event_time DateTime('UTC'), country String, amount UInt32) \
         ENGINE = MergeTree ORDER BY event_time"
    ))?;
    // 2 hours of events, one every 7 seconds, over four countries.
    sql(&format!(
        "INSERT INTO {raw} SELECT toDateTime('2025-09-01 00:00:00', 'UTC') + number * 7, \
         arrayElement(['DE', 'FR', 'PL', 'SE'], number % 4 + 1), number % 13 \
         FROM system.numbers LIMIT 1029"
    ))?;
    let columns = "window_start DateTime('UTC'), country String, events UInt64, amount UInt64";
    sql(&format!(
        "CREATE TABLE {by_delete} ({columns}) ENGINE = MergeTree \
         PARTITION BY toYYYYMMDD(window_start) ORDER BY (window_start, country)"
    ))?;
    sql(&format!(
        "CREATE TABLE {by_replace} ({columns}) ENGINE = MergeTree \
         PARTITION BY window_start ORDER BY (window_start, country)"
    ))?;
    let start = r#"toDateTime('{{ data_interval_start | strftime("%Y-%m-%d %H:%M:%S") }}', 'UTC')"#;
    let end = r#"toDateTime('{{ data_interval_end | strftime("%Y-%m-%d %H:%M:%S") }}', 'UTC')"#;
    let aggregate = format!(
        "SELECT toStartOfFifteenMinutes(event_time) AS window_start, country, count() AS events, \
         sum(amount) AS amount FROM {raw} WHERE event_time >= {start} AND event_time < {end} \
         GROUP BY window_start, country"
    );
    let stage = format!("{by_replace}_stage_{{{{ ts_nodash }}}}");
    let dag = format!(
        r#"dag: agg
schedule: "*/15 * * * *"
start: 2025-09-01T00:00:00Z
max_active_runs: 4
tasks:
  delete_then_insert:
    type: clickhouse
    connection: warehouse
    sql: |
      ALTER TABLE {by_delete} DELETE WHERE window_start >= {start} AND window_start < {end};
      INSERT INTO {by_delete} {aggregate}
  replace_partition:
    type: clickhouse
    connection: warehouse
    sql: |
      DROP TABLE IF EXISTS {stage};
      CREATE TABLE {stage} AS {by_replace};
      INSERT INTO {stage} {aggregate};
      ALTER TABLE {by_replace} REPLACE PARTITION {start} FROM {stage};
      DROP TABLE {stage}
"#
    );
    let sandbox = Sandbox::new("agg", &dag)?;
    let dump = |table: &str| {
        sql(&format!(
            "SELECT * FROM {table} ORDER BY window_start, country FORMAT TSV"
        ))
    };
    let mut dumps = Vec::new();
    for reprocess in ["none", "completed", "completed"] {
        let out = sandbox.backfill("agg", "2025-09-01T02:00:00Z", &["--reprocess", reprocess])?;
        assert!(out.status.success(), "{}", stderr(&out));
        dumps.push((dump(&by_delete)?, dump(&by_replace)?));
    }
    let (first_delete, first_replace) = &dumps[0];
    assert_eq!(first_delete.lines().count(), 8 * 4, "{first_delete}");
    assert_eq!(first_delete, first_replace);
    let total: u64 = first_delete
        .lines()
        .filter_map(|l| l.split('\t').nth(2)?.parse::<u64>().ok())
        .sum();
    assert_eq!(total, 1029, "every raw event is in exactly one aggregate");
    for (delete, replace) in &dumps[1..] {
        assert_eq!(delete, first_delete, "delete-then-insert is not idempotent");
        assert_eq!(
            replace, first_replace,
            "partition replace is not idempotent"
        );
    }
    let store = sandbox.store()?;
    let runs: Vec<_> = store.runs_of("agg").collect::<Result<_, _>>()?;
    assert_eq!(runs.len(), 8);
    assert!(runs.iter().all(|r| r.state.status == RunStatus::Success));
    let reprocessed = store.attempts_of_run("agg", "2025-09-01T01:45:00Z".parse()?)?;
    let delete = reprocessed
        .iter()
        .rfind(|a| a.task == "delete_then_insert")
        .ok_or("no attempt")?;
    let log = std::fs::read_to_string(&delete.log)?;
    assert!(
        log.contains(&format!("mutation of `{by_delete}` finished")),
        "the insert waits for the delete: {log}"
    );
    let leftovers = sql(&format!(
        "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name LIKE '{by_replace}_stage_%'"
    ))?;
    assert_eq!(leftovers.trim(), "0", "staging tables are dropped");
    for t in [&raw, &by_delete, &by_replace] {
        sql(&format!("DROP TABLE IF EXISTS {t}"))?;
    }
    Ok(())
}
