//! Compiling, caching and running plugins in wasmtime with Sluice's limits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::{Config, Engine, InstancePre, Linker, Module, ResourceLimiter, Store, Trap};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::cache::ModuleCache;
use super::grants::Grants;
use super::host::{self, HostState, KeyValue, LinkSet, QueryService};
use super::inspect::sha256_hex;
use sluice_core::Outcome;

/// How often the epoch advances: the granularity of timeouts.
const TICK: Duration = Duration::from_millis(10);
/// Exit code that asks for a retry (EX_TEMPFAIL).
pub const RETRYABLE_EXIT: i32 = 75;
/// Most log (stderr plus host `log` lines) kept from one run.
const LOG_BYTES: usize = 8 << 20;

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

/// One run of a plugin: its input, limits and grants.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    pub stdin: Vec<u8>,
    pub limits: Limits,
    pub grants: Grants,
    /// Scope of the `kv` functions.
    pub dag_id: String,
    /// What `output_get` answers.
    pub outputs: serde_json::Map<String, serde_json::Value>,
}

impl Invocation {
    /// An invocation on a task context document (the `dag` and `outputs` it holds scope
    /// the host functions).
    pub fn of_context(context: &serde_json::Value, limits: Limits, grants: Grants) -> Self {
        Invocation {
            stdin: serde_json::to_vec(context).unwrap_or_default(),
            limits,
            grants,
            dag_id: context["dag"].as_str().unwrap_or_default().to_owned(),
            outputs: context["outputs"].as_object().cloned().unwrap_or_default(),
        }
    }
}

/// A module's bytes with what is read from them once: hash and optional capabilities.
#[derive(Debug, Clone)]
pub struct Plugin {
    pub sha256: String,
    pub wasm: Arc<[u8]>,
    /// Capabilities the module can do without (see `inspect::OPTIONAL_SECTION`).
    pub optional: Vec<String>,
}

impl Plugin {
    pub fn new(wasm: Vec<u8>) -> Plugin {
        Plugin {
            sha256: sha256_hex(&wasm),
            optional: super::inspect::optional_capabilities(&wasm),
            wasm: wasm.into(),
        }
    }

    /// The host functions to link for these grants: the granted ones, and the optional
    /// ones (which then answer "not granted").
    pub fn link_set(&self, grants: &Grants) -> LinkSet {
        let optional = |c: &str| self.optional.iter().any(|o| o == c);
        LinkSet {
            kv: grants.kv || optional("kv"),
            clickhouse: grants.clickhouse.is_some() || optional("clickhouse"),
        }
    }
}

/// What a plugin run came to, with its log.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub outcome: Outcome,
    pub output: Option<serde_json::Value>,
    pub stderr: String,
}

/// What a plugin's store holds (opaque outside this module).
pub struct PluginState {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
    pub(super) host: HostState,
}

/// Most table elements a plugin's tables may hold together.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Denies growth past the limits, counted over all of a plugin's memories and tables
/// together (multi-memory is off too), and remembers that it did.
struct MemoryLimiter {
    limit: usize,
    hit: bool,
    /// Bytes of all memories so far.
    memory_total: usize,
    /// Elements of all tables so far.
    table_total: usize,
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .memory_total
            .saturating_sub(current)
            .saturating_add(desired);
        if total > self.limit {
            self.hit = true;
            return Err(wasmtime::Error::msg(format!(
                "memory limit of {} MiB exceeded",
                self.limit >> 20
            )));
        }
        self.memory_total = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self
            .table_total
            .saturating_sub(current)
            .saturating_add(desired);
        if total > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        self.table_total = total;
        Ok(true)
    }
}

/// A module compiled (or loaded) once; an invalid module keeps its error.
type CompileOnce = Arc<std::sync::OnceLock<Result<Module, String>>>;

/// Instantiable modules by the wasm's sha256 and the host functions linked.
type ReadyModules = HashMap<(String, LinkSet), InstancePre<PluginState>>;

