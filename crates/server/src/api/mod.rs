//! The REST API (`/api/v1`), health probes and the OpenAPI document, served by the scheduler
//! process (axum on a small tokio runtime of its own, so a slow client never touches the
//! scheduling loop).
//!
//! Reads go straight to the scheduler's open store (sled is safe across threads); changes
//! go through the loop as `Input::Control`/`Input::Backfill`, exactly as the CLI's, so the
//! loop stays the only writer of scheduling state.

pub(crate) mod assets;
pub mod auth;
mod backfills;
pub(crate) mod dags;
pub mod error;
pub(crate) mod health;
pub mod openapi;
mod runs;
mod tasks;
pub mod views;

use std::sync::{Arc, mpsc};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};

use error::{ApiError, ApiResult};
use sluice_core::DagPlan;
use sluice_model::spec::Dag;
use sluice_runtime::scheduler::{Input, Reply};
use sluice_store::{RunRecord, Store};

/// How long a change waits for the loop's answer before the caller gets a 503.
const LOOP_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// What every handler shares.
#[derive(Clone)]
pub struct Api {
    pub store: Store,
    pub sender: mpsc::Sender<Input>,
    /// Who may call (the token, the open paths, the host names).
    pub access: auth::Access,
    /// Most intervals one backfill may cover (`scheduler.max_backfill_intervals`).
    pub max_backfill_intervals: usize,
    /// Where refusals and server errors are logged (the scheduler's log).
    pub log: LogSink,
    /// The scheduler's metrics, rendered at `/metrics`.
    pub metrics: Arc<sluice_runtime::metrics::Metrics>,
}

/// A line logger shared by the handlers.
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

/// Logs through the scheduler's log (tracing).
pub fn stderr_log() -> LogSink {
    Arc::new(|line| tracing::warn!("{line}"))
}

impl Api {
    /// Sends a change to the loop and waits (off the async runtime) for its answer.
    async fn ask(&self, make: impl FnOnce(mpsc::Sender<Reply>) -> Input) -> ApiResult<String> {
        let (reply, answer) = mpsc::channel();
        self.sender
            .send(make(reply))
            .map_err(|_| ApiError::unavailable("the scheduler is shutting down"))?;
        let answer = tokio::task::spawn_blocking(move || answer.recv_timeout(LOOP_ANSWER_TIMEOUT))
            .await
            .map_err(|_| ApiError::unavailable("the scheduler stopped before answering"))?;
        match answer {
            Ok(Ok(message)) => Ok(message),
            Ok(Err((message, hint))) => {
                let error = ApiError::conflict(message);
                Err(match hint {
                    Some(hint) => error.hint(hint),
                    None => error,
                })
            }
            Err(_) => Err(ApiError::unavailable(
                "the scheduler did not answer in time; try again",
            )),
        }
    }

    /// The DAG version the scheduler runs now, or 404.
    pub(crate) fn current_dag(
        &self,
        dag_id: &str,
    ) -> ApiResult<(sluice_store::DagRecord, Arc<Dag>)> {
        let not_found = || {
            ApiError::not_found(format!("no DAG `{dag_id}`"))
                .hint("GET /api/v1/dags lists the DAGs the scheduler has loaded")
        };
        let record = self.store.dag(dag_id)?.ok_or_else(not_found)?;
        let dag = self
            .store
            .version(dag_id, &record.version)?
            .ok_or_else(not_found)?;
        Ok((record, Arc::new(dag)))
    }

    /// A run by id, or 404; with the plan of the DAG version it ran.
    pub(crate) fn run(&self, dag_id: &str, run_id: &str) -> ApiResult<(RunRecord, DagPlan)> {
        let not_found = || {
            ApiError::not_found(format!("DAG `{dag_id}` has no run `{run_id}`"))
                .hint(format!("GET /api/v1/dags/{dag_id}/runs lists its runs"))
        };
        self.current_dag(dag_id)?;
        let logical =
            sluice_runtime::scheduler::control::logical_date_of(run_id).ok_or_else(not_found)?;
        let record = self
            .store
            .run(dag_id, logical)?
            .filter(|r| r.state.run_id == run_id)
            .ok_or_else(not_found)?;
        let dag = self
            .store
            .version(dag_id, &record.dag_version)?
            .ok_or_else(not_found)?;
        Ok((record, DagPlan::new(&dag)))
    }
}

/// The API's routes: `/api/v1`, the health probes and `/metrics`. The token check and the
/// fallback are the server's (`crate::router`), in front of the UI's routes too.
pub fn routes() -> Router<Api> {
    let v1 = Router::new()
        .route("/dags", get(dags::list))
        .route("/dags/{dag_id}", get(dags::detail).patch(dags::update))
        .route("/dags/{dag_id}/runs", get(runs::list).post(runs::trigger))
        .route("/dags/{dag_id}/runs/{run_id}", get(runs::detail))
        .route("/dags/{dag_id}/runs/{run_id}/clear", post(runs::clear))
        .route("/dags/{dag_id}/runs/{run_id}/tasks", get(tasks::list))
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}",
            get(tasks::detail),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark",
            post(tasks::mark),
        )
        .route(
            "/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs",
            get(tasks::logs),
        )
        .route("/dags/{dag_id}/audit", get(runs::audit))
        .route("/dags/{dag_id}/sla", get(runs::sla))
        .route("/dags/{dag_id}/backfills", post(backfills::create))
        .route("/dags/{dag_id}/backfills/{action}", post(backfills::change))
        .route("/backfills", get(backfills::list))
        .route("/import-errors", get(dags::import_errors))
        .route("/assets", get(assets::list))
        .route("/assets/{asset}", get(assets::history))
        .route("/stale", get(assets::stale))
        .route("/openapi.json", get(openapi::serve));
    Router::new()
        .nest("/api/v1", v1)
        .route("/healthz", get(health::live))
        .route("/readyz", get(health::ready))
        .route("/metrics", get(health::metrics))
}
