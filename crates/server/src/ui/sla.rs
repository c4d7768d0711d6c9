//! SLA misses (`/ui/sla`): every warning and breach raised, across DAGs or for one, newest
//! first, with the run, when it was due, what the run was doing, and each notification's
//! delivery (Airflow's SLA Misses list).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use chrono::{TimeDelta, Utc};
use minijinja::context;
use serde::Deserialize;

use super::history::second;
use super::{error_page, render};
use crate::api::Api;
use crate::api::error::ApiError;

/// Days of logical dates looked at when none are asked for, and at most.
const DEFAULT_DAYS: i64 = 7;
const MAX_DAYS: i64 = 366;
/// Most rows one page lists.
const MAX_ROWS: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub struct SlaQuery {
    #[serde(default)]
    dag: String,
    /// `warn`, `breach`, or empty for both.
    #[serde(default)]
    kind: String,
    days: Option<i64>,
}

pub async fn misses(
    State(api): State<Api>,
    query: Result<Query<SlaQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return error_page(
                ApiError::bad_request(e.body_text()).hint("days is a whole number, e.g. days=7"),
            );
        }
    };
    let days = query.days.unwrap_or(DEFAULT_DAYS);
    if !(1..=MAX_DAYS).contains(&days) {
        return error_page(
            ApiError::bad_request(format!("days must be 1 to {MAX_DAYS}, not {days}"))
                .hint("e.g. days=7"),
        );
    }
    let kind = match query.kind.as_str() {
        "" | "warn" | "breach" => query.kind.clone(),
        other => {
            return error_page(
                ApiError::bad_request(format!("no SLA kind `{other}`"))
                    .hint("choose warn or breach, or leave it out for both"),
            );
        }
    };
    let dag_ids = api.store.dag_ids().unwrap_or_default();
    let dag: String = query.dag.chars().take(200).collect();
    if !dag.is_empty() && !dag_ids.contains(&dag) {
        return error_page(
            ApiError::not_found(format!("no DAG `{dag}`"))
                .hint("pick a DAG from the list, or leave it out for every DAG"),
        );
    }
    let to = Utc::now() + TimeDelta::days(1);
    let from = Utc::now() - TimeDelta::days(days);
    let mut events = Vec::new();
    for id in dag_ids.iter().filter(|id| dag.is_empty() || **id == dag) {
        events.extend(
            api.store
                .sla_events_between(id, from, to)
                .unwrap_or_default()
                .into_iter()
                .filter(|e| kind.is_empty() || e.kind.name() == kind),
        );
    }
    events.sort_by_key(|e| std::cmp::Reverse(e.raised_at));
    let total = events.len();
    events.truncate(MAX_ROWS);
    let rows: Vec<_> = events
        .iter()
        .map(|e| {
            let delivered = e
                .deliveries
                .iter()
                .filter(|d| d.delivered_at.is_some())
                .count();
            let gave_up = e.deliveries.iter().filter(|d| d.gave_up).count();
            context! {
                dag => e.dag.clone(),
                run_id => e.run_id.clone(),
                href => format!("/ui/dags/{}/runs/{}", e.dag, e.run_id),
                kind => e.kind.name(),
                interval_end => second(e.interval_end),
                due => second(e.due),
                raised_at => second(e.raised_at),
                late_by => super::history::seconds(e.raised_at - e.interval_end),
                run_state => e.run_state.clone(),
                reason => e.reason.clone(),
                notified => if e.deliveries.is_empty() {
                    "no target".to_owned()
                } else {
                    format!("{delivered}/{} delivered{}", e.deliveries.len(),
                        if gave_up > 0 { format!(", {gave_up} gave up") } else { String::new() })
                },
            }
        })
        .collect();
    render(
        "sla.html",
        context! {
            title => "SLA misses",
            rows,
            total,
            shown_max => MAX_ROWS,
            dag,
            dags => dag_ids,
            kind,
            days,
        },
    )
}
