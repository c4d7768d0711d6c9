"""The batch layer's 15-minute cube: aggregates one event-time interval [start, end).

Reads the raw zone (JSON lines, partitioned by event time as a Kafka-to-S3 sink writes it:
<input>/event_date=YYYY-MM-DD/event_hour=HH/*.jsonl), keeps the events whose event_time is
in [start, end), and computes, for every combination of the dimensions and their rollups
(CUBE; a rolled-up dimension reads "ALL"): event count, distinct users, sum of value, and
latency percentiles. Writes the interval's rows to <output> (the interval's own partition,
e.g. .../window_start=20250901T1015), replacing that partition only: running an interval
twice gives the same rows. With --format json the rows are one file, <output>/data.json.

Exit codes: 0 done; 2 bad arguments (fatal for Sluice); anything else is worth a retry.
"""

import argparse
import sys
from datetime import datetime, timedelta, timezone


def parse_instant(text):
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text}: needs a time zone (e.g. Z)")
    return value.astimezone(timezone.utc)


def hour_partitions(input_root, start, end):
    """The event_date/event_hour folders that can hold events of [start, end)."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    paths = []
    while hour < end:
        paths.append(f"{input_root}/event_date={hour:%Y-%m-%d}/event_hour={hour:%H}")
        hour += timedelta(hours=1)
    return paths


def name_the_single_file(hadoop, conf, output, name):
    """Gives the one JSON part file a fixed name (an empty one when the interval had no
    events): a warehouse that cannot list files, such as ClickHouse's file() table
    function before globs, loads <output>/data.json by name."""
    root = hadoop.Path(output)
    fs = root.getFileSystem(conf)
    parts = [s.getPath() for s in fs.listStatus(root)
             if s.getPath().getName().startswith("part-") and s.getPath().getName().endswith(".json")]
    target = hadoop.Path(f"{output}/{name}")
    if len(parts) == 1:
        fs.rename(parts[0], target)
    elif not parts:
        fs.create(target, True).close()


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", required=True, help="raw zone root")
    parser.add_argument("--output", required=True, help="the interval's output partition")
    parser.add_argument("--start", required=True, type=parse_instant)
    parser.add_argument("--end", required=True, type=parse_instant)
    parser.add_argument("--dims", default="country,device,event_type")
    parser.add_argument("--format", default="parquet", choices=["parquet", "json"])
    args = parser.parse_args(argv)
    if args.start >= args.end:
        parser.error("--start must be before --end")
    dims = [d.strip() for d in args.dims.split(",") if d.strip()]

    from pyspark.sql import SparkSession, functions as F, types as T

    spark = SparkSession.builder.appName(f"aggregate_15m {args.start:%Y%m%dT%H%M}").getOrCreate()
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    schema = T.StructType(
        [
            T.StructField("event_id", T.StringType()),
            T.StructField("event_time", T.StringType()),
            T.StructField("user_id", T.StringType()),
            T.StructField("country", T.StringType()),
            T.StructField("device", T.StringType()),
            T.StructField("event_type", T.StringType()),
            T.StructField("value", T.DoubleType()),
            T.StructField("latency_ms", T.DoubleType()),
        ]
    )
    hadoop = spark._jvm.org.apache.hadoop.fs
    conf = spark._jsc.hadoopConfiguration()
    existing = [p for p in hour_partitions(args.input, args.start, args.end)
                if hadoop.Path(p).getFileSystem(conf).exists(hadoop.Path(p))]
    if existing:
        events = spark.read.schema(schema).json(existing)
    else:
        events = spark.createDataFrame([], schema)
    start_s, end_s = args.start.strftime("%Y-%m-%d %H:%M:%S"), args.end.strftime("%Y-%m-%d %H:%M:%S")
    ts = F.to_timestamp("event_time")
    events = events.where((ts >= F.lit(start_s).cast("timestamp")) & (ts < F.lit(end_s).cast("timestamp")))
    # Duplicates (at-least-once delivery) count once.
    events = events.dropDuplicates(["event_id"])

    cube = (
        events.cube(*dims)
        .agg(
            F.count(F.lit(1)).alias("event_count"),
            F.countDistinct("user_id").alias("distinct_users"),
            F.sum("value").alias("value_sum"),
            F.percentile_approx("latency_ms", 0.5).alias("latency_p50"),
            F.percentile_approx("latency_ms", 0.95).alias("latency_p95"),
            F.grouping_id().alias("rollup_level"),
        )
    )
    for d in dims:
        cube = cube.withColumn(d, F.coalesce(F.col(d), F.lit("ALL")))
    cube = cube.select(
        F.lit(start_s).cast("timestamp").alias("window_start"),
        F.lit(end_s).cast("timestamp").alias("window_end"),
        *dims,
        "rollup_level",
        "event_count",
        "distinct_users",
        F.coalesce(F.col("value_sum"), F.lit(0.0)).alias("value_sum"),
        "latency_p50",
        "latency_p95",
    ).orderBy(*dims, "rollup_level")

    writer = cube.coalesce(1).write.mode("overwrite")
    if args.format == "json":
        writer.option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss'Z'").json(args.output)
        name_the_single_file(hadoop, conf, args.output, "data.json")
    else:
        writer.parquet(args.output)
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
