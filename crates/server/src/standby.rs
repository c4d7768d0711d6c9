//! What a standby serves on the API's address while another instance is active
//! (docs/ha.md): the probes (`/readyz` answers 503 "standby", so a load balancer sends
//! callers to the active), and for every other path, behind the same token check, a
//! redirect to the same path on the active's API (307: a change keeps its method and body),
//! or 503 while no instance is active. A standby holds no state of its own to answer from.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;

use crate::api::LogSink;
use crate::api::auth::Access;
use crate::api::error::ApiError;

/// Who is active, as this standby last saw it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StandbyView {
    pub deployment: String,
    pub instance: String,
    /// The active instance, its lease revision and API, if any holds the lease.
    pub active: Option<ActiveInstance>,
    /// Why the standby cannot tell (etcd unreachable), if so.
    pub problem: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActiveInstance {
    pub instance: String,
    pub lease_revision: i64,
    pub api: Option<String>,
}

/// A standby's server state: who may call, and who is active now.
#[derive(Clone)]
pub struct Standby {
    pub access: Access,
    pub log: LogSink,
    pub view: Arc<dyn Fn() -> StandbyView + Send + Sync>,
}

async fn guard(State(standby): State<Standby>, request: Request, next: Next) -> Response {
    crate::api::auth::check(&standby.access, &standby.log, request, next).await
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    #[serde(flatten)]
    view: StandbyView,
}

async fn ready(State(standby): State<Standby>) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        axum::Json(Readiness {
            status: "standby",
            view: (standby.view)(),
        }),
    )
        .into_response()
}

/// A standby's metrics: that it is not active, and whose lease it last saw.
async fn metrics(State(standby): State<Standby>) -> Response {
    let view = (standby.view)();
    let mut text = String::from(
        "# HELP sluice_ha_active 1 on the active instance of an HA deployment (a standby's /metrics says 0).\n\
         # TYPE sluice_ha_active gauge\nsluice_ha_active 0\n",
    );
    if let Some(active) = &view.active {
        text.push_str(&format!(
            "# HELP sluice_ha_seen_lease_revision The active instance's lease revision as this standby last saw it.\n\
             # TYPE sluice_ha_seen_lease_revision gauge\nsluice_ha_seen_lease_revision {}\n",
            active.lease_revision
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}

async fn elsewhere(State(standby): State<Standby>, request: Request) -> Response {
    let view = (standby.view)();
    let target = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    match view
        .active
        .as_ref()
        .and_then(|a| a.api.clone().map(|api| (a, api)))
    {
        Some((active, api)) => {
            let location = format!("{}{target}", api.trim_end_matches('/'));
            let mut response = ApiError::new(
                StatusCode::TEMPORARY_REDIRECT,
                format!(
                    "this instance ({}) is a standby; `{}` is active (lease revision {})",
                    view.instance, active.instance, active.lease_revision
                ),
            )
            .hint(format!("call the active instance: {location}"))
            .into_response();
            if let Ok(value) = header::HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        None => ApiError::unavailable(match &view.active {
            Some(active) => format!(
                "this instance ({}) is a standby; `{}` is active but has no API address",
                view.instance, active.instance
            ),
            None => format!(
                "this instance ({}) is a standby and no instance is active now{}",
                view.instance,
                view.problem
                    .as_ref()
                    .map(|p| format!(" ({p})"))
                    .unwrap_or_default()
            ),
        })
        .hint("a standby takes over within the lease TTL; retry, or see `sluice ha status`")
        .into_response(),
    }
}

/// The standby's routes.
pub fn router(standby: Standby) -> Router {
    Router::new()
        .route("/healthz", get(crate::api::health::live))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .fallback(elsewhere)
        .layer(axum::middleware::from_fn_with_state(standby.clone(), guard))
        .with_state(standby)
}

/// Serves a standby's routes until the returned server is dropped.
pub fn serve(address: std::net::SocketAddr, standby: Standby) -> std::io::Result<crate::Server> {
    let log = Arc::clone(&standby.log);
    crate::serve_router(address, router(standby), log)
}
