//! Assets' history and what it made stale: one materialization per successful write of one
//! interval of an asset, numbered by a global sequence in commit order (every producer of
//! an asset shares its history); and the consumer intervals that read an older version
//! than the latest, kept until they read again.
//!
//! Keys: materializations `asset \0 start \0 seq` (an interval's versions in order, the
//! newest last), the sequence counter under `\0next_seq` (asset ids never hold a 0 byte);
//! stale intervals `consumer_dag \0 start`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, Store, Writes, decode, encode, keys};

/// Causes kept per stale interval (their count goes on).
pub const MAX_STALE_CAUSES: usize = 16;

const NEXT_SEQ: &[u8] = b"\0next_seq";

/// `\0latest\0asset`: the asset's newest write, of any interval.
fn latest_key(asset: &str) -> Vec<u8> {
    let mut key = b"\0latest\0".to_vec();
    key.extend_from_slice(asset.as_bytes());
    key
}

/// `\0since\0asset`: when the asset's first materialization was recorded.
fn since_key(asset: &str) -> Vec<u8> {
    let mut key = b"\0since\0".to_vec();
    key.extend_from_slice(asset.as_bytes());
    key
}

/// One successful write of one interval of an asset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaterializationRecord {
    pub asset: String,
    pub interval_start: DateTime<Utc>,
    pub interval_end: DateTime<Utc>,
    /// Its version: later writes of any interval have larger numbers.
    pub seq: u64,
    pub dag: String,
    pub run_id: String,
    pub task: String,
    pub try_number: u32,
    pub at: DateTime<Utc>,
    pub dag_version: String,
}

/// A consumer's interval that read an older version of an input than the latest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleRecord {
    pub dag: String,
    pub interval_start: DateTime<Utc>,
    pub interval_end: DateTime<Utc>,
    pub since: DateTime<Utc>,
    /// The rewrites that made it stale, oldest first (at most [`MAX_STALE_CAUSES`]).
    pub causes: Vec<StaleCause>,
    /// Rewrites beyond those kept.
    #[serde(default)]
    pub more_causes: u32,
    /// `rerun`: reruns once its inputs settle; `mark_stale`: shown only.
    pub rerun: bool,
    /// Why it is not rerun (its reruns used up, its DAG gone), when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<String>,
}

impl StaleRecord {
    pub fn add_cause(&mut self, cause: StaleCause) {
        if self.causes.len() < MAX_STALE_CAUSES {
            self.causes.push(cause);
        } else {
            self.more_causes = self.more_causes.saturating_add(1);
        }
    }

