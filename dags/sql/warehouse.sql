-- The batch layer's tables in ClickHouse. Apply once per warehouse (every statement is
-- idempotent): `sluice`'s demo and tests run this file statement by statement.
-- The stream layer owns `stream_agg_1m` and `raw_events` (see demo/src/stream.rs).

-- The 15-minute cube of events_aggregation_15m (and historical_backfill): one row per
-- combination of dimensions and rollup (a rolled-up dimension reads 'ALL';
-- rollup_level 0 is the finest grain). Partitioned by day: an interval is replaced by
-- delete-then-insert.
CREATE TABLE IF NOT EXISTS agg_15m (
    window_start DateTime('UTC'),
    window_end DateTime('UTC'),
    country String,
    device String,
    event_type String,
    rollup_level UInt8,
    event_count UInt64,
    distinct_users UInt64,
    value_sum Float64,
    latency_p50 Float64,
    latency_p95 Float64
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, rollup_level, country, device, event_type);

-- One record per hour checked by cross_layer_validation. Partitioned by the hour: a rerun
-- replaces the hour's record (partition replace).
CREATE TABLE IF NOT EXISTS layer_reconciliation (
    checked_at DateTime('UTC'),
    window_from DateTime('UTC'),
    window_to DateTime('UTC'),
    run_id String
) ENGINE = MergeTree
PARTITION BY window_from
ORDER BY (window_from, checked_at);
