//! `type: wasm`: a WASI preview 1 command module run in wasmtime, sandboxed.
//!
//! The task context goes in as JSON on stdin; stdout (bounded) is the task's JSON output;
//! stderr goes to the attempt log. Exit 0 succeeds, 75 (EX_TEMPFAIL) is a retryable
//! failure, other codes and traps are fatal — except hitting the wall-clock timeout (epoch
//! interruption) or the memory limit, which are retryable and reported as such. The module
//! sees no files, sockets, environment variables or arguments.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{I32Exit, WasiCtxBuilder};

use super::{Attempt, Executor, Report, Reporter};
use crate::core::Outcome;
use crate::spec::TaskKind;

/// How often the epoch advances: the granularity of timeouts.
const TICK: Duration = Duration::from_millis(10);
/// Exit code that asks for a retry (EX_TEMPFAIL).
pub const RETRYABLE_EXIT: i32 = 75;

/// Limits of one plugin run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub memory_bytes: usize,
    pub stdout_bytes: usize,
    pub timeout: Option<Duration>,
    pub fuel: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_bytes: 256 << 20,
            stdout_bytes: 1 << 20,
            timeout: Some(Duration::from_secs(600)),
            fuel: None,
        }
    }
}

/// What a plugin run came to, with its stderr for the log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub outcome: Outcome,
    pub output: Option<serde_json::Value>,
    pub stderr: String,
}

struct PluginState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

/// Denies memory growth past the limit and remembers that it did.
struct MemoryLimiter {
    limit: usize,
    hit: bool,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limit {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} MiB exceeded",
                self.limit >> 20
            )));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1_000_000)
    }
}

/// Compiles, caches and runs plugins. Cheap to clone.
#[derive(Clone)]
pub struct WasmRunner {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    /// Ready-to-instantiate modules by the wasm's content hash.
    modules: Arc<Mutex<HashMap<String, InstancePre<PluginState>>>>,
}

