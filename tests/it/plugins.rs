//! First-party plugins built from source (the SDK, `dq_checks`, the example plugin, the C
//! plugin) with `sluice plugins build`, then run by the real executor in DAG runs.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::sluice;
use sluice_core::RunStatus;
use sluice_runtime::executor::wasm::{
    Grants, HostCallError, Invocation, Limits, Plugin, QueryService, RunnerConfig, WasmRunner,
};
use sluice_store::Store;
use sluice_tests::{TempDir, repo_root};

/// Builds every plugin once for this test binary; returns the folder of `.wasm` files.
fn plugins() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let out = std::env::temp_dir().join(format!("sluice-built-plugins-{}", std::process::id()));
        let root = repo_root();
        let path = |p: &str| root.join(p).display().to_string();
        let result = sluice(&[
            "plugins",
            "build",
            &path("plugins"),
            &path("examples/hello_plugin"),
            "--out",
            &out.display().to_string(),
        ]);
        if result.code != 0 {
            return Err(format!(
                "plugins build failed (scripts/install-wasm-toolchain installs the toolchains):\n{}{}",
                result.stdout, result.stderr
            ));
        }
        Ok(out)
    });
    match built {
        Ok(dir) => dir.clone(),
        Err(e) => panic!("{e}"),
    }
}

