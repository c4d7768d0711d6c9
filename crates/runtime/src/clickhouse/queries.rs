//! `clickhouse_query` for WASM plugins: rows of a SELECT as JSON objects (JSONEachRow).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::connections::ClickhouseConnection;

/// A query that did not answer rows, and whether trying again may help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub message: String,
    pub retryable: bool,
}

impl QueryError {
    fn fatal(message: impl Into<String>) -> Self {
        QueryError {
            message: message.into(),
            retryable: false,
        }
    }
}

/// Runs plugin queries; one client per connection. Called from plugin threads (tokio's
/// blocking pool), it drives the query on the executor runtime.
pub struct ClickhouseQueries {
    runtime: tokio::runtime::Handle,
    connections: crate::connections::Connections,
    clients: Mutex<HashMap<String, ::clickhouse::Client>>,
}

/// Most bytes of rows one query may return to a plugin.
const MAX_BYTES: usize = 64 << 20;

/// Longest a plugin's query may run, on the server (`max_execution_time`) and here.
pub const QUERY_TIME_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

impl ClickhouseQueries {
    pub fn new(
        runtime: tokio::runtime::Handle,
        connections: crate::connections::Connections,
    ) -> Self {
        ClickhouseQueries {
            runtime,
            connections,
            clients: Mutex::default(),
        }
    }

    fn client(&self, name: &str) -> Result<::clickhouse::Client, QueryError> {
        if let Some(client) = self.clients.lock().ok().and_then(|m| m.get(name).cloned()) {
            return Ok(client);
        }
        let conn = self
            .connections
            .clickhouse(name)
            .map_err(|e| QueryError::fatal(e.to_string()))?;
        if !conn.plugins {
            return Err(QueryError::fatal(format!(
                "connection `{name}` is not open to plugins: the operator allows it with \
                 `plugins = true` on the connection in sluice.toml (or in SLUICE_CONN_{})",
                name.to_ascii_uppercase().replace(['-', '.'], "_")
            )));
        }
        // A plugin reads: the server refuses its writes and any `SETTINGS` or `SET` of its
        // own (`readonly = 1`, so it cannot lift the time limit either) and stops a query
        // past the time limit.
        let client = client_for(&conn)
            .map_err(QueryError::fatal)?
            .with_setting("readonly", "1")
            .with_setting("max_execution_time", QUERY_TIME_LIMIT.as_secs().to_string());
        if let Ok(mut map) = self.clients.lock() {
            map.insert(name.to_owned(), client.clone());
        }
        Ok(client)
    }
}

/// A client for a connection; the password comes from the variable the connection names.
pub fn client_for(conn: &ClickhouseConnection) -> Result<::clickhouse::Client, String> {
    let mut client = ::clickhouse::Client::default()
        .with_url(&conn.url)
        .with_validation(conn.validation);
    if let Some(database) = &conn.database {
        client = client.with_database(database);
    }
    if let Some(user) = &conn.user {
        client = client.with_user(user);
    }
    if let Some(var) = &conn.password_env {
        let password = std::env::var(var)
            .map_err(|_| format!("the ClickHouse password variable {var} is not set"))?;
        client = client.with_password(password);
    }
    Ok(client)
}

/// A statement's answer in `format`, reading stops once past `max_bytes` (the caller tells
/// a cut answer by its length).
pub async fn fetch(
    client: &::clickhouse::Client,
    sql: &str,
    format: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, ::clickhouse::error::Error> {
    let mut cursor = client.query_raw(sql).fetch_bytes(format)?;
    let mut bytes = Vec::new();
    while let Some(chunk) = cursor.next().await? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > max_bytes {
            break;
        }
    }
    Ok(bytes)
}

impl ClickhouseQueries {
    /// Rows of `sql` run on `connection`, as JSON objects.
    pub fn rows(&self, connection: &str, sql: &str) -> Result<Vec<serde_json::Value>, QueryError> {
        let client = self.client(connection)?;
        let fetched = self.runtime.block_on(async {
            tokio::time::timeout(
                QUERY_TIME_LIMIT + std::time::Duration::from_secs(5),
                fetch(&client, sql, "JSONEachRow", MAX_BYTES),
            )
            .await
        });
        let bytes = fetched
            .map_err(|_| QueryError {
                retryable: true,
                message: format!(
                    "ClickHouse ({connection}): no answer within {} s",
                    QUERY_TIME_LIMIT.as_secs()
                ),
            })?
            .map_err(|e| QueryError {
                retryable: super::errors::is_retryable(&e),
                message: format!("ClickHouse ({connection}): {e}"),
            })?;
        if bytes.len() > MAX_BYTES {
            return Err(QueryError::fatal(format!(
                "the query returned more than {} MiB; aggregate or filter in SQL",
                MAX_BYTES >> 20
            )));
        }
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|line| {
                serde_json::from_str(line).map_err(|e| {
                    QueryError::fatal(format!("ClickHouse answered a row that is not JSON: {e}"))
                })
            })
            .collect()
    }
}
