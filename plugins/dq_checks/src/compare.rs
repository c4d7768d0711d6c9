//! Comparing two result sets keyed by columns: the stream layer's rollups against the batch
//! layer's aggregates, or any other reconciliation.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::checks::key_of;
use crate::rows::{number, Row};

/// Keys present on one side only, and values apart by more than the tolerance.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub compared: usize,
    pub only_left: Vec<Vec<Value>>,
    pub only_right: Vec<Vec<Value>>,
    pub mismatches: Vec<Mismatch>,
}

#[derive(Debug, Serialize)]
pub struct Mismatch {
    pub key: Vec<Value>,
    pub column: String,
    pub left: Option<f64>,
    pub right: Option<f64>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.only_left.is_empty() && self.only_right.is_empty() && self.mismatches.is_empty()
    }

    /// One line for people: how many keys differ and, grouped by the key's first column
    /// (a reconciliation's window), where; or, without a key, the values side by side.
    /// `sides` names the two sides ("only in batch").
    pub fn summary(&self, key: &[String], sides: &[String; 2]) -> String {
        if key.is_empty() {
            let values: Vec<String> = self
                .mismatches
                .iter()
                .map(|m| format!("{} {} vs {}", m.column, shown(m.left), shown(m.right)))
                .collect();
            return values.join(", ");
        }
        let mut differing: BTreeMap<String, usize> = BTreeMap::new();
        let mut keys: Vec<&Vec<Value>> = self.mismatches.iter().map(|m| &m.key).collect();
        keys.dedup();
        let total = keys.len() + self.only_left.len() + self.only_right.len();
        for k in keys
            .into_iter()
            .chain(&self.only_left)
            .chain(&self.only_right)
        {
            let first = match k.first() {
                Some(Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            *differing.entry(first).or_default() += 1;
        }
        let mut groups: Vec<String> = differing
            .iter()
            .take(5)
            .map(|(value, n)| format!("{value} ({n})"))
            .collect();
        if differing.len() > 5 {
            groups.push(format!("and {} more", differing.len() - 5));
        }
        let mut one_side = String::new();
        if !self.only_left.is_empty() || !self.only_right.is_empty() {
            one_side = format!(
                ", {} only in {}, {} only in {}",
                self.only_left.len(),
                sides[0],
                self.only_right.len(),
                sides[1]
            );
        }
        format!(
            "{total} of {} keys differ{one_side}; by {}: {}",
            self.compared + self.only_left.len() + self.only_right.len(),
            key[0],
            groups.join(", ")
        )
    }
}

fn shown(value: Option<f64>) -> String {
    value.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// How values must agree: within `tolerance`, relative to the larger magnitude (0 =
/// exact); with `at_most`, only a left value above the right one (or a key only on the
/// left) disagrees.
#[derive(Debug, Clone, Copy, Default)]
pub struct Rule {
    pub tolerance: f64,
    pub at_most: bool,
}

/// Compares `left` with `right` on `key`, each `values` column under `rule`.
pub fn compare(
    left: &[Row],
    right: &[Row],
    key: &[String],
    values: &[String],
    rule: Rule,
) -> Report {
    let tolerance = rule.tolerance;
    let index = |rows: &[Row]| -> BTreeMap<String, (Vec<Value>, Row)> {
        rows.iter()
            .map(|r| {
                let k = key_of(r, key);
                (Value::Array(k.clone()).to_string(), (k, r.clone()))
            })
            .collect()
    };
    let (left, right) = (index(left), index(right));
    let mut report = Report::default();
    for (id, (k, l)) in &left {
        let r = match right.get(id) {
            Some((_, r)) => r,
            None => {
                report.only_left.push(k.clone());
                continue;
            }
        };
        report.compared += 1;
        for column in values {
            let (a, b) = (
                l.get(column).and_then(number),
                r.get(column).and_then(number),
            );
            let agree = match (a, b) {
                (Some(a), Some(b)) if rule.at_most => a - b <= tolerance * a.abs().max(b.abs()),
                (Some(a), Some(b)) => (a - b).abs() <= tolerance * a.abs().max(b.abs()),
                (None, None) => true,
                // At most: no value on the left is lower than any.
                (None, Some(_)) => rule.at_most,
                (Some(_), None) => false,
            };
            if !agree {
                report.mismatches.push(Mismatch {
                    key: k.clone(),
                    column: column.clone(),
                    left: a,
                    right: b,
                });
            }
        }
    }
    // At most: the left missing a key is the left being lower.
    if !rule.at_most {
        for (id, (k, _)) in &right {
            if !left.contains_key(id) {
                report.only_right.push(k.clone());
            }
        }
    }
    report
}
