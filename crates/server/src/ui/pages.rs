//! The page handlers: each gathers what its template shows from the store.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Utc};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;

use super::{error_page, render, svg};
use crate::api::Api;
use crate::api::views::{RunSummary, attempt_view, name_of, task_instances};
use sluice_core::DagPlan;
use sluice_core::sla::SlaKind;

/// Runs shown in a DAG's grid.
const GRID_RUNS: usize = 25;

fn short(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

#[derive(Serialize)]
struct DagRow {
    id: String,
    /// The newest finished run failed.
    failing: bool,
    description: Option<String>,
    owner: Option<String>,
    tags: Vec<String>,
    schedule: Option<String>,
    paused: bool,
    next_interval: Option<String>,
    recent: Vec<Cell>,
    sla_warnings: usize,
    sla_breaches: usize,
}

#[derive(Serialize, Clone)]
struct Cell {
    state: String,
    title: String,
    href: String,
}

fn sla_counts(api: &Api, dag: &str) -> (usize, usize) {
    let to = Utc::now();
    let events = api
        .store
        .sla_events_between(dag, to - chrono::TimeDelta::days(1), to)
        .unwrap_or_default();
    let count = |kind| events.iter().filter(|e| e.kind == kind).count();
    (count(SlaKind::Warn), count(SlaKind::Breach))
}

/// The DAG list's search and filters (`/?q=…&tag=…&owner=…&status=paused|active|failing`).
#[derive(Debug, Default, serde::Deserialize, Serialize)]
pub struct DagFilter {
    #[serde(default)]
    q: String,
    #[serde(default)]
    tag: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    status: String,
}

/// Longest search text or filter value read; the rest is ignored.
const MAX_FILTER_CHARS: usize = 200;

impl DagFilter {
    fn bounded(mut self) -> DagFilter {
        for value in [
            &mut self.q,
            &mut self.tag,
            &mut self.owner,
            &mut self.status,
        ] {
            *value = value.trim().chars().take(MAX_FILTER_CHARS).collect();
        }
        self
    }

    fn keeps(&self, row: &DagRow) -> bool {
        let q = self.q.to_lowercase();
        let matches_text = q.is_empty()
            || row.id.to_lowercase().contains(&q)
            || row
                .description
                .as_deref()
                .is_some_and(|d| d.to_lowercase().contains(&q));
        matches_text
            && (self.tag.is_empty() || row.tags.contains(&self.tag))
            && (self.owner.is_empty() || row.owner.as_deref() == Some(self.owner.as_str()))
            && match self.status.as_str() {
                "paused" => row.paused,
                "active" => !row.paused,
                "failing" => row.failing,
                _ => true,
            }
    }
}

pub async fn dags(
    State(api): State<Api>,
    filter: Result<Query<DagFilter>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let filter = filter.map(|Query(f)| f).unwrap_or_default().bounded();
    let mut rows = Vec::new();
    for dag_id in api.store.dag_ids().unwrap_or_default() {
        let Ok((record, dag)) = api.current_dag(&dag_id) else {
            continue;
        };
        let failing = api
            .store
            .runs_of(&dag_id)
            .rev()
            .filter_map(Result::ok)
            .take(50)
            .find(|r| r.state.status.is_finished())
            .is_some_and(|r| r.state.status == sluice_core::RunStatus::Failed);
        let mut recent: Vec<Cell> = api
            .store
            .runs_of(&dag_id)
            .rev()
            .take(10)
            .filter_map(Result::ok)
            .map(|r| Cell {
                state: name_of(&r.state.status),
                title: format!("{} — {}", r.state.run_id, name_of(&r.state.status)),
                href: format!("/ui/dags/{dag_id}/runs/{}", r.state.run_id),
            })
            .collect();
        recent.reverse();
        let next_interval = crate::api::dags::next_interval(&dag, &record)
            .map(|i| format!("{} → {}", short(i.start), short(i.end)));
        let (sla_warnings, sla_breaches) = sla_counts(&api, &dag_id);
        rows.push(DagRow {
            id: dag_id.clone(),
            failing,
            description: dag.description.clone(),
            owner: dag.owner.clone(),
            tags: dag.tags.clone(),
            schedule: dag.schedule.as_ref().map(ToString::to_string),
            paused: record.paused,
            next_interval,
            recent,
            sla_warnings,
            sla_breaches,
        });
    }
    let mut tags: Vec<String> = rows.iter().flat_map(|r| r.tags.clone()).collect();
    tags.sort();
    tags.dedup();
    let mut owners: Vec<String> = rows.iter().filter_map(|r| r.owner.clone()).collect();
    owners.sort();
    owners.dedup();
    let total = rows.len();
    rows.retain(|r| filter.keeps(r));
    render(
        "dags.html",
        context! {
            title => "DAGs",
            total,
            tags,
            owners,
            filter => Value::from(Serde(&filter)),
            dags => Value::from(Serde(&rows)),
            import_errors => import_errors(&api),
        },
    )
}

/// The DAG files that did not load, for the banner of the DAG pages.
fn import_errors(api: &Api) -> Value {
    let errors: Vec<_> = api
        .store
        .import_errors()
        .unwrap_or_default()
        .iter()
        .map(crate::api::views::import_error_view)
        .collect();
    Value::from(Serde(&errors))
}

#[derive(Serialize)]
struct GridRun {
    run_id: String,
    state: String,
    label: String,
    run_type: String,
    href: String,
}

#[derive(Serialize)]
struct GridRow {
    task_id: String,
    cells: Vec<Cell>,
}

/// Which runs the grid shows: `offset` runs back from the newest, of those whose logical
/// date is in `[from, to)` when a range is given.
#[derive(Debug, Default, serde::Deserialize)]
pub struct GridQuery {
    #[serde(default)]
    offset: usize,
    /// RFC 3339; the form sends a field left blank as empty: no bound.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// A grid bound: none when blank, else an RFC 3339 instant.
fn bound(text: &str) -> Result<Option<DateTime<Utc>>, Box<Response>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|e| {
            Box::new(error_page(
                crate::api::error::ApiError::bad_request(format!(
                    "`{}` is not an instant: {e}",
                    text.chars().take(64).collect::<String>()
                ))
                .hint("from and to are RFC 3339 instants, e.g. 2025-01-01T00:00:00Z"),
            ))
        })
}

