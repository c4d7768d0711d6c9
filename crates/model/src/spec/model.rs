//! The DAG file model. YAML is decoded into these types by `decode` (to report every
//! problem with its location); serde is derived for JSON (CLI output, API, store) and
//! schemars for the JSON Schema editors use. Doc comments here become the schema's
//! descriptions.

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::{Duration, SignedDuration};
pub use super::kinds::*;
use super::timezone::TimeZone;
use crate::schedule::Schedule;
use crate::schedule::mapping::IntervalMapping;
pub use crate::schedule::mapping::MappingKind;

/// A DAG: tasks, their dependencies, and when and how they run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Dag {
    /// Unique id of the DAG: letters, digits, `_`, `-` and `.`.
    pub dag: String,
    /// What the DAG does, shown in the UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Team or person responsible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Free-form labels for filtering.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Cron expression (5 fields, or 6 with seconds first), a preset (`@hourly`, `@daily`,
    /// `@weekly`, `@monthly`, `@yearly`), or null for manually triggered DAGs.
    #[serde(default, with = "schedule_serde")]
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Schedule>,
    /// IANA time zone the schedule is read in. Default `UTC`.
    #[serde(default)]
    pub timezone: TimeZone,
    /// First instant covered; required with a schedule. RFC 3339, or a date / local
    /// date-time read in `timezone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub start: Option<DateTime<Utc>>,
    /// No interval ends after this instant. Same forms as `start`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub end: Option<DateTime<Utc>>,
    /// Create runs for every interval missed since `start` (or since the last run). Default false.
    #[serde(default)]
    pub catchup: bool,
    /// Start paused the first time the scheduler sees this DAG (e.g. a DAG only ever
    /// backfilled). `sluice dags pause|unpause` changes it afterwards. Default false.
    #[serde(default)]
    pub paused_on_creation: bool,
    /// Most runs of this DAG active at once. Default 16.
    #[serde(default = "defaults::max_active_runs")]
    pub max_active_runs: u32,
    /// Most task instances of this DAG running at once, across its runs. Default 16.
    #[serde(default = "defaults::max_active_tasks")]
    pub max_active_tasks: u32,
    /// Processing-latency SLA, measured from the end of the data interval to run success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla: Option<Sla>,
    /// Data-readiness gate: tasks wait, holding no slot, until the data is complete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<Gate>,
    /// Assets this DAG reads, each with the intervals of it one run reads: the run's tasks
    /// wait, holding no slot, until every one of them is materialized, and run again when
    /// one is rewritten. `{warehouse.agg_15m: within}` reads every window inside the run's
    /// interval. Needs a schedule.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(schema_with = "consumes_schema")]
    pub consumes: IndexMap<String, Consumes>,
    /// Settings every task inherits unless it sets its own.
    #[serde(default)]
    pub defaults: TaskPolicy,
    /// Values available to templates as `params.<name>`: each a plain value (a param of
    /// that value's type) or a declaration `{default, type, enum, pattern, minimum, maximum,
    /// minLength, maxLength, items, description}`. A run's conf may set only these, each as
    /// declared. Here: the defaults.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// What each param admits (from `params:`).
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    #[schemars(skip)]
    pub param_specs: IndexMap<String, super::params::ParamSpec>,
    /// A run's conf may also set keys that are not declared params.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_undeclared_conf: bool,
    /// The tasks, by id.
    pub tasks: IndexMap<String, Task>,
}

pub mod defaults {
    use super::*;

    pub fn backfill_from() -> String {
        "{{ data_interval_start }}".into()
    }

    pub fn backfill_to() -> String {
        "{{ data_interval_end }}".into()
    }

    pub fn backfill_reprocess() -> String {
        "completed".into()
    }

    pub fn backfill_enabled() -> String {
        "true".into()
    }

    pub fn consumes_intervals() -> MappingKind {
        MappingKind::Within
    }

    pub fn max_active_runs() -> u32 {
        16
    }
    pub fn max_active_tasks() -> u32 {
        16
    }
    pub fn wait_for_mutations() -> bool {
        true
    }
    pub const GATE_POLL_INTERVAL: Duration = Duration::from_secs(10);
    pub fn gate_poll_interval() -> Duration {
        GATE_POLL_INTERVAL
    }
    pub fn required() -> bool {
        true
    }
    pub const MAX_LATE_REPROCESSING: u32 = 3;
    /// Reruns of one interval for rewritten inputs, like late-data reprocessing.
    pub const MAX_UPSTREAM_RERUNS: u32 = 3;
    pub fn max_upstream_reruns() -> u32 {
        MAX_UPSTREAM_RERUNS
    }
    pub fn max_late_reprocessing() -> u32 {
        MAX_LATE_REPROCESSING
    }
    pub const RETRIES: u32 = 0;
    pub const RETRY_DELAY: Duration = Duration::from_secs(300);
    pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
    pub const POOL: &str = "default";
}

/// Processing-latency SLA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Sla {
    /// Warn when a run has not succeeded this long after its interval ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warn_after: Option<Duration>,
    /// The run must succeed within this; retries that cannot start before it are not started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
}

