//! Rendering task fields from a run's context with minijinja, undefined names being errors.
//!
//! Context (Airflow's names): `dag_id, run_id, task_id, try_number, logical_date,
//! data_interval_start, data_interval_end, ds, ds_nodash, ts, ts_nodash, params, conn, var,
//! outputs`. Instants render as RFC 3339 in UTC (`2025-09-01T00:00:00Z`). Time helpers are
//! filters: `strftime(fmt[, tz])`, `add_duration(d)`, `sub_duration(d)`,
//! `date_trunc(unit)`, `to_epoch`. Quoting filters (`quoting`): `shell_quote`,
//! `sql_string`, `sql_identifier`.

mod filters;
pub mod quoting;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use minijinja::{Environment, UndefinedBehavior, Value};
use serde::Serialize;

use crate::schedule::DataInterval;
use crate::spec::instant::format_instant;

/// The names a template may use at its top level.
pub const CONTEXT_NAMES: &[&str] = &[
    "dag_id",
    "run_id",
    "task_id",
    "try_number",
    "logical_date",
    "data_interval_start",
    "data_interval_end",
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "params",
    "conn",
    "var",
    "outputs",
];

/// minijinja's global functions, which `undeclared_variables` reports like variables.
const GLOBAL_FUNCTIONS: &[&str] = &["range", "dict", "namespace"];

/// The shared environment: strict undefined, Sluice's filters, no auto-escaping (SQL and
/// shell text are not HTML).
pub fn environment() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        // SQL and scripts keep their final newline as written.
        if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
            .keep_trailing_newline(true)
            .build()
        {
            env.set_syntax(syntax);
        }
        // Bounds the work one hostile template can make a render do.
        env.set_recursion_limit(64);
        // Loops are bounded by instructions: a render of a task field never spins the
        // scheduler's thread for long (a normal SQL template takes a few thousand).
        env.set_fuel(Some(RENDER_FUEL));
        filters::register(&mut env);
        quoting::register(&mut env);
        // `debug()` would dump every name in the context, `var` and `conn` included.
        env.remove_global("debug");
        env
    })
}

/// Instructions one render may run: the platform's longest SQL template takes a few
/// hundred; a loop of a million iterations (found by fuzzing: seconds on the loop's
/// thread) does not fit.
pub const RENDER_FUEL: u64 = 200_000;

/// The longest text one render may produce: a task field, not a data file.
pub const MAX_RENDERED_BYTES: usize = 16 << 20;

/// Whether a string contains template syntax; plain strings skip the template engine.
pub fn is_template(text: &str) -> bool {
    text.contains("{{") || text.contains("{%") || text.contains("{#")
}

/// A template problem, with the byte range inside the template when minijinja knows it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    pub message: String,
    pub range: Option<std::ops::Range<usize>>,
}

impl From<minijinja::Error> for TemplateError {
    fn from(e: minijinja::Error) -> Self {
        let message = match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        };
        TemplateError {
            message,
            range: e.range(),
        }
    }
}

/// Compiles a template and lists the dotted names it reads that it does not define itself
/// (`params.cube_dims`, `outputs.aggregate.rows`, `ds`).
pub fn referenced_names(source: &str) -> Result<Vec<String>, TemplateError> {
    let template = environment().template_from_str(source)?;
    let mut names: Vec<String> = template
        .undeclared_variables(true)
        .into_iter()
        .filter(|n| !GLOBAL_FUNCTIONS.contains(&root_of(n)))
        .collect();
    names.sort();
    Ok(names)
}

pub fn root_of(name: &str) -> &str {
    name.split('.').next().unwrap_or(name)
}

