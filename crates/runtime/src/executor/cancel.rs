//! Cancel signals of running attempts by idempotency key, for executors whose attempts are
//! tasks on the async runtime: `cancel` wakes the attempt, which stops its own work.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

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
