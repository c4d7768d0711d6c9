//! `sluice plugins run`: try a plugin locally, with the limits and outcome classes of a
//! scheduled attempt.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Cli, CliError, OutputFormat, Streams};
use crate::core::Outcome;
use crate::executor::wasm::{Limits, WasmRunner};

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Run a plugin once; exit 0 on success, 75 on a retryable failure, 1 on a fatal one.
    Run {
        /// The `.wasm` file.
        file: PathBuf,
        /// JSON file given to the plugin on stdin (default: `{}`).
        #[arg(long)]
        context: Option<PathBuf>,
        /// Wall-clock limit, e.g. `30s`.
        #[arg(long, default_value = "10m")]
        timeout: String,
        /// Memory limit, e.g. `256MiB`.
        #[arg(long, default_value = "256MiB")]
        memory: String,
    },
    /// Show a plugin's hash, imports, exports and the capabilities it needs.
    Inspect {
        /// The `.wasm` file.
        file: PathBuf,
    },
}

pub fn run(
    cli: &Cli,
    command: &PluginsCommand,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let (file, context, timeout, memory) = match command {
        PluginsCommand::Run {
            file,
            context,
            timeout,
            memory,
        } => (file, context, timeout, memory),
        PluginsCommand::Inspect { file } => return inspect(cli, file, streams),
    };
    let invalid = |message: String| CliError::Invalid {
        message,
        hint: None,
    };
    let timeout: crate::spec::Duration = timeout
        .parse()
        .map_err(|e| invalid(format!("--timeout `{timeout}`: {e}")))?;
    let memory: crate::spec::size::ByteSize = memory
        .parse()
        .map_err(|e| invalid(format!("--memory: {e}")))?;
    let wasm = std::fs::read(file).map_err(|source| CliError::Io {
        path: file.clone(),
        source,
    })?;
    let stdin = match context {
        Some(path) => std::fs::read(path).map_err(|source| CliError::Io {
            path: path.clone(),
            source,
        })?,
        None => b"{}".to_vec(),
    };
    let runner = WasmRunner::new().map_err(invalid)?;
    let limits = Limits {
        memory_bytes: usize::try_from(memory.0).unwrap_or(usize::MAX),
        timeout: Some(timeout.as_std()),
        ..Limits::default()
    };
    let result = runner.run(&wasm, stdin, limits);
    streams.err.write_all(result.stderr.as_bytes())?;
    let (class, code, reason) = match &result.outcome {
        Outcome::Success => ("success", 0, None),
        Outcome::Failed {
            retryable: true,
            reason,
        } => ("retryable", 75, Some(reason.clone())),
        Outcome::Failed {
            retryable: false,
            reason,
        } => ("fatal", super::EXIT_FAILURE, Some(reason.clone())),
    };
    match cli.output {
        OutputFormat::Json => streams.json(&serde_json::json!({
            "outcome": class, "reason": reason, "output": result.output,
        }))?,
        OutputFormat::Table => {
            writeln!(
                streams.out,
                "{class}{}",
                reason.map(|r| format!(": {r}")).unwrap_or_default()
            )?;
            if let Some(output) = &result.output {
                writeln!(
                    streams.out,
                    "{}",
                    serde_json::to_string_pretty(output).unwrap_or_default()
                )?;
            }
        }
    }
    Ok(code)
}

fn inspect(cli: &Cli, file: &std::path::Path, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let wasm = std::fs::read(file).map_err(|source| CliError::Io {
        path: file.to_owned(),
        source,
    })?;
    let info = crate::executor::wasm::inspect(&wasm).map_err(|message| CliError::Invalid {
        message,
        hint: Some("build plugins for wasm32-wasi (WASI preview 1) as command modules".into()),
    })?;
    match cli.output {
        OutputFormat::Json => streams.json(&info)?,
        OutputFormat::Table => {
            let list = |items: &[String]| {
                if items.is_empty() {
                    "-".to_owned()
                } else {
                    items.join(", ")
                }
            };
            writeln!(streams.out, "file          {}", file.display())?;
            writeln!(streams.out, "sha256        {}", info.sha256)?;
            writeln!(streams.out, "size          {} bytes", info.bytes)?;
            writeln!(
                streams.out,
                "command       {}",
                if info.command {
                    "yes (_start)"
                } else {
                    "no: not runnable as a task"
                }
            )?;
            writeln!(streams.out, "capabilities  {}", list(&info.capabilities))?;
            writeln!(streams.out, "imports       {}", list(&info.imports))?;
            writeln!(streams.out, "exports       {}", list(&info.exports))?;
        }
    }
    Ok(0)
}