/// Data-readiness gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Gate {
    /// Open when a Kafka topic's event-time watermark and consumer lag say the interval is complete.
    pub kafka: KafkaGate,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaGate {
    /// Kafka connection name from the configuration.
    pub connection: String,
    pub topic: String,
    /// Consumer group whose lag is watched, with `max_lag`/`max_lag_time`. Or `groups`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Several consumer groups, each with a rule of its own; a group that is not
    /// `required` is watched and shown, never waited on. Instead of `group`.
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub groups: IndexMap<String, GroupRule>,
    /// Open once the watermark passes the interval end plus this. Default `0s`.
    #[serde(default)]
    pub watermark_lateness: Duration,
    /// Open only while the group's total lag is at most this many messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<u64>,
    /// Open only while the group is at most this far behind in time: on every partition,
    /// the time since the first message it has not consumed was appended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_time: Option<Duration>,
    /// Fail the run if the gate is still closed this long after the interval ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// A partition with no new data for this long does not hold the watermark back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_partition_timeout: Option<Duration>,
    /// The raw-zone sink's arrival reports (events written per event minute): late data is
    /// counted from them, without reading the events. Without it, late data is not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrivals_topic: Option<String>,
    /// Clear and rerun an interval when late events arrive for it after it succeeded
    /// (needs `arrivals_topic`).
    #[serde(default)]
    pub reprocess_late_data: bool,
    /// Most times one interval is run again for late data; later late events are counted
    /// and shown, not reprocessed. Default 3.
    #[serde(default = "defaults::max_late_reprocessing")]
    pub max_late_reprocessing: u32,
    /// How often the topic and group are looked at. Default `10s`.
    #[serde(default = "defaults::gate_poll_interval")]
    pub poll_interval: Duration,
}

/// What a consuming DAG reads of one asset: the intervals of it each of its runs reads, and
/// what happens when one of them is written again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Consumes {
    /// `within`: every interval of the asset inside the run's interval (four 15-minute
    /// windows in an hour); `same`: the one interval equal to it. Default `within`.
    #[serde(default = "defaults::consumes_intervals")]
    pub intervals: MappingKind,
    /// Real time added to both ends of the range read (`-45m`: the hour before a `45 *`
    /// run's end). Default `0s`.
    #[serde(default, skip_serializing_if = "SignedDuration::is_zero")]
    pub offset: SignedDuration,
    /// The run's own intervals the range spans, `[first, last]` relative to its interval:
    /// `[-1, -1]` the previous one (a calendar step: a Berlin day is 23–25 hours),
    /// `[-1, 0]` it and the one before. Default `[0, 0]`.
    #[serde(default, skip_serializing_if = "is_no_shift")]
    pub shift: [i32; 2],
    /// When an interval read is written again after the run read it: `rerun` the run (at
    /// most `max_reruns` times per interval) or only `mark_stale`. Default `rerun`.
    #[serde(default)]
    pub on_upstream_change: UpstreamChange,
    /// Most reruns of one interval for rewritten inputs. Default 3.
    #[serde(default = "defaults::max_upstream_reruns")]
    pub max_reruns: u32,
    /// Fail the run if its inputs are still missing this long after its interval ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
}

fn is_no_shift(shift: &[i32; 2]) -> bool {
    *shift == [0, 0]
}

impl Consumes {
    /// The plain form `asset: within` (or `same`).
    pub fn of(intervals: MappingKind) -> Self {
        Consumes {
            intervals,
            offset: SignedDuration::default(),
            shift: [0, 0],
            on_upstream_change: UpstreamChange::default(),
            max_reruns: defaults::MAX_UPSTREAM_RERUNS,
            timeout: None,
        }
    }

    pub fn mapping(&self) -> IntervalMapping {
        IntervalMapping {
            kind: self.intervals,
            offset: self.offset.as_chrono(),
            shift: (self.shift[0], self.shift[1]),
        }
    }
}

/// What a consumer does when an interval it read is written again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamChange {
    /// Run the interval again once its inputs settle.
    #[default]
    Rerun,
    /// Mark the interval stale (shown by `sluice audit --stale`), never rerun it.
    MarkStale,
}

impl UpstreamChange {
    pub const ALL: [(&'static str, UpstreamChange); 2] = [
        ("rerun", UpstreamChange::Rerun),
        ("mark_stale", UpstreamChange::MarkStale),
    ];
}

/// `consumes:` entries: the plain form `within`/`same`, or the full object.
fn consumes_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let full = generator.subschema_for::<Consumes>();
    schemars::json_schema!({
        "type": "object",
        "propertyNames": { "pattern": "^[A-Za-z0-9_.-]+$" },
        "additionalProperties": {
            "oneOf": [
                { "enum": ["within", "same"], "description": "The intervals read, every other setting its default." },
                full,
            ]
        }
    })
}

/// Most consumer groups one gate watches (each costs an OffsetFetch a look).
pub const MAX_GATE_GROUPS: usize = 16;

/// A consumer group's rule under `gate.kafka.groups`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupRule {
    /// Open only while the group's total lag is at most this many messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<u64>,
    /// Open only while the group is at most this far behind in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag_time: Option<Duration>,
    /// Whether the gate waits for this group. Default true; false: watched and shown only.
    #[serde(default = "defaults::required")]
    pub required: bool,
}