/// Backfills the DAG page lists.
const BACKFILL_HISTORY: usize = 10;

pub async fn dag(
    State(api): State<Api>,
    Path(dag_id): Path<String>,
    query: Result<Query<GridQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let (record, dag) = match api.current_dag(&dag_id) {
        Ok(found) => found,
        Err(e) => return error_page(e),
    };
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return error_page(
                crate::api::error::ApiError::bad_request(e.body_text())
                    .hint("from and to are RFC 3339 instants, e.g. 2025-01-01T00:00:00Z"),
            );
        }
    };
    let offset = query.offset.min(1_000_000);
    let (asked_from, asked_to) = match (bound(&query.from), bound(&query.to)) {
        (Ok(from), Ok(to)) => (from, to),
        (Err(page), _) | (_, Err(page)) => return *page,
    };
    let ranged = asked_from.is_some() || asked_to.is_some();
    let from = asked_from.unwrap_or(DateTime::UNIX_EPOCH);
    let to = asked_to.unwrap_or_else(far_future);
    if ranged && (from >= to || from < DateTime::UNIX_EPOCH || to > far_future()) {
        return error_page(
            crate::api::error::ApiError::bad_request(
                "`from` must be before `to`, both in the years 1970 to 9999",
            )
            .hint("e.g. from=2025-01-01T00:00:00Z&to=2025-01-02T00:00:00Z"),
        );
    }
    let plan = DagPlan::new(&dag);
    // Without a range every run, whatever its logical date.
    let runs_in_range: Box<dyn DoubleEndedIterator<Item = _>> = if ranged {
        Box::new(api.store.runs_between(&dag_id, from, to))
    } else {
        Box::new(api.store.runs_of(&dag_id))
    };
    let mut newest_first = runs_in_range.rev().skip(offset);
    let mut runs: Vec<_> = newest_first
        .by_ref()
        .take(GRID_RUNS)
        .filter_map(Result::ok)
        .collect();
    let older = newest_first.next().is_some().then_some(offset + GRID_RUNS);
    let newer = (offset > 0).then(|| offset.saturating_sub(GRID_RUNS));
    runs.reverse();
    // Each run's task states by task id (older runs may have another DAG version).
    let mut plans: BTreeMap<String, Option<DagPlan>> = BTreeMap::new();
    let states: Vec<BTreeMap<String, (String, u32)>> = runs
        .iter()
        .map(|run| {
            let plan = plans.entry(run.dag_version.clone()).or_insert_with(|| {
                api.store
                    .version(&dag_id, &run.dag_version)
                    .ok()
                    .flatten()
                    .map(|d| DagPlan::new(&d))
            });
            plan.as_ref()
                .map(|p| {
                    p.tasks
                        .iter()
                        .zip(&run.state.tasks)
                        .map(|(t, i)| (t.id.clone(), (i.state.name().to_owned(), i.try_number)))
                        .collect()
                })
                .unwrap_or_default()
        })
        .collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let rows: Vec<GridRow> = plan
        .tasks
        .iter()
        .map(|task| GridRow {
            task_id: task.id.clone(),
            cells: runs
                .iter()
                .zip(&states)
                .map(|(run, by_task)| {
                    let (state, tries) = by_task
                        .get(&task.id)
                        .cloned()
                        .unwrap_or_else(|| ("absent".into(), 0));
                    if state != "absent" {
                        *counts.entry(state.clone()).or_default() += 1;
                    }
                    Cell {
                        title: format!(
                            "{} · {} · {state} · try {tries}",
                            task.id, run.state.run_id
                        ),
                        href: format!(
                            "/ui/dags/{dag_id}/runs/{}/tasks/{}",
                            run.state.run_id, task.id
                        ),
                        state,
                    }
                })
                .collect(),
        })
        .collect();
    let grid_runs: Vec<GridRun> = runs
        .iter()
        .map(|r| GridRun {
            run_id: r.state.run_id.clone(),
            state: name_of(&r.state.status),
            label: r.state.logical_date.format("%Y-%m-%d %H:%M").to_string(),
            run_type: name_of(&r.state.kind),
            href: format!("/ui/dags/{dag_id}/runs/{}", r.state.run_id),
        })
        .collect();
    let latest = states.last().cloned().unwrap_or_default();
    let graph = svg::graph(&plan, &latest, |task| {
        runs.last()
            .map(|r| format!("/ui/dags/{dag_id}/runs/{}/tasks/{task}", r.state.run_id))
    });
    let waiting: Vec<_> = runs
        .iter()
        .filter(|r| {
            r.gate
                .as_ref()
                .is_some_and(|g| g.status == sluice_store::GateStatus::Waiting)
        })
        .map(|r| {
            let gate = r.gate.as_ref();
            context! {
                run_id => r.state.run_id.clone(),
                href => format!("/ui/dags/{dag_id}/runs/{}", r.state.run_id),
                reason => gate.and_then(|g| g.reason.clone()),
                figures => gate.and_then(|g| g.figures.as_ref()).map(gate_figures),
            }
        })
        .collect();
    let backfill = api
        .store
        .backfill(&dag_id)
        .ok()
        .flatten()
        .map(|b| crate::api::views::backfill_view(&b, &api.store));
    let backfills = super::history::backfill_rows(&api, &dag_id, BACKFILL_HISTORY);
    let range = |t: Option<DateTime<Utc>>| {
        t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    };
    // The pager's links keep the range.
    let keep_range = format!(
        "{}{}",
        range(asked_from)
            .map(|f| format!("&from={f}"))
            .unwrap_or_default(),
        range(asked_to)
            .map(|t| format!("&to={t}"))
            .unwrap_or_default()
    );
    let (sla_warnings, sla_breaches) = sla_counts(&api, &dag_id);
    let params = trigger_fields(&dag);
    render(
        "dag.html",
        context! {
            title => dag_id.clone(),
            dag_id,
            description => dag.description.clone(),
            schedule => dag.schedule.as_ref().map(ToString::to_string),
            paused => record.paused,
            runs => Value::from(Serde(&grid_runs)),
            older,
            newer,
            grid_runs => GRID_RUNS,
            rows => Value::from(Serde(&rows)),
            counts,
            graph,
            waiting,
            backfill => Value::from(Serde(&backfill)),
            backfills,
            from => range(asked_from),
            to => range(asked_to),
            keep_range,
            sla_warnings,
            sla_breaches,
            import_errors => import_errors(&api),
            params,
            sla => dag.sla.as_ref().map(|s| context! {
                warn_after => s.warn_after.map(|d| d.to_string()),
                deadline => s.deadline.map(|d| d.to_string()),
            }),
        },
    )
}

