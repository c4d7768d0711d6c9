//! The Kafka side of gates: one link per connection, shared by every gate on it.
//!
//! A link holds one consumer for metadata, offsets and reading the newest messages, plus
//! one offset reader per watched consumer group (Kafka answers OffsetFetch for the group a
//! client is configured with, and this client library has no admin call for another
//! group's offsets). None of them subscribes or commits: watching never joins the
//! group, moves its offsets or triggers a rebalance.
//!
//! Every call is blocking with a timeout; the monitor calls them from its own thread.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
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

/// How long a topic's partition list and its partitions' earliest offsets are reused:
/// both change rarely (partitions added, retention), and asking costs a request each.
pub const SLOW_CHANGING_TTL: Duration = Duration::from_secs(30);

pub struct KafkaLink {
    conn: KafkaConnection,
    reader: BaseConsumer,
    groups: HashMap<String, BaseConsumer>,
    partitions: HashMap<String, (Vec<i32>, Instant)>,
    earliest: HashMap<String, (BTreeMap<i32, i64>, Instant)>,
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
        // What the client itself may fetch and queue ahead of a read: the gate reads small
        // reports and single messages, and a look keeps at most 16 MiB of them.
        .set("fetch.max.bytes", "16777216")
        .set("queued.max.messages.kbytes", "16384")
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
            partitions: HashMap::new(),
            earliest: HashMap::new(),
        })
    }

    /// The partition ids of a topic, asked again at most every [`SLOW_CHANGING_TTL`].
    pub fn partitions(&mut self, topic: &str) -> Result<Vec<i32>, String> {
        if let Some((ids, at)) = self.partitions.get(topic)
            && at.elapsed() < SLOW_CHANGING_TTL
        {
            return Ok(ids.clone());
        }
        let ids = self.fetch_partitions(topic)?;
        self.partitions
            .insert(topic.to_owned(), (ids.clone(), Instant::now()));
        Ok(ids)
    }

    /// Forgets what was cached of a topic (a look failed: ask everything again).
    pub fn forget(&mut self, topic: &str) {
        self.partitions.remove(topic);
        self.earliest.remove(topic);
    }

    fn fetch_partitions(&self, topic: &str) -> Result<Vec<i32>, String> {
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

    /// Low and high watermarks of every partition: one ListOffsets request for the latest
    /// offsets, and one for the earliest at most every [`SLOW_CHANGING_TTL`] (a ListOffsets
    /// for the special times -1 and -2 answers the latest and earliest offsets).
    pub fn offsets(
        &mut self,
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
        let low = match self.earliest.get(topic) {
            Some((low, at))
                if at.elapsed() < SLOW_CHANGING_TTL
                    && partitions.iter().all(|p| low.contains_key(p)) =>
            {
                low.clone()
            }
            _ => {
                let low = list(Offset::Beginning)?;
                self.earliest
                    .insert(topic.to_owned(), (low.clone(), Instant::now()));
                low
            }
        };
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

    /// Reads the messages of each partition in `[from, to)` (offsets), and gathers their
    /// event times: the newest believable one. Times missing, not positive or later than
    /// `latest_believable_ms` are counted as rejected. Partitions that answer nothing in
    /// time end short (`reached` false).
    pub fn scan(
        &self,
        topic: &str,
        ranges: &BTreeMap<i32, (i64, i64)>,
        latest_believable_ms: i64,
    ) -> Result<BTreeMap<i32, Scanned>, String> {
        let mut scanned: BTreeMap<i32, Scanned> = ranges
            .iter()
            .filter(|(_, (from, to))| from < to)
            .map(|(p, _)| (*p, Scanned::default()))
            .collect();
        let reached = self.fetch_ranges(topic, ranges, |message| {
            let Some(s) = scanned.get_mut(&message.partition()) else {
                return true;
            };
            s.messages += 1;
            match message.timestamp().to_millis() {
                Some(ms) if ms > 0 && ms <= latest_believable_ms => {
                    s.newest_ms = s.newest_ms.max(Some(ms));
                }
                _ => s.rejected += 1,
            }
            true
        })?;
        for p in reached {
            if let Some(s) = scanned.get_mut(&p) {
                s.reached = true;
            }
        }
        Ok(scanned)
    }

    /// Reads the payloads of each partition's messages in `[from, to)` (offsets), in offset
    /// order, within `limits`; a partition that answers nothing in time ends short.
    pub fn read_payloads(
        &self,
        topic: &str,
        ranges: &BTreeMap<i32, (i64, i64)>,
        limits: PayloadLimits,
    ) -> Result<BTreeMap<i32, Vec<Payload>>, String> {
        let mut read: BTreeMap<i32, Vec<Payload>> = BTreeMap::new();
        let mut bytes = 0usize;
        self.fetch_ranges(topic, ranges, |message| {
            let payload = message.payload().unwrap_or_default();
            // Kept cut one byte past the limit: the reader can tell it was too large.
            let kept = &payload[..payload.len().min(limits.per_message + 1)];
            bytes += kept.len();
            read.entry(message.partition())
                .or_default()
                .push((message.offset(), kept.to_vec()));
            bytes < limits.per_read
        })?;
        Ok(read)
    }

    /// Assigns each partition at the start of its range `[from, to)`, hands every message
    /// inside a range to `take` once, until every partition reached its end or the request
    /// time-out, then unassigns (the reader must not stream the topic between looks). The
    /// partitions that reached their end.
    fn fetch_ranges(
        &self,
        topic: &str,
        ranges: &BTreeMap<i32, (i64, i64)>,
        mut take: impl FnMut(&BorrowedMessage<'_>) -> bool,
    ) -> Result<BTreeSet<i32>, String> {
        let mut tpl = TopicPartitionList::new();
        let mut open = 0;
        for (p, (from, to)) in ranges {
            if from < to {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*from))
                    .map_err(|e| kafka_error("assign", e))?;
                open += 1;
            }
        }
        let mut reached = BTreeSet::new();
        if open == 0 {
            return Ok(reached);
        }
        self.reader
            .assign(&tpl)
            .map_err(|e| kafka_error("assign", e))?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        while reached.len() < open {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.reader.poll(left.min(Duration::from_millis(100))) {
                Some(Ok(message)) => {
                    let p = message.partition();
                    let Some((from, to)) = ranges.get(&p) else {
                        continue;
                    };
                    let offset = message.offset();
                    if reached.contains(&p) || offset < *from || offset >= *to {
                        continue;
                    }
                    let more = take(&message);
                    if offset + 1 >= *to {
                        reached.insert(p);
                    }
                    if !more {
                        break;
                    }
                }
                Some(Err(e)) => {
                    let _ = self.reader.unassign();
                    return Err(kafka_error("reading messages", e));
                }
                None => {}
            }
        }
        let _ = self.reader.unassign();
        Ok(reached)
    }
}

/// A message's offset and payload.
pub type Payload = (i64, Vec<u8>);

/// What one read of payloads may hold: a payload is kept up to `per_message` bytes (cut
/// one byte after, so a reader can tell), and the read stops once it holds `per_read`
/// bytes; the messages after are left for the next read.
#[derive(Debug, Clone, Copy)]
pub struct PayloadLimits {
    pub per_message: usize,
    pub per_read: usize,
}

/// What a scan of one partition found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scanned {
    pub messages: u64,
    /// The newest believable event time, in milliseconds.
    pub newest_ms: Option<i64>,
    /// Messages whose time was missing, not positive, or too far ahead.
    pub rejected: u64,
    /// Whether the scan got to the end of its range.
    pub reached: bool,
}
