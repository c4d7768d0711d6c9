//! `sluice dags validate|list|show|next|render`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};

use super::{Cli, CliError, OutputFormat, Streams};
use sluice_model::schedule::DataInterval;
use sluice_model::spec::instant::{format_instant, parse_instant};
use sluice_model::spec::{self, DagSet, LoadedDag, TaskKind};
use sluice_model::template::{Renderer, RunContext};

#[derive(Debug, Subcommand)]
pub enum DagsCommand {
    /// Check DAG files and folders; exit 0 when all are valid, 1 otherwise.
    Validate {
        /// Files or folders (default: the `--dags` folder).
        paths: Vec<PathBuf>,
    },
    /// List the DAGs in the DAG folder.
    List,
    /// Show a DAG's schedule, settings and tasks, or its graph.
    Show {
        /// DAG id.
        dag: String,
        /// `text`, or a graph as `mermaid` or `dot`.
        #[arg(long, value_enum, default_value_t = GraphFormat::Text)]
        format: GraphFormat,
    },
    /// Print the next data intervals (runs still to be created), `START END` per line.
    Next {
        /// DAG id.
        dag: String,
        /// How many intervals.
        #[arg(long, default_value_t = 10)]
        count: usize,
        /// List intervals that close after this instant (RFC 3339; default: now).
        #[arg(long)]
        after: Option<String>,
    },
    /// Print a task's fields with templates rendered for one run.
    Render {
        /// DAG id.
        dag: String,
        /// Task id.
        task: String,
        /// Logical date (start of the data interval), RFC 3339.
        #[arg(long)]
        logical_date: String,
        /// Attempt number seen by templates as `try_number`.
        #[arg(long, default_value_t = 1)]
        try_number: u32,
        /// An upstream task's output for `outputs.<task>`, as TASK=JSON; repeatable.
        #[arg(long = "upstream-output", value_name = "TASK=JSON")]
        upstream_outputs: Vec<String>,
    },
    /// Create a manual run.
    Trigger {
        dag: String,
        /// Run configuration, JSON.
        #[arg(long)]
        conf: Option<String>,
        /// Logical date (RFC 3339). A date on the schedule runs the interval starting there;
        /// another instant, the last interval closed by then. Default: the last interval
        /// closed now, run again if it already had a run.
        #[arg(long)]
        logical_date: Option<String>,
    },
    /// Stop creating and starting runs of a DAG (backfills continue).
    Pause { dag: String },
    /// Undo `pause`.
    Unpause { dag: String },
    /// Run one interval in this process, without a scheduler or state, and print each task's result.
    Test {
        dag: String,
        #[arg(long)]
        logical_date: String,
        /// Run configuration, JSON; its keys override the DAG's `params` for this run.
        #[arg(long)]
        conf: Option<String>,
        /// Run without waiting on the DAG's readiness gate (the data is known to be there).
        #[arg(long)]
        ignore_gate: bool,
    },
}

