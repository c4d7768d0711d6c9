//! The `sluice` command line. Each command writes to the given streams and returns the
//! process exit code, so tests run commands in-process.

pub mod api_client;
pub mod client;
mod config;
mod dags;
mod ha;
mod output;
pub mod plugin_build;
mod plugins;
pub mod remote;
mod runs;
mod sla;
mod state;

use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use sluice_runtime::scheduler::Control;

pub use output::Streams;

/// Exit code of a command that ran and found a problem (invalid DAGs, unknown id).
pub const EXIT_FAILURE: i32 = 1;
/// Exit code for bad command-line usage (clap's convention).
pub const EXIT_USAGE: i32 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: a workflow DAG engine for batch data pipelines",
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Configuration file (default: ./sluice.toml when there is one).
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Folder of DAG files [default: ./dags].
    #[arg(long = "dags", global = true, env = "SLUICE_DAGS")]
    pub dags_arg: Option<PathBuf>,
    /// Folder of the scheduler's state (embedded database, logs) [default: ./.sluice].
    #[arg(long = "state", global = true, env = "SLUICE_STATE")]
    pub state_arg: Option<PathBuf>,
    /// Folder of built plugins (`<name>.wasm`); default: `plugins` beside the DAG folder.
    #[arg(long = "plugins", global = true, env = "SLUICE_PLUGINS")]
    pub plugins_arg: Option<PathBuf>,
    /// Log lines as text for people or JSON for log shippers.
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", value_enum)]
    pub log_format: Option<sluice_runtime::config::LogFormat>,
    /// The settings from the configuration file, the environment and these flags.
    #[arg(skip = sluice_runtime::config::Settings::defaults())]
    pub settings: sluice_runtime::config::Settings,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// The engine configuration for this command line.
    pub fn engine_config(
        &self,
        mode: sluice_runtime::scheduler::Mode,
    ) -> sluice_runtime::scheduler::EngineConfig {
        let settings = &self.settings;
        let mut config = sluice_runtime::scheduler::EngineConfig::new(settings.dags.clone(), mode);
        if let Some(plugins) = &settings.plugins {
            config.plugins_dir = plugins.clone();
        }
        config.shutdown_grace = settings.shutdown_grace;
        config.reload_every = settings.reload_every;
        config.not_before = settings.not_before;
        config.retention = settings.retention;
        config.max_backfill_intervals = settings.max_backfill_intervals;
        config.task_env = settings.task_env.clone();
        config.plugin_grants = settings.plugin_grants.clone();
        config.connections =
            sluice_runtime::connections::Connections::new(settings.connections.clone());
        config.webhooks = settings.webhooks.clone();
        config.pools = settings
            .pools
            .iter()
            .map(|(name, size)| (name.clone(), *size))
            .collect();
        config
    }

    /// Folder of DAG files.
    pub fn dags(&self) -> &std::path::Path {
        &self.settings.dags
    }

    /// Folder of the state.
    pub fn state(&self) -> &std::path::Path {
        &self.settings.state
    }

    /// Resolves the settings from the configuration file, the environment and the flags.
    pub(crate) fn load_settings(&mut self) -> Result<(), sluice_runtime::config::ConfigError> {
        let listen = match &self.command {
            Command::Scheduler { listen, .. } => listen.clone(),
            // clap reads it for the scheduler; `config check` shows what it would use.
            _ => std::env::var("SLUICE_LISTEN").ok(),
        };
        self.settings =
            sluice_runtime::config::Settings::load(&sluice_runtime::config::Overrides {
                config: self.config.clone(),
                dags: self.dags_arg.clone(),
                state: self.state_arg.clone(),
                plugins: self.plugins_arg.clone(),
                listen,
                api_token: std::env::var("SLUICE_API_TOKEN").ok(),
                log_format: self.log_format,
            })?;
        Ok(())
    }

    /// Where built plugins live.
    pub fn plugins_dir(&self) -> PathBuf {
        self.engine_config(sluice_runtime::scheduler::Mode::Scheduler)
            .plugins_dir
    }
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Check the store's consistency (unfinished-run index, ledger, attempts); exit 1 on any
    /// problem.
    Check,
    /// Write a consistent backup of the state to a new folder (taken inside a running
    /// scheduler's loop, between two iterations).
    Backup {
        /// A folder that does not exist yet (or is empty).
        #[arg(long)]
        to: PathBuf,
    },
    /// Restore a backup into the state folder (`--state`), which no scheduler may hold and
    /// which must have no database yet; then check it.
    Restore {
        /// The backup's folder.
        #[arg(long)]
        from: PathBuf,
    },
    /// Remove the runs (attempts, outputs, logs) that ended longer ago than a duration; the
    /// interval ledger stays. A running scheduler does this itself with
    /// `scheduler.retention` in sluice.toml; by hand, with no scheduler holding the state.
    Compact {
        /// How much history to keep, e.g. `90d`.
        #[arg(long)]
        older_than: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum SlaCommand {
    /// Latency (interval end → success) p50/p95/max of the DAG's scheduled runs, and the
    /// warnings and breaches raised with their notifications.
    Report {
        dag: String,
        /// First logical date (RFC 3339; default: 24 hours before --to).
        #[arg(long)]
        from: Option<String>,
        /// End of the range (RFC 3339; default: now).
        #[arg(long)]
        to: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum HaCommand {
    /// Who is active (instance, lease revision, API), and what was shipped (generation, last
    /// cut, newest snapshot): read from etcd and the shipping target of `[ha]`.
    Status,
    /// A planned hand-over: the active instance on this state folder stops dispatching,
    /// lets running attempts finish (the shutdown grace), ships its last changes, gives up
    /// the lease and stays on as a standby; a standby takes over at once.
    StepDown,
}

#[derive(Debug, Subcommand)]
pub enum ApiCommand {
    /// Print the OpenAPI document the scheduler serves at /api/v1/openapi.json.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration file (every problem with file:line:col) and print the
    /// settings it resolves to, secrets redacted; exit 1 on any problem.
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// For people.
    Table,
    /// For programs.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, list, inspect and preview DAGs.
    Dags {
        #[command(subcommand)]
        command: dags::DagsCommand,
    },
    /// Run the scheduler until SIGINT/SIGTERM: scheduled runs, backfills, retries, and the
    /// API and web UI.
    Scheduler {
        /// Seconds shutdown waits for running attempts before stopping them [default: the
        /// configuration's `scheduler.shutdown_grace`, 30 s].
        #[arg(long)]
        grace: Option<u64>,
        /// Address of the API and web UI (HOST:PORT, or `off`) [default: 127.0.0.1:8080].
        #[arg(long, env = "SLUICE_LISTEN")]
        listen: Option<String>,
        /// Create no scheduled run for an interval starting before this instant (RFC 3339),
        /// even with catchup: a new deployment of DAGs whose `start` is long past. Earlier
        /// intervals stay unprocessed (`sluice audit` shows them) until backfilled.
        #[arg(long, env = "SLUICE_NOT_BEFORE")]
        not_before: Option<String>,
    },
    /// High availability: the deployment's active instance and shipped state (docs/ha.md).
    Ha {
        #[command(subcommand)]
        command: HaCommand,
    },
    /// Run a DAG over a range of intervals (in this process when no scheduler runs).
    Backfill {
        dag: String,
        /// First instant of the range (RFC 3339).
        #[arg(long)]
        from: String,
        /// End of the range (RFC 3339); only whole intervals inside it run.
        #[arg(long)]
        to: String,
        /// Which intervals that already have a run to run again.
        #[arg(long, value_enum, default_value_t = runs::ReprocessArg::None)]
        reprocess: runs::ReprocessArg,
        /// Runs of this backfill at once (default: the DAG's `max_active_runs`).
        #[arg(long)]
        max_active_runs: Option<usize>,
        /// Print the intervals that would run, and stop.
        #[arg(long)]
        dry_run: bool,
    },
    /// Inspect runs.
    Runs {
        #[command(subcommand)]
        command: runs::RunsCommand,
    },
    /// Task instance logs; mark a task instance by hand.
    Tasks {
        #[command(subcommand)]
        command: runs::TasksCommand,
    },
    /// Reset task instances of a run so they run again.
    Clear {
        dag: String,
        #[arg(long = "run")]
        run_id: String,
        /// Only these tasks (repeatable; default: all).
        #[arg(long = "task")]
        tasks: Vec<String>,
        /// Also everything downstream of them.
        #[arg(long)]
        downstream: bool,
        /// Only task instances that failed.
        #[arg(long)]
        failed_only: bool,
    },
    /// Every interval of a range with its ledger status; exit 1 on any gap (a stale
    /// interval, one that read an input written again since, is a gap). `--stale`: every
    /// stale interval, across DAGs (or of DAG); exit 1 if any.
    Audit {
        #[arg(required_unless_present = "stale")]
        dag: Option<String>,
        #[arg(long, required_unless_present = "stale")]
        from: Option<String>,
        #[arg(long, required_unless_present = "stale")]
        to: Option<String>,
        /// List the intervals that are out of date across DAGs, with what rewrote their inputs.
        #[arg(long, conflicts_with_all = ["from", "to"])]
        stale: bool,
    },
    /// Processing-latency SLA reports.
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// Try WebAssembly plugins locally.
    Plugins {
        #[command(subcommand)]
        command: plugins::PluginsCommand,
    },
    /// Check the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Inspect the state directory.
    State {
        #[command(subcommand)]
        command: StateCommand,
    },
    /// Print the JSON Schema of DAG files (for editors' autocompletion).
    Schema,
    /// The REST API's description.
    Api {
        #[command(subcommand)]
        command: ApiCommand,
    },
    /// Print a shell completion script, e.g. `sluice completions bash > /etc/bash_completion.d/sluice`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// The change a command asks of the scheduler, in the one model every door takes (the
    /// REST API, the control socket, the state opened here); `None` for commands that change
    /// nothing this way. Arguments are checked here, once.
    pub fn control(&self) -> Result<Option<Control>, CliError> {
        Ok(Some(match self {
            Command::Dags {
                command:
                    dags::DagsCommand::Trigger {
                        dag,
                        conf,
                        logical_date,
                    },
            } => Control::Trigger {
                dag: dag.clone(),
                logical_date: logical_date
                    .as_deref()
                    .map(|t| runs::time_arg("--logical-date", t))
                    .transpose()?,
                conf: runs::parse_conf(conf.as_deref())?,
            },
            Command::Dags {
                command: dags::DagsCommand::Pause { dag },
            } => Control::Pause {
                dag: dag.clone(),
                paused: true,
            },
            Command::Dags {
                command: dags::DagsCommand::Unpause { dag },
            } => Control::Pause {
                dag: dag.clone(),
                paused: false,
            },
            Command::Clear {
                dag,
                run_id,
                tasks,
                downstream,
                failed_only,
            } => Control::Clear {
                dag: dag.clone(),
                run_id: run_id.clone(),
                tasks: tasks.clone(),
                downstream: *downstream,
                failed_only: *failed_only,
            },
            Command::Tasks {
                command:
                    runs::TasksCommand::Mark {
                        dag,
                        run_id,
                        task,
                        state,
                    },
            } => Control::Mark {
                dag: dag.clone(),
                run_id: run_id.clone(),
                task: task.clone(),
                state: runs::mark_state(state.ok_or_else(|| CliError::Invalid {
                    message: format!("say how to mark `{task}`: success or failed"),
                    hint: Some(format!(
                        "`sluice tasks mark {dag} {run_id} {task} success` (the mark comes \
                         last; `--state` names the state folder, not the task's state)"
                    )),
                })?),
            },
            _ => return Ok(None),
        }))
    }

    /// Whether the command changes the scheduler's state: the commands `control` models,
    /// and a backfill that is not a dry run.
    pub fn is_change(&self) -> bool {
        match self {
            Command::Backfill { dry_run, .. } => !dry_run,
            Command::Clear { .. } => true,
            Command::Dags { command } => matches!(
                command,
                dags::DagsCommand::Trigger { .. }
                    | dags::DagsCommand::Pause { .. }
                    | dags::DagsCommand::Unpause { .. }
            ),
            Command::Tasks { command } => matches!(command, runs::TasksCommand::Mark { .. }),
            _ => false,
        }
    }

    /// Whether a running scheduler carries the command out when it comes in on the control
    /// socket: the commands on its state, and a backup (taken by its loop).
    pub fn runs_in_scheduler(&self) -> bool {
        self.needs_state()
            || matches!(
                self,
                Command::State {
                    command: StateCommand::Backup { .. }
                } | Command::Ha {
                    command: HaCommand::StepDown
                }
            )
    }

    /// Whether the command reads or changes the scheduler's state.
    pub fn needs_state(&self) -> bool {
        match self {
            Command::Backfill { dry_run, .. } => !dry_run,
            Command::Runs { .. }
            | Command::Tasks { .. }
            | Command::Clear { .. }
            | Command::Audit { .. }
            | Command::Sla { .. } => true,
            // A restore opens a state no process holds; a backup forwards itself (with its
            // path made absolute for the scheduler's working directory).
            Command::State { command } => matches!(command, StateCommand::Check),
            Command::Dags { command } => command.needs_state(),
            Command::Scheduler { .. }
            | Command::Ha { .. }
            | Command::Schema
            | Command::Api { .. }
            | Command::Completions { .. }
            | Command::Config { .. }
            | Command::Plugins { .. } => false,
        }
    }
}

/// Runs the command line against the process's stdout and stderr.
pub fn main(args: impl IntoIterator<Item = OsString>) -> i32 {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Unlocked handles: a long-running command (the scheduler) must not hold the stderr lock
    // that its other threads (the API's, the notifier's) log through.
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    let mut streams = Streams {
        out: &mut stdout,
        err: &mut stderr,
        color,
        remote: None,
    };
    run(args, &mut streams)
}

/// Runs the command line against any streams.
pub fn run(args: impl IntoIterator<Item = OsString>, streams: &mut Streams<'_>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    let mut cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            let text = if streams.color {
                e.render().ansi().to_string()
            } else {
                e.render().to_string()
            };
            let (stream, code) = if e.use_stderr() {
                (&mut *streams.err, EXIT_USAGE)
            } else {
                (&mut *streams.out, 0)
            };
            // Nothing useful to do if the terminal is gone.
            let _ = stream.write_all(text.as_bytes());
            return code;
        }
    };
    if streams.remote.is_some() && !cli.command.runs_in_scheduler() {
        let _ = writeln!(
            streams.err,
            "error: the control socket runs only commands on the scheduler's state\n  \
             help: run this command in your own process, without the socket"
        );
        return EXIT_USAGE;
    }
    if let Command::Config {
        command: ConfigCommand::Check,
    } = &cli.command
        && let Some(code) = config::file_problems(&cli, streams)
    {
        return code;
    }
    let loaded = match &streams.remote {
        // Forwarded to the scheduler: only a command on its state, with its own settings,
        // so nothing a client sends (`--config`, `--dags`, the environment) changes them.
        Some(remote) => {
            cli.settings = remote.settings.as_ref().clone();
            Ok(())
        }
        None => cli.load_settings(),
    };
    if let Err(e) = loaded {
        return config::report_error(&e, streams);
    }
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_str().map(str::to_owned))
        .collect::<Option<_>>()
        // A command line that is not UTF-8 cannot be forwarded: run it here.
        .unwrap_or_default();
    // Arguments are checked before any door is chosen or any state opened.
    if let Err(e) = cli.command.control() {
        return finish(Err(e), streams);
    }
    let client = client::choose(&cli, &args, streams);
    let result = client.execute(&cli, &args, streams);
    finish(result, streams)
}

