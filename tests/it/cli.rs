//! The `sluice` command line, run in-process against the repository's DAGs and fixtures.

use crate::sluice;
use sluice_tests::{TempDir, fixture, repo_root};

fn path(relative: &str) -> String {
    repo_root().join(relative).display().to_string()
}

fn dags() -> String {
    path("dags")
}

#[test]
fn the_platform_and_quickstart_dags_are_valid() {
    let result = sluice(&["dags", "validate", &path("dags"), &path("examples")]);
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);
    assert!(
        result.stdout.contains("7 file(s): 7 valid, 0 invalid"),
        "{}",
        result.stdout
    );
}

#[test]
fn validate_exits_1_and_reports_json_diagnostics() {
    let result = sluice(&[
        "--output",
        "json",
        "dags",
        "validate",
        &fixture("invalid")
            .join("unknown_field.yaml")
            .display()
            .to_string(),
    ]);
    assert_eq!(result.code, 1);
    let report: serde_json::Value = serde_json::from_str(&result.stdout).unwrap_or_default();
    assert_eq!(report["invalid"], 1);
    let first = &report["diagnostics"][0];
    assert!(
        first["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("unknown_field.yaml"))
    );
    assert_eq!(first["line"], 7);
    assert_eq!(first["column"], 5);
    assert_eq!(first["message"], "unknown field `dependson` in task `load`");
}

#[test]
fn validate_prints_snippets_to_stderr_in_table_mode() {
    let result = sluice(&[
        "dags",
        "validate",
        &fixture("invalid").display().to_string(),
    ]);
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.contains("cycle_two_tasks.yaml:5:18"),
        "{}",
        result.stderr
    );
    assert!(result.stdout.contains("0 valid"), "{}", result.stdout);
}

