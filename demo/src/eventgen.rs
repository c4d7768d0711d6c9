//! `sluice-eventgen` (the binary calls [`run`]): produces the demo's analytics events to Kafka (event time as the
//! message timestamp, keyed by user) and writes the same events to a local raw zone, as a
//! Kafka-to-S3 sink would. Historical event time (`--from/--to`, as fast as the broker
//! takes it) for tests and catch-up demos; `--realtime` paces arrivals on the wall clock.

use std::path::PathBuf;
use std::time::Duration;

use crate::events::{Generator, Plan};
use crate::manifest::Manifest;
use crate::raw_zone::RawZone;
use chrono::{DateTime, TimeDelta, Utc};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "sluice-eventgen",
    about = "Produce the demo's events to Kafka and the raw zone"
)]
pub struct Args {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:19092")]
    pub bootstrap: String,
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// Partitions of the topic (events are spread over them by user id).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Raw zone root folder, written directly (as if a sink kept up perfectly). Leave it
    /// out when `sluice-raw-sink` writes the raw zone from the topic (its consumer group is
    /// what the batch layer's gate waits for).
    #[arg(long)]
    pub raw_zone: Option<PathBuf>,
    /// First event time (RFC 3339); with --realtime, now.
    #[arg(long)]
    pub from: Option<DateTime<Utc>>,
    /// End of event time (RFC 3339); with --realtime, now + --minutes.
    #[arg(long)]
    pub to: Option<DateTime<Utc>>,
    /// Pace arrivals on the wall clock, starting now.
    #[arg(long)]
    pub realtime: bool,
    /// How long --realtime runs, in minutes.
    #[arg(long, default_value_t = 60)]
    pub minutes: i64,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Events per second of event time (5× during the one-minute burst every 15 minutes).
    #[arg(long, default_value_t = 20)]
    pub rate: u32,
    /// Share of events arriving up to 30 s out of order.
    #[arg(long, default_value_t = 0.05)]
    pub out_of_order: f64,
    /// Share of events arriving --late-minutes after they happened.
    #[arg(long, default_value_t = 0.0)]
    pub late: f64,
    #[arg(long, default_value_t = 30)]
    pub late_minutes: i64,
    /// Write the events per 15-minute interval (JSON) here.
    #[arg(long)]
    pub manifest: Option<PathBuf>,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Generates and produces the events; the manifest of what was produced.
pub fn run(args: &Args) -> Result<Manifest, Error> {
    let (from, to) = if args.realtime {
        let now = Utc::now();
        (now, now + TimeDelta::minutes(args.minutes))
    } else {
        match (args.from, args.to) {
            (Some(from), Some(to)) if from < to => (from, to),
            _ => return Err("give --from and --to (from before to), or --realtime".into()),
        }
    };
    let mut plan = Plan::new(args.seed, from, to);
    plan.rate = args.rate;
    plan.partitions = args.partitions.max(1);
    plan.out_of_order = args.out_of_order.clamp(0.0, 1.0);
    plan.late = args.late.clamp(0.0, 1.0);
    plan.late_by = TimeDelta::minutes(args.late_minutes);
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        // The broker the demo runs mishandles snappy batches; lz4 is what production uses.
        .set("compression.type", "lz4")
        .set("linger.ms", "20")
        .set("message.timeout.ms", "60000")
        .create()?;
    let mut raw_zone = args.raw_zone.as_deref().map(RawZone::new);
    let mut manifest = Manifest::new(TimeDelta::minutes(15));
    for arrival in Generator::new(plan) {
        if args.realtime {
            let wait = (arrival.arrives - Utc::now()).to_std().unwrap_or_default();
            if !wait.is_zero() {
                if let Some(raw_zone) = raw_zone.as_mut() {
                    raw_zone.flush()?;
                }
                std::thread::sleep(wait);
            }
        }
        let payload = serde_json::to_string(&arrival.event)?;
        let mut record = BaseRecord::to(&args.topic)
            .partition(arrival.partition)
            .key(&arrival.event.user_id)
            .payload(&payload)
            .timestamp(arrival.happened.timestamp_millis());
        // A full local queue is back-pressure: serve deliveries, then try again.
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    producer.poll(Duration::from_millis(50));
                }
                Err((e, _)) => return Err(e.into()),
            }
        }
        producer.poll(Duration::ZERO);
        if let Some(raw_zone) = raw_zone.as_mut() {
            raw_zone.append(&arrival)?;
        }
        manifest.count(&arrival);
    }
    producer.flush(Duration::from_secs(60))?;
    if let Some(raw_zone) = raw_zone.as_mut() {
        raw_zone.flush()?;
    }
    if let Some(path) = &args.manifest {
        std::fs::write(path, serde_json::to_string_pretty(&manifest)?)?;
    }
    eprintln!(
        "sluice-eventgen: {} events over {} interval(s) to {}{}",
        manifest.total(),
        manifest.intervals.len(),
        args.topic,
        args.raw_zone
            .as_ref()
            .map(|r| format!(" and {}", r.display()))
            .unwrap_or_default()
    );
    Ok(manifest)
}
