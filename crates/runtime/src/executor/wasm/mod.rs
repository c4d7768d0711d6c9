//! `type: wasm`: a WASI preview 1 command module run in wasmtime, sandboxed.
//!
//! The task context goes in as JSON on stdin; stdout (bounded) is the task's JSON output;
//! stderr and the host `log` function go to the attempt log. Exit 0 succeeds, 75
//! (EX_TEMPFAIL) is a retryable failure, other codes and traps are fatal — except hitting
//! the wall-clock timeout (epoch interruption) or the memory limit, which are retryable and
//! reported as such. The module sees no files, sockets, environment variables or arguments
//! beyond what the task's `capabilities` grant.
//!
//! - [`runner`]: compile, cache (memory and [`cache`] on disk), instantiate and run;
//! - [`host`]: the `sluice` host functions and their calling protocol;
//! - [`grants`]: turning `capabilities` into the WASI context and the linked functions;
//! - [`inspect`]: what a module imports and needs granted.

pub mod cache;
pub mod grants;
pub mod host;
pub mod inspect;
mod ports;
pub mod runner;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

pub use grants::{GrantPolicy, Grants};
pub use host::LinkSet;
pub use host::{HostCallError, KeyValue, QueryService};
pub use inspect::{ModuleInfo, capability_of, inspect, optional_capabilities, sha256_hex};
pub use runner::{
    Invocation, Limits, Plugin, Prepared, RETRYABLE_EXIT, RunResult, RunnerConfig, WasmRunner,
};

/// Largest plugin read: an SDK plugin is well under 10 MiB.
pub const MAX_PLUGIN_BYTES: usize = 64 << 20;

use super::{Attempt, Executor, Report, Reporter};
use sluice_core::Outcome;
use sluice_model::spec::TaskKind;

/// Finds a plugin: a path to a `.wasm` file, or a name in the plugins folder.
pub fn resolve(plugin: &str, plugins_dir: &Path) -> PathBuf {
    if plugin.ends_with(".wasm") || plugin.contains('/') {
        PathBuf::from(plugin)
    } else {
        plugins_dir.join(format!("{plugin}.wasm"))
    }
}

/// Plugin files as last read, so each attempt does not re-read and re-hash the module.
#[derive(Default)]
struct PluginFiles {
    seen: Mutex<HashMap<PathBuf, (u64, SystemTime, Plugin)>>,
}

impl PluginFiles {
    fn load(&self, path: &Path) -> std::io::Result<Plugin> {
        if !std::fs::metadata(path)?.is_file() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file: it is not read",
            ));
        }
        let meta = std::fs::metadata(path)?;
        let stamp = (meta.len(), meta.modified()?);
        if let Some((len, modified, plugin)) =
            self.seen.lock().ok().and_then(|s| s.get(path).cloned())
            && (len, modified) == stamp
        {
            return Ok(plugin);
        }
        // A plugin path is the DAG author's: a FIFO or `/dev/zero` must not hang or flood
        // the scheduler.
        let plugin = Plugin::new(sluice_model::spec::load::read_regular_file(
            path,
            MAX_PLUGIN_BYTES,
        )?);
        if let Ok(mut seen) = self.seen.lock() {
            seen.insert(path.to_owned(), (stamp.0, stamp.1, plugin.clone()));
        }
        Ok(plugin)
    }
}

/// The executor: plugin runs on tokio's blocking pool (WASI p1 blocks).
pub struct WasmExecutor {
    /// Started on the first wasm task, so schedulers without one pay nothing (no engine,
    /// no epoch ticker thread). Without fuel metering, which costs ~10% of run time.
    runner: OnceLock<Result<WasmRunner, String>>,
    /// For tasks that set `fuel`: the same with fuel metering.
    metered: OnceLock<Result<WasmRunner, String>>,
    runner_config: RunnerConfig,
    runtime: tokio::runtime::Handle,
    plugins_dir: PathBuf,
    files: Arc<PluginFiles>,
}

impl WasmExecutor {
    pub fn new(
        runtime: tokio::runtime::Handle,
        plugins_dir: PathBuf,
        runner_config: RunnerConfig,
    ) -> Self {
        WasmExecutor {
            runner: OnceLock::new(),
            metered: OnceLock::new(),
            runner_config,
            runtime,
            plugins_dir,
            files: Arc::default(),
        }
    }
}

impl Executor for WasmExecutor {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let metered = matches!(&attempt.kind, TaskKind::Wasm(task) if task.fuel.is_some());
        let slot = if metered { &self.metered } else { &self.runner };
        let runner = slot
            .get_or_init(|| {
                WasmRunner::with_config(RunnerConfig {
                    fuel_metering: metered,
                    ..self.runner_config.clone()
                })
            })
            .clone();
        let plugins_dir = self.plugins_dir.clone();
        let files = self.files.clone();
        let policy = self.runner_config.policy.clone();
        self.runtime.spawn_blocking(move || {
            let result = match (runner, &attempt.kind) {
                (Ok(runner), TaskKind::Wasm(task)) => {
                    let path = resolve(&task.plugin, &plugins_dir);
                    match files.load(&path) {
                        Ok(plugin) => {
                            // The module's hash is the attempt's handle: what exactly ran.
                            reporter.send(Report::Started {
                                handle: Some(format!("sha256 {}", plugin.sha256)),
                            });
                            let mut context = attempt.context.clone();
                            context["config"] = task.config.clone();
                            let defaults = Limits::default();
                            let limits = Limits {
                                memory_bytes: task
                                    .memory_limit
                                    .map_or(defaults.memory_bytes, |m| {
                                        usize::try_from(m.0).unwrap_or(usize::MAX)
                                    }),
                                timeout: attempt.timeout.map(|t| t.as_std()).or(defaults.timeout),
                                fuel: task.fuel,
                                ..defaults
                            };
                            let grants = Grants::from_capabilities(&task.capabilities);
                            match policy.as_ref().map_or(Ok(()), |p| p.check(&grants)) {
                                Ok(()) => runner.invoke(
                                    &plugin,
                                    Invocation::of_context(&context, limits, grants),
                                ),
                                Err(refused) => runner::failed(refused, String::new()),
                            }
                        }
                        Err(e) => runner::failed(
                            format!(
                                "cannot read plugin {}: {e}{}",
                                path.display(),
                                if path.starts_with(&plugins_dir) {
                                    " (build plugins with `sluice plugins build`)"
                                } else {
                                    ""
                                }
                            ),
                            String::new(),
                        ),
                    }
                }
                (Err(e), _) => {
                    runner::failed(format!("wasmtime could not start: {e}"), String::new())
                }
                (_, other) => runner::failed(super::wrong_kind("wasm", other), String::new()),
            };
            write_log(&attempt, &result);
            reporter.send(Report::Finished {
                outcome: result.outcome,
                output: result.output,
            });
        });
    }

    fn cancel(&self, _idempotency_key: &str) {}
}

fn write_log(attempt: &Attempt, result: &RunResult) {
    if let Some(parent) = attempt.log_path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let status = match &result.outcome {
        Outcome::Success => "success".to_owned(),
        Outcome::Failed { reason, .. } => reason.clone(),
    };
    let _ = std::fs::write(
        &attempt.log_path,
        format!(
            "{}[sluice] attempt {} ends: {status}\n",
            result.stderr, attempt.idempotency_key
        ),
    );
}
