//! YAML tree → [`Dag`], field by field, reporting every problem with its location.

use indexmap::IndexMap;

use super::diagnostic::Diagnostic;
use super::fields::{Decoder, Fields};
use super::instant::parse_instant;
use super::model::*;
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
    let defaults = f.read(decoder, "defaults", |d, n, p| {
        let mut fields = d.fields(n, p, "`defaults`")?;
        let policy = read_policy(d, &mut fields);
        fields.finish(d);
        Some(policy)
    });
    let params = f.read(decoder, "params", Decoder::json_object);
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
        defaults: defaults.unwrap_or_default(),
        params: params.unwrap_or_default(),
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
        let group = k.read_required(d, "group", Decoder::string);
        let gate = KafkaGate {
            watermark_lateness: k
                .read(d, "watermark_lateness", Decoder::duration)
                .unwrap_or_default(),
            max_lag: k.read(d, "max_lag", Decoder::unsigned),
            timeout: k.read(d, "timeout", Decoder::duration),
            idle_partition_timeout: k.read(d, "idle_partition_timeout", Decoder::duration),
            reprocess_late_data: k
                .read(d, "reprocess_late_data", Decoder::boolean)
                .unwrap_or(false),
            poll_interval: k
                .read(d, "poll_interval", Decoder::duration)
                .unwrap_or(defaults::GATE_POLL_INTERVAL),
            connection: connection?,
            topic: topic?,
            group: group?,
        };
        k.finish(d);
        Some(gate)
    });
    f.finish(d);
    Some(Gate { kafka: kafka? })
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
