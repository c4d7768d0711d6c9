//! Typed params (Airflow's `Param`): every entry under a DAG's `params:` declares a value a
//! run's conf may set, with a type and optional constraints (a JSON Schema subset). A plain
//! value declares a param of its own type (`tolerance_ratio: 0.001` is a number); a mapping
//! with a `default` (or a `type`) declares one explicitly:
//!
//! ```yaml
//! params:
//!   output_zone:
//!     default: s3://analytics-batch/agg_15m
//!     type: string
//!     pattern: '^s3://[a-z0-9.-]+(/[A-Za-z0-9_.=-]+)*$'
//! ```
//!
//! A trigger's conf may only set declared params, each checked against its declaration
//! ([`check_conf`]); undeclared keys are refused unless the DAG says
//! `allow_undeclared_conf: true`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The keywords a param declaration may use.
pub const KEYWORDS: &[&str] = &[
    "default",
    "type",
    "enum",
    "pattern",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "items",
    "description",
];

/// Longest `pattern` a declaration may give (the regex is compiled for each check).
pub const MAX_PATTERN_LEN: usize = 1024;

/// A param's JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    Array,
    Object,
    Null,
}

impl ParamType {
    pub const NAMES: &[(&str, ParamType)] = &[
        ("string", ParamType::String),
        ("integer", ParamType::Integer),
        ("number", ParamType::Number),
        ("boolean", ParamType::Boolean),
        ("array", ParamType::Array),
        ("object", ParamType::Object),
        ("null", ParamType::Null),
    ];

    pub fn name(self) -> &'static str {
        ParamType::NAMES
            .iter()
            .find(|(_, t)| *t == self)
            .map_or("?", |(n, _)| n)
    }

    /// The type of a plain value.
    pub fn of(value: &Value) -> ParamType {
        match value {
            Value::String(_) => ParamType::String,
            Value::Number(n) if n.is_i64() || n.is_u64() => ParamType::Integer,
            Value::Number(_) => ParamType::Number,
            Value::Bool(_) => ParamType::Boolean,
            Value::Array(_) => ParamType::Array,
            Value::Object(_) => ParamType::Object,
            Value::Null => ParamType::Null,
        }
    }

    fn admits(self, value: &Value) -> bool {
        match self {
            // An integer is a number (JSON Schema).
            ParamType::Number => value.is_number(),
            other => ParamType::of(value) == other,
        }
    }
}

/// What one param admits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamSpec {
    #[serde(rename = "type")]
    pub kind: ParamType,
    #[serde(rename = "enum", default, skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<f64>,
    #[serde(rename = "minLength", default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<usize>,
    #[serde(rename = "maxLength", default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// What each element of an array admits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<ParamSpec>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl ParamSpec {
    /// The declaration a plain value makes: its own type, nothing more.
    pub fn inferred(value: &Value) -> ParamSpec {
        ParamSpec::of_type(ParamType::of(value))
    }

    pub fn of_type(kind: ParamType) -> ParamSpec {
        ParamSpec {
            kind,
            choices: None,
            pattern: None,
            minimum: None,
            maximum: None,
            min_length: None,
            max_length: None,
            items: None,
            description: None,
        }
    }

    /// Whether a value can only be one of a closed set, or a number or a boolean: safe in a
    /// shell line or SQL without quoting.
    pub fn is_inert(&self) -> bool {
        self.choices.is_some()
            || matches!(
                self.kind,
                ParamType::Integer | ParamType::Number | ParamType::Boolean | ParamType::Null
            )
    }

    /// Checks a value against the declaration: the rule it breaks, if any.
    pub fn check(&self, value: &Value) -> Result<(), String> {
        if !self.kind.admits(value) {
            return Err(format!(
                "must be {} {}, not {}",
                article(self.kind.name()),
                self.kind.name(),
                ParamType::of(value).name()
            ));
        }
        if let Some(choices) = &self.choices
            && !choices.contains(value)
        {
            let listed: Vec<String> = choices.iter().map(Value::to_string).collect();
            return Err(format!("must be one of {}", listed.join(", ")));
        }
        if let Some(n) = value.as_f64() {
            if let Some(min) = self.minimum
                && n < min
            {
                return Err(format!("must be at least {min}"));
            }
            if let Some(max) = self.maximum
                && n > max
            {
                return Err(format!("must be at most {max}"));
            }
        }
        let length = match value {
            Value::String(s) => Some(s.chars().count()),
            Value::Array(a) => Some(a.len()),
            _ => None,
        };
        if let Some(length) = length {
            if let Some(min) = self.min_length
                && length < min
            {
                return Err(format!("must be at least {min} long"));
            }
            if let Some(max) = self.max_length
                && length > max
            {
                return Err(format!("must be at most {max} long"));
            }
        }
        if let (Some(pattern), Value::String(text)) = (&self.pattern, value) {
            let regex = compile(pattern)?;
            if !regex.is_match(text) {
                return Err(format!("must match the pattern `{pattern}`"));
            }
        }
        if let (Some(items), Value::Array(elements)) = (&self.items, value) {
            for (i, element) in elements.iter().enumerate() {
                items
                    .check(element)
                    .map_err(|rule| format!("item {i} {rule}"))?;
            }
        }
        Ok(())
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// A declaration's pattern as a regex; bounded in length and in compiled size.
pub fn compile(pattern: &str) -> Result<regex::Regex, String> {
    if pattern.len() > MAX_PATTERN_LEN {
        return Err(format!(
            "the pattern is longer than {MAX_PATTERN_LEN} characters"
        ));
    }
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("`{pattern}` is not a valid pattern: {e}"))
}

