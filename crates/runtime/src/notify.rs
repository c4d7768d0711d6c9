//! SLA notifications: each raised event is POSTed as JSON to every configured webhook, on a
//! thread of its own (a slow or dead receiver never touches the loop), retried with
//! exponential backoff up to the target's `attempts`. Each try's outcome is written to the
//! event's record, so a restart resumes the deliveries still pending and `sluice sla
//! report` shows what reached whom.
//!
//! Receivers may see an event twice (a crash between a delivery and its record): the
//! `Idempotency-Key` header (`<dag>/<run_id>/<kind>`) lets them drop the repeat.

use std::time::Duration;

use chrono::Utc;

use crate::config::Webhook;
use sluice_store::{SlaEventRecord, Store};

/// The longest wait between two tries.
const MAX_BACKOFF: Duration = Duration::from_secs(300);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Hands events to the notifier thread.
pub struct Notifier {
    sender: tokio::sync::mpsc::UnboundedSender<SlaEventRecord>,
}

impl Notifier {
    /// Starts the thread; it first resumes the deliveries the store has pending.
    pub fn start(
        store: Store,
        webhooks: Vec<Webhook>,
        first_backoff: Duration,
        verbose: bool,
    ) -> std::io::Result<Notifier> {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<SlaEventRecord>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(std::io::Error::other)?;
        let pending = store.undelivered_sla_events().unwrap_or_default();
        std::thread::Builder::new()
            .name("sluice-notify".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let deliver = |event: SlaEventRecord| {
                        let job = Delivering {
                            store: store.clone(),
                            client: client.clone(),
                            webhooks: webhooks.clone(),
                            first_backoff,
                            verbose,
                        };
                        tokio::spawn(job.run(event))
                    };
                    for event in pending {
                        deliver(event);
                    }
                    while let Some(event) = receiver.recv().await {
                        deliver(event);
                    }
                });
            })?;
        Ok(Notifier { sender })
    }

    pub fn send(&self, event: SlaEventRecord) {
        // The thread lives as long as the process; a closed channel loses nothing durable
        // (the event is in the store and resumed at the next start).
        let _ = self.sender.send(event);
    }
}

struct Delivering {
    store: Store,
    client: reqwest::Client,
    webhooks: Vec<Webhook>,
    first_backoff: Duration,
    verbose: bool,
}

impl Delivering {
    async fn run(self, mut event: SlaEventRecord) {
        let body = body(&event);
        for index in 0..event.deliveries.len() {
            let Some(hook) = self
                .webhooks
                .iter()
                .find(|w| w.name == event.deliveries[index].target)
                .cloned()
            else {
                // The target left the configuration: nothing to send it to.
                event.deliveries[index].gave_up = true;
                event.deliveries[index].last_error = Some("target no longer configured".into());
                let _ = self.store.put_sla_event(&event);
                continue;
            };
            while event.deliveries[index].pending() {
                let tries = event.deliveries[index].attempts;
                if tries > 0 {
                    tokio::time::sleep(backoff(self.first_backoff, tries)).await;
                }
                let outcome = self.post(&hook, &event, &body).await;
                let delivery = &mut event.deliveries[index];
                delivery.attempts += 1;
                match outcome {
                    Ok(()) => {
                        delivery.delivered_at = Some(Utc::now());
                        delivery.last_error = None;
                    }
                    Err(error) => {
                        if self.verbose {
                            tracing::warn!(
                                dag = %event.dag,
                                run = %event.run_id,
                                target = %hook.name,
                                "notify: SLA {} to `{}`: try {} failed: {error}",
                                event.kind.name(),
                                hook.name,
                                delivery.attempts
                            );
                        }
                        delivery.last_error = Some(error);
                        delivery.gave_up = delivery.attempts >= hook.attempts;
                    }
                }
                let _ = self.store.put_sla_event(&event);
            }
        }
    }

    async fn post(
        &self,
        hook: &Webhook,
        event: &SlaEventRecord,
        body: &serde_json::Value,
    ) -> Result<(), String> {
        let mut request = self
            .client
            .post(&hook.url)
            .header(
                "Idempotency-Key",
                format!("{}/{}/{}", event.dag, event.run_id, event.kind.name()),
            )
            .json(body);
        if let Some(token) = &hook.token {
            request = request.bearer_auth(token.expose());
        }
        let response = request.send().await.map_err(|e| {
            // reqwest's errors name the URL, which may carry a secret in its query.
            e.without_url().to_string()
        })?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the receiver answered {status}"))
        }
    }
}

/// Wait before try `tries + 1`: the first backoff doubled per earlier retry, capped.
fn backoff(first: Duration, tries: u32) -> Duration {
    first
        .saturating_mul(1 << tries.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// The JSON posted: the event's fields and a `text` line for chat webhooks.
pub fn body(event: &SlaEventRecord) -> serde_json::Value {
    serde_json::json!({
        "type": format!("sla_{}", event.kind.name()),
        "dag_id": event.dag,
        "run_id": event.run_id,
        "logical_date": event.logical_date,
        "data_interval_end": event.interval_end,
        "due": event.due,
        "raised_at": event.raised_at,
        "latency_seconds": (event.raised_at - event.interval_end).num_milliseconds() as f64 / 1000.0,
        "run_state": event.run_state,
        "reason": event.reason,
        "text": format!("Sluice SLA {}: {} {}: {}", event.kind.name(), event.dag, event.run_id, event.reason),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_first_wait_and_is_capped() {
        let first = Duration::from_secs(2);
        assert_eq!(backoff(first, 1), Duration::from_secs(2));
        assert_eq!(backoff(first, 2), Duration::from_secs(4));
        assert_eq!(backoff(first, 3), Duration::from_secs(8));
        assert_eq!(backoff(first, 30), MAX_BACKOFF);
    }
}
