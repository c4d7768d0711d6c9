//! The demo stack of the platform, on one machine: what the real platform has upstream of
//! Sluice, made small and deterministic so tests can check every event is accounted for.
//!
//! - [`events`]: the event model and a seeded generator of event-time traffic — a steady
//!   rate, bursts, out-of-order and late arrivals — in arrival order.
//! - [`raw_zone`]: the raw zone a Kafka-to-S3 sink would write (JSON lines partitioned by
//!   event time), on the local disk.
//! - [`manifest`]: the truth of what was generated: events per interval.
//! - [`stream`]: the stream layer's 1-minute aggregation, for its stand-in.
//! - [`eventgen`], [`raw_sink`], [`stream_layer`]: the programs (`sluice-eventgen`,
//!   `sluice-raw-sink`, the Kafka-to-raw-zone job with its arrival reports, and
//!   `sluice-stream-layer`), callable in-process by tests.
//! - [`services`]: a broker of one's own, topics, ClickHouse answers as text (for tests).

pub mod eventgen;
pub mod events;
pub mod manifest;
pub mod raw_sink;
pub mod raw_zone;
pub mod services;
pub mod stream;
pub mod stream_layer;
