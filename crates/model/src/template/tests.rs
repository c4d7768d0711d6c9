use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::*;

fn utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

fn context() -> RunContext {
    let start = utc("2025-09-01T10:15:00Z");
    let mut params = serde_json::Map::new();
    params.insert("cube_dims".into(), serde_json::json!(["country", "device"]));
    RunContext {
        dag_id: "events".into(),
        run_id: "scheduled__2025-09-01T10:15:00Z".into(),
        task_id: "load".into(),
        try_number: 2,
        logical_date: start,
        data_interval: DataInterval {
            start,
            end: utc("2025-09-01T10:30:00Z"),
        },
        params,
        conn: BTreeMap::new(),
        var: BTreeMap::new(),
        outputs: BTreeMap::from([("aggregate".into(), serde_json::json!({"rows": 42}))]),
    }
}

fn render(source: &str) -> Result<String, TemplateError> {
    Renderer::new(&context()).render(source)
}

#[test]
fn renders_the_context_names() {
    assert_eq!(
        render("{{ dag_id }}/{{ run_id }}/{{ task_id }}/{{ try_number }}").as_deref(),
        Ok("events/scheduled__2025-09-01T10:15:00Z/load/2")
    );
    assert_eq!(
        render("{{ data_interval_start }} {{ data_interval_end }} {{ ds }} {{ ds_nodash }} {{ ts_nodash }}")
            .as_deref(),
        Ok("2025-09-01T10:15:00Z 2025-09-01T10:30:00Z 2025-09-01 20250901 20250901T101500")
    );
    assert_eq!(
        render("{{ params.cube_dims | join(',') }} {{ outputs.aggregate.rows }}").as_deref(),
        Ok("country,device 42")
    );
}

#[test]
fn time_helpers() {
    assert_eq!(
        render("{{ data_interval_start | strftime('%Y-%m-%d %H:%M:%S') }}").as_deref(),
        Ok("2025-09-01 10:15:00")
    );
    assert_eq!(
        render("{{ data_interval_start | strftime('%H:%M', 'Europe/Berlin') }}").as_deref(),
        Ok("12:15")
    );
    assert_eq!(
        render("{{ data_interval_end | add_duration('1h30m') }}").as_deref(),
        Ok("2025-09-01T12:00:00Z")
    );
    assert_eq!(
        render("{{ ts | sub_duration('1d') | date_trunc('month') }}").as_deref(),
        Ok("2025-08-01T00:00:00Z")
    );
    assert_eq!(
        render("{{ ts | date_trunc('hour') | to_epoch }}").as_deref(),
        Ok("1756720800")
    );
    assert!(render("{{ ts | add_duration('soon') }}").is_err());
    assert!(render("{{ ts | strftime('%Q') }}").is_err());
}

#[test]
fn undefined_names_are_errors() {
    let error = render("{{ data_interval_begin }}").err();
    assert!(error.is_some_and(|e| e.message.contains("undefined")));
    assert!(render("{{ params.missing }}").is_err());
    assert!(render("{{ outputs.nope.rows }}").is_err());
}

#[test]
fn lists_referenced_names_and_locates_syntax_errors() {
    assert_eq!(
        referenced_names(
            "{% set x = ds %}{{ x }} {{ params.a.b }} {% for i in range(3) %}{{ i }}{% endfor %}"
        ),
        Ok(vec!["ds".to_owned(), "params.a.b".to_owned()])
    );
    let error = referenced_names("SELECT 1\nWHERE {{ ds ").err();
    assert!(
        error.as_ref().is_some_and(|e| e.range.is_some()),
        "{error:?}"
    );
}

#[test]
fn plain_text_is_left_alone() {
    assert_eq!(
        render("SELECT '{' || x || '}'").as_deref(),
        Ok("SELECT '{' || x || '}'")
    );
}

