//! Gate evaluation for a topic of 64 partitions against a real Kafka-protocol broker: one
//! look (metadata, ListOffsets, OffsetFetch, the newest message of each partition with
//! news) plus the gate decision, against the message rate: the same cost whether 640 or
//! 64,000 messages arrived since the previous look (O(partitions)). Goal: ≤ 50 ms.
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
        arrivals_topic: None,
        lag_only: false,
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
            let decision = decide(&rule, end, end, Ok(&seen.view), &[], seen.view.at);
            std::hint::black_box(decision);
            Ok(started.elapsed())
        };
    let mut quiet = Vec::new();
    for _ in 0..SAMPLES {
        quiet.push(evaluate(&mut links, &mut memory)?);
    }
    // Messages appended between two looks, spread over every partition: at a 10 s poll
    // interval, 64 to 64,000 messages are 6.4 to 6,400 messages/s.
    let mut next = base + 200_000;
    let mut by_rate = Vec::new();
    for per_partition in [1i64, 10, 100, 1000] {
        let mut samples = Vec::new();
        let mut produced_in = Duration::ZERO;
        let mut read = 0;
        for _ in 0..10 {
            let started = Instant::now();
            produce(&producer, &topic, per_partition, next)?;
            produced_in += started.elapsed();
            next += per_partition * 1000;
            let started = Instant::now();
            let seen = look(&Connections::default(), &mut links, &source, &mut memory)?;
            std::hint::black_box(decide(&rule, end, end, Ok(&seen.view), &[], seen.view.at));
            samples.push(started.elapsed());
            read = read.max(seen.messages_read);
        }
        let appended = per_partition * i64::from(PARTITIONS);
        let produce_rate = (appended * 10) as f64 / produced_in.as_secs_f64();
        by_rate.push((appended, samples, read, produce_rate));
    }
    // The same rates with the raw-zone sink's arrival reports: each flush reports one record
    // per partition, and the look reads those instead of any event.
    let reports_topic = format!("{topic}.arrivals");
    sluice_demo::services::create_topic(&bootstrap, &reports_topic, 1)
        .map_err(|e| e.to_string())?;
    let with_reports = GateSource {
        arrivals_topic: Some(reports_topic.clone()),
        ..source.clone()
    };
    let (mut report_links, mut report_memory) = (HashMap::new(), SourceMemory::default());
    look(
        &Connections::default(),
        &mut report_links,
        &with_reports,
        &mut report_memory,
    )?;
    let mut offsets_written = vec![0i64; PARTITIONS as usize];
    let mut by_rate_reported = Vec::new();
    for per_partition in [1i64, 10, 100, 1000] {
        let mut samples = Vec::new();
        let mut read = 0;
        for _ in 0..10 {
            produce(&producer, &topic, per_partition, next)?;
            for p in 0..PARTITIONS {
                let from = offsets_written[p as usize];
                offsets_written[p as usize] += per_partition;
                let minute = (next + (per_partition - 1) * 1000) / 60_000 * 60;
                let report = serde_json::json!({"partition": p, "from_offset": from,
                    "to_offset": from + per_partition, "minutes": [[minute, per_partition]],
                    "newest_event_ms": next + (per_partition - 1) * 1000});
                producer
                    .send(
                        BaseRecord::to(&reports_topic)
                            .key("r")
                            .payload(&report.to_string()),
                    )
                    .map_err(|(e, _)| e)?;
            }
            producer.flush(Duration::from_secs(30))?;
            next += per_partition * 1000;
            let started = Instant::now();
            let seen = look(
                &Connections::default(),
                &mut report_links,
                &with_reports,
                &mut report_memory,
            )?;
            std::hint::black_box(decide(&rule, end, end, Ok(&seen.view), &[], seen.view.at));
            samples.push(started.elapsed());
            read = read.max(seen.messages_read);
        }
        by_rate_reported.push((per_partition * i64::from(PARTITIONS), samples, read));
    }
    let busy = by_rate
        .iter()
        .find(|(n, ..)| *n == 640)
        .map(|(_, s, ..)| s.clone())
        .unwrap_or_default();
    let seen = look(&Connections::default(), &mut links, &source, &mut memory)?;
    let started = Instant::now();
    for _ in 0..1000 {
        std::hint::black_box(decide(&rule, end, end, Ok(&seen.view), &[], seen.view.at));
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
        // What a look reads: the newest message of each partition.
        let ranges = offsets
            .iter()
            .map(|(p, o)| (*p, (o.high + 9, o.high + 10)))
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
    println!("  look + decide against the messages appended since the previous look:");
    for (appended, samples, read, produce_rate) in &by_rate {
        println!(
            "    {appended:>6} appended: median {:.1?}, max {:.1?}, {read} messages read (broker took them at {produce_rate:.0}/s)",
            median(samples.clone()),
            samples.iter().max().copied().unwrap_or_default()
        );
    }
    println!("  the same, watermark and late data from the sink's arrival reports (64 per flush):");
    for (appended, samples, read) in &by_rate_reported {
        println!(
            "    {appended:>6} appended: median {:.1?}, max {:.1?}, {read} messages read",
            median(samples.clone()),
            samples.iter().max().copied().unwrap_or_default()
        );
    }
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
    println!(
        "    fetch of the newest message of 64 {:.1?}",
        median(fetch)
    );
    Ok(())
}
