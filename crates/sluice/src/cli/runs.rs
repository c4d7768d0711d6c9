//! Commands over the scheduler's state: `scheduler`, `backfill`, `runs`, `tasks`, `clear`,
//! `audit`, and `dags trigger|pause|unpause|test`.

use chrono::{DateTime, Utc};
use clap::{Subcommand, ValueEnum};

use super::output::table_time;
use super::{Cli, CliError, OutputFormat, Streams};
use sluice_core::{RunStatus, TaskState};
use sluice_model::spec::instant::{format_instant, parse_instant};
use sluice_runtime::scheduler::{Control, ControlError, Engine, EngineError, Input, Mode};
use sluice_store::reports::RunSummary;
use sluice_store::{Reprocess, RunRecord, Store, StoreError};

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// List a DAG's runs, newest first.
    List {
        dag: String,
        /// Only runs in this state: queued, running, success, failed. (`--state` names the
        /// state directory, as on every command.)
        #[arg(long)]
        status: Option<String>,
        /// How many runs at most.
        #[arg(long, default_value_t = 25)]
        limit: usize,
    },
    /// Show a run: its interval, status and every task instance with its attempts.
    Show { dag: String, run_id: String },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Print the log of a task instance's attempt (the last one by default).
    Logs {
        dag: String,
        run_id: String,
        task: String,
        #[arg(long = "try")]
        try_number: Option<u32>,
    },
    /// Set a task instance's state by hand.
    Mark {
        dag: String,
        run_id: String,
        task: String,
        /// `success` or `failed`, last on the line (`--state` names the state folder).
        #[arg(value_enum, value_name = "success|failed")]
        state: Option<MarkState>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MarkState {
    Success,
    Failed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReprocessArg {
    /// Leave intervals that already have a run alone.
    None,
    /// Run again the intervals whose run failed.
    Failed,
    /// Run every interval again.
    Completed,
}

impl From<ReprocessArg> for Reprocess {
    fn from(value: ReprocessArg) -> Self {
        match value {
            ReprocessArg::None => Reprocess::None,
            ReprocessArg::Failed => Reprocess::Failed,
            ReprocessArg::Completed => Reprocess::Completed,
        }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let hint = e.hint().map(str::to_owned);
        CliError::Invalid {
            message: e.to_string(),
            hint,
        }
    }
}

impl From<EngineError> for CliError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Store(s) => s.into(),
            other => CliError::Invalid {
                message: other.to_string(),
                hint: None,
            },
        }
    }
}

impl From<ControlError> for CliError {
    fn from(e: ControlError) -> Self {
        match e {
            ControlError::Refused { message, hint } => CliError::Invalid { message, hint },
            ControlError::Engine(e) => e.into(),
        }
    }
}

/// The state: the running scheduler's open store when the command was forwarded to it,
/// else the state directory opened here.
pub fn open_store(cli: &Cli, streams: &Streams<'_>) -> Result<Store, CliError> {
    match &streams.remote {
        Some(remote) => Ok(remote.store.clone()),
        None => open_existing(cli.state()),
    }
}

/// The state in `dir`, which must exist: a command that reads or changes runs never creates
/// an empty state (a mistyped `--state` would otherwise report "no runs").
pub fn open_existing(dir: &std::path::Path) -> Result<Store, CliError> {
    if !Store::exists(dir) {
        return Err(CliError::Invalid {
            message: format!("no Sluice state in {}", dir.display()),
            hint: Some(
                "pass the scheduler's state folder with --state (or SLUICE_STATE); \
                 `sluice scheduler` and `sluice backfill` create it on their first start"
                    .into(),
            ),
        });
    }
    Ok(Store::open(dir)?)
}

/// A DAG the state knows, or an error naming the ones it does (closest first).
fn known_dag(store: &Store, dag: &str) -> Result<(), CliError> {
    if store.dag(dag)?.is_some() {
        return Ok(());
    }
    let known = store.dag_ids()?;
    let closest = known
        .iter()
        .min_by_key(|k| strsim::levenshtein(k, dag))
        .filter(|k| strsim::levenshtein(k, dag) <= dag.len().max(3) / 3 + 1);
    let hint = match (closest, known.is_empty()) {
        (Some(k), _) => format!(
            "did you mean `{k}`? DAGs in this state: {}",
            known.join(", ")
        ),
        (None, true) => "this state has no DAG yet".to_owned(),
        (None, false) => format!("DAGs in this state: {}", known.join(", ")),
    };
    Err(CliError::Invalid {
        message: format!("no DAG `{dag}` in the state"),
        hint: Some(hint),
    })
}

