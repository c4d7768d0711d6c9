//! The ClickHouse server scripts/test starts (scripts/services/clickhouse), its HTTP address
//! in SLUICE_TEST_CLICKHOUSE_URL.

type Error = Box<dyn std::error::Error>;

pub fn url() -> String {
    match std::env::var("SLUICE_TEST_CLICKHOUSE_URL") {
        Ok(url) => url,
        Err(_) => panic!(
            "SLUICE_TEST_CLICKHOUSE_URL is not set: start ClickHouse with `scripts/services/clickhouse start` (scripts/test does)"
        ),
    }
}

/// Runs a statement through ClickHouse's HTTP interface; its answer.
pub fn sql(statement: &str) -> Result<String, Error> {
    match crate::http(&url(), "POST", "/", statement)? {
        (200, body) => Ok(body),
        (status, body) => {
            Err(format!("ClickHouse refused `{statement}` ({status}): {body}").into())
        }
    }
}

/// `SLUICE_CONN_<NAME>` for this server (validation off: Debian's server is older than it),
/// open to plugins.
pub fn connection() -> String {
    serde_json::json!({"type": "clickhouse", "url": url(), "validation": false, "plugins": true})
        .to_string()
}

/// The server's user_files folder, which `file()` reads (SLUICE_TEST_CLICKHOUSE_USER_FILES).
pub fn user_files() -> std::path::PathBuf {
    match std::env::var("SLUICE_TEST_CLICKHOUSE_USER_FILES") {
        Ok(path) => path.into(),
        Err(_) => panic!(
            "SLUICE_TEST_CLICKHOUSE_USER_FILES is not set: `scripts/services/clickhouse user-files` prints it (scripts/test sets it)"
        ),
    }
}
