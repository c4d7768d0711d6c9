//! `type: sensor`: waits until a condition holds, asking every `poke_interval`. Pokes are
//! not tries: one attempt pokes as often as it needs, so the task's retries stay for real
//! failures (a query that cannot run), and its `timeout` bounds the whole wait.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FieldProblem, Kind};
use crate::spec::duration::Duration;
use crate::spec::fields::{Decoder, Fields};

/// How often a sensor asks when it sets no `poke_interval`.
pub const DEFAULT_POKE_INTERVAL: Duration = Duration::from_secs(60);

/// `type: sensor` — a ClickHouse query asked until it says the condition holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// Flattened into `Task`: no `deny_unknown_fields` (see `CommandTask`).
pub struct SensorTask {
    /// ClickHouse connection name from the configuration.
    pub connection: String,
    /// One SELECT whose first row's first column is `1` (or `true`) once the condition
    /// holds; no row, `0` or `false` means not yet. Templated.
    pub sql: String,
    /// Time between pokes. Default `1m`.
    #[serde(default = "default_poke_interval")]
    pub poke_interval: Duration,
}

fn default_poke_interval() -> Duration {
    DEFAULT_POKE_INTERVAL
}

impl Kind for SensorTask {
    const TYPE: &'static str = "sensor";
    const DESCRIPTION: &'static str =
        "Waits until a ClickHouse query says a condition holds, asking every `poke_interval`.";

    fn decode(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Self> {
        let connection = f.read_required(d, "connection", Decoder::string);
        let sql = f.read_required(d, "sql", Decoder::string);
        let poke_interval = f.read(d, "poke_interval", Decoder::duration);
        Some(SensorTask {
            connection: connection?,
            sql: sql?,
            poke_interval: poke_interval.unwrap_or(DEFAULT_POKE_INTERVAL),
        })
    }

    fn visit_templates(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
        visit("sql", &mut self.sql);
    }

    fn interpreter_of(&self, field: &str) -> Option<super::Interpreter> {
        (field == "sql").then_some(super::Interpreter::Sql)
    }

    fn check(&self, task: &str, problems: &mut Vec<FieldProblem>) {
        problems.extend(FieldProblem::empty_sql(task, &self.sql, "no query"));
        if self.poke_interval.is_zero() {
            problems.push(
                FieldProblem::new(
                    "spec::out-of-range",
                    "`poke_interval` must be longer than 0s",
                    "poke_interval",
                    "zero",
                )
                .help("a sensor waits between pokes; `30s` or more is usual"),
            );
        }
    }

    fn schema(generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
        Some(SensorTask::json_schema(generator))
    }
}