/// Sends a change to the running scheduler's loop and waits for its answer.
pub(super) fn ask(
    remote: &super::remote::Remote,
    make: impl FnOnce(std::sync::mpsc::Sender<sluice_runtime::scheduler::Reply>) -> Input,
) -> Result<String, CliError> {
    let (reply, answer) = std::sync::mpsc::channel();
    remote
        .sender
        .send(make(reply))
        .map_err(|_| CliError::Invalid {
            message: "the scheduler is shutting down".into(),
            hint: Some("run the command again once it stopped".into()),
        })?;
    answer
        .recv()
        .map_err(|_| CliError::Invalid {
            message: "the scheduler stopped before answering".into(),
            hint: None,
        })?
        .map_err(|(message, hint)| CliError::Invalid { message, hint })
}

/// Masks this process's secrets in what its tasks leave behind: its environment's values
/// named like secrets, the API and webhook tokens, the variables connections name for
/// their passwords.
fn install_masking(cli: &Cli) {
    let settings = &cli.settings;
    let mut secrets = sluice_runtime::masking::from_environment();
    secrets.extend(settings.api_token.iter().map(|t| t.expose().to_owned()));
    secrets.extend(
        settings
            .webhooks
            .iter()
            .filter_map(|w| w.token.as_ref().map(|t| t.expose().to_owned())),
    );
    // Connections from the file, and those given as SLUICE_CONN_<NAME> JSON.
    let from_environment: Vec<serde_json::Value> = std::env::vars()
        .filter(|(name, _)| name.starts_with("SLUICE_CONN_"))
        .filter_map(|(_, json)| serde_json::from_str(&json).ok())
        .collect();
    for connection in settings.connections.values().chain(&from_environment) {
        let named = connection.as_object().into_iter().flatten();
        for (field, value) in named {
            if field.ends_with("_env")
                && let Some(var) = value.as_str()
                && let Ok(secret) = std::env::var(var)
            {
                secrets.push(secret);
            }
        }
    }
    sluice_runtime::masking::install(secrets);
}

fn engine(cli: &Cli, mode: Mode, verbose: bool) -> Result<Engine, CliError> {
    install_masking(cli);
    let store = Store::open(cli.state())?;
    let mut config = cli.engine_config(mode);
    config.verbose = verbose;
    Ok(Engine::new(store, config)?)
}

pub fn time_arg(flag: &str, text: &str) -> Result<DateTime<Utc>, CliError> {
    parse_instant(text, chrono_tz::UTC).map_err(|e| CliError::Invalid {
        message: format!("{flag}: {e}"),
        hint: Some("write RFC 3339, e.g. 2025-09-01T00:00:00Z".into()),
    })
}

/// Sends SIGINT/SIGTERM to the engine as a graceful shutdown.
/// Where SIGINT/SIGTERM go: the running loop (a graceful stop), and a flag for whoever
/// waits outside a loop (an HA standby campaigning).
#[derive(Clone, Default)]
pub(super) struct Signals {
    pub stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// `ha step-down` came: the loop's stop is a hand-over, not the process's end.
    pub hand_over: std::sync::Arc<std::sync::atomic::AtomicBool>,
    engine: std::sync::Arc<std::sync::Mutex<Option<std::sync::mpsc::Sender<Input>>>>,
}

impl Signals {
    pub(super) fn install() -> Signals {
        let signals = Signals::default();
        let handle = signals.clone();
        std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(mut term) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                else {
                    return;
                };
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
                handle
                    .stop
                    .store(true, std::sync::atomic::Ordering::Release);
                if let Ok(engine) = handle.engine.lock()
                    && let Some(sender) = engine.as_ref()
                {
                    let _ = sender.send(Input::Shutdown);
                }
            });
        });
        signals
    }

    /// Signals now stop this loop (or it stops at once if one already came).
    fn attach(&self, sender: std::sync::mpsc::Sender<Input>) {
        if self.stop.load(std::sync::atomic::Ordering::Acquire) {
            let _ = sender.send(Input::Shutdown);
        }
        if let Ok(mut engine) = self.engine.lock() {
            *engine = Some(sender);
        }
    }

    fn detach(&self) {
        if let Ok(mut engine) = self.engine.lock() {
            *engine = None;
        }
    }
}

