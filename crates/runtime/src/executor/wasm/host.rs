//! Host functions under the import module `sluice`, and the protocol they share.
//!
//! Arguments are byte ranges in guest memory. Calls that return data answer an `i64`:
//! `n >= 0` is success with `n` bytes of JSON waiting; `n < 0` is failure with `-n` bytes of
//! `{"error": "...", "retryable": bool}` waiting. The guest copies the waiting bytes with
//! `result_read(ptr, len)`. The SDK (`sdk/src/host.rs`) is the reference client.
//!
//! `log`, `output_get` and `result_read` need no grant; `kv_get`/`kv_put` are linked only
//! when the task grants `kv`, `clickhouse_query` only when it grants `clickhouse`: a plugin
//! importing an ungranted function fails at instantiation.

use std::sync::Arc;

use wasmtime::{Caller, Linker};
use wasmtime_wasi::p2::OutputStream;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;

use super::runner::PluginState;

/// Largest answer a host call may leave waiting.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Runs queries for the `clickhouse_query` host function. The ClickHouse client provides
/// it; a scheduler without one answers such calls with an error.
pub trait QueryService: Send + Sync {
    /// Rows of `sql` run on `connection`, as JSON objects.
    fn query(&self, connection: &str, sql: &str) -> Result<Vec<serde_json::Value>, HostCallError>;
}

/// The plugins' key-value store, one namespace per DAG, for `kv_get`/`kv_put`. The runtime
/// provides it over the state's `kv` tree (`super::ports`); the host functions know only
/// this.
pub trait KeyValue: Send + Sync {
    fn get(&self, dag: &str, key: &str) -> Result<Option<Vec<u8>>, HostCallError>;
    fn put(&self, dag: &str, key: &str, value: &[u8]) -> Result<(), HostCallError>;
}

/// A refused or failed host call, as the plugin sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCallError {
    pub message: String,
    pub retryable: bool,
}

impl HostCallError {
    pub fn fatal(message: impl Into<String>) -> Self {
        HostCallError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// What the host functions of one plugin run can reach.
pub struct HostState {
    pub dag_id: String,
    /// Outputs of the task's upstream tasks.
    pub outputs: serde_json::Map<String, serde_json::Value>,
    /// Set when the task grants `kv`.
    pub kv: Option<Arc<dyn KeyValue>>,
    /// The granted connection, and the service that runs its queries if there is one.
    pub clickhouse: Option<(String, Option<Arc<dyn QueryService>>)>,
    /// The attempt log (the plugin's stderr): `log` lines go there, in order with stderr.
    pub log: MemoryOutputPipe,
    pending: Vec<u8>,
}

impl HostState {
    pub fn new(
        dag_id: String,
        outputs: serde_json::Map<String, serde_json::Value>,
        log: MemoryOutputPipe,
    ) -> Self {
        HostState {
            dag_id,
            outputs,
            kv: None,
            clickhouse: None,
            log,
            pending: Vec::new(),
        }
    }

    fn answer(&mut self, result: Result<Vec<u8>, HostCallError>) -> i64 {
        let (bytes, failed) = match result {
            Ok(bytes) if bytes.len() <= MAX_ANSWER_BYTES => (bytes, false),
            Ok(bytes) => (
                failure(&HostCallError::fatal(format!(
                    "the answer has {} bytes, over the {} MiB limit of a host call",
                    bytes.len(),
                    MAX_ANSWER_BYTES >> 20
                ))),
                true,
            ),
            Err(e) => (failure(&e), true),
        };
        let n = bytes.len() as i64;
        self.pending = bytes;
        if failed { -n } else { n }
    }
}

fn failure(e: &HostCallError) -> Vec<u8> {
    serde_json::json!({"error": e.message, "retryable": e.retryable})
        .to_string()
        .into_bytes()
}

/// Which optional host functions a linker carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkSet {
    pub kv: bool,
    pub clickhouse: bool,
}

impl LinkSet {
    pub const ALL: [LinkSet; 4] = [
        LinkSet {
            kv: false,
            clickhouse: false,
        },
        LinkSet {
            kv: true,
            clickhouse: false,
        },
        LinkSet {
            kv: false,
            clickhouse: true,
        },
        LinkSet {
            kv: true,
            clickhouse: true,
        },
    ];

