//! The engine: state, the loop, and the steps of one iteration.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, mpsc};
use std::time::Instant;

use chrono::{DateTime, Utc};

use super::Input;
use super::attempts::AttemptBook;
use super::backfill::Backfills;
use super::gates::{GateTracker, GateVerdict};
use super::registry::{CompiledDag, Registry};
use super::run_book::{ActiveRun, RunBook, RunKey};
use super::sla::SlaWatch;
use crate::executor::Executors;
use sluice_core::trigger::Past;
use sluice_core::{Admission, RunKind, RunState, RunStatus, TaskState};
use sluice_model::schedule::DataInterval;
use sluice_store::{RunRecord, Store, StoreError};

/// What the engine is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// `sluice scheduler`: every DAG, scheduled runs, backfills, reloads; until shutdown.
    Scheduler,
    /// `sluice backfill` without a scheduler: this DAG's backfill to the end.
    Backfill { dag: String },
    /// `sluice dags test`: one run in memory, then exit.
    Test { dag: String },
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub dags_dir: PathBuf,
    /// Where plugins referenced by name live (`<name>.wasm`).
    pub plugins_dir: PathBuf,
    pub mode: Mode,
    /// How long shutdown waits for running attempts.
    pub shutdown_grace: std::time::Duration,
    /// How often the DAG folder is checked for changes (scheduler mode).
    pub reload_every: std::time::Duration,
    pub pools: HashMap<String, usize>,
    /// Record task-to-task latencies (benchmarks).
    pub measure_latency: bool,
    /// Print what happens (run and task transitions) to stderr.
    pub verbose: bool,
    /// Treat every readiness gate as open (`dags test --ignore-gate`).
    pub ignore_gates: bool,
    /// No scheduled run for an interval starting before this (`scheduler --not-before`).
    pub not_before: Option<DateTime<Utc>>,
    /// Where SLA events are posted (scheduler mode).
    pub webhooks: Vec<crate::config::Webhook>,
    /// The first wait before a webhook delivery is retried (doubles per retry).
    pub webhook_backoff: std::time::Duration,
    /// History older than this is compacted away (scheduler mode); none keeps everything.
    pub retention: Option<sluice_model::spec::Duration>,
    /// The connections of this scheduler's own configuration, handed to its executors and
    /// gates.
    pub connections: crate::connections::Connections,
    /// Most intervals one backfill may cover.
    pub max_backfill_intervals: usize,
    /// Environment names (or `PREFIX*`) tasks inherit besides the base allowlist.
    pub task_env: Vec<String>,
    /// What DAGs may grant their plugins.
    pub plugin_grants: crate::executor::wasm::GrantPolicy,
    /// The active instance's lease and shipping (`[ha]`); `None` without HA.
    pub leadership: Option<crate::ha::Leadership>,
}

