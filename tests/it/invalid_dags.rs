//! The malformed-DAG corpus: every file under `tests/fixtures/invalid/` must fail to load
//! with the expected problem at the expected line, and every file must be listed here.

use std::collections::BTreeSet;

use sluice_model::spec::{self, Diagnostic, FileReport};
use sluice_tests::{TempDir, fixture};

/// (file, line, code, part of the message, part of the help or "").
const EXPECTED: &[(&str, usize, &str, &str, &str)] = &[
    (
        "consumes_too_many.yaml",
        5,
        "spec::out-of-range",
        "`consumes` names 33 assets; a DAG reads at most 32",
        "split the DAG",
    ),
    (
        "produces_too_many.yaml",
        8,
        "spec::out-of-range",
        "task `load` produces 33 assets; a task writes at most 32",
        "split the task",
    ),
    (
        "consumes_without_schedule.yaml",
        4,
        "spec::consumes-without-schedule",
        "this DAG has no schedule",
        "give the DAG a `schedule:`",
    ),
    (
        "consumes_bad_shift.yaml",
        7,
        "spec::bad-shift",
        "the first is after the last",
        "`[-1, -1]` the one before",
    ),
    (
        "consumes_offset_in_days.yaml",
        8,
        "spec::bad-duration",
        "days are calendar steps",
        "write `shift: [-1, -1]`",
    ),
    (
        "asset_produced_twice.yaml",
        11,
        "spec::asset-produced-twice",
        "already produced by task `load`",
        "one task writes an asset's interval",
    ),
    (
        "asset_read_by_its_writer.yaml",
        5,
        "spec::asset-cycle",
        "its own task `load` writes",
        "a run would wait for itself",
    ),
    (
        "gate_group_and_groups.yaml",
        10,
        "spec::gate-groups",
        "the gate names `group` and `groups`: one of them",
        "move `group` into `groups`",
    ),
    (
        "gate_too_many_groups.yaml",
        9,
        "spec::gate-groups",
        "the gate watches 17 consumer groups; at most 16",
        "watch the groups whose output the DAG reads",
    ),
    (
        "late_data_without_reports.yaml",
        9,
        "spec::late-data-without-reports",
        "`reprocess_late_data` needs `arrivals_topic`",
        "name the topic the raw-zone sink reports its writes to",
    ),
    (
        "sensor_zero_poke_interval.yaml",
        9,
        "spec::out-of-range",
        "`poke_interval` must be longer than 0s",
        "`30s` or more is usual",
    ),
    (
        "transient_cluster_groups_and_fleets.yaml",
        11,
        "spec::cluster-instances",
        "either `instance_groups` or `instance_fleets`",
        "not both, not neither",
    ),
    (
        "transient_cluster_idle_timeout.yaml",
        14,
        "spec::out-of-range",
        "`idle_timeout` 30d is outside what EMR takes",
        "EMR's auto-termination takes 1m to 7d",
    ),
    (
        "transient_cluster_serverless.yaml",
        11,
        "spec::transient-cluster-serverless",
        "runs on EMR Serverless, which has no clusters",
        "remove `transient_cluster`",
    ),
    (
        "syntax_error.yaml",
        6,
        "yaml::syntax",
        "YAML syntax error",
        "closing brackets",
    ),
    (
        "tab_indentation.yaml",
        4,
        "yaml::syntax",
        "tabs",
        "indent with spaces",
    ),
    (
        "unknown_field.yaml",
        7,
        "spec::unknown-field",
        "unknown field `dependson` in task `load`",
        "did you mean `depends_on`?",
    ),
    (
        "unknown_top_level_field.yaml",
        2,
        "spec::unknown-field",
        "unknown field `schedual`",
        "did you mean `schedule`?",
    ),
    (
        "duplicate_task.yaml",
        7,
        "yaml::duplicate-key",
        "duplicate key `load`",
        "",
    ),
    (
        "missing_dependency.yaml",
        7,
        "spec::unknown-dependency",
        "depends on `agregate`, which is not a task",
        "did you mean `aggregate`?",
    ),
    (
        "cycle_two_tasks.yaml",
        5,
        "spec::cycle",
        "dependency cycle: a → b → a",
        "",
    ),
    (
        "cycle_four_tasks.yaml",
        7,
        "spec::cycle",
        "dependency cycle: a → d → c → b → a",
        "",
    ),
    (
        "self_dependency.yaml",
        5,
        "spec::self-dependency",
        "task `a` depends on itself",
        "",
    ),
    (
        "bad_cron.yaml",
        2,
        "spec::bad-schedule",
        "invalid minute field `61`",
        "minutes are 0-59",
    ),
    (
        "cron_seconds_misuse.yaml",
        3,
        "spec::bad-schedule",
        "fires more than once a minute",
        "Did you mean the 5-field `*/15 * * * *`?",
    ),
    (
        "cron_field_count.yaml",
        2,
        "spec::bad-schedule",
        "expected 5 fields",
        "",
    ),
    (
        "unknown_preset.yaml",
        2,
        "spec::bad-schedule",
        "unknown preset `@fortnightly`",
        "@hourly",
    ),
    (
        "unknown_timezone.yaml",
        3,
        "spec::unknown-timezone",
        "unknown time zone `Europe/Berln`",
        "did you mean `Europe/Berlin`?",
    ),
    (
        "negative_duration.yaml",
        4,
        "spec::bad-duration",
        "durations cannot be negative",
        "",
    ),
    (
        "garbled_duration.yaml",
        5,
        "spec::bad-duration",
        "`tasks.a.timeout` is `5 minutes`: not a duration",
        "`1h30m`",
    ),
    (
        "duration_without_unit.yaml",
        3,
        "spec::bad-duration",
        "a duration needs a unit",
        "`60s`",
    ),
    (
        "template_undefined_name.yaml",
        8,
        "spec::template-undefined",
        "undefined name `data_interval_begin`",
        "did you mean `data_interval_end`?",
    ),
    (
        "template_syntax_error.yaml",
        5,
        "spec::template-syntax",
        "template error in `tasks.run.command[1]`",
        "minijinja",
    ),
    (
        "template_undefined_param.yaml",
        7,
        "spec::template-undefined",
        "undefined parameter `params.tabel`",
        "params:",
    ),
    (
        "template_output_not_upstream.yaml",
        7,
        "spec::template-undefined",
        "task `aggregate` is not upstream of `report`",
        "depends_on",
    ),
    (
        "empty.yaml",
        1,
        "spec::empty",
        "the file is empty",
        "`tasks:`",
    ),
    (
        "deeply_nested.yaml",
        3,
        "yaml::too-deep",
        "nested deeper",
        "",
    ),
    (
        "deeply_nested_block.yaml",
        66,
        "yaml::too-deep",
        "nested deeper than 64 levels",
        "",
    ),
    (
        "non_utf8.yaml",
        2,
        "file::not-utf8",
        "not valid UTF-8",
        "UTF-8",
    ),
    (
        "billion_laughs.yaml",
        8,
        "yaml::too-large",
        "more than 250000 YAML nodes",
        "billion laughs",
    ),
    (
        "start_after_end.yaml",
        3,
        "spec::start-after-end",
        "`start` is not before `end`",
        "",
    ),
    (
        "missing_start.yaml",
        2,
        "spec::missing-start",
        "needs `start`",
        "",
    ),
    (
        "missing_tasks.yaml",
        1,
        "spec::missing-field",
        "missing the field `tasks`",
        "add `tasks:`",
    ),
    (
        "missing_type.yaml",
        4,
        "spec::missing-field",
        "task `a` is missing the field `type`",
        "",
    ),
    (
        "missing_required_task_field.yaml",
        4,
        "spec::missing-field",
        "task `load` is missing the field `connection`",
        "",
    ),
    (
        "unknown_task_type.yaml",
        4,
        "spec::unknown-value",
        "cannot be `sparkk`",
        "did you mean `spark`?",
    ),
    (
        "wrong_type_depends_on.yaml",
        7,
        "spec::wrong-type",
        "`tasks.b.depends_on` must be a list, found a mapping",
        "",
    ),
    (
        "field_of_other_type.yaml",
        6,
        "spec::unknown-field",
        "unknown field `sql`",
        "`sql` is a field of `clickhouse` tasks",
    ),
    (
        "yes_no_boolean.yaml",
        2,
        "spec::wrong-type",
        "must be true or false, found `yes`",
        "YAML 1.2",
    ),
    (
        "bad_trigger_rule.yaml",
        7,
        "spec::unknown-value",
        "cannot be `all_sucess`",
        "did you mean `all_success`?",
    ),
    (
        "multiple_documents.yaml",
        4,
        "yaml::multiple-documents",
        "exactly one YAML document",
        "",
    ),
    (
        "bad_task_id.yaml",
        3,
        "spec::bad-id",
        "`load data` is not a valid task id",
        "",
    ),
    (
        "sla_order.yaml",
        3,
        "spec::sla-order",
        "is after `sla.deadline`",
        "",
    ),
    (
        "not_a_mapping.yaml",
        1,
        "spec::wrong-type",
        "a DAG file must be a mapping, found a list",
        "",
    ),
    (
        "max_retry_delay_below.yaml",
        4,
        "spec::retry-delay-order",
        "shorter than `retry_delay`",
        "",
    ),
    (
        "unknown_alias.yaml",
        2,
        "yaml::syntax",
        "unknown anchor",
        "define an anchor",
    ),
    (
        "bad_start_date.yaml",
        3,
        "spec::bad-time",
        "`yesterday` is not a date-time",
        "RFC 3339",
    ),
    (
        "negative_retries.yaml",
        5,
        "spec::wrong-type",
        "found `-1`",
        "",
    ),
    // One file, every problem, one pass.
    (
        "many_problems.yaml",
        3,
        "spec::bad-schedule",
        "fires more than once a minute",
        "",
    ),
    (
        "many_problems.yaml",
        4,
        "spec::unknown-timezone",
        "`Europe/Berln`",
        "",
    ),
    (
        "many_problems.yaml",
        7,
        "spec::bad-duration",
        "`5 minutes`",
        "",
    ),
    (
        "many_problems.yaml",
        12,
        "spec::unknown-field",
        "`dependson`",
        "",
    ),
    ("many_problems.yaml", 16, "spec::cycle", "b → c → b", ""),
    (
        "many_problems.yaml",
        19,
        "spec::template-undefined",
        "`data_interval_begin`",
        "",
    ),
    (
        "many_problems.yaml",
        22,
        "spec::template-undefined",
        "`params.nope`",
        "",
    ),
    (
        "many_problems.yaml",
        26,
        "spec::unknown-dependency",
        "`zz`",
        "",
    ),
];