#[test]
fn list_shows_every_dag_with_its_schedule() {
    let result = sluice(&["--dags", &dags(), "dags", "list"]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    for dag in [
        "events_aggregation_15m",
        "cross_layer_validation",
        "historical_backfill",
    ] {
        assert!(
            result.stdout.contains(dag),
            "{dag} missing from\n{}",
            result.stdout
        );
    }
    assert!(result.stdout.contains("*/15 * * * *"));
    let json = sluice(&["--dags", &dags(), "--output", "json", "dags", "list"]);
    let items: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap_or_default();
    assert_eq!(items.len(), 3);
}

#[test]
fn list_still_lists_good_dags_when_a_file_is_bad() -> std::io::Result<()> {
    let dir = TempDir::new("cli-list")?;
    dir.write("good.yaml", "dag: good\ntasks:\n  a: { type: noop }\n")?;
    dir.write("bad.yaml", "dag: bad\ntasks: [\n")?;
    let result = sluice(&["--dags", &dir.path().display().to_string(), "dags", "list"]);
    assert_eq!(result.code, 0);
    assert!(result.stdout.contains("good"));
    assert!(result.stderr.contains("1 file(s)"), "{}", result.stderr);
    // The broken file is a row of its own, marked, with where it broke.
    let bad = result
        .stdout
        .lines()
        .find(|l| l.starts_with("bad "))
        .unwrap_or_default();
    assert!(
        bad.contains("DOES NOT LOAD: ") && bad.contains("bad.yaml:3:1"),
        "{}",
        result.stdout
    );
    let json = sluice(&[
        "--dags",
        &dir.path().display().to_string(),
        "--output",
        "json",
        "dags",
        "list",
    ]);
    let items: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap_or_default();
    let marked: Vec<(&str, bool)> = items
        .iter()
        .map(|i| {
            (
                i["dag"].as_str().unwrap_or_default(),
                i["import_error"].is_string(),
            )
        })
        .collect();
    assert_eq!(
        marked,
        vec![("good", false), ("bad", true)],
        "{}",
        json.stdout
    );
    Ok(())
}

/// A read command in a folder holding no state says so, and creates nothing there.
#[test]
fn read_commands_never_create_state() -> std::io::Result<()> {
    let dir = TempDir::new("cli-nostate")?;
    let state = dir.path().join("typo");
    let state_arg = state.display().to_string();
    for args in [
        vec!["runs", "list", "hello_pipeline"],
        vec![
            "runs",
            "show",
            "hello_pipeline",
            "manual__2025-01-01T00:00:00Z",
        ],
        vec!["state", "check"],
    ] {
        let examples = path("examples/quickstart");
        let mut argv = vec!["--dags", examples.as_str(), "--state", &state_arg];
        argv.extend(args.iter().copied());
        let result = sluice(&argv);
        assert_eq!(result.code, 1, "{args:?}: {}", result.stderr);
        assert!(
            result.stderr.contains("no Sluice state in") && result.stderr.contains("--state"),
            "{args:?}: {}",
            result.stderr
        );
        assert!(!state.exists(), "{args:?} created {}", state.display());
    }
    Ok(())
}

/// `runs list` of a DAG the state never saw is an error that names the ones it did.
#[test]
fn runs_of_an_unknown_dag_are_an_error_not_an_empty_table() -> std::io::Result<()> {
    let dir = TempDir::new("cli-unknown-runs")?;
    dir.write(
        "hello.yaml",
        "dag: hello
schedule: \"@daily\"
start: 2025-01-01T00:00:00Z
tasks:
  a: { type: noop }
",
    )?;
    let dags = dir.path().display().to_string();
    let state = dir.path().join("state").display().to_string();
    let tested = sluice(&[
        "--dags",
        &dags,
        "--state",
        &state,
        "backfill",
        "hello",
        "--from",
        "2025-01-01T00:00:00Z",
        "--to",
        "2025-01-02T00:00:00Z",
    ]);
    assert_eq!(tested.code, 0, "{}", tested.stderr);
    let listed = sluice(&["--dags", &dags, "--state", &state, "runs", "list", "helo"]);
    assert_eq!(listed.code, 1, "{}", listed.stdout);
    assert!(
        listed.stderr.contains("no DAG `helo` in the state")
            && listed.stderr.contains("did you mean `hello`?"),
        "{}",
        listed.stderr
    );
    Ok(())
}

/// `tasks mark … --state success` is the habit of other tools; `--state` is the state
/// folder here: the command says how to write it instead of using a folder `success`.
#[test]
fn marking_with_a_state_flag_explains_the_argument() {
    let cwd_success = std::path::Path::new("success").exists();
    let result = sluice(&[
        "tasks",
        "mark",
        "hello",
        "manual__2025-01-01T00:00:00Z",
        "a",
        "--state",
        "success",
    ]);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains("`sluice tasks mark hello manual__2025-01-01T00:00:00Z a success`"),
        "{}",
        result.stderr
    );
    assert_eq!(
        std::path::Path::new("success").exists(),
        cwd_success,
        "no state folder `success` created"
    );
}

