//! Assets across DAG files: who produces what, and whether each consumer's interval mapping
//! lands on its producers' grid. A DAG reads an asset per interval (`consumes:`) that a task
//! of another DAG writes per interval (`produces:`); the rules here need every file at once,
//! so they run after each file loaded on its own ([`check_catalog`], from `load_paths`).
//!
//! The rules of one file (a declaration needs a schedule, ids, one producer task per asset
//! in a DAG, a DAG never reads what it writes) are in [`check_declarations`], run with the
//! file's other validation.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeDelta, Utc};
use petgraph::algo::tarjan_scc;
use petgraph::graphmap::DiGraphMap;

use super::diagnostic::{Diagnostic, FileReport, Location};
use super::fields::SourceMap;
use super::load::{DagSet, LoadedDag};
use super::model::Dag;
use super::suggest;
use super::validate::is_valid_id;
use crate::schedule::DataInterval;
use crate::schedule::mapping::{Grid, MappingError};

/// Most upstream intervals one consumer interval reads: a leap year of 15-minute windows.
/// A wider range would make one run's readiness check read that many ledger entries.
pub const MAX_UPSTREAM_INTERVALS: usize = 366 * 96;

/// How far ahead alignment is checked from where both DAGs run: a year holds every month
/// and both daylight-saving changes of any zone.
pub const ALIGNMENT_HORIZON_DAYS: i64 = 400;

fn nowhere() -> Location {
    Location {
        offset: 0,
        len: 0,
        line: 1,
        column: 1,
    }
}

/// Most assets one task writes (each a record per success).
pub const MAX_PRODUCES: usize = 32;

/// The checks of one file's `produces` and `consumes`.
pub fn check_declarations(dag: &Dag, spans: &SourceMap) -> Vec<Diagnostic> {
    let at = |path: &str| spans.nearest(path).unwrap_or_else(nowhere);
    let key = |path: &str| {
        spans
            .key(path)
            .or(spans.nearest(path))
            .unwrap_or_else(nowhere)
    };
    let mut out = Vec::new();
    let mut producer_of: HashMap<&str, &str> = HashMap::new();
    for (task_id, task) in &dag.tasks {
        if task.settings.produces.len() > MAX_PRODUCES {
            out.push(
                Diagnostic::error(
                    "spec::out-of-range",
                    format!(
                        "task `{task_id}` produces {} assets; a task writes at most {MAX_PRODUCES}",
                        task.settings.produces.len()
                    ),
                )
                .at(at(&format!("tasks.{task_id}.produces")), "too many")
                .help("split the task, or produce a combined asset"),
            );
        }
        for (i, asset) in task.settings.produces.iter().enumerate() {
            let path = format!("tasks.{task_id}.produces[{i}]");
            if !is_valid_id(asset) {
                out.push(
                    Diagnostic::error(
                        "spec::bad-id",
                        format!("`{asset}` is not a valid asset name"),
                    )
                    .at(at(&path), "invalid name")
                    .help("use letters, digits, `_`, `-` and `.`, e.g. `warehouse.agg_15m`"),
                );
                continue;
            }
            if let Some(first) = producer_of.get(asset.as_str()).copied() {
                out.push(
                    Diagnostic::error(
                        "spec::asset-produced-twice",
                        format!("`{asset}` is already produced by task `{first}` of this DAG"),
                    )
                    .at(at(&path), "produced again here")
                    .also(at(&format!("tasks.{first}")), "first producer")
                    .help("one task writes an asset's interval: the one whose success makes it current"),
                );
            } else {
                producer_of.insert(asset, task_id);
            }
            if dag.schedule.is_none() {
                out.push(
                    Diagnostic::error(
                        "spec::produces-without-schedule",
                        "a task produces an asset per interval, and this DAG has no schedule",
                    )
                    .at(at(&path), "no interval to write")
                    .help("give the DAG a `schedule:`; an asset's intervals are its producer's"),
                );
            }
        }
    }
    for (asset, consumes) in &dag.consumes {
        let path = format!("consumes.{asset}");
        if !is_valid_id(asset) {
            out.push(
                Diagnostic::error(
                    "spec::bad-id",
                    format!("`{asset}` is not a valid asset name"),
                )
                .at(key(&path), "invalid name")
                .help("use letters, digits, `_`, `-` and `.`, e.g. `warehouse.agg_15m`"),
            );
        }
        if dag.schedule.is_none() {
            out.push(
                Diagnostic::error(
                    "spec::consumes-without-schedule",
                    "`consumes` maps the DAG's intervals onto the asset's, and this DAG has no schedule",
                )
                .at(key(&path), "read per interval of what?")
                .help("give the DAG a `schedule:` (e.g. `@hourly` to read the four 15-minute windows of each hour)"),
            );
        }
        if let Some(task) = producer_of.get(asset.as_str()) {
            out.push(
                Diagnostic::error(
                    "spec::asset-cycle",
                    format!("the DAG reads `{asset}`, which its own task `{task}` writes"),
                )
                .at(key(&path), "read here")
                .also(at(&format!("tasks.{task}")), "written here")
                .help(
                    "a run would wait for itself; split the reading tasks into a DAG of their own",
                ),
            );
        }
        if consumes.timeout.is_some_and(|t| t.is_zero()) {
            out.push(
                Diagnostic::error("spec::out-of-range", "`timeout` must be longer than 0s")
                    .at(at(&format!("{path}.timeout")), "zero"),
            );
        }
    }
    out
}