fn load_fixture(name: &str) -> FileReport {
    match spec::load_file(&fixture("invalid").join(name)) {
        Ok(loaded) => panic!("{name} loaded as DAG `{}` but must fail", loaded.dag.dag),
        Err(report) => report,
    }
}

fn describe(d: &Diagnostic) -> String {
    format!(
        "{:?} {} {} (help: {:?})",
        d.line(),
        d.code,
        d.message,
        d.help
    )
}

#[test]
fn every_fixture_reports_its_problem_at_its_line() {
    let mut misses = Vec::new();
    for (file, line, code, message, help) in EXPECTED {
        let report = load_fixture(file);
        let found = report.diagnostics.iter().any(|d| {
            d.line() == Some(*line)
                && d.code == *code
                && d.message.contains(message)
                && d.help.as_deref().unwrap_or_default().contains(help)
        });
        if !found {
            let got: Vec<String> = report.diagnostics.iter().map(describe).collect();
            misses.push(format!(
                "{file}: expected line {line} {code} `{message}`; got {got:#?}"
            ));
        }
    }
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}

#[test]
fn the_corpus_is_large_and_fully_checked() {
    let on_disk: BTreeSet<String> = std::fs::read_dir(fixture("invalid"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let checked: BTreeSet<String> = EXPECTED.iter().map(|e| e.0.to_owned()).collect();
    assert_eq!(
        on_disk, checked,
        "every fixture needs an expectation and vice versa"
    );
    assert!(on_disk.len() >= 30, "only {} fixtures", on_disk.len());
}

/// (folder under `tests/fixtures/invalid_assets/`, file that fails, line, code, part of the
/// message, part of the help): problems only the whole folder shows.
const EXPECTED_ACROSS_FILES: &[(&str, &str, usize, &str, &str, &str)] = &[
    (
        "unknown_asset",
        "validation.yaml",
        5,
        "spec::unknown-asset",
        "no DAG produces `warehouse.agg_15n`",
        "did you mean `warehouse.agg_15m`?",
    ),
    (
        "grids_differ",
        "aggregation.yaml",
        7,
        "spec::asset-grids-differ",
        "also produced by DAG `backfill` (`*/20 * * * *` in UTC)",
        "give them the same schedule and time zone",
    ),
    (
        "grids_differ",
        "backfill.yaml",
        7,
        "spec::asset-grids-differ",
        "also produced by DAG `aggregation` (`*/15 * * * *` in UTC)",
        "give them the same schedule and time zone",
    ),
    (
        "misaligned_20_over_15",
        "rollup.yaml",
        5,
        "spec::mapping-misaligned",
        "2025-09-01T00:20:00+00:00 is not an upstream interval boundary",
        "the schedules do not nest",
    ),
    (
        "kolkata_hour_over_utc_hour",
        "report.yaml",
        6,
        "spec::mapping-misaligned",
        "cannot read `warehouse.agg_1h` (written by `hourly`, `@hourly` in UTC)",
        "the schedules do not nest",
    ),
    (
        "offset_24h_on_berlin_days",
        "compare.yaml",
        6,
        "spec::mapping-misaligned",
        "the run of [2025-10-26T00:00:00+02:00, 2025-10-27T00:00:00+01:00) (25h)",
        "daylight-saving change in Europe/Berlin",
    ),
    (
        "cycle",
        "left.yaml",
        5,
        "spec::asset-cycle",
        "in a cycle: left, right",
        "removing one `consumes`",
    ),
    (
        "cycle",
        "right.yaml",
        5,
        "spec::asset-cycle",
        "in a cycle: left, right",
        "removing one `consumes`",
    ),
    (
        "too_wide",
        "yearly.yaml",
        5,
        "spec::mapping-too-wide",
        "more than 35136 upstream intervals",
        "read a coarser asset",
    ),
    (
        "same_over_finer",
        "validation.yaml",
        5,
        "spec::mapping-misaligned",
        "`same` reads one upstream interval, but the range holds 4",
        "use `intervals: within`",
    ),
];

#[test]
fn every_folder_of_assets_reports_its_problem_in_its_file() -> std::io::Result<()> {
    let root = fixture("invalid_assets");
    let mut misses = Vec::new();
    for (folder, file, line, code, message, help) in EXPECTED_ACROSS_FILES {
        let set = spec::load_paths(&[root.join(folder)]).map_err(|(_, e)| e)?;
        let report = set
            .failures
            .iter()
            .find(|r| r.source.path().ends_with(file));
        let found = report.is_some_and(|r| {
            r.diagnostics.iter().any(|d| {
                d.line() == Some(*line)
                    && d.code == *code
                    && d.message.contains(message)
                    && d.help.as_deref().unwrap_or_default().contains(help)
            })
        });
        if !found {
            let got: Vec<String> = set
                .failures
                .iter()
                .flat_map(|r| {
                    r.diagnostics
                        .iter()
                        .map(move |d| format!("{}: {}", r.source.path().display(), describe(d)))
                })
                .collect();
            misses.push(format!(
                "{folder}/{file}: expected line {line} {code} `{message}`; got {got:#?}"
            ));
        }
        // The other files of the folder load: only the file at fault is refused.
        let failed = set.failures.len();
        let expected_failures = EXPECTED_ACROSS_FILES
            .iter()
            .filter(|e| e.0 == *folder)
            .count();
        if failed != expected_failures {
            misses.push(format!(
                "{folder}: {failed} files failed, expected {expected_failures}"
            ));
        }
    }
    assert!(misses.is_empty(), "{}", misses.join("\n"));
    // Every folder is checked.
    let folders: BTreeSet<String> = std::fs::read_dir(&root)?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let checked: BTreeSet<String> = EXPECTED_ACROSS_FILES
        .iter()
        .map(|e| e.0.to_owned())
        .collect();
    assert_eq!(folders, checked);
    Ok(())
}

#[test]
fn nesting_schedules_and_offsets_that_land_load_across_zones() -> std::io::Result<()> {
    let dir = TempDir::new("assets-valid")?;
    let producer = |name: &str, schedule: &str, zone: &str, asset: &str| {
        format!(
            "dag: {name}\nschedule: \"{schedule}\"\ntimezone: {zone}\nstart: 2025-01-01T00:00:00Z\ntasks:\n  load:\n    type: noop\n    produces: [{asset}]\n"
        )
    };
    dir.write(
        "agg.yaml",
        producer("agg", "*/15 * * * *", "UTC", "warehouse.agg_15m"),
    )?;
    dir.write(
        "backfill.yaml",
        producer("backfill", "*/15 * * * *", "UTC", "warehouse.agg_15m"),
    )?;
    dir.write(
        "hours.yaml",
        producer("hours", "@hourly", "Europe/Berlin", "warehouse.agg_1h"),
    )?;
    let consumer = |name: &str, schedule: &str, zone: &str, consumes: &str| {
        format!(
            "dag: {name}\nschedule: \"{schedule}\"\ntimezone: {zone}\nstart: 2025-01-01T00:00:00Z\nconsumes:\n  {consumes}\ntasks:\n  check: {{ type: noop }}\n"
        )
    };
    // An hour of 15-minute windows; a Berlin day of UTC windows (92, 96 or 100 of them);
    // a Berlin day of Berlin hours; the `45 *` hour that reads the hour before it.
    dir.write(
        "hourly.yaml",
        consumer("hourly", "@hourly", "UTC", "warehouse.agg_15m: within"),
    )?;
    dir.write(
        "berlin_day.yaml",
        consumer(
            "berlin_day",
            "@daily",
            "Europe/Berlin",
            "warehouse.agg_15m: within",
        ),
    )?;
    dir.write(
        "berlin_hours.yaml",
        consumer(
            "berlin_hours",
            "@daily",
            "Europe/Berlin",
            "warehouse.agg_1h: within",
        ),
    )?;
    dir.write(
        "late_hour.yaml",
        consumer(
            "late_hour",
            "45 * * * *",
            "UTC",
            "warehouse.agg_15m: { intervals: within, offset: -45m }",
        ),
    )?;
    dir.write(
        "yesterday.yaml",
        consumer("yesterday", "@daily", "Europe/Berlin", "warehouse.agg_1h: { shift: [-1, -1], on_upstream_change: mark_stale, max_reruns: 1, timeout: 2h }"),
    )?;
    let set = spec::load_paths(&[dir.path().to_path_buf()]).map_err(|(_, e)| e)?;
    let problems: Vec<String> = set
        .reports()
        .iter()
        .flat_map(|r| r.diagnostics.iter().map(describe))
        .collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(set.dags.len(), 8);
    let yesterday = set
        .get("yesterday")
        .map(|d| d.dag.consumes["warehouse.agg_1h"].clone());
    assert_eq!(
        yesterday.map(|c| (
            c.shift,
            c.on_upstream_change,
            c.max_reruns,
            c.timeout.map(|t| t.to_string())
        )),
        Some((
            [-1, -1],
            spec::UpstreamChange::MarkStale,
            1,
            Some("2h".to_owned())
        ))
    );
    Ok(())
}

/// A file validated alone reads its assets from the rest of the folder (`dags validate
/// FILE`): a consumer of a folder's asset loads; a cycle or a second grid through the
/// folder is reported on the file named.
#[test]
fn a_lone_file_is_checked_against_the_folders_assets() -> std::io::Result<()> {
    let root = fixture("invalid_assets");
    let lone = |folder: &str, file: &str| {
        spec::load_paths_in(&[root.join(folder).join(file)], &[root.join(folder)])
            .map_err(|(_, e)| e)
    };
    // The consumer of the misaligned folder alone: still misaligned (its producer is in
    // the folder), not "unknown asset".
    let set = lone("misaligned_20_over_15", "rollup.yaml")?;
    let codes: Vec<&str> = set
        .failures
        .iter()
        .flat_map(|r| r.diagnostics.iter().map(|d| d.code))
        .collect();
    assert_eq!(codes, vec!["spec::mapping-misaligned"]);
    // One side of the cycle alone: the cycle runs through the folder.
    let set = lone("cycle", "left.yaml")?;
    let codes: Vec<&str> = set
        .failures
        .iter()
        .flat_map(|r| r.diagnostics.iter().map(|d| d.code))
        .collect();
    assert_eq!(codes, vec!["spec::asset-cycle"]);
    // The second grid alone, against the folder's first.
    let set = lone("grids_differ", "backfill.yaml")?;
    let codes: Vec<&str> = set
        .failures
        .iter()
        .flat_map(|r| r.diagnostics.iter().map(|d| d.code))
        .collect();
    assert_eq!(codes, vec!["spec::asset-grids-differ"]);
    assert_eq!(set.dags.len(), 0);
    // A consumer whose producer is elsewhere in the folder loads.
    let set = lone("unknown_asset", "aggregation.yaml")?;
    assert_eq!((set.dags.len(), set.failures.len()), (1, 0));
    Ok(())
}

#[test]
fn many_problems_are_reported_in_one_pass_and_nothing_else() {
    let report = load_fixture("many_problems.yaml");
    let expected = EXPECTED
        .iter()
        .filter(|e| e.0 == "many_problems.yaml")
        .count();
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(describe)
        .collect();
    assert_eq!(errors.len(), expected, "{errors:#?}");
}

#[test]
fn a_ten_megabyte_file_is_refused_without_parsing() -> std::io::Result<()> {
    let dir = TempDir::new("ten-mb")?;
    let mut text = String::from("dag: huge\ntasks:\n  a: { type: noop }\nparams:\n  blob: \"");
    text.push_str(&"x".repeat(10 << 20));
    text.push_str("\"\n");
    let path = dir.write("huge.yaml", &text)?;
    let report = spec::load_file(&path).err();
    let diagnostic = report.as_ref().and_then(|r| r.diagnostics.first());
    assert_eq!(diagnostic.map(|d| d.code), Some("file::too-large"));
    assert!(
        diagnostic.is_some_and(|d| d.message.contains("10.0 MiB")),
        "{diagnostic:?}"
    );
    // The same bytes handed over in memory (e.g. through the API) are refused the same way.
    let in_memory = spec::load_bytes(&path, text.into_bytes()).err();
    assert_eq!(
        in_memory.and_then(|r| r.diagnostics.first().map(|d| d.code)),
        Some("file::too-large")
    );
    Ok(())
}

#[test]
fn a_folder_loads_every_good_file_and_reports_every_bad_one() -> std::io::Result<()> {
    let dir = TempDir::new("folder")?;
    dir.write(
        "good_one.yaml",
        "dag: good_one\ntasks:\n  a: { type: noop }\n",
    )?;
    dir.write(
        "nested/good_two.yml",
        "dag: good_two\ntasks:\n  a: { type: noop }\n",
    )?;
    dir.write("bad_one.yaml", "dag: bad_one\ntasks:\n  a: { type: nop }\n")?;
    dir.write("bad_two.yaml", "dag: [\n")?;
    dir.write(
        "copy_of_good_one.yaml",
        "dag: good_one\ntasks:\n  b: { type: noop }\n",
    )?;
    dir.write("notes.txt", "not a DAG")?;
    dir.write(".hidden.yaml", "garbage: [")?;
    let set = spec::load_paths(&[dir.path().to_path_buf()]).map_err(|(_, e)| e)?;
    let mut loaded: Vec<&str> = set.dags.iter().map(|d| d.dag.dag.as_str()).collect();
    loaded.sort_unstable();
    assert_eq!(loaded, vec!["good_one", "good_two"]);
    let mut failed: Vec<String> = set
        .failures
        .iter()
        .map(|r| {
            r.source
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        })
        .collect();
    failed.sort();
    assert_eq!(
        failed,
        vec!["bad_one.yaml", "bad_two.yaml", "good_one.yaml"]
    );
    let duplicate = set
        .failures
        .iter()
        .flat_map(|r| &r.diagnostics)
        .find(|d| d.code == "spec::duplicate-dag");
    assert!(duplicate.is_some_and(|d| d.message.contains("copy_of_good_one.yaml")));
    Ok(())
}

#[test]
fn diagnostics_render_with_file_line_column_snippet_and_hint() {
    let report = load_fixture("unknown_field.yaml");
    let text = report.render(false);
    assert!(text.contains("unknown_field.yaml:7:5"), "{text}");
    assert!(text.contains("dependson: [extract]"), "{text}");
    assert!(text.contains("unknown field"), "{text}");
    assert!(text.contains("did you mean `depends_on`?"), "{text}");
    let json = report.to_json();
    assert_eq!(json[0]["line"], 7);
    assert_eq!(json[0]["column"], 5);
    assert_eq!(json[0]["code"], "spec::unknown-field");
}
