//! DAGs: list, detail, pause/unpause.

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, State};
use serde::Deserialize;
use utoipa::ToSchema;

use super::Api;
use super::error::{ApiResult, ErrorBody};
use super::views::{
    DagDetail, DagList, DagSummary, ImportErrorList, Interval, RunBrief, TaskSpec,
    import_error_view, name_of,
};
use sluice_core::DagPlan;
use sluice_model::spec::Dag;
use sluice_runtime::scheduler::{Control, Input};
use sluice_store::DagRecord;

const RECENT_RUNS: usize = 10;

/// The next interval a scheduled run will be created for (none past the DAG's `end`).
pub(crate) fn next_interval(
    dag: &Dag,
    record: &DagRecord,
) -> Option<sluice_model::schedule::DataInterval> {
    let (schedule, start) = (dag.schedule.as_ref()?, record.next_start?);
    schedule
        .intervals(dag.timezone.tz(), start)
        .next()
        .filter(|i| dag.end.is_none_or(|end| i.end <= end))
}

fn summary(
    api: &Api,
    record: &DagRecord,
    dag: &Dag,
    import_errors: &[sluice_store::ImportError],
) -> ApiResult<DagSummary> {
    let next_interval = next_interval(dag, record).map(|i| Interval {
        start: i.start,
        end: i.end,
    });
    let mut recent_runs = Vec::new();
    for run in api.store.runs_of(&dag.dag).rev().take(RECENT_RUNS) {
        let run = run?;
        recent_runs.push(RunBrief {
            run_id: run.state.run_id.clone(),
            state: name_of(&run.state.status),
            logical_date: run.state.logical_date,
        });
    }
    Ok(DagSummary {
        dag_id: dag.dag.clone(),
        description: dag.description.clone(),
        owner: dag.owner.clone(),
        tags: dag.tags.clone(),
        schedule: dag.schedule.as_ref().map(ToString::to_string),
        timezone: dag.timezone.to_string(),
        is_paused: record.paused,
        next_interval,
        recent_runs,
        version: record.version.clone(),
        import_error: import_errors
            .iter()
            .find(|e| e.kept_dag.as_deref() == Some(dag.dag.as_str()))
            .map(|e| e.message.lines().next().unwrap_or_default().to_owned()),
    })
}

/// The DAG files that did not load at the scheduler's last read of its folder, each with
/// where (file:line:col) and why. A DAG whose file broke keeps its last good version.
#[utoipa::path(get, path = "/api/v1/import-errors", operation_id = "list_import_errors",
    tag = "dags",
    responses((status = 200, body = ImportErrorList), (status = 401, body = ErrorBody)))]
pub async fn import_errors(State(api): State<Api>) -> ApiResult<Json<ImportErrorList>> {
    let import_errors = api.store.import_errors()?;
    Ok(Json(ImportErrorList {
        import_errors: import_errors.iter().map(import_error_view).collect(),
    }))
}

/// Every DAG the scheduler has loaded, with its schedule, pause state, next interval and
/// latest runs.
#[utoipa::path(get, path = "/api/v1/dags", operation_id = "list_dags", tag = "dags",
    responses((status = 200, body = DagList), (status = 401, body = ErrorBody)))]
pub async fn list(State(api): State<Api>) -> ApiResult<Json<DagList>> {
    let mut dags = Vec::new();
    let import_errors = api.store.import_errors()?;
    for dag_id in api.store.dag_ids()? {
        // A DAG known to the store whose version is gone is not served.
        if let Ok((record, dag)) = api.current_dag(&dag_id) {
            dags.push(summary(&api, &record, &dag, &import_errors)?);
        }
    }
    Ok(Json(DagList { dags }))
}

/// One DAG: its summary, tasks in topological order and definition.
#[utoipa::path(get, path = "/api/v1/dags/{dag_id}", operation_id = "get_dag", tag = "dags",
    params(("dag_id" = String, Path)),
    responses((status = 200, body = DagDetail), (status = 404, body = ErrorBody)))]
pub async fn detail(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
) -> ApiResult<Json<DagDetail>> {
    let Path(dag_id) = path?;
    let (record, dag) = api.current_dag(&dag_id)?;
    let plan = DagPlan::new(&dag);
    let tasks = plan
        .tasks
        .iter()
        .map(|t| TaskSpec {
            task_id: t.id.clone(),
            kind: dag
                .tasks
                .get(&t.id)
                .map(|spec| spec.kind.type_name().to_owned())
                .unwrap_or_default(),
            upstream: t
                .upstream
                .iter()
                .map(|&u| plan.tasks[u].id.clone())
                .collect(),
            retries: t.policy.retries,
            pool: Some(t.policy.pool.clone()).filter(|p| !p.is_empty()),
        })
        .collect();
    Ok(Json(DagDetail {
        summary: summary(&api, &record, &dag, &api.store.import_errors()?)?,
        tasks,
        max_active_runs: plan.max_active_runs,
        catchup: dag.catchup,
        start: dag.start,
        end: dag.end,
        definition: serde_json::to_value(&*dag).unwrap_or_default(),
    }))
}

/// What `PATCH /dags/{dag_id}` may change.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DagUpdate {
    pub is_paused: bool,
}

/// Pause or unpause a DAG (a paused DAG gets no new scheduled runs; running ones go on).
#[utoipa::path(patch, path = "/api/v1/dags/{dag_id}", operation_id = "update_dag", tag = "dags",
    params(("dag_id" = String, Path)), request_body = DagUpdate,
    security(("bearer" = [])),
    responses((status = 200, body = DagDetail), (status = 400, body = ErrorBody),
              (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn update(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    body: Result<Json<DagUpdate>, JsonRejection>,
) -> ApiResult<Json<DagDetail>> {
    let Path(dag_id) = path?;
    let Json(update) = body?;
    api.current_dag(&dag_id)?;
    api.ask(|reply| Input::Control {
        command: Control::Pause {
            dag: dag_id.clone(),
            paused: update.is_paused,
        },
        reply,
    })
    .await?;
    detail(State(api), Ok(Path(dag_id))).await
}