impl WasmRunner {
    pub fn new() -> Result<Self, String> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| format!("cannot start wasmtime: {e}"))?;
        let mut linker: Linker<PluginState> = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut PluginState| &mut s.wasi)
            .map_err(|e| format!("cannot link WASI: {e}"))?;
        let ticker = engine.clone();
        std::thread::Builder::new()
            .name("sluice-wasm-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(TICK);
                    ticker.increment_epoch();
                }
            })
            .map_err(|e| format!("cannot start the epoch ticker: {e}"))?;
        Ok(WasmRunner {
            engine,
            linker: Arc::new(linker),
            modules: Arc::default(),
        })
    }

    fn prepare(&self, bytes: &[u8]) -> Result<InstancePre<PluginState>, String> {
        let key = crate::scheduler::fingerprint(bytes);
        if let Some(pre) = self.modules.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok(pre);
        }
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| format!("not a valid WebAssembly module: {e}"))?;
        let pre = self.linker.instantiate_pre(&module).map_err(|e| {
            let text = e.to_string();
            match text.split("unknown import: `").nth(1).and_then(|r| r.split('`').next()) {
                Some(import) if import.starts_with("sluice::") => format!(
                    "the plugin imports `{import}`, a host function for a capability this task does not grant"
                ),
                Some(import) => format!("the plugin imports `{import}`, which Sluice does not provide"),
                None => format!("cannot link the plugin: {text}"),
            }
        })?;
        if let Ok(mut modules) = self.modules.lock() {
            modules.insert(key, pre.clone());
        }
        Ok(pre)
    }

    /// Runs a module with `stdin` as its input. Blocking: call from a blocking thread.
    pub fn run(&self, wasm: &[u8], stdin: Vec<u8>, limits: Limits) -> RunResult {
        let fatal = |reason: String| RunResult {
            outcome: Outcome::Failed {
                retryable: false,
                reason,
            },
            output: None,
            stderr: String::new(),
        };
        let pre = match self.prepare(wasm) {
            Ok(pre) => pre,
            Err(reason) => return fatal(reason),
        };
        // One byte over the bound, so that a full pipe means "too much", not "exactly enough".
        let stdout = MemoryOutputPipe::new(limits.stdout_bytes + 1);
        let stderr = MemoryOutputPipe::new(1 << 20);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .build_p1();
        let mut store = Store::new(
            &self.engine,
            PluginState {
                wasi,
                limiter: MemoryLimiter {
                    limit: limits.memory_bytes,
                    hit: false,
                },
            },
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = limits.timeout.map_or(u64::MAX / 2, |t| {
            (t.as_millis() / TICK.as_millis()).max(1) as u64
        });
        store.set_epoch_deadline(ticks);
        let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
        let result = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
            .and_then(|start| start.call(&mut store, ()));
        let stderr_text = String::from_utf8_lossy(&stderr.contents()).into_owned();
        let exit = match &result {
            Ok(()) => Some(0),
            Err(e) => e.downcast_ref::<I32Exit>().map(|e| e.0),
        };
        let outcome = match (exit, &result) {
            (Some(0), _) => Outcome::Success,
            (Some(RETRYABLE_EXIT), _) => Outcome::Failed {
                retryable: true,
                reason: format!("plugin exited with {RETRYABLE_EXIT} (retryable)"),
            },
            (Some(code), _) => Outcome::Failed {
                retryable: false,
                reason: format!("plugin exited with code {code}"),
            },
            (None, Err(e)) => classify_trap(e, store.data().limiter.hit, limits),
            (None, Ok(())) => Outcome::Success,
        };
        let bytes = stdout.contents();
        // A write past the pipe's capacity fails the guest's write (often as a trap); either
        // way the output was over the bound.
        let refused_write = result
            .as_ref()
            .err()
            .is_some_and(|e| format!("{e:#}").contains("write beyond capacity"));
        if bytes.len() > limits.stdout_bytes || refused_write {
            return RunResult {
                outcome: Outcome::Failed {
                    retryable: false,
                    reason: format!(
                        "plugin output is over the {} KiB limit",
                        limits.stdout_bytes >> 10
                    ),
                },
                output: None,
                stderr: stderr_text,
            };
        }
        let output = if outcome == Outcome::Success && !bytes.iter().all(u8::is_ascii_whitespace) {
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(value) => Some(value),
                Err(e) => {
                    return RunResult {
                        outcome: Outcome::Failed {
                            retryable: false,
                            reason: format!("plugin output is not JSON: {e}"),
                        },
                        output: None,
                        stderr: stderr_text,
                    };
                }
            }
        } else {
            None
        };
        RunResult {
            outcome,
            output,
            stderr: stderr_text,
        }
    }
}

fn classify_trap(error: &wasmtime::Error, memory_hit: bool, limits: Limits) -> Outcome {
    if memory_hit {
        return Outcome::Failed {
            retryable: true,
            reason: format!("memory limit of {} MiB exceeded", limits.memory_bytes >> 20),
        };
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => Outcome::Failed {
            retryable: true,
            reason: format!(
                "timed out after {}",
                limits
                    .timeout
                    .map_or("the limit".to_owned(), |t| format!("{t:?}"))
            ),
        },
        Some(Trap::OutOfFuel) => Outcome::Failed {
            retryable: true,
            reason: "ran out of fuel".into(),
        },
        Some(trap) => Outcome::Failed {
            retryable: false,
            reason: format!("plugin trapped: {trap}"),
        },
        None => Outcome::Failed {
            retryable: false,
            reason: format!("plugin failed: {error:#}"),
        },
    }
}

/// What a module needs and offers, for `sluice plugins inspect`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    /// sha256 of the file, hex.
    pub sha256: String,
    pub bytes: usize,
    /// `module::name` of every import.
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// Capabilities the task must grant for the module to instantiate.
    pub capabilities: Vec<String>,
    /// Whether it is a WASI command (exports `_start`).
    pub command: bool,
}

