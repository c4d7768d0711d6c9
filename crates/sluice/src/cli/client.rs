//! One client interface for every command: a command is executed through exactly one
//! [`Client`], chosen once by [`choose`]. Three implement it:
//!
//! - [`ApiClient`]: a running scheduler's REST API, for changes and backfills, when there is
//!   a token to call it with (the same auth, checks and answers as any other caller);
//! - [`Socket`]: a running scheduler's control socket (`<state>/control.sock`), which only
//!   someone with access to the state folder reaches; the command runs inside the
//!   scheduler, against its open store and through its loop;
//! - [`Local`]: this process, which opens the state itself when no scheduler holds it (or,
//!   inside the scheduler, uses the store it was handed).
//!
//! The command model is [`Command`] with its change as a [`Control`] (`Command::control`),
//! checked once; each door turns that model into its own transport.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use clap::CommandFactory;

use super::api_client::ApiClient;
use super::{
    ApiCommand, Cli, CliError, Command, ConfigCommand, HaCommand, SlaCommand, StateCommand, Streams,
};
use super::{dags, plugins, runs, sla, state};

/// Where a command is carried out.
pub trait Client {
    /// Runs the command; its exit code.
    fn execute(
        &self,
        cli: &Cli,
        args: &[String],
        streams: &mut Streams<'_>,
    ) -> Result<i32, CliError>;
}

/// The door a command takes: the API for changes when a scheduler serves one and a token
/// is set, else the control socket when a scheduler listens on it, else this process.
pub fn choose(cli: &Cli, args: &[String], streams: &Streams<'_>) -> Box<dyn Client> {
    // Inside the scheduler already, or a command that never touches the state.
    if streams.remote.is_some() || !cli.command.needs_state() {
        return Box::new(Local);
    }
    // `dags list` with a folder named (`--dags`, SLUICE_DAGS) lists that folder here; only
    // without one does it show the running scheduler's.
    if cli.dags_arg.is_some()
        && matches!(
            cli.command,
            Command::Dags {
                command: dags::DagsCommand::List
            }
        )
    {
        return Box::new(Local);
    }
    if cli.command.is_change()
        && let Some(api) = ApiClient::discover(cli.state(), cli.settings.api_token.as_ref())
    {
        return Box::new(api);
    }
    if !args.is_empty()
        && let Some(socket) = Socket::connect(cli.state())
    {
        return Box::new(socket);
    }
    Box::new(Local)
}

impl Client for ApiClient {
    fn execute(
        &self,
        cli: &Cli,
        _args: &[String],
        streams: &mut Streams<'_>,
    ) -> Result<i32, CliError> {
        if let Command::Backfill {
            dag,
            from,
            to,
            reprocess,
            max_active_runs,
            dry_run: false,
        } = &cli.command
        {
            return self.backfill(
                dag,
                (from, to),
                *reprocess,
                *max_active_runs,
                cli.output,
                streams,
            );
        }
        let control = cli.command.control()?.ok_or_else(runs::not_a_change)?;
        let message = self.control(&control)?;
        streams.done(cli.output, &message)
    }
}

/// A running scheduler's control socket, connected.
pub struct Socket(UnixStream);

#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SocketRequest {
    pub args: Vec<String>,
}

/// One line of the scheduler's answer: lines without a `code` carry standard error as the
/// command writes it (a backfill's progress), the last one has the exit code and the rest.
#[derive(serde::Serialize, serde::Deserialize)]
pub(super) struct SocketResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Socket {
    /// The scheduler holding `state`, if one listens.
    pub fn connect(state: &std::path::Path) -> Option<Socket> {
        UnixStream::connect(super::remote::socket_path(state))
            .ok()
            .map(Socket)
    }