/// One DAG's writing task of an asset.
struct Producer<'a> {
    dag: &'a Dag,
    task: &'a str,
    /// Index into the set's DAGs; `None` for a context DAG (not reported on).
    loaded: Option<usize>,
}

/// Checks the assets across `set` (producers from `set` and from `context`, the other DAGs
/// of the folder a lone file is validated against); a DAG with an error here moves to
/// `set.failures`, like a duplicate id.
pub fn check_catalog(set: &mut DagSet, context: &[LoadedDag]) {
    let mut producers: BTreeMap<&str, Vec<Producer<'_>>> = BTreeMap::new();
    let own: std::collections::HashSet<&str> =
        set.dags.iter().map(|d| d.dag.dag.as_str()).collect();
    let context: Vec<&Dag> = context
        .iter()
        .map(|d| &d.dag)
        .filter(|d| !own.contains(d.dag.as_str()))
        .collect();
    let dags = set
        .dags
        .iter()
        .enumerate()
        .map(|(i, d)| (Some(i), &d.dag))
        .chain(context.iter().map(|d| (None, *d)));
    for (loaded, dag) in dags {
        for (task_id, task) in &dag.tasks {
            for asset in &task.settings.produces {
                producers.entry(asset).or_default().push(Producer {
                    dag,
                    task: task_id,
                    loaded,
                });
            }
        }
    }
    let mut problems: BTreeMap<usize, Vec<Diagnostic>> = BTreeMap::new();
    grids_of_producers(set, &producers, &mut problems);
    mappings(set, &producers, &mut problems);
    cycles(set, &context, &producers, &mut problems);
    if problems.is_empty() {
        return;
    }
    let mut kept = Vec::with_capacity(set.dags.len());
    for (i, loaded) in std::mem::take(&mut set.dags).into_iter().enumerate() {
        match problems.remove(&i) {
            Some(mut diagnostics) => {
                diagnostics.sort_by_key(|d| {
                    d.primary
                        .as_ref()
                        .map(|l| (l.location.line, l.location.column))
                });
                let mut report = loaded.report;
                report.diagnostics.extend(diagnostics);
                set.failures.push(FileReport {
                    source: report.source,
                    diagnostics: report.diagnostics,
                });
            }
            None => kept.push(loaded),
        }
    }
    set.dags = kept;
}

/// Where checking two DAGs' grids starts: where both run.
fn horizon(a: &Dag, b: &Dag) -> (DateTime<Utc>, DateTime<Utc>) {
    let from = a.start.max(b.start).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let until = from
        .checked_add_signed(TimeDelta::days(ALIGNMENT_HORIZON_DAYS))
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (from, until)
}

/// Work one alignment check may do: consumer intervals × the intervals each range spans.
pub const ALIGNMENT_BUDGET: i64 = 4_000_000;

/// `until`, brought closer when the consumer's intervals are so short, or its ranges span
/// so many of them, that the whole horizon would cost more than [`ALIGNMENT_BUDGET`].
fn within_budget(
    consumer: Grid<'_>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    shift: [i32; 2],
) -> DateTime<Utc> {
    let Some(first) = consumer.schedule.intervals(consumer.tz, from).next() else {
        return until;
    };
    // Each interval checked walks |first| and |last| intervals to find its range.
    let span = i64::from(shift[0].unsigned_abs()) + i64::from(shift[1].unsigned_abs()) + 1;
    let length = (first.end - first.start).max(TimeDelta::seconds(1));
    let affordable = i32::try_from(ALIGNMENT_BUDGET / span).unwrap_or(i32::MAX);
    length
        .checked_mul(affordable)
        .and_then(|d| from.checked_add_signed(d))
        .map_or(until, |t| t.min(until))
}

