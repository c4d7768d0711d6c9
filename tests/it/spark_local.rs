//! The aggregation job (`dags/jobs/aggregate_15m.py`) on a real local Spark, through
//! scheduled runs of a `type: spark` task with `backend: local`: aggregates checked against
//! counts computed here independently, and a rerun of an interval leaves the same output.
//! Needs PySpark: scripts/test installs it (scripts/install-spark) and sets SPARK_HOME.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::sluice;
use sluice_core::RunStatus;
use sluice_store::Store;
use sluice_tests::{TempDir, repo_root};

struct Event {
    id: String,
    minute: u32,
    second: u32,
    user: u32,
    country: &'static str,
    device: &'static str,
    kind: &'static str,
    value: f64,
}

impl Event {
    fn json(&self, hour: u32) -> String {
        serde_json::json!({
            "event_id": self.id,
            "event_time": format!("2025-09-01T{hour:02}:{:02}:{:02}Z", self.minute, self.second),
            "user_id": format!("u{}", self.user),
            "country": self.country,
            "device": self.device,
            "event_type": self.kind,
            "value": self.value,
            "latency_ms": f64::from(self.user % 100),
        })
        .to_string()
    }
}

/// Deterministic pseudo-random events over 10:00–10:59 (a small LCG: no test dependency).
fn events(n: u32) -> Vec<Event> {
    let mut state: u64 = 42;
    let mut next = |m: u64| {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) % m
    };
    (0..n)
        .map(|i| Event {
            id: format!("e{i}"),
            minute: next(60) as u32,
            second: next(60) as u32,
            user: next(40) as u32,
            country: ["DE", "FR", "BR"][next(3) as usize],
            device: ["ios", "android", "web"][next(3) as usize],
            kind: ["view", "click"][next(2) as usize],
            value: (next(1000) as f64) / 10.0,
        })
        .collect()
}

/// A cube cell: (country, device, event_type), "ALL" where rolled up.
type Cell = (String, String, String);

/// What the test expects of a cell: events, distinct users, sum of values.
#[derive(Default)]
struct Expected {
    count: u64,
    users: BTreeSet<u32>,
    value: f64,
}

fn spark_installed() -> bool {
    std::env::var_os("SPARK_HOME")
        .is_some_and(|home| Path::new(&home).join("bin/spark-submit").exists())
}

/// Rows of an interval's output partition (JSON lines), and how many part files it has.
fn read_output(dir: &Path) -> Result<(Vec<serde_json::Value>, usize), Box<dyn std::error::Error>> {
    let mut rows = Vec::new();
    let mut parts = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        // input.json is the job's input figures, not rows.
        if path.extension().is_some_and(|e| e == "json") && !path.ends_with("input.json") {
            parts += 1;
            for line in std::fs::read_to_string(&path)?
                .lines()
                .filter(|l| !l.trim().is_empty())
            {
                rows.push(serde_json::from_str(line)?);
            }
        }
    }
    Ok((rows, parts))
}

/// 2025-09-01T10:00:00Z, Unix seconds.
const TEN_O_CLOCK: i64 = 1_756_720_800;

/// The events as a Kafka-to-S3 sink writes them: by event hour, several files (one per
/// source partition), out of order, with duplicates (at-least-once delivery) that must
/// count once, and the sink's manifests beside them (one of them written twice, as after
/// a crash, which must count once); and one event of the hour before, which no interval
/// here may count. The lines of each interval: (lines written, with duplicates).
fn write_raw_zone(
    raw: &Path,
    all: &[Event],
) -> Result<BTreeMap<u32, u64>, Box<dyn std::error::Error>> {
    let partition = raw.join("event_date=2025-09-01/event_hour=10");
    std::fs::create_dir_all(&partition)?;
    let sink = sluice_demo::raw_zone::RawZone::new(raw);
    let mut lines_per_interval: BTreeMap<u32, u64> = BTreeMap::new();
    for (file, chunk) in all.chunks(1000).enumerate() {
        let mut written: Vec<&Event> = chunk.iter().rev().collect();
        written.extend(chunk.iter().take(50));
        let lines: Vec<String> = written.iter().map(|e| e.json(10)).collect();
        std::fs::write(
            partition.join(format!("part-{file}.jsonl")),
            lines.join("\n") + "\n",
        )?;
        let mut minutes: BTreeMap<i64, u64> = BTreeMap::new();
        for e in &written {
            *minutes
                .entry(TEN_O_CLOCK + i64::from(e.minute) * 60)
                .or_default() += 1;
            *lines_per_interval.entry(e.minute / 15 * 15).or_default() += 1;
        }
        let (source_partition, end) = (i32::try_from(file)?, i64::try_from(written.len())?);
        sink.write_manifest(source_partition, (0, end), &minutes)?;
        if file == 0 {
            // The first half again, as a sink that crashed before committing writes it.
            let first_half: BTreeMap<i64, u64> =
                minutes.iter().take(30).map(|(m, n)| (*m, *n)).collect();
            sink.write_manifest(source_partition, (0, end / 2), &first_half)?;
        }
    }
    let before = raw.join("event_date=2025-09-01/event_hour=09");
    std::fs::create_dir_all(&before)?;
    std::fs::write(before.join("part-0.jsonl"), all[0].json(9) + "\n")?;
    Ok(lines_per_interval)
}

