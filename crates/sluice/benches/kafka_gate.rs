//! Gate evaluation for a topic of 64 partitions against a real Kafka-protocol broker: one
//! look (metadata, two ListOffsets, OffsetFetch, reading what was appended) plus the gate
//! decision. Goal: ≤ 50 ms.
//!
//! Needs a broker: `scripts/services/kafka start`, then
//! `SLUICE_BENCH_KAFKA_BOOTSTRAP=127.0.0.1:19092 cargo bench -p sluice --bench kafka_gate`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_core::gate::{GateRule, decide};
use sluice_runtime::connections::Connections;
use sluice_runtime::gate::kafka::GateSource;
use sluice_runtime::gate::kafka::monitor::look;
use sluice_runtime::gate::kafka::observer::SourceMemory;

type Error = Box<dyn std::error::Error>;

const PARTITIONS: i32 = 64;
const SAMPLES: usize = 30;

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn produce(
    producer: &BaseProducer,
    topic: &str,
    per_partition: i64,
    base_ms: i64,
) -> Result<(), Error> {
    for p in 0..PARTITIONS {
        for i in 0..per_partition {
            producer
                .send(
                    BaseRecord::to(topic)
                        .partition(p)
                        .timestamp(base_ms + i * 1000)
                        .key("k")
                        .payload("{\"event\": \"view\", \"country\": \"DE\"}"),
                )
                .map_err(|(e, _)| e)?;
        }
    }
    producer.flush(Duration::from_secs(30))?;
    Ok(())
}

fn main() -> Result<(), Error> {
    let Ok(bootstrap) = std::env::var("SLUICE_BENCH_KAFKA_BOOTSTRAP") else {
        eprintln!(
            "kafka_gate: set SLUICE_BENCH_KAFKA_BOOTSTRAP to a broker (scripts/services/kafka start); not run"
        );
        return Ok(());
    };
    let topic = format!("bench-gate-{}", std::process::id());
    let group = "bench-aggregator";
    sluice_demo::services::create_topic(&bootstrap, &topic, PARTITIONS)
        .map_err(|e| e.to_string())?;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("compression.type", "lz4")
        .create()?;
    let base = chrono::DateTime::parse_from_rfc3339("2025-09-01T10:00:00Z")?.timestamp_millis();
    produce(&producer, &topic, 100, base)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(&topic, p, Offset::Offset(90))?;
    }
    consumer.commit(&tpl, CommitMode::Sync)?;

    // SAFETY: single-threaded here; the connection is read from the environment.
    unsafe {
        std::env::set_var(
            "SLUICE_CONN_BENCH_BROKER",
            serde_json::json!({"type": "kafka", "bootstrap_servers": bootstrap}).to_string(),
        )
    };
    let source = GateSource {
        connection: "bench_broker".into(),
        topic: topic.clone(),
        group: group.into(),
    };
    let rule = GateRule {
        lateness: chrono::TimeDelta::minutes(5),
        max_lag: Some(100_000),
        max_lag_time: None,
        timeout: Some(chrono::TimeDelta::minutes(45)),
        idle_after: Some(chrono::TimeDelta::minutes(2)),
    };
    let end = chrono::DateTime::parse_from_rfc3339("2025-09-01T10:00:00Z")?.to_utc();
    let mut links = HashMap::new();
    let mut memory = SourceMemory::default();

    let started = Instant::now();
    let first = look(&Connections::default(), &mut links, &source, &mut memory)?;
    let cold = started.elapsed();
    assert_eq!(first.view.partitions.len(), PARTITIONS as usize);

    let evaluate =
        |links: &mut HashMap<_, _>, memory: &mut SourceMemory| -> Result<Duration, Error> {
            let started = Instant::now();
            let seen = look(&Connections::default(), links, &source, memory)?;
            let decision = decide(&rule, end, end, Ok(&seen.view), seen.view.at);
            std::hint::black_box(decision);
            Ok(started.elapsed())
        };
    let mut quiet = Vec::new();
    for _ in 0..SAMPLES {
        quiet.push(evaluate(&mut links, &mut memory)?);
    }
    let mut busy = Vec::new();
    let mut next = base + 200_000;
    for _ in 0..SAMPLES {
        // 10 new messages in every partition since the previous look: 640 to read.
        produce(&producer, &topic, 10, next)?;
        next += 10_000;
        busy.push(evaluate(&mut links, &mut memory)?);
    }
    let seen = look(&Connections::default(), &mut links, &source, &mut memory)?;
    let started = Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(decide(&rule, end, end, Ok(&seen.view), seen.view.at));
    }
    let decide_only = started.elapsed() / 1000;

    // Where a busy look's time goes: each broker exchange on its own.
    let conn = Connections::default().kafka("bench_broker")?;
    let mut link = sluice_runtime::gate::kafka::client::KafkaLink::new(conn)?;
    let ids = link.partitions(&topic)?;
    let (mut metadata, mut list_offsets, mut offset_fetch, mut fetch) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..10 {
        // Uncached, to see what the cache saves.
        link.forget(&topic);
        let started = Instant::now();
        link.partitions(&topic)?;
        metadata.push(started.elapsed());
        link.offsets(&topic, &ids)?;
        let started = Instant::now();
        let offsets = link.offsets(&topic, &ids)?;
        list_offsets.push(started.elapsed());
        let started = Instant::now();
        link.committed(group, &topic, &ids)?;
        offset_fetch.push(started.elapsed());
        produce(&producer, &topic, 10, next)?;
        next += 10_000;
        let ranges = offsets
            .iter()
            .map(|(p, o)| (*p, (o.high, o.high + 10)))
            .collect();
        let started = Instant::now();
        let scanned = link.scan(&topic, &ranges, i64::MAX)?;
        fetch.push(started.elapsed());
        assert!(scanned.values().all(|s| s.reached));
    }

    println!("kafka_gate: topic of {PARTITIONS} partitions, {SAMPLES} samples each");
    println!("  first look (reads the newest message of every partition): {cold:.1?}");
    println!(
        "  look + decide, nothing new:                    median {:.1?}, max {:.1?}",
        median(quiet.clone()),
        quiet.iter().max().copied().unwrap_or_default()
    );
    println!(
        "  look + decide, 10 new messages per partition:  median {:.1?}, max {:.1?}",
        median(busy.clone()),
        busy.iter().max().copied().unwrap_or_default()
    );
    println!("  decide alone (pure core):                       {decide_only:.1?}");
    println!("  where a look's time goes (medians of 10):");
    println!(
        "    metadata (cached 30 s in a look) {:.1?}",
        median(metadata)
    );
    println!(
        "    ListOffsets latest               {:.1?}",
        median(list_offsets)
    );
    println!(
        "    OffsetFetch of the group         {:.1?}",
        median(offset_fetch)
    );
    println!("    fetch of 640 new messages        {:.1?}", median(fetch));
    Ok(())
}
