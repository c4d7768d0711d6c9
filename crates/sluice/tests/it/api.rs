//! The REST API against a real engine (scheduler mode, real `command` processes): every
//! endpoint, auth failures, bad input (always 4xx with a JSON message, never 500), paging,
//! and the OpenAPI document (committed = served, every route in it).
//!
//! One scheduler serves all tests: DAG `pipeline` has three hourly intervals whose `work`
//! task succeeds (00:00), fails (01:00) and keeps running (02:00); DAG `playground` is the
//! one tests change (trigger, clear, mark, pause, backfills).

use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use sluice_core::RunStatus;
use sluice_runtime::config::Secret;
use sluice_runtime::scheduler::{Engine, EngineConfig, Input, Mode};
use sluice_server::{Api, router};
use sluice_store::Store;
use tower::ServiceExt;

const TOKEN: &str = "t0ken-for-tests";

struct Fixture {
    store: Store,
    sender: mpsc::Sender<Input>,
    metrics: Arc<sluice_runtime::metrics::Metrics>,
    logged: Arc<Mutex<Vec<String>>>,
}

/// The fixture DAGs, shared with the browser test (`ui_browser.rs`).
const PIPELINE: &str = include_str!("../fixtures/ui/pipeline.yaml");

const PLAYGROUND: &str = include_str!("../fixtures/ui/playground.yaml");

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| start().unwrap_or_else(|e| panic!("the test scheduler: {e}")))
}