/// The job's input figures of an interval (`<partition>/input.json`).
fn input_figures(partition: &Path) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    Ok(serde_json::from_str(&std::fs::read_to_string(
        partition.join("input.json"),
    )?)?)
}

/// A DAG folder with one `aggregate` task running the shipped job on local Spark.
fn aggregation_dag(dir: &TempDir, raw: &Path, out: &Path, format: &str) -> std::io::Result<()> {
    let dag = format!(
        r#"dag: agg
schedule: "*/15 * * * *"
start: 2025-09-01T10:00:00Z
params: {{ raw_zone: "{raw}", output_zone: "{out}" }}
tasks:
  aggregate:
    type: spark
    backend: local
    application: "{job}"
    args:
      - --input
      - "{{{{ params.raw_zone }}}}"
      - --output
      - "{{{{ params.output_zone }}}}/window_start={{{{ data_interval_start | strftime('%Y%m%dT%H%M') }}}}"
      - --start
      - "{{{{ data_interval_start }}}}"
      - --end
      - "{{{{ data_interval_end }}}}"
      - --format
      - {format}
    conf: {{ spark.sql.shuffle.partitions: "4" }}
    timeout: 5m
"#,
        raw = raw.display(),
        out = out.display(),
        job = repo_root().join("dags/jobs/aggregate_15m.py").display()
    );
    dir.write("dags/agg.yaml", dag).map(|_| ())
}

#[test]
fn the_aggregation_job_cubes_each_interval_and_a_rerun_replaces_it_identically()
-> Result<(), Box<dyn std::error::Error>> {
    assert!(
        spark_installed(),
        "SPARK_HOME must point at a Spark with bin/spark-submit: run scripts/install-spark (scripts/test does)"
    );
    let dir = TempDir::new("spark-local")?;
    let raw = dir.path().join("raw");
    let out = dir.path().join("agg");
    let all = events(3000);
    let lines = write_raw_zone(&raw, &all)?;

    aggregation_dag(&dir, &raw, &out, "json")?;
    let (dags, state) = (
        dir.path().join("dags").display().to_string(),
        dir.path().join("state").display().to_string(),
    );
    let backfill = |from: &str, to: &str, reprocess: &str| {
        sluice(&[
            "--dags",
            &dags,
            "--state",
            &state,
            "backfill",
            "agg",
            "--from",
            from,
            "--to",
            to,
            "--reprocess",
            reprocess,
        ])
    };
    let result = backfill("2025-09-01T10:00:00Z", "2025-09-01T10:30:00Z", "none");
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);

    for (start_minute, label) in [(0u32, "20250901T1000"), (15, "20250901T1015")] {
        let (rows, parts) = read_output(&out.join(format!("window_start={label}")))?;
        assert_eq!(parts, 1, "one part file per interval");
        let partition = out.join(format!("window_start={label}"));
        assert!(
            partition.join("data.json").is_file(),
            "the one file has a fixed name for loaders that cannot list files"
        );
        let inside: Vec<&Event> = all
            .iter()
            .filter(|e| e.minute >= start_minute && e.minute < start_minute + 15)
            .collect();
        // What the job read against what the sink's manifests say was written: every
        // line, duplicates included, each manifest once.
        let written = lines[&start_minute];
        assert_eq!(
            input_figures(&partition)?,
            serde_json::json!({"manifests": 3, "ingested_events": written,
                "rows_read": written, "distinct_events": inside.len()}),
            "{label}"
        );
        // Independent cube cells: exact (country, device, event_type) and the grand total.
        let mut expected: BTreeMap<Cell, Expected> = BTreeMap::new();
        for e in &inside {
            for key in [
                (e.country.to_owned(), e.device.to_owned(), e.kind.to_owned()),
                ("ALL".to_owned(), "ALL".to_owned(), "ALL".to_owned()),
                (e.country.to_owned(), "ALL".to_owned(), "ALL".to_owned()),
            ] {
                let cell = expected.entry(key).or_default();
                cell.count += 1;
                cell.users.insert(e.user);
                cell.value += e.value;
            }
        }
        let got: BTreeMap<Cell, &serde_json::Value> = rows
            .iter()
            .map(|r| {
                let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
                ((s("country"), s("device"), s("event_type")), r)
            })
            .collect();
        // 3 countries x 3 devices x 2 types, with every rollup: 4 x 4 x 3 = 48 cells at most.
        assert!(rows.len() <= 48 && rows.len() > 18, "{} rows", rows.len());
        for (
            key,
            Expected {
                count,
                users,
                value,
            },
        ) in &expected
        {
            let row = got
                .get(key)
                .ok_or_else(|| format!("no cube row for {key:?}"))?;
            assert_eq!(row["event_count"].as_u64(), Some(*count), "{key:?}");
            assert_eq!(
                row["distinct_users"].as_u64(),
                Some(users.len() as u64),
                "{key:?}"
            );
            let sum = row["value_sum"].as_f64().unwrap_or(f64::NAN);
            assert!((sum - value).abs() < 1e-6, "{key:?}: {sum} vs {value}");
            assert_eq!(
                row["window_start"],
                format!("2025-09-01T10:{start_minute:02}:00Z")
            );
        }
    }

    // Run the first interval again: its partition is replaced with the same rows.
    let (before_rows, _) = read_output(&out.join("window_start=20250901T1000"))?;
    let result = backfill("2025-09-01T10:00:00Z", "2025-09-01T10:15:00Z", "completed");
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);
    let (after_rows, parts) = read_output(&out.join("window_start=20250901T1000"))?;
    assert_eq!(parts, 1);
    assert_eq!(after_rows, before_rows);

    let store = Store::open(&dir.path().join("state"))?;
    let runs: Vec<_> = store.runs_of("agg").collect::<Result<_, _>>()?;
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r.state.status == RunStatus::Success));
    Ok(())
}