#[test]
fn show_prints_settings_tasks_in_dependency_order_and_graphs() {
    let text = sluice(&["--dags", &dags(), "dags", "show", "events_aggregation_15m"]);
    assert_eq!(text.code, 0, "{}", text.stderr);
    let order: Vec<usize> = ["aggregate", "load", "validate"]
        .iter()
        .filter_map(|t| text.stdout.find(&format!("\n{t} ")))
        .collect();
    assert_eq!(order.len(), 3, "{}", text.stdout);
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{}", text.stdout);
    assert!(
        text.stdout.contains("warn after 50m, deadline 1h40m"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("produces          warehouse.agg_15m (task load)"),
        "{}",
        text.stdout
    );
    let reader = sluice(&["--dags", &dags(), "dags", "show", "cross_layer_validation"]);
    assert!(
        reader.stdout.contains(
            "consumes          warehouse.agg_15m: within, on change rerun (at most 3 reruns)"
        ),
        "{}",
        reader.stdout
    );

    let mermaid = sluice(&[
        "--dags",
        &dags(),
        "dags",
        "show",
        "events_aggregation_15m",
        "--format",
        "mermaid",
    ]);
    assert!(mermaid.stdout.starts_with("graph LR\n"));
    assert!(mermaid.stdout.contains("aggregate --> load"));
    assert!(mermaid.stdout.contains("load --> validate"));

    let dot = sluice(&[
        "--dags",
        &dags(),
        "dags",
        "show",
        "events_aggregation_15m",
        "--format",
        "dot",
    ]);
    assert!(
        dot.stdout.contains("\"aggregate\" -> \"load\";"),
        "{}",
        dot.stdout
    );

    let json = sluice(&[
        "--dags",
        &dags(),
        "--output",
        "json",
        "dags",
        "show",
        "cross_layer_validation",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_default();
    assert_eq!(value["schedule"], "@hourly");
    assert_eq!(
        value["consumes"]["warehouse.agg_15m"]["intervals"],
        "within"
    );
    assert_eq!(value["tasks"]["record_result"]["trigger_rule"], "all_done");
    assert_eq!(value["tasks"]["compare"]["type"], "wasm");
}

#[test]
fn next_prints_intervals_as_start_end_lines_and_json() {
    let result = sluice(&[
        "--dags",
        &dags(),
        "dags",
        "next",
        "events_aggregation_15m",
        "--count",
        "3",
        "--after",
        "2025-09-01T10:07:00Z",
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(
        result.stdout,
        "2025-09-01T10:00:00Z 2025-09-01T10:15:00Z\n\
         2025-09-01T10:15:00Z 2025-09-01T10:30:00Z\n\
         2025-09-01T10:30:00Z 2025-09-01T10:45:00Z\n"
    );
    let json = sluice(&[
        "--dags",
        &dags(),
        "--output",
        "json",
        "dags",
        "next",
        "cross_layer_validation",
        "--count",
        "2",
        "--after",
        "2025-08-01T00:00:00Z",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_default();
    // Before `start`, the first interval is the one starting at `start`.
    assert_eq!(
        value,
        serde_json::json!([
            {"start": "2025-09-01T00:00:00Z", "end": "2025-09-01T01:00:00Z"},
            {"start": "2025-09-01T01:00:00Z", "end": "2025-09-01T02:00:00Z"}
        ])
    );
}

/// The quickstart's fan-out/fan-in: `cleanup` runs after `report`, as its comment says.
#[test]
fn the_quickstart_cleanup_runs_after_the_report() {
    let result = sluice(&[
        "--dags",
        &path("examples/quickstart"),
        "--output",
        "json",
        "dags",
        "test",
        "fan_out_fan_in",
        "--logical-date",
        "2025-09-01T10:00:00Z",
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let run: serde_json::Value = serde_json::from_str(&result.stdout).unwrap_or_default();
    let attempts = run["attempts"].as_array().cloned().unwrap_or_default();
    let time = |task: &str, field: &str| {
        attempts
            .iter()
            .find(|a| a["task"] == task)
            .and_then(|a| a[field].as_str())
            .and_then(|t| t.parse::<chrono::DateTime<chrono::Utc>>().ok())
    };
    let report_ended = time("report", "ended_at");
    let cleanup_started = time("cleanup", "started_at");
    assert!(
        report_ended.is_some() && cleanup_started >= report_ended,
        "report ended {report_ended:?}, cleanup started {cleanup_started:?}: {}",
        result.stdout
    );
}

#[test]
fn next_uses_the_dag_time_zone() {
    let examples = path("examples/quickstart");
    let result = sluice(&[
        "--dags",
        &examples,
        "dags",
        "next",
        "fan_out_fan_in",
        "--count",
        "2",
        "--after",
        "2025-10-26T00:30:00Z",
    ]);
    // Europe/Berlin falls back at 01:00Z: 02:00 CEST and 02:00 CET are both hourly fire times.
    assert_eq!(
        result.stdout,
        "2025-10-26T00:00:00Z 2025-10-26T01:00:00Z\n2025-10-26T01:00:00Z 2025-10-26T02:00:00Z\n"
    );
}

#[test]
fn render_shows_fields_after_templating() {
    let result = sluice(&[
        "--dags",
        &dags(),
        "dags",
        "render",
        "events_aggregation_15m",
        "load",
        "--logical-date",
        "2025-09-01T10:15:00Z",
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result
            .stdout
            .contains("# data interval 2025-09-01T10:15:00Z 2025-09-01T10:30:00Z")
    );
    assert!(
        result
            .stdout
            .contains("toDateTime('2025-09-01 10:15:00', 'UTC')"),
        "{}",
        result.stdout
    );
    assert!(
        result
            .stdout
            .contains("window_start=20250901T1015/*.parquet"),
        "{}",
        result.stdout
    );

    let json = sluice(&[
        "--dags",
        &dags(),
        "--output",
        "json",
        "dags",
        "render",
        "events_aggregation_15m",
        "aggregate",
        "--logical-date",
        "2025-09-01T10:15:00Z",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_default();
    assert_eq!(value["run_id"], "scheduled__2025-09-01T10:15:00Z");
    assert_eq!(value["fields"]["args[9]"], "country,device,event_type");
    assert_eq!(
        value["fields"]["conf.spark.app.name"],
        "agg15m-20250901T101500"
    );
}

/// The reconciliation's reprocessing: on by default (zero data loss without an operator;
/// a run's conf may turn it off), started only by the check's verdict, with the checked
/// hour as its range.
#[test]
fn the_reconciliation_reprocesses_the_checked_hour_on_a_mismatch_by_default() {
    let render = |verdict: &str| {
        let result = sluice(&[
            "--dags",
            &dags(),
            "--output",
            "json",
            "dags",
            "render",
            "cross_layer_validation",
            "reprocess_mismatches",
            "--logical-date",
            "2025-09-01T10:00:00Z",
            "--upstream-output",
            &format!("batch_holds_the_stream={verdict}"),
        ]);
        assert_eq!(result.code, 0, "{}", result.stderr);
        serde_json::from_str::<serde_json::Value>(&result.stdout).unwrap_or_default()
    };
    let value = render(r#"{"passed": false}"#);
    assert_eq!(value["fields"]["target"], "historical_backfill");
    assert_eq!(value["fields"]["from"], "2025-09-01T10:00:00Z");
    assert_eq!(value["fields"]["to"], "2025-09-01T11:00:00Z");
    assert_eq!(value["fields"]["enabled"], "True");
    assert_eq!(render(r#"{"passed": true}"#)["fields"]["enabled"], "False");
}

#[test]
fn render_refuses_a_date_off_the_schedule_and_names_the_interval() {
    let result = sluice(&[
        "--dags",
        &dags(),
        "dags",
        "render",
        "events_aggregation_15m",
        "load",
        "--logical-date",
        "2025-09-01T10:20:00Z",
    ]);
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.contains("not the start of an interval"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("starts at 2025-09-01T10:15:00Z"),
        "{}",
        result.stderr
    );
}

#[test]
fn render_takes_upstream_outputs() -> std::io::Result<()> {
    let dir = TempDir::new("cli-render")?;
    dir.write(
        "outputs.yaml",
        "dag: outputs\ntasks:\n  count:\n    type: noop\n  report:\n    type: command\n    depends_on: [count]\n    command: \"echo {{ outputs.count.rows }} rows\"\n",
    )?;
    let dags = dir.path().display().to_string();
    let missing = sluice(&[
        "--dags",
        &dags,
        "dags",
        "render",
        "outputs",
        "report",
        "--logical-date",
        "2025-09-01T00:00:00Z",
    ]);
    assert_eq!(missing.code, 1);
    assert!(
        missing.stderr.contains("--upstream-output"),
        "{}",
        missing.stderr
    );
    let given = sluice(&[
        "--dags",
        &dags,
        "dags",
        "render",
        "outputs",
        "report",
        "--logical-date",
        "2025-09-01T00:00:00Z",
        "--upstream-output",
        "count={\"rows\": 42}",
    ]);
    assert_eq!(given.code, 0, "{}", given.stderr);
    assert!(
        given.stdout.contains("command: echo 42 rows"),
        "{}",
        given.stdout
    );
    Ok(())
}

#[test]
fn unknown_dags_and_tasks_get_suggestions() {
    let dag = sluice(&["--dags", &dags(), "dags", "show", "events_aggregation_15"]);
    assert_eq!(dag.code, 1);
    assert!(
        dag.stderr
            .contains("did you mean `events_aggregation_15m`?"),
        "{}",
        dag.stderr
    );
    let task = sluice(&[
        "--dags",
        &dags(),
        "dags",
        "render",
        "events_aggregation_15m",
        "lod",
        "--logical-date",
        "2025-09-01T00:00:00Z",
    ]);
    assert_eq!(task.code, 1);
    assert!(
        task.stderr.contains("did you mean `load`?"),
        "{}",
        task.stderr
    );
}

#[test]
fn an_invalid_dag_is_explained_rather_than_not_found() -> std::io::Result<()> {
    let dir = TempDir::new("cli-invalid")?;
    dir.write(
        "broken.yaml",
        "dag: broken\ntasks:\n  a: { type: noop, retries: many }\n",
    )?;
    let result = sluice(&[
        "--dags",
        &dir.path().display().to_string(),
        "dags",
        "show",
        "broken",
    ]);
    assert_eq!(result.code, 1);
    assert!(
        result.stderr.contains("broken.yaml:3:29"),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains("DAG `broken` is invalid"),
        "{}",
        result.stderr
    );
    Ok(())
}

#[test]
fn schema_and_completions_print() {
    let schema = sluice(&["schema"]);
    assert_eq!(schema.code, 0);
    let value: serde_json::Value = serde_json::from_str(&schema.stdout).unwrap_or_default();
    assert_eq!(value["title"], "Sluice DAG");
    let bash = sluice(&["completions", "bash"]);
    assert_eq!(bash.code, 0);
    assert!(
        bash.stdout.contains("_sluice()"),
        "{}",
        &bash.stdout[..bash.stdout.len().min(200)]
    );
}

#[test]
fn usage_errors_exit_2_and_help_exits_0() {
    let bad = sluice(&["dags", "frobnicate"]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("frobnicate"));
    let help = sluice(&["dags", "next", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.stdout.contains("--after"));
}

/// `runs list` and `runs show` tables give times to the second, and a list cut by
/// `--limit` says how many there are and how to see them all.
#[test]
fn run_tables_page_with_a_hint_and_show_times_to_the_second() -> std::io::Result<()> {
    let dir = TempDir::new("cli-paging")?;
    dir.write(
        "hourly.yaml",
        "dag: hourly
schedule: \"@hourly\"
start: 2025-01-01T00:00:00Z
tasks:
  a: { type: command, command: \"true\" }
",
    )?;
    let dags = dir.path().display().to_string();
    let state = dir.path().join("state").display().to_string();
    let backfilled = sluice(&[
        "--dags",
        &dags,
        "--state",
        &state,
        "backfill",
        "hourly",
        "--from",
        "2025-01-01T00:00:00Z",
        "--to",
        "2025-01-01T05:00:00Z",
    ]);
    assert_eq!(backfilled.code, 0, "{}", backfilled.stderr);
    let base = ["--dags", dags.as_str(), "--state", state.as_str()];
    let listed = sluice(&[&base[..], &["runs", "list", "hourly", "--limit", "2"]].concat());
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rows: Vec<&str> = listed.stdout.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{}", listed.stdout);
    assert!(
        rows[0].starts_with("backfill__2025-01-01T04:00:00Z"),
        "{}",
        listed.stdout
    );
    assert!(
        listed.stderr.contains("the newest 2 of 5 run(s)")
            && listed.stderr.contains("`--limit 5` lists them all"),
        "{}",
        listed.stderr
    );
    // ENDED, the last column, is to the second: no fraction.
    let ended = rows[0].split_whitespace().last().unwrap_or_default();
    assert!(
        ended.len() == "2025-01-01T00:00:00Z".len() && ended.ends_with('Z') && !ended.contains('.'),
        "{ended}"
    );
    let all = sluice(&[&base[..], &["runs", "list", "hourly", "--limit", "5"]].concat());
    assert!(!all.stderr.contains("the newest"), "{}", all.stderr);
    let shown = sluice(
        &[
            &base[..],
            &["runs", "show", "hourly", "backfill__2025-01-01T04:00:00Z"],
        ]
        .concat(),
    );
    assert_eq!(shown.code, 0, "{}", shown.stderr);
    let attempt = shown
        .stdout
        .lines()
        .find(|l| l.starts_with("a "))
        .unwrap_or_default();
    assert!(
        attempt
            .split_whitespace()
            .filter(|w| w.ends_with('Z'))
            .count()
            == 2
            && !attempt.contains(".0")
            && !attempt.contains('.'),
        "{}",
        shown.stdout
    );
    Ok(())
}
