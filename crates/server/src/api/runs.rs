//! Runs: list (filters, paging), detail, trigger, clear; the interval audit.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::Api;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::views::{AuditReport, RunDetail, RunPage, RunSummary, Triggered, task_instances};
use sluice_core::{RunKind, RunStatus};
use sluice_runtime::scheduler::{Control, Input};

pub const DEFAULT_LIMIT: usize = 25;
pub const MAX_LIMIT: usize = 500;

/// Which runs, newest first.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RunFilter {
    /// Only runs in this state.
    #[param(inline)]
    pub state: Option<RunStateFilter>,
    /// Only runs of this type.
    #[param(inline)]
    pub run_type: Option<RunTypeFilter>,
    /// Only runs whose logical date is at or after this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// Only runs whose logical date is before this instant (RFC 3339).
    pub to: Option<DateTime<Utc>>,
    /// Runs to skip (paging).
    pub offset: Option<usize>,
    /// Runs per page (default 25, at most 500).
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStateFilter {
    Queued,
    Running,
    Success,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunTypeFilter {
    Scheduled,
    Manual,
    Backfill,
}

/// Checks a time range: both ends optional, `from` before `to`.
pub fn time_range(
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> ApiResult<(DateTime<Utc>, DateTime<Utc>)> {
    let from = from.unwrap_or(DateTime::<Utc>::MIN_UTC);
    let to = to.unwrap_or(DateTime::<Utc>::MAX_UTC);
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "`from` ({from}) must be before `to` ({to})"
        )));
    }
    Ok((from, to))
}

/// A DAG's runs, newest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/runs", operation_id = "list_runs", tag = "runs",
    params(("dag_id" = String, Path), RunFilter),
    responses((status = 200, body = RunPage), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn list(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<RunFilter>, QueryRejection>,
) -> ApiResult<Json<RunPage>> {
    let Path(dag_id) = path?;
    let Query(filter) = query?;
    api.current_dag(&dag_id)?;
    let (from, to) = time_range(filter.from, filter.to)?;
    let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(ApiError::bad_request(format!(
            "`limit` must be 1 to {MAX_LIMIT}, not {limit}"
        )));
    }
    let offset = filter.offset.unwrap_or(0);
    let state = filter.state.map(|s| match s {
        RunStateFilter::Queued => RunStatus::Queued,
        RunStateFilter::Running => RunStatus::Running,
        RunStateFilter::Success => RunStatus::Success,
        RunStateFilter::Failed => RunStatus::Failed,
    });
    let kind = filter.run_type.map(|k| match k {
        RunTypeFilter::Scheduled => RunKind::Scheduled,
        RunTypeFilter::Manual => RunKind::Manual,
        RunTypeFilter::Backfill => RunKind::Backfill,
    });
    let mut total = 0;
    let mut runs = Vec::new();
    for run in api.store.runs_between(&dag_id, from, to).rev() {
        let run = run?;
        if state.is_some_and(|s| s != run.state.status) || kind.is_some_and(|k| k != run.state.kind)
        {
            continue;
        }
        if total >= offset && runs.len() < limit {
            runs.push(RunSummary::of(&run));
        }
        total += 1;
    }
    Ok(Json(RunPage {
        runs,
        total,
        offset,
        limit,
    }))
}

/// One run with its task instances.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/runs/{run_id}", operation_id = "get_run", tag = "runs",
    params(("dag_id" = String, Path), ("run_id" = String, Path)),
    responses((status = 200, body = RunDetail), (status = 404, body = ErrorBody)))]
pub async fn detail(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Json<RunDetail>> {
    let Path((dag_id, run_id)) = path?;
    let (record, plan) = api.run(&dag_id, &run_id)?;
    let attempts = api
        .store
        .attempts_of_run(&dag_id, record.state.logical_date)?;
    Ok(Json(RunDetail {
        run: RunSummary::of(&record),
        task_instances: task_instances(&record, &plan, &attempts),
    }))
}

/// A manual run.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerRequest {
    /// When to run. A date on the schedule runs the interval starting there; any other
    /// instant, the last interval closed at that time (Airflow's manual runs). Default: the
    /// last interval closed now, run again (on the current version, with this conf) if it
    /// already had a finished run; an unscheduled DAG gets a new run at this second.
    pub logical_date: Option<DateTime<Utc>>,
    /// Parameters for the run's templates (`{{ dag_run.conf }}`): a JSON object.
    #[schema(value_type = Option<Object>)]
    pub conf: Option<serde_json::Value>,
}

