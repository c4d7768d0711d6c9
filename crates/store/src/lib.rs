//! Durable state in sled: DAG scheduling state and versions, runs with their task
//! instances, attempts, outputs, the append-only event log, the interval ledger, backfills.
//!
//! Writes go to sled's in-memory log; [`Store::flush`] makes everything written so far
//! durable in one fsync (group commit). The scheduler writes all transitions of a loop
//! iteration, flushes once, then acts on them: nothing leaves the process before the state
//! that explains it is on disk.

pub mod assets;
pub mod backup;
mod check;
pub mod gates;
pub mod keys;
pub mod kv;
pub mod records;
pub mod replication;
pub mod reports;
pub mod retention;
pub mod sla;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use assets::{MaterializationRecord, StaleCause, StaleRecord};
pub use gates::GateMemoryStore;
pub use kv::KvStore;
pub use records::*;
pub use sla::{Delivery, SlaEventRecord};

use sluice_model::spec::Dag;

/// Layout version of the store; [`migrate`] brings older stores up to it.
pub const SCHEMA_VERSION: u32 = 1;
/// Key of the import errors in the default tree (beside `schema_version`).
const IMPORT_ERRORS: &str = "import_errors";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the state directory {dir} is in use by another sluice process{}",
        pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    Locked { dir: PathBuf, pid: Option<u32> },
    #[error("cannot open the state directory {dir}: {source}")]
    Open { dir: PathBuf, source: sled::Error },
    #[error("state store error: {0}")]
    Sled(#[from] sled::Error),
    #[error("corrupt {what} record in the state store: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error(
        "the state store has layout version {found}, newer than this sluice ({supported}); upgrade sluice"
    )]
    TooNew { found: u32, supported: u32 },
    #[error("{what} is too large: {detail}")]
    TooLarge { what: &'static str, detail: String },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl StoreError {
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            StoreError::Locked { .. } => Some(
                "sled allows one process per state directory: stop the other process (scheduler or \
                 backfill) first, or point --state at another directory",
            ),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    dags: sled::Tree,
    versions: sled::Tree,
    runs: sled::Tree,
    active: sled::Tree,
    attempts: sled::Tree,
    outputs: sled::Tree,
    events: sled::Tree,
    ledger: sled::Tree,
    backfills: sled::Tree,
    kv: sled::Tree,
    gate_memory: sled::Tree,
    sla_events: sled::Tree,
    sources: sled::Tree,
    materializations: sled::Tree,
    stale: sled::Tree,
    root: PathBuf,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Records are plain data (strings, numbers, maps with string keys): serializing them
    // to JSON cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        detail: e.to_string(),
    })
}

impl Store {
    /// The DAG files that did not load at the scheduler's last read of its folder: replaced
    /// whole at each read (an empty list once every file loads).
    pub fn put_import_errors(&self, errors: &[ImportError]) -> Result<()> {
        self.db.insert(IMPORT_ERRORS, encode(&errors))?;
        Ok(())
    }

    pub fn import_errors(&self) -> Result<Vec<ImportError>> {
        match self.db.get(IMPORT_ERRORS)? {
            Some(bytes) => decode("import errors", &bytes),
            None => Ok(Vec::new()),
        }
    }

    /// Whether `dir` holds a state (a database was created in it), without creating one.
    pub fn exists(dir: &Path) -> bool {
        dir.join("db").is_dir()
    }

