use std::collections::HashSet;

use serde::Serialize;
use serde_json::{json, Value};
use sluice_sdk::{TaskContext, TaskError};

use crate::config::{Check, Rule};
use crate::rows::{self, number, Row};
use crate::{compare, time};

/// One check's verdict, with what was observed against what was expected.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    pub name: String,
    pub passed: bool,
    pub observed: Value,
    pub expected: Value,
    /// For a failed comparison, one line for people (the report's figures are in `observed`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub summary: String,
}

pub fn evaluate(check: &Check, rows: &[Row], ctx: &TaskContext) -> Result<CheckResult, TaskError> {
    let name = check
        .name
        .clone()
        .unwrap_or_else(|| check.rule.kind().to_owned());
    let mut summary = String::new();
    let (passed, observed, expected) = match &check.rule {
        Rule::RowCount { min, max } => {
            let n = rows.len() as u64;
            let passed = min.map_or(true, |m| n >= m) && max.map_or(true, |m| n <= m);
            (passed, json!(n), json!({"min": min, "max": max}))
        }
        Rule::NullRatio { column, max } => {
            let nulls = rows
                .iter()
                .filter(|r| r.get(column).map_or(true, Value::is_null))
                .count();
            let ratio = if rows.is_empty() {
                0.0
            } else {
                nulls as f64 / rows.len() as f64
            };
            (
                ratio <= *max,
                json!({"ratio": ratio, "nulls": nulls}),
                json!({"max": max}),
            )
        }
        Rule::Unique { columns } => {
            let mut seen = HashSet::new();
            let mut duplicates = Vec::new();
            for row in rows {
                let key = key_of(row, columns);
                // serde_json 1.0.87 (Debian's) has no `Hash` for `Value`: key by its text.
                if !seen.insert(Value::Array(key.clone()).to_string()) && duplicates.len() < 10 {
                    duplicates.push(key);
                }
            }
            let observed = json!({"duplicates": duplicates});
            (duplicates.is_empty(), observed, json!({"unique": columns}))
        }
        Rule::Range { column, min, max } => {
            let mut outside = Vec::new();
            let mut not_numbers = 0usize;
            for row in rows {
                match row.get(column) {
                    None | Some(Value::Null) => {}
                    Some(value) => match number(value) {
                        Some(x) if min.map_or(true, |m| x >= m) && max.map_or(true, |m| x <= m) => {
                        }
                        Some(_) if outside.len() < 10 => outside.push(value.clone()),
                        Some(_) => {}
                        None => not_numbers += 1,
                    },
                }
            }
            let passed = outside.is_empty() && not_numbers == 0;
            let observed = json!({"outside": outside, "not_numbers": not_numbers});
            (passed, observed, json!({"min": min, "max": max}))
        }
        Rule::Freshness { column, max_age } => {
            let max_age_s = time::parse_duration(max_age).ok_or_else(|| {
                TaskError::fatal(format!("freshness: `{max_age}` is not a duration like 30m"))
            })?;
            let end = time::parse_instant(&ctx.data_interval.end).ok_or_else(|| {
                TaskError::fatal(format!(
                    "the data interval end `{}` is not RFC 3339",
                    ctx.data_interval.end
                ))
            })?;
            let newest = rows
                .iter()
                .filter_map(|r| r.get(column))
                .filter_map(|v| match v {
                    Value::String(s) => time::parse_instant(s),
                    other => number(other).map(|x| x as i64),
                })
                .max();
            let passed = newest.map_or(false, |t| t >= end - max_age_s);
            let observed = json!({"newest": newest.map(time::format_instant), "age_seconds": newest.map(|t| end - t)});
            (
                passed,
                observed,
                json!({"max_age": max_age, "relative_to": ctx.data_interval.end}),
            )
        }
        Rule::Compare {
            rows: left,
            with,
            key,
            values,
            tolerance,
            at_most,
            sides,
        } => {
            let left = match left {
                Some(source) => rows::fetch(ctx, source)?,
                None => rows.to_vec(),
            };
            let other = rows::fetch(ctx, with)?;
            let rule = compare::Rule {
                tolerance: *tolerance,
                at_most: *at_most,
            };
            let report = compare::compare(&left, &other, key, values, rule);
            let passed = report.is_clean();
            if !passed {
                let default = ["left".to_owned(), "right".to_owned()];
                summary = report.summary(key, sides.as_deref().unwrap_or(&default));
            }
            (
                passed,
                serde_json::to_value(&report)?,
                json!({"tolerance": tolerance, "key": key, "values": values, "at_most": at_most}),
            )
        }
    };
    Ok(CheckResult {
        name,
        passed,
        observed,
        expected,
        summary,
    })
}

