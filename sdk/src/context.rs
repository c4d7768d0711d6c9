use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::TaskError;

/// What Sluice tells a plugin about the attempt it runs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct TaskContext {
    /// The DAG's id.
    pub dag: String,
    pub run_id: String,
    /// The task's id within the DAG.
    pub task: String,
    /// 1 for the first try, 2 for the first retry, and so on.
    pub try_number: u32,
    /// RFC 3339, UTC: the start of the data interval.
    pub logical_date: String,
    pub data_interval: DataInterval,
    /// The DAG's `params`.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Outputs of the task's upstream tasks, by task id.
    #[serde(default)]
    pub outputs: BTreeMap<String, Value>,
    /// The task's `config`, rendered (templates already filled in).
    #[serde(default)]
    pub config: Value,
}

/// The half-open event-time interval `[start, end)` a run processes, RFC 3339 UTC.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataInterval {
    pub start: String,
    pub end: String,
}

impl TaskContext {
    /// Parses the context Sluice writes to stdin.
    pub fn from_json(bytes: &[u8]) -> Result<TaskContext, TaskError> {
        serde_json::from_slice(bytes)
            .map_err(|e| TaskError::fatal(format!("the task context is not valid: {e}")))
    }

    /// The task's `config` as a typed struct. A mismatch is a fatal error naming the field.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, TaskError> {
        let config = if self.config.is_null() {
            Value::Object(Map::new())
        } else {
            self.config.clone()
        };
        serde_json::from_value(config)
            .map_err(|e| TaskError::fatal(format!("invalid `config` for task {}: {e}", self.task)))
    }

    /// An upstream task's output, if it produced one.
    pub fn output(&self, task: &str) -> Option<&Value> {
        self.outputs.get(task)
    }

    /// A DAG param.
    pub fn param(&self, name: &str) -> Option<&Value> {
        self.params.get(name)
    }
}
