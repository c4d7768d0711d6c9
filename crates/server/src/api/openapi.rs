//! The OpenAPI document, generated from the handlers' annotations (utoipa) and committed as
//! `docs/openapi.json` (a test keeps the two equal).

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{assets, backfills, dags, health, runs, tasks};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sluice API",
        description = "Operate a Sluice scheduler: DAGs, runs, task instances, logs, backfills, audits. \
            Changes need `Authorization: Bearer <token>`; errors are JSON `{error, hint}`.",
        license(name = "Apache-2.0")
    ),
    paths(
        health::live, health::ready, health::metrics,
        dags::list, dags::detail, dags::update, dags::import_errors,
        runs::list, runs::detail, runs::trigger, runs::clear, runs::audit, runs::sla,
        tasks::list, tasks::detail, tasks::mark, tasks::logs,
        backfills::create, backfills::list, backfills::change,
        assets::list, assets::history, assets::stale,
        serve,
    ),
    modifiers(&BearerToken),
    tags(
        (name = "dags", description = "DAGs the scheduler has loaded"),
        (name = "runs", description = "Runs of a DAG and the interval audit"),
        (name = "tasks", description = "Task instances, attempts and logs"),
        (name = "backfills", description = "Reprocessing ranges of intervals"),
        (name = "assets", description = "Data DAGs produce and consume per interval: writes, stale intervals"),
        (name = "health", description = "Liveness and readiness probes"),
    )
)]
pub struct ApiDoc;

struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The document as served and committed.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // The crate's version, not utoipa's default of the package it was derived in.
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", operation_id = "get_openapi", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document")))]
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
