//! The demo's inputs against the real services (the broker and ClickHouse that scripts/test
//! starts): every generated event is in Kafka, in the raw zone under its event-time hour,
//! and — through the stream-layer stand-in — in ClickHouse's 1-minute aggregates, with the
//! stand-in's consumer group caught up.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_demo::manifest::Manifest;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: scripts/test starts the services and sets it")
    })
}

/// Runs a statement on the test ClickHouse; its answer as text.
fn clickhouse(sql: &str) -> Result<String, Error> {
    let client = clickhouse::Client::default()
        .with_url(env("SLUICE_TEST_CLICKHOUSE_URL"))
        .with_validation(false);
    sluice_demo::services::clickhouse_text(&client, sql)
}

/// The counts of a `SELECT window, count … ORDER BY window`, in window order.
fn counts_per_window(sql: &str) -> Result<Vec<u64>, Error> {
    Ok(clickhouse(sql)?
        .lines()
        .filter_map(|l| l.split('\t').nth(1)?.parse().ok())
        .collect())
}

#[test]
fn every_generated_event_reaches_kafka_the_raw_zone_and_the_stream_layer() -> Result<(), Error> {
    let bootstrap = env("SLUICE_TEST_KAFKA_BOOTSTRAP");
    let id = std::process::id();
    let (topic, group, table, raw_table) = (
        format!("demo-{id}"),
        format!("stream-{id}"),
        format!("stream_1m_{id}"),
        format!("raw_{id}"),
    );
    let root = std::env::temp_dir().join(format!("sluice-demo-inputs-{id}"));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    sluice_demo::services::create_topic(&bootstrap, &topic, 4)?;

    // 45 minutes of event time at 4 events/s (20/s in each interval's first minute), 5 %
    // out of order, 1 % arriving 20 minutes late.
    let generated = Command::new(env!("CARGO_BIN_EXE_sluice-eventgen"))
        .args([
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--partitions",
            "4",
        ])
        .arg("--raw-zone")
        .arg(root.join("raw"))
        .args([
            "--from",
            "2025-09-01T10:00:00Z",
            "--to",
            "2025-09-01T10:45:00Z",
        ])
        .args([
            "--rate",
            "4",
            "--late",
            "0.01",
            "--late-minutes",
            "20",
            "--seed",
            "11",
        ])
        .arg("--manifest")
        .arg(root.join("manifest.json"))
        .output()?;
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    let manifest: Manifest = serde_json::from_slice(&std::fs::read(root.join("manifest.json"))?)?;
    let expected_total = 45 * 60 * 4 + 3 * 60 * 16;
    assert_eq!(manifest.total(), expected_total);
    assert_eq!(manifest.intervals.len(), 3);
    assert!(
        manifest.intervals.values().all(|c| c.late > 0),
        "{manifest:?}"
    );

    // Kafka has every event.
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", &group)
        .create()?;
    let in_kafka: i64 = (0..4)
        .map(|p| {
            reader
                .fetch_watermarks(&topic, p, Duration::from_secs(5))
                .map(|(lo, hi)| hi - lo)
        })
        .sum::<Result<i64, _>>()?;
    assert_eq!(u64::try_from(in_kafka)?, expected_total);

    // The raw zone has each event once, in the folder of its event-time hour.
    let mut per_interval: BTreeMap<String, u64> = BTreeMap::new();
    for hour in std::fs::read_dir(root.join("raw/event_date=2025-09-01"))? {
        for file in std::fs::read_dir(hour?.path())? {
            for line in std::fs::read_to_string(file?.path())?.lines() {
                let event: sluice_demo::events::Event = serde_json::from_str(line)?;
                let minute: u32 = event.event_time[14..16].parse()?;
                let key = format!("{}:{:02}", &event.event_time[..13], minute / 15 * 15);
                *per_interval.entry(key).or_insert(0) += 1;
            }
        }
    }
    let from_manifest: BTreeMap<String, u64> = manifest
        .intervals
        .iter()
        .map(|(start, c)| (start.format("%Y-%m-%dT%H:%M").to_string(), c.events))
        .collect();
    assert_eq!(per_interval, from_manifest);

    // The stream layer aggregates all of it and leaves its group with no lag.
    let streamed = Command::new(env!("CARGO_BIN_EXE_sluice-stream-layer"))
        .args([
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--group",
            &group,
            "--table",
            &table,
            "--raw-table",
            &raw_table,
        ])
        .args([
            "--clickhouse",
            &env("SLUICE_TEST_CLICKHOUSE_URL"),
            "--idle-exit-seconds",
            "3",
        ])
        .output()?;
    assert!(
        streamed.status.success(),
        "{}",
        String::from_utf8_lossy(&streamed.stderr)
    );
    let produced: Vec<u64> = manifest.intervals.values().map(|c| c.events).collect();
    assert_eq!(
        counts_per_window(&format!(
            "SELECT toStartOfFifteenMinutes(minute) AS w, sum(event_count) FROM {table} GROUP BY w ORDER BY w"
        ))?,
        produced
    );
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(&topic, p);
    }
    let committed = reader.committed_offsets(tpl, Duration::from_secs(5))?;
    let committed: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert_eq!(
        committed, in_kafka,
        "the stream layer's group has caught up"
    );
    // The raw events table has each event id of every interval.
    assert_eq!(
        counts_per_window(&format!(
            "SELECT toStartOfFifteenMinutes(event_time) AS w, uniqExact(event_id) FROM {raw_table} GROUP BY w ORDER BY w"
        ))?,
        produced
    );
    clickhouse(&format!("DROP TABLE IF EXISTS {table}"))?;
    clickhouse(&format!("DROP TABLE IF EXISTS {raw_table}"))?;
    let _ = std::fs::remove_dir_all(Path::new(&root));
    Ok(())
}
