//! `type: clickhouse`: the task's rendered SQL, split into statements, run in order over
//! HTTP against a connection. The rows of the last statement that answers with rows (a
//! SELECT) become the task's output, bounded by `max_output_rows`:
//! `{"rows": [...], "row_count": n, "truncated": bool, "statements": k}`.
//!
//! Network errors, time-outs and ClickHouse's load/availability error codes are retryable;
//! anything else (syntax, unknown table, types) is fatal. Each statement runs with the
//! query id `<idempotency key>#<n>`, so a time-out or a cancel kills it on the server
//! (`KILL QUERY`) instead of leaving it to finish behind a retry.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::attempt_log::AttemptLog;
use super::cancel::{CancelMap, bounded};
use super::{Attempt, Executor, Report, Reporter, wrong_kind};
use crate::clickhouse::{errors, queries::client_for, statements};
use crate::connections::Connections;
use sluice_core::Outcome;
use sluice_model::spec::{ClickhouseTask, TaskKind};

/// Rows kept as output when the task sets no `max_output_rows`.
pub const DEFAULT_MAX_OUTPUT_ROWS: u64 = 10_000;
/// Most bytes of rows read from one statement, whatever the row limit.
const MAX_OUTPUT_BYTES: usize = 16 << 20;

pub struct ClickhouseExecutor {
    runtime: tokio::runtime::Handle,
    connections: Connections,
    /// Cancel signal of each running attempt; the attempt itself kills its query on the
    /// server when it ends early.
    running: CancelMap,
    /// Asked before each statement is sent (HA: only while the lease is ours).
    side_effects: crate::ha::SideEffects,
}

impl ClickhouseExecutor {
    pub fn new(
        runtime: tokio::runtime::Handle,
        connections: Connections,
        side_effects: crate::ha::SideEffects,
    ) -> Self {
        ClickhouseExecutor {
            runtime,
            connections,
            running: CancelMap::default(),
            side_effects,
        }
    }
}

fn failed(retryable: bool, reason: String) -> Outcome {
    Outcome::Failed { retryable, reason }
}

impl Executor for ClickhouseExecutor {
    fn name(&self) -> &'static str {
        "clickhouse"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let TaskKind::Clickhouse(task) = attempt.kind.clone() else {
            return reporter.fatal(wrong_kind("clickhouse", &attempt.kind));
        };
        let cancel = self.running.register(&attempt.idempotency_key);
        let current_query = Arc::new(Mutex::new(None));
        let running = self.running.clone();
        let connections = self.connections.clone();
        let side_effects = self.side_effects.clone();
        self.runtime.spawn(async move {
            let mut log = AttemptLog::open(&attempt.log_path);
            let work = run(
                &attempt,
                &task,
                &connections,
                &side_effects,
                &mut log,
                &current_query,
            );
            let result = bounded(
                work,
                attempt.timeout.map(|t| t.as_std()),
                &cancel,
                |limit| {
                    failed(
                        true,
                        format!(
                            "timed out after {}",
                            sluice_model::spec::Duration::from_std(limit)
                        ),
                    )
                },
            )
            .await;
            if let Err(Outcome::Failed { reason, .. }) = &result {
                log.line(&format!("failed: {reason}"));
                kill_current(&current_query, &mut log).await;
            }
            running.finish(&attempt.idempotency_key);
            let (outcome, output) = match result {
                Ok(output) => (Outcome::Success, Some(output)),
                Err(outcome) => (outcome, None),
            };
            reporter.send(Report::Finished { outcome, output });
        });
    }

    fn cancel(&self, idempotency_key: &str) {
        self.running.cancel(idempotency_key);
    }
}

