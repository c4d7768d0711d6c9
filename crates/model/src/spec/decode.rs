//! YAML tree → [`Dag`], field by field, reporting every problem with its location.

use indexmap::IndexMap;

use super::diagnostic::Diagnostic;
use super::fields::{Decoder, Fields};
use super::instant::parse_instant;
use super::model::*;
use super::params::{ParamSpec, ParamType};
use super::timezone::TimeZone;
use super::yaml::{Node, NodeKind};
use crate::schedule::Schedule;

/// Decodes a DAG; `None` when a required part is missing or malformed (the problems are in
/// `decoder.diagnostics`).
pub fn decode_dag(decoder: &mut Decoder, root: &Node) -> Option<Dag> {
    if root.kind == NodeKind::Null {
        decoder.report(
            Diagnostic::error("spec::empty", "the file is empty")
                .at(root.location, "nothing here")
                .help("a DAG file is a mapping with at least `dag:` (its id) and `tasks:`"),
        );
        return None;
    }
    let mut f = decoder.fields(root, "", "the DAG")?;
    let dag = f.read_required(decoder, "dag", Decoder::string);
    let description = f.read(decoder, "description", Decoder::string);
    let owner = f.read(decoder, "owner", Decoder::string);
    let tags = f.read(decoder, "tags", Decoder::string_list);
    let schedule = f.read(decoder, "schedule", read_schedule);
    let timezone = f.read(decoder, "timezone", read_timezone);
    let tz = timezone.unwrap_or_default();
    let start = f.read(decoder, "start", |d, n, p| read_instant(d, n, p, tz));
    let end = f.read(decoder, "end", |d, n, p| read_instant(d, n, p, tz));
    let catchup = f.read(decoder, "catchup", Decoder::boolean);
    let paused_on_creation = f.read(decoder, "paused_on_creation", Decoder::boolean);
    let max_active_runs = f.read(decoder, "max_active_runs", Decoder::u32);
    let max_active_tasks = f.read(decoder, "max_active_tasks", Decoder::u32);
    let sla = f.read(decoder, "sla", read_sla);
    let gate = f.read(decoder, "gate", read_gate);
    let consumes = f.read(decoder, "consumes", read_consumes_map);
    let defaults = f.read(decoder, "defaults", |d, n, p| {
        let mut fields = d.fields(n, p, "`defaults`")?;
        let policy = read_policy(d, &mut fields);
        fields.finish(d);
        Some(policy)
    });
    let params = f.read(decoder, "params", read_params);
    let allow_undeclared_conf = f.read(decoder, "allow_undeclared_conf", Decoder::boolean);
    let tasks = f.read_required(decoder, "tasks", read_tasks);
    f.finish(decoder);

    Some(Dag {
        dag: dag?,
        description,
        owner,
        tags: tags.unwrap_or_default(),
        schedule,
        timezone: tz,
        start,
        end,
        catchup: catchup.unwrap_or(false),
        paused_on_creation: paused_on_creation.unwrap_or(false),
        max_active_runs: max_active_runs.unwrap_or_else(defaults::max_active_runs),
        max_active_tasks: max_active_tasks.unwrap_or_else(defaults::max_active_tasks),
        sla,
        gate,
        consumes: consumes.unwrap_or_default(),
        defaults: defaults.unwrap_or_default(),
        params: params.as_ref().map(|(p, _)| p.clone()).unwrap_or_default(),
        param_specs: params.map(|(_, s)| s).unwrap_or_default(),
        allow_undeclared_conf: allow_undeclared_conf.unwrap_or(false),
        tasks: tasks?,
    })
}

fn read_schedule(d: &mut Decoder, node: &Node, path: &str) -> Option<Schedule> {
    let text = d.string(node, path)?;
    match Schedule::parse(&text) {
        Ok(schedule) => Some(schedule),
        Err(e) => {
            d.report(
                Diagnostic::error("spec::bad-schedule", format!("bad schedule `{text}`: {e}"))
                    .at(node.location, "not a valid cron expression")
                    .help(e.hint(&text)),
            );
            None
        }
    }
}

