//! One look at a watched topic and group, turned into a [`TopicView`] for the gate rules,
//! with the memory that makes looks cheap and restarts not blind.
//!
//! Each look reads only what was appended since the previous one (from each partition's
//! scan position to its high watermark): the newest event time moves each partition's
//! watermark, and the event times of those arrivals are counted per second so the loop can
//! tell late data (arrivals for intervals whose gate already opened). The lag window
//! (Burrow's rules), the scan positions and the event times carry over between looks and
//! across restarts.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::client::KafkaLink;
use sluice_core::gate::{PartitionView, TopicView};
use sluice_core::lag::{self, Observation};
use sluice_core::time_lag::time_lag;

/// Observations kept per partition for Burrow's rules (Burrow's default window).
pub const LAG_WINDOW: usize = 10;
/// Event times further ahead of the scheduler's clock than this are not believed: a
/// producer with a broken clock must not open every gate.
pub const MAX_FUTURE_SKEW: TimeDelta = TimeDelta::hours(1);
/// Most messages of one partition read in one look. Beyond it a look reads only the newest
/// message (for the watermark) and the skipped arrivals are not counted for late data.
pub const SCAN_BUDGET: i64 = 200_000;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceMemory {
    pub partitions: BTreeMap<i32, PartitionMemory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMemory {
    pub high_watermark: i64,
    /// Offsets below this were read (or were there before watching began).
    pub scanned_to: i64,
    pub event_time: Option<DateTime<Utc>>,
    pub last_append: DateTime<Utc>,
    pub window: VecDeque<Observation>,
    /// Messages whose timestamp was not believed (missing, not positive or far ahead).
    #[serde(default)]
    pub rejected_timestamps: u64,
}

/// A look: the view for the gates, and what arrived since the previous look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub view: TopicView,
    /// Messages appended since the previous look, per event-time second (Unix seconds).
    pub arrivals: BTreeMap<i64, u64>,
    /// Arrivals not read because a partition got more than [`SCAN_BUDGET`] in one look.
    pub uncounted: u64,
}

/// The offsets of every partition, and the group's committed ones.
type Offsets = (BTreeMap<i32, super::client::Offsets>, BTreeMap<i32, i64>);

fn look_at_offsets(link: &mut KafkaLink, topic: &str, group: &str) -> Result<Offsets, String> {
    let ids = link.partitions(topic)?;
    let offsets = link.offsets(topic, &ids)?;
    let committed = link.committed(group, topic, &ids)?;
    Ok((offsets, committed))
}

/// Looks at the topic and group once, updating `memory`.
pub fn observe(
    link: &mut KafkaLink,
    topic: &str,
    group: &str,
    memory: &mut SourceMemory,
    now: DateTime<Utc>,
) -> Result<Look, String> {
    let seen = look_at_offsets(link, topic, group);
    if seen.is_err() {
        link.forget(topic);
    }
    let (offsets, committed) = seen?;
    // Partitions gone from the topic (it was recreated) are forgotten.
    memory.partitions.retain(|p, _| offsets.contains_key(p));
    let mut ranges = BTreeMap::new();
    let mut counted = Vec::new();
    let mut uncounted = 0u64;
    for (p, o) in &offsets {
        let m = memory
            .partitions
            .entry(*p)
            .or_insert_with(|| PartitionMemory {
                high_watermark: o.high,
                scanned_to: -1,
                event_time: None,
                last_append: now,
                window: VecDeque::new(),
                rejected_timestamps: 0,
            });
        if m.high_watermark != o.high {
            m.high_watermark = o.high;
            m.last_append = now;
        }
        let newest = (o.high - 1).max(o.low);
        let from = if m.scanned_to < o.low || m.scanned_to > o.high {
            // First sight (or the log was truncated or recreated): only the newest
            // message, for the watermark; what is older was there before watching.
            newest
        } else if o.high - m.scanned_to > SCAN_BUDGET {
            uncounted += u64::try_from(newest - m.scanned_to).unwrap_or(0);
            newest
        } else {
            counted.push(*p);
            m.scanned_to
        };
        if from < o.high {
            ranges.insert(*p, (from, o.high));
        } else {
            m.scanned_to = o.high;
        }
    }
    let believable = (now + MAX_FUTURE_SKEW).timestamp_millis();
    let scanned = link.scan(topic, &ranges, believable)?;
    let mut arrivals = BTreeMap::new();
    let mut partitions = Vec::with_capacity(offsets.len());
    for (p, o) in &offsets {
        let Some(m) = memory.partitions.get_mut(p) else {
            continue;
        };
        if let Some(s) = scanned.get(p) {
            if s.reached {
                m.scanned_to = o.high;
            } else if s.messages > 0 {
                m.scanned_to = s.next_offset;
            }
            // A partition's watermark never goes back (out-of-order messages).
            let newest = s.newest_ms.and_then(DateTime::from_timestamp_millis);
            m.event_time = m.event_time.max(newest);
            m.rejected_timestamps += s.rejected;
            if counted.contains(p) {
                for (second, n) in &s.per_second {
                    *arrivals.entry(*second).or_insert(0) += n;
                }
            }
        }
        let committed = committed.get(p).copied();
        let consumed_to = committed.unwrap_or(o.low);
        m.window.push_back(Observation {
            at: now,
            committed: committed.unwrap_or(o.low),
            high_watermark: o.high,
        });
        while m.window.len() > LAG_WINDOW {
            m.window.pop_front();
        }
        partitions.push(PartitionView {
            partition: *p,
            low_watermark: o.low,
            high_watermark: o.high,
            committed,
            event_time: m.event_time,
            last_append: m.last_append,
            lag_status: lag::partition_status(m.window.make_contiguous(), now),
            time_lag_ms: time_lag(m.window.make_contiguous(), consumed_to, now).num_milliseconds(),
        });
    }
    Ok(Look {
        view: TopicView {
            at: now,
            partitions,
        },
        arrivals,
        uncounted,
    })
}
