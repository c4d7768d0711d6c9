//! `sluice-raw-sink` (the binary calls [`run`]): the raw zone's writer, as the platform's
//! Kafka-to-S3 sink. Consumes the events topic as a consumer group of its own (the one the
//! batch layer's gate waits for: the batch layer reads what this job wrote), appends each
//! event to the raw zone by event time, and with every flush, before committing, reports to
//! the arrivals topic how many events of each event-time minute it wrote from each
//! partition, and the newest event time it wrote. The gate takes its watermark and late
//! data from those reports without reading the events (`sluice_runtime::gate::kafka::
//! arrivals` reads them; docs/dag-spec.md has the format).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

use crate::events::Event;
use crate::raw_zone::RawZone;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "sluice-raw-sink",
    about = "Write the raw zone from the events topic and report what was written"
)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:19092")]
    pub bootstrap: String,
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// The consumer group (the one the batch layer's gate waits for).
    #[arg(long, default_value = "raw-zone-sink")]
    pub group: String,
    /// Raw zone root folder.
    #[arg(long)]
    pub raw_zone: PathBuf,
    /// Where the arrival reports go (the gate's `arrivals_topic`).
    #[arg(long, default_value = "events.arrivals")]
    pub arrivals_topic: String,
    /// Most events per flush.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Longest wait before a partial batch is flushed.
    #[arg(long, default_value_t = 1000)]
    pub flush_ms: u64,
    /// Stop after this many seconds without a message (0: run until killed).
    #[arg(long, default_value_t = 0)]
    pub idle_exit_seconds: u64,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What one flush wrote from one partition: the offsets and events per minute.
#[derive(Debug, Default)]
struct Written {
    from_offset: Option<i64>,
    to_offset: i64,
    minutes: BTreeMap<i64, u64>,
    newest_event_ms: Option<i64>,
}

/// The sink with its defaults (group `raw-zone-sink`, reports to `events.arrivals`) on
/// topic `events`, until idle for `idle_seconds`: what tests and demos run before Sluice.
pub fn until_idle(
    bootstrap: &str,
    raw_zone: &std::path::Path,
    idle_seconds: u64,
) -> Result<u64, Error> {
    run(&Args {
        bootstrap: bootstrap.to_owned(),
        topic: "events".to_owned(),
        group: "raw-zone-sink".to_owned(),
        raw_zone: raw_zone.to_owned(),
        arrivals_topic: "events.arrivals".to_owned(),
        batch: 50_000,
        flush_ms: 1000,
        idle_exit_seconds: idle_seconds,
    })
}

/// Consumes and writes until idle for `idle_exit_seconds` (or forever); the number of
/// events written.
pub fn run(args: &Args) -> Result<u64, Error> {
    let consumer = crate::services::group_consumer(&args.bootstrap, &args.group, &args.topic)?;
    let reports: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()?;
    let mut raw_zone = RawZone::new(&args.raw_zone);
    let mut written: BTreeMap<i32, Written> = BTreeMap::new();
    let mut in_batch = 0usize;
    let mut batch_started = Instant::now();
    let mut last_message = Instant::now();
    let mut total = 0u64;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                last_message = Instant::now();
                if in_batch == 0 {
                    batch_started = Instant::now();
                }
                let (partition, offset) = (message.partition(), message.offset());
                let entry = written.entry(partition).or_default();
                entry.from_offset.get_or_insert(offset);
                entry.to_offset = offset + 1;
                in_batch += 1;
                let event = message
                    .payload()
                    .map(serde_json::from_slice::<Event>)
                    .transpose();
                match event {
                    Ok(Some(event)) => match DateTime::parse_from_rfc3339(&event.event_time) {
                        Ok(happened) => {
                            let happened = happened.with_timezone(&Utc);
                            raw_zone.append_event(&event, happened, partition)?;
                            let minute = happened.timestamp().div_euclid(60) * 60;
                            *entry.minutes.entry(minute).or_insert(0) += 1;
                            entry.newest_event_ms =
                                entry.newest_event_ms.max(Some(happened.timestamp_millis()));
                        }
                        Err(e) => eprintln!(
                            "event {} at offset {offset}: unreadable event_time ({e}); not written",
                            event.event_id
                        ),
                    },
                    Ok(None) => eprintln!("skipping an empty message at offset {offset}"),
                    Err(e) => eprintln!("skipping an unreadable message at offset {offset}: {e}"),
                }
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
        let due = in_batch > 0
            && (in_batch >= args.batch
                || batch_started.elapsed() >= Duration::from_millis(args.flush_ms));
        if due {
            // The order makes the reports exact: the files first, then the manifests beside
            // them, then the reports (acked), then the offsets. A crash in between writes and reports the range again,
            // which the gate counts once.
            raw_zone.flush()?;
            for (partition, w) in std::mem::take(&mut written) {
                let from_offset = w.from_offset.unwrap_or(w.to_offset);
                raw_zone.write_manifest(partition, (from_offset, w.to_offset), &w.minutes)?;
                let report = serde_json::json!({
                    "partition": partition,
                    "from_offset": from_offset,
                    "to_offset": w.to_offset,
                    "minutes": w.minutes.into_iter().collect::<Vec<_>>(),
                    "newest_event_ms": w.newest_event_ms,
                })
                .to_string();
                let key = partition.to_string();
                let mut record = BaseRecord::to(&args.arrivals_topic)
                    .key(&key)
                    .payload(&report);
                loop {
                    match reports.send(record) {
                        Ok(()) => break,
                        Err((_, back)) => {
                            record = back;
                            reports.poll(Duration::from_millis(50));
                        }
                    }
                }
            }
            reports.flush(Duration::from_secs(30))?;
            consumer.commit_consumer_state(CommitMode::Sync)?;
            total += in_batch as u64;
            in_batch = 0;
        }
        if args.idle_exit_seconds > 0
            && in_batch == 0
            && last_message.elapsed() >= Duration::from_secs(args.idle_exit_seconds)
        {
            eprintln!("sluice-raw-sink: {total} messages written; idle, stopping");
            return Ok(total);
        }
    }
}
