//! The registry: the DAGs the engine knows, their compiled versions, and reloads of the DAG
//! folder that keep the last good version of a file that stops validating.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::assets::{AssetCatalog, has_assets};
use super::engine::{EngineError, Mode};
use sluice_core::DagPlan;
use sluice_model::fingerprint;
use sluice_model::spec::{self, Dag};
use sluice_store::{DagRecord, ImportError, Store};

/// One version of a DAG compiled for scheduling: its definition, its plan, its version hash.
#[derive(Clone)]
pub(super) struct CompiledDag {
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
    pub fn version(&self) -> CompiledDag {
        CompiledDag {
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
type FolderFingerprint = Vec<(PathBuf, u64, std::time::SystemTime)>;

fn folder_fingerprint(dir: &Path) -> Option<FolderFingerprint> {
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

/// The DAGs loaded from the folder (the newest good version of each) and every compiled
/// version an active run uses. Owned by the loop; others ask through its methods.
pub(super) struct Registry {
    dags: HashMap<String, DagEntry>,
    compiled: HashMap<(String, String), CompiledDag>,
    /// The DAG folder as last read (paths, sizes, mtimes).
    folder_seen: Option<FolderFingerprint>,
    last_reload: Instant,
    /// DAGs whose record (pause, cursor) changed since the last group commit.
    changed: Vec<String>,
    /// DAG files that did not load at the last read of the folder.
    import_errors: usize,
    /// Who produces and consumes each asset, from every DAG of the folder (in backfill and
    /// test mode too: a rewrite marks consumers stale whichever process makes it).
    catalog: Arc<AssetCatalog>,
    /// The DAGs this engine runs (`None`: all): a backfill's DAG and, transitively, the
    /// DAGs consuming what it produces; a test's DAG alone.
    scope: Option<std::collections::BTreeSet<String>>,
}

impl Registry {
    pub fn new(dags_dir: &Path) -> Registry {
        Registry {
            dags: HashMap::new(),
            compiled: HashMap::new(),
            folder_seen: folder_fingerprint(dags_dir),
            last_reload: Instant::now(),
            changed: Vec::new(),
            import_errors: 0,
            catalog: Arc::default(),
            scope: None,
        }
    }

    /// How many DAG files did not load at the last read of the folder.
    pub fn import_errors(&self) -> usize {
        self.import_errors
    }

    /// Whether this engine runs `dag` (see `scope`).
    pub fn in_scope(&self, dag: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(dag))
    }

    pub fn catalog(&self) -> Arc<AssetCatalog> {
        Arc::clone(&self.catalog)
    }

    pub fn get(&self, dag: &str) -> Option<&DagEntry> {
        self.dags.get(dag)
    }

    pub fn entries(&self) -> impl Iterator<Item = &DagEntry> {
        self.dags.values()
    }

    pub fn ids(&self) -> Vec<String> {
        self.dags.keys().cloned().collect()
    }

    pub fn is_paused(&self, dag: &str) -> bool {
        self.dags.get(dag).is_some_and(|d| d.record.paused)
    }

    /// Pauses or unpauses a DAG; durable right away (an operator's command).
    pub fn set_paused(
        &mut self,
        store: &Store,
        dag: &str,
        paused: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<()>, EngineError> {
        let Some(entry) = self.dags.get_mut(dag) else {
            return Ok(None);
        };
        entry.record.paused = paused;
        entry.record.updated_at = now;
        store.put_dag(dag, &entry.record)?;
        Ok(Some(()))
    }

    /// Moves a DAG's scheduled-run cursor; written with the iteration.
    pub fn advance_cursor(&mut self, dag: &str, next_start: DateTime<Utc>, now: DateTime<Utc>) {
        if let Some(entry) = self.dags.get_mut(dag) {
            entry.record.next_start = Some(next_start);
            entry.record.updated_at = now;
            self.changed.push(dag.to_owned());
        }
    }

    /// The DAG records that changed since the last call, for the group commit.
    pub fn take_changed(&mut self) -> Vec<(String, DagRecord)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .filter_map(|id| {
                let record = self.dags.get(&id)?.record.clone();
                Some((id, record))
            })
            .collect()
    }

    /// Whether the folder should be looked at again (scheduler mode, every `every`).
    pub fn reload_due(&self, every: Duration) -> bool {
        self.last_reload.elapsed() >= every
    }

    /// Time left until the next look at the folder.
    pub fn until_reload(&self, every: Duration) -> Duration {
        every.saturating_sub(self.last_reload.elapsed())
    }

    /// Looks at the folder: whether a file appeared, vanished or changed since the last
    /// look (parsing every file every few seconds would cost real CPU with a thousand DAGs).
    pub fn folder_changed(&mut self, dags_dir: &Path) -> bool {
        self.last_reload = Instant::now();
        let seen = folder_fingerprint(dags_dir);
        if seen.is_some() && seen == self.folder_seen {
            return false;
        }
        self.folder_seen = seen;
        true
    }

    /// Reads the DAG folder. A file that fails keeps its DAG's last good version (reported,
    /// never fatal). In backfill and test modes only that DAG is needed.
    pub fn load(
        &mut self,
        store: &Store,
        dags_dir: &Path,
        mode: &Mode,
        log: &dyn Fn(String),
    ) -> Result<(), EngineError> {
        let set = spec::load_paths(&[dags_dir.to_path_buf()])
            .map_err(|(path, source)| EngineError::DagFolder { path, source })?;
        let mut import_errors = Vec::new();
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
            match &kept {
                Some(dag) => eprintln!(
                    "DAG file did not load; `{dag}` keeps its last good version:\n{message}"
                ),
                None => eprintln!("DAG file did not load:\n{message}"),
            }
            // The place of the first error (a warning's place would mislead), else of any.
            let first = report
                .diagnostics
                .iter()
                .filter(|d| d.severity == sluice_model::spec::Severity::Error)
                .chain(&report.diagnostics)
                .find_map(|d| d.primary.as_ref());
            import_errors.push(ImportError {
                file: report.source.path().to_owned(),
                line: first.map(|l| l.location.line),
                column: first.map(|l| l.location.column),
                message,
                kept_dag: kept,
                seen_at: Utc::now(),
            });
        }
        // What the API, the UI's banner, the metric and `dags list` show.
        if *mode == Mode::Scheduler {
            store.put_import_errors(&import_errors)?;
        }
        self.import_errors = import_errors.len();
        let only = match mode {
            Mode::Scheduler => None,
            Mode::Backfill { dag } | Mode::Test { dag } => Some(dag.clone()),
        };
        self.scope = match mode {
            Mode::Scheduler => None,
            Mode::Test { dag } => Some([dag.clone()].into()),
            // Backfilling an upstream runs its consumers as their inputs complete.
            Mode::Backfill { dag } => Some(
                AssetCatalog::build(set.dags.iter().map(|d| Arc::new(d.dag.clone())))
                    .downstream_of(dag),
            ),
        };
        let now = Utc::now();
        let mut others = Vec::new();
        for loaded in set.dags {
            if !self.in_scope(&loaded.dag.dag) {
                if has_assets(&loaded.dag) {
                    others.push(Arc::new(loaded.dag));
                }
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
            store.put_version(&dag, &version)?;
            store.put_version_source(
                &id,
                &version,
                &sluice_store::DagSource {
                    path: loaded.path.clone(),
                    text: loaded.report.source.text().to_owned(),
                },
            )?;
            let record = match store.dag(&id)? {
                Some(mut record) => {
                    if record.version != version {
                        log(format!("DAG `{id}` changed (version {version})"));
                        record.version = version.clone();
                        record.updated_at = now;
                        store.put_dag(&id, &record)?;
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
                    store.put_dag(&id, &record)?;
                    record
                }
            };
            self.compiled.insert(
                (id.clone(), version.clone()),
                CompiledDag {
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
        self.catalog = Arc::new(AssetCatalog::build(
            self.dags.values().map(|e| Arc::clone(&e.dag)).chain(others),
        ));
        if let Some(dag) = only
            && !self.dags.contains_key(&dag)
        {
            return Err(EngineError::UnknownDag(dag));
        }
        Ok(())
    }

    /// A DAG version compiled, from memory or the store.
    pub fn compiled(
        &mut self,
        store: &Store,
        dag: &str,
        version: &str,
    ) -> Result<Option<CompiledDag>, EngineError> {
        let key = (dag.to_owned(), version.to_owned());
        if let Some(found) = self.compiled.get(&key) {
            return Ok(Some(found.clone()));
        }
        let Some(spec) = store.version(dag, version)? else {
            return Ok(None);
        };
        let found = CompiledDag {
            plan: Arc::new(DagPlan::new(&spec)),
            dag: Arc::new(spec),
            id: version.to_owned(),
        };
        self.compiled.insert(key, found.clone());
        Ok(Some(found))
    }
}