/// Everything a task's templates can see during one attempt.
#[derive(Debug, Clone, Serialize)]
pub struct RunContext {
    pub dag_id: String,
    pub run_id: String,
    pub task_id: String,
    pub try_number: u32,
    pub logical_date: DateTime<Utc>,
    pub data_interval: DataInterval,
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Non-secret connection fields by connection name.
    pub conn: BTreeMap<String, serde_json::Value>,
    /// Variables: `SLUICE_VAR_<NAME>` from the environment (see [`variables_from_env`]).
    pub var: BTreeMap<String, serde_json::Value>,
    /// Upstream tasks' JSON outputs by task id.
    pub outputs: BTreeMap<String, serde_json::Value>,
}

/// Prefix of the environment variables that become `var.<name>` (Airflow's
/// `AIRFLOW_VAR_<NAME>`): `SLUICE_VAR_WAREHOUSE_READS=file` is `var.warehouse_reads`.
pub const VAR_PREFIX: &str = "SLUICE_VAR_";

/// Variables from the environment: the name after the prefix, lower-cased; a value that is
/// JSON (a number, a list, an object) is that JSON, anything else a string.
pub fn variables_from_env() -> BTreeMap<String, serde_json::Value> {
    variables_from(std::env::vars())
}

/// [`variables_from_env`] over any list of (name, value) pairs.
pub fn variables_from(
    vars: impl Iterator<Item = (String, String)>,
) -> BTreeMap<String, serde_json::Value> {
    vars.filter_map(|(key, value)| {
        let name = key.strip_prefix(VAR_PREFIX)?.to_ascii_lowercase();
        let parsed = serde_json::from_str::<serde_json::Value>(&value)
            .ok()
            .filter(|v| !v.is_string())
            .unwrap_or(serde_json::Value::String(value));
        Some((name, parsed))
    })
    .collect()
}

impl RunContext {
    fn to_value(&self) -> Value {
        let start = self.data_interval.start;
        let ts = format_instant(self.logical_date);
        let fields: BTreeMap<&str, Value> = [
            ("dag_id", Value::from(self.dag_id.as_str())),
            ("run_id", Value::from(self.run_id.as_str())),
            ("task_id", Value::from(self.task_id.as_str())),
            ("try_number", Value::from(self.try_number)),
            ("logical_date", Value::from(ts.as_str())),
            ("data_interval_start", Value::from(format_instant(start))),
            (
                "data_interval_end",
                Value::from(format_instant(self.data_interval.end)),
            ),
            (
                "ds",
                Value::from(self.logical_date.format("%Y-%m-%d").to_string()),
            ),
            (
                "ds_nodash",
                Value::from(self.logical_date.format("%Y%m%d").to_string()),
            ),
            ("ts", Value::from(ts.as_str())),
            (
                "ts_nodash",
                Value::from(self.logical_date.format("%Y%m%dT%H%M%S").to_string()),
            ),
            ("params", Value::from(minijinja::value::Serde(&self.params))),
            ("conn", Value::from(minijinja::value::Serde(&self.conn))),
            ("var", Value::from(minijinja::value::Serde(&self.var))),
            (
                "outputs",
                Value::from(minijinja::value::Serde(&self.outputs)),
            ),
        ]
        .into_iter()
        .collect();
        Value::from(minijinja::value::Serde(&fields))
    }
}

/// Renders templated strings for one attempt's context.
pub struct Renderer {
    context: Value,
}

impl Renderer {
    pub fn new(context: &RunContext) -> Self {
        Renderer {
            context: context.to_value(),
        }
    }

    pub fn render(&self, source: &str) -> Result<String, TemplateError> {
        if !is_template(source) {
            return Ok(source.to_owned());
        }
        let rendered = environment().render_str(source, &self.context)?;
        if rendered.len() > MAX_RENDERED_BYTES {
            return Err(TemplateError {
                message: format!(
                    "the rendered text is {} MiB, over the {} MiB a task field may have",
                    rendered.len() >> 20,
                    MAX_RENDERED_BYTES >> 20
                ),
                range: None,
            });
        }
        Ok(rendered)
    }
}

#[cfg(test)]
mod tests;
