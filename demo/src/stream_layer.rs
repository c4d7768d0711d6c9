//! `sluice-stream-layer` (the binary calls [`run`]): the demo's stand-in for the platform's stream layer. Consumes the
//! events topic as the consumer group the gates watch, keeps ClickHouse's 1-minute
//! aggregates (`stream_agg_1m`) current, and commits its offsets only after the batch's
//! insert succeeded (at least once: a crash between the two counts that batch twice, as a
//! real stream job without transactions would).

use std::time::{Duration, Instant};

use crate::events::Event;
use crate::stream::{aggregate, create_raw_table, create_table, insert_statement, raw_rows};
use clap::Parser;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::message::Message;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "sluice-stream-layer",
    about = "Keep 1-minute aggregates in ClickHouse from the events topic"
)]
pub struct Args {
    #[arg(long, default_value = "127.0.0.1:19092")]
    pub bootstrap: String,
    #[arg(long, default_value = "events")]
    pub topic: String,
    /// The consumer group (the one the gates watch for lag).
    #[arg(long, default_value = "realtime-aggregator")]
    pub group: String,
    /// The 1-minute aggregates table (created if missing).
    #[arg(long, default_value = "stream_agg_1m")]
    pub table: String,
    /// The raw events table (created if missing); empty: do not keep raw events.
    #[arg(long, default_value = "raw_events")]
    pub raw_table: String,
    /// ClickHouse HTTP URL.
    #[arg(long, default_value = "http://127.0.0.1:18123")]
    pub clickhouse: String,
    /// Most events per insert.
    #[arg(long, default_value_t = 50_000)]
    pub batch: usize,
    /// Longest wait before a partial batch is inserted.
    #[arg(long, default_value_t = 1000)]
    pub flush_ms: u64,
    /// Stop after this many seconds without a message (0: run until killed).
    #[arg(long, default_value_t = 0)]
    pub idle_exit_seconds: u64,
}

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// Consumes and aggregates until idle for `idle_exit_seconds` (or forever); the number of
/// events aggregated.
pub fn run(args: &Args) -> Result<u64, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = clickhouse::Client::default()
        .with_url(&args.clickhouse)
        .with_validation(false);
    runtime.block_on(client.query_raw(&create_table(&args.table)).execute())?;
    if !args.raw_table.is_empty() {
        runtime.block_on(
            client
                .query_raw(&create_raw_table(&args.raw_table))
                .execute(),
        )?;
    }
    let consumer = crate::services::group_consumer(&args.bootstrap, &args.group, &args.topic)?;
    let mut batch: Vec<Event> = Vec::new();
    let mut batch_started = Instant::now();
    let mut last_message = Instant::now();
    let mut total = 0u64;
    loop {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                last_message = Instant::now();
                if batch.is_empty() {
                    batch_started = Instant::now();
                }
                match message
                    .payload()
                    .map(serde_json::from_slice::<Event>)
                    .transpose()
                {
                    Ok(Some(event)) => batch.push(event),
                    // Unreadable messages are reported, counted nowhere, and passed over.
                    Ok(None) => {
                        eprintln!("skipping an empty message at offset {}", message.offset())
                    }
                    Err(e) => eprintln!(
                        "skipping an unreadable message at offset {}: {e}",
                        message.offset()
                    ),
                }
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
        let due = !batch.is_empty()
            && (batch.len() >= args.batch
                || batch_started.elapsed() >= Duration::from_millis(args.flush_ms));
        if due {
            let (rows, unreadable) = aggregate(&batch);
            for id in unreadable {
                eprintln!("event {id} has no readable event_time: not aggregated");
            }
            let mut statements = vec![insert_statement(&args.table, &rows)?];
            if !args.raw_table.is_empty() {
                statements.push(insert_statement(&args.raw_table, &raw_rows(&batch))?);
            }
            // An insert that fails is retried with the same batch: nothing is committed
            // before ClickHouse has the rows.
            for sql in &statements {
                let mut pause = Duration::from_millis(200);
                while let Err(e) = runtime.block_on(client.query_raw(sql).execute()) {
                    eprintln!("insert into ClickHouse failed ({e}); retrying in {pause:?}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(10));
                }
            }
            consumer.commit_consumer_state(CommitMode::Sync)?;
            total += batch.len() as u64;
            batch.clear();
        }
        if args.idle_exit_seconds > 0
            && batch.is_empty()
            && last_message.elapsed() >= Duration::from_secs(args.idle_exit_seconds)
        {
            eprintln!("sluice-stream-layer: {total} events aggregated; idle, stopping");
            return Ok(total);
        }
    }
}
