//! Backfills: create, list, pause/resume/cancel. One open backfill per DAG.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

use super::Api;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::views::{BackfillList, BackfillView, backfill_view};
use sluice_runtime::scheduler::{BackfillAction, Control, Input};
use sluice_store::Reprocess;

/// A range of intervals to run.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    /// First instant of the range (RFC 3339).
    pub from: DateTime<Utc>,
    /// End of the range; only whole intervals inside it run.
    pub to: DateTime<Utc>,
    /// Which intervals that already have a run to run again (default `none`).
    #[serde(default)]
    #[schema(inline)]
    pub reprocess: ReprocessChoice,
    /// Runs at once (default: the DAG's `max_active_runs`).
    pub max_active_runs: Option<usize>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReprocessChoice {
    #[default]
    None,
    Failed,
    Completed,
}

/// Start a backfill (or resume the open one with the same range and reprocess choice).
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/backfills", operation_id = "create_backfill", tag = "backfills",
    params(("dag_id" = String, Path)), request_body = BackfillRequest,
    security(("bearer" = [])),
    responses((status = 201, body = BackfillView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn create(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<BackfillRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<BackfillView>)> {
    let Path(dag_id) = path?;
    let Json(request) = body?;
    let (_, dag) = api.current_dag(&dag_id)?;
    // Refused here, before the loop hears of it: bounded by the same rule the loop keeps.
    sluice_core::intervals::backfill_range(
        &dag,
        request.from,
        request.to,
        api.max_backfill_intervals,
    )
    .map_err(|e| ApiError::bad_request(e.to_string()).hint(e.hint()))?;
    if request.max_active_runs == Some(0) {
        return Err(ApiError::bad_request(
            "`max_active_runs` must be at least 1",
        ));
    }
    api.ask(|reply| Input::Backfill {
        dag: dag_id.clone(),
        from: request.from,
        to: request.to,
        reprocess: match request.reprocess {
            ReprocessChoice::None => Reprocess::None,
            ReprocessChoice::Failed => Reprocess::Failed,
            ReprocessChoice::Completed => Reprocess::Completed,
        },
        max_active_runs: request.max_active_runs,
        reply,
    })
    .await?;
    let record = api
        .store
        .backfill(&dag_id)?
        .ok_or_else(|| ApiError::conflict("the backfill was not recorded"))?;
    Ok((
        StatusCode::CREATED,
        Json(backfill_view(&record, &api.store)),
    ))
}

/// The latest backfill of every DAG that had one.
#[utoipa::path(get, path = "/api/v1/backfills", operation_id = "list_backfills", tag = "backfills",
    responses((status = 200, body = BackfillList)))]
pub async fn list(State(api): State<Api>) -> ApiResult<Json<BackfillList>> {
    let mut backfills = Vec::new();
    for dag_id in api.store.dag_ids()? {
        if let Some(record) = api.store.backfill(&dag_id)? {
            backfills.push(backfill_view(&record, &api.store));
        }
    }
    Ok(Json(BackfillList { backfills }))
}

/// Pause, resume or cancel a DAG's open backfill (`action` is `pause`, `resume` or
/// `cancel`). Runs it already started go on.
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/backfills/{action}", operation_id = "change_backfill", tag = "backfills",
    params(("dag_id" = String, Path), ("action" = String, Path, description = "pause, resume or cancel")),
    security(("bearer" = [])),
    responses((status = 200, body = BackfillView), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn change(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<BackfillView>> {
    let Path((dag_id, action)) = path?;
    let action = match action.as_str() {
        "pause" => BackfillAction::Pause,
        "resume" => BackfillAction::Resume,
        "cancel" => BackfillAction::Cancel,
        other => {
            return Err(
                ApiError::bad_request(format!("`{other}` is not a backfill action"))
                    .hint("use pause, resume or cancel"),
            );
        }
    };
    api.current_dag(&dag_id)?;
    api.ask(|reply| Input::Control {
        command: Control::Backfill {
            dag: dag_id.clone(),
            action,
        },
        reply,
    })
    .await?;
    let record = api
        .store
        .backfill(&dag_id)?
        .ok_or_else(|| ApiError::not_found(format!("DAG `{dag_id}` has no backfill")))?;
    Ok(Json(backfill_view(&record, &api.store)))
}