impl DagsCommand {
    /// Commands on the scheduler's state; `list` too, so that while a scheduler runs it
    /// lists the scheduler's DAG folder with its pause flags and versions (one view of the
    /// DAGs), and without one it reads the folder given here.
    pub fn needs_state(&self) -> bool {
        matches!(
            self,
            DagsCommand::Trigger { .. }
                | DagsCommand::Pause { .. }
                | DagsCommand::Unpause { .. }
                | DagsCommand::List
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    Text,
    Mermaid,
    Dot,
}

pub fn run(cli: &Cli, command: &DagsCommand, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    match command {
        DagsCommand::Validate { paths } => {
            // Files named alone still read assets the rest of the DAG folder produces.
            let (paths, context) = if paths.is_empty() {
                (vec![cli.settings.dags.clone()], Vec::new())
            } else {
                let folder = &cli.settings.dags;
                let same = |p: &PathBuf| match (p.canonicalize(), folder.canonicalize()) {
                    (Ok(a), Ok(b)) => a == b,
                    _ => p == folder,
                };
                let named = paths.iter().any(same);
                let context = if folder.is_dir() && !named {
                    vec![folder.clone()]
                } else {
                    Vec::new()
                };
                (paths.clone(), context)
            };
            validate(cli.output, &paths, &context, streams)
        }
        DagsCommand::List => list(cli, streams),
        DagsCommand::Show { dag, format } => show(cli, dag, *format, streams),
        DagsCommand::Next { dag, count, after } => {
            next(cli, dag, *count, after.as_deref(), streams)
        }
        DagsCommand::Render {
            dag,
            task,
            logical_date,
            try_number,
            upstream_outputs,
        } => render(
            cli,
            dag,
            task,
            logical_date,
            *try_number,
            upstream_outputs,
            streams,
        ),
        DagsCommand::Trigger { .. } | DagsCommand::Pause { .. } | DagsCommand::Unpause { .. } => {
            super::runs::change(cli, streams)
        }
        DagsCommand::Test {
            dag,
            logical_date,
            conf,
            ignore_gate,
        } => super::runs::test(
            cli,
            dag,
            logical_date,
            conf.as_deref(),
            *ignore_gate,
            streams,
        ),
    }
}

fn load(paths: &[PathBuf]) -> Result<DagSet, CliError> {
    spec::load_paths(paths).map_err(|(path, source)| CliError::Io { path, source })
}

/// Loads the DAG folder and finds one DAG; if its file is invalid, shows why.
pub(super) fn find_dag(
    cli: &Cli,
    dag_id: &str,
    streams: &mut Streams<'_>,
) -> Result<LoadedDag, CliError> {
    let set = load(std::slice::from_ref(&cli.settings.dags))?;
    if let Some(found) = set.get(dag_id) {
        return Ok(found.clone());
    }
    // The DAG may be in a file that failed to load: say so rather than "not found".
    let broken = set
        .failures
        .iter()
        .find(|r| declared_dag(r).as_deref() == Some(dag_id));
    if let Some(report) = broken {
        write!(streams.err, "{}", report.render(streams.color))?;
        return Err(CliError::Invalid {
            message: format!(
                "DAG `{dag_id}` is invalid: {}",
                report.source.path().display()
            ),
            hint: Some(
                "fix the errors above; `sluice dags validate` checks the whole folder".into(),
            ),
        });
    }
    Err(CliError::UnknownDag {
        dag: dag_id.to_owned(),
        folder: cli.settings.dags.clone(),
        known: set.dags.iter().map(|d| d.dag.dag.clone()).collect(),
    })
}

/// The DAG id a file that did not load declares on its `dag:` line, if it has one.
fn declared_dag(report: &spec::FileReport) -> Option<String> {
    report.source.text().lines().find_map(|l| {
        l.strip_prefix("dag:")
            .map(|v| v.trim().trim_matches(['"', '\'']).to_owned())
            .filter(|v| !v.is_empty())
    })
}

/// Where a file that did not load went wrong first: `path:line:col: message`.
fn first_problem(report: &spec::FileReport) -> String {
    report
        .diagnostics
        .iter()
        .find(|d| d.severity == spec::Severity::Error)
        .or(report.diagnostics.first())
        .map(|d| report.plain_line(d))
        .unwrap_or_else(|| report.source.path().display().to_string())
}

fn validate(
    format: OutputFormat,
    paths: &[PathBuf],
    context: &[PathBuf],
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let set = spec::load_paths_in(paths, context)
        .map_err(|(path, source)| CliError::Io { path, source })?;
    let files = set.dags.len() + set.failures.len();
    let reports = set.reports();
    let errors: usize = reports
        .iter()
        .flat_map(|r| &r.diagnostics)
        .filter(|d| d.is_error())
        .count();
    let warnings: usize = reports
        .iter()
        .flat_map(|r| &r.diagnostics)
        .filter(|d| !d.is_error())
        .count();
    match format {
        OutputFormat::Json => {
            let diagnostics: Vec<serde_json::Value> =
                reports.iter().flat_map(|r| r.to_json()).collect();
            streams.json(&serde_json::json!({
                "files": files,
                "valid": set.dags.len(),
                "invalid": set.failures.len(),
                "errors": errors,
                "warnings": warnings,
                "diagnostics": diagnostics,
            }))?;
        }
        OutputFormat::Table => {
            for report in &reports {
                write!(streams.err, "{}", report.render(streams.color))?;
            }
            writeln!(
                streams.out,
                "{files} file(s): {} valid, {} invalid; {errors} error(s), {warnings} warning(s)",
                set.dags.len(),
                set.failures.len()
            )?;
        }
    }
    Ok(if set.failures.is_empty() {
        0
    } else {
        super::EXIT_FAILURE
    })
}

fn now() -> DateTime<Utc> {
    Utc::now()
}

/// Each DAG's pause flag and version as the running scheduler holds them; none without one
/// (a listing never opens the state: that would take its lock from a scheduler starting).
fn known_records(
    streams: &Streams<'_>,
) -> std::collections::BTreeMap<String, sluice_store::DagRecord> {
    let Some(store) = streams.remote.as_ref().map(|r| r.store.clone()) else {
        return Default::default();
    };
    store
        .dag_ids()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| Some((id.clone(), store.dag(&id).ok()??)))
        .collect()
}

fn list(cli: &Cli, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let set = load(std::slice::from_ref(&cli.settings.dags))?;
    let mut dags: Vec<&LoadedDag> = set.dags.iter().collect();
    dags.sort_by(|a, b| a.dag.dag.cmp(&b.dag.dag));
    let now = now();
    let records = known_records(streams);
    // Which folder this is: the scheduler's when it answers, else the one given here.
    let whose = if streams.remote.is_some() {
        format!(
            "the DAGs of the scheduler running on {} (its DAG folder {})",
            cli.state().display(),
            cli.dags().display()
        )
    } else {
        format!(
            "the DAGs in {} (read here: `--dags` named the folder, or no scheduler runs on {}; \
             without `--dags`, a running scheduler lists its own with their pause flags)",
            cli.dags().display(),
            cli.state().display()
        )
    };
    let paused = |id: &str| records.get(id).map(|r| r.paused);
    let version = |id: &str| {
        records
            .get(id)
            .map(|r| r.version.chars().take(12).collect::<String>())
    };
    match cli.output {
        OutputFormat::Json => {
            let items: Vec<serde_json::Value> = dags
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "dag": d.dag.dag,
                        "schedule": d.dag.schedule.as_ref().map(|s| s.source().to_owned()),
                        "timezone": d.dag.timezone,
                        "tasks": d.dag.tasks.len(),
                        "owner": d.dag.owner,
                        "tags": d.dag.tags,
                        "paused": paused(&d.dag.dag),
                        "version": version(&d.dag.dag),
                        "next_interval": d.dag.intervals_ending_after(now).next(),
                        "file": d.path,
                        "import_error": null,
                    })
                })
                .chain(set.failures.iter().map(|r| {
                    serde_json::json!({
                        "dag": declared_dag(r),
                        "file": r.source.path(),
                        "import_error": first_problem(r),
                    })
                }))
                .collect();
            streams.json(&items)?;
        }
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = dags
                .iter()
                .map(|d| {
                    vec![
                        d.dag.dag.clone(),
                        d.dag
                            .schedule
                            .as_ref()
                            .map_or("-".into(), |s| s.source().to_owned()),
                        d.dag.timezone.to_string(),
                        d.dag.tasks.len().to_string(),
                        match paused(&d.dag.dag) {
                            Some(true) => "yes".into(),
                            Some(false) => "no".into(),
                            None => "-".into(),
                        },
                        version(&d.dag.dag).unwrap_or_else(|| "-".into()),
                        d.dag
                            .intervals_ending_after(now)
                            .next()
                            .map_or("-".into(), |i| super::output::table_time(i.start)),
                        d.path.display().to_string(),
                        "ok".into(),
                    ]
                })
                .chain(set.failures.iter().map(|r| {
                    vec![
                        declared_dag(r).unwrap_or_else(|| "?".into()),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                        r.source.path().display().to_string(),
                        format!("DOES NOT LOAD: {}", first_problem(r)),
                    ]
                }))
                .collect();
            streams.table(
                &[
                    "DAG",
                    "SCHEDULE",
                    "TIMEZONE",
                    "TASKS",
                    "PAUSED",
                    "VERSION",
                    "NEXT INTERVAL",
                    "FILE",
                    "STATUS",
                ],
                &rows,
            )?;
            writeln!(streams.err, "{whose}")?;
        }
    }
    if !set.failures.is_empty() {
        writeln!(
            streams.err,
            "{} file(s) in {} did not load; `sluice dags validate` shows why",
            set.failures.len(),
            cli.dags().display()
        )?;
    }
    Ok(0)
}