fn produces_location(loaded: &LoadedDag, task: &str, asset: &str) -> Location {
    let index = loaded
        .dag
        .tasks
        .get(task)
        .and_then(|t| t.settings.produces.iter().position(|a| a == asset));
    let path = match index {
        Some(i) => format!("tasks.{task}.produces[{i}]"),
        None => format!("tasks.{task}"),
    };
    loaded.spans.nearest(&path).unwrap_or_else(nowhere)
}

fn consumes_location(loaded: &LoadedDag, asset: &str) -> Location {
    let path = format!("consumes.{asset}");
    loaded
        .spans
        .key(&path)
        .or(loaded.spans.nearest(&path))
        .unwrap_or_else(nowhere)
}

/// Two DAGs that write one asset write the same intervals: one shared history.
fn grids_of_producers(
    set: &DagSet,
    producers: &BTreeMap<&str, Vec<Producer<'_>>>,
    problems: &mut BTreeMap<usize, Vec<Diagnostic>>,
) {
    // Which file is "right" is not for path order to say: every producer whose grid
    // differs from another's is refused (each keeps its last good version in a running
    // scheduler), and each is told about the other.
    for (asset, list) in producers {
        for (i, other) in list.iter().enumerate() {
            let (Some(index), Some(grid)) = (other.loaded, other.dag.grid()) else {
                continue;
            };
            let differing = list.iter().enumerate().find_map(|(j, first)| {
                if i == j {
                    return None;
                }
                let first_grid = first.dag.grid()?;
                let (from, until) = horizon(first.dag, other.dag);
                let same = crate::schedule::mapping::IntervalMapping::SAME;
                same.first_misaligned(grid, first_grid, from, until, 1)
                    .or_else(|| same.first_misaligned(first_grid, grid, from, until, 1))
                    .map(|(interval, _)| (first, first_grid, interval))
            });
            let Some((first, first_grid, interval)) = differing else {
                continue;
            };
            let loaded = &set.dags[index];
            problems.entry(index).or_default().push(
                Diagnostic::error(
                    "spec::asset-grids-differ",
                    format!(
                        "`{asset}` is also produced by DAG `{}` (`{}` in {}), whose intervals differ from this DAG's (`{}` in {}) around {}",
                        first.dag.dag,
                        first_grid.schedule.source(),
                        first.dag.timezone.tz(),
                        grid.schedule.source(),
                        other.dag.timezone.tz(),
                        interval.start.to_rfc3339(),
                    ),
                )
                .at(produces_location(loaded, other.task, asset), "produced on another grid")
                .help("the DAGs that write one asset share its history per interval: give them the same schedule and time zone, or name the assets apart"),
            );
        }
    }
}

/// Each consumer reads a known asset whose grid its mapping lands on.
fn mappings(
    set: &DagSet,
    producers: &BTreeMap<&str, Vec<Producer<'_>>>,
    problems: &mut BTreeMap<usize, Vec<Diagnostic>>,
) {
    for (index, loaded) in set.dags.iter().enumerate() {
        let dag = &loaded.dag;
        let Some(consumer) = dag.grid() else {
            continue;
        };
        for (asset, consumes) in &dag.consumes {
            let location = consumes_location(loaded, asset);
            let Some(producer) = producers.get(asset.as_str()).and_then(|p| p.first()) else {
                let known = producers.keys().copied();
                let help = match suggest::closest(asset, known) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!(
                        "a task of another DAG declares `produces: [{asset}]`; the known assets: {}",
                        known_list(producers)
                    ),
                };
                problems.entry(index).or_default().push(
                    Diagnostic::error("spec::unknown-asset", format!("no DAG produces `{asset}`"))
                        .at(location, "nothing writes this")
                        .help(help),
                );
                continue;
            };
            let Some(upstream) = producer.dag.grid() else {
                continue;
            };
            let (from, until) = horizon(dag, producer.dag);
            let mapping = consumes.mapping();
            let until = within_budget(consumer, from, until, consumes.shift);
            let Some((interval, error)) =
                mapping.first_misaligned(consumer, upstream, from, until, MAX_UPSTREAM_INTERVALS)
            else {
                continue;
            };
            let code = match error {
                MappingError::TooWide { .. } => "spec::mapping-too-wide",
                _ => "spec::mapping-misaligned",
            };
            problems.entry(index).or_default().push(
                Diagnostic::error(
                    code,
                    format!(
                        "the run of {} cannot read `{asset}` (written by `{}`, `{}` in {}): {error}",
                        describe(interval, dag),
                        producer.dag.dag,
                        upstream.schedule.source(),
                        upstream.tz,
                    ),
                )
                .at(location, "does not land on the asset's intervals")
                .help(mapping_help(
                    interval,
                    mapping.range(consumer, interval),
                    dag,
                    &error,
                )),
            );
        }
    }
}