/// How the runner is set up, and what plugins may reach beyond their sandbox.
#[derive(Clone)]
pub struct RunnerConfig {
    /// Count instructions so that a task's `fuel` can be enforced. Costs run time (see
    /// BENCHMARKS.md); without it a task's `fuel` is not enforced.
    pub fuel_metering: bool,
    /// Where compiled modules are kept between processes (`<state>/plugin-cache`).
    pub cache_dir: Option<PathBuf>,
    /// Backs `kv_get`/`kv_put`.
    pub kv: Option<Arc<dyn KeyValue>>,
    /// Backs `clickhouse_query`.
    pub queries: Option<Arc<dyn QueryService>>,
    /// Counts module look-ups by where the module came from.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// What DAGs may grant their plugins; `None` (`sluice plugins run`, tests): whatever
    /// the caller grants.
    pub policy: Option<super::grants::GrantPolicy>,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            fuel_metering: true,
            cache_dir: None,
            kv: None,
            queries: None,
            metrics: None,
            policy: None,
        }
    }
}

/// Compiles, caches and runs plugins. Cheap to clone.
#[derive(Clone)]
pub struct WasmRunner {
    engine: Engine,
    /// One linker per set of optional host functions, indexed by `LinkSet::index`.
    linkers: Arc<[Linker<PluginState>; 4]>,
    /// Compiled modules by the wasm's sha256.
    compiled: Arc<Mutex<HashMap<String, CompileOnce>>>,
    /// Ready-to-instantiate modules by hash and link set.
    ready: Arc<Mutex<ReadyModules>>,
    disk: Option<Arc<ModuleCache>>,
    config: RunnerConfig,
}

/// Where the time of preparing a module went, for benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepared {
    /// Already ready in this process.
    Memory,
    /// Loaded from the disk cache.
    Disk,
    /// Compiled.
    Compiled,
}

impl WasmRunner {
    /// A runner with fuel metering and nothing else: no disk cache, no `kv`, no ClickHouse.
    pub fn new() -> Result<Self, String> {
        WasmRunner::with_config(RunnerConfig::default())
    }