fn start() -> Result<Fixture, Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(dags.join("pipeline.yaml"), PIPELINE)?;
    std::fs::write(dags.join("playground.yaml"), PLAYGROUND)?;
    // Paused and unpaused by its own test: a trigger of another DAG never meets a pause.
    std::fs::write(
        dags.join("pausable.yaml"),
        "dag: pausable\ntasks:\n  a: { type: noop }\n",
    )?;
    // A file that does not load: the import errors list it.
    std::fs::write(
        dags.join("broken.yaml"),
        "dag: broken\ntasks:\n  a: { type: nope }\n",
    )?;
    let (handles, received) = mpsc::channel();
    std::thread::spawn(move || {
        let made = Store::open(&root.join("state"))
            .map_err(|e| e.to_string())
            .and_then(|store| {
                let mut config = EngineConfig::new(dags, Mode::Scheduler);
                config.shutdown_grace = Duration::from_secs(1);
                Engine::new(store, config).map_err(|e| e.to_string())
            });
        match made {
            Ok(mut engine) => {
                let _ = handles.send(Ok((
                    engine.store().clone(),
                    engine.sender(),
                    engine.metrics(),
                )));
                let _ = engine.run();
            }
            Err(e) => {
                let _ = handles.send(Err(e));
            }
        }
    });
    let (store, sender, metrics) = received.recv()??;
    let logged = Arc::new(Mutex::new(Vec::new()));
    let fixture = Fixture {
        store,
        sender,
        metrics,
        logged,
    };
    // Wait for the three outcomes.
    let started = Instant::now();
    loop {
        let runs: Vec<_> = fixture
            .store
            .runs_of("pipeline")
            .collect::<Result<_, _>>()?;
        let states: Vec<(RunStatus, &str)> = runs
            .iter()
            .map(|r| (r.state.status, r.state.tasks[1].state.name()))
            .collect();
        if states
            == [
                (RunStatus::Success, "success"),
                (RunStatus::Failed, "failed"),
                (RunStatus::Running, "running"),
            ]
        {
            return Ok(fixture);
        }
        if started.elapsed() > Duration::from_secs(60) {
            return Err(format!("the pipeline runs did not settle: {states:?}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn api(token: Option<&str>, public_metrics: bool) -> axum::Router {
    let f = fixture();
    let logged = Arc::clone(&f.logged);
    router(Api {
        store: f.store.clone(),
        sender: f.sender.clone(),
        access: sluice_server::api::auth::Access {
            token: token.map(Secret::new),
            public_metrics,
            allowed_hosts: Vec::new(),
        },
        max_backfill_intervals: sluice_runtime::scheduler::MAX_BACKFILL_INTERVALS,
        log: Arc::new(move |line| logged.lock().unwrap().push(line.to_owned())),
        metrics: Arc::clone(&f.metrics),
    })
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

async fn call_with(
    app: axum::Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{uri}: not JSON ({status}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Answer {
        status,
        headers,
        body,
    }
}

async fn get(uri: &str) -> Answer {
    call_with(api(Some(TOKEN), false), Method::GET, uri, None, Some(TOKEN)).await
}

async fn send(method: Method, uri: &str, body: Option<&str>) -> Answer {
    call_with(api(Some(TOKEN), false), method, uri, body, Some(TOKEN)).await
}

/// A 4xx whose JSON body says what is wrong.
fn assert_refused(answer: &Answer, status: StatusCode, says: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    let error = answer.body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains(says),
        "error `{error}` should mention `{says}`"
    );
}

#[tokio::test]
async fn health_probes_answer_and_unknown_paths_get_a_json_404() {
    let live = get("/healthz").await;
    assert_eq!(live.status, StatusCode::OK);
    let ready = get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["message"], "ready");
    assert_refused(
        &get("/api/v2/dags").await,
        StatusCode::NOT_FOUND,
        "/api/v2/dags",
    );
}

#[tokio::test]
async fn dags_are_listed_with_schedule_pause_state_next_interval_and_recent_runs() {
    let list = get("/api/v1/dags").await;
    assert_eq!(list.status, StatusCode::OK);
    let dags = list.body["dags"].as_array().unwrap();
    let ids: Vec<&str> = dags.iter().filter_map(|d| d["dag_id"].as_str()).collect();
    assert_eq!(ids, ["pausable", "pipeline", "playground"]);
    let pipeline = &dags[1];
    assert_eq!(pipeline["schedule"], "@hourly");
    assert_eq!(pipeline["description"], "three intervals, three outcomes");
    // Its `end` is reached: no next interval.
    assert_eq!(pipeline["next_interval"], Value::Null);
    let recent: Vec<&str> = pipeline["recent_runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["state"].as_str())
        .collect();
    assert_eq!(recent, ["running", "failed", "success"]);

    let detail = get("/api/v1/dags/pipeline").await;
    assert_eq!(detail.status, StatusCode::OK);
    let tasks = detail.body["tasks"].as_array().unwrap();
    assert_eq!(tasks.len(), 3);
    assert_eq!(tasks[1]["task_id"], "work");
    assert_eq!(tasks[1]["kind"], "command");
    assert_eq!(tasks[1]["upstream"], json!(["extract"]));
    assert_eq!(detail.body["definition"]["dag"], "pipeline");

    assert_refused(
        &get("/api/v1/dags/nope").await,
        StatusCode::NOT_FOUND,
        "no DAG `nope`",
    );
}

#[tokio::test]
async fn runs_page_newest_first_and_filter_by_state_type_and_time() {
    let base = "/api/v1/dags/pipeline/runs";
    let all = get(&format!("{base}?run_type=scheduled")).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(all.body["total"], 3);
    let ids: Vec<String> = all.body["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["run_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        ids,
        [
            "scheduled__2025-01-01T02:00:00Z",
            "scheduled__2025-01-01T01:00:00Z",
            "scheduled__2025-01-01T00:00:00Z"
        ]
    );
    // Pages of one, in the same order, every run once.
    let mut paged = Vec::new();
    for offset in 0..4 {
        let page = get(&format!(
            "{base}?run_type=scheduled&limit=1&offset={offset}"
        ))
        .await;
        assert_eq!(page.body["total"], 3);
        assert_eq!(page.body["limit"], 1);
        for run in page.body["runs"].as_array().unwrap() {
            paged.push(run["run_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(paged, ids);

    let failed = get(&format!("{base}?state=failed")).await;
    assert_eq!(failed.body["total"], 1);
    assert_eq!(failed.body["runs"][0]["task_counts"]["failed"], 1);
    assert_eq!(failed.body["runs"][0]["task_counts"]["upstream_failed"], 1);

    let window = get(&format!(
        "{base}?from=2025-01-01T01:00:00Z&to=2025-01-01T02:00:00Z"
    ))
    .await;
    assert_eq!(window.body["total"], 1);
    assert_eq!(window.body["runs"][0]["state"], "failed");

    assert_refused(
        &get(&format!("{base}?limit=0")).await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_refused(
        &get(&format!("{base}?limit=501")).await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_refused(
        &get(&format!("{base}?state=bogus")).await,
        StatusCode::BAD_REQUEST,
        "bogus",
    );
    assert_refused(
        &get(&format!(
            "{base}?from=2025-02-01T00:00:00Z&to=2025-01-01T00:00:00Z"
        ))
        .await,
        StatusCode::BAD_REQUEST,
        "must be before",
    );
    assert_refused(
        &get(&format!("{base}?from=yesterday")).await,
        StatusCode::BAD_REQUEST,
        "from",
    );
    assert_refused(
        &get(&format!("{base}?colour=red")).await,
        StatusCode::BAD_REQUEST,
        "colour",
    );
    assert_refused(
        &get(&format!("{base}?offset=-1")).await,
        StatusCode::BAD_REQUEST,
        "offset",
    );
}

#[tokio::test]
async fn a_run_shows_its_task_instances_attempts_and_logs() {
    let run = "/api/v1/dags/pipeline/runs/scheduled__2025-01-01T01:00:00Z";
    let detail = get(run).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert_eq!(detail.body["state"], "failed");
    assert_eq!(detail.body["data_interval"]["end"], "2025-01-01T02:00:00Z");
    let states: Vec<&str> = detail.body["task_instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["state"].as_str())
        .collect();
    assert_eq!(states, ["success", "failed", "upstream_failed"]);
    assert_eq!(
        get(&format!("{run}/tasks"))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let work = get(&format!("{run}/tasks/work")).await;
    assert_eq!(work.status, StatusCode::OK);
    let attempt = &work.body["attempts"][0];
    assert_eq!(attempt["result"], "failed");
    assert_eq!(attempt["executor"], "command");
    assert!(
        attempt["handle"].as_str().is_some_and(|h| !h.is_empty()),
        "{attempt}"
    );
    assert_eq!(
        attempt["idempotency_key"],
        "pipeline/scheduled__2025-01-01T01:00:00Z/work/1"
    );

    let log = get(&format!("{run}/tasks/work/logs")).await;
    assert_eq!(log.status, StatusCode::OK);
    let text = log.body["text"].as_str().unwrap();
    assert!(text.contains("working on 2025-01-01T01:00:00"), "{text}");
    assert!(text.contains("boom"), "{text}");
    assert_eq!(log.body["complete"], true);
    let size = log.body["size"].as_u64().unwrap();
    let tail = get(&format!("{run}/tasks/work/logs?tail=5")).await;
    assert_eq!(tail.body["offset"].as_u64(), Some(size - 5));
    assert_eq!(tail.body["text"].as_str().map(str::len), Some(5));
    let past_end = get(&format!("{run}/tasks/work/logs?offset={}", size + 100)).await;
    assert_eq!(past_end.body["text"], "");

    // A running attempt's log is not complete: the UI keeps following it.
    let running =
        get("/api/v1/dags/pipeline/runs/scheduled__2025-01-01T02:00:00Z/tasks/work/logs?offset=0")
            .await;
    assert_eq!(running.body["complete"], false);

    assert_refused(
        &get(&format!("{run}/tasks/nope")).await,
        StatusCode::NOT_FOUND,
        "no task `nope`",
    );
    assert_refused(
        &get(&format!("{run}/tasks/publish/logs")).await,
        StatusCode::NOT_FOUND,
        "has not started",
    );
    assert_refused(
        &get(&format!("{run}/tasks/work/logs?try=7")).await,
        StatusCode::NOT_FOUND,
        "no try 7",
    );
    assert_refused(
        &get(&format!("{run}/tasks/work/logs?limit=0")).await,
        StatusCode::BAD_REQUEST,
        "limit",
    );
    assert_refused(
        &get("/api/v1/dags/pipeline/runs/not-a-run-id").await,
        StatusCode::NOT_FOUND,
        "no run `not-a-run-id`",
    );
}

/// Before: with a token configured, the DAG definition, run conf and task logs answered
/// without it, and to any `Host` (DNS rebinding reaches a loopback API from a browser);
/// `/healthz` and `/readyz` answered 401 with `token_for_reads`.
#[tokio::test]
async fn reads_need_the_token_probes_do_not_and_foreign_hosts_are_refused() {
    let with_host = |host: &'static str, uri: &'static str, token: Option<&'static str>| async move {
        let mut request = Request::builder()
            .method(Method::GET)
            .uri(uri)
            .header(header::HOST, host);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        api(Some(TOKEN), false)
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    };
    for uri in [
        "/api/v1/dags/pipeline",
        "/api/v1/dags/pipeline/runs",
        "/api/v1/dags/pipeline/runs/scheduled__2025-01-01T00:00:00Z/tasks/work/logs",
        "/metrics",
        "/",
    ] {
        assert_eq!(
            with_host("127.0.0.1:8080", uri, None).await,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
        assert_ne!(
            with_host("127.0.0.1:8080", uri, Some(TOKEN)).await,
            StatusCode::UNAUTHORIZED,
            "{uri}"
        );
    }
    for probe in ["/healthz", "/ui/assets/app.js"] {
        assert_eq!(
            with_host("localhost:8080", probe, None).await,
            StatusCode::OK,
            "{probe}"
        );
    }
    // A name that is not this scheduler's is refused even with the token.
    assert_eq!(
        with_host("evil.example", "/api/v1/dags", Some(TOKEN)).await,
        StatusCode::MISDIRECTED_REQUEST
    );
    assert_eq!(
        with_host("evil.example:8080", "/healthz", None).await,
        StatusCode::MISDIRECTED_REQUEST
    );
    // `api.public_metrics` opens /metrics alone.
    let public = api(Some(TOKEN), true)
        .oneshot(
            Request::builder()
                .uri("/metrics")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(public.status(), StatusCode::OK);
}

#[tokio::test]
async fn changes_need_the_token_which_is_never_logged() {
    let trigger = "/api/v1/dags/playground/runs";
    let app = || api(Some(TOKEN), false);
    let none = call_with(app(), Method::POST, trigger, Some("{}"), None).await;
    assert_refused(&none, StatusCode::UNAUTHORIZED, "no token");
    assert_eq!(none.headers[header::WWW_AUTHENTICATE], "Bearer");
    let wrong = call_with(app(), Method::POST, trigger, Some("{}"), Some("guess-123")).await;
    assert_refused(&wrong, StatusCode::UNAUTHORIZED, "wrong token");
    let logged = fixture().logged.lock().unwrap().join("\n");
    assert!(
        logged.contains("refused POST /api/v1/dags/playground/runs"),
        "{logged}"
    );
    assert!(
        !logged.contains("guess-123") && !logged.contains(TOKEN),
        "{logged}"
    );

    // With a token, reads need it too.
    let read = call_with(
        api(Some(TOKEN), false),
        Method::GET,
        "/api/v1/dags",
        None,
        None,
    )
    .await;
    assert_refused(&read, StatusCode::UNAUTHORIZED, "no token");
    let read = call_with(
        api(Some(TOKEN), false),
        Method::GET,
        "/api/v1/dags",
        None,
        Some(TOKEN),
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);

    // Without a configured token the API is read-only.
    let off = call_with(
        api(None, false),
        Method::POST,
        trigger,
        Some("{}"),
        Some(TOKEN),
    )
    .await;
    assert_refused(&off, StatusCode::FORBIDDEN, "no API token is configured");
}

#[tokio::test]
async fn a_triggered_run_is_created_and_runs_to_success() {
    let answer = send(
        Method::POST,
        "/api/v1/dags/playground/runs",
        Some(r#"{"logical_date": "2031-05-01T00:00:00Z", "conf": {"why": "test"}}"#),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["run_id"], "manual__2031-05-01T00:00:00Z");
    let run = "/api/v1/dags/playground/runs/manual__2031-05-01T00:00:00Z";
    let started = Instant::now();
    loop {
        let detail = get(run).await;
        if detail.body["state"] == "success" {
            assert_eq!(detail.body["conf"]["why"], "test");
            assert_eq!(detail.body["run_type"], "manual");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            detail.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Off the schedule: the run is the last interval closed at that time, and the answer
    // names it.
    let off = send(
        Method::POST,
        "/api/v1/dags/playground/runs",
        Some(r#"{"logical_date": "2031-06-01T13:45:10Z"}"#),
    )
    .await;
    assert_eq!(off.status, StatusCode::CREATED, "{}", off.body);
    assert_eq!(off.body["run_id"], "manual__2031-05-31T00:00:00Z");
    assert_eq!(
        get("/api/v1/dags/playground/runs/manual__2031-05-31T00:00:00Z")
            .await
            .status,
        StatusCode::OK
    );
    // The same logical date again is refused by the scheduler: 409 with its reason.
    let again = send(
        Method::POST,
        "/api/v1/dags/playground/runs",
        Some(r#"{"logical_date": "2031-05-01T00:00:00Z"}"#),
    )
    .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);

    // Clear one task and everything downstream: they run again.
    let clear = send(
        Method::POST,
        &format!("{run}/clear"),
        Some(r#"{"tasks": ["a"], "downstream": true}"#),
    )
    .await;
    assert_eq!(clear.status, StatusCode::OK, "{}", clear.body);
    let started = Instant::now();
    loop {
        let detail = get(&format!("{run}/tasks/b")).await;
        if detail.body["state"] == "success"
            && detail.body["attempts"].as_array().unwrap().len() == 2
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{}",
            detail.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_refused(
        &send(
            Method::POST,
            &format!("{run}/clear"),
            Some(r#"{"tasks": ["zzz"]}"#),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "no task `zzz`",
    );
    // Mark by hand.
    let mark = send(
        Method::POST,
        &format!("{run}/tasks/b/mark"),
        Some(r#"{"state": "failed"}"#),
    )
    .await;
    assert_eq!(mark.status, StatusCode::OK, "{}", mark.body);
    assert_eq!(mark.body["state"], "failed");
    assert_refused(
        &send(
            Method::POST,
            &format!("{run}/tasks/b/mark"),
            Some(r#"{"state": "running"}"#),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "running",
    );
}

#[tokio::test]
async fn bad_bodies_get_a_4xx_with_a_message_never_a_500() {
    let trigger = "/api/v1/dags/playground/runs";
    let cases: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "POST",
            trigger,
            Some("{not json"),
            "parse the request body as JSON",
        ),
        ("POST", trigger, Some(r#"{"conf": [1, 2]}"#), "object"),
        (
            "POST",
            trigger,
            Some(r#"{"logical_date": "tomorrow"}"#),
            "logical_date",
        ),
        ("POST", trigger, Some(r#"{"colour": "red"}"#), "colour"),
        (
            "POST",
            "/api/v1/dags/nope/runs",
            Some("{}"),
            "no DAG `nope`",
        ),
        (
            "PATCH",
            "/api/v1/dags/playground",
            Some(r#"{"is_paused": "yes"}"#),
            "is_paused",
        ),
        (
            "POST",
            "/api/v1/dags/playground/backfills",
            Some(r#"{"from": "2030-01-03T00:00:00Z", "to": "2030-01-01T00:00:00Z"}"#),
            "before",
        ),
        (
            "POST",
            "/api/v1/dags/playground/backfills",
            Some(r#"{"from": "2030-01-01T00:00:00Z"}"#),
            "to",
        ),
        (
            "POST",
            "/api/v1/dags/playground/backfills/explode",
            None,
            "not a backfill action",
        ),
        (
            "POST",
            "/api/v1/dags/playground/runs/nope/clear",
            Some("{}"),
            "no run",
        ),
    ];
    for (method, uri, body, says) in cases {
        let answer = send(method.parse().unwrap(), uri, *body).await;
        assert!(
            answer.status.is_client_error(),
            "{method} {uri} {body:?}: {} {}",
            answer.status,
            answer.body
        );
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{method} {uri}: `{error}` should mention `{says}`"
        );
    }
    // No content type.
    let request = Request::builder()
        .method(Method::POST)
        .uri(trigger)
        .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(Body::from("{}"))
        .unwrap();
    let response = api(Some(TOKEN), false).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn pause_and_backfills_go_through_the_scheduler() {
    let paused = send(
        Method::PATCH,
        "/api/v1/dags/pausable",
        Some(r#"{"is_paused": true}"#),
    )
    .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.body);
    assert_eq!(paused.body["is_paused"], true);
    let unpaused = send(
        Method::PATCH,
        "/api/v1/dags/pausable",
        Some(r#"{"is_paused": false}"#),
    )
    .await;
    assert_eq!(unpaused.body["is_paused"], false);

    let create = send(
        Method::POST,
        "/api/v1/dags/playground/backfills",
        Some(r#"{"from": "2030-01-01T00:00:00Z", "to": "2030-03-02T00:00:00Z", "max_active_runs": 1}"#),
    )
    .await;
    assert_eq!(create.status, StatusCode::CREATED, "{}", create.body);
    assert_eq!(create.body["total"], 60);
    assert_eq!(create.body["state"], "running");
    let paused = send(
        Method::POST,
        "/api/v1/dags/playground/backfills/pause",
        None,
    )
    .await;
    assert_eq!(paused.body["state"], "paused", "{}", paused.body);
    assert_eq!(
        send(
            Method::POST,
            "/api/v1/dags/playground/backfills/pause",
            None
        )
        .await
        .status,
        StatusCode::CONFLICT
    );
    // A second backfill must wait for the open one.
    let second = send(
        Method::POST,
        "/api/v1/dags/playground/backfills",
        Some(r#"{"from": "2021-01-01T00:00:00Z", "to": "2021-01-03T00:00:00Z"}"#),
    )
    .await;
    assert_refused(
        &second,
        StatusCode::CONFLICT,
        "already has a backfill paused",
    );
    let resumed = send(
        Method::POST,
        "/api/v1/dags/playground/backfills/resume",
        None,
    )
    .await;
    assert_eq!(resumed.body["state"], "running");
    let cancelled = send(
        Method::POST,
        "/api/v1/dags/playground/backfills/cancel",
        None,
    )
    .await;
    assert_eq!(cancelled.body["state"], "cancelled");
    let list = get("/api/v1/backfills").await;
    let backfills = list.body["backfills"].as_array().unwrap();
    assert!(
        backfills
            .iter()
            .any(|b| b["dag_id"] == "playground" && b["state"] == "cancelled")
    );
    assert_refused(
        &send(
            Method::POST,
            "/api/v1/dags/playground/backfills/cancel",
            None,
        )
        .await,
        StatusCode::CONFLICT,
        "no open backfill",
    );
}

#[tokio::test]
async fn import_errors_say_which_file_broke_where() {
    let answer = get("/api/v1/import-errors").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let errors = answer.body["import_errors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{}", answer.body);
    let broken = &errors[0];
    assert!(broken["file"].as_str().unwrap().ends_with("broken.yaml"));
    assert_eq!(
        (broken["line"].as_u64(), broken["column"].as_u64()),
        (Some(3), Some(14)),
        "{broken}"
    );
    assert!(
        broken["message"].as_str().unwrap().contains("nope"),
        "{broken}"
    );
    assert_eq!(broken["kept_dag"], Value::Null);
    // Reads need the token, like every other read.
    let anonymous = call_with(
        api(Some(TOKEN), false),
        Method::GET,
        "/api/v1/import-errors",
        None,
        None,
    )
    .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_audit_shows_every_interval_and_its_gaps() {
    let audit =
        get("/api/v1/dags/pipeline/audit?from=2025-01-01T00:00:00Z&to=2025-01-01T03:00:00Z").await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    assert_eq!(audit.body["intervals"], 3);
    assert_eq!(audit.body["gaps"], 2);
    let statuses: Vec<&str> = audit.body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["status"].as_str())
        .collect();
    assert_eq!(statuses, ["success", "failed", "running"]);
    assert_refused(
        &get("/api/v1/dags/pipeline/audit?from=2025-01-01T00:00:00Z").await,
        StatusCode::BAD_REQUEST,
        "to",
    );
    assert_refused(
        &get("/api/v1/dags/pipeline/audit?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z").await,
        StatusCode::BAD_REQUEST,
        "must be before",
    );
}

#[tokio::test]
async fn the_served_openapi_document_is_the_committed_one_and_lists_every_route() {
    let served = get("/api/v1/openapi.json").await;
    assert_eq!(served.status, StatusCode::OK);
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.json"
        ))
        .expect("docs/openapi.json"),
    )
    .expect("docs/openapi.json is JSON");
    assert_eq!(
        served.body, committed,
        "docs/openapi.json is stale: run `cargo run -p sluice -- api openapi > docs/openapi.json`"
    );
    assert!(
        served.body["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );
    let paths = served.body["paths"].as_object().unwrap();
    for (path, methods) in [
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"]),
        ("/api/v1/dags", &["get"]),
        ("/api/v1/import-errors", &["get"]),
        ("/api/v1/dags/{dag_id}", &["get", "patch"]),
        ("/api/v1/dags/{dag_id}/runs", &["get", "post"]),
        ("/api/v1/dags/{dag_id}/runs/{run_id}", &["get"]),
        ("/api/v1/dags/{dag_id}/runs/{run_id}/clear", &["post"]),
        ("/api/v1/dags/{dag_id}/runs/{run_id}/tasks", &["get"]),
        (
            "/api/v1/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
            &["get"],
        ),
        (
            "/api/v1/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
            &["post"],
        ),
        (
            "/api/v1/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs",
            &["get"],
        ),
        ("/api/v1/dags/{dag_id}/audit", &["get"]),
        ("/api/v1/dags/{dag_id}/sla", &["get"]),
        ("/metrics", &["get"]),
        ("/api/v1/dags/{dag_id}/backfills", &["post"]),
        ("/api/v1/dags/{dag_id}/backfills/{action}", &["post"]),
        ("/api/v1/backfills", &["get"]),
        ("/api/v1/openapi.json", &["get"]),
    ] {
        for method in methods {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path} missing"
            );
        }
    }
    assert_eq!(
        served.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

/// The committed document passes a real OpenAPI validator (openapi-spec-validator, which
/// scripts/test installs beside PySpark).
#[test]
fn the_openapi_document_validates() {
    let document = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
    let output = std::process::Command::new("python3")
        .args(["-m", "openapi_spec_validator", document])
        .output()
        .expect("python3 runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !said.contains("No module named"),
        "openapi-spec-validator is missing: run scripts/test, or put its virtualenv's bin on PATH ({said})"
    );
    assert!(output.status.success() && said.contains("OK"), "{said}");
}

/// `/metrics` parsed by a Prometheus text-format parser: every name prefixed `sluice_`, and
/// the figures of the fixture's runs.
#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    fixture();
    // The gauges are recounted once a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let request = Request::builder()
        .uri("/metrics")
        .body(Body::empty())
        .unwrap();
    // Scrapers that cannot send the token are served with `api.public_metrics`.
    let response = api(Some(TOKEN), true).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    assert!(!scrape.samples.is_empty());
    for sample in &scrape.samples {
        assert!(sample.metric.starts_with("sluice_"), "{}", sample.metric);
    }
    for family in sluice_runtime::metrics::FAMILIES {
        assert!(
            scrape.docs.contains_key(family.name),
            "{} has no HELP",
            family.name
        );
    }
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match &s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => *v,
                prometheus_parse::Value::Histogram(buckets) => {
                    buckets.last().map_or(0.0, |b| b.count)
                }
                prometheus_parse::Value::Summary(_) => f64::NAN,
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
    };
    let pipeline = [("dag", "pipeline")];
    assert_eq!(
        value(
            "sluice_runs_finished_total",
            &[("dag", "pipeline"), ("state", "success")]
        ),
        1.0
    );
    assert_eq!(
        value(
            "sluice_runs_finished_total",
            &[("dag", "pipeline"), ("state", "failed")]
        ),
        1.0
    );
    // extract ×3, work ×3, publish ×1.
    assert!(value("sluice_task_attempts_total", &pipeline) >= 7.0);
    assert!(
        value(
            "sluice_task_transitions_total",
            &[("dag", "pipeline"), ("state", "failed")]
        ) >= 1.0
    );
    assert!(value("sluice_task_instances", &[("state", "running")]) >= 1.0);
    assert!(value("sluice_active_runs", &pipeline) >= 1.0);
    assert_eq!(value("sluice_run_duration_seconds", &pipeline), 2.0);
    assert!(value("sluice_scheduler_iteration_seconds", &[]) > 0.0);
    assert!(value("sluice_dispatch_latency_seconds", &[]) > 0.0);
    assert_eq!(
        value(
            "sluice_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

#[tokio::test]
async fn the_sla_report_gives_latency_percentiles_and_refuses_bad_ranges() {
    let report =
        get("/api/v1/dags/pipeline/sla?from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z").await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    // One scheduled run succeeded (00:00), long after its 2025 interval ended.
    assert_eq!(report.body["latency"]["runs"], 1);
    assert!(
        report.body["latency"]["p50_seconds"]
            .as_f64()
            .is_some_and(|s| s > 86_400.0)
    );
    assert_eq!(
        report.body["latency"]["p95_seconds"],
        report.body["latency"]["max_seconds"]
    );
    assert_eq!(report.body["breaches"], 0);
    assert_refused(
        &get("/api/v1/dags/pipeline/sla?from=2025-01-02T00:00:00Z&to=2025-01-01T00:00:00Z").await,
        StatusCode::BAD_REQUEST,
        "must be before",
    );
    assert_refused(
        &get("/api/v1/dags/nope/sla").await,
        StatusCode::NOT_FOUND,
        "no DAG",
    );
}