fn known_list(producers: &BTreeMap<&str, Vec<Producer<'_>>>) -> String {
    if producers.is_empty() {
        return "none".into();
    }
    let names: Vec<&str> = producers.keys().copied().take(10).collect();
    names.join(", ")
}

/// "the interval 2025-03-30T00:00:00+01:00–2025-03-31T00:00:00+02:00 (23h)" in the DAG's zone.
fn describe(interval: DataInterval, dag: &Dag) -> String {
    let tz = dag.timezone.tz();
    let length = interval.end - interval.start;
    let length = if length.num_seconds() % 3600 == 0 {
        format!("{}h", length.num_hours())
    } else {
        length
            .to_std()
            .map(|d| super::duration::Duration::from_std(d).to_string())
            .unwrap_or_default()
    };
    format!(
        "[{}, {}) ({length})",
        interval.start.with_timezone(&tz).to_rfc3339(),
        interval.end.with_timezone(&tz).to_rfc3339(),
    )
}

fn mapping_help(
    interval: DataInterval,
    range: Option<DataInterval>,
    dag: &Dag,
    error: &MappingError,
) -> String {
    let tz = dag.timezone.tz();
    // Whether the zone's offset changes anywhere from the range's start to the interval's end.
    let offset_changes = {
        use chrono::Offset;
        let at = |t: DateTime<Utc>| t.with_timezone(&tz).offset().fix();
        let first = range.map_or(interval.start, |r| r.start.min(interval.start));
        let last = range.map_or(interval.end, |r| r.end.max(interval.end));
        at(first) != at(last)
    };
    match error {
        MappingError::TooWide { cap } => format!(
            "one run may read at most {cap} intervals; read a coarser asset, or use a finer schedule"
        ),
        MappingError::NotOne { .. } => {
            "`intervals: same` reads exactly one interval: use `intervals: within` to read every one inside".into()
        }
        _ if offset_changes => format!(
            "this interval spans a daylight-saving change in {tz}: schedules read in different zones, or an `offset` in hours over local days, do not nest there; read the asset in the same zone, or move by whole intervals with `shift`"
        ),
        _ => "the schedules do not nest: each run's range must start and end on the asset's interval boundaries; choose a schedule whose intervals are unions of the asset's (e.g. `@hourly` over `*/15`), or an `offset` that lands on them".into(),
    }
}

/// A DAG never waits, through other DAGs, for what it writes itself.
fn cycles(
    set: &DagSet,
    context: &[&Dag],
    producers: &BTreeMap<&str, Vec<Producer<'_>>>,
    problems: &mut BTreeMap<usize, Vec<Diagnostic>>,
) {
    // Nodes are DAG ids, the context's too: a cycle through the folder shows when one file
    // of it is validated alone (reported on the files named only).
    let mut graph: DiGraphMap<&str, ()> = DiGraphMap::new();
    let consumers = set
        .dags
        .iter()
        .map(|d| &d.dag)
        .chain(context.iter().copied());
    for dag in consumers {
        graph.add_node(dag.dag.as_str());
        for asset in dag.consumes.keys() {
            for producer in producers.get(asset.as_str()).into_iter().flatten() {
                if producer.dag.dag != dag.dag {
                    graph.add_edge(producer.dag.dag.as_str(), dag.dag.as_str(), ());
                }
            }
        }
    }
    for component in tarjan_scc(&graph) {
        if component.len() < 2 {
            continue;
        }
        let mut names = component.clone();
        names.sort_unstable();
        let cycle = names.join(", ");
        for (index, loaded) in set.dags.iter().enumerate() {
            if !component.contains(&loaded.dag.dag.as_str()) {
                continue;
            }
            let Some(asset) = loaded.dag.consumes.keys().find(|asset| {
                producers
                    .get(asset.as_str())
                    .into_iter()
                    .flatten()
                    .any(|p| component.contains(&p.dag.dag.as_str()))
            }) else {
                continue;
            };
            problems.entry(index).or_default().push(
                Diagnostic::error(
                    "spec::asset-cycle",
                    format!("DAGs wait for each other's assets in a cycle: {cycle}"),
                )
                .at(consumes_location(loaded, asset), "part of the cycle")
                .help(
                    "an interval would wait for itself; break the cycle by removing one `consumes`",
                ),
            );
        }
    }
}