fn show(
    cli: &Cli,
    dag_id: &str,
    format: GraphFormat,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let loaded = find_dag(cli, dag_id, streams)?;
    let dag = &loaded.dag;
    let edges: Vec<(&str, &str)> = dag
        .tasks
        .iter()
        .flat_map(|(id, t)| {
            t.settings
                .depends_on
                .iter()
                .map(move |u| (u.as_str(), id.as_str()))
        })
        .collect();
    match format {
        GraphFormat::Mermaid => {
            let mut text = String::from("graph LR\n");
            for (id, task) in &dag.tasks {
                text.push_str(&format!(
                    "    {}[\"{id} ({})\"]\n",
                    mermaid_id(id),
                    task.kind.type_name()
                ));
            }
            for (from, to) in edges {
                text.push_str(&format!(
                    "    {} --> {}\n",
                    mermaid_id(from),
                    mermaid_id(to)
                ));
            }
            streams.print(&text)
        }
        GraphFormat::Dot => {
            let mut text = format!("digraph {:?} {{\n    rankdir=LR;\n", dag.dag);
            for (id, task) in &dag.tasks {
                text.push_str(&format!(
                    "    {id:?} [label={:?}];\n",
                    format!("{id}\n{}", task.kind.type_name())
                ));
            }
            for (from, to) in edges {
                text.push_str(&format!("    {from:?} -> {to:?};\n"));
            }
            text.push_str("}\n");
            streams.print(&text)
        }
        GraphFormat::Text if cli.output == OutputFormat::Json => {
            let mut value = serde_json::to_value(dag).map_err(|e| CliError::Output(e.into()))?;
            if let Some(object) = value.as_object_mut() {
                object.insert("file".into(), serde_json::json!(loaded.path));
                object.insert(
                    "task_order".into(),
                    serde_json::json!(dag.topological_order()),
                );
            }
            streams.json(&value)?;
            Ok(0)
        }
        GraphFormat::Text => {
            let mut text = format!("{}\n", dag.dag);
            if let Some(d) = &dag.description {
                text.push_str(&format!("  {d}\n"));
            }
            let mut line = |k: &str, v: String| text.push_str(&format!("  {k:<18}{v}\n"));
            line("file", loaded.path.display().to_string());
            if let Some(owner) = &dag.owner {
                line("owner", owner.clone());
            }
            line(
                "schedule",
                dag.schedule
                    .as_ref()
                    .map_or("none (manual)".into(), |s| s.source().to_owned()),
            );
            line("timezone", dag.timezone.to_string());
            line("start", dag.start.map_or("-".into(), format_instant));
            line("end", dag.end.map_or("-".into(), format_instant));
            line("catchup", dag.catchup.to_string());
            line("max_active_runs", dag.max_active_runs.to_string());
            line("max_active_tasks", dag.max_active_tasks.to_string());
            if let Some(sla) = &dag.sla {
                line(
                    "sla",
                    format!(
                        "warn after {}, deadline {}",
                        sla.warn_after.map_or("-".into(), |d| d.to_string()),
                        sla.deadline.map_or("-".into(), |d| d.to_string())
                    ),
                );
            }
            if let Some(gate) = &dag.gate {
                let k = &gate.kafka;
                line(
                    "gate",
                    format!(
                        "kafka {}/{} group {}, lateness {}{}{}",
                        k.connection,
                        k.topic,
                        k.watched_groups()
                            .iter()
                            .map(|(name, rule)| if rule.required {
                                name.clone()
                            } else {
                                format!("{name} (watched)")
                            })
                            .collect::<Vec<_>>()
                            .join(", "),
                        k.watermark_lateness,
                        k.max_lag
                            .map_or(String::new(), |l| format!(", max lag {l}")),
                        k.max_lag_time
                            .map_or(String::new(), |t| format!(", max lag time {t}"))
                    ),
                );
            }
            // Data shared with other DAGs: what it reads per interval, and what it writes.
            for (asset, consumes) in &dag.consumes {
                line(
                    "consumes",
                    format!(
                        "{asset}: {}{}{}, on change {} (at most {} reruns){}",
                        sluice_store::reports::name_of(&consumes.intervals),
                        if consumes.offset.is_zero() {
                            String::new()
                        } else {
                            format!(", offset {}", consumes.offset)
                        },
                        if consumes.shift == [0, 0] {
                            String::new()
                        } else {
                            format!(", shift [{}, {}]", consumes.shift[0], consumes.shift[1])
                        },
                        sluice_store::reports::name_of(&consumes.on_upstream_change),
                        consumes.max_reruns,
                        consumes
                            .timeout
                            .map_or(String::new(), |t| format!(", timeout {t}"))
                    ),
                );
            }
            for (id, task) in &dag.tasks {
                if !task.settings.produces.is_empty() {
                    line(
                        "produces",
                        format!("{} (task {id})", task.settings.produces.join(", ")),
                    );
                }
            }
            streams.print(&text)?;
            let rows: Vec<Vec<String>> = dag
                .topological_order()
                .into_iter()
                .map(|id| {
                    let task = &dag.tasks[id];
                    let policy = dag.effective_policy(id);
                    vec![
                        id.to_owned(),
                        task.kind.type_name().to_owned(),
                        if task.settings.depends_on.is_empty() {
                            "-".into()
                        } else {
                            task.settings.depends_on.join(",")
                        },
                        serde_json::to_value(task.settings.trigger_rule)
                            .ok()
                            .and_then(|v| v.as_str().map(str::to_owned))
                            .unwrap_or_default(),
                        policy
                            .as_ref()
                            .map_or(String::new(), |p| p.retries.to_string()),
                        policy
                            .as_ref()
                            .and_then(|p| p.timeout)
                            .map_or("-".into(), |t| t.to_string()),
                        policy.map_or(String::new(), |p| p.pool),
                    ]
                })
                .collect();
            writeln!(streams.out)?;
            streams.table(
                &[
                    "TASK",
                    "TYPE",
                    "DEPENDS ON",
                    "TRIGGER RULE",
                    "RETRIES",
                    "TIMEOUT",
                    "POOL",
                ],
                &rows,
            )?;
            Ok(0)
        }
    }
}