fn read_timezone(d: &mut Decoder, node: &Node, path: &str) -> Option<TimeZone> {
    let name = d.string(node, path)?;
    match TimeZone::parse(&name) {
        Ok(tz) => Some(tz),
        Err(near) => {
            let help = match near {
                Some(n) => format!("did you mean `{n}`?"),
                None => {
                    "use an IANA name such as `UTC`, `Europe/Berlin` or `America/New_York`".into()
                }
            };
            d.report(
                Diagnostic::error(
                    "spec::unknown-timezone",
                    format!("unknown time zone `{name}`"),
                )
                .at(node.location, "not an IANA time zone")
                .help(help),
            );
            None
        }
    }
}

fn read_instant(
    d: &mut Decoder,
    node: &Node,
    path: &str,
    tz: TimeZone,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let text = d.string(node, path)?;
    match parse_instant(&text, tz.tz()) {
        Ok(t) => Some(t),
        Err(e) => {
            d.report(
                Diagnostic::error("spec::bad-time", format!("`{path}`: {e}"))
                    .at(node.location, "not a date-time")
                    .help("write RFC 3339 like `2025-09-01T00:00:00Z`, or a date `2025-09-01` (midnight in `timezone`)"),
            );
            None
        }
    }
}

fn read_sla(d: &mut Decoder, node: &Node, path: &str) -> Option<Sla> {
    let mut f = d.fields(node, path, "`sla`")?;
    let sla = Sla {
        warn_after: f.read(d, "warn_after", Decoder::duration),
        deadline: f.read(d, "deadline", Decoder::duration),
    };
    f.finish(d);
    Some(sla)
}

fn read_gate(d: &mut Decoder, node: &Node, path: &str) -> Option<Gate> {
    let mut f = d.fields(node, path, "`gate`")?;
    let kafka = f.read_required(d, "kafka", |d, n, p| {
        let mut k = d.fields(n, p, "the Kafka gate")?;
        let connection = k.read_required(d, "connection", Decoder::string);
        let topic = k.read_required(d, "topic", Decoder::string);
        let group = k.read(d, "group", Decoder::string);
        let groups = k.read(d, "groups", |d, n, p| {
            d.map(n, p, |d, n, p| {
                let mut g = d.fields(n, p, "a consumer group's rule")?;
                let rule = GroupRule {
                    max_lag: g.read(d, "max_lag", Decoder::unsigned),
                    max_lag_time: g.read(d, "max_lag_time", Decoder::duration),
                    required: g
                        .read(d, "required", Decoder::boolean)
                        .unwrap_or_else(defaults::required),
                };
                g.finish(d);
                Some(rule)
            })
        });
        let gate = KafkaGate {
            watermark_lateness: k
                .read(d, "watermark_lateness", Decoder::duration)
                .unwrap_or_default(),
            max_lag: k.read(d, "max_lag", Decoder::unsigned),
            max_lag_time: k.read(d, "max_lag_time", Decoder::duration),
            arrivals_topic: k.read(d, "arrivals_topic", Decoder::string),
            timeout: k.read(d, "timeout", Decoder::duration),
            idle_partition_timeout: k.read(d, "idle_partition_timeout", Decoder::duration),
            reprocess_late_data: k
                .read(d, "reprocess_late_data", Decoder::boolean)
                .unwrap_or(false),
            max_late_reprocessing: k
                .read(d, "max_late_reprocessing", Decoder::u32)
                .unwrap_or_else(defaults::max_late_reprocessing),
            poll_interval: k
                .read(d, "poll_interval", Decoder::duration)
                .unwrap_or(defaults::GATE_POLL_INTERVAL),
            connection: connection?,
            topic: topic?,
            group: group.unwrap_or_default(),
            groups: groups.unwrap_or_default().into_iter().collect(),
        };
        k.finish(d);
        Some(gate)
    });
    f.finish(d);
    Some(Gate { kafka: kafka? })
}

/// Most assets one DAG reads: each is a lookup per run and a line on every page.
pub const MAX_CONSUMES: usize = 32;
/// Most consumer intervals one range spans (`shift`): a year of days.
pub const MAX_SHIFT: i32 = 366;