/// Why a run's conf was refused: the key, and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("conf `{key}`: {rule}")]
pub struct ConfError {
    pub key: String,
    pub rule: String,
}

impl ConfError {
    pub fn hint(&self) -> String {
        "a run's conf may set only the params the DAG declares, each as its declaration says \
         (`sluice dags show DAG` lists them)"
            .to_owned()
    }
}

/// Checks a run's conf against the DAG's params: an object whose keys are declared params
/// (or any key when `allow_undeclared` is set), each value admitted by its declaration.
pub fn check_conf(
    specs: &indexmap::IndexMap<String, ParamSpec>,
    allow_undeclared: bool,
    conf: &Value,
) -> Result<(), ConfError> {
    let entries = match conf {
        Value::Null => return Ok(()),
        Value::Object(entries) => entries,
        other => {
            return Err(ConfError {
                key: String::new(),
                rule: format!(
                    "the conf must be a JSON object of params, not {}",
                    ParamType::of(other).name()
                ),
            });
        }
    };
    for (key, value) in entries {
        match specs.get(key) {
            Some(spec) => spec.check(value).map_err(|rule| ConfError {
                key: key.clone(),
                rule,
            })?,
            None if allow_undeclared => {}
            None => {
                let declared: Vec<&str> = specs.keys().map(String::as_str).collect();
                return Err(ConfError {
                    key: key.clone(),
                    rule: if declared.is_empty() {
                        "the DAG declares no params".to_owned()
                    } else {
                        format!("not a param of this DAG (params: {})", declared.join(", "))
                    },
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn specs() -> indexmap::IndexMap<String, ParamSpec> {
        let mut zone = ParamSpec::of_type(ParamType::String);
        zone.pattern = Some("^s3://[a-z0-9.-]+(/[A-Za-z0-9_.=-]+)*$".into());
        let mut n = ParamSpec::of_type(ParamType::Integer);
        n.minimum = Some(1.0);
        n.maximum = Some(10.0);
        let mut dims = ParamSpec::of_type(ParamType::Array);
        let mut dim = ParamSpec::of_type(ParamType::String);
        dim.choices = Some(vec![json!("country"), json!("device")]);
        dims.items = Some(Box::new(dim));
        indexmap::IndexMap::from([
            ("zone".to_owned(), zone),
            ("n".to_owned(), n),
            ("dims".to_owned(), dims),
            ("ratio".to_owned(), ParamSpec::inferred(&json!(0.5))),
        ])
    }

    #[test]
    fn a_conf_sets_only_declared_params_as_declared() {
        let specs = specs();
        assert_eq!(check_conf(&specs, false, &json!(null)), Ok(()));
        assert_eq!(
            check_conf(
                &specs,
                false,
                &json!({"zone": "s3://b/x", "n": 3, "dims": ["device"], "ratio": 1})
            ),
            Ok(())
        );
        let refused = |conf: Value| {
            check_conf(&specs, false, &conf)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(
            refused(json!({"zone": "s3://b/x', 'Parquet'); DROP TABLE agg_15m --"}))
                .contains("conf `zone`: must match the pattern")
        );
        assert!(refused(json!({"n": "a; touch PWNED"})).contains("must be an integer, not string"));
        assert!(refused(json!({"n": 11})).contains("at most 10"));
        assert!(refused(json!({"n": 2.5})).contains("must be an integer"));
        assert!(refused(json!({"dims": ["country", "x;y"]})).contains("item 1 must be one of"));
        assert!(refused(json!({"other": 1})).contains("conf `other`: not a param of this DAG"));
        assert!(refused(json!([1])).contains("must be a JSON object"));
        assert_eq!(check_conf(&specs, true, &json!({"other": 1})), Ok(()));
    }

    #[test]
    fn patterns_are_bounded() {
        assert!(compile(&"a".repeat(MAX_PATTERN_LEN + 1)).is_err());
        assert!(compile("(").is_err());
        // A pattern whose compiled program would be huge is refused, not built.
        assert!(compile("(\\w{100}){100}").is_err());
    }
}
