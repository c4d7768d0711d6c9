//! The committed JSON Schema is what `sluice schema` prints, and agrees with the decoder.

use std::collections::BTreeSet;

use sluice_model::spec::decode::task_fields;
use sluice_model::spec::model::TaskKind;
use sluice_model::spec::schema::dag_schema_json;
use sluice_tests::repo_root;

#[test]
fn the_committed_schema_is_current() {
    let path = repo_root().join("docs").join("dag.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == dag_schema_json(),
        "{} is stale: run `cargo run -- schema > docs/dag.schema.json`",
        path.display()
    );
}

#[test]
fn the_schema_lists_exactly_the_fields_the_decoder_reads() {
    let schema: serde_json::Value = serde_json::from_str(&dag_schema_json()).unwrap_or_default();
    let variants = schema["$defs"]["Task"]["oneOf"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(variants.len(), TaskKind::TYPES.len());
    for variant in variants {
        let type_name = variant["properties"]["type"]["const"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let in_schema: BTreeSet<String> = variant["properties"]
            .as_object()
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        let decoded: BTreeSet<String> = task_fields(&type_name)
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(in_schema, decoded, "fields of `{type_name}` tasks");
        assert_eq!(variant["additionalProperties"], false);
    }
}
