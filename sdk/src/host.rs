//! Safe wrappers for the host functions Sluice links under the `sluice` import module.
//!
//! Protocol (for authors of plugins in other languages): arguments are UTF-8 byte ranges in
//! guest memory (pointer, length). A call that returns data answers an `i64` status `n`:
//! `n >= 0` means success with `n` bytes of JSON waiting, `n < 0` means failure with `-n`
//! bytes of JSON `{"error": "...", "retryable": bool}` waiting. The guest then calls
//! `result_read(ptr, len)` to copy the waiting bytes into its memory. Functions that need a
//! capability (`kv_get`/`kv_put`: `kv`; `clickhouse_query`: `clickhouse`) are only linked
//! when the task grants it: a plugin importing one without the grant fails to instantiate.
//!
//! Outside Sluice (e.g. in `cargo test` on the host) every call fails with
//! "not running inside Sluice".

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::HostError;

/// An upstream task's output, fetched from the host. The same data is in
/// [`TaskContext::outputs`](crate::TaskContext); this call avoids carrying large outputs
/// through the context.
pub fn output(task: &str) -> Result<Value, HostError> {
    let bytes = call(|| unsafe { ffi::output_get(task.as_ptr(), task.len()) })?;
    parse(&bytes)
}

/// Reads a value from the DAG's key-value store (capability `kv`).
pub fn kv_get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, HostError> {
    let bytes = call(|| unsafe { ffi::kv_get(key.as_ptr(), key.len()) })?;
    let value: Value = parse(&bytes)?;
    if value.is_null() {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|e| fatal(format!("kv value `{key}` has another shape: {e}")))
}

/// Writes a value to the DAG's key-value store (capability `kv`). Durable once the
/// attempt's outcome is recorded.
pub fn kv_put<T: Serialize>(key: &str, value: &T) -> Result<(), HostError> {
    let json = serde_json::to_vec(value).map_err(|e| fatal(format!("kv value: {e}")))?;
    call(|| unsafe { ffi::kv_put(key.as_ptr(), key.len(), json.as_ptr(), json.len()) })?;
    Ok(())
}

/// Runs a query on the ClickHouse connection the task grants (capability `clickhouse`);
/// returns the rows as JSON objects.
pub fn clickhouse_query(connection: &str, sql: &str) -> Result<Vec<Value>, HostError> {
    let bytes = call(|| unsafe {
        ffi::clickhouse_query(
            connection.as_ptr(),
            connection.len(),
            sql.as_ptr(),
            sql.len(),
        )
    })?;
    parse(&bytes)
}

/// Writes a line to the attempt's log through the host, with its level.
pub fn log(level: i32, message: &str) {
    unsafe { ffi::log(level, message.as_ptr(), message.len()) }
}

fn call(f: impl FnOnce() -> i64) -> Result<Vec<u8>, HostError> {
    let status = f();
    let len = status.unsigned_abs() as usize;
    let mut buffer = vec![0u8; len];
    if len > 0 {
        unsafe { ffi::result_read(buffer.as_mut_ptr(), len) };
    }
    if status >= 0 {
        return Ok(buffer);
    }
    #[derive(serde::Deserialize)]
    struct Failure {
        error: String,
        #[serde(default)]
        retryable: bool,
    }
    match serde_json::from_slice::<Failure>(&buffer) {
        Ok(f) => Err(HostError {
            message: f.error,
            retryable: f.retryable,
        }),
        Err(_) => Err(fatal(String::from_utf8_lossy(&buffer).into_owned())),
    }
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, HostError> {
    serde_json::from_slice(bytes).map_err(|e| fatal(format!("host answered invalid JSON: {e}")))
}

fn fatal(message: String) -> HostError {
    HostError {
        message,
        retryable: false,
    }
}

#[cfg(target_arch = "wasm32")]
mod ffi {
    #[link(wasm_import_module = "sluice")]
    extern "C" {
        pub fn log(level: i32, ptr: *const u8, len: usize);
        pub fn output_get(task_ptr: *const u8, task_len: usize) -> i64;
        pub fn kv_get(key_ptr: *const u8, key_len: usize) -> i64;
        pub fn kv_put(
            key_ptr: *const u8,
            key_len: usize,
            value_ptr: *const u8,
            value_len: usize,
        ) -> i64;
        pub fn clickhouse_query(
            connection_ptr: *const u8,
            connection_len: usize,
            sql_ptr: *const u8,
            sql_len: usize,
        ) -> i64;
        pub fn result_read(ptr: *mut u8, len: usize) -> i32;
    }
}

/// Off wasm there is no host: every call fails the same way, so plugin logic can still be
/// unit-tested natively.
#[cfg(not(target_arch = "wasm32"))]
#[allow(clippy::missing_safety_doc)]
mod ffi {
    const NOT_IN_SLUICE: &[u8] = br#"{"error": "not running inside Sluice", "retryable": false}"#;

    pub unsafe fn log(level: i32, ptr: *const u8, len: usize) {
        let text = String::from_utf8_lossy(std::slice::from_raw_parts(ptr, len));
        eprintln!("[{}] {text}", crate::log::level_name(level));
    }
    pub unsafe fn output_get(_: *const u8, _: usize) -> i64 {
        -(NOT_IN_SLUICE.len() as i64)
    }
    pub unsafe fn kv_get(_: *const u8, _: usize) -> i64 {
        -(NOT_IN_SLUICE.len() as i64)
    }
    pub unsafe fn kv_put(_: *const u8, _: usize, _: *const u8, _: usize) -> i64 {
        -(NOT_IN_SLUICE.len() as i64)
    }
    pub unsafe fn clickhouse_query(_: *const u8, _: usize, _: *const u8, _: usize) -> i64 {
        -(NOT_IN_SLUICE.len() as i64)
    }
    pub unsafe fn result_read(ptr: *mut u8, len: usize) -> i32 {
        let n = len.min(NOT_IN_SLUICE.len());
        std::ptr::copy_nonoverlapping(NOT_IN_SLUICE.as_ptr(), ptr, n);
        n as i32
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn outside_sluice_host_calls_fail_clearly() {
        let err = super::kv_get::<u64>("k").err();
        assert_eq!(
            err.map(|e| (e.message, e.retryable)),
            Some(("not running inside Sluice".to_owned(), false))
        );
        assert!(super::clickhouse_query("warehouse", "SELECT 1").is_err());
    }
}
