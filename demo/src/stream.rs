//! The stream layer's arithmetic: events → 1-minute aggregates per dimension set. The
//! stand-in inserts each batch's aggregates as deltas into a SummingMergeTree, so late
//! events simply add to their minute and readers `sum()` per minute.

use std::collections::BTreeMap;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::Serialize;

use crate::events::Event;

/// One row of `stream_agg_1m`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MinuteRow {
    /// `YYYY-MM-DD hh:mm:ss`, UTC (ClickHouse's DateTime text).
    pub minute: String,
    pub country: String,
    pub device: String,
    pub event_type: String,
    pub event_count: u64,
}

/// The table the stand-in writes (portable to old and new ClickHouse servers).
pub fn create_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (minute DateTime('UTC'), country String, \
         device String, event_type String, event_count UInt64) \
         ENGINE = SummingMergeTree(event_count) PARTITION BY toYYYYMMDD(minute) \
         ORDER BY (minute, country, device, event_type)"
    )
}

/// Aggregates a batch of events by minute and dimensions; events whose time cannot be
/// read are returned apart, never dropped silently.
pub fn aggregate(events: &[Event]) -> (Vec<MinuteRow>, Vec<String>) {
    let mut counts: BTreeMap<(DateTime<Utc>, &str, &str, &str), u64> = BTreeMap::new();
    let mut unreadable = Vec::new();
    for e in events {
        let minute = DateTime::parse_from_rfc3339(&e.event_time)
            .ok()
            .map(|t| t.with_timezone(&Utc))
            .and_then(|t| t.duration_trunc(TimeDelta::minutes(1)).ok());
        match minute {
            Some(m) => {
                *counts
                    .entry((m, &e.country, &e.device, &e.event_type))
                    .or_insert(0) += 1
            }
            None => unreadable.push(e.event_id.clone()),
        }
    }
    let rows = counts
        .into_iter()
        .map(
            |((minute, country, device, event_type), event_count)| MinuteRow {
                minute: minute.format("%Y-%m-%d %H:%M:%S").to_string(),
                country: country.to_owned(),
                device: device.to_owned(),
                event_type: event_type.to_owned(),
                event_count,
            },
        )
        .collect();
    (rows, unreadable)
}

/// The raw events table the stand-in also fills (the platform's ClickHouse ingestion of
/// the topic): what the batch layer's "sum of counts = raw events" check counts against.
pub fn create_raw_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {table} (event_id String, event_time DateTime('UTC'), \
         event_time_ms UInt16, user_id String, country String, device String, \
         event_type String, value Float64, latency_ms Float64) ENGINE = MergeTree \
         PARTITION BY toYYYYMMDD(event_time) ORDER BY (event_time, event_id)"
    )
}

/// One row of the raw events table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RawRow<'a> {
    pub event_id: &'a str,
    pub event_time: String,
    pub event_time_ms: u16,
    pub user_id: &'a str,
    pub country: &'a str,
    pub device: &'a str,
    pub event_type: &'a str,
    pub value: f64,
    pub latency_ms: f64,
}

/// Raw rows of events whose time can be read (the others are reported by [`aggregate`]).
pub fn raw_rows(events: &[Event]) -> Vec<RawRow<'_>> {
    events
        .iter()
        .filter_map(|e| {
            let t = DateTime::parse_from_rfc3339(&e.event_time)
                .ok()?
                .with_timezone(&Utc);
            Some(RawRow {
                event_id: &e.event_id,
                event_time: t.format("%Y-%m-%d %H:%M:%S").to_string(),
                event_time_ms: u16::try_from(t.timestamp_subsec_millis()).unwrap_or(0),
                user_id: &e.user_id,
                country: &e.country,
                device: &e.device,
                event_type: &e.event_type,
                value: e.value,
                latency_ms: e.latency_ms,
            })
        })
        .collect()
}

/// The INSERT statement carrying rows inline (JSONEachRow), for one HTTP request.
pub fn insert_statement<R: Serialize>(
    table: &str,
    rows: &[R],
) -> Result<String, serde_json::Error> {
    let mut sql = format!("INSERT INTO {table} FORMAT JSONEachRow\n");
    for row in rows {
        sql.push_str(&serde_json::to_string(row)?);
        sql.push('\n');
    }
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, time: &str, country: &str) -> Event {
        Event {
            event_id: id.into(),
            event_time: time.into(),
            user_id: "u1".into(),
            country: country.into(),
            device: "web".into(),
            event_type: "view".into(),
            value: 1.0,
            latency_ms: 1.0,
        }
    }

    #[test]
    fn events_are_counted_per_minute_and_dimensions() {
        let (rows, unreadable) = aggregate(&[
            event("a", "2025-09-01T10:00:01.000Z", "DE"),
            event("b", "2025-09-01T10:00:59.999Z", "DE"),
            event("c", "2025-09-01T10:01:00.000Z", "DE"),
            event("d", "2025-09-01T10:00:30.000Z", "FR"),
            event("e", "not a time", "FR"),
        ]);
        let counts: Vec<(&str, &str, u64)> = rows
            .iter()
            .map(|r| (r.minute.as_str(), r.country.as_str(), r.event_count))
            .collect();
        assert_eq!(
            counts,
            vec![
                ("2025-09-01 10:00:00", "DE", 2),
                ("2025-09-01 10:00:00", "FR", 1),
                ("2025-09-01 10:01:00", "DE", 1)
            ]
        );
        assert_eq!(unreadable, vec!["e".to_owned()]);
    }
}