fn read_consumes_map(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<IndexMap<String, Consumes>> {
    let NodeKind::Map(entries) = &node.kind else {
        d.report(
            Diagnostic::error(
                "spec::wrong-type",
                format!(
                    "`consumes` must map asset names to what is read of them, found {}",
                    node.kind_name()
                ),
            )
            .at(node.location, "expected `asset.name: within` entries"),
        );
        return None;
    };
    if entries.len() > MAX_CONSUMES {
        d.report(
            Diagnostic::error(
                "spec::out-of-range",
                format!(
                    "`consumes` names {} assets; a DAG reads at most {MAX_CONSUMES}",
                    entries.len()
                ),
            )
            .at(node.location, "too many")
            .help("split the DAG, or produce a combined asset upstream"),
        );
        return None;
    }
    let mut read = d.map(node, path, read_consumes)?;
    // The file's order, as for tasks.
    let mut ordered = IndexMap::with_capacity(read.len());
    for (key, _) in entries {
        if let Some(name) = key.as_scalar().map(|s| &s.value)
            && let Some(entry) = read.remove(name)
        {
            ordered.insert(name.clone(), entry);
        }
    }
    Some(ordered)
}

const MAPPING_KINDS: [(&str, MappingKind); 2] =
    [("within", MappingKind::Within), ("same", MappingKind::Same)];

fn read_consumes(d: &mut Decoder, node: &Node, path: &str) -> Option<Consumes> {
    if node.as_scalar().is_some() {
        return d.choice(node, path, &MAPPING_KINDS).map(Consumes::of);
    }
    let mut f = d.fields(node, path, &format!("`{path}`"))?;
    let intervals = f.read(d, "intervals", |d, n, p| d.choice(n, p, &MAPPING_KINDS));
    let offset = f.read(d, "offset", read_signed_duration);
    let shift = f.read(d, "shift", read_shift);
    let on_upstream_change = f.read(d, "on_upstream_change", |d, n, p| {
        d.choice(n, p, &UpstreamChange::ALL)
    });
    let max_reruns = f.read(d, "max_reruns", Decoder::u32);
    let timeout = f.read(d, "timeout", Decoder::duration);
    f.finish(d);
    Some(Consumes {
        intervals: intervals.unwrap_or_else(defaults::consumes_intervals),
        offset: offset.unwrap_or_default(),
        shift: shift.unwrap_or([0, 0]),
        on_upstream_change: on_upstream_change.unwrap_or_default(),
        max_reruns: max_reruns.unwrap_or(defaults::MAX_UPSTREAM_RERUNS),
        timeout,
    })
}

fn read_signed_duration(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<super::duration::SignedDuration> {
    use super::duration::SignedDurationError;
    let text = d.string(node, path)?;
    match text.parse() {
        Ok(offset) => Some(offset),
        Err(e) => {
            let help = match &e {
                SignedDurationError::Days => {
                    "an offset is real time (ms, s, m, h); to read the previous day of the calendar write `shift: [-1, -1]`".to_owned()
                }
                SignedDurationError::Duration(e) => {
                    format!("{}; a leading `-` moves the range earlier", e.hint())
                }
            };
            d.report(
                Diagnostic::error("spec::bad-duration", format!("`{path}` is `{text}`: {e}"))
                    .at(node.location, "not an offset")
                    .help(help),
            );
            None
        }
    }
}

fn read_shift(d: &mut Decoder, node: &Node, path: &str) -> Option<[i32; 2]> {
    let values = d.integer_list(node, path)?;
    let problem = match values.as_slice() {
        [first, last] if first > last => Some("the first is after the last"),
        [first, last] if first.abs() > MAX_SHIFT || last.abs() > MAX_SHIFT => {
            Some("a shift is at most 366 intervals either way")
        }
        [_, _] => None,
        _ => Some("it needs two numbers"),
    };
    match (problem, values.as_slice()) {
        (None, [first, last]) => Some([*first, *last]),
        (problem, _) => {
            d.report(
                Diagnostic::error(
                    "spec::bad-shift",
                    format!(
                        "`{path}` must be `[first, last]`: {}",
                        problem.unwrap_or("it needs two numbers")
                    ),
                )
                .at(node.location, "not a shift")
                .help(
                    "`[0, 0]` is the run's own interval, `[-1, -1]` the one before, `[-1, 0]` both",
                ),
            );
            None
        }
    }
}

fn read_policy(d: &mut Decoder, f: &mut Fields<'_>) -> TaskPolicy {
    const BACKOFFS: [(&str, RetryBackoff); 2] = [
        ("constant", RetryBackoff::Constant),
        ("exponential", RetryBackoff::Exponential),
    ];
    TaskPolicy {
        retries: f.read(d, "retries", Decoder::u32),
        retry_delay: f.read(d, "retry_delay", Decoder::duration),
        retry_backoff: f.read(d, "retry_backoff", |d, n, p| d.choice(n, p, &BACKOFFS)),
        max_retry_delay: f.read(d, "max_retry_delay", Decoder::duration),
        timeout: f.read(d, "timeout", Decoder::duration),
        pool: f.read(d, "pool", Decoder::string),
    }
}

fn read_tasks(d: &mut Decoder, node: &Node, path: &str) -> Option<IndexMap<String, Task>> {
    let NodeKind::Map(entries) = &node.kind else {
        d.report(
            Diagnostic::error(
                "spec::wrong-type",
                format!(
                    "`tasks` must be a mapping of task id to task, found {}",
                    node.kind_name()
                ),
            )
            .at(
                node.location,
                "expected `task_id: {type: ..., ...}` entries",
            ),
        );
        return None;
    };
    // The free-form map reader records key locations, which validation uses for task ids.
    let tasks = d.map(node, path, |d, value, p| {
        let id = &p[path.len() + 1..];
        read_task(d, value, p, id)
    })?;
    // Keep the file's order: the UI and `dags show` list tasks as written.
    let mut ordered = IndexMap::with_capacity(tasks.len());
    let mut tasks = tasks;
    for (key, _) in entries {
        if let Some(id) = key.as_scalar().map(|s| &s.value)
            && let Some(task) = tasks.remove(id)
        {
            ordered.insert(id.clone(), task);
        }
    }
    Some(ordered)
}

fn read_task(d: &mut Decoder, node: &Node, path: &str, id: &str) -> Option<Task> {
    let what = format!("task `{id}`");
    let mut f = d.fields(node, path, &what)?;
    let type_name = f.read_required(d, "type", |d, n, p| {
        let options: Vec<(&str, &str)> = TaskKind::TYPES.iter().map(|t| (*t, *t)).collect();
        d.choice(n, p, &options)
    });
    let settings = read_settings(d, &mut f);
    let kind = type_name.and_then(|name| TaskKind::decode(name, d, &mut f));
    if let Some(type_name) = type_name {
        f.finish_with(d, |field| field_of_other_type(field, type_name));
    }
    Some(Task {
        kind: kind?,
        settings,
    })
}

/// "`sql` is a field of `clickhouse` tasks" — for a field put on the wrong task type.
fn field_of_other_type(field: &str, type_name: &str) -> Option<String> {
    let common = task_fields("noop");
    if common.contains(&field) {
        return None;
    }
    TaskKind::TYPES
        .iter()
        .find(|owner| **owner != type_name && task_fields(owner).contains(&field))
        .map(|owner| {
            format!("`{field}` is a field of `{owner}` tasks, and this task is `{type_name}`")
        })
}

fn read_settings(d: &mut Decoder, f: &mut Fields<'_>) -> TaskSettings {
    TaskSettings {
        description: f.read(d, "description", Decoder::string),
        depends_on: f
            .read(d, "depends_on", Decoder::string_list)
            .unwrap_or_default(),
        trigger_rule: f
            .read(d, "trigger_rule", |d, n, p| {
                d.choice(n, p, &TriggerRule::ALL)
            })
            .unwrap_or_default(),
        depends_on_past: f
            .read(d, "depends_on_past", Decoder::boolean)
            .unwrap_or(false),
        produces: f
            .read(d, "produces", Decoder::string_list)
            .unwrap_or_default(),
        policy: read_policy(d, f),
    }
}

/// Every field name a task of `type_name` accepts, in the order the decoder asks for them;
/// used to keep the JSON Schema and the decoder in step.
pub fn task_fields(type_name: &str) -> Vec<&'static str> {
    let node = Node {
        kind: NodeKind::Map(Vec::new()),
        location: super::diagnostic::Location {
            offset: 0,
            len: 0,
            line: 1,
            column: 1,
        },
    };
    let mut d = Decoder::new();
    let Some(mut f) = d.fields(&node, "t", "t") else {
        return Vec::new();
    };
    f.get("type");
    read_settings(&mut d, &mut f);
    drop(TaskKind::decode(type_name, &mut d, &mut f));
    f.known().to_vec()
}

/// `params:`: each entry a plain value (a param of that value's type) or a declaration
/// (`default`, `type`, constraints); the defaults for templates, and each param's spec.
fn read_params(
    d: &mut Decoder,
    node: &Node,
    path: &str,
) -> Option<(
    serde_json::Map<String, serde_json::Value>,
    IndexMap<String, ParamSpec>,
)> {
    let entries = d.map(node, path, read_param)?;
    let mut defaults = serde_json::Map::new();
    let mut specs = IndexMap::new();
    for (name, (default, spec)) in entries {
        defaults.insert(name.clone(), default);
        specs.insert(name, spec);
    }
    Some((defaults, specs))
}

fn is_declaration(node: &Node) -> bool {
    let NodeKind::Map(entries) = &node.kind else {
        return false;
    };
    entries.iter().any(|(key, _)| {
        key.as_scalar()
            .is_some_and(|k| k.value == "default" || k.value == "type")
    })
}

fn read_param(d: &mut Decoder, node: &Node, path: &str) -> Option<(serde_json::Value, ParamSpec)> {
    if !is_declaration(node) {
        let value = d.json(node, path)?;
        let spec = ParamSpec::inferred(&value);
        return Some((value, spec));
    }
    let mut f = d.fields(node, path, &format!("param `{path}`"))?;
    let default_node = f.get("default");
    let default = default_node.and_then(|n| d.json(n, &format!("{path}.default")));
    let spec = read_param_spec(d, &mut f, path, default.as_ref());
    f.finish(d);
    let spec = spec?;
    let Some((default, default_node)) = default.zip(default_node) else {
        d.report(
            Diagnostic::error(
                "spec::param-default",
                format!("param `{path}` has no `default`"),
            )
            .at(node.location, "declared here")
            .help("scheduled runs have no conf: give the value they use as `default:`"),
        );
        return None;
    };
    if let Err(rule) = spec.check(&default) {
        d.report(
            Diagnostic::error(
                "spec::param-default",
                format!("the default of `{path}` {rule}"),
            )
            .at(default_node.location, "does not fit its declaration"),
        );
        return None;
    }
    Some((default, spec))
}

/// The constraint keywords of a declaration (and of its `items`); the type comes from
/// `type`, else from the default.
fn read_param_spec(
    d: &mut Decoder,
    f: &mut Fields<'_>,
    path: &str,
    default: Option<&serde_json::Value>,
) -> Option<ParamSpec> {
    let kind = f.read(d, "type", |d, n, p| d.choice(n, p, ParamType::NAMES));
    let choices = f.read(d, "enum", |d, n, p| d.list(n, p, |d, i, p| d.json(i, p)));
    let pattern = f.read(d, "pattern", |d, n, p| {
        let text = d.string(n, p)?;
        match super::params::compile(&text) {
            Ok(_) => Some(text),
            Err(e) => {
                d.report(
                    Diagnostic::error("spec::param-pattern", format!("`{p}`: {e}"))
                        .at(n.location, "not a usable regular expression"),
                );
                None
            }
        }
    });
    let number = |d: &mut Decoder, n: &Node, p: &str| {
        let value = d.json(n, p)?;
        let number = value.as_f64();
        if number.is_none() {
            d.report(
                Diagnostic::error("spec::wrong-type", format!("`{p}` must be a number"))
                    .at(n.location, "expected a number"),
            );
        }
        number
    };
    let minimum = f.read(d, "minimum", number);
    let maximum = f.read(d, "maximum", number);
    let min_length = f.read(d, "minLength", Decoder::unsigned);
    let max_length = f.read(d, "maxLength", Decoder::unsigned);
    let items = f.read(d, "items", |d, n, p| {
        let mut fields = d.fields(n, p, &format!("`{p}`"))?;
        let spec = read_param_spec(d, &mut fields, p, None);
        fields.finish(d);
        spec.map(Box::new)
    });
    let description = f.read(d, "description", Decoder::string);
    let kind = match (kind, default) {
        (Some(kind), _) => kind,
        (None, Some(default)) => ParamType::of(default),
        (None, None) => {
            d.report(
                Diagnostic::error("spec::param-type", format!("`{path}` has no `type`"))
                    .at(f.location(), "declared here")
                    .help("give a `type`: string, integer, number, boolean, array or object"),
            );
            return None;
        }
    };
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    Some(ParamSpec {
        kind,
        choices,
        pattern,
        minimum,
        maximum,
        min_length: min_length.map(size),
        max_length: max_length.map(size),
        items,
        description,
    })
}