/// Trigger a manual run.
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/runs", operation_id = "trigger_run", tag = "runs",
    params(("dag_id" = String, Path)), request_body = TriggerRequest,
    security(("bearer" = [])),
    responses((status = 201, body = Triggered), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn trigger(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<TriggerRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Triggered>)> {
    let Path(dag_id) = path?;
    let Json(request) = body?;
    let (_, dag) = api.current_dag(&dag_id)?;
    let conf = request.conf.unwrap_or(serde_json::Value::Null);
    if !(conf.is_object() || conf.is_null()) {
        return Err(ApiError::bad_request("`conf` must be a JSON object"));
    }
    // Refused here with a 400, by the rule the loop keeps too.
    sluice_model::spec::params::check_conf(&dag.param_specs, dag.allow_undeclared_conf, &conf)
        .map_err(|e| ApiError::bad_request(e.to_string()).hint(e.hint()))?;
    let message = api
        .ask(|reply| Input::Control {
            command: Control::Trigger {
                dag: dag_id.clone(),
                logical_date: request.logical_date,
                conf,
            },
            reply,
        })
        .await?;
    // The run's interval follows the schedule: the answer names the run (created, or the
    // interval's run started again).
    let run_id = sluice_runtime::scheduler::control::triggered_run_id(&message)
        .map(str::to_owned)
        .ok_or_else(|| ApiError::internal(format!("the scheduler answered `{message}`")))?;
    let logical_date = sluice_runtime::scheduler::control::logical_date_of(&run_id)
        .ok_or_else(|| ApiError::internal(format!("`{run_id}` names no date")))?;
    Ok((
        StatusCode::CREATED,
        Json(Triggered {
            run_id,
            dag_id,
            logical_date,
            message,
        }),
    ))
}

/// Which task instances of a run to clear.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClearRequest {
    /// Only these tasks (default: all).
    #[serde(default)]
    pub tasks: Vec<String>,
    /// Also everything downstream of them.
    #[serde(default)]
    pub downstream: bool,
    /// Only task instances that failed.
    #[serde(default)]
    pub failed_only: bool,
}

/// Clear task instances so they run again (the run reopens).
#[utoipa::path(post, path = "/api/v1/dags/{dag_id}/runs/{run_id}/clear", operation_id = "clear_run", tag = "runs",
    params(("dag_id" = String, Path), ("run_id" = String, Path)), request_body = ClearRequest,
    security(("bearer" = [])),
    responses((status = 200, body = RunDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)))]
pub async fn clear(
    State(api): State<Api>,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Json<ClearRequest>, JsonRejection>,
) -> ApiResult<Json<RunDetail>> {
    let Path((dag_id, run_id)) = path?;
    let Json(request) = body?;
    let (_, plan) = api.run(&dag_id, &run_id)?;
    if let Some(unknown) = request.tasks.iter().find(|t| plan.task_index(t).is_none()) {
        return Err(ApiError::bad_request(format!(
            "DAG `{dag_id}` has no task `{unknown}`"
        )));
    }
    api.ask(|reply| Input::Control {
        command: Control::Clear {
            dag: dag_id.clone(),
            run_id: run_id.clone(),
            tasks: request.tasks,
            downstream: request.downstream,
            failed_only: request.failed_only,
        },
        reply,
    })
    .await?;
    detail(State(api), Ok(Path((dag_id, run_id)))).await
}

/// The audited range.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// First instant (RFC 3339).
    pub from: DateTime<Utc>,
    /// End (RFC 3339); whole intervals inside `[from, to)` are audited.
    pub to: DateTime<Utc>,
}

/// Every interval of a range with its ledger status: the proof that each was processed.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/audit", operation_id = "audit_intervals", tag = "runs",
    params(("dag_id" = String, Path), AuditQuery),
    responses((status = 200, body = AuditReport), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn audit(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<Json<AuditReport>> {
    let Path(dag_id) = path?;
    let Query(range) = query?;
    let (from, to) = time_range(Some(range.from), Some(range.to))?;
    let (_, dag) = api.current_dag(&dag_id)?;
    let report = sluice_store::reports::audit(&api.store, &dag, from, to).map_err(|e| {
        let hint = e.hint();
        match e {
            sluice_store::reports::AuditError::Store(e) => ApiError::from(e),
            other => {
                let error = ApiError::bad_request(other.to_string());
                match hint {
                    Some(hint) => error.hint(hint),
                    None => error,
                }
            }
        }
    })?;
    Ok(Json(report))
}

/// The range of an SLA report (default: the last 24 hours).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SlaQuery {
    /// Runs with logical dates from this instant (RFC 3339).
    pub from: Option<DateTime<Utc>>,
    /// … to this one.
    pub to: Option<DateTime<Utc>>,
}

/// Processing latency (interval end → success) of the DAG's scheduled runs as p50/p95/max,
/// and the SLA warnings and breaches raised, with their notifications' delivery.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}/sla", operation_id = "sla_report", tag = "runs",
    params(("dag_id" = String, Path), SlaQuery),
    responses((status = 200, body = sluice_store::reports::SlaReport), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)))]
pub async fn sla(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<SlaQuery>, QueryRejection>,
) -> ApiResult<Json<sluice_store::reports::SlaReport>> {
    let Path(dag_id) = path?;
    let Query(range) = query?;
    api.current_dag(&dag_id)?;
    let to = range.to.unwrap_or_else(Utc::now);
    let from = range.from.unwrap_or(to - chrono::TimeDelta::days(1));
    let (from, to) = time_range(Some(from), Some(to))?;
    Ok(Json(sluice_store::reports::sla_report(
        &api.store, &dag_id, from, to,
    )?))
}
