//! Key layout: the DAG id, a 0 byte, then big-endian time, so a DAG's records sort by time
//! and range scans by DAG and interval are prefix scans. Ids never contain a 0 byte.

use chrono::{DateTime, TimeZone, Utc};

/// Microseconds since the epoch with the sign bit flipped: big-endian bytes sort like time.
pub fn time_bytes(t: DateTime<Utc>) -> [u8; 8] {
    ((t.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn time_from_bytes(bytes: &[u8]) -> Option<DateTime<Utc>> {
    let array: [u8; 8] = bytes.get(..8)?.try_into().ok()?;
    let micros = (u64::from_be_bytes(array) ^ (1 << 63)) as i64;
    Utc.timestamp_micros(micros).single()
}

/// `dag \0`: the prefix of every record of one DAG.
pub fn dag_prefix(dag: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(dag.len() + 1);
    key.extend_from_slice(dag.as_bytes());
    key.push(0);
    key
}

/// `dag \0 version`: a DAG version, and the file it was read from.
pub fn version_key(dag: &str, version: &str) -> Vec<u8> {
    let mut key = dag_prefix(dag);
    key.extend_from_slice(version.as_bytes());
    key
}

/// `dag \0 time`: a run (by logical date) or a ledger entry (by interval start).
pub fn dag_time(dag: &str, t: DateTime<Utc>) -> Vec<u8> {
    let mut key = dag_prefix(dag);
    key.extend_from_slice(&time_bytes(t));
    key
}

/// `dag \0 logical \0 task`: one task instance's output.
pub fn task_key(dag: &str, logical: DateTime<Utc>, task: &str) -> Vec<u8> {
    let mut key = dag_time(dag, logical);
    key.push(0);
    key.extend_from_slice(task.as_bytes());
    key
}

/// `dag \0 logical \0 task \0 try`: one attempt.
pub fn attempt_key(dag: &str, logical: DateTime<Utc>, task: &str, try_number: u32) -> Vec<u8> {
    let mut key = task_key(dag, logical, task);
    key.push(0);
    key.extend_from_slice(&try_number.to_be_bytes());
    key
}

/// Splits `dag \0 time` back into its parts.
pub fn split_dag_time(key: &[u8]) -> Option<(String, DateTime<Utc>)> {
    let zero = key.iter().position(|&b| b == 0)?;
    let dag = std::str::from_utf8(&key[..zero]).ok()?.to_owned();
    Some((dag, time_from_bytes(&key[zero + 1..])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn keys_sort_like_time(a in -4_000_000_000i64..4_000_000_000, b in -4_000_000_000i64..4_000_000_000) {
            let ta = Utc.timestamp_opt(a, 0).single().unwrap_or_default();
            let tb = Utc.timestamp_opt(b, 0).single().unwrap_or_default();
            prop_assert_eq!(ta.cmp(&tb), dag_time("d", ta).cmp(&dag_time("d", tb)));
            prop_assert_eq!(split_dag_time(&dag_time("dag_1", ta)), Some(("dag_1".to_owned(), ta)));
        }
    }

    #[test]
    fn a_dag_prefix_does_not_match_a_longer_dag_id() {
        let t = Utc::now();
        assert!(dag_time("ab", t).starts_with(&dag_prefix("ab")));
        assert!(!dag_time("abc", t).starts_with(&dag_prefix("ab")));
    }
}