fn wasm(name: &str) -> Plugin {
    let path = plugins().join(format!("{name}.wasm"));
    Plugin::new(std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

const PIPELINE: &str = r#"
dag: plugin_pipeline
schedule: "*/15 * * * *"
start: 2025-09-01T10:00:00Z
max_active_runs: 1
tasks:
  produce:
    type: wasm
    plugin: c
    config:
      rows:
        - { country: DE, events: 3, at: "{{ data_interval_start }}" }
        - { country: FR, events: 4, at: "{{ data_interval_end }}" }
  dq:
    type: wasm
    plugin: dq_checks
    depends_on: [produce]
    config:
      source: { output: produce, path: config.rows }
      checks:
        - row_count: { min: 2, max: 2 }
        - unique: { columns: [country] }
        - null_ratio: { column: country, max: 0 }
        - range: { column: events, min: 0, max: 1000 }
        - freshness: { column: at, max_age: 15m }
  hello:
    type: wasm
    plugin: hello_plugin
    depends_on: [dq]
    capabilities: { kv: true }
    config: { name: "{{ dag_id }}" }
  count:
    type: wasm
    plugin: run_counter
    depends_on: [dq]
    capabilities: { kv: true }
"#;

#[test]
fn sdk_plugins_and_the_c_plugin_run_in_scheduled_dag_runs() -> Result<(), Box<dyn std::error::Error>>
{
    let plugins = plugins();
    // `tests/plugins/c` is one C plugin folder of many files: build the echo plugin alone
    // under a name the DAG uses.
    let echo = TempDir::new("echo-plugin")?;
    std::fs::copy(
        repo_root().join("tests/plugins/c/echo_context.c"),
        echo.path().join("main.c"),
    )?;
    let built = sluice(&[
        "plugins",
        "build",
        &echo.path().display().to_string(),
        "--out",
        &plugins.display().to_string(),
    ]);
    assert_eq!(built.code, 0, "{}", built.stderr);
    let echo_name = echo
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();

    let dir = TempDir::new("plugin-pipeline")?;
    dir.write(
        "dags/plugin_pipeline.yaml",
        PIPELINE.replace("plugin: c\n", &format!("plugin: {echo_name}\n")),
    )?;
    let (dags, state) = (dir.path().join("dags"), dir.path().join("state"));
    let common = [
        "--dags".to_owned(),
        dags.display().to_string(),
        "--state".to_owned(),
        state.display().to_string(),
        "--plugins".to_owned(),
        plugins.display().to_string(),
    ];
    let mut args: Vec<&str> = common.iter().map(String::as_str).collect();
    args.extend([
        "backfill",
        "plugin_pipeline",
        "--from",
        "2025-09-01T10:00:00Z",
        "--to",
        "2025-09-01T11:00:00Z",
    ]);
    let result = sluice(&args);
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);

    let store = Store::open(&state)?;
    let runs: Vec<_> = store.runs_of("plugin_pipeline").collect::<Result<_, _>>()?;
    assert_eq!(runs.len(), 4);
    let mut counts = Vec::new();
    for run in &runs {
        assert_eq!(
            run.state.status,
            RunStatus::Success,
            "{:?}",
            run.state.tasks
        );
        let at = run.state.logical_date;
        let report = store
            .output("plugin_pipeline", at, "dq")?
            .ok_or("no dq report")?;
        assert_eq!(report["passed"], true);
        assert_eq!(report["rows"], 2);
        assert_eq!(report["checks"].as_array().map(Vec::len), Some(5));
        let hello = store
            .output("plugin_pipeline", at, "hello")?
            .ok_or("no hello output")?;
        let message = hello["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with("hello, plugin_pipeline: interval 2025-09-01T1"),
            "{message}"
        );
        let count = store
            .output("plugin_pipeline", at, "count")?
            .ok_or("no count output")?;
        counts.push((hello["runs_seen"].as_u64(), count["runs"].as_u64()));
        // The host `log` lines land in the attempt log with their level.
        let attempts = store.attempts_of_run("plugin_pipeline", at)?;
        let hello_attempt = attempts
            .iter()
            .find(|a| a.task == "hello")
            .ok_or("no hello attempt")?;
        let log = std::fs::read_to_string(&hello_attempt.log)?;
        assert!(log.contains("[INFO] run "), "{log}");
        assert!(
            hello_attempt
                .handle
                .as_deref()
                .is_some_and(|h| h.starts_with("sha256 "))
        );
    }
    // The key-value store keeps its values from run to run (one run at a time).
    assert_eq!(
        counts,
        vec![
            (Some(1), Some(1)),
            (Some(2), Some(2)),
            (Some(3), Some(3)),
            (Some(4), Some(4))
        ]
    );
    // The scheduler cached the compiled modules under the state folder.
    let cached = std::fs::read_dir(state.join("plugin-cache"))?.count();
    assert_eq!(cached, 4, "one compiled module per plugin");
    Ok(())
}

#[test]
fn a_failed_data_quality_check_fails_the_task_fatally_with_the_report_in_the_log()
-> Result<(), Box<dyn std::error::Error>> {
    let dq = wasm("dq_checks");
    let context = serde_json::json!({
        "dag": "d", "run_id": "r", "task": "dq", "try_number": 1,
        "logical_date": "2025-09-01T10:00:00Z",
        "data_interval": {"start": "2025-09-01T10:00:00Z", "end": "2025-09-01T10:15:00Z"},
        "outputs": {"agg": [{"country": "DE", "events": 3}, {"country": "DE", "events": -4}]},
        "config": {"source": {"output": "agg"}, "checks": [
            {"unique": {"columns": ["country"]}},
            {"name": "events_non_negative", "range": {"column": "events", "min": 0}},
            {"row_count": {"min": 1}}
        ]}
    });
    let result = WasmRunner::new()?.invoke(
        &dq,
        Invocation::of_context(&context, Limits::default(), Grants::default()),
    );
    match &result.outcome {
        sluice_core::Outcome::Failed { retryable, reason } => {
            assert!(!retryable);
            assert!(
                reason.contains("2 of 3 data-quality checks failed: unique; events_non_negative"),
                "{reason}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
    assert!(
        result.stderr.contains("\"duplicates\""),
        "{}",
        result.stderr
    );
    assert!(result.stderr.contains("\"outside\""), "{}", result.stderr);
    Ok(())
}

/// Stands in for the ClickHouse client (the ClickHouse issue brings the real one), to show
/// the capability-bound host call: rows for the granted connection only.
struct Warehouse;

impl QueryService for Warehouse {
    fn query(&self, connection: &str, sql: &str) -> Result<Vec<serde_json::Value>, HostCallError> {
        match sql {
            "SELECT stream" => Ok(vec![
                serde_json::json!({"minute": "10:00", "events": "100"}),
                serde_json::json!({"minute": "10:01", "events": 50}),
            ]),
            "SELECT batch" => Ok(vec![
                serde_json::json!({"minute": "10:00", "events": 100}),
                serde_json::json!({"minute": "10:01", "events": 51}),
            ]),
            _ => Err(HostCallError {
                message: format!("{connection}: unreachable"),
                retryable: true,
            }),
        }
    }
}

#[test]
fn dq_checks_reconciles_two_clickhouse_queries_through_the_granted_connection()
-> Result<(), Box<dyn std::error::Error>> {
    let dq = wasm("dq_checks");
    let runner = WasmRunner::with_config(RunnerConfig {
        queries: Some(Arc::new(Warehouse)),
        ..RunnerConfig::default()
    })?;
    let context = |tolerance: f64, connection: &str, sql: &str| {
        serde_json::json!({
            "dag": "d", "run_id": "r", "task": "reconcile", "try_number": 1,
            "logical_date": "2025-09-01T10:00:00Z",
            "data_interval": {"start": "2025-09-01T10:00:00Z", "end": "2025-09-01T10:15:00Z"},
            "config": {"source": {"query": sql, "connection": connection}, "checks": [
                {"compare": {"with": {"query": "SELECT batch", "connection": connection},
                             "key": ["minute"], "values": ["events"], "tolerance": tolerance}}
            ]}
        })
    };
    let grants = Grants {
        clickhouse: Some("warehouse".into()),
        ..Grants::default()
    };
    let call = |tolerance, connection, sql| {
        runner.invoke(
            &dq,
            Invocation::of_context(
                &context(tolerance, connection, sql),
                Limits::default(),
                grants.clone(),
            ),
        )
    };

    let within = call(0.05, "warehouse", "SELECT stream");
    assert_eq!(
        within.outcome,
        sluice_core::Outcome::Success,
        "{}",
        within.stderr
    );
    assert_eq!(
        within.output.as_ref().map(|o| o["passed"].clone()),
        Some(serde_json::json!(true))
    );

    let exact = call(0.0, "warehouse", "SELECT stream");
    assert!(matches!(
        exact.outcome,
        sluice_core::Outcome::Failed {
            retryable: false,
            ..
        }
    ));
    assert!(exact.stderr.contains("\"mismatches\""), "{}", exact.stderr);

    // A connection the task does not grant is refused by the host.
    let other = call(0.05, "billing", "SELECT stream");
    assert!(
        matches!(&other.outcome, sluice_core::Outcome::Failed { retryable: false, reason } if reason.contains("grants the ClickHouse connection `warehouse`, not `billing`")),
        "{:?}",
        other.outcome
    );

    // The service's retryable error reaches the plugin, which asks for a retry.
    let down = call(0.05, "warehouse", "SELECT broken");
    assert!(
        matches!(&down.outcome, sluice_core::Outcome::Failed { retryable: true, reason } if reason.contains("unreachable")),
        "{:?}",
        down.outcome
    );

    // Without the grant, the optional capability's call answers "not granted".
    let ungranted = WasmRunner::new()?.invoke(
        &dq,
        Invocation::of_context(
            &context(0.05, "warehouse", "SELECT stream"),
            Limits::default(),
            Grants::default(),
        ),
    );
    assert!(
        matches!(&ungranted.outcome, sluice_core::Outcome::Failed { reason, .. } if reason.contains("does not grant the `clickhouse` capability")),
        "{:?}",
        ungranted.outcome
    );
    Ok(())
}

#[test]
fn the_kv_store_is_scoped_to_the_dag() -> Result<(), Box<dyn std::error::Error>> {
    let counter = wasm("run_counter");
    let dir = TempDir::new("kv-scope")?;
    let store = Store::open(dir.path())?;
    let runner = WasmRunner::with_config(RunnerConfig {
        kv: Some(std::sync::Arc::new(store.kv())),
        ..RunnerConfig::default()
    })?;
    let kv = Grants {
        kv: true,
        ..Grants::default()
    };
    let run = |dag: &str| {
        let result = runner.invoke(
            &counter,
            Invocation::of_context(
                &serde_json::json!({"dag": dag}),
                Limits::default(),
                kv.clone(),
            ),
        );
        result.output.and_then(|o| o["runs"].as_u64())
    };
    assert_eq!(
        [run("a"), run("a"), run("b"), run("a")],
        [Some(1), Some(2), Some(1), Some(3)]
    );
    assert_eq!(
        store.kv().get("a", "run_counter.runs")?,
        Some(b"3".to_vec())
    );
    Ok(())
}

#[test]
fn plugins_run_prints_the_outcome_class_and_exits_like_an_attempt()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = TempDir::new("plugins-run")?;
    let context = dir.write("ctx.json", r#"{"dag": "d", "task": "t", "try_number": 1, "run_id": "r", "logical_date": "2025-09-01T10:00:00Z", "data_interval": {"start": "2025-09-01T10:00:00Z", "end": "2025-09-01T10:15:00Z"}, "config": {"name": "Ada"}}"#)?;
    let hello = plugins().join("hello_plugin.wasm").display().to_string();
    let context = context.display().to_string();
    let denied = sluice(&["plugins", "run", &hello, "--context", &context]);
    assert_eq!(denied.code, 1);
    assert!(
        denied.stdout.contains(
            "fatal: the plugin imports `sluice::kv_get`, which needs the `kv` capability"
        ),
        "{}",
        denied.stdout
    );
    let granted = sluice(&[
        "plugins",
        "run",
        &hello,
        "--context",
        &context,
        "--grant",
        "kv",
    ]);
    assert_eq!(granted.code, 0, "{}{}", granted.stdout, granted.stderr);
    assert!(
        granted.stdout.starts_with("success\n"),
        "{}",
        granted.stdout
    );
    assert!(
        granted
            .stdout
            .contains("hello, Ada: interval 2025-09-01T10:00:00Z to 2025-09-01T10:15:00Z"),
        "{}",
        granted.stdout
    );
    let inspect = sluice(&[
        "plugins",
        "inspect",
        &plugins().join("dq_checks.wasm").display().to_string(),
    ]);
    assert!(
        inspect.stdout.contains("optional      clickhouse"),
        "{}",
        inspect.stdout
    );
    Ok(())
}