fn mermaid_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn parse_time_arg(flag: &str, text: &str) -> Result<DateTime<Utc>, CliError> {
    parse_instant(text, chrono_tz::UTC).map_err(|e| CliError::Invalid {
        message: format!("{flag}: {e}"),
        hint: Some("write RFC 3339, e.g. 2025-09-01T00:00:00Z".into()),
    })
}

fn next(
    cli: &Cli,
    dag_id: &str,
    count: usize,
    after: Option<&str>,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let loaded = find_dag(cli, dag_id, streams)?;
    let after = match after {
        Some(text) => parse_time_arg("--after", text)?,
        None => now(),
    };
    if loaded.dag.schedule.is_none() {
        return Err(CliError::Invalid {
            message: format!("DAG `{dag_id}` has no schedule; it runs only when triggered"),
            hint: None,
        });
    }
    let intervals: Vec<DataInterval> = loaded
        .dag
        .intervals_ending_after(after)
        .take(count)
        .collect();
    match cli.output {
        OutputFormat::Json => {
            let items: Vec<_> = intervals
                .iter()
                .map(|i| serde_json::json!({"start": format_instant(i.start), "end": format_instant(i.end)}))
                .collect();
            streams.json(&items)?;
        }
        OutputFormat::Table => {
            for interval in &intervals {
                writeln!(streams.out, "{interval}")?;
            }
        }
    }
    Ok(0)
}

