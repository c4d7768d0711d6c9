use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the rows under test come from.
    pub source: Source,
    pub checks: Vec<Check>,
    /// Failed checks do not fail the task: the report (`passed: false`) is its output, for
    /// a downstream task to act on (e.g. a backfill enabled only by a real mismatch, never
    /// by the warehouse being down).
    #[serde(default)]
    pub report_only: bool,
}

/// Rows from a ClickHouse query (capability `clickhouse`) or an upstream output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// SQL run through `clickhouse_query`.
    #[serde(default)]
    pub query: Option<String>,
    /// Connection for `query`; the task must grant it.
    #[serde(default)]
    pub connection: Option<String>,
    /// Upstream task whose output holds the rows.
    #[serde(default)]
    pub output: Option<String>,
    /// Dotted path of the rows inside that output, e.g. `result.rows` (default: the output
    /// itself is the array).
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Name in the report; defaults to the kind of check.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(flatten)]
    pub rule: Rule,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Number of rows within bounds.
    RowCount {
        #[serde(default)]
        min: Option<u64>,
        #[serde(default)]
        max: Option<u64>,
    },
    /// Share of rows where `column` is null or missing, at most `max` (0..1).
    NullRatio { column: String, max: f64 },
    /// No two rows share the values of `columns`.
    Unique { columns: Vec<String> },
    /// Every non-null value of `column` within bounds.
    Range {
        column: String,
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
    },
    /// The newest `column` value is at most `max_age` older than the data interval's end.
    Freshness { column: String, max_age: String },
    /// The rows match another result set on `key`, each `values` column within `tolerance`
    /// (relative; 0 = exact). Missing keys on either side fail.
    Compare {
        /// The left side, when not the check's rows (e.g. a sum over them).
        #[serde(default)]
        rows: Option<Source>,
        with: Box<Source>,
        key: Vec<String>,
        values: Vec<String>,
        /// A number, or a numeric string (what a template renders).
        #[serde(default, deserialize_with = "number_or_text")]
        tolerance: f64,
        /// One-sided: the left values may be lower than the right ones, or missing, never
        /// higher (beyond `tolerance`); a key only on the left still fails. For "the batch
        /// layer holds at least what the stream layer saw".
        #[serde(default)]
        at_most: bool,
        /// Names of the two sides in the report, e.g. `[stream, batch]` (default
        /// `[left, right]`).
        #[serde(default)]
        sides: Option<Box<[String; 2]>>,
    },
}

impl Rule {
    pub fn kind(&self) -> &'static str {
        match self {
            Rule::RowCount { .. } => "row_count",
            Rule::NullRatio { .. } => "null_ratio",
            Rule::Unique { .. } => "unique",
            Rule::Range { .. } => "range",
            Rule::Freshness { .. } => "freshness",
            Rule::Compare { .. } => "compare",
        }
    }
}

fn number_or_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n
            .as_f64()
            .ok_or_else(|| serde::de::Error::custom("not a number")),
        serde_json::Value::String(s) => s
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("`{s}` is not a number"))),
        other => Err(serde::de::Error::custom(format!("{other} is not a number"))),
    }
}