/// `sluice scheduler`
pub fn scheduler(
    cli: &Cli,
    grace: Option<u64>,
    not_before: Option<&str>,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let not_before = not_before
        .map(|text| time_arg("--not-before", text))
        .transpose()?;
    if let Some(problem) = cli.settings.insecure().into_iter().next() {
        return Err(CliError::Invalid {
            message: format!("refusing to start: {problem}"),
            hint: Some("`sluice config check` lists every such problem; docs/security.md".into()),
        });
    }
    sluice_runtime::logging::init(cli.settings.log_format, streams.color);
    install_masking(cli);
    let mut config = cli.engine_config(Mode::Scheduler);
    config.verbose = true;
    config.not_before = not_before.or(config.not_before);
    if let Some(grace) = grace {
        config.shutdown_grace = std::time::Duration::from_secs(grace);
    }
    let signals = Signals::install();
    if let Some(ha) = &cli.settings.ha {
        return super::ha::supervise(cli, ha, config, &signals);
    }
    let store = Store::open(cli.state())?;
    serve_term(cli, store, config, &signals)?;
    Ok(0)
}

/// Runs the loop with its control socket and API until it stops: `Ok(None)` after a
/// graceful shutdown, `Ok(Some(_))` when (with HA) the lease was lost.
pub(super) fn serve_term(
    cli: &Cli,
    store: Store,
    config: sluice_runtime::scheduler::EngineConfig,
    signals: &Signals,
) -> Result<Option<sluice_runtime::ha::Deposed>, CliError> {
    let mut engine = Engine::new(store, config)?;
    tracing::info!(
        "sluice scheduler: DAGs from {}, state in {} (Ctrl-C stops gracefully)",
        cli.dags().display(),
        cli.state().display()
    );
    signals.attach(engine.sender());
    let result = serve_engine(cli, &mut engine, signals);
    signals.detach();
    result
}

fn serve_engine(
    cli: &Cli,
    engine: &mut Engine,
    signals: &Signals,
) -> Result<Option<sluice_runtime::ha::Deposed>, CliError> {
    let group = match &cli.settings.socket_group {
        Some(name) => {
            Some(
                super::remote::socket_group(name).map_err(|message| CliError::Invalid {
                    message,
                    hint: Some("name an existing group, or remove scheduler.socket_group".into()),
                })?,
            )
        }
        None => None,
    };
    let socket = super::remote::serve(
        cli.state(),
        super::remote::Remote {
            store: engine.store().clone(),
            sender: engine.sender(),
            settings: std::sync::Arc::new(cli.settings.clone()),
            group,
            hand_over: cli.settings.ha.is_some().then(|| signals.hand_over.clone()),
        },
    )
    .map_err(|source| CliError::Io {
        path: super::remote::socket_path(cli.state()),
        source,
    })?;
    // Serves until the loop ends (a graceful stop, or a lost lease).
    let _api = match cli.settings.listen {
        Some(address) => {
            let server = sluice_server::serve(
                address,
                sluice_server::api::Api {
                    store: engine.store().clone(),
                    sender: engine.sender(),
                    access: sluice_server::api::auth::Access::of(&cli.settings),
                    max_backfill_intervals: cli.settings.max_backfill_intervals,
                    log: sluice_server::api::stderr_log(),
                    metrics: engine.metrics(),
                },
            )
            .map_err(|e| CliError::Invalid {
                message: format!("cannot listen on {address}: {e}"),
                hint: Some(
                    "set another address with --listen, SLUICE_LISTEN or `listen` in sluice.toml (`off` for none)"
                        .into(),
                ),
            })?;
            let guard = super::api_client::AddressGuard::write(
                cli.state(),
                &format!("http://{}", server.address),
            )
            .map_err(|source| CliError::Io {
                path: super::api_client::address_file(cli.state()),
                source,
            })?;
            tracing::info!(
                "sluice scheduler: API and web UI on http://{}/{}",
                server.address,
                if cli.settings.api_token.is_none() {
                    " (read-only: no API token configured)"
                } else {
                    ""
                }
            );
            Some((server, guard))
        }
        None => None,
    };
    let ended = match engine.run() {
        Ok(()) => None,
        Err(EngineError::Deposed(deposed)) => Some(deposed),
        Err(e) => return Err(e.into()),
    };
    drop(socket);
    if ended.is_none() {
        tracing::info!("sluice scheduler: stopped; state is consistent");
    }
    Ok(ended)
}

