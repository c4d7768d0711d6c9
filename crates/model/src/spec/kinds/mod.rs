//! Task kinds, one module each (after Vector's components): a kind's module holds its fields
//! (the serde/schemars model), how they are read from YAML, which of them are templates, and
//! the checks across them. This file registers every kind once, in `task_kinds!`: the
//! `TaskKind` enum, its `type:` names, and the dispatch to each module.
//!
//! Adding a kind (ARCHITECTURE.md, "Where a new task kind goes"): a module here and its line
//! in `task_kinds!`; its executor in `sluice-runtime` (`executor/<kind>.rs`) and its line in
//! `executor::Executors`; its section in docs/dag-spec.md; `sluice schema` into
//! docs/dag.schema.json.

mod backfill;
mod clickhouse;
mod command;
mod noop;
mod sensor;
mod spark;
mod wasm;

pub use backfill::BackfillTask;
pub use clickhouse::ClickhouseTask;
pub use command::{CommandLine, CommandTask};
pub use noop::NoopTask;
pub use sensor::SensorTask;
pub use spark::{
    DEFAULT_IDLE_TIMEOUT_SECONDS, FleetInstanceType, InstanceFleet, InstanceGroup, InstanceMarket,
    InstanceRole, ManagedScaling, SparkBackend, SparkTask, TransientCluster,
};
pub use wasm::{Capabilities, DirGrant, DirMode, WasmTask};

use serde::{Deserialize, Serialize};

use super::fields::{Decoder, Fields, join};

/// What a task kind's module provides.
pub trait Kind: Sized {
    /// The `type:` value.
    const TYPE: &'static str;
    /// One line for the JSON Schema.
    const DESCRIPTION: &'static str;

    /// Reads the kind's own fields, recording every problem in `d`.
    fn decode(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Self>;

    /// Calls `visit` with the path (relative to the task) and text of each templated field.
    fn visit_templates(&mut self, _visit: &mut dyn FnMut(&str, &mut String)) {}

    /// Which templated field (a path `visit_templates` gives) is read by an interpreter: a
    /// value rendered into it must be quoted for that interpreter.
    fn interpreter_of(&self, _field: &str) -> Option<Interpreter> {
        None
    }

    /// Rules across the kind's fields, after decoding.
    fn check(&self, _task: &str, _problems: &mut Vec<FieldProblem>) {}

    /// The kind's own fields in the JSON Schema; `None` when it has none.
    fn schema(generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema>;
}

/// What reads a rendered field as code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpreter {
    /// A POSIX shell (`sh -c`): values need `shell_quote`.
    Shell,
    /// ClickHouse SQL: values need `sql_string` or `sql_identifier`.
    Sql,
}

/// A rule a kind's fields break: the validator turns it into a located diagnostic.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldProblem {
    pub code: &'static str,
    pub message: String,
    /// The field, relative to the task (`transient_cluster.managed_scaling`).
    pub field: &'static str,
    /// What the caret under the field says.
    pub label: &'static str,
    pub help: Option<&'static str>,
}

impl FieldProblem {
    pub fn new(
        code: &'static str,
        message: impl Into<String>,
        field: &'static str,
        label: &'static str,
    ) -> FieldProblem {
        FieldProblem {
            code,
            message: message.into(),
            field,
            label,
            help: None,
        }
    }

    pub fn help(mut self, help: &'static str) -> FieldProblem {
        self.help = Some(help);
        self
    }
}

impl FieldProblem {
    /// `sql` holds no statement (`label` says what was expected there).
    pub fn empty_sql(task: &str, sql: &str, label: &'static str) -> Option<FieldProblem> {
        sql.trim().is_empty().then(|| {
            FieldProblem::new(
                "spec::empty-sql",
                format!("task `{task}` has empty `sql`"),
                "sql",
                label,
            )
        })
    }
}

/// The one list of task kinds: `Variant(Type)`, each type implementing [`Kind`].
macro_rules! task_kinds {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        /// The task types: `type:` chooses one and the fields it takes.
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "type", rename_all = "snake_case")]
        pub enum TaskKind {
            $($variant($ty)),*
        }

        impl TaskKind {
            /// Every `type:` value, in the order of the list.
            pub const TYPES: &'static [&'static str] = &[$(<$ty as Kind>::TYPE),*];

            pub fn type_name(&self) -> &'static str {
                match self {
                    $(TaskKind::$variant(_) => <$ty as Kind>::TYPE),*
                }
            }

            /// Reads the fields of the kind named `type_name`; `None` for an unknown type
            /// (reported by the caller) or fields that did not decode (reported in `d`).
            pub fn decode(type_name: &str, d: &mut Decoder, f: &mut Fields<'_>) -> Option<TaskKind> {
                $(if type_name == <$ty as Kind>::TYPE {
                    return <$ty as Kind>::decode(d, f).map(TaskKind::$variant);
                })*
                None
            }

            /// Calls `visit` with the path (relative to the task) and text of each templated
            /// field: the one list, used to check templates and to render them.
            pub fn visit_templates_mut(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
                match self {
                    $(TaskKind::$variant(kind) => kind.visit_templates(visit)),*
                }
            }

            /// The interpreter that reads a templated field, if any.
            pub fn interpreter_of(&self, field: &str) -> Option<Interpreter> {
                match self {
                    $(TaskKind::$variant(kind) => kind.interpreter_of(field)),*
                }
            }

            /// What the kind's own rules find wrong with task `task`.
            pub fn check(&self, task: &str) -> Vec<FieldProblem> {
                let mut problems = Vec::new();
                match self {
                    $(TaskKind::$variant(kind) => kind.check(task, &mut problems)),*
                }
                problems
            }

            /// (`type`, description, own fields' schema) of every kind.
            pub fn schemas(
                generator: &mut schemars::SchemaGenerator,
            ) -> Vec<(&'static str, &'static str, Option<schemars::Schema>)> {
                vec![$((<$ty as Kind>::TYPE, <$ty as Kind>::DESCRIPTION, <$ty as Kind>::schema(generator))),*]
            }
        }
    };
}

task_kinds! {
    Noop(NoopTask),
    Command(CommandTask),
    Spark(SparkTask),
    Clickhouse(ClickhouseTask),
    Wasm(WasmTask),
    Backfill(BackfillTask),
    Sensor(SensorTask),
}

fn visit_list(path: &str, items: &mut [String], visit: &mut dyn FnMut(&str, &mut String)) {
    for (i, item) in items.iter_mut().enumerate() {
        visit(&format!("{path}[{i}]"), item);
    }
}

fn visit_json(path: &str, value: &mut serde_json::Value, visit: &mut dyn FnMut(&str, &mut String)) {
    match value {
        serde_json::Value::String(text) => visit(path, text),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                visit_json(&format!("{path}[{i}]"), item, visit);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                visit_json(&join(path, key), item, visit);
            }
        }
        _ => {}
    }
}
