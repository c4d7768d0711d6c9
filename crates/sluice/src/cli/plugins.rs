//! `sluice plugins build|run|inspect`: build plugins, try one locally with the limits and
//! outcome classes of a scheduled attempt, and see what a module needs.

use std::path::PathBuf;

use clap::Subcommand;

use super::{Cli, CliError, OutputFormat, Streams};
use sluice_core::Outcome;
use sluice_runtime::executor::wasm::{
    Grants, Invocation, Limits, Plugin, RunnerConfig, WasmRunner,
};

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
        /// Grant a capability, as a task's `capabilities` would: `kv` (a scratch store,
        /// discarded after the run), `clickhouse=CONN`, `dir=HOST:GUEST[:rw]`, `env=NAME`.
        /// Repeatable.
        #[arg(long = "grant", value_name = "CAPABILITY")]
        grants: Vec<String>,
    },
    /// Build plugin sources (Rust crates or C folders) to `<plugins>/<name>.wasm`.
    Build {
        /// Plugin folders, or folders of them (default: `plugins`).
        paths: Vec<PathBuf>,
        /// Where the modules go (default: the `--plugins` folder).
        #[arg(long)]
        out: Option<PathBuf>,
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
    let (file, context, timeout, memory, grants) = match command {
        PluginsCommand::Run {
            file,
            context,
            timeout,
            memory,
            grants,
        } => (file, context, timeout, memory, grants),
        PluginsCommand::Inspect { file } => return inspect(cli, file, streams),
        PluginsCommand::Build { paths, out } => return build(cli, paths, out.as_deref(), streams),
    };
    let invalid = |message: String| CliError::Invalid {
        message,
        hint: None,
    };
    let timeout: sluice_model::spec::Duration = timeout
        .parse()
        .map_err(|e| invalid(format!("--timeout `{timeout}`: {e}")))?;
    let memory: sluice_model::spec::size::ByteSize = memory
        .parse()
        .map_err(|e| invalid(format!("--memory: {e}")))?;
    let wasm = std::fs::read(file).map_err(|source| CliError::Io {
        path: file.clone(),
        source,
    })?;
    let context: serde_json::Value = match context {
        Some(path) => {
            let bytes = std::fs::read(path).map_err(|source| CliError::Io {
                path: path.clone(),
                source,
            })?;
            serde_json::from_slice(&bytes).map_err(|e| CliError::Invalid {
                message: format!("{}: not JSON: {e}", path.display()),
                hint: Some("the context is one JSON object: dag, run_id, task, try_number, logical_date, data_interval, params, outputs, config".into()),
            })?
        }
        None => serde_json::json!({}),
    };
    let grants = Grants::parse(grants).map_err(invalid)?;
    // `kv` writes go to a scratch store so trying a plugin never touches a scheduler's state.
    let scratch = std::env::temp_dir().join(format!("sluice-plugins-run-{}", std::process::id()));
    let kv: Option<std::sync::Arc<dyn sluice_runtime::executor::wasm::KeyValue>> = if grants.kv {
        Some(std::sync::Arc::new(
            sluice_store::Store::temporary(&scratch)?.kv(),
        ))
    } else {
        None
    };
    let runner = WasmRunner::with_config(RunnerConfig {
        kv,
        ..RunnerConfig::default()
    })
    .map_err(invalid)?;
    let limits = Limits {
        memory_bytes: usize::try_from(memory.0).unwrap_or(usize::MAX),
        timeout: Some(timeout.as_std()),
        ..Limits::default()
    };
    let result = runner.invoke(
        &Plugin::new(wasm),
        Invocation::of_context(&context, limits, grants),
    );
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
    let info =
        sluice_runtime::executor::wasm::inspect(&wasm).map_err(|message| CliError::Invalid {
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
            writeln!(streams.out, "optional      {}", list(&info.optional))?;
            writeln!(streams.out, "imports       {}", list(&info.imports))?;
            writeln!(streams.out, "exports       {}", list(&info.exports))?;
        }
    }
    Ok(0)
}

fn build(
    cli: &Cli,
    paths: &[PathBuf],
    out: Option<&std::path::Path>,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    use super::plugin_build::{build, find_sources};
    let out = out.map_or_else(|| cli.plugins_dir(), std::path::Path::to_owned);
    let paths = if paths.is_empty() {
        vec![PathBuf::from("plugins")]
    } else {
        paths.to_vec()
    };
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| PathBuf::from("target"), PathBuf::from)
        .join("plugins");
    let mut failures = 0;
    for path in &paths {
        let sources = find_sources(path).map_err(|message| CliError::Invalid {
            message,
            hint: None,
        })?;
        if sources.is_empty() {
            writeln!(
                streams.err,
                "{}: no plugin sources (a Cargo.toml or .c files)",
                path.display()
            )?;
            failures += 1;
        }
        for source in sources {
            let started = std::time::Instant::now();
            match build(&source, &out, &target_dir) {
                Ok(wasm) => {
                    let size = std::fs::metadata(&wasm).map(|m| m.len()).unwrap_or(0);
                    writeln!(
                        streams.out,
                        "built {} ({} KiB, {:.1} s)",
                        wasm.display(),
                        size >> 10,
                        started.elapsed().as_secs_f64()
                    )?;
                }
                Err(e) => {
                    writeln!(streams.err, "{e}")?;
                    failures += 1;
                }
            }
        }
    }
    Ok(if failures == 0 {
        0
    } else {
        super::EXIT_FAILURE
    })
}
