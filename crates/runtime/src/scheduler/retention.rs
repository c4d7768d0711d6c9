//! The retention setting applied by the running scheduler: once at start and then hourly,
//! between iterations (so no run it compacts can be in use), history older than
//! `scheduler.retention` is compacted (see [`sluice_store::retention`]).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::engine::{Engine, Mode};

/// How often the store is compacted.
const COMPACT_EVERY: Duration = Duration::from_secs(3600);

impl Engine {
    pub(super) fn maybe_compact(&mut self, now: DateTime<Utc>) {
        let Some(retention) = self.config.retention else {
            return;
        };
        if self.config.mode != Mode::Scheduler
            || self.shutdown_at.is_some()
            || self
                .last_compaction
                .is_some_and(|at| at.elapsed() < COMPACT_EVERY)
        {
            return;
        }
        self.last_compaction = Some(Instant::now());
        let cutoff = now - retention.as_chrono();
        match self.store.compact(cutoff) {
            Ok(compacted) if !compacted.is_empty() => self.log(format!(
                "retention {retention}: compacted the history that ended before {}: {compacted}",
                sluice_model::spec::instant::format_instant(cutoff)
            )),
            Ok(_) => {}
            Err(e) => self.log(format!("retention: compacting the history failed: {e}")),
        }
    }
}