    /// "warehouse.agg_15m 10:15 rewritten by historical_backfill backfill__… (seq 8812)".
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.causes.iter().map(StaleCause::describe).collect();
        if self.more_causes > 0 {
            parts.push(format!("{} more", self.more_causes));
        }
        parts.join("; ")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaleCause {
    pub asset: String,
    pub interval_start: DateTime<Utc>,
    pub seq: u64,
    pub dag: String,
    pub run_id: String,
    pub at: DateTime<Utc>,
}

impl StaleCause {
    pub fn describe(&self) -> String {
        format!(
            "{} {} rewritten by {} {} at {} (version {})",
            self.asset,
            self.interval_start.to_rfc3339(),
            self.dag,
            self.run_id,
            self.at.to_rfc3339(),
            self.seq
        )
    }
}

/// `asset \0 start \0 seq`.
fn materialization_key(asset: &str, start: DateTime<Utc>, seq: u64) -> Vec<u8> {
    let mut key = keys::dag_time(asset, start);
    key.push(0);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// `asset \0 start \0`: every version of one interval.
fn interval_prefix(asset: &str, start: DateTime<Utc>) -> Vec<u8> {
    let mut key = keys::dag_time(asset, start);
    key.push(0);
    key
}

impl Store {
    /// The next materialization's number (one more than the last written).
    pub fn next_materialization_seq(&self) -> Result<u64> {
        Ok(self
            .materializations
            .get(NEXT_SEQ)?
            .and_then(|v| <[u8; 8]>::try_from(v.as_ref()).ok())
            .map_or(1, u64::from_be_bytes))
    }

    /// Since when an asset's writes are recorded as materializations: before it, a
    /// producing DAG's successful run stands for one (written before it declared
    /// `produces`); from it on, only a recorded materialization counts.
    pub fn asset_tracked_since(&self, asset: &str) -> Result<Option<DateTime<Utc>>> {
        self.materializations
            .get(since_key(asset))?
            .map(|v| decode("asset tracked since", &v))
            .transpose()
    }

    /// The newest materialization of an asset's interval.
    pub fn latest_materialization(
        &self,
        asset: &str,
        start: DateTime<Utc>,
    ) -> Result<Option<MaterializationRecord>> {
        self.materializations
            .scan_prefix(interval_prefix(asset, start))
            .values()
            .next_back()
            .transpose()?
            .map(|v| decode("materialization", &v))
            .transpose()
    }

    /// The materializations of intervals of an asset starting in `[from, to)`, oldest first,
    /// at most `limit`.
    pub fn materializations(
        &self,
        asset: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<MaterializationRecord>> {
        self.materializations
            .range(keys::dag_time(asset, from)..keys::dag_time(asset, to))
            .values()
            .take(limit)
            .map(|v| decode("materialization", &v?))
            .collect()
    }

    /// An asset's newest write, of any of its intervals.
    pub fn latest_write(&self, asset: &str) -> Result<Option<MaterializationRecord>> {
        self.materializations
            .get(latest_key(asset))?
            .map(|v| decode("materialization", &v))
            .transpose()
    }

    /// An asset's writes of its newest intervals (by interval start, then version), newest
    /// first.
    pub fn recent_materializations(
        &self,
        asset: &str,
        limit: usize,
    ) -> Result<Vec<MaterializationRecord>> {
        self.materializations
            .scan_prefix(keys::dag_prefix(asset))
            .values()
            .rev()
            .take(limit)
            .map(|v| decode("materialization", &v?))
            .collect()
    }

    /// The stale interval of a consumer DAG, if it is.
    pub fn stale_interval(&self, dag: &str, start: DateTime<Utc>) -> Result<Option<StaleRecord>> {
        self.stale
            .get(keys::dag_time(dag, start))?
            .map(|v| decode("stale interval", &v))
            .transpose()
    }

    /// Every stale interval (of `dag`, or of all DAGs), oldest first per DAG, at most `limit`.
    pub fn stale_intervals(&self, dag: Option<&str>, limit: usize) -> Result<Vec<StaleRecord>> {
        let iter = match dag {
            Some(dag) => self.stale.scan_prefix(keys::dag_prefix(dag)),
            None => self.stale.iter(),
        };
        iter.values()
            .take(limit)
            .map(|v| decode("stale interval", &v?))
            .collect()
    }

    /// How many intervals are stale.
    pub fn stale_count(&self) -> usize {
        self.stale.len()
    }

    /// How many intervals of one DAG are stale.
    pub fn stale_count_of(&self, dag: &str) -> usize {
        self.stale.scan_prefix(keys::dag_prefix(dag)).count()
    }
}

impl Writes {
    /// Writes a materialization; it is also its asset's newest write (they are written in
    /// version order).
    pub fn put_materialization(&mut self, record: &MaterializationRecord) {
        let value = encode(record);
        self.materializations.insert(
            materialization_key(&record.asset, record.interval_start, record.seq),
            value.clone(),
        );
        self.materializations
            .insert(latest_key(&record.asset), value);
    }

    pub fn set_asset_tracked_since(&mut self, asset: &str, since: DateTime<Utc>) {
        self.materializations
            .insert(since_key(asset), encode(&since));
    }

    pub fn set_next_materialization_seq(&mut self, next: u64) {
        self.materializations
            .insert(NEXT_SEQ, next.to_be_bytes().to_vec());
    }

    pub fn put_stale(&mut self, record: &StaleRecord) {
        self.stale.insert(
            keys::dag_time(&record.dag, record.interval_start),
            encode(record),
        );
    }

    pub fn remove_stale(&mut self, dag: &str, start: DateTime<Utc>) {
        self.stale.remove(keys::dag_time(dag, start));
    }
}

#[cfg(test)]
mod tests;