    pub fn with_config(runner_config: RunnerConfig) -> Result<Self, String> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.consume_fuel(runner_config.fuel_metering);
        // One memory per plugin: the limiter bounds the total anyway, and a plugin from our
        // SDK never needs more.
        config.wasm_multi_memory(false);
        let engine = Engine::new(&config).map_err(|e| format!("cannot start wasmtime: {e}"))?;
        let make_linker = |set: LinkSet| -> Result<Linker<PluginState>, String> {
            let mut linker: Linker<PluginState> = Linker::new(&engine);
            wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut PluginState| &mut s.wasi)
                .map_err(|e| format!("cannot link WASI: {e}"))?;
            host::link(&mut linker, set).map_err(|e| format!("cannot link host functions: {e}"))?;
            Ok(linker)
        };
        let [a, b, c, d] = LinkSet::ALL;
        let linkers = [
            make_linker(a)?,
            make_linker(b)?,
            make_linker(c)?,
            make_linker(d)?,
        ];
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
            disk: runner_config
                .cache_dir
                .clone()
                .map(|dir| Arc::new(ModuleCache::new(dir, &engine))),
            engine,
            linkers: Arc::new(linkers),
            compiled: Arc::default(),
            ready: Arc::default(),
            config: runner_config,
        })
    }

    /// Makes a module ready to instantiate with a set of host functions ahead of its first
    /// run, and says where it came from.
    pub fn prepare(&self, plugin: &Plugin, set: LinkSet) -> Result<Prepared, String> {
        self.ready_module(plugin, set).map(|(_, how)| how)
    }

    /// A module ready to instantiate with a set of host functions: from memory, the disk
    /// cache, or by compiling it (and caching the result on disk).
    fn ready_module(
        &self,
        plugin: &Plugin,
        set: LinkSet,
    ) -> Result<(InstancePre<PluginState>, Prepared), String> {
        let key = (plugin.sha256.clone(), set);
        if let Some(pre) = self.ready.lock().ok().and_then(|m| m.get(&key).cloned()) {
            return Ok((pre, Prepared::Memory));
        }
        let (module, how) = self.module(&plugin.wasm, &plugin.sha256)?;
        let pre = self.linkers[set.index()]
            .instantiate_pre(&module)
            .map_err(|e| link_error(&e))?;
        if let Ok(mut ready) = self.ready.lock() {
            ready.insert(key, pre.clone());
        }
        Ok((pre, how))
    }

    /// The compiled module: each wasm is loaded or compiled once, however many attempts
    /// ask for it at the same time (the others wait for that one compile).
    fn module(&self, wasm: &[u8], sha: &str) -> Result<(Module, Prepared), String> {
        let slot = match self.compiled.lock() {
            Ok(mut compiled) => compiled.entry(sha.to_owned()).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let mut how = Prepared::Memory;
        let module = slot.get_or_init(|| {
            let (module, from) = match self.disk.as_ref().and_then(|d| d.load(&self.engine, sha)) {
                Some(module) => (module, Prepared::Disk),
                None => {
                    let module = Module::new(&self.engine, wasm)
                        .map_err(|e| format!("not a valid WebAssembly module: {e}"))?;
                    if let Some(disk) = &self.disk {
                        // A cache that cannot be written costs a compile on the next start only.
                        let _ = disk.store(sha, &module);
                    }
                    (module, Prepared::Compiled)
                }
            };
            how = from;
            Ok(module)
        });
        module.clone().map(|m| (m, how))
    }

    /// Runs a module with `stdin` as its input and nothing granted. Blocking.
    pub fn run(&self, wasm: &[u8], stdin: Vec<u8>, limits: Limits) -> RunResult {
        self.invoke(
            &Plugin::new(wasm.to_vec()),
            Invocation {
                stdin,
                limits,
                ..Invocation::default()
            },
        )
    }

    /// Runs a module. Blocking: call from a blocking thread (WASI p1 blocks).
    pub fn invoke(&self, plugin: &Plugin, call: Invocation) -> RunResult {
        let limits = call.limits;
        let pre = match self.ready_module(plugin, plugin.link_set(&call.grants)) {
            Ok((pre, how)) => {
                if let Some(metrics) = &self.config.metrics {
                    let outcome = match how {
                        Prepared::Memory => "memory",
                        Prepared::Disk => "disk",
                        Prepared::Compiled => "compiled",
                    };
                    metrics.inc("sluice_wasm_modules_total", &[("outcome", outcome)]);
                }
                pre
            }
            Err(reason) => return failed(reason, String::new()),
        };
        // One byte over the bound, so that a full pipe means "too much", not "exactly enough".
        let stdout = MemoryOutputPipe::new(limits.stdout_bytes + 1);
        let stderr = MemoryOutputPipe::new(LOG_BYTES);
        let wasi = match call.grants.wasi(call.stdin, &stdout, &stderr) {
            Ok(wasi) => wasi,
            Err(reason) => return failed(reason, String::new()),
        };
        let mut host = HostState::new(call.dag_id, call.outputs, stderr.clone());
        if call.grants.kv {
            host.kv = self.config.kv.clone();
        }
        host.clickhouse = call
            .grants
            .clickhouse
            .clone()
            .map(|conn| (conn, self.config.queries.clone()));
        let mut store = Store::new(
            &self.engine,
            PluginState {
                wasi,
                limiter: MemoryLimiter {
                    limit: limits.memory_bytes,
                    hit: false,
                    memory_total: 0,
                    table_total: 0,
                },
                host,
            },
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = limits.timeout.map_or(u64::MAX / 2, |t| {
            (t.as_millis() / TICK.as_millis()).max(1) as u64
        });
        store.set_epoch_deadline(ticks);
        if self.config.fuel_metering {
            let _ = store.set_fuel(limits.fuel.unwrap_or(u64::MAX));
        }
        let result = pre
            .instantiate(&mut store)
            .and_then(|instance| instance.get_typed_func::<(), ()>(&mut store, "_start"))
            .and_then(|start| start.call(&mut store, ()));
        let log = String::from_utf8_lossy(&stderr.contents()).into_owned();
        let exit = match &result {
            Ok(()) => Some(0),
            Err(e) => e.downcast_ref::<I32Exit>().map(|e| e.0),
        };
        let outcome = match (exit, &result) {
            (Some(0), _) => Outcome::Success,
            (Some(RETRYABLE_EXIT), _) => Outcome::Failed {
                retryable: true,
                reason: format!(
                    "plugin exited with {RETRYABLE_EXIT} (retryable){}",
                    said(&log)
                ),
            },
            (Some(code), _) => Outcome::Failed {
                retryable: false,
                reason: format!("plugin exited with code {code}{}", said(&log)),
            },
            (None, Err(e)) => classify_trap(e, store.data().limiter.hit, limits),
            (None, Ok(())) => Outcome::Success,
        };
        let bytes = stdout.contents();
        // A write past a pipe's capacity fails the guest's write (often as a trap).
        let refused_write = result
            .as_ref()
            .err()
            .is_some_and(|e| format!("{e:#}").contains("write beyond capacity"));
        if refused_write && log.len() + (64 << 10) >= LOG_BYTES {
            return failed(
                format!("plugin log is over the {} MiB limit", LOG_BYTES >> 20),
                log,
            );
        }
        if bytes.len() > limits.stdout_bytes || refused_write {
            return failed(
                format!(
                    "plugin output is over the {} KiB limit",
                    limits.stdout_bytes >> 10
                ),
                log,
            );
        }
        let output = if outcome == Outcome::Success {
            match parse_output(&bytes) {
                Ok(value) => value,
                Err(reason) => return failed(reason, log),
            }
        } else {
            None
        };
        RunResult {
            outcome,
            output,
            stderr: log,
        }
    }
}

/// A successful plugin's stdout as its task output: nothing (only whitespace), or one JSON
/// value; anything else is the reason the attempt fails.
pub fn parse_output(bytes: &[u8]) -> Result<Option<serde_json::Value>, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<serde_json::Value>(bytes)
        .map(Some)
        .map_err(|e| format!("plugin output is not JSON: {e}"))
}

/// The error line a plugin built with the SDK writes before exiting (`fatal: ...` or
/// `retryable: ...`), to put the why into the attempt's reason and not only its log.
fn said(log: &str) -> String {
    log.lines()
        .rev()
        .find_map(|line| {
            line.strip_prefix("fatal: ")
                .or_else(|| line.strip_prefix("retryable: "))
        })
        .map(|why| format!(": {}", why.chars().take(500).collect::<String>()))
        .unwrap_or_default()
}

pub(super) fn failed(reason: String, stderr: String) -> RunResult {
    RunResult {
        outcome: Outcome::Failed {
            retryable: false,
            reason,
        },
        output: None,
        stderr,
    }
}

fn link_error(e: &wasmtime::Error) -> String {
    let text = e.to_string();
    match text
        .split("unknown import: `")
        .nth(1)
        .and_then(|r| r.split('`').next())
    {
        Some(import) => match import.strip_prefix("sluice::").map(super::capability_of) {
            Some(Some(capability)) => format!(
                "the plugin imports `{import}`, which needs the `{capability}` capability; grant it in the task's `capabilities`"
            ),
            _ => format!("the plugin imports `{import}`, which Sluice does not provide"),
        },
        None => format!("cannot link the plugin: {text}"),
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