/// The exit code of a command's result, its error printed with what to do.
fn finish(result: Result<i32, CliError>, streams: &mut Streams<'_>) -> i32 {
    match result {
        Ok(code) => code,
        Err(e) => {
            let _ = writeln!(streams.err, "error: {e}");
            if let Some(help) = e.help() {
                let _ = writeln!(streams.err, "  help: {help}");
            }
            EXIT_FAILURE
        }
    }
}

/// A command that could not do its job, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no DAG `{dag}` in {folder}")]
    UnknownDag {
        dag: String,
        folder: PathBuf,
        known: Vec<String>,
    },
    #[error("DAG `{dag}` has no task `{task}`")]
    UnknownTask {
        dag: String,
        task: String,
        known: Vec<String>,
    },
    #[error("{message}")]
    Invalid {
        message: String,
        hint: Option<String>,
    },
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn help(&self) -> Option<String> {
        match self {
            CliError::UnknownDag { dag, known, .. } => Some(
                match sluice_model::spec::suggest::closest(dag, known.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None if known.is_empty() => {
                        "the folder has no valid DAG; check `--dags` and run `sluice dags validate`"
                            .into()
                    }
                    None => format!("DAGs: {}", known.join(", ")),
                },
            ),
            CliError::UnknownTask { task, known, .. } => Some(
                match sluice_model::spec::suggest::closest(task, known.iter().map(String::as_str)) {
                    Some(near) => format!("did you mean `{near}`?"),
                    None => format!("tasks: {}", known.join(", ")),
                },
            ),
            CliError::Invalid { hint, .. } => hint.clone(),
            CliError::Io { .. } | CliError::Output(_) => None,
        }
    }
}
