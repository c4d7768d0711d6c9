//! Probes: `/healthz` (the process answers) and `/readyz` (the scheduling loop answers and
//! takes work; 503 while it shuts down or is stuck), and the JSON 404.

use axum::Json;
use axum::extract::State;
use axum::http::Uri;

use super::Api;
use super::error::{ApiError, ApiResult};
use super::views::Accepted;

/// Liveness: the process serves requests.
#[utoipa::path(get, path = "/healthz", operation_id = "liveness", tag = "health",
    responses((status = 200, description = "The process is alive", body = Accepted)))]
pub async fn live() -> Json<Accepted> {
    Json(Accepted {
        message: "alive".into(),
    })
}

/// Readiness: the scheduling loop answers within a few seconds and is not shutting down.
#[utoipa::path(get, path = "/readyz", operation_id = "readiness", tag = "health",
    responses((status = 200, description = "The loop takes work", body = Accepted),
              (status = 503, description = "Shutting down or not answering", body = super::error::ErrorBody)))]
pub async fn ready(State(api): State<Api>) -> ApiResult<Json<Accepted>> {
    api.store.dag_ids()?;
    let message = api
        .ask(|reply| sluice_runtime::scheduler::Input::Ping { reply })
        .await
        .map_err(|e| ApiError::unavailable(e.body.error))?;
    Ok(Json(Accepted { message }))
}

pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", uri.path()))
        .hint("the API lives under /api/v1; /api/v1/openapi.json lists every endpoint")
}

/// Prometheus text exposition of the scheduler's metrics (every name prefixed `sluice_`).
#[utoipa::path(get, path = "/metrics", operation_id = "metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain")))]
pub async fn metrics(State(api): State<Api>) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        api.metrics.render(),
    )
}