#[test]
fn variables_come_from_sluice_var_environment_names() {
    let vars = crate::template::variables_from(
        [
            ("SLUICE_VAR_WAREHOUSE_READS", "file"),
            ("SLUICE_VAR_LIMITS", "{\"rows\": 5}"),
            ("SLUICE_VAR_QUOTED", "\"x\""),
            ("PATH", "/usr/bin"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned())),
    );
    assert_eq!(
        vars,
        [
            ("limits".to_owned(), serde_json::json!({"rows": 5})),
            ("quoted".to_owned(), serde_json::json!("\"x\"")),
            ("warehouse_reads".to_owned(), serde_json::json!("file")),
        ]
        .into_iter()
        .collect()
    );
}

#[test]
fn an_undefined_variable_can_fall_back_with_default() {
    assert_eq!(
        render("{{ var.warehouse_reads | default('s3') }}").as_deref(),
        Ok("s3")
    );
    assert!(render("{{ var.warehouse_reads }}").is_err());
}

#[test]
fn a_hostile_template_runs_out_of_fuel_or_size_instead_of_spinning_or_filling_memory() {
    let renderer = Renderer::new(&context());
    let spin = renderer
        .render(
            "{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}",
        )
        .expect_err("a hundred million iterations");
    assert!(spin.message.contains("fuel"), "{spin}");
    // Found by fuzzing: a million iterations took seconds; they do not fit the fuel either.
    let million = renderer
        .render(
            "{% for i in range(1001) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}",
        )
        .expect_err("a million iterations");
    assert!(million.message.contains("fuel"), "{million}");
    let huge = renderer
        .render("{{ 'x' * 60000000 }}")
        .expect_err("a 60 MB field");
    // The repetition costs fuel too; either bound stops it.
    assert!(
        huge.message.contains("MiB") || huge.message.contains("fuel"),
        "{huge}"
    );
    // A real SQL template with loops is far from either bound.
    let sql = renderer
        .render("SELECT {% for d in params.cube_dims %}{{ d }}{% if not loop.last %}, {% endif %}{% endfor %} FROM t")
        .expect("an ordinary template");
    assert_eq!(sql, "SELECT country, device FROM t");
}

#[test]
fn quoting_filters_make_one_word_or_one_literal_and_debug_is_gone() {
    let mut context = context();
    context
        .params
        .insert("title".into(), serde_json::json!("it's; rm -rf /"));
    let r = Renderer::new(&context);
    let render = |source: &str| r.render(source).map_err(|e| e.message);
    assert_eq!(
        render("echo {{ params.title | shell_quote }}"),
        Ok(r"echo 'it'\''s; rm -rf /'".to_owned())
    );
    assert_eq!(
        render("{{ params.cube_dims | shell_quote }}"),
        Ok("'country' 'device'".to_owned())
    );
    assert_eq!(
        render("SELECT {{ params.title | sql_string }}"),
        Ok(r"SELECT 'it\'s; rm -rf /'".to_owned())
    );
    assert_eq!(
        render("{{ 'db.t`x' | sql_identifier }}"),
        Ok(r"`db`.`t\`x`".to_owned())
    );
    assert!(render("{{ '' | sql_identifier }}").is_err());
    assert!(render("{{ debug() }}").is_err());
}

#[test]
fn unquoted_params_are_found_in_expressions_without_a_quoting_filter() {
    use super::quoting::{SHELL_FILTERS, unquoted_params};
    let found = |source: &str| -> Vec<String> {
        unquoted_params(source, SHELL_FILTERS)
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    };
    assert_eq!(
        found("echo {{ params.a }} {{ params.b | shell_quote }}"),
        ["a"]
    );
    assert_eq!(found("echo {{ params['c'] | upper }}"), ["c"]);
    assert_eq!(
        found("echo {{ (params.d ~ 'x') | shell_quote }}"),
        Vec::<String>::new()
    );
    assert_eq!(
        found("echo {{ ds }} {{- myparams.e -}}"),
        Vec::<String>::new()
    );
    // `~` binds looser than a filter: only the last part would be quoted.
    assert_eq!(found("echo {{ params.f ~ 'x' | shell_quote }}"), ["f"]);
    // Quoted inside quotes: the quoting ends the surrounding literal.
    assert_eq!(found("echo '{{ params.g | shell_quote }}'"), ["g"]);
}