/// Runs the statements in order; the output of the last one that answers with rows.
async fn run(
    attempt: &Attempt,
    task: &ClickhouseTask,
    connections: &Connections,
    side_effects: &crate::ha::SideEffects,
    log: &mut AttemptLog,
    current_query: &Mutex<Option<(::clickhouse::Client, String)>>,
) -> Result<serde_json::Value, Outcome> {
    let conn = connections
        .clickhouse(&task.connection)
        .map_err(|e| failed(false, e.to_string()))?;
    let mut client = client_for(&conn).map_err(|e| failed(false, e))?;
    // 64-bit integers as JSON numbers, so templates and checks compare them as numbers.
    client = client.with_setting("output_format_json_quote_64bit_integers", "0");
    for (name, value) in &task.settings {
        let value = match value {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        client = client.with_setting(name, value);
    }
    let statements = statements::split(&task.sql);
    if statements.is_empty() {
        return Err(failed(false, "`sql` has no statement to run".into()));
    }
    log.line(&format!(
        "connection `{}` ({}), {} statement(s)",
        task.connection,
        redacted_url(&conn.url),
        statements.len()
    ));
    let max_rows = task.max_output_rows.unwrap_or(DEFAULT_MAX_OUTPUT_ROWS);
    if attempt.try_number > 1 {
        stop_earlier_tries(&client, attempt, log).await;
    }
    let mut output = None;
    for (index, statement) in statements.iter().enumerate() {
        let query_id = format!("{}#{}", attempt.idempotency_key, index + 1);
        log.line(&format!(
            "statement {}/{} (query id {query_id}):\n{statement}",
            index + 1,
            statements.len()
        ));
        side_effects
            .allow(&format!("statement {}", index + 1))
            .map_err(|reason| failed(true, reason))?;
        if let Ok(mut current) = current_query.lock() {
            *current = Some((client.clone(), query_id.clone()));
        }
        let started = Instant::now();
        let wants_rows = statements::returns_rows(statement);
        let fetched = fetch(&client, statement, &query_id, wants_rows, max_rows).await;
        if let Ok(mut current) = current_query.lock() {
            *current = None;
        }
        let rows = fetched.map_err(|e| {
            failed(
                errors::is_retryable(&e),
                format!(
                    "statement {} of {} failed: {e}",
                    index + 1,
                    statements.len()
                ),
            )
        })?;
        log.line(&format!(
            "statement {} done in {} ms{}",
            index + 1,
            started.elapsed().as_millis(),
            rows.as_ref()
                .map(|r| format!(", {} row(s)", r.rows.len()))
                .unwrap_or_default()
        ));
        if let Some(rows) = rows {
            output = Some(rows);
        }
        if task.wait_for_mutations
            && let Some((database, table)) = statements::mutated_table(statement)
        {
            let waited = Instant::now();
            wait_for_mutations(&client, database.as_deref(), &table)
                .await
                .map_err(|e| {
                    failed(
                        errors::is_retryable(&e),
                        format!("waiting for the mutation of `{table}`: {e}"),
                    )
                })?;
            log.line(&format!(
                "mutation of `{table}` finished after {} ms",
                waited.elapsed().as_millis()
            ));
        }
    }
    let rows = output.unwrap_or_default();
    let rows_json = rows
        .rows
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line).map_err(|e| {
                failed(
                    false,
                    format!("ClickHouse answered a row that is not JSON: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(serde_json::json!({
        "row_count": rows_json.len(),
        "truncated": rows.truncated,
        "statements": statements.len(),
        "rows": rows_json,
    }))
}

#[derive(Default)]
struct Rows {
    rows: Vec<String>,
    truncated: bool,
}

/// Runs one statement; reads its rows (JSONEachRow lines) when it answers with some.
async fn fetch(
    client: &::clickhouse::Client,
    statement: &str,
    query_id: &str,
    wants_rows: bool,
    max_rows: u64,
) -> Result<Option<Rows>, ::clickhouse::error::Error> {
    let query = client
        .query_raw(statement)
        .with_setting("query_id", query_id);
    if !wants_rows {
        query.execute().await?;
        return Ok(None);
    }
    let mut cursor = query.fetch_bytes("JSONEachRow")?;
    let mut pending = Vec::new();
    let mut rows = Rows::default();
    let mut bytes = 0usize;
    while let Some(chunk) = cursor.next().await? {
        bytes += chunk.len();
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line).trim().to_owned();
            if text.is_empty() {
                continue;
            }
            if rows.rows.len() as u64 >= max_rows {
                rows.truncated = true;
            } else {
                rows.rows.push(text);
            }
        }
        // Past the limits the rest is not worth reading; dropping the cursor ends the request.
        if rows.truncated || bytes > MAX_OUTPUT_BYTES {
            rows.truncated = true;
            return Ok(Some(rows));
        }
    }
    let rest = String::from_utf8_lossy(&pending).trim().to_owned();
    if !rest.is_empty() {
        if rows.rows.len() as u64 >= max_rows {
            rows.truncated = true;
        } else {
            rows.rows.push(rest);
        }
    }
    Ok(Some(rows))
}

