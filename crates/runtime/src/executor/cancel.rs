//! Cancel signals of running attempts by idempotency key, for executors whose attempts are
//! tasks on the async runtime: `cancel` wakes the attempt, which stops its own work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sluice_core::Outcome;
use tokio::sync::Notify;

#[derive(Clone, Default)]
pub struct CancelMap(Arc<Mutex<HashMap<String, Arc<Notify>>>>);

impl CancelMap {
    /// The signal an attempt starting now waits on.
    pub fn register(&self, key: &str) -> Arc<Notify> {
        let signal = Arc::new(Notify::new());
        if let Ok(mut map) = self.0.lock() {
            map.insert(key.to_owned(), Arc::clone(&signal));
        }
        signal
    }

    /// The attempt ended: nothing to cancel any more.
    pub fn finish(&self, key: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(key);
        }
    }

    /// Asks the attempt to stop (it may already have ended).
    pub fn cancel(&self, key: &str) {
        if let Some(signal) = self.0.lock().ok().and_then(|map| map.get(key).cloned()) {
            // `notify_one` keeps the permit when the attempt is not waiting at this moment.
            signal.notify_one();
        }
    }
}

/// An attempt's work, run until it ends, its timeout passes (`timed_out` says how that
/// fails) or it is cancelled (a retryable failure). The work stops where it is either way.
pub async fn bounded<T>(
    work: impl Future<Output = Result<T, Outcome>>,
    limit: Option<std::time::Duration>,
    cancel: &Notify,
    timed_out: impl FnOnce(std::time::Duration) -> Outcome,
) -> Result<T, Outcome> {
    let limited = async {
        match limit {
            Some(limit) => tokio::time::timeout(limit, work)
                .await
                .unwrap_or_else(|_| Err(timed_out(limit))),
            None => work.await,
        }
    };
    tokio::select! {
        result = limited => result,
        _ = cancel.notified() => Err(Outcome::Failed {
            retryable: true,
            reason: "cancelled".into(),
        }),
    }
}
