//! Data assets (`/ui/data-assets`): the asset graph (which DAG produces and consumes what)
//! and, per asset, the writes of each interval with the consumer intervals left stale.
//! Under `/ui/data-assets/`, never `/ui/assets/` (the static files, open without a token).

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use minijinja::context;

use super::history::second;
use super::{error_page, escape, render};
use crate::api::Api;
use crate::api::assets::{Catalog, HistoryQuery, catalog, stale_of_asset, summaries};
use crate::api::error::ApiError;

const BOX_W: usize = 210;
const BOX_H: usize = 30;
const ROW_GAP: usize = 14;
const COL_GAP: usize = 90;

/// DAG → asset → DAG, in three columns: producers, assets, consumers.
fn graph(assets: &Catalog) -> String {
    let mut producers: Vec<&str> = assets
        .values()
        .flat_map(|(p, _)| p.iter().map(|p| p.dag_id.as_str()))
        .collect();
    producers.sort_unstable();
    producers.dedup();
    let mut consumers: Vec<&str> = assets
        .values()
        .flat_map(|(_, c)| c.iter().map(|c| c.dag_id.as_str()))
        .collect();
    consumers.sort_unstable();
    consumers.dedup();
    let y = |row: usize| row * (BOX_H + ROW_GAP) + 10;
    let x = |column: usize| column * (BOX_W + COL_GAP) + 10;
    let rows = producers
        .len()
        .max(consumers.len())
        .max(assets.len())
        .max(1);
    let (width, height) = (x(3), y(rows));
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="asset-graph" width="{width}" height="{height}" viewBox="0 0 {width} {height}">"#
    );
    let row_of = |list: &[&str], name: &str| list.iter().position(|n| *n == name).unwrap_or(0);
    let names: Vec<&str> = assets.keys().map(String::as_str).collect();
    for (i, (made_by, read_by)) in assets.values().enumerate() {
        let ay = y(i) + BOX_H / 2;
        for p in made_by {
            let py = y(row_of(&producers, &p.dag_id)) + BOX_H / 2;
            let _ = write!(
                svg,
                r#"<line class="edge" x1="{}" y1="{py}" x2="{}" y2="{ay}"/>"#,
                x(0) + BOX_W,
                x(1)
            );
        }
        for c in read_by {
            let cy = y(row_of(&consumers, &c.dag_id)) + BOX_H / 2;
            let _ = write!(
                svg,
                r#"<line class="edge" x1="{}" y1="{ay}" x2="{}" y2="{cy}"/>"#,
                x(1) + BOX_W,
                x(2)
            );
        }
    }
    let boxes = [
        (0, &producers, "dag", "/ui/dags/"),
        (1, &names, "asset", "/ui/data-assets/"),
        (2, &consumers, "dag", "/ui/dags/"),
    ];
    for (column, list, class, href) in boxes {
        for (row, name) in list.iter().enumerate() {
            let name = escape(name);
            let _ = write!(
                svg,
                r#"<a href="{href}{name}"><g class="node {class}" data-name="{name}"><rect x="{}" y="{}" width="{BOX_W}" height="{BOX_H}" rx="4"/><text x="{}" y="{}">{name}</text></g></a>"#,
                x(column),
                y(row),
                x(column) + 8,
                y(row) + BOX_H / 2 + 5
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

pub async fn list(State(api): State<Api>) -> Response {
    let (assets, summaries) =
        match catalog(&api).and_then(|assets| Ok((summaries(&api, &assets)?, assets))) {
            Ok((summaries, assets)) => (assets, summaries),
            Err(e) => return error_page(e),
        };
    let rows: Vec<_> = summaries
        .iter()
        .map(|s| {
            context! {
                asset => s.asset.clone(),
                producers => s.producers.iter().map(|p| format!("{}.{}", p.dag_id, p.task_id)).collect::<Vec<_>>(),
                consumers => s.consumers.iter().map(|c| c.dag_id.clone()).collect::<Vec<_>>(),
                latest => s.latest.as_ref().map(|m| format!("{} (version {}, {} {})", second(m.interval.start), m.version, m.dag_id, m.run_id)),
                stale => s.stale_intervals,
            }
        })
        .collect();
    render(
        "data_assets.html",
        context! {
            title => "Data assets",
            graph => graph(&assets),
            rows,
            stale_total => api.store.stale_count(),
        },
    )
}

pub async fn asset(
    State(api): State<Api>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let (Ok(Path(asset)), Ok(Query(query))) = (path, query) else {
        return error_page(
            ApiError::bad_request("a bad asset address or query")
                .hint("from and to are RFC 3339 instants, limit a whole number"),
        );
    };
    // The stale readers, read once: for the table, and each interval's marks from the
    // records (not their text).
    let read = stale_of_asset(&api, &asset).and_then(|stale| {
        let history = crate::api::assets::asset_history_with(&api, &asset, &query, &stale)?;
        Ok((history, stale))
    });
    let (history, stale_records) = match read {
        Ok(read) => read,
        Err(e) => return error_page(e),
    };
    let left_stale = |start: chrono::DateTime<chrono::Utc>| -> Vec<String> {
        stale_records
            .iter()
            .filter(|s| {
                s.causes
                    .iter()
                    .any(|c| c.asset == asset && c.interval_start == start)
            })
            .map(|s| format!("{} {}", s.dag, second(s.interval_start)))
            .collect()
    };
    // One row per interval: its versions, the newest first-class.
    let mut intervals: BTreeMap<
        chrono::DateTime<chrono::Utc>,
        Vec<&crate::api::assets::MaterializationView>,
    > = BTreeMap::new();
    for m in &history.materializations {
        intervals.entry(m.interval.start).or_default().push(m);
    }
    let rows: Vec<_> = intervals
        .iter()
        .rev()
        .map(|(start, writes)| {
            let newest = writes.iter().max_by_key(|m| m.version);
            let stale = left_stale(*start);
            context! {
                start => second(*start),
                end => newest.map(|m| second(m.interval.end)),
                versions => writes.len(),
                version => newest.map(|m| m.version),
                dag => newest.map(|m| m.dag_id.clone()),
                run_id => newest.map(|m| m.run_id.clone()),
                href => newest.map(|m| format!("/ui/dags/{}/runs/{}", m.dag_id, m.run_id)),
                task => newest.map(|m| format!("{} try {}", m.task_id, m.try_number)),
                at => newest.map(|m| second(m.at)),
                stale,
            }
        })
        .collect();
    let stale: Vec<_> = history
        .stale
        .iter()
        .map(|s| {
            context! {
                dag => s.dag_id.clone(),
                start => second(s.interval.start),
                end => second(s.interval.end),
                since => second(s.since),
                action => match (&s.held, s.rerun) {
                    (Some(why), _) => format!("held: {why}"),
                    (None, true) => "reruns when its inputs settle".to_owned(),
                    (None, false) => "mark_stale: not rerun".to_owned(),
                },
                causes => s.causes.clone(),
            }
        })
        .collect();
    render(
        "data_asset.html",
        context! {
            title => format!("Asset {}", history.asset),
            asset => history.asset.clone(),
            producers => history.producers.iter().map(|p| context! { dag => p.dag_id.clone(), task => p.task_id.clone() }).collect::<Vec<_>>(),
            consumers => history.consumers.iter().map(|c| context! {
                dag => c.dag_id.clone(),
                mapping => format!("{}{}{}", c.intervals,
                    c.offset.as_ref().map(|o| format!(", offset {o}")).unwrap_or_default(),
                    if c.shift == [0, 0] { String::new() } else { format!(", shift [{}, {}]", c.shift[0], c.shift[1]) }),
                policy => format!("{} (at most {} reruns)", c.on_upstream_change, c.max_reruns),
            }).collect::<Vec<_>>(),
            rows,
            stale,
            writes => history.materializations.len(),
        },
    )
}
