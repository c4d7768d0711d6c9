//! A DAG's definition (`/ui/dags/{dag}/code`): the file a version was read from, with line
//! numbers, and its tasks as the scheduler compiled them (Airflow's Code and Details tabs);
//! and the templated fields a task instance rendered, for the task page.

use std::collections::BTreeMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use minijinja::{Value, context};
use serde::Deserialize;

use super::{error_page, render};
use crate::api::Api;
use crate::api::error::ApiError;
use sluice_core::DagPlan;
use sluice_model::spec::Dag;

/// Runs looked at for the versions a DAG ran lately.
const VERSION_SCAN_RUNS: usize = 200;

#[derive(Debug, Default, Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    version: String,
}

/// `/ui/dags/{dag}/code[?version=…]`: the current version unless another is asked for.
pub async fn code(
    State(api): State<Api>,
    Path(dag_id): Path<String>,
    query: Result<Query<CodeQuery>, QueryRejection>,
) -> Response {
    let (record, current) = match api.current_dag(&dag_id) {
        Ok(found) => found,
        Err(e) => return error_page(e),
    };
    let asked = query.map(|Query(q)| q.version).unwrap_or_default();
    let version = if asked.is_empty() {
        record.version.clone()
    } else {
        asked.chars().take(64).collect()
    };
    let dag = if version == record.version {
        Some(current)
    } else {
        api.store
            .version(&dag_id, &version)
            .ok()
            .flatten()
            .map(std::sync::Arc::new)
    };
    let Some(dag) = dag else {
        return error_page(
            ApiError::not_found(format!("DAG `{dag_id}` has no version `{version}`"))
                .hint("pick a version from the DAG's code page, or leave `version` out for the current one"),
        );
    };
    let source = api.store.version_source(&dag_id, &version).ok().flatten();
    // The versions the newest runs used, newest first, then the current one if none did.
    let mut versions: Vec<String> = Vec::new();
    for run in api
        .store
        .runs_of(&dag_id)
        .rev()
        .take(VERSION_SCAN_RUNS)
        .filter_map(Result::ok)
    {
        if !versions.contains(&run.dag_version) {
            versions.push(run.dag_version);
        }
    }
    if !versions.contains(&record.version) {
        versions.insert(0, record.version.clone());
    }
    render(
        "code.html",
        context! {
            title => format!("{dag_id} · code"),
            dag_id,
            version,
            current_version => record.version,
            versions,
            path => source.as_ref().map(|s| s.path.display().to_string()),
            // Masked like logs: a secret pasted into a file is not shown back.
            lines => source.as_ref().map(|s| {
                sluice_runtime::masking::mask(&s.text)
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            }),
            tasks => task_rows(&dag),
        },
    )
}

/// Each task as compiled: type, upstream, trigger rule, effective retries/timeout/pool, and
/// its templated fields as written.
fn task_rows(dag: &Dag) -> Vec<Value> {
    let plan = DagPlan::new(dag);
    plan.tasks
        .iter()
        .map(|task| {
            let spec = dag.tasks.get(&task.id);
            let upstream: Vec<String> = task
                .upstream
                .iter()
                .filter_map(|&u| plan.tasks.get(u).map(|t| t.id.clone()))
                .collect();
            context! {
                id => task.id.clone(),
                kind => spec.map(|s| s.kind.type_name()),
                description => spec.and_then(|s| s.settings.description.clone()),
                upstream,
                trigger_rule => sluice_store::reports::name_of(&task.trigger_rule),
                retries => task.policy.retries,
                retry_delay => task.policy.retry_delay.to_string(),
                timeout => task.policy.timeout.map(|t| t.to_string()),
                pool => task.policy.pool.clone(),
                fields => spec.map(|s| template_fields(&s.kind)).unwrap_or_default(),
            }
        })
        .collect()
}

/// A task kind's templated fields (path → text as written), in the kind's order.
pub fn template_fields(kind: &sluice_model::spec::TaskKind) -> Vec<(String, String)> {
    let mut kind = kind.clone();
    let mut fields = Vec::new();
    kind.visit_templates_mut(&mut |field, text| {
        fields.push((
            field.to_owned(),
            sluice_runtime::masking::mask(text).into_owned(),
        ))
    });
    fields
}

/// The task page's rendered fields: what the attempt rendered, else the fields as written
/// (a field with no template runs as written).
pub fn rendered_fields(
    api: &Api,
    dag_id: &str,
    task_id: &str,
    attempt: Option<&sluice_store::AttemptRecord>,
) -> Value {
    let written: Vec<(String, String)> = attempt
        .and_then(|a| a.dag_version.as_deref())
        .and_then(|v| api.store.version(dag_id, v).ok().flatten())
        .map(std::sync::Arc::new)
        .or_else(|| api.current_dag(dag_id).ok().map(|(_, dag)| dag))
        .and_then(|dag| dag.tasks.get(task_id).map(|t| template_fields(&t.kind)))
        .unwrap_or_default();
    let rendered: BTreeMap<String, String> =
        attempt.map(|a| a.rendered.clone()).unwrap_or_default();
    let rows: Vec<Value> = written
        .into_iter()
        .map(|(field, text)| {
            let templated = sluice_model::template::is_template(&text);
            let shown = rendered.get(&field).cloned();
            context! {
                field,
                templated,
                recorded => shown.is_some(),
                text => shown.unwrap_or(text),
            }
        })
        .collect();
    Value::from(rows)
}
