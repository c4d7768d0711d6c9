//! `type: clickhouse`: SQL statements run in order against a ClickHouse connection.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FieldProblem, Kind};
use crate::spec::fields::{Decoder, Fields};
use crate::spec::model::defaults;

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

impl Kind for ClickhouseTask {
    const TYPE: &'static str = "clickhouse";
    const DESCRIPTION: &'static str = "SQL statements against ClickHouse.";

    fn decode(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Self> {
        let connection = f.read_required(d, "connection", Decoder::string);
        let sql = f.read_required(d, "sql", Decoder::string);
        let settings = f.read(d, "settings", Decoder::json_object);
        let max_output_rows = f.read(d, "max_output_rows", Decoder::unsigned);
        let wait_for_mutations = f.read(d, "wait_for_mutations", Decoder::boolean);
        Some(ClickhouseTask {
            connection: connection?,
            sql: sql?,
            settings: settings.unwrap_or_default(),
            max_output_rows,
            wait_for_mutations: wait_for_mutations
                .unwrap_or_else(crate::spec::model::defaults::wait_for_mutations),
        })
    }

    fn visit_templates(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
        visit("sql", &mut self.sql);
    }

    fn interpreter_of(&self, field: &str) -> Option<super::Interpreter> {
        (field == "sql").then_some(super::Interpreter::Sql)
    }

    fn check(&self, task: &str, problems: &mut Vec<FieldProblem>) {
        problems.extend(FieldProblem::empty_sql(task, &self.sql, "no statement"));
    }

    fn schema(generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
        Some(ClickhouseTask::json_schema(generator))
    }
}
