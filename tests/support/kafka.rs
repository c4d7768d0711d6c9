//! The Kafka-protocol broker scripts/test starts (tansu, scripts/services/kafka), its
//! bootstrap address in SLUICE_TEST_KAFKA_BOOTSTRAP: topics, producing with event-time
//! timestamps, committing a group's offsets.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

type Error = Box<dyn std::error::Error + Send + Sync>;

pub fn bootstrap() -> String {
    match std::env::var("SLUICE_TEST_KAFKA_BOOTSTRAP") {
        Ok(address) => address,
        Err(_) => panic!(
            "SLUICE_TEST_KAFKA_BOOTSTRAP is not set: start the broker with `scripts/services/kafka start` (scripts/test does)"
        ),
    }
}

/// `SLUICE_CONN_<NAME>` for a broker.
pub fn connection(bootstrap: &str) -> String {
    serde_json::json!({"type": "kafka", "bootstrap_servers": bootstrap}).to_string()
}

pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) -> Result<(), Error> {
    sluice_demo::services::create_topic(bootstrap, name, partitions)
}

/// A producer that compresses with lz4 (the broker mishandles snappy batches).
pub fn producer(bootstrap: &str) -> Result<BaseProducer, Error> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", "lz4")
        .set("linger.ms", "0")
        .create()?)
}

/// Produces one message per event time (milliseconds since the epoch) to a partition.
pub fn produce(
    producer: &BaseProducer,
    topic: &str,
    partition: i32,
    event_times_ms: &[i64],
) -> Result<(), Error> {
    for (i, at) in event_times_ms.iter().enumerate() {
        let payload = format!("{{\"n\": {i}, \"event_time\": {at}}}");
        producer
            .send(
                BaseRecord::to(topic)
                    .partition(partition)
                    .timestamp(*at)
                    .key("k")
                    .payload(&payload),
            )
            .map_err(|(e, _)| e)?;
    }
    producer.flush(Duration::from_secs(10))?;
    Ok(())
}

/// Commits a group's offsets (a standalone consumer: no group membership needed).
pub fn commit(
    bootstrap: &str,
    group: &str,
    topic: &str,
    offsets: &[(i32, i64)],
) -> Result<(), Error> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for (p, o) in offsets {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
    }
    consumer.commit(&tpl, CommitMode::Sync)?;
    Ok(())
}

/// Milliseconds since the epoch of an RFC 3339 instant.
pub fn ms(instant: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(instant)
        .map(|d| d.timestamp_millis())
        .unwrap_or_else(|e| panic!("bad instant {instant}: {e}"))
}