impl EngineConfig {
    pub fn new(dags_dir: PathBuf, mode: Mode) -> Self {
        let plugins_dir = dags_dir
            .parent()
            .map_or_else(|| PathBuf::from("plugins"), |p| p.join("plugins"));
        EngineConfig {
            dags_dir,
            plugins_dir,
            mode,
            shutdown_grace: std::time::Duration::from_secs(30),
            reload_every: std::time::Duration::from_secs(5),
            pools: HashMap::new(),
            measure_latency: false,
            verbose: false,
            ignore_gates: false,
            not_before: None,
            webhooks: Vec::new(),
            webhook_backoff: std::time::Duration::from_secs(2),
            retention: None,
            connections: crate::connections::Connections::default(),
            max_backfill_intervals: super::MAX_BACKFILL_INTERVALS,
            task_env: Vec::new(),
            plugin_grants: Default::default(),
            leadership: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the DAG folder {path}: {source}")]
    DagFolder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no valid DAG `{0}` in the DAG folder")]
    UnknownDag(String),
    #[error("{0}")]
    Invalid(String),
    #[error("cannot start the executor runtime: {0}")]
    Runtime(std::io::Error),
    /// The lease was lost: nothing more was written or started (docs/ha.md).
    #[error(transparent)]
    Deposed(#[from] crate::ha::Deposed),
}

/// Counters of what the engine did, for `--verbose`, benchmarks and tests.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub iterations: u64,
    pub flushes: u64,
    /// Time spent waiting for flushes (fsync).
    pub flush_time: std::time::Duration,
    pub transitions: u64,
    pub attempts_started: u64,
    pub runs_created: u64,
    /// Finished or recovered runs loaded again (a clear, a rerun, a reprocessing).
    pub runs_reopened: u64,
    pub runs_finished: u64,
    pub recovered_attempts: u64,
    /// The most runs held in memory at once (each iteration, once its runs are created).
    pub most_runs_held: usize,
    /// Upstream success reported → downstream running durable, per dependent start.
    pub latencies: Vec<std::time::Duration>,
}

/// A granted attempt, started after the flush.
#[derive(Debug)]
pub(super) struct Dispatch {
    pub key: RunKey,
    pub task: usize,
    pub try_number: u32,
    /// When the task became startable (last upstream success), for latency samples.
    pub enabled_at: Option<Instant>,
}

/// Whether a task's attempts run outside this process (an EMR step) and so survive it: such
/// attempts are adopted after a restart rather than failed by the crash, and a shutdown
/// leaves them running.
pub(super) fn is_remote(executors: &Executors, run: &ActiveRun, task: usize) -> bool {
    run.dag
        .tasks
        .get(&run.plan.tasks[task].id)
        .is_some_and(|spec| executors.runs_remotely(&spec.kind))
}

/// The scheduler: one loop composing components that own their state (the registry of
/// DAGs, the run book, the attempt book, backfills, the gate tracker, the SLA watch) with
/// the store, the executors and the inbox. Each iteration's steps are `impl Engine` blocks
/// in the files named after them; components are reached through their methods.
pub struct Engine {
    pub(super) store: Store,
    pub(super) config: EngineConfig,
    pub(super) registry: Registry,
    pub(super) runs: RunBook,
    pub(super) attempts: AttemptBook,
    pub(super) backfills: Backfills,
    pub(super) gates: GateTracker,
    pub(super) assets: super::assets::AssetBook,
    pub(super) slas: SlaWatch,
    pub(super) admission: Admission,
    pub(super) executors: Executors,
    pub(super) inbox: mpsc::Receiver<Input>,
    pub(super) sender: mpsc::Sender<Input>,
    /// The same inbox, as executors see it.
    pub(super) inbox_sink: Arc<dyn crate::executor::ReportSink>,
    /// Reports produced inside the loop (noop attempts, render failures).
    pub(super) local: VecDeque<Input>,
    pub(super) stats: Stats,
    /// Something was written to the store outside the runs since the last flush.
    pub(super) side_writes: bool,
    /// `var.<name>` of templates, read from the environment at start.
    pub(super) variables: BTreeMap<String, serde_json::Value>,
    /// When history was last compacted under the retention setting.
    pub(super) last_compaction: Option<Instant>,
    pub(super) shutdown_at: Option<Instant>,
    /// Keeps the executors' tokio runtime alive as long as the engine.
    pub(super) _runtime: Option<tokio::runtime::Runtime>,
    /// What `/metrics` shows.
    pub(super) metrics: Arc<crate::metrics::Metrics>,
    pub(super) gauges_refreshed: Option<Instant>,
}

impl Engine {
    /// Opens an engine over a store. Loads the DAG folder (all DAGs in scheduler mode, the
    /// one DAG otherwise) and recovers runs left active by a previous process.
    pub fn new(store: Store, config: EngineConfig) -> Result<Engine, EngineError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("sluice-executor")
            .enable_all()
            .build()
            .map_err(EngineError::Runtime)?;
        let (sender, inbox) = mpsc::channel();
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let admission = Admission::new(config.pools.clone());
        let inbox_sink = Arc::new(super::Inbox(sender.clone()));
        let gates = GateTracker::new(
            inbox_sink.clone(),
            config.connections.clone(),
            config.ignore_gates,
        );
        let notifier = if config.mode == Mode::Scheduler && !config.webhooks.is_empty() {
            Some(
                crate::notify::Notifier::start(
                    store.clone(),
                    config.webhooks.clone(),
                    config.webhook_backoff,
                    config.verbose,
                )
                .map_err(EngineError::Runtime)?,
            )
        } else {
            None
        };
        let slas = SlaWatch::new(
            config.webhooks.iter().map(|w| w.name.clone()).collect(),
            notifier,
        );
        let mut engine = Engine {
            executors: Executors::new(
                runtime.handle().clone(),
                &config.dags_dir,
                &config.connections,
                crate::executor::task_env::TaskEnv::new(config.task_env.clone()),
                crate::executor::wasm::WasmExecutor::new(
                    runtime.handle().clone(),
                    config.plugins_dir.clone(),
                    crate::executor::wasm::RunnerConfig {
                        cache_dir: Some(store.root().join("plugin-cache")),
                        metrics: Some(Arc::clone(&metrics)),
                        kv: Some(Arc::new(store.kv())),
                        queries: Some(Arc::new(crate::clickhouse::ClickhouseQueries::new(
                            runtime.handle().clone(),
                            config.connections.clone(),
                        ))),
                        policy: Some(config.plugin_grants.clone()),
                        ..crate::executor::wasm::RunnerConfig::default()
                    },
                ),
                config
                    .leadership
                    .as_ref()
                    .map(|lead| crate::ha::SideEffects::fenced(lead.fence.clone()))
                    .unwrap_or_default(),
            ),
            _runtime: Some(runtime),
            registry: Registry::new(&config.dags_dir),
            assets: super::assets::AssetBook::load(&store)?,
            store,
            config,
            runs: RunBook::default(),
            attempts: AttemptBook::default(),
            backfills: Backfills::default(),
            gates,
            slas,
            admission,
            inbox,
            sender,
            inbox_sink,
            local: VecDeque::new(),
            stats: Stats::default(),
            side_writes: false,
            variables: sluice_model::template::variables_from_env(),
            shutdown_at: None,
            metrics,
            gauges_refreshed: None,
            last_compaction: None,
        };
        engine.load_dags()?;
        engine.recover(Utc::now())?;
        engine.refresh_gate_watch();
        engine.persist_and_flush()?;
        Ok(engine)
    }

    /// A handle to send inputs (shutdown) from other threads.
    pub fn sender(&self) -> mpsc::Sender<Input> {
        self.sender.clone()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The metrics registry this engine updates (served at `/metrics`).
    pub fn metrics(&self) -> Arc<crate::metrics::Metrics> {
        Arc::clone(&self.metrics)
    }

    pub(super) fn log(&self, message: impl AsRef<str>) {
        if self.config.verbose {
            tracing::info!("{}", message.as_ref());
        }
    }

    /// A line about one run (`dag` and `run` as fields).
    pub(super) fn log_run(&self, dag: &str, run: &str, message: impl AsRef<str>) {
        if self.config.verbose {
            tracing::info!(dag, run, "{}", message.as_ref());
        }
    }

    /// Runs the loop until the mode's work is done or a shutdown completes.
    pub fn run(&mut self) -> Result<(), EngineError> {
        self.run_with(&mut |_| {})
    }

    /// Like [`Engine::run`], calling `tick` after every iteration that changed something
    /// (progress bars).
    pub fn run_with(&mut self, tick: &mut dyn FnMut(&Engine)) -> Result<(), EngineError> {
        loop {
            let now = Utc::now();
            let iteration_started = Instant::now();
            self.stats.iterations += 1;
            let mut busy = false;
            while let Some(input) = self
                .local
                .pop_front()
                .or_else(|| self.inbox.try_recv().ok())
            {
                busy = true;
                self.handle(input, now);
            }
            // Consumers of what just succeeded move in this same iteration.
            self.record_materializations(now)?;
            let mut dispatches = Vec::new();
            if self.shutdown_at.is_none() {
                self.maybe_reload()?;
                self.create_scheduled_runs(now)?;
                for (dag, logical_date) in self.gates.take_reprocess() {
                    self.reprocess_late(&dag, logical_date);
                }
                self.advance_backfills(now)?;
                self.rerun_stale()?;
                self.stats.most_runs_held = self.stats.most_runs_held.max(self.runs.len());
                self.evaluate(now)?;
                dispatches = self.admit(now);
                dispatches.extend(self.attempts.take_adopted());
            } else {
                self.wind_down(now);
            }
            self.slas.check(&mut self.runs, now, &self.metrics);
            self.hold_lead()?;
            let changed = self.persist_and_flush()?;
            self.mark_cut();
            self.maybe_compact(now);
            self.slas.send_raised();
            busy |= changed || !dispatches.is_empty();
            let flushed_at = Instant::now();
            for d in &dispatches {
                if let Some(enabled) = d.enabled_at {
                    let latency = flushed_at.duration_since(enabled);
                    self.metrics.observe(
                        "sluice_dispatch_latency_seconds",
                        &[],
                        latency.as_secs_f64(),
                    );
                    if self.config.measure_latency {
                        self.stats.latencies.push(latency);
                    }
                }
            }
            // The flush took time: the lease must still be ours before anything starts.
            self.hold_lead()?;
            self.dispatch(dispatches);
            self.refresh_gauges();
            if busy {
                self.metrics.observe(
                    "sluice_scheduler_iteration_seconds",
                    &[],
                    iteration_started.elapsed().as_secs_f64(),
                );
                tick(self);
            }
            if self.done() {
                self.executors.spark.finish_cleanups();
                return Ok(());
            }
            if !busy && self.local.is_empty() {
                let wait = self.next_wake(now);
                match self.inbox.recv_timeout(wait) {
                    Ok(input) => self.local.push_back(input),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // The engine holds a sender itself, so the channel cannot close.
                    Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                }
            }
        }
    }

    /// Whether the loop has finished its mode's work.
    fn done(&self) -> bool {
        if self.shutdown_at.is_some() {
            // Remote attempts go on without this process; the next start adopts them.
            let local_slots_held = self.runs.values().any(|r| {
                r.record
                    .state
                    .tasks
                    .iter()
                    .enumerate()
                    .any(|(i, t)| t.state.holds_slot() && !is_remote(&self.executors, r, i))
            });
            return !local_slots_held && self.local.is_empty();
        }
        match &self.config.mode {
            Mode::Scheduler => false,
            // Its consumers' runs and reruns too (the chain), once nothing more can start.
            Mode::Backfill { dag } => {
                !self.backfills.is_running(dag) && self.runs.is_empty() && !self.assets.recheck
            }
            Mode::Test { .. } => {
                self.runs.is_empty() && self.stats.runs_created + self.stats.runs_reopened > 0
            }
        }
    }

    /// How long to sleep: until the next retry, the next interval boundary, the next DAG
    /// reload or the end of the shutdown grace, whichever comes first.
    fn next_wake(&self, now: DateTime<Utc>) -> std::time::Duration {
        let mut wake: Option<DateTime<Utc>> = self
            .runs
            .values()
            .filter_map(|r| r.record.state.next_retry_at())
            .chain(
                self.runs
                    .values()
                    .filter_map(super::inputs::inputs_deadline),
            )
            .min();
        if let Some(next) = self.slas.next_due(&self.runs) {
            wake = Some(wake.map_or(next, |w| w.min(next)));
        }
        if self.config.mode == Mode::Scheduler {
            for entry in self.registry.entries().filter(|e| !e.record.paused) {
                if let Some(next) = entry.next_due(now, self.config.not_before) {
                    wake = Some(wake.map_or(next, |w| w.min(next)));
                }
            }
        }
        let mut sleep = wake
            .map(|w| (w - now).to_std().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(3600));
        if self.config.mode == Mode::Scheduler {
            sleep = sleep.min(self.registry.until_reload(self.config.reload_every));
        }
        if let Some(at) = self.shutdown_at {
            sleep = sleep.min(at.saturating_duration_since(Instant::now()));
        }
        if let Some(lead) = &self.config.leadership {
            // Wake when the lease's last proof runs out, to stop at once if it was lost.
            sleep = sleep.min(
                lead.fence
                    .remaining()
                    .max(std::time::Duration::from_millis(10)),
            );
        }
        // Wake at least a millisecond later to avoid spinning on a timer due right now.
        sleep.max(std::time::Duration::from_millis(1))
    }

    /// Lets the core move every run that needs it: dirty runs, runs with a retry due, and
    /// queued runs that `max_active_runs` now lets start.
    fn evaluate(&mut self, now: DateTime<Utc>) -> Result<(), EngineError> {
        let mut running_per_dag: HashMap<String, usize> = HashMap::new();
        for (key, _) in self
            .runs
            .iter()
            .filter(|(_, r)| r.record.state.status == RunStatus::Running)
        {
            *running_per_dag.entry(key.0.clone()).or_insert(0) += 1;
        }
        let keys: Vec<RunKey> = self.runs.keys().cloned().collect();
        for key in keys {
            let Some(run) = self.runs.get(&key) else {
                continue;
            };
            let status = run.record.state.status;
            let due_retry = run.record.state.next_retry_at().is_some_and(|at| at <= now)
                || super::inputs::inputs_deadline(run).is_some_and(|at| at <= now);
            let wants = match status {
                RunStatus::Queued => {
                    let running = running_per_dag.get(&key.0).copied().unwrap_or(0);
                    let limit = self.max_active_runs(&key.0, run);
                    running < limit
                }
                _ => run.dirty || due_retry,
            };
            if !wants {
                continue;
            }
            let past = self.past_states(&key)?;
            let inputs = self.inputs_verdict(&key, now)?;
            let Some(run) = self.runs.get_mut(&key) else {
                continue;
            };
            run.dirty = false;
            let (verdict, announcement) = self.gates.verdict(run, now, &self.metrics);
            let verdict = super::inputs::combine(verdict, inputs);
            let past = |i: usize| Past::from_previous(past.get(i).copied());
            let changes = match verdict {
                GateVerdict::Open => run.record.state.evaluate(&run.plan, &past, true, now),
                GateVerdict::Closed => run.record.state.evaluate(&run.plan, &past, false, now),
                GateVerdict::TimedOut(reason) => run
                    .record
                    .state
                    .gate_timed_out(&run.plan, &past, &reason, now),
            };
            if status == RunStatus::Queued && run.record.state.status != RunStatus::Queued {
                *running_per_dag.entry(key.0.clone()).or_insert(0) += 1;
                run.record.started_at.get_or_insert(now);
            }
            run.changes.extend(changes);
            self.announce_gate(announcement);
        }
        Ok(())
    }

    /// `max_active_runs` for a run: the backfill's own limit for backfill runs.
    fn max_active_runs(&self, dag: &str, run: &ActiveRun) -> usize {
        if run.record.state.kind == RunKind::Backfill
            && let Some(b) = self.backfills.get(dag)
        {
            return b.max_active_runs.max(1);
        }
        run.plan.max_active_runs
    }

    /// `depends_on_past`: each task's state in the previous interval's run (empty when no
    /// task needs it or there is no earlier run). Tasks match by position, which holds while
    /// the DAG keeps its shape; a reshaped DAG does not block on an older run.
    fn past_states(&self, key: &RunKey) -> Result<Vec<TaskState>, EngineError> {
        let Some(run) = self.runs.get(key) else {
            return Ok(Vec::new());
        };
        if !run.plan.tasks.iter().any(|t| t.depends_on_past) {
            return Ok(Vec::new());
        }
        let previous: Option<RunState> = match self.runs.previous(key) {
            Some(r) => Some(r.record.state.clone()),
            None => self.store.previous_run(&key.0, key.1)?.map(|r| r.state),
        };
        Ok(previous
            .filter(|p| p.tasks.len() == run.plan.tasks.len())
            .map(|p| p.tasks.iter().map(|t| t.state).collect())
            .unwrap_or_default())
    }

    /// Adds a new run (persisted with the iteration); false if its logical date already has
    /// one.
    pub(super) fn create_run(
        &mut self,
        compiled: CompiledDag,
        kind: RunKind,
        interval: DataInterval,
        conf: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<bool, EngineError> {
        let Some(run) = self
            .runs
            .create(&self.store, compiled, kind, interval, conf, now)?
        else {
            return Ok(false);
        };
        if self.config.verbose {
            let state = &run.record.state;
            tracing::info!(dag = %state.dag_id, run = %state.run_id, "{} {} created", state.dag_id, state.run_id);
        }
        self.stats.runs_created += 1;
        Ok(true)
    }

    /// Brings a finished run back into memory (clear, reprocess) with the DAG version it ran.
    pub(super) fn reopen_run(&mut self, record: RunRecord) -> Result<Option<RunKey>, EngineError> {
        let key: RunKey = (record.state.dag_id.clone(), record.state.logical_date);
        if self.runs.contains_key(&key) {
            return Ok(Some(key));
        }
        let Some(compiled) = self
            .registry
            .compiled(&self.store, &key.0, &record.dag_version)?
        else {
            return Ok(None);
        };
        self.stats.runs_reopened += 1;
        Ok(Some(self.runs.reopen(record, compiled)))
    }

    /// Loads a run to run it again (a clear, a reprocessing, a trigger of its interval):
    /// a finished run moves onto the DAG's current version first (`RunState::adopt_plan`),
    /// so a fixed file is what runs; the version each attempt ran is on its record. A run
    /// still in memory keeps its version (its attempts may be running).
    pub(super) fn reopen_to_rerun(
        &mut self,
        mut record: RunRecord,
    ) -> Result<Option<RunKey>, EngineError> {
        let key: RunKey = (record.state.dag_id.clone(), record.state.logical_date);
        if self.runs.contains_key(&key) {
            return Ok(Some(key));
        }
        let Some(current) = self.registry.get(&key.0).map(|e| e.version()) else {
            return self.reopen_run(record);
        };
        if current.id != record.dag_version {
            // Without the run's own version its instances cannot be matched by id: the run
            // reopens as it is (refused if that version is gone), never remapped by position.
            let Some(old) = self
                .registry
                .compiled(&self.store, &key.0, &record.dag_version)?
            else {
                return self.reopen_run(record);
            };
            let attempts = self.store.attempts_of_run(&key.0, key.1)?;
            let tries_so_far = |task: &str| {
                attempts
                    .iter()
                    .filter(|a| a.task == task)
                    .map(|a| a.try_number)
                    .max()
                    .unwrap_or(0)
            };
            if record
                .state
                .adopt_plan(&old.plan, &current.plan, tries_so_far)
            {
                self.log(format!(
                    "{} {}: runs again on the DAG's current version {} (was {})",
                    key.0, record.state.run_id, current.id, record.dag_version
                ));
                // Written with the run's next change (the clear that follows).
                record.dag_version = current.id.clone();
                self.stats.runs_reopened += 1;
                return Ok(Some(self.runs.reopen(record, current)));
            }
        }
        self.reopen_run(record)
    }

    /// Reads the DAG folder into the registry.
    pub(super) fn load_dags(&mut self) -> Result<(), EngineError> {
        let verbose = self.config.verbose;
        let log = |line: String| {
            if verbose {
                tracing::info!("{line}");
            }
        };
        self.registry
            .load(&self.store, &self.config.dags_dir, &self.config.mode, &log)?;
        // A DAG loaded or changed may have stale intervals to rerun.
        self.assets.recheck = true;
        self.metrics.set(
            "sluice_dag_import_errors",
            &[],
            self.registry.import_errors() as f64,
        );
        Ok(())
    }

    /// Reloads changed DAG files every `reload_every` (scheduler mode).
    pub(super) fn maybe_reload(&mut self) -> Result<(), EngineError> {
        if self.config.mode != Mode::Scheduler
            || !self.registry.reload_due(self.config.reload_every)
        {
            return Ok(());
        }
        if self.registry.folder_changed(&self.config.dags_dir) {
            self.load_dags()?;
            self.refresh_gate_watch();
        }
        Ok(())
    }
}