    pub fn index(self) -> usize {
        usize::from(self.kv) | usize::from(self.clickhouse) << 1
    }
}

type Ctx<'a> = Caller<'a, PluginState>;

pub fn link(linker: &mut Linker<PluginState>, set: LinkSet) -> wasmtime::Result<()> {
    linker.func_wrap(
        "sluice",
        "log",
        |mut caller: Ctx<'_>, level: i32, ptr: i32, len: i32| {
            let message = read_text(&mut caller, ptr, len)?;
            let line = format!("[{}] {message}\n", level_name(level));
            // A full log drops the line rather than failing the plugin.
            let _ = caller.data_mut().host.log.write(line.into_bytes().into());
            Ok(())
        },
    )?;
    linker.func_wrap(
        "sluice",
        "result_read",
        |mut caller: Ctx<'_>, ptr: i32, len: i32| {
            let pending = std::mem::take(&mut caller.data_mut().host.pending);
            let n = pending.len().min(len as u32 as usize);
            memory(&mut caller)?.write(&mut caller, ptr as u32 as usize, &pending[..n])?;
            Ok(n as i32)
        },
    )?;
    linker.func_wrap(
        "sluice",
        "output_get",
        |mut caller: Ctx<'_>, ptr: i32, len: i32| {
            let task = read_text(&mut caller, ptr, len)?;
            let host = &mut caller.data_mut().host;
            let result = match host.outputs.get(&task) {
                Some(output) => Ok(output.to_string().into_bytes()),
                None => Err(HostCallError::fatal(format!(
                    "`{task}` is not an upstream task with an output"
                ))),
            };
            Ok(host.answer(result))
        },
    )?;
    if set.kv {
        linker.func_wrap(
            "sluice",
            "kv_get",
            |mut caller: Ctx<'_>, ptr: i32, len: i32| {
                let key = read_text(&mut caller, ptr, len)?;
                let host = &mut caller.data_mut().host;
                let result = kv(host).and_then(|(kv, dag)| {
                    kv.get(&dag, &key)
                        .map(|v| v.unwrap_or_else(|| b"null".to_vec()))
                });
                Ok(host.answer(result))
            },
        )?;
        linker.func_wrap(
            "sluice",
            "kv_put",
            |mut caller: Ctx<'_>, key_ptr: i32, key_len: i32, value_ptr: i32, value_len: i32| {
                let key = read_text(&mut caller, key_ptr, key_len)?;
                let value = read_bytes(&mut caller, value_ptr, value_len)?;
                let host = &mut caller.data_mut().host;
                let result = match serde_json::from_slice::<serde_json::Value>(&value) {
                    Err(e) => Err(HostCallError::fatal(format!(
                        "kv value for `{key}` is not JSON: {e}"
                    ))),
                    Ok(_) => kv(host)
                        .and_then(|(kv, dag)| kv.put(&dag, &key, &value).map(|()| Vec::new())),
                };
                Ok(host.answer(result))
            },
        )?;
    }
    if set.clickhouse {
        linker.func_wrap(
            "sluice",
            "clickhouse_query",
            |mut caller: Ctx<'_>, conn_ptr: i32, conn_len: i32, sql_ptr: i32, sql_len: i32| {
                let connection = read_text(&mut caller, conn_ptr, conn_len)?;
                let sql = read_text(&mut caller, sql_ptr, sql_len)?;
                let host = &mut caller.data_mut().host;
                let result = query(host, &connection, &sql);
                Ok(host.answer(result))
            },
        )?;
    }
    Ok(())
}

fn kv(host: &HostState) -> Result<(Arc<dyn KeyValue>, String), HostCallError> {
    match &host.kv {
        Some(kv) => Ok((Arc::clone(kv), host.dag_id.clone())),
        None => Err(HostCallError::fatal(
            "the task does not grant the `kv` capability",
        )),
    }
}

fn query(host: &HostState, connection: &str, sql: &str) -> Result<Vec<u8>, HostCallError> {
    let Some((granted, service)) = &host.clickhouse else {
        return Err(HostCallError::fatal(
            "the task does not grant the `clickhouse` capability",
        ));
    };
    if granted != connection {
        return Err(HostCallError::fatal(format!(
            "the task grants the ClickHouse connection `{granted}`, not `{connection}`"
        )));
    }
    let Some(service) = service else {
        return Err(HostCallError::fatal(format!(
            "this scheduler has no ClickHouse client for connection `{connection}`"
        )));
    };
    let rows = service.query(connection, sql)?;
    Ok(serde_json::Value::Array(rows).to_string().into_bytes())
}

fn level_name(level: i32) -> &'static str {
    match level {
        0 => "ERROR",
        1 => "WARN",
        2 => "INFO",
        _ => "DEBUG",
    }
}

fn memory(caller: &mut Ctx<'_>) -> wasmtime::Result<wasmtime::Memory> {
    caller
        .get_export("memory")
        .and_then(|e| e.into_memory())
        .ok_or_else(|| wasmtime::Error::msg("the plugin exports no memory for host calls"))
}

fn read_bytes(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<Vec<u8>> {
    let memory = memory(caller)?;
    let start = ptr as u32 as usize;
    let end = start.saturating_add(len as u32 as usize);
    memory
        .data(&caller)
        .get(start..end)
        .map(<[u8]>::to_vec)
        .ok_or_else(|| wasmtime::Error::msg("a host call pointed outside the plugin's memory"))
}

fn read_text(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> wasmtime::Result<String> {
    String::from_utf8(read_bytes(caller, ptr, len)?)
        .map_err(|_| wasmtime::Error::msg("a host call argument is not UTF-8"))
}