/// The values of `columns` in a row, as one comparable key.
pub fn key_of(row: &Row, columns: &[String]) -> Vec<Value> {
    columns
        .iter()
        .map(|c| match row.get(c) {
            // Numbers compare by value whether ClickHouse quoted them or not.
            Some(Value::String(s)) if s.parse::<f64>().is_ok() => {
                json!(s.parse::<f64>().unwrap_or_default())
            }
            Some(Value::Number(n)) => json!(n.as_f64()),
            Some(v) => v.clone(),
            None => Value::Null,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn ctx() -> TaskContext {
        serde_json::from_value(json!({
            "dag": "events", "run_id": "r", "task": "dq", "try_number": 1,
            "logical_date": "2025-09-01T10:15:00Z",
            "data_interval": {"start": "2025-09-01T10:15:00Z", "end": "2025-09-01T10:30:00Z"},
            "outputs": {"raw": [{"minute": "2025-09-01 10:15:00", "events": 10}, {"minute": "2025-09-01 10:16:00", "events": "20"}]}
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn rows() -> Vec<Row> {
        rows::to_rows(json!([
            {"country": "DE", "device": "ios", "events": 10, "at": "2025-09-01T10:29:00Z"},
            {"country": "FR", "device": "ios", "events": 20, "at": "2025-09-01 10:20:00"},
            {"country": null, "device": "web", "events": -1, "at": "2025-09-01T10:10:00Z"}
        ]))
        .unwrap_or_default()
    }

    fn run(checks: Value) -> Vec<(String, bool)> {
        let config: Config =
            serde_json::from_value(json!({"source": {"output": "raw"}, "checks": checks}))
                .unwrap_or_else(|e| panic!("{e}"));
        config
            .checks
            .iter()
            .map(|c| {
                evaluate(c, &rows(), &ctx())
                    .map(|r| (r.name, r.passed))
                    .unwrap_or_else(|e| panic!("{e}"))
            })
            .collect()
    }

    #[test]
    fn each_rule_passes_and_fails_on_the_rows_it_should() {
        let results = run(json!([
            {"row_count": {"min": 1, "max": 3}},
            {"name": "too_few", "row_count": {"min": 4}},
            {"null_ratio": {"column": "country", "max": 0.5}},
            {"name": "no_nulls", "null_ratio": {"column": "country", "max": 0.0}},
            {"unique": {"columns": ["country", "device"]}},
            {"name": "device_unique", "unique": {"columns": ["device"]}},
            {"range": {"column": "events", "min": -5, "max": 100}},
            {"name": "non_negative", "range": {"column": "events", "min": 0}},
            {"freshness": {"column": "at", "max_age": "5m"}},
            {"name": "stale", "freshness": {"column": "device", "max_age": "5m"}}
        ]));
        let expected = [
            ("row_count", true),
            ("too_few", false),
            ("null_ratio", true),
            ("no_nulls", false),
            ("unique", true),
            ("device_unique", false),
            ("range", true),
            ("non_negative", false),
            ("freshness", true),
            ("stale", false),
        ];
        let expected: Vec<(String, bool)> =
            expected.iter().map(|(n, p)| (n.to_string(), *p)).collect();
        assert_eq!(results, expected);
    }

    #[test]
    fn compare_matches_another_source_within_tolerance() {
        let other = rows::to_rows(json!([
            {"country": "DE", "device": "ios", "events": "10"},
            {"country": "FR", "device": "ios", "events": 21},
            {"country": null, "device": "web", "events": -1}
        ]))
        .unwrap_or_default();
        let key = vec!["country".to_owned(), "device".to_owned()];
        let values = vec!["events".to_owned()];
        let within = |tolerance| compare::Rule {
            tolerance,
            at_most: false,
        };
        assert!(!compare::compare(&rows(), &other, &key, &values, within(0.0)).is_clean());
        assert!(compare::compare(&rows(), &other, &key, &values, within(0.05)).is_clean());
    }

    /// At most: the left side lower or missing is fine, higher or alone is not.
    #[test]
    fn an_at_most_comparison_fails_only_where_the_left_side_is_higher() {
        let key = vec!["country".to_owned(), "device".to_owned()];
        let values = vec!["events".to_owned()];
        let at_most = compare::Rule {
            tolerance: 0.0,
            at_most: true,
        };
        // The right side (batch) holds more everywhere, and one key the left lacks.
        let more = rows::to_rows(json!([
            {"country": "DE", "device": "ios", "events": 12},
            {"country": "FR", "device": "ios", "events": 20},
            {"country": null, "device": "web", "events": 0},
            {"country": "BR", "device": "web", "events": 5}
        ]))
        .unwrap_or_default();
        assert!(compare::compare(&rows(), &more, &key, &values, at_most).is_clean());
        // The left side higher in one key, and alone in another.
        let less = rows::to_rows(json!([
            {"country": "DE", "device": "ios", "events": 9},
            {"country": "FR", "device": "ios", "events": 20}
        ]))
        .unwrap_or_default();
        let report = compare::compare(&rows(), &less, &key, &values, at_most);
        assert_eq!(report.mismatches.len(), 1);
        assert_eq!(report.only_left.len(), 1);
        assert!(report.only_right.is_empty());
        let sides = ["stream".to_owned(), "batch".to_owned()];
        assert_eq!(
            report.summary(&key, &sides),
            "2 of 3 keys differ, 1 only in stream, 0 only in batch; by country: DE (1), null (1)"
        );
    }

    #[test]
    fn a_failed_comparison_says_in_one_line_where_the_sides_differ() {
        let other = rows::to_rows(json!([
            {"country": "DE", "device": "ios", "events": 9},
            {"country": "DE", "device": "web", "events": 1},
            {"country": "FR", "device": "ios", "events": 20}
        ]))
        .unwrap_or_default();
        let key = vec!["country".to_owned(), "device".to_owned()];
        let values = vec!["events".to_owned()];
        let exact = compare::Rule::default();
        let report = compare::compare(&rows(), &other, &key, &values, exact);
        let sides = ["left".to_owned(), "right".to_owned()];
        assert_eq!(
            report.summary(&key, &sides),
            "3 of 4 keys differ, 1 only in left, 1 only in right; by country: DE (2), null (1)"
        );
        let totals = compare::compare(&rows()[..1], &other[..1], &[], &values, exact);
        assert_eq!(totals.summary(&[], &sides), "events 10 vs 9");
    }

    #[test]
    fn compare_takes_its_left_side_and_a_templated_tolerance_from_the_config() {
        let results = run(json!([{
            "name": "total",
            "compare": {
                "rows": {"output": "raw"},
                "with": {"output": "raw"},
                "key": [], "values": ["events"], "tolerance": "0.001"
            }
        }]));
        assert_eq!(results, vec![("total".to_owned(), true)]);
    }
}
