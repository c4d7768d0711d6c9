//! SLA events (`sla_events` tree, `dag \0 logical \0 kind`): what was raised for which run,
//! and its delivery to each notification target. The loop inserts an event in its group
//! commit; the notifier then updates the deliveries of that event only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, Store, StoreError, decode, encode, keys};
use sluice_core::sla::SlaKind;

/// One raised SLA event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaEventRecord {
    pub dag: String,
    pub run_id: String,
    pub logical_date: DateTime<Utc>,
    pub interval_end: DateTime<Utc>,
    pub kind: SlaKind,
    /// The threshold passed: interval end + warn_after or deadline.
    pub due: DateTime<Utc>,
    pub raised_at: DateTime<Utc>,
    /// The run's state when raised.
    pub run_state: String,
    pub reason: String,
    /// One per notification target, in configuration order.
    #[serde(default)]
    pub deliveries: Vec<Delivery>,
}

/// A notification of one event to one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub target: String,
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Tries ran out: no more attempts.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gave_up: bool,
}

impl Delivery {
    pub fn pending(&self) -> bool {
        self.delivered_at.is_none() && !self.gave_up
    }
}

pub(super) fn key(record: &SlaEventRecord) -> Vec<u8> {
    keys::task_key(&record.dag, record.logical_date, record.kind.name())
}

impl Store {
    /// Events of runs with logical dates in `[from, to)`, oldest first.
    pub fn sla_events_between(
        &self,
        dag: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SlaEventRecord>> {
        self.sla_events
            .range(keys::dag_time(dag, from)..keys::dag_time(dag, to))
            .values()
            .map(|v| decode("sla event", &v?))
            .collect()
    }

    /// Events with a delivery still to make (after a restart, the notifier resumes them).
    pub fn undelivered_sla_events(&self) -> Result<Vec<SlaEventRecord>> {
        let mut pending = Vec::new();
        for value in self.sla_events.iter().values() {
            let record: SlaEventRecord = decode("sla event", &value?)?;
            if record.deliveries.iter().any(Delivery::pending) {
                pending.push(record);
            }
        }
        Ok(pending)
    }

    /// Writes an event's deliveries (the notifier); durable at once.
    pub fn put_sla_event(&self, record: &SlaEventRecord) -> Result<()> {
        self.sla_events.insert(key(record), encode(record))?;
        self.sla_events.flush().map_err(StoreError::Sled)?;
        Ok(())
    }
}
