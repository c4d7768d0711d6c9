"""The batch layer's 15-minute cube: aggregates one event-time interval [start, end).

Reads the raw zone (JSON lines, partitioned by event time as a Kafka-to-S3 sink writes it:
<input>/event_date=YYYY-MM-DD/event_hour=HH/*.jsonl), keeps the events whose event_time is
in [start, end), and computes, for every combination of the dimensions and their rollups
(CUBE; a rolled-up dimension reads "ALL"): event count, distinct users, sum of value, and
latency percentiles. Writes the interval's rows to <output> (the interval's own partition,
e.g. .../window_start=20250901T1015), replacing that partition only: running an interval
twice gives the same rows. With --format json the rows are one file, <output>/data.json.

Beside the rows, <output>/input.json (one JSON line): what the job read against what the
ingest path says it wrote, for the load to record and `validate` to compare (counts of a
few rows, never a count over raw events in the warehouse):
  manifests        the sink's manifests counted for the interval (<input>/_arrivals/...,
                   one per flush, source partition and hour; a range written twice counts once)
  ingested_events  events of [start, end) the sink wrote, by its manifests
  rows_read        raw-zone lines of [start, end) read (duplicates included)
  distinct_events  distinct event ids among them (what the cube counts)
The manifests are read before the events are listed: every event a manifest names was in
the files when they were listed, so rows_read >= ingested_events unless the raw zone lost
events.

Exit codes: 0 done; 2 bad arguments (fatal for Sluice); anything else is worth a retry.
"""

import argparse
import json
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


def read_manifests(spark, hadoop, conf, input_root, start, end):
    """(manifests counted, events of [start, end) they name): the sink's manifests of the
    interval's hours, read in parallel (a few thousand small files an hour in production).
    Per source partition, in offset order, a manifest whose range ends within what the
    ones before it covered is a range written again after a crash: counted once."""
    from pyspark.sql import functions as F, types as T

    folders = [p.replace(f"{input_root}/", f"{input_root}/_arrivals/", 1)
               for p in hour_partitions(input_root, start, end)]
    folders = [p for p in folders if hadoop.Path(p).getFileSystem(conf).exists(hadoop.Path(p))]
    if not folders:
        return 0, 0
    schema = T.StructType([
        T.StructField("partition", T.IntegerType()),
        T.StructField("from_offset", T.LongType()),
        T.StructField("to_offset", T.LongType()),
        T.StructField("minutes", T.ArrayType(T.ArrayType(T.LongType()))),
    ])
    lo, hi = int(start.timestamp()), int(end.timestamp())
    in_window = F.filter("minutes", lambda m: (m[0] >= lo) & (m[0] < hi))
    rows = (
        spark.read.schema(schema).json(folders)
        .select("partition", "from_offset", "to_offset",
                F.aggregate(in_window, F.lit(0).cast("long"), lambda acc, m: acc + m[1]).alias("events"))
        .where(F.col("events") > 0)
        .collect()
    )
    counted, events, covered = 0, 0, {}
    for row in sorted(rows, key=lambda r: (r["partition"], r["from_offset"], -r["to_offset"])):
        if row["to_offset"] <= covered.get(row["partition"], -1):
            continue
        covered[row["partition"]] = row["to_offset"]
        counted += 1
        events += row["events"]
    return counted, events


