//! The DAG file model. YAML is decoded into these types by `decode` (to report every
//! problem with its location); serde is derived for JSON (CLI output, API, store) and
//! schemars for the JSON Schema editors use. Doc comments here become the schema's
//! descriptions.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration::Duration;
use super::size::ByteSize;
use super::timezone::TimeZone;
use crate::schedule::Schedule;

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
    /// Settings every task inherits unless it sets its own.
    #[serde(default)]
    pub defaults: TaskPolicy,
    /// Values available to templates as `params.<name>`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
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
    pub const RETRIES: u32 = 0;
    pub const RETRY_DELAY: Duration = Duration::from_secs(300);
    pub const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);
    pub const POOL: &str = "default";
    pub fn retryable_exit_codes() -> Vec<i32> {
        vec![75]
    }
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
    /// Consumer group whose lag is watched.
    pub group: String,
    /// Open once the watermark passes the interval end plus this. Default `0s`.
    #[serde(default)]
    pub watermark_lateness: Duration,
    /// Open only while the group's total lag is at most this many messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<u64>,
    /// Fail the run if the gate is still closed this long after the interval ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// A partition with no new data for this long does not hold the watermark back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_partition_timeout: Option<Duration>,
    /// Clear and rerun an interval when late events arrive for it after it succeeded.
    #[serde(default)]
    pub reprocess_late_data: bool,
    /// How often the topic and group are looked at. Default `10s`.
    #[serde(default = "defaults::gate_poll_interval")]
    pub poll_interval: Duration,
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
    #[serde(flatten)]
    pub policy: TaskPolicy,
}

/// The task types.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TaskKind {
    /// Does nothing and succeeds; for structure, tests and benchmarks.
    Noop,
    /// A local process.
    Command(CommandTask),
    /// A Spark application on EMR or a local Spark.
    Spark(SparkTask),
    /// SQL statements against ClickHouse.
    Clickhouse(ClickhouseTask),
    /// A WebAssembly plugin, sandboxed.
    Wasm(WasmTask),
    /// Starts a backfill of another DAG on this scheduler (reprocessing on demand).
    Backfill(BackfillTask),
}

impl TaskKind {
    pub const TYPES: [&'static str; 6] =
        ["noop", "command", "spark", "clickhouse", "wasm", "backfill"];

    pub fn type_name(&self) -> &'static str {
        match self {
            TaskKind::Noop => "noop",
            TaskKind::Command(_) => "command",
            TaskKind::Spark(_) => "spark",
            TaskKind::Clickhouse(_) => "clickhouse",
            TaskKind::Wasm(_) => "wasm",
            TaskKind::Backfill(_) => "backfill",
        }
    }
}

/// `type: command` — a local process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// No `deny_unknown_fields`: flattened into `Task`, it would refuse the task's other
// fields when a stored DAG version is read back (YAML is checked by the decoder, not serde).
pub struct CommandTask {
    /// A string runs through `sh -c`; a list is the program and its arguments. Templated.
    pub command: CommandLine,
    /// Environment variables for the process. Values are templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory. Templated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Exit codes that mean "try again"; others fail for good. Default `[75]` (EX_TEMPFAIL).
    #[serde(default = "defaults::retryable_exit_codes")]
    pub retryable_exit_codes: Vec<i32>,
    /// Time between SIGTERM and SIGKILL on timeout. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

/// `type: spark` — one Spark application.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// No `deny_unknown_fields`: flattened into `Task`, it would refuse the task's other
// fields when a stored DAG version is read back (YAML is checked by the decoder, not serde).
pub struct SparkTask {
    /// `emr` (a step on an EMR cluster) or `local` (`spark-submit --master local[*]`).
    /// Default `local`; the configuration may override it per environment.
    #[serde(default)]
    pub backend: SparkBackend,
    /// The application: a `.py` file or a jar (S3 paths on EMR). Templated.
    pub application: String,
    /// Main class, for a jar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub main_class: Option<String>,
    /// Application arguments. Templated.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Spark configuration (`--conf key=value`). Values are templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub conf: BTreeMap<String, String>,
    /// Maven coordinates (`--packages`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    /// Python dependencies (`--py-files`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub py_files: Vec<String>,
    /// Extra jars (`--jars`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jars: Vec<String>,
    /// EMR connection (cluster id, region, endpoint, role) from the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Create a cluster for the run and terminate it when the run ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient_cluster: Option<TransientCluster>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SparkBackend {
    Emr,
    #[default]
    Local,
}

/// An EMR cluster created for a run (RunJobFlow).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransientCluster {
    /// EMR release, e.g. `emr-7.5.0`.
    pub release_label: String,
    /// Instance groups; give these or `instance_fleets`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_groups: Vec<InstanceGroup>,
    /// Instance fleets (several instance types per role, on-demand and spot targets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_fleets: Vec<InstanceFleet>,
    /// Managed scaling limits, in instances.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed_scaling: Option<ManagedScaling>,
    /// Keep the cluster when it has no steps (KeepJobFlowAliveWhenNoSteps). Default false.
    #[serde(default)]
    pub keep_alive: bool,
    /// S3 prefix for cluster logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceGroup {
    pub role: InstanceRole,
    pub instance_type: String,
    pub count: u32,
    /// Default `on_demand`.
    #[serde(default)]
    pub market: InstanceMarket,
}

