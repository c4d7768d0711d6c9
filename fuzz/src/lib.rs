//! What each fuzz target checks, shared by the libFuzzer binaries (`fuzz_targets/`) and by
//! the regression test that replays the seed corpus and every input a fuzzer once crashed
//! on (`tests/replay.rs`).
//!
//! Every check feeds one input surface the bytes as they would arrive and asserts the
//! surface's contract: no panic, no unbounded work, and an error that says where and what.

use std::path::Path;
use std::sync::OnceLock;

use chrono::{DateTime, TimeZone as _, Utc};

/// A target's check: panics on a broken contract.
pub type Check = fn(&[u8]);

/// The targets, named as their binaries and their corpus folders.
pub const TARGETS: &[(&str, Check)] = &[
    ("dag_yaml", dag_yaml),
    ("template_render", template_render),
    ("plugin_output", plugin_output),
    ("api_requests", api_requests),
    ("durations_and_cron", durations_and_cron),
    ("config_toml", config_toml),
];

/// A DAG file: parsed and validated; a rejected file's report names a line and column
/// inside the text and renders.
pub fn dag_yaml(data: &[u8]) {
    let path = Path::new("fuzzed.yaml");
    match sluice_model::spec::load::load_bytes(path, data.to_vec()) {
        Ok(loaded) => {
            // A valid DAG plans and schedules without panicking.
            let plan = sluice_core::DagPlan::new(&loaded.dag);
            assert_eq!(plan.tasks.len(), loaded.dag.tasks.len());
            if let Some(schedule) = &loaded.dag.schedule {
                let tz = loaded.dag.timezone.tz();
                let _ = schedule.intervals(tz, epoch()).take(3).count();
            }
        }
        Err(report) => {
            assert!(report.has_errors(), "rejected without an error");
            let lines = report.source.text().lines().count().max(1);
            for diagnostic in &report.diagnostics {
                if let Some(label) = &diagnostic.primary {
                    assert!(label.location.line >= 1 && label.location.line <= lines + 1);
                    assert!(label.location.column >= 1);
                }
            }
            assert!(!report.render(false).is_empty());
        }
    }
}

/// A templated task field: rendered against a run's context; errors, never panics, and the
/// work of one render is bounded (fuel and output size).
pub fn template_render(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let _ = sluice_model::template::referenced_names(source);
    if let Ok(text) = renderer(serde_json::Value::Null).render(source) {
        assert!(text.len() <= sluice_model::template::MAX_RENDERED_BYTES);
    }
}

/// A plugin's stdout: accepted as its task output only when it is JSON, then usable by a
/// downstream task's templates and storable.
pub fn plugin_output(data: &[u8]) {
    let Ok(Some(output)) = sluice_runtime::executor::wasm::runner::parse_output(data) else {
        return;
    };
    let renderer = renderer(output.clone());
    for template in [
        "{{ outputs.upstream }}",
        "{{ outputs.upstream | tojson }}",
        "{% for k in outputs.upstream %}{{ k }}{% endfor %}",
        "{{ outputs.upstream.rows | default(0) }}",
    ] {
        let _ = renderer.render(template);
    }
    let stored = serde_json::to_vec(&output).unwrap_or_default();
    let back: serde_json::Value =
        serde_json::from_slice(&stored).unwrap_or(serde_json::Value::Null);
    assert_eq!(back, output, "the output does not survive the store");
}

/// Durations, sizes, instants, time zones and cron expressions as DAG files write them; a
/// schedule that parses yields its next intervals in order, in bounded time.
pub fn durations_and_cron(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(2, '\n');
    let first = parts.next().unwrap_or_default();
    let second = parts.next().unwrap_or_default();
    let _ = first.parse::<sluice_model::spec::duration::Duration>();
    let _ = first.parse::<sluice_model::spec::size::ByteSize>();
    let _ = sluice_model::spec::instant::parse_instant(first, chrono_tz::UTC);
    let tz = sluice_model::spec::timezone::TimeZone::parse(second.trim())
        .map(|tz| tz.tz())
        .unwrap_or(chrono_tz::UTC);
    let Ok(schedule) = sluice_model::schedule::Schedule::parse(first) else {
        return;
    };
    let mut previous: Option<DateTime<Utc>> = None;
    for interval in schedule.intervals(tz, epoch()).take(4) {
        assert!(interval.start < interval.end, "{first}: {interval:?}");
        if let Some(previous) = previous {
            assert!(
                interval.start >= previous,
                "{first}: intervals out of order"
            );
        }
        previous = Some(interval.end);
    }
    if let Some(fire) = schedule.next_fire(tz, epoch()) {
        assert!(fire > epoch());
    }
}