fn render(
    cli: &Cli,
    dag_id: &str,
    task_id: &str,
    logical_date: &str,
    try_number: u32,
    upstream_outputs: &[String],
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let loaded = find_dag(cli, dag_id, streams)?;
    let dag = &loaded.dag;
    let Some(task) = dag.tasks.get(task_id) else {
        return Err(CliError::UnknownTask {
            dag: dag_id.to_owned(),
            task: task_id.to_owned(),
            known: dag.tasks.keys().cloned().collect(),
        });
    };
    let logical_date = parse_time_arg("--logical-date", logical_date)?;
    let tz = dag.timezone.tz();
    let (interval, run_id) = match &dag.schedule {
        Some(schedule) => {
            let interval = schedule
                .interval_starting(tz, logical_date)
                .ok_or_else(|| {
                    let containing = schedule.prev_fire(tz, logical_date);
                    CliError::Invalid {
                        message: format!(
                            "{} is not the start of an interval of `{}` in {}",
                            format_instant(logical_date),
                            schedule.source(),
                            dag.timezone
                        ),
                        hint: containing.map(|s| {
                            format!("the interval containing it starts at {}", format_instant(s))
                        }),
                    }
                })?;
            (
                interval,
                format!("scheduled__{}", format_instant(logical_date)),
            )
        }
        None => (
            DataInterval {
                start: logical_date,
                end: logical_date,
            },
            format!("manual__{}", format_instant(logical_date)),
        ),
    };
    let mut outputs = BTreeMap::new();
    for entry in upstream_outputs {
        let (task, json) = entry.split_once('=').ok_or_else(|| CliError::Invalid {
            message: format!("--upstream-output `{entry}` is not TASK=JSON"),
            hint: Some("e.g. --upstream-output 'aggregate={\"rows\": 10}'".into()),
        })?;
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| CliError::Invalid {
                message: format!("--upstream-output for `{task}`: {e}"),
                hint: None,
            })?;
        outputs.insert(task.to_owned(), value);
    }
    let context = RunContext {
        dag_id: dag.dag.clone(),
        run_id,
        task_id: task_id.to_owned(),
        try_number,
        logical_date,
        data_interval: interval,
        params: dag.params.clone(),
        conn: BTreeMap::new(),
        var: sluice_model::template::variables_from_env(),
        outputs,
    };
    let renderer = Renderer::new(&context);
    let mut kind: TaskKind = task.kind.clone();
    let mut failures = Vec::new();
    let mut fields = Vec::new();
    kind.visit_templates_mut(&mut |field, text| match renderer.render(text) {
        Ok(rendered) => {
            fields.push((field.to_owned(), rendered.clone()));
            *text = rendered;
        }
        Err(e) => failures.push(format!("tasks.{task_id}.{field}: {e}")),
    });
    if !failures.is_empty() {
        let outputs_hint = failures
            .iter()
            .any(|f| f.contains("outputs"))
            .then(|| "outputs of upstream tasks exist only in a run; pass them with --upstream-output TASK=JSON".to_owned());
        return Err(CliError::Invalid {
            message: format!("cannot render: {}", failures.join("; ")),
            hint: outputs_hint,
        });
    }
    match cli.output {
        OutputFormat::Json => streams.json(&serde_json::json!({
            "dag": dag.dag,
            "task": task_id,
            "run_id": context.run_id,
            "data_interval": interval,
            "fields": fields.iter().cloned().collect::<BTreeMap<_, _>>(),
            "task_after_rendering": kind,
        }))?,
        OutputFormat::Table => {
            writeln!(streams.out, "# {} {} {}", dag.dag, task_id, context.run_id)?;
            writeln!(streams.out, "# data interval {interval}")?;
            for (field, value) in &fields {
                if value.contains('\n') {
                    writeln!(streams.out, "{field}: |")?;
                    for line in value.lines() {
                        writeln!(streams.out, "  {line}")?;
                    }
                } else {
                    writeln!(streams.out, "{field}: {value}")?;
                }
            }
        }
    }
    Ok(0)
}

/// A DAG from the folder that has a schedule (backfills and audits cut ranges into its
/// intervals).
pub(super) fn scheduled_dag(
    cli: &Cli,
    dag_id: &str,
    streams: &mut Streams<'_>,
) -> Result<(LoadedDag, sluice_model::schedule::Schedule), CliError> {
    let loaded = find_dag(cli, dag_id, streams)?;
    let schedule = loaded
        .dag
        .schedule
        .clone()
        .ok_or_else(|| CliError::Invalid {
            message: format!("DAG `{dag_id}` has no schedule, so it has no intervals"),
            hint: Some(
                "backfill and audit work on scheduled DAGs; trigger unscheduled ones".into(),
            ),
        })?;
    Ok((loaded, schedule))
}