/// The production load path on a current ClickHouse engine: the shipped job's Parquet
/// output (local Spark), in S3 (moto, SLUICE_TEST_EMR_ENDPOINT), loaded by the exact SQL
/// `events_aggregation_15m` renders for production (`s3()`, Parquet) into the tables of
/// `dags/sql/warehouse.sql`, on chDB (ClickHouse embedded, PyPI; Debian's 18.16 server has
/// neither Parquet nor `s3()`): column names and types line up, every cube cell arrives
/// whole, and a second load replaces the first.
#[test]
fn the_parquet_output_loads_by_the_shipped_sql_on_a_current_clickhouse()
-> Result<(), Box<dyn std::error::Error>> {
    assert!(
        spark_installed(),
        "SPARK_HOME must point at a Spark with bin/spark-submit: run scripts/install-spark (scripts/test does)"
    );
    let s3 = std::env::var("SLUICE_TEST_EMR_ENDPOINT").map_err(|_| {
        "SLUICE_TEST_EMR_ENDPOINT is not set: start moto with scripts/services/emr start (scripts/test does)"
    })?;
    let dir = TempDir::new("spark-parquet")?;
    let (raw, out) = (dir.path().join("raw"), dir.path().join("agg"));
    let all = events(3000);
    write_raw_zone(&raw, &all)?;
    aggregation_dag(&dir, &raw, &out, "parquet")?;
    let result = sluice(&[
        "--dags",
        &dir.path().join("dags").display().to_string(),
        "--state",
        &dir.path().join("state").display().to_string(),
        "backfill",
        "agg",
        "--from",
        "2025-09-01T10:00:00Z",
        "--to",
        "2025-09-01T10:15:00Z",
    ]);
    assert_eq!(result.code, 0, "{}{}", result.stdout, result.stderr);

    // Spark's files, uploaded where production's output zone would hold them.
    let bucket = format!("sluice-parquet-{}", std::process::id());
    let prefix = "agg_15m/window_start=20250901T1000";
    let mut uploads = Vec::new();
    for entry in std::fs::read_dir(out.join("window_start=20250901T1000"))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if name.ends_with(".parquet") || name == "input.json" {
            uploads.push(serde_json::json!({"bucket": bucket, "key": format!("{prefix}/{name}"), "file": path}));
        }
    }
    assert!(!uploads.is_empty(), "Spark wrote no Parquet file");

    // The load as the shipped DAG renders it for production; only the bucket's address is
    // moto's instead of AWS's.
    let render = |try_number: &str| -> Result<String, Box<dyn std::error::Error>> {
        // A process of its own: variables set by other tests in this one must not reach it.
        let out = std::process::Command::new(sluice_tests::commands::sluice_binary())
            .arg("--dags")
            .arg(repo_root().join("dags"))
            .args([
                "--output",
                "json",
                "dags",
                "render",
                "events_aggregation_15m",
                "load",
            ])
            .args([
                "--logical-date",
                "2025-09-01T10:00:00Z",
                "--try-number",
                try_number,
            ])
            .env_remove("SLUICE_VAR_OUTPUT_ZONE")
            .env_remove("SLUICE_VAR_WAREHOUSE_READS")
            .output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rendered: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let sql = rendered["fields"]["sql"].as_str().ok_or("no sql field")?;
        assert!(
            sql.contains(
                "s3('s3://analytics-batch/agg_15m/window_start=20250901T1000/*.parquet', 'Parquet')"
            ),
            "{sql}"
        );
        Ok(sql.replace("s3://analytics-batch/", &format!("{s3}/{bucket}/")))
    };
    let first = render("1")?;
    let split = sluice_runtime::clickhouse::statements::split;
    let ddl = std::fs::read_to_string(repo_root().join("dags/sql/warehouse.sql"))?;
    let mut statements = split(&ddl);
    statements.extend(split(&first));
    statements.extend(split(&render("2")?));
    let job = serde_json::json!({
        "s3": {"endpoint": s3, "uploads": uploads},
        "statements": statements,
        "query": "SELECT toString(window_start) AS window_start, toString(window_end) AS window_end, \
                  country, device, event_type, rollup_level, event_count, distinct_users, value_sum, \
                  (SELECT count() FROM agg_15m_versions) AS stored, \
                  (SELECT uniqExact(load_id) FROM agg_15m_versions) AS loads, \
                  (SELECT count() FROM agg_15m_inputs) AS inputs_recorded, \
                  (SELECT toString(max(distinct_events)) FROM agg_15m_inputs) AS distinct_events \
                  FROM agg_15m ORDER BY rollup_level, country, device, event_type",
    });
    let mut child = std::process::Command::new("python")
        .arg(repo_root().join("tests/chdb/run.py"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .ok_or("no stdin")?
            .write_all(job.to_string().as_bytes())?;
    }
    let answer = child.wait_with_output()?;
    let engine = String::from_utf8_lossy(&answer.stderr);
    assert!(answer.status.success(), "{engine}");
    println!("{}", engine.trim());
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&answer.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;

    let inside: Vec<&Event> = all.iter().filter(|e| e.minute < 15).collect();
    let mut finest: BTreeMap<Cell, u64> = BTreeMap::new();
    for e in &inside {
        *finest
            .entry((e.country.to_owned(), e.device.to_owned(), e.kind.to_owned()))
            .or_default() += 1;
    }
    let loaded: BTreeMap<Cell, u64> = rows
        .iter()
        .filter(|r| r["rollup_level"] == 0)
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or_default().to_owned();
            let count = r["event_count"]
                .as_str()
                .and_then(|c| c.parse().ok())
                .or(r["event_count"].as_u64());
            (
                (s("country"), s("device"), s("event_type")),
                count.unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(loaded, finest, "the finest cells, loaded");
    let total = rows
        .iter()
        .find(|r| r["country"] == "ALL" && r["device"] == "ALL" && r["event_type"] == "ALL")
        .ok_or("no grand total row")?;
    assert_eq!(
        total["event_count"].to_string().trim_matches('"'),
        inside.len().to_string()
    );
    for row in &rows {
        assert_eq!(row["window_start"], "2025-09-01 10:00:00", "{row}");
        assert_eq!(row["window_end"], "2025-09-01 10:15:00", "{row}");
        // Two loads ran; the second replaced the first, whose rows are gone.
        assert_eq!(
            row["stored"].to_string().trim_matches('"'),
            rows.len().to_string(),
            "{row}"
        );
        assert_eq!(row["loads"].to_string().trim_matches('"'), "1", "{row}");
        // Each load recorded the job's input figures (validate compares them).
        assert_eq!(
            row["inputs_recorded"].to_string().trim_matches('"'),
            "2",
            "{row}"
        );
        assert_eq!(row["distinct_events"], inside.len().to_string(), "{row}");
    }
    Ok(())
}
