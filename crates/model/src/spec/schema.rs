//! The JSON Schema of DAG files, generated from the model, for editors' autocompletion.

use super::model::Dag;

/// The schema as pretty JSON with a trailing newline, exactly as committed in
/// `docs/dag.schema.json`.
pub fn dag_schema_json() -> String {
    let mut schema = schemars::schema_for!(Dag);
    schema.insert("title".into(), "Sluice DAG".into());
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}
