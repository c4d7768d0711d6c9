//! What a generator run produced, per interval of event time: the truth the end-to-end
//! checks compare the batch and stream layers with.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::events::Arrival;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalCounts {
    pub events: u64,
    /// Of those, arriving late (after `late_by`).
    pub late: u64,
}

/// Events per interval start (`interval` wide, aligned to the Unix epoch).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub interval_seconds: i64,
    pub intervals: BTreeMap<DateTime<Utc>, IntervalCounts>,
}

impl Manifest {
    pub fn new(interval: TimeDelta) -> Manifest {
        Manifest {
            interval_seconds: interval.num_seconds().max(1),
            intervals: BTreeMap::new(),
        }
    }

    pub fn count(&mut self, arrival: &Arrival) {
        let interval = TimeDelta::seconds(self.interval_seconds);
        let start = arrival
            .happened
            .duration_trunc(interval)
            .unwrap_or(arrival.happened);
        let counts = self.intervals.entry(start).or_default();
        counts.events += 1;
        counts.late += u64::from(arrival.late);
    }

    pub fn total(&self) -> u64 {
        self.intervals.values().map(|c| c.events).sum()
    }
}
