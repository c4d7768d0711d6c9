//! Pictures drawn on the server as SVG: a DAG's graph (tasks in columns by depth, edges
//! from upstream to downstream, coloured by the latest run) and a run's Gantt chart (one
//! bar per attempt on a shared time axis).

use std::collections::BTreeMap;
use std::fmt::Write;

use chrono::{DateTime, Utc};

use super::escape;
use sluice_core::DagPlan;
use sluice_store::{AttemptRecord, AttemptResult};

const BOX_W: usize = 160;
const BOX_H: usize = 34;
const COL_GAP: usize = 60;
const ROW_GAP: usize = 18;

/// The graph of a plan; `states` colours each task (by id), `link` makes it clickable.
pub fn graph(
    plan: &DagPlan,
    states: &BTreeMap<String, (String, u32)>,
    link: impl Fn(&str) -> Option<String>,
) -> String {
    // Depth: the longest path from a root (tasks are in topological order).
    let mut depth = vec![0usize; plan.tasks.len()];
    for (i, task) in plan.tasks.iter().enumerate() {
        depth[i] = task
            .upstream
            .iter()
            .map(|&u| depth[u] + 1)
            .max()
            .unwrap_or(0);
    }
    let mut row_in_column: BTreeMap<usize, usize> = BTreeMap::new();
    let position: Vec<(usize, usize)> = depth
        .iter()
        .map(|&d| {
            let row = row_in_column.entry(d).or_default();
            let at = (d * (BOX_W + COL_GAP) + 10, *row * (BOX_H + ROW_GAP) + 10);
            *row += 1;
            at
        })
        .collect();
    let width = (depth.iter().max().copied().unwrap_or(0) + 1) * (BOX_W + COL_GAP) + 10;
    let height = row_in_column.values().max().copied().unwrap_or(1) * (BOX_H + ROW_GAP) + 10;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="graph" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="DAG graph">"#
    );
    out.push_str(r##"<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#8a94a6"/></marker></defs>"##);
    for (i, task) in plan.tasks.iter().enumerate() {
        for &u in &task.upstream {
            let (x1, y1) = (position[u].0 + BOX_W, position[u].1 + BOX_H / 2);
            let (x2, y2) = (position[i].0, position[i].1 + BOX_H / 2);
            let mid = (x1 + x2) / 2;
            let _ = write!(
                out,
                r#"<path class="edge" d="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}" marker-end="url(#arrow)"/>"#
            );
        }
    }
    for (i, task) in plan.tasks.iter().enumerate() {
        let (x, y) = position[i];
        let state = states.get(&task.id).map_or("none", |s| s.0.as_str());
        let id = escape(&task.id);
        let label = if task.id.chars().count() > 20 {
            format!("{}…", escape(&task.id.chars().take(19).collect::<String>()))
        } else {
            id.clone()
        };
        let node = format!(
            r#"<g class="node" data-task="{id}" data-state="{state}"><title>{id}: {state}</title><rect class="state-{state}" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6"/><text x="{}" y="{}">{label}</text></g>"#,
            x + 10,
            y + BOX_H / 2 + 5
        );
        match link(&task.id) {
            Some(href) => {
                let _ = write!(out, r#"<a href="{}">{node}</a>"#, escape(&href));
            }
            None => out.push_str(&node),
        }
    }
    out.push_str("</svg>");
    out
}

/// The Gantt chart of a run's attempts; unfinished bars end at `now`.
pub fn gantt(
    attempts: &[AttemptRecord],
    plan: &DagPlan,
    now: DateTime<Utc>,
    link: impl Fn(&str) -> String,
) -> String {
    if attempts.is_empty() {
        return r#"<p class="muted">No attempt started yet.</p>"#.into();
    }
    let mut ordered: Vec<&AttemptRecord> = attempts.iter().collect();
    // In plan order, then by try: the chart reads like the DAG.
    ordered.sort_by_key(|a| (plan.task_index(&a.task).unwrap_or(usize::MAX), a.try_number));
    let start = ordered.iter().map(|a| a.started_at).min().unwrap_or(now);
    let end = ordered
        .iter()
        .map(|a| a.ended_at.unwrap_or(now))
        .max()
        .unwrap_or(now)
        .max(start + chrono::TimeDelta::seconds(1));
    let span = (end - start).num_milliseconds().max(1) as f64;
    const LABEL: usize = 200;
    const CHART: usize = 640;
    const ROW: usize = 24;
    let height = ordered.len() * ROW + 30;
    let width = LABEL + CHART + 20;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="gantt" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="Gantt chart">"#
    );
    for (row, a) in ordered.iter().enumerate() {
        let y = row * ROW + 4;
        let x0 =
            LABEL as f64 + (a.started_at - start).num_milliseconds() as f64 / span * CHART as f64;
        let x1 = LABEL as f64
            + (a.ended_at.unwrap_or(now) - start).num_milliseconds() as f64 / span * CHART as f64;
        let state = match a.result {
            None => "running",
            Some(AttemptResult::Success) => "success",
            Some(AttemptResult::Failed) | Some(AttemptResult::FailedByCrash) => "failed",
            Some(AttemptResult::Cancelled) => "skipped",
        };
        let seconds = (a.ended_at.unwrap_or(now) - a.started_at).num_milliseconds() as f64 / 1000.0;
        let task = escape(&a.task);
        let _ = write!(
            out,
            r#"<a href="{href}"><g class="bar" data-task="{task}" data-try="{try_}" data-state="{state}"><title>{task} try {try_}: {state}, {seconds:.1} s</title><text x="4" y="{ty}">{task} #{try_}</text><rect class="state-{state}" x="{x0:.1}" y="{y}" width="{w:.1}" height="{h}" rx="3"/></g></a>"#,
            href = escape(&link(&a.task)),
            try_ = a.try_number,
            ty = y + 14,
            w = (x1 - x0).max(2.0),
            h = ROW - 6,
        );
    }
    let axis = ordered.len() * ROW + 20;
    let _ = write!(
        out,
        r#"<text class="axis" x="{LABEL}" y="{axis}">{}</text><text class="axis" x="{}" y="{axis}" text-anchor="end">+{:.1} s</text></svg>"#,
        start.format("%H:%M:%S"),
        LABEL + CHART,
        span / 1000.0
    );
    out
}