/// The end of the instants a page accepts (keys hold microseconds since the epoch).
fn far_future() -> DateTime<Utc> {
    DateTime::from_timestamp(253_402_300_799, 0).unwrap_or(DateTime::UNIX_EPOCH)
}

/// The trigger form's fields, one per declared param (Airflow's trigger form from `Param`):
/// its input follows the type, its constraints become the input's, its default fills it.
fn trigger_fields(dag: &sluice_model::spec::Dag) -> Vec<Value> {
    use sluice_model::spec::params::ParamType;
    dag.param_specs
        .iter()
        .map(|(name, spec)| {
            let default = dag.params.get(name).cloned().unwrap_or_default();
            let input = match (spec.kind, &spec.choices) {
                (_, Some(_)) => "select",
                (ParamType::Boolean, _) => "checkbox",
                (ParamType::Integer | ParamType::Number, _) => "number",
                (ParamType::String, _) => "text",
                _ => "json",
            };
            let shown = match &default {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Null => String::new(),
                other => other.to_string(),
            };
            context! {
                name,
                kind => spec.kind.name(),
                input,
                value => shown,
                checked => default == serde_json::Value::Bool(true),
                choices => spec.choices.as_ref().map(|c| c.iter().map(|v| match v {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                }).collect::<Vec<_>>()),
                minimum => spec.minimum,
                maximum => spec.maximum,
                max_length => spec.max_length,
                pattern => spec.pattern.clone(),
                description => spec.description.clone(),
            }
        })
        .collect()
}

