//! A DAG's history pages: the run list (paged, filtered by state) and the interval calendar
//! (every interval of a range coloured by its ledger status: the completeness proof); and
//! its backfill history for the DAG page.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use chrono::{DateTime, Datelike, TimeDelta, Utc};
use chrono_tz::Tz;
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::{error_page, render};
use crate::api::Api;
use crate::api::error::ApiError;
use crate::api::views::RunSummary;

/// Runs on one page of the run list.
pub const RUNS_PER_PAGE: usize = 50;
/// Days the calendar shows when no range is asked for.
const DEFAULT_CALENDAR_DAYS: i64 = 7;
/// Most intervals one calendar draws (31 days of 15-minute intervals).
const MAX_CALENDAR_INTERVALS: usize = 31 * 96;

#[derive(Debug, Default, Deserialize)]
pub struct RunListQuery {
    #[serde(default)]
    page: usize,
    #[serde(default)]
    state: String,
}

/// `/ui/dags/{dag}/runs`: every run, newest first, a page at a time.
pub async fn runs(
    State(api): State<Api>,
    Path(dag_id): Path<String>,
    query: Result<Query<RunListQuery>, QueryRejection>,
) -> Response {
    let query = query.map(|Query(q)| q).unwrap_or_default();
    if let Err(e) = api.current_dag(&dag_id) {
        return error_page(e);
    }
    let state = match query.state.as_str() {
        "" | "queued" | "running" | "success" | "failed" => query.state.clone(),
        other => {
            return error_page(
                ApiError::bad_request(format!("no run state `{other}`"))
                    .hint("choose queued, running, success or failed"),
            );
        }
    };
    let page = query.page.min(1_000_000);
    let mut matching = api
        .store
        .runs_of(&dag_id)
        .rev()
        .filter_map(Result::ok)
        .filter(|r| state.is_empty() || r.state.status.name() == state);
    let runs: Vec<RunSummary> = matching
        .by_ref()
        .skip(page * RUNS_PER_PAGE)
        .take(RUNS_PER_PAGE)
        .map(|r| RunSummary::of(&r))
        .collect();
    let more = matching.next().is_some();
    let rows: Vec<_> = runs
        .iter()
        .map(|r| {
            context! {
                run_id => r.run_id.clone(),
                run_type => r.run_type.clone(),
                state => r.state.clone(),
                interval => format!("{} → {}", second(r.data_interval.start), second(r.data_interval.end)),
                started => r.started_at.map(second),
                ended => r.ended_at.map(second),
                duration => r.started_at.zip(r.ended_at).map(|(s, e)| seconds(e - s)),
                href => format!("/ui/dags/{dag_id}/runs/{}", r.run_id),
            }
        })
        .collect();
    render(
        "runs.html",
        context! {
            title => format!("{dag_id} · runs"),
            dag_id,
            runs => rows,
            page,
            state,
            previous => page.checked_sub(1),
            next => more.then_some(page + 1),
            per_page => RUNS_PER_PAGE,
        },
    )
}

/// A DAG's newest backfills, newest first, each with its progress (the DAG page's list).
pub fn backfill_rows(api: &Api, dag_id: &str, limit: usize) -> Vec<Value> {
    api.store
        .backfill_history(dag_id, limit)
        .unwrap_or_default()
        .iter()
        .map(|b| {
            let view = crate::api::views::backfill_view(b, &api.store);
            context! {
                created_at => second(view.created_at),
                range => format!("{} → {}", second(view.from), second(view.to)),
                total => view.total,
                reprocess => view.reprocess,
                state => view.state,
                done => view.progress.done,
                succeeded => view.progress.succeeded,
                failed => view.progress.failed,
            }
        })
        .collect()
}

/// A time to the second, UTC.
pub fn second(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%SZ").to_string()
}

