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

/// Steps the Gantt axis may tick at, in milliseconds: the first that leaves at most
/// [`MAX_TICKS`] ticks on the span is taken, so ticks fall on round clock times.
const TICK_STEPS_MS: &[i64] = &[
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    10_800_000,
    21_600_000,
    43_200_000,
    86_400_000,
    172_800_000,
    604_800_000,
    2_592_000_000,
];
const MAX_TICKS: i64 = 8;

/// The axis ticks of `[start, end]`: round clock times, at most [`MAX_TICKS`] (more only
/// for spans of many months, every 30 days), each with its label: tenths below a second,
/// seconds below a minute, hours and minutes below a day (a midnight by its date), dates
/// with the year from a day up.
pub fn axis_ticks(start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<(DateTime<Utc>, String)> {
    let span = (end - start).num_milliseconds().max(1);
    let step = TICK_STEPS_MS
        .iter()
        .copied()
        .find(|step| span / step <= MAX_TICKS)
        .unwrap_or(2_592_000_000);
    let first = start.timestamp_millis().div_euclid(step) * step
        + if start.timestamp_millis().rem_euclid(step) == 0 {
            0
        } else {
            step
        };
    let label = |t: DateTime<Utc>| match step {
        s if s < 1_000 => format!(
            "{}.{}",
            t.format("%H:%M:%S"),
            t.timestamp_subsec_millis() / 100
        ),
        s if s < 60_000 => t.format("%H:%M:%S").to_string(),
        // A day's first tick on a long axis is its date.
        s if s >= 86_400_000 => t.format("%Y-%m-%d").to_string(),
        s if s >= 3_600_000 && t.format("%H:%M").to_string() == "00:00" => {
            t.format("%m-%d").to_string()
        }
        _ => t.format("%H:%M").to_string(),
    };
    (0..)
        .map(|i| first + i * step)
        .take_while(|&ms| ms <= end.timestamp_millis())
        .take(1_000)
        .filter_map(DateTime::from_timestamp_millis)
        .map(|t| (t, label(t)))
        .collect()
}

/// A duration for a bar's end: `850 ms`, `12.3 s`, `4m05s`, `1h02m`.
fn took(ms: i64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        ms => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// The Gantt chart of a run's attempts: a row per try (plan order, then try), bars on a
/// shared clock axis with round ticks (UTC) and each bar's duration; unfinished bars end at
/// `now`.
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
    const TOP: usize = 22;
    const RIGHT: usize = 70;
    let x_of = |t: DateTime<Utc>| {
        LABEL as f64 + (t - start).num_milliseconds() as f64 / span * CHART as f64
    };
    let height = TOP + ordered.len() * ROW + 24;
    let width = LABEL + CHART + RIGHT;
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg class="gantt" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" aria-label="Gantt chart">"#
    );
    let bottom = TOP + ordered.len() * ROW;
    for (t, label) in axis_ticks(start, end) {
        let x = x_of(t);
        let _ = write!(
            out,
            r#"<g class="tick" data-at="{at}"><line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}"/><text x="{x:.1}" y="14" text-anchor="middle">{label}</text></g>"#,
            at = t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        );
    }
    for (row, a) in ordered.iter().enumerate() {
        let y = TOP + row * ROW + 4;
        let x0 = x_of(a.started_at);
        let x1 = x_of(a.ended_at.unwrap_or(now));
        let state = match a.result {
            None => "running",
            Some(AttemptResult::Success) => "success",
            Some(AttemptResult::Failed) | Some(AttemptResult::FailedByCrash) => "failed",
            Some(AttemptResult::Cancelled) => "skipped",
        };
        let ms = (a.ended_at.unwrap_or(now) - a.started_at).num_milliseconds();
        let task = escape(&a.task);
        let _ = write!(
            out,
            r#"<a href="{href}"><g class="bar" data-task="{task}" data-try="{try_}" data-state="{state}"><title>{task} try {try_}: {state}, {took}, from {from}</title><text x="4" y="{ty}">{task} #{try_}</text><rect class="state-{state}" x="{x0:.1}" y="{y}" width="{w:.1}" height="{h}" rx="3"/><text class="took" x="{tx:.1}" y="{ty}">{took}</text></g></a>"#,
            href = escape(&link(&a.task)),
            try_ = a.try_number,
            ty = y + 14,
            w = (x1 - x0).max(2.0),
            h = ROW - 6,
            tx = x0 + (x1 - x0).max(2.0) + 4.0,
            took = took(ms),
            from = a.started_at.format("%H:%M:%S%.3f"),
        );
    }
    let _ = write!(
        out,
        r#"<text class="axis" x="{LABEL}" y="{y}">UTC, from {} · {} in all</text></svg>"#,
        start.format("%Y-%m-%d %H:%M:%S"),
        took((end - start).num_milliseconds()),
        y = bottom + 16,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .unwrap()
    }

    fn labels(from: &str, to: &str) -> Vec<String> {
        axis_ticks(at(from), at(to))
            .into_iter()
            .map(|(_, l)| l)
            .collect()
    }

    #[test]
    fn ticks_fall_on_round_clock_times_and_stay_few() {
        // 37 s: every 5 s from the first multiple of 5 inside the span.
        assert_eq!(
            labels("2025-01-01T10:00:03Z", "2025-01-01T10:00:40Z"),
            [
                "10:00:05", "10:00:10", "10:00:15", "10:00:20", "10:00:25", "10:00:30", "10:00:35",
                "10:00:40"
            ]
        );
        // 25 min: every 5 min, to the minute.
        assert_eq!(
            labels("2025-01-01T10:02:10Z", "2025-01-01T10:27:10Z"),
            ["10:05", "10:10", "10:15", "10:20", "10:25"]
        );
        // 1.5 s: tenths.
        assert_eq!(
            labels("2025-01-01T10:00:00.100Z", "2025-01-01T10:00:01.600Z"),
            [
                "10:00:00.2",
                "10:00:00.4",
                "10:00:00.6",
                "10:00:00.8",
                "10:00:01.0",
                "10:00:01.2",
                "10:00:01.4",
                "10:00:01.6"
            ]
        );
        // Three days: every 12 hours, midnights by their date.
        assert_eq!(
            labels("2025-01-01T10:00:00Z", "2025-01-04T10:00:00Z"),
            ["12:00", "01-02", "12:00", "01-03", "12:00", "01-04"]
        );
        // Two months: weekly, dated with the year.
        let weekly = labels("2025-01-01T00:00:00Z", "2025-03-01T00:00:00Z");
        assert!(
            weekly.len() <= MAX_TICKS as usize + 1 && weekly[0].starts_with("2025-"),
            "{weekly:?}"
        );
        for (from, to) in [
            ("2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z"),
            ("2025-01-01T00:00:00Z", "2025-01-01T07:59:59Z"),
            ("2025-01-01T00:00:00Z", "2025-01-01T23:59:59Z"),
        ] {
            let ticks = axis_ticks(at(from), at(to));
            assert!(
                (1..=MAX_TICKS as usize + 1).contains(&ticks.len()),
                "{from}..{to}: {}",
                ticks.len()
            );
            assert!(ticks.iter().all(|(t, _)| *t >= at(from) && *t <= at(to)));
        }
    }

    #[test]
    fn durations_read_at_their_scale() {
        assert_eq!(took(850), "850 ms");
        assert_eq!(took(12_345), "12.3 s");
        assert_eq!(took(245_000), "4m05s");
        assert_eq!(took(3_720_000), "1h02m");
    }
}
