//! Assets in the loop: the catalog of who produces and who consumes each asset (built by
//! the registry on every load), and the asset book, which owns this process's view of the
//! materialization sequence, the materializations of the current iteration (written in its
//! group commit) and the stale consumer intervals (a mirror of the store's, loaded at start).
//!
//! The steps that use them are `impl Engine` blocks: `inputs.rs` (a run waits until what it
//! reads is materialized, and is woken in the same iteration it is) and `stale.rs` (a
//! rewrite marks the intervals that read the older version, and reruns them).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use sluice_model::schedule::DataInterval;
use sluice_model::spec::Dag;
use sluice_model::spec::assets::MAX_UPSTREAM_INTERVALS;
use sluice_store::{MaterializationRecord, StaleCause, StaleRecord, Store, StoreError, Writes};

pub(super) type IntervalKey = (String, DateTime<Utc>);

/// Who writes and who reads each asset, from the loaded DAGs.
#[derive(Default)]
pub(super) struct AssetCatalog {
    producers: HashMap<String, Vec<Arc<Dag>>>,
    consumers: HashMap<String, Vec<Arc<Dag>>>,
}

/// What one interval of a consuming DAG reads of one asset it consumes.
pub(super) enum Reads {
    /// These upstream intervals, in order.
    Intervals(Vec<DataInterval>),
    /// No loaded DAG produces the asset (yet: a broken file keeps nothing).
    NoProducer,
    /// The mapping does not land on the producer's grid there (past the load-time check's
    /// horizon): nothing will ever make it readable.
    Unresolvable(String),
}

/// Whether a DAG takes part in assets at all.
pub(super) fn has_assets(dag: &Dag) -> bool {
    !dag.consumes.is_empty() || dag.tasks.values().any(|t| !t.settings.produces.is_empty())
}

/// Whether `interval` is one of the DAG's own (a manual run's may not be): only those
/// materialize, and only those wait for inputs.
pub(super) fn on_grid(dag: &Dag, interval: DataInterval) -> bool {
    dag.schedule
        .as_ref()
        .and_then(|s| s.interval_starting(dag.timezone.tz(), interval.start))
        == Some(interval)
}

impl AssetCatalog {
    pub fn build(dags: impl Iterator<Item = Arc<Dag>>) -> AssetCatalog {
        let mut catalog = AssetCatalog::default();
        for dag in dags.filter(|d| has_assets(d)) {
            let mut written = BTreeSet::new();
            for task in dag.tasks.values() {
                written.extend(task.settings.produces.iter().cloned());
            }
            for asset in written {
                catalog
                    .producers
                    .entry(asset)
                    .or_default()
                    .push(Arc::clone(&dag));
            }
            for asset in dag.consumes.keys() {
                catalog
                    .consumers
                    .entry(asset.clone())
                    .or_default()
                    .push(Arc::clone(&dag));
            }
        }
        // Path order is not kept here: sort by id so "the first producer" is stable.
        for list in catalog
            .producers
            .values_mut()
            .chain(catalog.consumers.values_mut())
        {
            list.sort_by(|a, b| a.dag.cmp(&b.dag));
        }
        catalog
    }

    /// The DAGs that write `asset` (they share one grid: checked at load).
    pub fn producers(&self, asset: &str) -> &[Arc<Dag>] {
        self.producers.get(asset).map_or(&[], Vec::as_slice)
    }

    pub fn consumers(&self, asset: &str) -> &[Arc<Dag>] {
        self.consumers.get(asset).map_or(&[], Vec::as_slice)
    }

    /// `dag` and every DAG that consumes, directly or through others, what it produces.
    pub fn downstream_of(&self, dag: &str) -> BTreeSet<String> {
        let mut scope: BTreeSet<String> = [dag.to_owned()].into();
        let mut frontier = vec![dag.to_owned()];
        while let Some(current) = frontier.pop() {
            for (asset, producers) in &self.producers {
                if !producers.iter().any(|p| p.dag == current) {
                    continue;
                }
                for consumer in self.consumers(asset) {
                    if scope.insert(consumer.dag.clone()) {
                        frontier.push(consumer.dag.clone());
                    }
                }
            }
        }
        scope
    }

    /// What `interval` of the consuming `dag` reads of each asset it consumes (the
    /// producers of an asset share one grid, so the first one's says it).
    pub fn reads<'d>(&self, dag: &'d Dag, interval: DataInterval) -> Vec<(&'d str, Reads)> {
        let Some(consumer) = dag.grid() else {
            return Vec::new();
        };
        dag.consumes
            .iter()
            .map(|(asset, consumes)| {
                let Some(upstream) = self.producers(asset).first().and_then(|p| p.grid()) else {
                    return (asset.as_str(), Reads::NoProducer);
                };
                let reads = match consumes.mapping().upstream_of(
                    consumer,
                    upstream,
                    interval,
                    MAX_UPSTREAM_INTERVALS,
                ) {
                    Ok(needed) => Reads::Intervals(needed),
                    Err(e) => Reads::Unresolvable(format!("`{asset}`: {e}")),
                };
                (asset.as_str(), reads)
            })
            .collect()
    }
}

