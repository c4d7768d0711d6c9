//! `type: sensor` against a live ClickHouse (scripts/services/clickhouse), run by the real
//! `sluice` binary: one attempt pokes until the condition holds (pokes are not tries), a
//! query that cannot run fails at once with the retries left unused, and the task's
//! `timeout` bounds the wait.

use sluice_tests as support;

use std::process::Output;
use std::time::Duration;

use sluice_store::{AttemptResult, Store};
use support::TempDir;
use support::clickhouse::{connection, sql};
use support::commands::{sluice_on, text};

type Error = Box<dyn std::error::Error>;

const DATE: &str = "2025-09-01T00:00:00Z";

fn sensor_dag(dag: &str, sql_text: &str, extra: &str) -> String {
    format!(
        r#"dag: {dag}
schedule: "@hourly"
start: 2025-09-01T00:00:00Z
tasks:
  wait:
    type: sensor
    connection: warehouse
    poke_interval: 1s
    retries: 3
    retry_delay: 1s
    sql: "{sql_text}"
{extra}  after:
    type: noop
    depends_on: [wait]
"#
    )
}

fn backfill(dir: &TempDir, dag: &str) -> Result<Output, Error> {
    Ok(
        sluice_on(&dir.path().join("dags"), &dir.path().join("state"))
            .args([
                "backfill",
                dag,
                "--from",
                DATE,
                "--to",
                "2025-09-01T01:00:00Z",
            ])
            .env("SLUICE_CONN_WAREHOUSE", connection())
            .output()?,
    )
}

#[test]
fn one_attempt_pokes_until_the_condition_holds() -> Result<(), Error> {
    let table = format!("sensor_ready_{}", std::process::id());
    sql(&format!("DROP TABLE IF EXISTS {table}"))?;
    sql(&format!("CREATE TABLE {table} (n UInt8) ENGINE = Memory"))?;
    let dir = TempDir::new("sensor-ready")?;
    dir.write(
        "dags/ready.yaml",
        sensor_dag("ready", &format!("SELECT count() > 0 FROM {table}"), ""),
    )?;
    let writer = {
        let table = table.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            sql(&format!("INSERT INTO {table} VALUES (1)")).map_err(|e| e.to_string())
        })
    };
    let out = backfill(&dir, "ready")?;
    writer.join().map_err(|_| "writer panicked")??;
    assert!(out.status.success(), "{}", text(&out));
    let store = Store::open(&dir.path().join("state"))?;
    let attempts = store.attempts_of_run("ready", DATE.parse()?)?;
    let waits: Vec<_> = attempts.iter().filter(|a| a.task == "wait").collect();
    assert_eq!(waits.len(), 1, "pokes are not tries: {waits:?}");
    assert_eq!(waits[0].result, Some(AttemptResult::Success));
    let output = store
        .output("ready", DATE.parse()?, "wait")?
        .ok_or("no output")?;
    let pokes = output["pokes"].as_u64().ok_or("no poke count")?;
    assert!(
        pokes >= 2,
        "the condition held only after a few pokes: {output}"
    );
    let log = std::fs::read_to_string(&waits[0].log)?;
    assert!(log.contains("poke 1: not yet"), "{log}");
    assert!(log.contains(&format!("poke {pokes}: ready")), "{log}");
    sql(&format!("DROP TABLE {table}"))?;
    Ok(())
}

#[test]
fn a_query_that_cannot_run_fails_at_once_without_using_the_retries() -> Result<(), Error> {
    let dir = TempDir::new("sensor-broken")?;
    dir.write(
        "dags/broken.yaml",
        sensor_dag("broken", "SELECT count() FROM no_such_table_anywhere", ""),
    )?;
    let out = backfill(&dir, "broken")?;
    assert!(!out.status.success(), "{}", text(&out));
    let store = Store::open(&dir.path().join("state"))?;
    let attempts = store.attempts_of_run("broken", DATE.parse()?)?;
    let waits: Vec<_> = attempts.iter().filter(|a| a.task == "wait").collect();
    assert_eq!(waits.len(), 1, "a fatal poke uses no retry: {waits:?}");
    let error = waits[0].error.clone().unwrap_or_default();
    assert!(error.contains("poke 1 failed"), "{error}");
    Ok(())
}

#[test]
fn the_task_timeout_bounds_the_wait_and_counts_the_pokes() -> Result<(), Error> {
    let dir = TempDir::new("sensor-timeout")?;
    let mut dag = sensor_dag("never", "SELECT 0", "");
    dag = dag.replace("    retries: 3\n", "    retries: 0\n    timeout: 3s\n");
    dir.write("dags/never.yaml", dag)?;
    let out = backfill(&dir, "never")?;
    assert!(!out.status.success(), "{}", text(&out));
    let store = Store::open(&dir.path().join("state"))?;
    let attempts = store.attempts_of_run("never", DATE.parse()?)?;
    let error = attempts
        .iter()
        .find(|a| a.task == "wait")
        .and_then(|a| a.error.clone())
        .unwrap_or_default();
    assert!(error.contains("not ready after"), "{error}");
    assert!(error.contains("poke(s) in 3s"), "{error}");
    Ok(())
}