impl KafkaGate {
    /// The rule `group` is watched by: the gate's own `max_lag`/`max_lag_time`, waited for.
    fn own_rule(&self) -> GroupRule {
        GroupRule {
            max_lag: self.max_lag,
            max_lag_time: self.max_lag_time,
            required: true,
        }
    }

    /// Every watched group with its rule: `groups`, or `group` with the gate's own rule.
    pub fn watched_groups(&self) -> Vec<(String, GroupRule)> {
        if self.groups.is_empty() {
            return vec![(self.group.clone(), self.own_rule())];
        }
        self.groups
            .iter()
            .map(|(name, rule)| (name.clone(), rule.clone()))
            .collect()
    }

    /// The group whose look also reads the topic's event times and arrival reports, with
    /// its rule: the first required one of `groups`, or `group`.
    pub fn primary(&self) -> (&str, GroupRule) {
        self.groups
            .iter()
            .find(|(_, rule)| rule.required)
            .map(|(name, rule)| (name.as_str(), rule.clone()))
            .unwrap_or_else(|| (self.group.as_str(), self.own_rule()))
    }
}

/// Retry, timeout and pool settings; on `defaults` and on each task.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
// Flattened into `Task`: no serde `deny_unknown_fields` (see `CommandTask`); the schema
// still refuses unknown keys under `defaults`.
#[schemars(deny_unknown_fields)]
pub struct TaskPolicy {
    /// Extra attempts after a retryable failure. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Wait before the first retry. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay: Option<Duration>,
    /// `constant`, or `exponential` (delay · 2^(try−1), capped). Default `constant`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<RetryBackoff>,
    /// Cap of exponential backoff. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_delay: Option<Duration>,
    /// Kill an attempt running longer than this; counts as a retryable failure. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Named pool whose slots bound concurrency. Default `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryBackoff {
    Constant,
    Exponential,
}

/// When a task may run, given its upstream tasks' states.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TriggerRule {
    #[default]
    AllSuccess,
    AllDone,
    OneSuccess,
    OneFailed,
    NoneFailed,
    AllFailed,
    Always,
}

impl TriggerRule {
    pub const ALL: [(&'static str, TriggerRule); 7] = [
        ("all_success", TriggerRule::AllSuccess),
        ("all_done", TriggerRule::AllDone),
        ("one_success", TriggerRule::OneSuccess),
        ("one_failed", TriggerRule::OneFailed),
        ("none_failed", TriggerRule::NoneFailed),
        ("all_failed", TriggerRule::AllFailed),
        ("always", TriggerRule::Always),
    ];
}

/// One task: its kind (`type`) with the kind's fields, plus the settings every task has.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    #[serde(flatten)]
    pub kind: TaskKind,
    #[serde(flatten)]
    pub settings: TaskSettings,
}

/// The fields every task type has.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TaskSettings {
    /// What the task does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Ids of the tasks that must finish first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<String>,
    /// Which upstream outcomes let this task run. Default `all_success`.
    #[serde(default)]
    pub trigger_rule: TriggerRule,
    /// Run only when this task succeeded in the previous interval's run.
    #[serde(default)]
    pub depends_on_past: bool,
    /// Assets this task writes, one interval each run: its run's data interval. Its
    /// success materializes them (consumers of an interval start in the same loop
    /// iteration). Needs a schedule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub produces: Vec<String>,
    #[serde(flatten)]
    pub policy: TaskPolicy,
}

mod schedule_serde {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::schedule::Schedule;

    pub fn serialize<S: Serializer>(value: &Option<Schedule>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(schedule) => s.serialize_str(schedule.source()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Schedule>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| Schedule::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

impl JsonSchema for Task {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Task".into()
    }

    /// One object schema per task type, each listing the common fields and the type's own,
    /// closed with `additionalProperties: false` so editors flag unknown fields.
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let common = TaskSettings::json_schema(generator);
        let variant = |type_name: &str, description: &str, own: Option<schemars::Schema>| {
            let mut properties = serde_json::Map::new();
            properties.insert(
                "type".into(),
                serde_json::json!({ "const": type_name, "description": description }),
            );
            let mut required = vec![serde_json::Value::from("type")];
            for schema in std::iter::once(&common).chain(own.as_ref()) {
                if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                    properties.extend(props.clone());
                }
                if let Some(req) = schema.get("required").and_then(|r| r.as_array()) {
                    required.extend(req.iter().cloned());
                }
            }
            serde_json::json!({
                "type": "object",
                "description": description,
                "properties": properties,
                "required": required,
                "additionalProperties": false,
            })
        };
        let variants: Vec<_> = TaskKind::schemas(generator)
            .into_iter()
            .map(|(type_name, description, own)| variant(type_name, description, own))
            .collect();
        schemars::json_schema!({
            "description": "A task: `type` chooses its kind and the fields it takes.",
            "type": "object",
            "required": ["type"],
            "properties": { "type": { "enum": TaskKind::TYPES } },
            "oneOf": variants,
        })
    }
}