/// Waits until the server has no unfinished mutation of a table (bounded by the attempt's
/// timeout, like every statement).
async fn wait_for_mutations(
    client: &::clickhouse::Client,
    database: Option<&str>,
    table: &str,
) -> Result<(), ::clickhouse::error::Error> {
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    let database = database.map_or("currentDatabase()".to_owned(), quote);
    let sql = format!(
        "SELECT count() AS pending FROM system.mutations \
         WHERE database = {database} AND table = {} AND is_done = 0",
        quote(table)
    );
    let mut pause = std::time::Duration::from_millis(50);
    loop {
        let answer = crate::clickhouse::queries::fetch(client, &sql, "TSV", 64).await?;
        if String::from_utf8_lossy(&answer).trim() == "0" {
            return Ok(());
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_secs(2));
    }
}

/// Before a retry: waits for the statements of the task's earlier tries still running on
/// the server to be killed. One whose scheduler crashed is not stopped by anyone else, and
/// an INSERT of it landing after this try's DELETE would duplicate the interval's rows.
async fn stop_earlier_tries(
    client: &::clickhouse::Client,
    attempt: &Attempt,
    log: &mut AttemptLog,
) {
    let prefix = format!("{}/{}/{}/", attempt.dag_id, attempt.run_id, attempt.task_id);
    let sql = format!(
        "KILL QUERY WHERE startsWith(query_id, '{}') SYNC",
        prefix.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let killed = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        client.query_raw(&sql).execute(),
    )
    .await;
    match killed {
        Ok(Ok(())) => {}
        Ok(Err(e)) => log.line(&format!(
            "could not stop the earlier tries' queries ({prefix}*): {e}"
        )),
        Err(_) => log.line(&format!(
            "could not stop the earlier tries' queries ({prefix}*): no answer in 30 s"
        )),
    }
}

/// Stops the statement an ended attempt left running on the server, if any.
async fn kill_current(
    current_query: &Mutex<Option<(::clickhouse::Client, String)>>,
    log: &mut AttemptLog,
) {
    let current = current_query.lock().ok().and_then(|mut c| c.take());
    let Some((client, query_id)) = current else {
        return;
    };
    let sql = format!(
        "KILL QUERY WHERE query_id = '{}' ASYNC",
        query_id.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let killed = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.query_raw(&sql).execute(),
    )
    .await;
    match killed {
        Ok(Ok(())) => log.line(&format!("asked the server to kill query {query_id}")),
        Ok(Err(e)) => log.line(&format!("could not kill query {query_id}: {e}")),
        Err(_) => log.line(&format!(
            "could not kill query {query_id}: no answer in 10 s"
        )),
    }
}

/// A URL with any `user:password@` part hidden, for logs.
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redacted_url;

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            redacted_url("http://bob:s3cret@ch:8123/"),
            "http://***@ch:8123/"
        );
        assert_eq!(redacted_url("http://ch:8123"), "http://ch:8123");
        assert_eq!(
            redacted_url("http://ch:8123/?a=b@c"),
            "http://ch:8123/?a=b@c"
        );
    }
}
