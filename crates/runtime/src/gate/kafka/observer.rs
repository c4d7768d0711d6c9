//! One look at a watched topic and group, turned into a [`TopicView`] for the gate rules,
//! with the memory that makes looks cheap and restarts not blind.
//!
//! A look costs O(partitions), whatever the message rate: offsets (one ListOffsets), the
//! group's committed offsets (one OffsetFetch), and either
//! - with the raw-zone sink's arrival reports (`arrivals_topic`, [`arrivals`]): the reports
//!   since the previous look, a few per flush however many events they count. They give
//!   each partition's newest event time *written to the raw zone* (the watermark of what
//!   Spark reads) and the late-data counts; no message of the events topic is read;
//! - without: the newest message of each partition that got any since the previous look
//!   (its timestamp moves the partition's watermark); late data is not counted.
//!
//! The lag window (Burrow's rules), the positions and the event times carry over between
//! looks and across restarts.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use super::arrivals::{self, ArrivalsMemory};
use super::client::KafkaLink;
use sluice_core::gate::{PartitionView, TopicView};
use sluice_core::lag::{self, Observation};
use sluice_core::time_lag::time_lag;

/// Observations kept per partition for Burrow's rules (Burrow's default window).
pub const LAG_WINDOW: usize = 10;
/// Event times further ahead of the scheduler's clock than this are not believed: a
/// producer with a broken clock must not open every gate.
pub const MAX_FUTURE_SKEW: TimeDelta = TimeDelta::hours(1);

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SourceMemory {
    pub partitions: BTreeMap<i32, PartitionMemory>,
    /// How far the arrival reports were read.
    #[serde(default)]
    pub arrivals: ArrivalsMemory,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionMemory {
    pub high_watermark: i64,
    /// The high watermark when the newest message was last read (nothing new since when
    /// it is still the high watermark).
    pub scanned_to: i64,
    pub event_time: Option<DateTime<Utc>>,
    pub last_append: DateTime<Utc>,
    pub window: VecDeque<Observation>,
    /// Newest messages whose timestamp was not believed (missing, not positive or far
    /// ahead).
    #[serde(default)]
    pub rejected_timestamps: u64,
}

/// A look: the view for the gates, and what the raw-zone sink reported since the previous
/// look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Look {
    pub view: TopicView,
    /// Events written since the previous look, per event-time minute (Unix seconds of the
    /// minute's start), from the arrival reports; empty without an arrivals topic.
    pub arrivals: BTreeMap<i64, u64>,
    /// Messages read in this look: the newest of each partition with news, and the
    /// arrival reports (the figure the gate benchmark holds flat against the rate).
    pub messages_read: u64,
    /// Why the arrival reports could not be read (the gate still decides on the topic's
    /// watermark and lag; late data is not counted meanwhile).
    pub arrivals_error: Option<String>,
}

/// The offsets of every partition, and the group's committed ones.
type Offsets = (BTreeMap<i32, super::client::Offsets>, BTreeMap<i32, i64>);

fn look_at_offsets(link: &mut KafkaLink, topic: &str, group: &str) -> Result<Offsets, String> {
    let ids = link.partitions(topic)?;
    let offsets = link.offsets(topic, &ids)?;
    let committed = link.committed(group, topic, &ids)?;
    Ok((offsets, committed))
}

/// Looks at the topic and group once, updating `memory`; with an arrivals topic, reads
/// the raw-zone sink's reports too.
pub fn observe(
    link: &mut KafkaLink,
    topic: &str,
    group: &str,
    arrivals_topic: Option<&str>,
    lag_only: bool,
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
        // Only the newest message, and only when something arrived. A newer event time
        // among the messages in between is missed, so the watermark may trail by a look;
        // it never runs ahead of the data.
        if !lag_only && arrivals_topic.is_none() && o.high > o.low && m.scanned_to != o.high {
            ranges.insert(*p, (o.high - 1, o.high));
        }
    }
    let believable = (now + MAX_FUTURE_SKEW).timestamp_millis();
    let scanned = link.scan(topic, &ranges, believable)?;
    let mut messages_read = 0;
    let (mut arrivals, mut arrivals_error) = (BTreeMap::new(), None);
    if let Some(reports) = arrivals_topic {
        match arrivals::read(link, reports, &mut memory.arrivals) {
            Ok(read) => {
                messages_read += read.reports;
                arrivals = read.per_minute;
                for (p, ms) in read.newest {
                    let Some(m) = memory.partitions.get_mut(&p) else {
                        continue;
                    };
                    if ms > 0 && ms <= believable {
                        m.event_time = m.event_time.max(DateTime::from_timestamp_millis(ms));
                    } else {
                        m.rejected_timestamps += 1;
                    }
                }
            }
            Err(e) => {
                link.forget(reports);
                arrivals_error = Some(format!("arrival reports in `{reports}`: {e}"));
            }
        }
    }
    let mut partitions = Vec::with_capacity(offsets.len());
    for (p, o) in &offsets {
        let Some(m) = memory.partitions.get_mut(p) else {
            continue;
        };
        if let Some(s) = scanned.get(p) {
            messages_read += s.messages;
            if s.reached {
                m.scanned_to = o.high;
            }
            // A partition's watermark never goes back (out-of-order messages).
            let newest = s.newest_ms.and_then(DateTime::from_timestamp_millis);
            m.event_time = m.event_time.max(newest);
            m.rejected_timestamps += s.rejected;
        } else if o.high <= o.low {
            m.scanned_to = o.high;
        }
        let committed = committed.get(p).copied();
        let consumed_to = committed.unwrap_or(o.low);
        m.window.push_back(Observation {
            at: now,
            committed: consumed_to,
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
        messages_read,
        arrivals_error,
    })
}