def write_text(hadoop, conf, path, text):
    target = hadoop.Path(path)
    out = target.getFileSystem(conf).create(target, True)
    out.write(bytearray(text.encode("utf-8")))
    out.close()


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
    manifests, ingested = read_manifests(spark, hadoop, conf, args.input, args.start, args.end)
    existing = [p for p in hour_partitions(args.input, args.start, args.end)
                if hadoop.Path(p).getFileSystem(conf).exists(hadoop.Path(p))]
    if existing:
        events = spark.read.schema(schema).json(existing)
    else:
        events = spark.createDataFrame([], schema)
    start_s, end_s = args.start.strftime("%Y-%m-%d %H:%M:%S"), args.end.strftime("%Y-%m-%d %H:%M:%S")
    ts = F.to_timestamp("event_time")
    events = events.where((ts >= F.lit(start_s).cast("timestamp")) & (ts < F.lit(end_s).cast("timestamp")))
    # Duplicates (at-least-once delivery) count once; how many lines there were is kept
    # for the input figures.
    kept = [c for c in schema.fieldNames() if c != "event_id"]
    events = events.groupBy("event_id").agg(
        *[F.first(c).alias(c) for c in kept], F.count(F.lit(1)).alias("copies")
    )

    # Two cubes joined on their keys, not one with countDistinct beside the percentiles:
    # Spark runs a distinct aggregate by grouping on (dimensions, user_id) first, and the
    # percentile digests, computed in that same pass, then exist per user (hundreds of
    # thousands of them instead of a few hundred), which was most of the job's time.
    totals = events.cube(*dims).agg(
        F.count(F.lit(1)).alias("event_count"),
        F.sum("copies").alias("rows_read"),
        F.sum("value").alias("value_sum"),
        F.percentile_approx("latency_ms", 0.5).alias("latency_p50"),
        F.percentile_approx("latency_ms", 0.95).alias("latency_p95"),
        F.grouping_id().alias("rollup_level"),
    )
    # Distinct users per grouping set: a cube over (dimensions, user_id) keeps, in the sets
    # where user_id is not rolled up, one row per user and set; counting those rows per
    # set is the exact distinct count. (user_id is the last cube column: the lowest bit
    # of the grouping id, so the dimensions' own id is the rest.)
    users = (
        events.select(*dims, "user_id").where(F.col("user_id").isNotNull()).distinct()
        .cube(*dims, "user_id")
        .agg(F.grouping_id().alias("gid"))
        .where(F.col("gid") % 2 == 0)
        .groupBy(*dims, (F.col("gid") / 2).cast("int").alias("rollup_level"))
        .agg(F.count(F.lit(1)).alias("distinct_users"))
    )
    # A dimension that is null in the data and one rolled up are both null here: the
    # grouping id tells them apart, and null-safe equality joins them.
    on = [totals[d].eqNullSafe(users[d]) for d in dims] + [totals["rollup_level"] == users["rollup_level"]]
    cube = totals.join(users, on, "left").select(
        *[totals[d] for d in dims],
        totals["rollup_level"],
        "event_count",
        "rows_read",
        F.coalesce(users["distinct_users"], F.lit(0)).alias("distinct_users"),
        "value_sum",
        "latency_p50",
        "latency_p95",
    )
    for d in dims:
        cube = cube.withColumn(d, F.coalesce(F.col(d), F.lit("ALL")))
    cube = cube.select(
        F.lit(start_s).cast("timestamp").alias("window_start"),
        F.lit(end_s).cast("timestamp").alias("window_end"),
        *dims,
        "rollup_level",
        "event_count",
        "rows_read",
        "distinct_users",
        F.coalesce(F.col("value_sum"), F.lit(0.0)).alias("value_sum"),
        "latency_p50",
        "latency_p95",
    ).orderBy(*dims, "rollup_level")

    cube = cube.cache()
    grand_total = cube.where(F.col("rollup_level") == (1 << len(dims)) - 1).first()
    writer = cube.drop("rows_read").coalesce(1).write.mode("overwrite")
    if args.format == "json":
        writer.option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ss'Z'").json(args.output)
        name_the_single_file(hadoop, conf, args.output, "data.json")
    else:
        writer.parquet(args.output)
    figures = {
        "manifests": manifests,
        "ingested_events": ingested,
        "rows_read": int(grand_total["rows_read"] or 0) if grand_total else 0,
        "distinct_events": int(grand_total["event_count"] or 0) if grand_total else 0,
    }
    write_text(hadoop, conf, f"{args.output}/input.json", json.dumps(figures) + "\n")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