/// The capability that grants a `sluice` host function, if it needs one.
pub fn capability_of(host_function: &str) -> Option<&'static str> {
    match host_function {
        "clickhouse_query" => Some("clickhouse"),
        "kv_get" | "kv_put" => Some("kv"),
        _ => None,
    }
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads a module's imports and exports without running it.
pub fn inspect(bytes: &[u8]) -> Result<ModuleInfo, String> {
    let engine = Engine::default();
    let module =
        Module::new(&engine, bytes).map_err(|e| format!("not a valid WebAssembly module: {e}"))?;
    let imports: Vec<String> = module
        .imports()
        .map(|i| format!("{}::{}", i.module(), i.name()))
        .collect();
    let mut capabilities: Vec<String> = module
        .imports()
        .filter(|i| i.module() == "sluice")
        .filter_map(|i| capability_of(i.name()).map(str::to_owned))
        .collect();
    capabilities.sort();
    capabilities.dedup();
    let exports: Vec<String> = module.exports().map(|e| e.name().to_owned()).collect();
    Ok(ModuleInfo {
        sha256: sha256_hex(bytes),
        bytes: bytes.len(),
        command: exports.iter().any(|e| e == "_start"),
        imports,
        exports,
        capabilities,
    })
}

/// Finds a plugin: a path to a `.wasm` file, or a name in the plugins folder.
pub fn resolve(plugin: &str, plugins_dir: &Path) -> PathBuf {
    if plugin.ends_with(".wasm") || plugin.contains('/') {
        PathBuf::from(plugin)
    } else {
        plugins_dir.join(format!("{plugin}.wasm"))
    }
}

/// The executor: plugin runs on tokio's blocking pool (WASI p1 blocks).
pub struct WasmExecutor {
    /// Started on the first wasm task, so schedulers without one pay nothing (no engine,
    /// no epoch ticker thread).
    runner: std::sync::OnceLock<Option<WasmRunner>>,
    runtime: tokio::runtime::Handle,
    plugins_dir: PathBuf,
}

impl WasmExecutor {
    pub fn new(runtime: tokio::runtime::Handle, plugins_dir: PathBuf) -> Self {
        WasmExecutor {
            runner: std::sync::OnceLock::new(),
            runtime,
            plugins_dir,
        }
    }
}

impl Executor for WasmExecutor {
    fn name(&self) -> &'static str {
        "wasm"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let runner = self.runner.get_or_init(|| WasmRunner::new().ok()).clone();
        let plugins_dir = self.plugins_dir.clone();
        self.runtime.spawn_blocking(move || {
            let result = match (runner, &attempt.kind) {
                (Some(runner), TaskKind::Wasm(task)) => {
                    let path = resolve(&task.plugin, &plugins_dir);
                    match std::fs::read(&path) {
                        Ok(wasm) => {
                            // The module's hash is the attempt's handle: what exactly ran.
                            reporter.send(Report::Started {
                                handle: Some(format!("sha256 {}", sha256_hex(&wasm))),
                            });
                            let mut context = attempt.context.clone();
                            context["config"] = task.config.clone();
                            let limits = Limits {
                                memory_bytes: task
                                    .memory_limit
                                    .map_or(Limits::default().memory_bytes, |m| m.0 as usize),
                                timeout: attempt
                                    .timeout
                                    .map(|t| t.as_std())
                                    .or(Limits::default().timeout),
                                fuel: task.fuel,
                                ..Limits::default()
                            };
                            runner.run(
                                &wasm,
                                serde_json::to_vec(&context).unwrap_or_default(),
                                limits,
                            )
                        }
                        Err(e) => failed(format!("cannot read plugin {}: {e}", path.display())),
                    }
                }
                (None, _) => failed("wasmtime could not start".into()),
                (_, other) => failed(format!(
                    "the wasm executor cannot run a `{}` task",
                    other.type_name()
                )),
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

fn failed(reason: String) -> RunResult {
    RunResult {
        outcome: Outcome::Failed {
            retryable: false,
            reason,
        },
        output: None,
        stderr: String::new(),
    }
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
