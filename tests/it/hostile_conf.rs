//! A run's conf written by an attacker, against the shipped DAGs (dags/, examples/): the
//! trigger refuses undeclared and ill-typed keys, and even a value that got past it renders
//! into one shell word or one SQL literal, as the real `sh` and the real ClickHouse read
//! them. Before: `{"n": "a; touch PWNED"}` ran `touch`, and an `output_zone` ending in
//! `…', 'Parquet'); DROP TABLE agg_15m --` made `load` send a third statement.

use std::path::Path;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use sluice_model::schedule::DataInterval;
use sluice_model::spec::kinds::Interpreter;
use sluice_model::spec::params::check_conf;
use sluice_model::spec::{LoadedDag, load_file};
use sluice_model::template::quoting::{quote_shell_word, quote_sql_string};
use sluice_model::template::{Renderer, RunContext};
use sluice_runtime::clickhouse::statements;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// What an attacker would put in a string: every quote, escape, separator and comment.
const PAYLOADS: &[&str] = &[
    "a; touch PWNED",
    "x', 'Parquet'); DROP TABLE agg_15m --",
    "$(touch PWNED)`touch PWNED`",
    "a'\\''; touch PWNED; echo '",
    "back\\slash\\'; DROP TABLE t; --",
    "line\nbreak; DROP TABLE t",
    "/* comment */ \" double \" ` tick `",
];

fn shipped_dags() -> Result<Vec<LoadedDag>> {
    let root = sluice_tests::repo_root();
    let mut dags = Vec::new();
    for folder in ["dags", "examples/quickstart"] {
        for entry in std::fs::read_dir(root.join(folder))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "yaml") {
                dags.push(load_file(&path).map_err(|r| r.render(false))?);
            }
        }
    }
    Ok(dags)
}

/// The DAG's params with every string (and every string in a list) replaced by `payload`.
fn hostile_params(dag: &LoadedDag, payload: &str) -> serde_json::Map<String, Value> {
    dag.dag
        .params
        .iter()
        .map(|(name, value)| {
            let hostile = match value {
                Value::String(_) => json!(payload),
                Value::Array(items) => Value::Array(items.iter().map(|_| json!(payload)).collect()),
                other => other.clone(),
            };
            (name.clone(), hostile)
        })
        .collect()
}

fn context(dag: &LoadedDag, task: &str, params: serde_json::Map<String, Value>) -> RunContext {
    let start = Utc
        .with_ymd_and_hms(2025, 9, 1, 10, 0, 0)
        .single()
        .unwrap_or_default();
    RunContext {
        dag_id: dag.dag.dag.clone(),
        run_id: "manual__2025-09-01T10:00:00Z".into(),
        task_id: task.into(),
        try_number: 1,
        logical_date: start,
        data_interval: DataInterval {
            start,
            end: start + chrono::TimeDelta::minutes(15),
        },
        params,
        conn: Default::default(),
        var: Default::default(),
        outputs: Default::default(),
    }
}

/// Shell metacharacters outside quotes, in order: what decides the command's structure.
fn shell_structure(line: &str) -> Vec<char> {
    let mut structure = Vec::new();
    let mut chars = line.chars();
    let (mut single, mut double) = (false, false);
    while let Some(c) = chars.next() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '\\' if !single => {
                chars.next();
            }
            ';' | '&' | '|' | '<' | '>' | '(' | ')' | '$' | '`' | '\n' if !single && !double => {
                structure.push(c)
            }
            '$' | '`' if double => structure.push(c),
            _ => {}
        }
    }
    structure
}

