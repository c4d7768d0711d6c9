//! Task instances: list, detail with attempts, mark, and logs (a range, or the tail, to follow
//! a running attempt by polling with `offset = next_offset`).

use std::io::{Read, Seek, SeekFrom};

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::views::{LogChunk, TaskInstanceDetail, TaskInstanceView, attempt_view, task_instances};
use sluice_core::TaskState;
use sluice_runtime::scheduler::{Control, Input};

/// At most this many bytes of log per call.
pub const MAX_LOG_CHUNK: u64 = 1 << 20;

type TaskPath = Path<(String, String, String)>;

/// The task instances of a run, in topological order.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/runs/{run_id}/tasks", operation_id = "list_task_instances", tag = "tasks",
    params(("dag_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = [TaskInstanceView]), (status = 404, body = ErrorBody)))]
pub async fn list(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<Vec<TaskInstanceView>>> {
    let Path((dag_id, run_id)) = path?;
    let (record, plan) = api.run(&dag_id, &run_id)?;
    let attempts = api
        .store
        .attempts_of_run(&dag_id, record.state.logical_date)?;
    Ok(Json(task_instances(&record, &plan, &attempts)))
}

/// One task instance with every attempt: timing, result, error, executor handle (an EMR
/// step id, a process id).
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/runs/{run_id}/tasks/{task_id}", operation_id = "get_task_instance", tag = "tasks",
    params(("dag_id" = String, Path), ("run_id" = String, Path), ("task_id" = String, Path)),
    responses((status = 200, body = TaskInstanceDetail), (status = 404, body = ErrorBody)))]
pub async fn detail(
    State(api): State<Api>,
    path: Result<TaskPath, PathRejection>,
) -> ApiResult<Json<TaskInstanceDetail>> {
    let Path((dag_id, run_id, task_id)) = path?;
    let (record, plan) = api.run(&dag_id, &run_id)?;
    let attempts = api
        .store
        .attempts_of_run(&dag_id, record.state.logical_date)?;
    let instance = task_instances(&record, &plan, &attempts)
        .into_iter()
        .find(|t| t.task_id == task_id)
        .ok_or_else(|| unknown_task(&dag_id, &task_id))?;
    let mut own: Vec<_> = attempts.iter().filter(|a| a.task == task_id).collect();
    own.sort_by_key(|a| a.try_number);
    Ok(Json(TaskInstanceDetail {
        instance,
        dag_id,
        run_id,
        attempts: own.into_iter().map(attempt_view).collect(),
    }))
}

fn unknown_task(dag_id: &str, task_id: &str) -> ApiError {
    ApiError::not_found(format!("DAG `{dag_id}` has no task `{task_id}`"))
        .hint(format!("GET /api/v1/dags/{dag_id} lists its tasks"))
}

/// The state to set by hand.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MarkRequest {
    #[schema(inline)]
    pub state: MarkState,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MarkState {
    Success,
    Failed,
}

/// Mark a task instance success or failed by hand (downstream tasks follow the rules).
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/mark", operation_id = "mark_task_instance", tag = "tasks",
    params(("dag_id" = String, Path), ("run_id" = String, Path), ("task_id" = String, Path)),
    request_body = MarkRequest, security(("bearer" = [])),
    responses((status = 200, body = TaskInstanceDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn mark(
    State(api): State<Api>,
    path: Result<TaskPath, PathRejection>,
    body: Result<Json<MarkRequest>, JsonRejection>,
) -> ApiResult<Json<TaskInstanceDetail>> {
    let Path((dag_id, run_id, task_id)) = path?;
    let Json(request) = body?;
    let (_, plan) = api.run(&dag_id, &run_id)?;
    if plan.task_index(&task_id).is_none() {
        return Err(unknown_task(&dag_id, &task_id));
    }
    api.ask(|reply| Input::Control {
        command: Control::Mark {
            dag: dag_id.clone(),
            run_id: run_id.clone(),
            task: task_id.clone(),
            state: match request.state {
                MarkState::Success => TaskState::Success,
                MarkState::Failed => TaskState::Failed,
            },
        },
        reply,
    })
    .await?;
    detail(State(api), Ok(Path((dag_id, run_id, task_id)))).await
}

/// Which part of which attempt's log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    /// The attempt (default: the latest).
    #[serde(rename = "try")]
    #[param(rename = "try")]
    pub try_number: Option<u32>,
    /// First byte to return (default 0); with `tail`, ignored.
    pub offset: Option<u64>,
    /// Bytes to return at most (default and maximum 1 MiB).
    pub limit: Option<u64>,
    /// Return the last `tail` bytes instead (following a running attempt starts here).
    pub tail: Option<u64>,
}

/// A task attempt's log, by byte range or tail.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/runs/{run_id}/tasks/{task_id}/logs", operation_id = "get_task_log", tag = "tasks",
    params(("dag_id" = String, Path), ("run_id" = String, Path), ("task_id" = String, Path), LogQuery),
    responses((status = 200, body = LogChunk), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn logs(
    State(api): State<Api>,
    path: Result<TaskPath, PathRejection>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Json<LogChunk>> {
    let Path((dag_id, run_id, task_id)) = path?;
    let Query(query) = query?;
    let (record, plan) = api.run(&dag_id, &run_id)?;
    if plan.task_index(&task_id).is_none() {
        return Err(unknown_task(&dag_id, &task_id));
    }
    let attempts = api
        .store
        .attempts_of_run(&dag_id, record.state.logical_date)?;
    let attempt = attempts
        .iter()
        .filter(|a| a.task == task_id)
        .filter(|a| query.try_number.is_none_or(|t| a.try_number == t))
        .max_by_key(|a| a.try_number)
        .ok_or_else(|| {
            ApiError::not_found(match query.try_number {
                Some(t) => format!("`{task_id}` has no try {t} in {run_id}"),
                None => format!("`{task_id}` has not started in {run_id}"),
            })
        })?;
    let limit = query.limit.unwrap_or(MAX_LOG_CHUNK);
    if limit == 0 || limit > MAX_LOG_CHUNK {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_LOG_CHUNK} bytes"
        )));
    }
    // The path is computed here from ids the DAG's validation bounds, never taken from a
    // record: a log is read only from under `<state>/logs`.
    let path = api
        .store
        .log_path(&dag_id, &record.state.run_id, &task_id, attempt.try_number);
    let (offset, tail) = (query.offset.unwrap_or(0), query.tail);
    let read = tokio::task::spawn_blocking(move || read_range(&path, offset, limit, tail))
        .await
        .map_err(|_| ApiError::unavailable("reading the log failed"))?;
    let (offset, size, bytes) = match read {
        Ok(chunk) => chunk,
        // Not written yet (an attempt that has just started).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0, Vec::new()),
        Err(e) => {
            return Err(ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read {}: {e}", attempt.log.display()),
            ));
        }
    };
    let next_offset = offset + bytes.len() as u64;
    Ok(Json(LogChunk {
        try_number: attempt.try_number,
        offset,
        next_offset,
        size,
        text: String::from_utf8_lossy(&bytes).into_owned(),
        complete: attempt.ended_at.is_some() && next_offset >= size,
    }))
}

/// `(offset, file size, bytes)` of the asked range.
fn read_range(
    path: &std::path::Path,
    offset: u64,
    limit: u64,
    tail: Option<u64>,
) -> std::io::Result<(u64, u64, Vec<u8>)> {
    let mut file = std::fs::File::open(path)?;
    let size = file.metadata()?.len();
    let start = match tail {
        Some(tail) => size.saturating_sub(tail.min(limit)),
        None => offset.min(size),
    };
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.take(limit).read_to_end(&mut bytes)?;
    Ok((start, size, bytes))
}