    /// Opens (or creates) the store under `dir`; fails cleanly when another process has it.
    /// The folder is made private to this user (0700): run conf, rendered SQL and logs are
    /// not for other local users, whatever the umask.
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            path: dir.to_owned(),
            source,
        })?;
        private(dir)?;
        let db_dir = dir.join("db");
        let config = sled::Config::new()
            .path(&db_dir)
            .cache_capacity(64 << 20)
            .flush_every_ms(None);
        let db = match config.open() {
            // sled 0.34 reads a snapshot left half-written by a killed process
            // (`snap.*.generating`, renamed only once complete) and reports corruption
            // (sled issue #1527). Such a file is never part of the durable state: set it
            // aside and open again from the last complete snapshot and the log.
            Err(sled::Error::Corruption { .. }) if set_aside_partial_snapshots(&db_dir) => {
                config.open()
            }
            other => other,
        };
        let db = db
            .map_err(|source| {
                let locked = matches!(&source, sled::Error::Io(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock || e.to_string().contains("lock"));
                if locked {
                    StoreError::Locked {
                        dir: dir.to_owned(),
                        pid: std::fs::read_to_string(dir.join("sluice.pid"))
                            .ok()
                            .and_then(|p| p.trim().parse().ok()),
                    }
                } else {
                    StoreError::Open {
                        dir: dir.to_owned(),
                        source,
                    }
                }
            })?;
        let _ = std::fs::write(dir.join("sluice.pid"), std::process::id().to_string());
        Store::from_db(db, dir.to_owned())
    }

    /// A store in memory, for `dags test` and tests.
    pub fn temporary(root: &Path) -> Result<Store> {
        let db = sled::Config::new().temporary(true).open()?;
        Store::from_db(db, root.to_owned())
    }

    fn from_db(db: sled::Db, root: PathBuf) -> Result<Store> {
        let store = Store {
            dags: db.open_tree("dags")?,
            versions: db.open_tree("dag_versions")?,
            runs: db.open_tree("runs")?,
            active: db.open_tree("active_runs")?,
            attempts: db.open_tree("attempts")?,
            outputs: db.open_tree("outputs")?,
            events: db.open_tree("events")?,
            ledger: db.open_tree("ledger")?,
            backfills: db.open_tree("backfills")?,
            kv: db.open_tree("kv")?,
            gate_memory: db.open_tree("gate_memory")?,
            sla_events: db.open_tree("sla_events")?,
            sources: db.open_tree("dag_sources")?,
            materializations: db.open_tree("materializations")?,
            stale: db.open_tree("stale_intervals")?,
            db,
            root,
        };
        store.migrate()?;
        Ok(store)
    }

    /// Reads the layout version and upgrades older layouts step by step.
    fn migrate(&self) -> Result<()> {
        let found = self
            .db
            .get("schema_version")?
            .and_then(|v| <[u8; 4]>::try_from(v.as_ref()).ok())
            .map(u32::from_be_bytes);
        match found {
            None => {
                self.db
                    .insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::TooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            Some(v) => {
                for from in v..SCHEMA_VERSION {
                    migrate(self, from)?;
                }
                self.db
                    .insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
        }
        Ok(())
    }

    /// A tree by the name `tree_names` gives it. sled's `open_tree` with the default tree's
    /// name opens a *new*, empty tree of that name: the default one is the database itself.
    pub(crate) fn tree_named(db: &sled::Db, name: &[u8]) -> sled::Result<sled::Tree> {
        if name == b"__sled__default" {
            Ok(sled::Tree::clone(db))
        } else {
            db.open_tree(name)
        }
    }

    /// Makes every write so far durable. Returns the bytes flushed.
    pub fn flush(&self) -> Result<usize> {
        Ok(self.db.flush()?)
    }

    /// The plugins' key-value store.
    pub fn kv(&self) -> KvStore {
        KvStore::new(self.kv.clone())
    }

    pub fn gate_memory(&self) -> GateMemoryStore {
        GateMemoryStore::new(self.gate_memory.clone())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an attempt's log goes: `<state>/logs/<dag>/<run_id>/<task>/<try>.log`.
    pub fn log_path(&self, dag: &str, run_id: &str, task: &str, try_number: u32) -> PathBuf {
        self.root
            .join("logs")
            .join(dag)
            .join(run_id)
            .join(task)
            .join(format!("{try_number}.log"))
    }

    /// A set of writes applied together with [`Store::apply`]: one sled batch per tree,
    /// cheaper than key-by-key inserts when a loop iteration writes hundreds of records.
    pub fn writes(&self) -> Writes {
        Writes::default()
    }

    /// Applies one group commit's writes atomically across trees (a sled transaction):
    /// after a crash either all of them are there or none, so the run records, the index of
    /// unfinished runs, attempts, outputs, the ledger, the cursors and the event log always
    /// agree; so do the assets' materializations and the consumer intervals they made stale.
    pub fn apply(&self, writes: Writes) -> Result<()> {
        use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
        let events = if writes.events.is_empty() {
            None
        } else {
            Some(encode(&writes.events))
        };
        let result = (
            &self.active,
            &self.runs,
            &self.attempts,
            &self.outputs,
            &self.ledger,
            &self.dags,
            &self.backfills,
            &self.events,
            &self.sla_events,
            &self.materializations,
            &self.stale,
        )
            .transaction(
                |(
                    active,
                    runs,
                    attempts,
                    outputs,
                    ledger,
                    dags,
                    backfills,
                    log,
                    sla,
                    materializations,
                    stale,
                )| {
                    active.apply_batch(&writes.active)?;
                    runs.apply_batch(&writes.runs)?;
                    attempts.apply_batch(&writes.attempts)?;
                    outputs.apply_batch(&writes.outputs)?;
                    ledger.apply_batch(&writes.ledger)?;
                    dags.apply_batch(&writes.dags)?;
                    backfills.apply_batch(&writes.backfills)?;
                    sla.apply_batch(&writes.sla_events)?;
                    materializations.apply_batch(&writes.materializations)?;
                    stale.apply_batch(&writes.stale)?;
                    if let Some(events) = &events {
                        let seq = log.generate_id()?;
                        log.insert(&seq.to_be_bytes(), events.as_slice())?;
                    }
                    Ok::<(), ConflictableTransactionError<()>>(())
                },
            );
        match result {
            Ok(()) => Ok(()),
            Err(TransactionError::Storage(e)) => Err(StoreError::Sled(e)),
            Err(TransactionError::Abort(())) => Err(StoreError::Corrupt {
                what: "transaction",
                detail: "aborted".into(),
            }),
        }
    }

    // --- DAGs -----------------------------------------------------------------------------

    pub fn dag(&self, dag: &str) -> Result<Option<DagRecord>> {
        self.dags.get(dag)?.map(|v| decode("dag", &v)).transpose()
    }

    pub fn put_dag(&self, dag: &str, record: &DagRecord) -> Result<()> {
        self.dags.insert(dag, encode(record))?;
        Ok(())
    }

    pub fn dag_ids(&self) -> Result<Vec<String>> {
        self.dags
            .iter()
            .keys()
            .map(|k| Ok(String::from_utf8_lossy(&k?).into_owned()))
            .collect()
    }

    /// Keeps a DAG version by its hash; runs record which version they ran.
    pub fn put_version(&self, dag: &Dag, version: &str) -> Result<()> {
        let key = keys::version_key(&dag.dag, version);
        if !self.versions.contains_key(&key)? {
            self.versions.insert(key, encode(dag))?;
        }
        Ok(())
    }

    /// Keeps the file a DAG version was read from (its first text at that version: a
    /// comment-only edit keeps the version and the text first seen), for the UI's code view.
    pub fn put_version_source(&self, dag: &str, version: &str, source: &DagSource) -> Result<()> {
        let key = keys::version_key(dag, version);
        if !self.sources.contains_key(&key)? {
            self.sources.insert(key, encode(source))?;
        }
        Ok(())
    }

    pub fn version_source(&self, dag: &str, version: &str) -> Result<Option<DagSource>> {
        let key = keys::version_key(dag, version);
        self.sources
            .get(key)?
            .map(|v| decode("dag source", &v))
            .transpose()
    }

    pub fn version(&self, dag: &str, version: &str) -> Result<Option<Dag>> {
        let key = keys::version_key(dag, version);
        self.versions
            .get(key)?
            .map(|v| decode("dag version", &v))
            .transpose()
    }

    // --- runs -----------------------------------------------------------------------------

    pub fn run(&self, dag: &str, logical_date: DateTime<Utc>) -> Result<Option<RunRecord>> {
        self.runs
            .get(keys::dag_time(dag, logical_date))?
            .map(|v| decode("run", &v))
            .transpose()
    }

    /// The run of a DAG just before `logical_date`, for `depends_on_past`.
    pub fn previous_run(
        &self,
        dag: &str,
        logical_date: DateTime<Utc>,
    ) -> Result<Option<RunRecord>> {
        let prefix = keys::dag_prefix(dag);
        let end = keys::dag_time(dag, logical_date);
        match self.runs.range(prefix.clone()..end).next_back() {
            Some(entry) => {
                let (key, value) = entry?;
                if key.starts_with(&prefix) {
                    return decode("run", &value).map(Some);
                }
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Runs of a DAG with logical dates in `[from, to)`, oldest first.
    pub fn runs_between(
        &self,
        dag: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> impl DoubleEndedIterator<Item = Result<RunRecord>> + use<> {
        self.runs
            .range(keys::dag_time(dag, from)..keys::dag_time(dag, to))
            .values()
            .map(|v| decode("run", &v?))
    }

    /// Every run of a DAG, oldest first.
    pub fn runs_of(&self, dag: &str) -> impl DoubleEndedIterator<Item = Result<RunRecord>> + use<> {
        self.runs
            .scan_prefix(keys::dag_prefix(dag))
            .values()
            .map(|v| decode("run", &v?))
    }

    /// Runs not finished, across DAGs: what a restart must pick up.
    pub fn active_runs(&self) -> Result<Vec<RunRecord>> {
        let mut runs = Vec::new();
        for key in self.active.iter().keys() {
            let key = key?;
            if let Some(value) = self.runs.get(&key)? {
                runs.push(decode("run", &value)?);
            }
        }
        Ok(runs)
    }

    // --- attempts and outputs -------------------------------------------------------------

    pub fn attempt(
        &self,
        dag: &str,
        logical_date: DateTime<Utc>,
        task: &str,
        try_number: u32,
    ) -> Result<Option<AttemptRecord>> {
        self.attempts
            .get(keys::attempt_key(dag, logical_date, task, try_number))?
            .map(|v| decode("attempt", &v))
            .transpose()
    }

    /// Attempts of one run, by task then try.
    pub fn attempts_of_run(
        &self,
        dag: &str,
        logical_date: DateTime<Utc>,
    ) -> Result<Vec<AttemptRecord>> {
        let mut prefix = keys::dag_time(dag, logical_date);
        prefix.push(0);
        self.attempts
            .scan_prefix(prefix)
            .values()
            .map(|v| decode("attempt", &v?))
            .collect()
    }

    pub fn output(
        &self,
        dag: &str,
        logical_date: DateTime<Utc>,
        task: &str,
    ) -> Result<Option<serde_json::Value>> {
        self.outputs
            .get(keys::task_key(dag, logical_date, task))?
            .map(|v| decode("output", &v))
            .transpose()
    }

    // --- event log ------------------------------------------------------------------------

    /// The newest `limit` events, oldest first.
    pub fn recent_events(&self, limit: usize) -> Result<Vec<EventRecord>> {
        let mut events = Vec::new();
        for batch in self.events.iter().values().rev() {
            let mut batch: Vec<EventRecord> = decode("events", &batch?)?;
            batch.reverse();
            events.extend(batch);
            if events.len() >= limit {
                break;
            }
        }
        events.truncate(limit);
        events.reverse();
        Ok(events)
    }

    /// Every event, oldest first.
    pub fn events(&self) -> impl Iterator<Item = Result<EventRecord>> + use<> {
        self.event_batches().flat_map(|decoded| match decoded {
            Ok(events) => events.into_iter().map(Ok).collect::<Vec<_>>(),
            Err(e) => vec![Err(e)],
        })
    }

    /// Every group commit's events, oldest first: what one loop iteration made durable
    /// together.
    pub fn event_batches(&self) -> impl Iterator<Item = Result<Vec<EventRecord>>> + use<> {
        self.events.iter().values().map(|batch| {
            batch
                .map_err(StoreError::from)
                .and_then(|b| decode("events", &b))
        })
    }

    // --- ledger ---------------------------------------------------------------------------

    pub fn ledger_entry(
        &self,
        dag: &str,
        interval_start: DateTime<Utc>,
    ) -> Result<Option<LedgerEntry>> {
        self.ledger
            .get(keys::dag_time(dag, interval_start))?
            .map(|v| decode("ledger", &v))
            .transpose()
    }

    /// Ledger entries of intervals starting in `[from, to)`, oldest first.
    pub fn ledger_between(
        &self,
        dag: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(DateTime<Utc>, LedgerEntry)>> {
        self.ledger
            .range(keys::dag_time(dag, from)..keys::dag_time(dag, to))
            .map(|entry| {
                let (key, value) = entry?;
                let (_, start) = keys::split_dag_time(&key).ok_or(StoreError::Corrupt {
                    what: "ledger key",
                    detail: format!("{key:?}"),
                })?;
                Ok((start, decode("ledger", &value)?))
            })
            .collect()
    }

    // --- backfills ------------------------------------------------------------------------

    pub fn backfill(&self, dag: &str) -> Result<Option<BackfillRecord>> {
        self.backfills
            .get(dag)?
            .map(|v| decode("backfill", &v))
            .transpose()
    }

    pub fn put_backfill(&self, record: &BackfillRecord) -> Result<()> {
        let value = encode(record);
        self.backfills
            .insert(record.dag.as_bytes(), value.clone())?;
        self.backfills.insert(backfill_history_key(record), value)?;
        Ok(())
    }

    /// A DAG's backfills, newest first, at most `limit`: each as it stands (the latest is
    /// also [`Store::backfill`]). Stores from before the history have the latest only.
    pub fn backfill_history(&self, dag: &str, limit: usize) -> Result<Vec<BackfillRecord>> {
        let mut history: Vec<BackfillRecord> = self
            .backfills
            .scan_prefix(keys::dag_prefix(dag))
            .values()
            .rev()
            .take(limit)
            .map(|v| decode("backfill", &v?))
            .collect::<Result<_>>()?;
        if let Some(latest) = self.backfill(dag)?
            && !history.iter().any(|b| b.created_at == latest.created_at)
            && limit > 0
        {
            history.insert(0, latest);
            history.truncate(limit);
        }
        Ok(history)
    }
}

/// `dag \0 created_at`: one backfill of the history, beside the latest under `dag` (the
/// tree's other keys never contain a 0 byte).
fn backfill_history_key(record: &BackfillRecord) -> Vec<u8> {
    keys::dag_time(&record.dag, record.created_at)
}

/// Writes collected for one group commit, applied atomically by [`Store::apply`].
#[derive(Default)]
pub struct Writes {
    active: sled::Batch,
    runs: sled::Batch,
    attempts: sled::Batch,
    outputs: sled::Batch,
    ledger: sled::Batch,
    dags: sled::Batch,
    backfills: sled::Batch,
    sla_events: sled::Batch,
    materializations: sled::Batch,
    stale: sled::Batch,
    events: Vec<EventRecord>,
}

impl Writes {
    pub fn put_run(&mut self, record: &RunRecord) {
        let key = keys::dag_time(&record.state.dag_id, record.state.logical_date);
        self.runs.insert(key, encode(record));
    }

    pub fn set_active(&mut self, dag: &str, logical_date: DateTime<Utc>, active: bool) {
        let key = keys::dag_time(dag, logical_date);
        if active {
            self.active.insert(key, &[]);
        } else {
            self.active.remove(key);
        }
    }

    pub fn put_attempt(&mut self, dag: &str, logical_date: DateTime<Utc>, attempt: &AttemptRecord) {
        let key = keys::attempt_key(dag, logical_date, &attempt.task, attempt.try_number);
        self.attempts.insert(key, encode(attempt));
    }

    pub fn put_output(
        &mut self,
        dag: &str,
        logical_date: DateTime<Utc>,
        task: &str,
        output: &serde_json::Value,
    ) {
        self.outputs
            .insert(keys::task_key(dag, logical_date, task), encode(output));
    }

    pub fn put_ledger(&mut self, dag: &str, interval_start: DateTime<Utc>, entry: &LedgerEntry) {
        self.ledger
            .insert(keys::dag_time(dag, interval_start), encode(entry));
    }

    pub fn put_dag(&mut self, dag: &str, record: &DagRecord) {
        self.dags.insert(dag.as_bytes(), encode(record));
    }

    pub fn put_backfill(&mut self, record: &BackfillRecord) {
        let value = encode(record);
        self.backfills.insert(record.dag.as_bytes(), value.clone());
        self.backfills.insert(backfill_history_key(record), value);
    }

    pub fn put_sla_event(&mut self, record: &sla::SlaEventRecord) {
        self.sla_events.insert(sla::key(record), encode(record));
    }

    /// The event log entry of this group commit: one record for all its transitions.
    pub fn append_events(&mut self, events: Vec<EventRecord>) {
        self.events.extend(events);
    }
}

/// Moves incomplete snapshot files (`snap.*.generating`) out of sled's folder into
/// `partial-snapshots/`; returns whether there were any.
fn set_aside_partial_snapshots(db_dir: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir(db_dir) else {
        return false;
    };
    let aside = db_dir.join("partial-snapshots");
    let mut moved = false;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            let _ = std::fs::create_dir_all(&aside);
            moved |= std::fs::rename(entry.path(), aside.join(&name)).is_ok();
        }
    }
    moved
}

/// One step of layout migration, from version `from` to `from + 1`. Version 1 is the first
/// layout, so there is nothing to do yet; new layouts add their step here.
fn migrate(_store: &Store, from: u32) -> Result<()> {
    Err(StoreError::Corrupt {
        what: "schema version",
        detail: format!("no migration from layout version {from}"),
    })
}

/// Makes a folder this user's alone (0700).
pub(crate) fn private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        StoreError::Io {
            path: dir.to_owned(),
            source,
        }
    })
}