/// Every templated field of every shipped DAG read by a shell or by ClickHouse, rendered
/// with every payload in every string param: the same shell structure and the same number
/// of statements as with the defaults.
#[test]
fn the_shipped_dags_render_a_hostile_conf_as_data() -> Result {
    let mut checked = 0;
    for dag in shipped_dags()? {
        for (task_id, task) in &dag.dag.tasks {
            let mut kind = task.kind.clone();
            let mut fields = Vec::new();
            kind.visit_templates_mut(&mut |field, text| {
                if let Some(interpreter) = task.kind.interpreter_of(field) {
                    fields.push((field.to_owned(), text.clone(), interpreter));
                }
            });
            for (field, text, interpreter) in fields {
                let benign =
                    Renderer::new(&context(&dag, task_id, dag.dag.params.clone())).render(&text)?;
                for payload in PAYLOADS {
                    let hostile =
                        Renderer::new(&context(&dag, task_id, hostile_params(&dag, payload)))
                            .render(&text)?;
                    let place = format!("{} {task_id}.{field} with {payload:?}", dag.dag.dag);
                    match interpreter {
                        Interpreter::Shell => assert_eq!(
                            shell_structure(&hostile),
                            shell_structure(&benign),
                            "{place}:\n{hostile}"
                        ),
                        Interpreter::Sql => assert_eq!(
                            statements::split(&hostile).len(),
                            statements::split(&benign).len(),
                            "{place}:\n{hostile}"
                        ),
                    }
                    checked += 1;
                }
            }
        }
    }
    // events_aggregation_15m and historical_backfill (load), hello_pipeline (3 commands),
    // the validation DAG's SQL, the examples' shells.
    assert!(
        checked >= 8 * PAYLOADS.len(),
        "only {checked} renders checked"
    );
    Ok(())
}

/// The quoting is what the real interpreters read: `sh` prints the payload back as one
/// word, and ClickHouse returns it as one string literal.
#[test]
fn the_quoting_filters_hold_for_the_real_sh_and_clickhouse() -> Result {
    for payload in PAYLOADS {
        let echoed = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s' {}", quote_shell_word(payload)))
            .current_dir(std::env::temp_dir())
            .output()?;
        assert_eq!(String::from_utf8_lossy(&echoed.stdout), *payload);
        let answered = sluice_tests::clickhouse::sql(&format!(
            "SELECT {} FORMAT TabSeparatedRaw",
            quote_sql_string(payload)
        ))?;
        assert_eq!(answered.strip_suffix('\n').unwrap_or(&answered), *payload);
    }
    assert!(!Path::new(&std::env::temp_dir()).join("PWNED").exists());
    Ok(())
}

/// The trigger's rule, on the shipped DAGs: undeclared keys and ill-typed or ill-formed
/// values are refused with the key and the rule.
#[test]
fn the_shipped_dags_refuse_undeclared_and_ill_typed_conf() -> Result {
    let dags = shipped_dags()?;
    let dag = |id: &str| {
        dags.iter()
            .find(|d| d.dag.dag == id)
            .ok_or_else(|| format!("no DAG {id}"))
    };
    let aggregation = &dag("events_aggregation_15m")?.dag;
    let refused = |conf: Value| {
        check_conf(
            &aggregation.param_specs,
            aggregation.allow_undeclared_conf,
            &conf,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    assert!(
        refused(json!({"output_zone": "s3://x/y', 'Parquet'); DROP TABLE agg_15m --"}))
            .contains("conf `output_zone`: must match the pattern")
    );
    assert!(refused(json!({"cube_dims": ["country; DROP"]})).contains("item 0 must be one of"));
    assert!(refused(json!({"n": 1})).contains("conf `n`: not a param of this DAG"));
    assert!(refused(json!({"cube_dims": "country"})).contains("must be an array"));
    assert_eq!(
        check_conf(
            &aggregation.param_specs,
            false,
            &json!({"output_zone": "s3://analytics-batch/agg_15m_v2", "cube_dims": ["device"]})
        ),
        Ok(())
    );
    let validation = &dag("cross_layer_validation")?.dag;
    assert!(
        check_conf(
            &validation.param_specs,
            false,
            &json!({"tolerance_ratio": "0.1; DROP"})
        )
        .is_err()
    );
    Ok(())
}