/// `sluice.toml`: parsed and checked; rejected text gets a located report.
pub fn config_toml(data: &[u8]) {
    let Ok(text) = String::from_utf8(data.to_vec()) else {
        return;
    };
    let (_, report) =
        sluice_runtime::config::file::parse_text(Path::new("fuzzed/sluice.toml"), text);
    let _ = report.render(false);
}

/// One request to the HTTP API: `METHOD_BYTE path?query \n body`. The API answers every
/// one with a status and a JSON error body, never a 500 or a panic; changes reach no
/// scheduler here (its loop has stopped), so valid ones are answered 503.
pub fn api_requests(data: &[u8]) {
    use tower::ServiceExt as _;
    let Some((&method, rest)) = data.split_first() else {
        return;
    };
    let method = match method % 4 {
        0 => axum::http::Method::GET,
        1 => axum::http::Method::POST,
        2 => axum::http::Method::PATCH,
        _ => axum::http::Method::DELETE,
    };
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (target, body) = rest.split_at(split);
    let body = body.get(1..).unwrap_or_default().to_vec();
    let Ok(target) = std::str::from_utf8(target) else {
        return;
    };
    let Ok(request) = axum::http::Request::builder()
        .method(method)
        .uri(format!("/api/v1/{target}"))
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body))
    else {
        return;
    };
    let (runtime, api) = api_fixture();
    let router = sluice_server::router(api.clone());
    let Ok(response) = runtime.block_on(router.oneshot(request));
    let status = response.status();
    assert!(
        !status.is_server_error() || status == axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "{status} for /api/v1/{target}"
    );
}

/// An API over a store holding one DAG (`fuzzed`, scheduled every 15 minutes), on a
/// runtime of its own; built once per fuzzing process.
fn api_fixture() -> &'static (tokio::runtime::Runtime, sluice_server::api::Api) {
    static FIXTURE: OnceLock<(tokio::runtime::Runtime, sluice_server::api::Api)> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("no runtime: {e}"));
        let dir = std::env::temp_dir().join(format!("sluice-fuzz-api-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = sluice_store::Store::open(&dir).unwrap_or_else(|e| panic!("store: {e}"));
        let loaded =
            sluice_model::spec::load::load_bytes(Path::new("fuzzed.yaml"), FIXTURE_DAG.into())
                .unwrap_or_else(|r| panic!("fixture DAG: {}", r.render(false)));
        store
            .put_version(&loaded.dag, "v1")
            .and_then(|()| {
                store.put_dag(
                    "fuzzed",
                    &sluice_store::DagRecord {
                        paused: false,
                        version: "v1".to_owned(),
                        next_start: None,
                        updated_at: epoch(),
                    },
                )
            })
            .unwrap_or_else(|e| panic!("store: {e}"));
        // The loop is gone: every change the API accepts is answered 503.
        let (sender, _) = std::sync::mpsc::channel();
        let api = sluice_server::api::Api {
            store,
            sender,
            access: sluice_server::api::auth::Access::default(),
            max_backfill_intervals: sluice_runtime::scheduler::MAX_BACKFILL_INTERVALS,
            log: std::sync::Arc::new(|_: &str| {}),
            metrics: std::sync::Arc::new(sluice_runtime::metrics::Metrics::new()),
        };
        (runtime, api)
    })
}

const FIXTURE_DAG: &str = "dag: fuzzed
schedule: \"*/15 * * * *\"
start: 2025-09-01T00:00:00Z
tasks:
  extract: { type: noop }
  load: { type: noop, depends_on: [extract] }
";

fn renderer(upstream: serde_json::Value) -> sluice_model::template::Renderer {
    let start = epoch();
    let context = sluice_model::template::RunContext {
        dag_id: "fuzzed".to_owned(),
        run_id: "scheduled__2025-09-01T00:00:00Z".to_owned(),
        task_id: "task".to_owned(),
        try_number: 1,
        logical_date: start,
        data_interval: sluice_model::schedule::DataInterval {
            start,
            end: start + chrono::TimeDelta::minutes(15),
        },
        params: serde_json::json!({"cube_dims": ["country", "device"], "limit": 3})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        conn: Default::default(),
        var: Default::default(),
        outputs: [("upstream".to_owned(), upstream)].into_iter().collect(),
    };
    sluice_model::template::Renderer::new(&context)
}

fn epoch() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 9, 1, 0, 0, 0)
        .single()
        .unwrap_or_default()
}
