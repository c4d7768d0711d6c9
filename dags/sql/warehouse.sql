-- The batch layer's tables in ClickHouse. Apply once per warehouse (every statement is
-- idempotent): `sluice`'s demo and tests run this file statement by statement.
-- The stream layer owns `stream_agg_1m` and `raw_events` (see demo/src/stream.rs).

-- The 15-minute cube of events_aggregation_15m (and historical_backfill): one row per
-- combination of dimensions and rollup (a rolled-up dimension reads 'ALL';
-- rollup_level 0 is the finest grain). Readers read the view `agg_15m`; the rows live in
-- `agg_15m_versions`, each tagged with the load that wrote it.
--
-- An interval is replaced atomically, never deleted first: a load begins (a row in
-- `agg_15m_loads` with a new load_id, numbered after every earlier load of the interval),
-- writes its rows under that load_id (invisible: no reader looks at an unfinished load),
-- then makes itself the interval's current load with one more row (a one-row insert is
-- atomic), then deletes the rows of the loads that began before it. A reader sees the old
-- rows or the new ones, never none and never a mix (docs/pipeline.md, "Loads").
CREATE TABLE IF NOT EXISTS agg_15m_versions (
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
    latency_p95 Float64,
    load_id String
) ENGINE = MergeTree
PARTITION BY toYYYYMMDD(window_start)
ORDER BY (window_start, load_id, rollup_level, country, device, event_type);

-- Every load of an interval: 'begun' when it starts, 'current' once its rows are all
-- written. The interval's current load is its 'current' row with the highest seq.
CREATE TABLE IF NOT EXISTS agg_15m_loads (
    window_start DateTime('UTC'),
    load_id String,
    seq UInt64,
    attempt String,
    state Enum8('begun' = 1, 'current' = 2),
    recorded_at DateTime('UTC') DEFAULT now()
) ENGINE = MergeTree
ORDER BY (window_start, seq, state);

CREATE VIEW IF NOT EXISTS agg_15m AS
SELECT window_start, window_end, country, device, event_type, rollup_level, event_count,
       distinct_users, value_sum, latency_p50, latency_p95
FROM agg_15m_versions
WHERE (window_start, load_id) IN (
    SELECT window_start, argMax(load_id, seq) FROM agg_15m_loads
    WHERE state = 'current' GROUP BY window_start);

-- What each load's Spark run read against what the ingest path wrote (the job's
-- <output>/input.json): `validate` compares these few figures, never counts raw events
-- (docs/scale.md, "The checks"). One row per load; the interval's current load's row is
-- the one that counts.
CREATE TABLE IF NOT EXISTS agg_15m_inputs (
    window_start DateTime('UTC'),
    load_id String,
    manifests UInt64,
    ingested_events UInt64,
    rows_read UInt64,
    distinct_events UInt64
) ENGINE = MergeTree
ORDER BY (window_start, load_id);

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
