use serde_json::{Map, Value};
use sluice_sdk::{host, TaskContext, TaskError};

use crate::config::Source;

pub type Row = Map<String, Value>;

/// The rows a source names, each a JSON object.
pub fn fetch(ctx: &TaskContext, source: &Source) -> Result<Vec<Row>, TaskError> {
    let value =
        match (&source.query, &source.output) {
            (Some(sql), None) => {
                let connection = source.connection.as_deref().ok_or_else(|| {
                    TaskError::fatal(
                    "a `query` source needs `connection` (granted in `capabilities.clickhouse`)",
                )
                })?;
                Value::Array(host::clickhouse_query(connection, sql)?)
            }
            (None, Some(task)) => {
                let output = match ctx.output(task) {
                    Some(output) => output.clone(),
                    None => host::output(task)?,
                };
                match &source.path {
                    Some(path) => path
                        .split('.')
                        .try_fold(&output, |value, key| value.get(key))
                        .cloned()
                        .ok_or_else(|| {
                            TaskError::fatal(format!("the output of `{task}` has no `{path}`"))
                        })?,
                    None => output,
                }
            }
            _ => return Err(TaskError::fatal(
                "a source has exactly one of `query` (ClickHouse) or `output` (an upstream task)",
            )),
        };
    to_rows(value)
}

pub fn to_rows(value: Value) -> Result<Vec<Row>, TaskError> {
    match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, item)| match item {
                Value::Object(row) => Ok(row),
                other => Err(TaskError::fatal(format!(
                    "row {i} is not an object: {other}"
                ))),
            })
            .collect(),
        other => Err(TaskError::fatal(format!(
            "rows must be an array of objects, got {}",
            kind(&other)
        ))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A number from a JSON number or a numeric string (ClickHouse's JSON formats quote 64-bit
/// integers).
pub fn number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}
