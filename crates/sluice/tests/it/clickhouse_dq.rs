//! `dq_checks` in a DAG against live ClickHouse data, through the `clickhouse_query` host
//! capability: passing on good data, failing with a readable report on seeded bad data.
//! ClickHouse is Debian's server started by scripts/test (scripts/services/clickhouse),
//! its HTTP address in SLUICE_TEST_CLICKHOUSE_URL; the real `sluice` binary runs the DAG.

use sluice_tests as support;

use std::path::Path;
use std::process::Command;

use sluice_core::RunStatus;
use sluice_store::Store;

use support::clickhouse::{connection, sql};

type Error = Box<dyn std::error::Error>;

#[test]
fn dq_checks_passes_on_good_data_and_fails_with_a_report_on_bad_data() -> Result<(), Error> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = std::env::temp_dir().join(format!("sluice-clickhouse-dq-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("dags"))?;
    let built = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["plugins", "build"])
        .arg(repo.join("plugins/dq_checks"))
        .arg("--out")
        .arg(root.join("plugins"))
        .output()?;
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );

    let table = format!("dq_{}", std::process::id());
    sql(&format!("DROP TABLE IF EXISTS {table}"))?;
    sql(&format!(
        "CREATE TABLE {table} (window_start DateTime('UTC'), country Nullable(String), events UInt64) \
         ENGINE = MergeTree ORDER BY (window_start, events)"
    ))?;
    // 10:00 is clean; 10:15 has a duplicated country and a missing one.
    sql(&format!(
        "INSERT INTO {table} VALUES ('2025-09-01 10:00:00', 'DE', 5), ('2025-09-01 10:00:00', 'FR', 7), \
         ('2025-09-01 10:15:00', 'DE', 3), ('2025-09-01 10:15:00', 'DE', 4), ('2025-09-01 10:15:00', NULL, 1)"
    ))?;
    std::fs::write(
        root.join("dags/dq.yaml"),
        format!(
            r#"dag: dq
schedule: "*/15 * * * *"
start: 2025-09-01T10:00:00Z
tasks:
  validate:
    type: wasm
    plugin: dq_checks
    capabilities: {{ clickhouse: warehouse }}
    config:
      source:
        connection: warehouse
        query: "SELECT country, events FROM {table} WHERE window_start = toDateTime('{{{{ data_interval_start | strftime('%Y-%m-%d %H:%M:%S') }}}}', 'UTC')"
      checks:
        - row_count: {{ min: 1 }}
        - unique: {{ columns: [country] }}
        - {{ name: country_present, null_ratio: {{ column: country, max: 0 }} }}
        - range: {{ column: events, min: 1 }}
"#
        ),
    )?;
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--dags")
        .arg(root.join("dags"))
        .arg("--state")
        .arg(root.join("state"))
        .arg("--plugins")
        .arg(root.join("plugins"))
        .args([
            "backfill",
            "dq",
            "--from",
            "2025-09-01T10:00:00Z",
            "--to",
            "2025-09-01T10:30:00Z",
        ])
        .env("SLUICE_CONN_WAREHOUSE", connection())
        .output()?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "one interval has bad data: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let store = Store::open(&root.join("state"))?;
    let runs: Vec<_> = store.runs_of("dq").collect::<Result<_, _>>()?;
    assert_eq!(runs.len(), 2);
    let (good, bad) = (&runs[0], &runs[1]);
    assert_eq!(good.state.status, RunStatus::Success);
    let report = store
        .output("dq", good.state.logical_date, "validate")?
        .ok_or("no report")?;
    assert_eq!(report["passed"], true);
    assert_eq!(report["rows"], 2);

    assert_eq!(bad.state.status, RunStatus::Failed);
    let attempts = store.attempts_of_run("dq", bad.state.logical_date)?;
    assert_eq!(attempts.len(), 1, "a failed check is fatal: no retry");
    let error = attempts[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("2 of 4 data-quality checks failed: unique; country_present"),
        "{error}"
    );
    let log = std::fs::read_to_string(&attempts[0].log)?;
    assert!(
        log.contains("\"duplicates\"") && log.contains("\"DE\""),
        "{log}"
    );
    assert!(log.contains("\"ratio\""), "{log}");
    sql(&format!("DROP TABLE IF EXISTS {table}"))?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Before: `clickhouse_query` ran any statement with no time limit, on any connection a DAG
/// named. Now a plugin's queries are read-only on the server, time-limited, and only on
/// connections the operator opened to plugins (`plugins = true`).
#[test]
fn plugin_queries_are_read_only_and_only_on_connections_open_to_plugins()
-> Result<(), Box<dyn std::error::Error>> {
    use sluice_runtime::clickhouse::ClickhouseQueries;
    use sluice_runtime::connections::Connections;
    let runtime = tokio::runtime::Runtime::new()?;
    let server = |plugins: bool| serde_json::json!({"type": "clickhouse", "url": support::clickhouse::url(), "validation": false, "plugins": plugins});
    let queries = ClickhouseQueries::new(
        runtime.handle().clone(),
        Connections::new(std::collections::BTreeMap::from([
            ("open".to_owned(), server(true)),
            ("closed".to_owned(), server(false)),
        ])),
    );
    let rows = queries
        .rows("open", "SELECT 1 AS n")
        .map_err(|e| e.message)?;
    assert_eq!(rows, vec![serde_json::json!({"n": 1})]);
    let table = format!("plugin_write_{}", std::process::id());
    let write = queries.rows(
        "open",
        &format!("CREATE TABLE {table} (n UInt8) ENGINE = Memory"),
    );
    let refused = write.err().map(|e| e.message).unwrap_or_default();
    assert!(refused.to_lowercase().contains("readonly"), "{refused}");
    // Nor can it lift the time limit for itself.
    let unlimited = queries
        .rows("open", "SELECT 1 SETTINGS max_execution_time = 0")
        .err()
        .map(|e| e.message)
        .unwrap_or_default();
    assert!(unlimited.to_lowercase().contains("readonly"), "{unlimited}");
    let exists = sql(&format!("EXISTS TABLE {table}"))?;
    assert_eq!(exists.trim(), "0", "the plugin's CREATE ran");
    let closed = queries
        .rows("closed", "SELECT 1")
        .err()
        .map(|e| e.message)
        .unwrap_or_default();
    assert!(closed.contains("not open to plugins"), "{closed}");
    Ok(())
}