    /// Runs the command line `args` in the scheduler; its output is written to `streams`.
    pub fn forward(&self, args: &[String], streams: &mut Streams<'_>) -> Result<i32, CliError> {
        let stopped = |e: std::io::Error| CliError::Invalid {
            message: format!("the scheduler's control socket failed: {e}"),
            hint: Some(
                "is the scheduler still running? Run the command again: once it stopped, the \
                 command opens the state itself"
                    .into(),
            ),
        };
        let request = serde_json::to_string(&SocketRequest {
            args: args.to_vec(),
        })
        .map_err(|e| stopped(e.into()))?;
        let mut connection = &self.0;
        writeln!(connection, "{request}").map_err(stopped)?;
        let mut answers = BufReader::new(&self.0);
        loop {
            let mut line = String::new();
            if answers.read_line(&mut line).map_err(stopped)? == 0 {
                return Err(stopped(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let response: SocketResponse =
                serde_json::from_str(&line).map_err(|e| stopped(e.into()))?;
            streams.out.write_all(response.stdout.as_bytes())?;
            streams.err.write_all(response.stderr.as_bytes())?;
            streams.err.flush()?;
            if let Some(code) = response.code {
                return Ok(code);
            }
        }
    }
}

impl Client for Socket {
    fn execute(
        &self,
        _cli: &Cli,
        args: &[String],
        streams: &mut Streams<'_>,
    ) -> Result<i32, CliError> {
        self.forward(args, streams)
    }
}

/// This process: the state opened here, or the scheduler's own when the command came in on
/// its control socket.
pub struct Local;

impl Client for Local {
    fn execute(
        &self,
        cli: &Cli,
        _args: &[String],
        streams: &mut Streams<'_>,
    ) -> Result<i32, CliError> {
        match &cli.command {
            Command::Dags { command } => dags::run(cli, command, streams),
            Command::Schema => streams.print(&sluice_model::spec::schema::dag_schema_json()),
            Command::Api {
                command: ApiCommand::Openapi,
            } => streams
                .json(&sluice_server::api::openapi::document())
                .map(|()| 0),
            Command::Scheduler {
                grace, not_before, ..
            } => runs::scheduler(cli, *grace, not_before.as_deref(), streams),
            Command::Config {
                command: ConfigCommand::Check,
            } => super::config::show(cli, streams),
            Command::Ha {
                command: HaCommand::Status,
            } => super::ha::status(cli, streams),
            Command::Ha {
                command: HaCommand::StepDown,
            } => super::ha::step_down(cli, streams),
            Command::Backfill {
                dag,
                from,
                to,
                reprocess,
                max_active_runs,
                dry_run,
            } => runs::backfill(
                cli,
                dag,
                from,
                to,
                *reprocess,
                *max_active_runs,
                *dry_run,
                streams,
            ),
            Command::Runs { command } => runs::runs(cli, command, streams),
            Command::Tasks { command } => runs::tasks(cli, command, streams),
            Command::Clear { .. } => runs::change(cli, streams),
            Command::Audit {
                dag,
                from,
                to,
                stale,
            } => match (stale, dag, from, to) {
                (true, dag, _, _) => runs::audit_stale(cli, dag.as_deref(), streams),
                (false, Some(dag), Some(from), Some(to)) => {
                    runs::audit(cli, dag, from, to, streams)
                }
                _ => Err(CliError::Invalid {
                    message: "`audit` needs DAG, --from and --to (or --stale)".into(),
                    hint: Some("e.g. `sluice audit events_aggregation_15m --from 2025-09-01 --to 2025-09-02`, or `sluice audit --stale`".into()),
                }),
            },
            Command::Sla {
                command: SlaCommand::Report { dag, from, to },
            } => sla::report(cli, dag, from.as_deref(), to.as_deref(), streams),
            Command::State {
                command: StateCommand::Check,
            } => runs::check(cli, streams),
            Command::State {
                command: StateCommand::Backup { to },
            } => state::backup(cli, to, streams),
            Command::State {
                command: StateCommand::Restore { from },
            } => state::restore(cli, from, streams),
            Command::State {
                command: StateCommand::Compact { older_than },
            } => state::compact(cli, older_than, streams),
            Command::Plugins { command } => plugins::run(cli, command, streams),
            Command::Completions { shell } => {
                let mut command = Cli::command();
                clap_complete::generate(*shell, &mut command, "sluice", &mut *streams.out);
                Ok(0)
            }
        }
    }
}
