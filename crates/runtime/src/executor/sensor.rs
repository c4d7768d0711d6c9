//! `type: sensor`: asks a ClickHouse query every `poke_interval` until its first row's first
//! column says the condition holds. Pokes are the sensor's own accounting, not tries: one
//! attempt pokes as often as it needs (each poke a line in the attempt log, their count in
//! the output `{"pokes": n, "waited_seconds": s}`). A poke the server cannot answer for a
//! passing reason (network, load) is logged and the sensor pokes again; one that cannot run
//! at all (syntax, unknown table) fails the attempt for good. The task's `timeout` bounds
//! the whole wait, as for any task: a retryable failure when it passes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use super::attempt_log::AttemptLog;
use super::cancel::{CancelMap, bounded};
use super::clickhouse::redacted_url;
use super::{Attempt, Executor, Report, Reporter, wrong_kind};
use crate::clickhouse::{errors, queries};
use crate::connections::Connections;
use sluice_core::Outcome;
use sluice_model::spec::{SensorTask, TaskKind};

/// Most bytes of a poke's answer read: only its first value counts.
const MAX_ANSWER_BYTES: usize = 64 << 10;

pub struct SensorExecutor {
    runtime: tokio::runtime::Handle,
    connections: Connections,
    running: CancelMap,
}

impl SensorExecutor {
    pub fn new(runtime: tokio::runtime::Handle, connections: Connections) -> Self {
        SensorExecutor {
            runtime,
            connections,
            running: CancelMap::default(),
        }
    }
}

fn failed(retryable: bool, reason: String) -> Outcome {
    Outcome::Failed { retryable, reason }
}

impl Executor for SensorExecutor {
    fn name(&self) -> &'static str {
        "sensor"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let TaskKind::Sensor(task) = attempt.kind.clone() else {
            return reporter.fatal(wrong_kind("sensor", &attempt.kind));
        };
        let cancel = self.running.register(&attempt.idempotency_key);
        let running = self.running.clone();
        let connections = self.connections.clone();
        self.runtime.spawn(async move {
            let mut log = AttemptLog::open(&attempt.log_path);
            let started = Instant::now();
            let pokes = AtomicU64::new(0);
            let work = poke_until_ready(&task, &connections, &mut log, &pokes);
            let result = bounded(
                work,
                attempt.timeout.map(|t| t.as_std()),
                &cancel,
                |limit| {
                    failed(
                        true,
                        format!(
                            "not ready after {} poke(s) in {}",
                            pokes.load(Ordering::Relaxed),
                            sluice_model::spec::Duration::from_std(limit)
                        ),
                    )
                },
            )
            .await;
            running.finish(&attempt.idempotency_key);
            let pokes = pokes.load(Ordering::Relaxed);
            let (outcome, output) = match result {
                Ok(()) => {
                    let waited = started.elapsed().as_secs_f64();
                    log.line(&format!("ready after {pokes} poke(s), {waited:.1} s"));
                    (
                        Outcome::Success,
                        Some(serde_json::json!({ "pokes": pokes, "waited_seconds": waited })),
                    )
                }
                Err(outcome) => {
                    if let Outcome::Failed { reason, .. } = &outcome {
                        log.line(&format!("failed: {reason}"));
                    }
                    (outcome, None)
                }
            };
            reporter.send(Report::Finished { outcome, output });
        });
    }

    fn cancel(&self, idempotency_key: &str) {
        self.running.cancel(idempotency_key);
    }
}

/// Pokes until the query says ready; an error only when a poke cannot run at all.
async fn poke_until_ready(
    task: &SensorTask,
    connections: &Connections,
    log: &mut AttemptLog,
    pokes: &AtomicU64,
) -> Result<(), Outcome> {
    let conn = connections
        .clickhouse(&task.connection)
        .map_err(|e| failed(false, e.to_string()))?;
    let client = queries::client_for(&conn).map_err(|e| failed(false, e))?;
    log.line(&format!(
        "sensor on connection `{}` ({}), every {}:\n{}",
        task.connection,
        redacted_url(&conn.url),
        task.poke_interval,
        task.sql
    ));
    loop {
        let n = pokes.fetch_add(1, Ordering::Relaxed) + 1;
        match queries::fetch(&client, &task.sql, "TSV", MAX_ANSWER_BYTES).await {
            Ok(answer) if is_ready(&answer) => {
                log.line(&format!("poke {n}: ready"));
                return Ok(());
            }
            Ok(_) => log.line(&format!("poke {n}: not yet")),
            Err(e) if errors::is_retryable(&e) => {
                log.line(&format!("poke {n}: no answer ({e}); poking again"));
            }
            Err(e) => return Err(failed(false, format!("poke {n} failed: {e}"))),
        }
        tokio::time::sleep(task.poke_interval.as_std()).await;
    }
}

/// The first value of the first row is `1` or `true`.
fn is_ready(answer: &[u8]) -> bool {
    let text = String::from_utf8_lossy(answer);
    let first = text
        .lines()
        .next()
        .and_then(|row| row.split('\t').next())
        .unwrap_or_default()
        .trim();
    first == "1" || first.eq_ignore_ascii_case("true")
}

#[cfg(test)]
mod tests {
    use super::is_ready;

    #[test]
    fn ready_only_when_the_first_value_of_the_first_row_is_true() {
        assert!(is_ready(b"1\n"));
        assert!(is_ready(b"true\tx\n0\n"));
        assert!(!is_ready(b"0\n1\n"));
        assert!(!is_ready(b""));
        assert!(!is_ready(b"false\n"));
        assert!(!is_ready(b"12\n"));
    }
}