/// A gate decision's figures for people.
fn gate_figures(f: &sluice_core::gate::GateFigures) -> minijinja::Value {
    context! {
        observed_at => short(f.observed_at),
        watermark => f.watermark.map(|w| w.to_rfc3339()),
        required_watermark => f.required_watermark.to_rfc3339(),
        watermark_delay => f.watermark.map(|w| format!("{}s", (f.observed_at - w).num_seconds())),
        lag => f.lag,
        max_lag => f.max_lag,
        time_lag => format!("{}s", f.time_lag_ms / 1000),
        max_lag_time => f.max_lag_time_ms.map(|m| format!("{}s", m / 1000)),
        lag_status => name_of(&f.lag_status),
        partitions => f.partitions,
        idle_partitions => f.idle_partitions.clone(),
        behind_partitions => f.behind_partitions.clone(),
        groups => f.groups.iter().map(|g| context! {
            group => g.group.clone(),
            required => g.required,
            lag => g.lag,
            behind => g.time_lag_ms.map(|ms| format!("{}s", ms / 1000)),
            status => g.lag_status.as_ref().map(name_of),
            ok => g.ok,
        }).collect::<Vec<_>>(),
    }
}

/// A run, the plan of its DAG version and its attempts; or the error page.
fn run_with_attempts(
    api: &Api,
    dag_id: &str,
    run_id: &str,
) -> Result<
    (
        sluice_store::RunRecord,
        DagPlan,
        Vec<sluice_store::AttemptRecord>,
    ),
    Box<Response>,
> {
    let (record, plan) = api
        .run(dag_id, run_id)
        .map_err(|e| Box::new(error_page(e)))?;
    let attempts = api
        .store
        .attempts_of_run(dag_id, record.state.logical_date)
        .unwrap_or_default();
    Ok((record, plan, attempts))
}

