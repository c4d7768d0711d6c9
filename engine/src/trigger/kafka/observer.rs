//! One look at a watched topic and group, turned into a [`TopicView`] for the gate rules,
//! with the memory that makes looks cheap and restarts not blind: each partition's newest
//! event time is read again only when its high watermark moved, and the lag window
//! (Burrow's rules) carries over between looks and across restarts.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::client::KafkaLink;
use crate::core::gate::{PartitionView, TopicView};
use crate::core::lag::{self, Observation};

/// Observations kept per partition for Burrow's rules (Burrow's default window).
pub const LAG_WINDOW: usize = 10;
/// Event times further ahead of the scheduler's clock than this are not believed: a
/// producer with a broken clock must not open every gate.
pub const MAX_FUTURE_SKEW: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceMemory {
    pub partitions: BTreeMap<i32, PartitionMemory>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMemory {
    pub high_watermark: i64,
    /// The high watermark the event time was read at.
    pub read_at_high_watermark: i64,
    pub event_time: Option<DateTime<Utc>>,
    pub last_append: DateTime<Utc>,
    pub window: VecDeque<Observation>,
    /// Messages whose timestamp was not believed (missing, negative or far ahead).
    #[serde(default)]
    pub rejected_timestamps: u64,
}

/// Looks at the topic and group once, updating `memory`.
pub fn observe(
    link: &mut KafkaLink,
    topic: &str,
    group: &str,
    memory: &mut SourceMemory,
    now: DateTime<Utc>,
) -> Result<TopicView, String> {
    let ids = link.partitions(topic)?;
    let offsets = link.offsets(topic, &ids)?;
    let committed = link.committed(group, topic, &ids)?;
    // Partitions that got messages since their event time was last read.
    let to_read: BTreeMap<i32, i64> = offsets
        .iter()
        .filter(|(p, o)| {
            o.high > o.low
                && memory
                    .partitions
                    .get(p)
                    .is_none_or(|m| m.read_at_high_watermark != o.high)
        })
        .map(|(p, o)| (*p, o.high - 1))
        .collect();
    let read = link.timestamps_at(topic, &to_read)?;
    // Partitions gone from the topic (it was recreated) are forgotten.
    memory.partitions.retain(|p, _| offsets.contains_key(p));
    let mut partitions = Vec::with_capacity(offsets.len());
    for (p, o) in &offsets {
        let m = memory
            .partitions
            .entry(*p)
            .or_insert_with(|| PartitionMemory {
                high_watermark: o.high,
                read_at_high_watermark: -1,
                event_time: None,
                last_append: now,
                window: VecDeque::new(),
                rejected_timestamps: 0,
            });
        if m.high_watermark != o.high {
            m.high_watermark = o.high;
            m.last_append = now;
        }
        if let Some(at) = read.get(p) {
            m.read_at_high_watermark = o.high;
            match at {
                Some(at) if *at <= now + MAX_FUTURE_SKEW => {
                    // A partition's watermark never goes back (out-of-order messages).
                    m.event_time = m.event_time.max(Some(*at));
                }
                _ => m.rejected_timestamps += 1,
            }
        }
        let committed = committed.get(p).copied();
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
        });
    }
    Ok(TopicView {
        at: now,
        partitions,
    })
}