/// `sluice backfill`
#[allow(clippy::too_many_arguments)]
pub fn backfill(
    cli: &Cli,
    dag: &str,
    from: &str,
    to: &str,
    reprocess: ReprocessArg,
    max_active_runs: Option<usize>,
    dry_run: bool,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let from = time_arg("--from", from)?;
    let to = time_arg("--to", to)?;
    if dry_run {
        let (loaded, schedule) = super::dags::scheduled_dag(cli, dag, streams)?;
        // The scheduler's rule: clamped to the DAG's life, at most the configured count.
        let range = sluice_core::intervals::backfill_range(
            &loaded.dag,
            from,
            to,
            cli.settings.max_backfill_intervals,
        )
        .map_err(|e| CliError::Invalid {
            message: e.to_string(),
            hint: Some(e.hint().into()),
        })?;
        let intervals: Vec<_> = schedule
            .intervals(loaded.dag.timezone.tz(), range.from)
            .take_while(|i| i.end <= range.to)
            .collect();
        match cli.output {
            OutputFormat::Json => streams.json(&intervals)?,
            OutputFormat::Table => {
                for i in &intervals {
                    writeln!(streams.out, "{i}")?;
                }
                writeln!(
                    streams.err,
                    "{} interval(s) would run (dry run)",
                    intervals.len()
                )?;
            }
        }
        return Ok(0);
    }
    if let Some(remote) = streams.remote.clone() {
        let reprocess = reprocess.into();
        return backfill_in_scheduler(
            cli,
            &remote,
            dag,
            (from, to),
            reprocess,
            max_active_runs,
            streams,
        );
    }
    let mut engine = engine(
        cli,
        Mode::Backfill {
            dag: dag.to_owned(),
        },
        false,
    )?;
    let record = engine.start_backfill(dag, from, to, reprocess.into(), max_active_runs)?;
    Signals::install().attach(engine.sender());
    let bar = indicatif::ProgressBar::new(record.total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} intervals  {msg}  ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last = std::time::Instant::now();
    engine.run_with(&mut |e| {
        // Redrawing costs little, but not on every one of thousands of iterations a second.
        if last.elapsed() < std::time::Duration::from_millis(100) {
            return;
        }
        last = std::time::Instant::now();
        if let Some(p) = e.backfill_progress(dag) {
            bar.set_position(p.done() as u64);
            let waiting = e.waiting_on_gate(dag);
            let gate = if waiting > 0 {
                format!(" ({waiting} waiting on the gate)")
            } else {
                String::new()
            };
            // The chain: the consumers this backfill runs as their inputs complete.
            let downstream: String = e
                .downstream_progress(dag)
                .into_iter()
                .filter(|(_, running, to_rerun)| running + to_rerun > 0)
                .map(|(name, running, to_rerun)| {
                    format!(" · {name}: {running} running, {to_rerun} to rerun")
                })
                .collect();
            bar.set_message(format!(
                "{} failed, {} running{gate}{downstream}",
                p.failed, p.running
            ));
        }
    })?;
    let progress = engine.backfill_progress(dag).unwrap_or_default();
    bar.set_position(progress.done() as u64);
    bar.finish_and_clear();
    let interrupted = engine
        .backfill(dag)
        .is_some_and(|b| b.status == sluice_store::BackfillStatus::Running);
    report_backfill(cli, engine.store(), &record, interrupted, streams)
}

/// Prints a backfill's outcome from the ledger; exit 0 when every interval succeeded.
fn report_backfill(
    cli: &Cli,
    store: &Store,
    record: &sluice_store::BackfillRecord,
    interrupted: bool,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let ledger = store.ledger_between(&record.dag, record.from, record.to)?;
    let count = |status| ledger.iter().filter(|(_, e)| e.status == status).count();
    let (succeeded, failed) = (count(RunStatus::Success), count(RunStatus::Failed));
    let dag = &record.dag;
    match cli.output {
        OutputFormat::Json => streams.json(&serde_json::json!({
            "dag": dag,
            "from": format_instant(record.from),
            "to": format_instant(record.to),
            "intervals": record.total,
            "succeeded": succeeded,
            "failed": failed,
            "interrupted": interrupted,
        }))?,
        OutputFormat::Table => writeln!(
            streams.out,
            "backfill {dag}: {} interval(s), {succeeded} succeeded, {failed} failed{}",
            record.total,
            if interrupted {
                " (interrupted: run the same command again to resume)"
            } else {
                ""
            }
        )?,
    }
    Ok(if succeeded == record.total {
        0
    } else {
        super::EXIT_FAILURE
    })
}