pub async fn run(
    State(api): State<Api>,
    Path((dag_id, run_id)): Path<(String, String)>,
) -> Response {
    let (record, plan, attempts) = match run_with_attempts(&api, &dag_id, &run_id) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let instances = task_instances(&record, &plan, &attempts);
    let gantt = svg::gantt(&attempts, &plan, Utc::now(), |task| {
        format!("/ui/dags/{dag_id}/runs/{run_id}/tasks/{task}")
    });
    let gate = record.gate.as_ref().map(|g| {
        context! {
            status => name_of(&g.status),
            reason => g.reason.clone(),
            waiting_since => short(g.waiting_since),
            late_events => g.late_events,
            late_reprocessed => g.late_reprocessed,
            figures => g.figures.as_ref().map(gate_figures),
        }
    });
    // What the run reads (`consumes`): what it waits for, or the version it read.
    let inputs = record.inputs.as_ref().map(|i| {
        context! {
            status => name_of(&i.status),
            said => i.describe(),
            waiting_since => short(i.waiting_since),
            reruns => i.upstream_reruns,
            missing => i.missing.iter().map(|m| context! {
                asset => m.asset.clone(),
                start => short(m.start),
                end => short(m.end),
            }).collect::<Vec<_>>(),
        }
    });
    // What each clear would run again, for the confirmation's preview.
    let downstream: BTreeMap<String, Vec<String>> = plan
        .tasks
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let names = plan
                .downstream_closure(&[i])
                .into_iter()
                .filter_map(|d| plan.tasks.get(d).map(|d| d.id.clone()))
                .collect();
            (t.id.clone(), names)
        })
        .collect();
    let all_tasks: Vec<String> = plan.tasks.iter().map(|t| t.id.clone()).collect();
    let failed_tasks: Vec<String> = instances
        .iter()
        .filter(|t| matches!(t.state.as_str(), "failed" | "upstream_failed"))
        .map(|t| t.task_id.clone())
        .collect();
    render(
        "run.html",
        context! {
            title => run_id.clone(),
            downstream,
            all_tasks,
            failed_tasks,
            dag_id,
            run => Value::from(Serde(RunSummary::of(&record))),
            tasks => Value::from(Serde(&instances)),
            gantt,
            gate,
            inputs,
            sla => context! {
                warned_at => record.sla.warned_at.map(short),
                breached_at => record.sla.breached_at.map(short),
            },
        },
    )
}

pub async fn task(
    State(api): State<Api>,
    Path((dag_id, run_id, task_id)): Path<(String, String, String)>,
) -> Response {
    let (record, plan, attempts) = match run_with_attempts(&api, &dag_id, &run_id) {
        Ok(found) => found,
        Err(page) => return *page,
    };
    let Some(instance) = task_instances(&record, &plan, &attempts)
        .into_iter()
        .find(|t| t.task_id == task_id)
    else {
        return error_page(crate::api::error::ApiError::not_found(format!(
            "DAG `{dag_id}` has no task `{task_id}`"
        )));
    };
    let mut own: Vec<_> = attempts.iter().filter(|a| a.task == task_id).collect();
    own.sort_by_key(|a| a.try_number);
    let views: Vec<_> = own.iter().map(|a| attempt_view(a)).collect();
    let latest = own.last().copied();
    let rendered = super::code::rendered_fields(&api, &dag_id, &task_id, latest);
    // What "Clear with downstream" runs again, for its confirmation.
    let downstream: Vec<String> = plan
        .task_index(&task_id)
        .map(|i| plan.downstream_closure(&[i]))
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| plan.tasks.get(d).map(|t| t.id.clone()))
        .collect();
    render(
        "task.html",
        context! {
            downstream,
            title => format!("{task_id} · {run_id}"),
            dag_id,
            run_id,
            run_state => name_of(&record.state.status),
            task => Value::from(Serde(&instance)),
            attempts => Value::from(Serde(&views)),
            rendered,
            rendered_try => latest.map(|a| a.try_number),
        },
    )
}