/// The loop's asset state.
pub(super) struct AssetBook {
    /// The number the next materialization gets.
    next_seq: u64,
    /// Materializations of this iteration, written with its group commit.
    pending: Vec<MaterializationRecord>,
    /// Stale consumer intervals (the store's, plus this iteration's marks).
    stale: BTreeMap<IntervalKey, StaleRecord>,
    /// Stale intervals changed this iteration: written (or removed) with the commit.
    stale_changed: BTreeSet<IntervalKey>,
    /// Something happened that may let a stale interval rerun (a mark, a run's end).
    pub recheck: bool,
    /// Assets whose first materialization is this iteration's: since when they are tracked.
    tracking_starts: BTreeMap<String, DateTime<Utc>>,
}

/// Most stale intervals held in memory (and rerun); more are kept in the store and listed
/// by `sluice audit --stale`, but wait for a restart once these are done.
pub(super) const MAX_STALE_IN_MEMORY: usize = 100_000;

impl AssetBook {
    pub fn load(store: &Store) -> Result<AssetBook, StoreError> {
        let stale: BTreeMap<IntervalKey, StaleRecord> = store
            .stale_intervals(None, MAX_STALE_IN_MEMORY)?
            .into_iter()
            .map(|r| ((r.dag.clone(), r.interval_start), r))
            .collect();
        if stale.len() == MAX_STALE_IN_MEMORY {
            eprintln!(
                "{} stale intervals in the state, {MAX_STALE_IN_MEMORY} handled now: `sluice audit --stale` lists them all",
                store.stale_count()
            );
        }
        Ok(AssetBook {
            next_seq: store.next_materialization_seq()?,
            pending: Vec::new(),
            stale,
            stale_changed: BTreeSet::new(),
            recheck: true,
            tracking_starts: BTreeMap::new(),
        })
    }

    /// Since when `asset` is tracked (see `Store::asset_tracked_since`), this iteration's
    /// start included.
    pub fn tracked_since(
        &self,
        store: &Store,
        asset: &str,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        match self.tracking_starts.get(asset) {
            Some(since) => Ok(Some(*since)),
            None => store.asset_tracked_since(asset),
        }
    }

    /// Numbers a materialization and keeps it for the commit (an asset's first one starts
    /// its tracking); the numbered record.
    pub fn record(
        &mut self,
        store: &Store,
        mut record: MaterializationRecord,
    ) -> Result<MaterializationRecord, StoreError> {
        if self.tracked_since(store, &record.asset)?.is_none() {
            self.tracking_starts.insert(record.asset.clone(), record.at);
        }
        record.seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push(record.clone());
        Ok(record)
    }

    /// Every version numbered so far is below this.
    pub fn snapshot(&self) -> u64 {
        self.next_seq
    }

    /// Whether this iteration materialized the interval (not in the store yet).
    pub fn pending(&self, asset: &str, start: DateTime<Utc>) -> bool {
        self.pending
            .iter()
            .any(|m| m.asset == asset && m.interval_start == start)
    }

    pub fn mark_stale(
        &mut self,
        key: IntervalKey,
        interval_end: DateTime<Utc>,
        rerun: bool,
        cause: StaleCause,
        now: DateTime<Utc>,
    ) {
        let record = self
            .stale
            .entry(key.clone())
            .or_insert_with(|| StaleRecord {
                dag: key.0.clone(),
                interval_start: key.1,
                interval_end,
                since: now,
                causes: Vec::new(),
                more_causes: 0,
                rerun,
                held: None,
            });
        record.add_cause(cause);
        // One input asking for a rerun is enough; a `mark_stale` one never cancels it.
        record.rerun |= rerun;
        self.stale_changed.insert(key);
        self.recheck = true;
    }

    /// The interval read its inputs again: not stale any more.
    pub fn clear_stale(&mut self, key: &IntervalKey) {
        if self.stale.remove(key).is_some() {
            self.stale_changed.insert(key.clone());
        }
    }

    /// Keeps why a stale interval is not rerun.
    pub fn hold(&mut self, key: &IntervalKey, why: String) {
        if let Some(record) = self.stale.get_mut(key)
            && record.held.as_deref() != Some(why.as_str())
        {
            record.held = Some(why);
            self.stale_changed.insert(key.clone());
        }
    }

    pub fn stale(&self) -> &BTreeMap<IntervalKey, StaleRecord> {
        &self.stale
    }

    pub fn stale_of(&self, key: &IntervalKey) -> Option<&StaleRecord> {
        self.stale.get(key)
    }

    /// Adds this iteration's materializations, the sequence and the stale marks to the
    /// group commit; whether there was anything.
    pub fn write_into(&mut self, writes: &mut Writes) -> bool {
        let wrote = !self.pending.is_empty() || !self.stale_changed.is_empty();
        for (asset, since) in std::mem::take(&mut self.tracking_starts) {
            writes.set_asset_tracked_since(&asset, since);
        }
        if !self.pending.is_empty() {
            for record in self.pending.drain(..) {
                writes.put_materialization(&record);
            }
            writes.set_next_materialization_seq(self.next_seq);
        }
        for key in std::mem::take(&mut self.stale_changed) {
            match self.stale.get(&key) {
                Some(record) => writes.put_stale(record),
                None => writes.remove_stale(&key.0, key.1),
            }
        }
        wrote
    }
}
