//! The DAGs the engine knows: loading, versions, reloads that keep the last good version.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::engine::{Engine, EngineError, Mode};
use super::fingerprint;
use sluice_core::DagPlan;
use sluice_model::spec::{self, Dag};
use sluice_store::DagRecord;

/// One version of a DAG: its definition, its compiled plan, and its version hash.
#[derive(Clone)]
pub(super) struct Version {
    pub dag: Arc<Dag>,
    pub plan: Arc<DagPlan>,
    pub id: String,
}

pub(super) struct DagEntry {
    pub dag: Arc<Dag>,
    pub plan: Arc<DagPlan>,
    pub version: String,
    pub path: PathBuf,
    pub record: DagRecord,
}

impl DagEntry {
    pub fn version(&self) -> Version {
        Version {
            dag: Arc::clone(&self.dag),
            plan: Arc::clone(&self.plan),
            id: self.version.clone(),
        }
    }

    /// Where scheduled runs continue: after the last one created, never before the DAG's
    /// `start` nor the scheduler's `--not-before` (`None`: from `start`).
    pub fn next_start(&self, not_before: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
        match (self.record.next_start, not_before) {
            (Some(next), Some(floor)) => Some(next.max(floor)),
            (next, floor) => next.or(floor),
        }
    }

    /// When the next scheduled interval closes (the loop's timer for run creation).
    pub fn next_due(
        &self,
        now: DateTime<Utc>,
        not_before: Option<DateTime<Utc>>,
    ) -> Option<DateTime<Utc>> {
        let schedule = self.dag.schedule.as_ref()?;
        let start = self.dag.start?;
        let tz = self.dag.timezone.tz();
        let from = self.next_start(not_before).unwrap_or(start).max(start);
        let first = schedule.intervals(tz, from).next()?;
        let due = if first.end > now {
            first.end
        } else if self.dag.catchup {
            return Some(now);
        } else {
            schedule.next_fire(tz, now)?
        };
        self.dag.end.is_none_or(|end| due <= end).then_some(due)
    }
}

/// Paths, sizes and modification times of the DAG files, to notice any change cheaply.
pub(super) fn folder_fingerprint(
    dir: &std::path::Path,
) -> Option<Vec<(PathBuf, u64, std::time::SystemTime)>> {
    let files = spec::load::dag_files(&[dir.to_path_buf()]).ok()?;
    files
        .into_iter()
        .map(|path| {
            let metadata = std::fs::metadata(&path).ok()?;
            Some((path, metadata.len(), metadata.modified().ok()?))
        })
        .collect()
}

pub fn version_of(dag: &Dag) -> String {
    fingerprint(&serde_json::to_vec(dag).unwrap_or_default())
}

impl Engine {
    /// Reads the DAG folder. A file that fails keeps its DAG's last good version (reported,
    /// never fatal). In backfill and test modes only that DAG is needed.
    pub(super) fn load_dags(&mut self) -> Result<(), EngineError> {
        let set = spec::load_paths(std::slice::from_ref(&self.config.dags_dir))
            .map_err(|(path, source)| EngineError::DagFolder { path, source })?;
        for report in &set.failures {
            let kept = self
                .dags
                .values()
                .find(|e| e.path == report.source.path())
                .map(|e| e.dag.dag.clone());
            let message = report
                .diagnostics
                .iter()
                .map(|d| report.plain_line(d))
                .collect::<Vec<_>>()
                .join("\n");
            match kept {
                Some(dag) => eprintln!(
                    "DAG file did not load; `{dag}` keeps its last good version:\n{message}"
                ),
                None => eprintln!("DAG file did not load:\n{message}"),
            }
        }
        let only = match &self.config.mode {
            Mode::Scheduler => None,
            Mode::Backfill { dag } | Mode::Test { dag } => Some(dag.clone()),
        };
        let now = Utc::now();
        for loaded in set.dags {
            if only.as_ref().is_some_and(|d| *d != loaded.dag.dag) {
                continue;
            }
            let version = version_of(&loaded.dag);
            if self
                .dags
                .get(&loaded.dag.dag)
                .is_some_and(|e| e.version == version)
            {
                continue;
            }
            let id = loaded.dag.dag.clone();
            let dag = Arc::new(loaded.dag);
            let plan = Arc::new(DagPlan::new(&dag));
            self.store.put_version(&dag, &version)?;
            let record = match self.store.dag(&id)? {
                Some(mut record) => {
                    if record.version != version {
                        self.log(format!("DAG `{id}` changed (version {version})"));
                        record.version = version.clone();
                        record.updated_at = now;
                        self.store.put_dag(&id, &record)?;
                    }
                    record
                }
                None => {
                    let record = DagRecord {
                        paused: dag.paused_on_creation,
                        version: version.clone(),
                        next_start: None,
                        updated_at: now,
                    };
                    self.store.put_dag(&id, &record)?;
                    record
                }
            };
            self.plans.insert(
                (id.clone(), version.clone()),
                Version {
                    dag: Arc::clone(&dag),
                    plan: Arc::clone(&plan),
                    id: version.clone(),
                },
            );
            self.dags.insert(
                id,
                DagEntry {
                    dag,
                    plan,
                    version,
                    path: loaded.path,
                    record,
                },
            );
        }
        if let Some(dag) = only
            && !self.dags.contains_key(&dag)
        {
            return Err(EngineError::UnknownDag(dag));
        }
        Ok(())
    }

    pub(super) fn maybe_reload(&mut self, _now: DateTime<Utc>) -> Result<(), EngineError> {
        if self.config.mode != Mode::Scheduler
            || self.last_reload.elapsed() < self.config.reload_every
        {
            return Ok(());
        }
        self.last_reload = std::time::Instant::now();
        // Parsing every file every few seconds would cost real CPU with a thousand DAGs:
        // re-read the folder only when a file appeared, vanished or changed.
        let seen = folder_fingerprint(&self.config.dags_dir);
        if seen.is_some() && seen == self.folder_seen {
            return Ok(());
        }
        self.folder_seen = seen;
        self.load_dags()?;
        self.refresh_gate_watch();
        Ok(())
    }

    /// The plan and spec of a DAG version, from memory or the store.
    pub(super) fn plan_for(
        &mut self,
        dag: &str,
        version: &str,
    ) -> Result<Option<Version>, EngineError> {
        let key = (dag.to_owned(), version.to_owned());
        if let Some(found) = self.plans.get(&key) {
            return Ok(Some(found.clone()));
        }
        let Some(spec) = self.store.version(dag, version)? else {
            return Ok(None);
        };
        let found = Version {
            plan: Arc::new(DagPlan::new(&spec)),
            dag: Arc::new(spec),
            id: version.to_owned(),
        };
        self.plans.insert(key, found.clone());
        Ok(Some(found))
    }
}