/// A fleet: EMR picks instances among `instance_types` to reach the capacity targets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InstanceFleet {
    pub role: InstanceRole,
    /// Default 0.
    #[serde(default)]
    pub target_on_demand_capacity: u32,
    /// Default 0.
    #[serde(default)]
    pub target_spot_capacity: u32,
    pub instance_types: Vec<FleetInstanceType>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FleetInstanceType {
    pub instance_type: String,
    /// Capacity units one instance counts for. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weighted_capacity: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceRole {
    Master,
    Core,
    Task,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InstanceMarket {
    #[default]
    OnDemand,
    Spot,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedScaling {
    pub min_units: u32,
    pub max_units: u32,
}

/// `type: clickhouse` — SQL statements run in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// Flattened into `Task`: no `deny_unknown_fields` (see `CommandTask`).
pub struct ClickhouseTask {
    /// ClickHouse connection name from the configuration.
    pub connection: String,
    /// One or more statements separated by `;`. Templated. A final SELECT's rows become
    /// the task's output.
    pub sql: String,
    /// ClickHouse settings for these statements.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Most rows kept as output. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_rows: Option<u64>,
    /// After an `ALTER TABLE … DELETE|UPDATE`, wait until the server has applied it before
    /// the next statement (mutations run in the background). Default true.
    #[serde(default = "defaults::wait_for_mutations")]
    pub wait_for_mutations: bool,
}

/// `type: backfill` — starts (or resumes) a backfill of another DAG of the same scheduler,
/// like Airflow's `TriggerDagRunOperator` for a range: a validation that found bad
/// intervals can have them reprocessed. It succeeds once the backfill is started (the
/// target DAG's runs and validations report on it); a target with another backfill open
/// is a retryable failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// Flattened into `Task`: no `deny_unknown_fields` (see `CommandTask`).
pub struct BackfillTask {
    /// The DAG to backfill. Templated.
    pub target: String,
    /// First instant of the range, RFC 3339. Templated; default `{{ data_interval_start }}`.
    #[serde(default = "defaults::backfill_from")]
    pub from: String,
    /// End of the range; only whole intervals inside it run. Templated; default
    /// `{{ data_interval_end }}`.
    #[serde(default = "defaults::backfill_to")]
    pub to: String,
    /// Which intervals that already have a run to run again: `none`, `failed` or
    /// `completed` (default: `completed`, a reprocessing).
    #[serde(default = "defaults::backfill_reprocess")]
    pub reprocess: String,
    /// Runs of the backfill at once (default: the target DAG's `max_active_runs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_active_runs: Option<u32>,
    /// Rendered to `true` or `false`; `false` succeeds without starting anything (an
    /// opt-in switch such as `{{ params.reprocess_mismatches }}`). Templated; default `true`.
    #[serde(default = "defaults::backfill_enabled")]
    pub enabled: String,
}

/// `type: wasm` — a WebAssembly plugin run in a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// Flattened into `Task`: no `deny_unknown_fields` (see `CommandTask`).
pub struct WasmTask {
    /// Plugin name (`plugins/<name>.wasm`) or a path to a `.wasm` file.
    pub plugin: String,
    /// Configuration handed to the plugin; strings inside are templated.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config: serde_json::Value,
    /// What the plugin may touch; nothing by default.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Memory limit, e.g. `256MiB`. Default from the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<ByteSize>,
    /// Fuel (instruction budget); unlimited by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

/// Grants for a plugin; everything not granted is denied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// ClickHouse connection the plugin may query through `clickhouse_query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<String>,
    /// Key-value store scoped to the DAG (`kv_get`, `kv_put`).
    #[serde(default)]
    pub kv: bool,
    /// Host directories visible to the plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirGrant>,
    /// Names of environment variables passed through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: String,
    /// Where the plugin sees it.
    pub guest: String,
    /// Default `read_only`.
    #[serde(default)]
    pub mode: DirMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirMode {
    #[default]
    ReadOnly,
    ReadWrite,
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
        let variants = vec![
            variant("noop", "Does nothing and succeeds.", None),
            variant(
                "command",
                "A local process.",
                Some(CommandTask::json_schema(generator)),
            ),
            variant(
                "spark",
                "A Spark application on EMR or a local Spark.",
                Some(SparkTask::json_schema(generator)),
            ),
            variant(
                "clickhouse",
                "SQL statements against ClickHouse.",
                Some(ClickhouseTask::json_schema(generator)),
            ),
            variant(
                "wasm",
                "A WebAssembly plugin, sandboxed.",
                Some(WasmTask::json_schema(generator)),
            ),
            variant(
                "backfill",
                "Starts a backfill of another DAG on this scheduler.",
                Some(BackfillTask::json_schema(generator)),
            ),
        ];
        schemars::json_schema!({
            "description": "A task: `type` chooses its kind and the fields it takes.",
            "type": "object",
            "required": ["type"],
            "properties": { "type": { "enum": TaskKind::TYPES } },
            "oneOf": variants,
        })
    }
}