/// A backfill handed to the running scheduler: start it there, follow it to the end.
fn backfill_in_scheduler(
    cli: &Cli,
    remote: &super::remote::Remote,
    dag: &str,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    reprocess: Reprocess,
    max_active_runs: Option<usize>,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let message = ask(remote, |reply| Input::Backfill {
        dag: dag.to_owned(),
        from,
        to,
        reprocess,
        max_active_runs,
        reply,
    })?;
    writeln!(
        streams.err,
        "{message}: handed to the running scheduler (pid {})",
        std::process::id()
    )?;
    let mut shown = None;
    let record = loop {
        let record = remote
            .store
            .backfill(dag)?
            .ok_or_else(|| CliError::Invalid {
                message: "the backfill vanished".into(),
                hint: None,
            })?;
        // A line each time the count moves, so a long backfill is seen advancing.
        let progress = sluice_store::reports::backfill_progress(&remote.store, &record)?;
        if shown != Some(progress) {
            writeln!(streams.err, "backfill {dag}: {progress}")?;
            shown = Some(progress);
        }
        if !record.status.is_open() {
            break record;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    report_backfill(cli, &remote.store, &record, false, streams)
}

/// `sluice dags trigger|pause|unpause`, `sluice clear`, `sluice tasks mark`, carried out
/// here: through the scheduler's loop when the command came in on its socket, else on the
/// state opened by this process.
pub fn change(cli: &Cli, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let command = cli.command.control()?.ok_or_else(not_a_change)?;
    let message = match &streams.remote {
        Some(remote) => ask(remote, |reply| Input::Control { command, reply })?,
        None => engine(cli, Mode::Scheduler, false)?.control(command)?,
    };
    streams.done(cli.output, &message)
}

/// `Command::control` and `Command::is_change` disagree: a bug, reported as one.
pub fn not_a_change() -> CliError {
    CliError::Invalid {
        message: "internal error: this command has no change to make".into(),
        hint: Some("please report it with the command line".into()),
    }
}

pub fn mark_state(state: MarkState) -> TaskState {
    match state {
        MarkState::Success => TaskState::Success,
        MarkState::Failed => TaskState::Failed,
    }
}

/// `sluice dags test DAG --logical-date T`: one run in memory, no scheduler, no state.
pub fn test(
    cli: &Cli,
    dag: &str,
    logical_date: &str,
    conf: Option<&str>,
    ignore_gate: bool,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let at = time_arg("--logical-date", logical_date)?;
    let conf = parse_conf(conf)?;
    let scratch = std::env::temp_dir().join(format!("sluice-test-{}-{}", dag, std::process::id()));
    let store = Store::temporary(&scratch)?;
    let mut config = cli.engine_config(Mode::Test {
        dag: dag.to_owned(),
    });
    config.verbose = false;
    config.ignore_gates = ignore_gate;
    let mut engine = Engine::new(store, config)?;
    let message = engine.control(Control::Trigger {
        dag: dag.to_owned(),
        logical_date: Some(at),
        conf,
    })?;
    writeln!(streams.err, "{message}")?;
    engine.run()?;
    let run = engine
        .store()
        .runs_of(dag)
        .next()
        .transpose()?
        .ok_or_else(|| CliError::Invalid {
            message: "the test run vanished".into(),
            hint: None,
        })?;
    let attempts = engine
        .store()
        .attempts_of_run(dag, run.state.logical_date)?;
    print_run(cli, &run, &attempts, streams)?;
    // Logs of a test run live in a scratch folder: show them inline, then drop them.
    if cli.output == OutputFormat::Table {
        for attempt in &attempts {
            if let Ok(text) = std::fs::read_to_string(&attempt.log) {
                writeln!(
                    streams.out,
                    "\n--- {} try {} ---\n{}",
                    attempt.task,
                    attempt.try_number,
                    text.trim_end()
                )?;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(if run.state.status == RunStatus::Success {
        0
    } else {
        super::EXIT_FAILURE
    })
}

pub fn runs(cli: &Cli, command: &RunsCommand, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let store = open_store(cli, streams)?;
    match command {
        RunsCommand::List { dag, status, limit } => {
            known_dag(&store, dag)?;
            let filter = match status {
                Some(s) => Some(RunStatus::parse(s).ok_or_else(|| CliError::Invalid {
                    message: format!("unknown run state `{s}`"),
                    hint: Some("queued, running, success or failed".into()),
                })?),
                None => None,
            };
            let mut runs: Vec<RunRecord> = store
                .runs_of(dag)
                .filter(|r| {
                    r.as_ref()
                        .map_or(true, |r| filter.is_none_or(|f| r.state.status == f))
                })
                .collect::<Result<_, _>>()?;
            runs.reverse();
            let total = runs.len();
            runs.truncate(*limit);
            match cli.output {
                OutputFormat::Json => {
                    let items: Vec<_> = runs.iter().map(RunSummary::of).collect();
                    streams.json(&items)?;
                }
                OutputFormat::Table => {
                    let rows: Vec<Vec<String>> = runs
                        .iter()
                        .map(|r| {
                            let counts = task_counts(r);
                            vec![
                                r.state.run_id.clone(),
                                r.state.status.to_string(),
                                table_time(r.state.interval.start),
                                table_time(r.state.interval.end),
                                counts,
                                r.ended_at.map_or("-".into(), table_time),
                            ]
                        })
                        .collect();
                    streams.table(
                        &[
                            "RUN",
                            "STATE",
                            "INTERVAL START",
                            "INTERVAL END",
                            "TASKS",
                            "ENDED",
                        ],
                        &rows,
                    )?;
                    if total > runs.len() {
                        writeln!(
                            streams.err,
                            "the newest {} of {total} run(s){}: `--limit {total}` lists them all{}",
                            runs.len(),
                            status
                                .as_ref()
                                .map(|s| format!(" in state {s}"))
                                .unwrap_or_default(),
                            if status.is_none() {
                                ", `--status failed` the failed ones"
                            } else {
                                ""
                            },
                        )?;
                    }
                }
            }
            Ok(0)
        }
        RunsCommand::Show { dag, run_id } => {
            let run = find_run(&store, dag, run_id)?;
            let attempts = store.attempts_of_run(dag, run.state.logical_date)?;
            print_run(cli, &run, &attempts, streams)?;
            Ok(0)
        }
    }
}

fn find_run(store: &Store, dag: &str, run_id: &str) -> Result<RunRecord, CliError> {
    let logical = sluice_runtime::scheduler::control::logical_date_of(run_id).ok_or_else(|| {
        CliError::Invalid {
            message: format!("`{run_id}` is not a run id"),
            hint: Some(format!("`sluice runs list {dag}` shows its run ids")),
        }
    })?;
    known_dag(store, dag)?;
    store
        .run(dag, logical)?
        .filter(|r| r.state.run_id == run_id)
        .ok_or_else(|| CliError::Invalid {
            message: format!("DAG `{dag}` has no run `{run_id}`"),
            hint: Some(format!("`sluice runs list {dag}` shows its run ids")),
        })
}

fn task_counts(run: &RunRecord) -> String {
    run.task_counts()
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_run(
    cli: &Cli,
    run: &RunRecord,
    attempts: &[sluice_store::AttemptRecord],
    streams: &mut Streams<'_>,
) -> Result<(), CliError> {
    match cli.output {
        OutputFormat::Json => {
            #[derive(serde::Serialize)]
            struct RunShown<'a> {
                #[serde(flatten)]
                run: RunSummary,
                tasks: &'a [sluice_core::run::TaskInstance],
                attempts: &'a [sluice_store::AttemptRecord],
            }
            streams.json(&RunShown {
                run: RunSummary::of(run),
                tasks: &run.state.tasks,
                attempts,
            })?;
        }
        OutputFormat::Table => {
            writeln!(
                streams.out,
                "{} {}  {}\n  interval {} → {}",
                run.state.dag_id,
                run.state.run_id,
                run.state.status,
                format_instant(run.state.interval.start),
                format_instant(run.state.interval.end)
            )?;
            if let Some(gate) = &run.gate {
                for line in gate_lines(gate) {
                    writeln!(streams.out, "  {line}")?;
                }
            }
            if let Some(inputs) = &run.inputs {
                writeln!(
                    streams.out,
                    "  inputs {}, decided {}: {}{}",
                    sluice_store::reports::name_of(&inputs.status),
                    format_instant(inputs.decided_at),
                    inputs.describe(),
                    if inputs.upstream_reruns > 0 {
                        format!(
                            "; rerun {} time(s) for rewritten inputs",
                            inputs.upstream_reruns
                        )
                    } else {
                        String::new()
                    }
                )?;
            }
            // In the order they ran, times to the second (`-o json` has them whole).
            let mut ordered: Vec<&sluice_store::AttemptRecord> = attempts.iter().collect();
            ordered.sort_by_key(|a| (a.started_at, a.try_number));
            let time = table_time;
            let rows: Vec<Vec<String>> = ordered
                .iter()
                .map(|a| {
                    vec![
                        a.task.clone(),
                        a.try_number.to_string(),
                        a.result.map_or("running".into(), |r| {
                            serde_json::to_value(r)
                                .ok()
                                .and_then(|v| v.as_str().map(str::to_owned))
                                .unwrap_or_default()
                        }),
                        time(a.started_at),
                        a.ended_at.map_or("-".into(), time),
                        a.dag_version.clone().unwrap_or_else(|| "-".into()),
                        a.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            writeln!(streams.out)?;
            streams.table(
                &[
                    "TASK", "TRY", "RESULT", "STARTED", "ENDED", "VERSION", "ERROR",
                ],
                &rows,
            )?;
            let waiting: Vec<String> = run
                .state
                .tasks
                .iter()
                .filter(|t| t.try_number == 0)
                .map(|t| t.state.name().to_owned())
                .collect();
            if !waiting.is_empty() {
                writeln!(
                    streams.out,
                    "\n{} task(s) not started: {}",
                    waiting.len(),
                    waiting.join(", ")
                )?;
            }
        }
    }
    Ok(())
}

/// A run's gate for people: its state, then the figures of the decision.
fn gate_lines(gate: &sluice_store::GateRecord) -> Vec<String> {
    use sluice_store::GateStatus;
    let state = match gate.status {
        GateStatus::Waiting => "closed (tasks deferred)",
        GateStatus::Open => "open",
        GateStatus::TimedOut => "timed out",
    };
    let mut lines = vec![format!(
        "gate {state}, decided {}, waiting since {}",
        format_instant(gate.decided_at),
        format_instant(gate.waiting_since)
    )];
    if let Some(reason) = &gate.reason {
        lines.push(format!("  {reason}"));
    }
    if let Some(f) = &gate.figures {
        lines.push(format!(
            "  watermark {} (needs {}), lag {}{}, {} behind{} ({}), {} partition(s){}{}",
            f.watermark.map_or("none".into(), format_instant),
            format_instant(f.required_watermark),
            f.lag,
            f.max_lag
                .map(|m| format!(" of at most {m}"))
                .unwrap_or_default(),
            milliseconds(f.time_lag_ms),
            f.max_lag_time_ms
                .map(|m| format!(" of at most {}", milliseconds(m)))
                .unwrap_or_default(),
            f.lag_status.name(),
            f.partitions,
            if f.idle_partitions.is_empty() {
                String::new()
            } else {
                format!(", idle {:?}", f.idle_partitions)
            },
            if f.behind_partitions.is_empty() {
                String::new()
            } else {
                format!(", behind {:?}", f.behind_partitions)
            },
        ));
        for g in &f.groups {
            lines.push(format!(
                "  group {}{}: {}",
                g.group,
                if g.required {
                    ""
                } else {
                    " (watched, not waited for)"
                },
                match (g.lag, g.time_lag_ms) {
                    (Some(lag), Some(ms)) => format!(
                        "lag {lag}{}, {} behind{} ({}){}",
                        g.max_lag
                            .map(|m| format!(" of at most {m}"))
                            .unwrap_or_default(),
                        milliseconds(ms),
                        g.max_lag_time_ms
                            .map(|m| format!(" of at most {}", milliseconds(m)))
                            .unwrap_or_default(),
                        g.lag_status.map_or("?", |s| s.name()),
                        if g.ok { "" } else { ", over its rule" }
                    ),
                    _ => "not seen".to_owned(),
                }
            ));
        }
        lines.push(format!("  seen at {}", format_instant(f.observed_at)));
    }
    if gate.late_events > 0 {
        lines.push(format!(
            "  {} late event(s) after it opened{}",
            gate.late_events,
            match gate.late_reprocessed {
                0 => String::new(),
                n => format!(", reprocessed {n} time(s) for them"),
            }
        ));
    }
    lines
}

pub fn tasks(
    cli: &Cli,
    command: &TasksCommand,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    match command {
        TasksCommand::Logs {
            dag,
            run_id,
            task,
            try_number,
        } => {
            let store = open_store(cli, streams)?;
            let run = find_run(&store, dag, run_id)?;
            let attempts = store.attempts_of_run(dag, run.state.logical_date)?;
            let attempt = attempts
                .iter()
                .filter(|a| a.task == *task)
                .filter(|a| try_number.is_none_or(|t| a.try_number == t))
                .max_by_key(|a| a.try_number)
                .ok_or_else(|| CliError::Invalid {
                    message: format!("no attempt of `{task}` in {run_id}"),
                    hint: Some("`sluice runs show DAG RUN_ID` lists the attempts".into()),
                })?;
            // Computed from the ids, never taken from the record: only `<state>/logs`.
            let path = store.log_path(dag, &run.state.run_id, task, attempt.try_number);
            let text =
                std::fs::read_to_string(&path).map_err(|source| CliError::Io { path, source })?;
            streams.print(&text)
        }
        TasksCommand::Mark { .. } => change(cli, streams),
    }
}

/// `sluice audit DAG --from --to`: the ledger against the schedule; exit 1 on any gap.
pub fn audit(
    cli: &Cli,
    dag: &str,
    from: &str,
    to: &str,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let from = time_arg("--from", from)?;
    let to = time_arg("--to", to)?;
    let (loaded, _) = super::dags::scheduled_dag(cli, dag, streams)?;
    let store = open_store(cli, streams)?;
    let report = sluice_store::reports::audit(&store, &loaded.dag, from, to).map_err(|e| {
        CliError::Invalid {
            hint: e.hint().map(str::to_owned),
            message: e.to_string(),
        }
    })?;
    match cli.output {
        OutputFormat::Json => streams.json(&report)?,
        OutputFormat::Table => {
            let table: Vec<Vec<String>> = report
                .entries
                .iter()
                .filter(|e| e.gap)
                .map(|e| {
                    vec![
                        table_time(e.start),
                        table_time(e.end),
                        if e.stale {
                            format!("{} (stale)", e.status)
                        } else {
                            e.status.clone()
                        },
                        e.run_id.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            if !table.is_empty() {
                streams.table(&["GAP START", "GAP END", "STATUS", "RUN"], &table)?;
            }
            writeln!(
                streams.out,
                "audit {dag} {} → {}: {} interval(s), {} processed, {} gap(s)",
                format_instant(from),
                format_instant(to),
                report.intervals,
                report.intervals - report.gaps,
                report.gaps
            )?;
        }
    }
    Ok(if report.gaps == 0 {
        0
    } else {
        super::EXIT_FAILURE
    })
}

/// Most stale intervals listed by `audit --stale` (the count goes on).
const MAX_STALE_LISTED: usize = 10_000;

/// `sluice audit --stale [DAG]`: the intervals that read an input written again since,
/// across DAGs; exit 1 if any.
pub fn audit_stale(
    cli: &Cli,
    dag: Option<&str>,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let store = open_store(cli, streams)?;
    let stale = store.stale_intervals(dag, MAX_STALE_LISTED)?;
    let total = match dag {
        Some(_) => stale.len(),
        None => store.stale_count(),
    };
    match cli.output {
        OutputFormat::Json => streams.json(&serde_json::json!({
            "stale": total,
            "intervals": stale,
        }))?,
        OutputFormat::Table => {
            let rows: Vec<Vec<String>> = stale
                .iter()
                .map(|s| {
                    vec![
                        s.dag.clone(),
                        table_time(s.interval_start),
                        table_time(s.interval_end),
                        table_time(s.since),
                        match (&s.held, s.rerun) {
                            (Some(why), _) => format!("held: {why}"),
                            (None, true) => "reruns when its inputs settle".into(),
                            (None, false) => "mark_stale: not rerun".into(),
                        },
                        s.describe(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                streams.table(
                    &["DAG", "START", "END", "STALE SINCE", "RERUN", "REWRITTEN"],
                    &rows,
                )?;
            }
            writeln!(
                streams.out,
                "{total} stale interval(s){}",
                dag.map(|d| format!(" of {d}")).unwrap_or_default()
            )?;
        }
    }
    Ok(if total == 0 { 0 } else { super::EXIT_FAILURE })
}

pub fn parse_conf(conf: Option<&str>) -> Result<serde_json::Value, CliError> {
    match conf {
        None => Ok(serde_json::Value::Null),
        Some(text) => serde_json::from_str(text).map_err(|e| CliError::Invalid {
            message: format!("--conf is not JSON: {e}"),
            hint: Some("e.g. --conf '{\"table\": \"events\"}'".into()),
        }),
    }
}

/// `sluice state check`
pub fn check(cli: &Cli, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let store = open_store(cli, streams)?;
    let problems = store.check()?;
    match cli.output {
        OutputFormat::Json => streams.json(&serde_json::json!({ "problems": problems }))?,
        OutputFormat::Table => {
            for problem in &problems {
                writeln!(streams.out, "{problem}")?;
            }
            writeln!(streams.out, "{} problem(s)", problems.len())?;
        }
    }
    Ok(if problems.is_empty() {
        0
    } else {
        super::EXIT_FAILURE
    })
}

/// Milliseconds as a duration in the DAG files' form (`2m30s`).
fn milliseconds(ms: i64) -> String {
    sluice_model::spec::Duration::from_std(std::time::Duration::from_millis(
        u64::try_from(ms).unwrap_or(0),
    ))
    .to_string()
}