/// A duration for people: `42s`, `3m07s`, `1h02m03s`.
pub fn seconds(d: TimeDelta) -> String {
    let s = d.num_seconds().max(0);
    if s >= 3600 {
        format!("{}h{:02}m{:02}s", s / 3600, s % 3600 / 60, s % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct CalendarQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// `utc` (default) or `dag`: the zone days and times are shown in.
    #[serde(default)]
    tz: String,
}

#[derive(Serialize)]
struct CalendarCell {
    status: String,
    reprocessed: bool,
    title: String,
    href: Option<String>,
}

#[derive(Serialize)]
struct CalendarDay {
    day: String,
    cells: Vec<CalendarCell>,
}

/// `/ui/dags/{dag}/calendar`: every interval of a range by day, coloured by the ledger.
pub async fn calendar(
    State(api): State<Api>,
    Path(dag_id): Path<String>,
    query: Result<Query<CalendarQuery>, QueryRejection>,
) -> Response {
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            return error_page(
                ApiError::bad_request(e.body_text())
                    .hint("from and to are RFC 3339 instants, e.g. 2025-01-01T00:00:00Z"),
            );
        }
    };
    let (_, dag) = match api.current_dag(&dag_id) {
        Ok(found) => found,
        Err(e) => return error_page(e),
    };
    let outside = |t: &Option<DateTime<Utc>>| t.is_some_and(|t| !(1970..=9999).contains(&t.year()));
    if outside(&query.from) || outside(&query.to) {
        return error_page(
            ApiError::bad_request("`from` and `to` must be in the years 1970 to 9999")
                .hint("e.g. from=2025-01-01T00:00:00Z"),
        );
    }
    let in_dag_zone = query.tz == "dag";
    let zone: Tz = if in_dag_zone {
        dag.timezone.tz()
    } else {
        chrono_tz::UTC
    };
    // Default: the week up to now, or up to the DAG's end if it has one.
    let to = query
        .to
        .unwrap_or_else(|| dag.end.map_or_else(Utc::now, |end| end.min(Utc::now())));
    let to = dag.end.map_or(to, |end| to.min(end));
    let from = query.from.unwrap_or_else(|| {
        to.checked_sub_signed(TimeDelta::days(DEFAULT_CALENDAR_DAYS))
            .unwrap_or(to)
    });
    if from >= to {
        return error_page(
            ApiError::bad_request("`from` must be before `to`").hint("give a `to` after `from`"),
        );
    }
    let report = match sluice_store::reports::audit(&api.store, &dag, from, to) {
        Ok(report) => report,
        Err(e) => {
            let hint = e.hint();
            let error = ApiError::bad_request(e.to_string());
            return error_page(match hint {
                Some(h) => error.hint(h),
                None => error,
            });
        }
    };
    if report.entries.len() > MAX_CALENDAR_INTERVALS {
        return error_page(
            ApiError::bad_request(format!(
                "the range holds {} intervals; the calendar draws at most {MAX_CALENDAR_INTERVALS}",
                report.entries.len()
            ))
            .hint("choose a shorter range, or `sluice audit` for a long one"),
        );
    }
    let local = |t: DateTime<Utc>| t.with_timezone(&zone);
    let mut days: Vec<CalendarDay> = Vec::new();
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    let mut reprocessed = 0;
    for entry in &report.entries {
        let day = local(entry.start).format("%Y-%m-%d %a").to_string();
        if days.last().is_none_or(|d| d.day != day) {
            days.push(CalendarDay {
                day,
                cells: Vec::new(),
            });
        }
        *counts.entry(entry.status.clone()).or_default() += 1;
        let again = entry.successes > 1;
        reprocessed += usize::from(again);
        let title = format!(
            "{} → {} ({}): {}{}{}",
            local(entry.start).format("%Y-%m-%d %H:%M"),
            local(entry.end).format("%H:%M"),
            zone,
            entry.status,
            entry
                .run_id
                .as_deref()
                .map(|r| format!(" · {r}"))
                .unwrap_or_default(),
            if again {
                format!(" · succeeded {} times (reprocessed)", entry.successes)
            } else {
                String::new()
            },
        );
        if let Some(today) = days.last_mut() {
            today.cells.push(CalendarCell {
                status: entry.status.clone(),
                reprocessed: again,
                title,
                href: entry
                    .run_id
                    .as_ref()
                    .map(|r| format!("/ui/dags/{dag_id}/runs/{r}")),
            });
        }
    }
    render(
        "calendar.html",
        context! {
            title => format!("{dag_id} · intervals"),
            dag_id,
            from => from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            to => to.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            zone => zone.to_string(),
            dag_zone => dag.timezone.tz().to_string(),
            in_dag_zone,
            intervals => report.intervals,
            gaps => report.gaps,
            reprocessed,
            counts,
            days => Value::from(Serde(&days)),
        },
    )
}
