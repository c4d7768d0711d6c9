//! The Kafka side of gates: one link per connection, shared by every gate on it.
//!
//! A link holds one consumer for metadata, offsets and reading the newest messages, plus
//! one offset reader per watched consumer group (Kafka answers OffsetFetch for the group a
//! client is configured with, and this client library has no admin call for another
//! group's offsets). None of them subscribes or commits: watching never joins the
//! group, moves its offsets or triggers a rebalance.
//!
//! Every call is blocking with a timeout; the monitor calls them from its own thread.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::connections::KafkaConnection;

/// How long one broker request may take before the view counts as unavailable.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Offsets {
    pub low: i64,
    pub high: i64,
}

pub struct KafkaLink {
    conn: KafkaConnection,
    reader: BaseConsumer,
    groups: HashMap<String, BaseConsumer>,
}

fn config(conn: &KafkaConnection, group: &str) -> Result<ClientConfig, String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &conn.bootstrap_servers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false")
        .set("fetch.wait.max.ms", "10")
        .set("socket.timeout.ms", "10000")
        .set("client.id", "sluice-gate");
    for (key, value) in &conn.properties {
        config.set(key, value);
    }
    if let Some(var) = &conn.sasl_password_env {
        let password = std::env::var(var)
            .map_err(|_| format!("the Kafka password variable {var} is not set"))?;
        config.set("sasl.password", password);
    }
    Ok(config)
}

fn kafka_error(what: &str, e: rdkafka::error::KafkaError) -> String {
    format!("{what}: {e}")
}

impl KafkaLink {
    pub fn new(conn: KafkaConnection) -> Result<KafkaLink, String> {
        let reader = config(&conn, "sluice-gate-reader")?
            .create::<BaseConsumer>()
            .map_err(|e| kafka_error("creating the Kafka client", e))?;
        Ok(KafkaLink {
            conn,
            reader,
            groups: HashMap::new(),
        })
    }

    /// The partition ids of a topic.
    pub fn partitions(&self, topic: &str) -> Result<Vec<i32>, String> {
        let metadata = self
            .reader
            .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("metadata", e))?;
        let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
            return Err(format!("topic `{topic}` not found"));
        };
        if let Some(error) = found.error() {
            return Err(format!("topic `{topic}`: {error:?}"));
        }
        let mut ids: Vec<i32> = found.partitions().iter().map(|p| p.id()).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Low and high watermarks of every partition, in two ListOffsets requests (a
    /// ListOffsets for the special times -2 and -1 answers the earliest and latest offsets).
    pub fn offsets(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, Offsets>, String> {
        // Offset::End and Offset::Beginning are -1 and -2 on the wire: as ListOffsets times
        // they ask for the latest and the earliest offset.
        let list = |time: Offset| -> Result<BTreeMap<i32, i64>, String> {
            let mut tpl = TopicPartitionList::new();
            for p in partitions {
                tpl.add_partition_offset(topic, *p, time)
                    .map_err(|e| kafka_error("offsets", e))?;
            }
            let answer = self
                .reader
                .offsets_for_times(tpl, REQUEST_TIMEOUT)
                .map_err(|e| kafka_error("list offsets", e))?;
            answer
                .elements()
                .iter()
                .map(|e| match e.offset() {
                    Offset::Offset(o) => Ok((e.partition(), o)),
                    other => Err(format!(
                        "list offsets: partition {} answered {other:?}",
                        e.partition()
                    )),
                })
                .collect()
        };
        let high = list(Offset::End)?;
        let low = list(Offset::Beginning)?;
        Ok(high
            .into_iter()
            .map(|(p, high)| {
                let low = low.get(&p).copied().unwrap_or(0).min(high);
                (p, Offsets { low, high })
            })
            .collect())
    }

    /// The group's committed offset of each partition (absent: never committed).
    pub fn committed(
        &mut self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<BTreeMap<i32, i64>, String> {
        if !self.groups.contains_key(group) {
            let consumer = config(&self.conn, group)?
                .create::<BaseConsumer>()
                .map_err(|e| kafka_error("creating the Kafka client", e))?;
            self.groups.insert(group.to_owned(), consumer);
        }
        let Some(consumer) = self.groups.get(group) else {
            return Err(format!("no offset reader for group `{group}`"));
        };
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition(topic, *p);
        }
        let answer = consumer
            .committed_offsets(tpl, REQUEST_TIMEOUT)
            .map_err(|e| kafka_error("committed offsets", e))?;
        Ok(answer
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) if o >= 0 => Some((e.partition(), o)),
                _ => None,
            })
            .collect())
    }

    /// The timestamp of the message at each given offset (the newest of each partition),
    /// read in one fetch round. Partitions that answer nothing in time are left out.
    pub fn timestamps_at(
        &self,
        topic: &str,
        offsets: &BTreeMap<i32, i64>,
    ) -> Result<BTreeMap<i32, Option<DateTime<Utc>>>, String> {
        let mut found = BTreeMap::new();
        if offsets.is_empty() {
            return Ok(found);
        }
        let mut tpl = TopicPartitionList::new();
        for (p, offset) in offsets {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*offset))
                .map_err(|e| kafka_error("assign", e))?;
        }
        self.reader
            .assign(&tpl)
            .map_err(|e| kafka_error("assign", e))?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        while found.len() < offsets.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.reader.poll(left.min(Duration::from_millis(100))) {
                Some(Ok(message)) => {
                    let p = message.partition();
                    if offsets.get(&p).is_some_and(|o| message.offset() >= *o) {
                        let at = message
                            .timestamp()
                            .to_millis()
                            .filter(|ms| *ms > 0)
                            .and_then(DateTime::from_timestamp_millis);
                        found.entry(p).or_insert(at);
                    }
                }
                Some(Err(e)) => {
                    let _ = self.reader.unassign();
                    return Err(kafka_error("reading the newest messages", e));
                }
                None => {}
            }
        }
        // Stop fetching: the reader must not stream the topic between looks.
        let _ = self.reader.unassign();
        Ok(found)
    }
}
