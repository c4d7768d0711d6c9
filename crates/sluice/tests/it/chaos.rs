//! Chaos: the platform's DAGs (events_aggregation_15m on local Spark, the hourly
//! cross_layer_validation, and one EMR step per interval on the EMR test server) run by a
//! real `sluice scheduler` over a window of intervals, while a seeded random schedule
//! stops and starts ClickHouse and the broker, adds latency, blackholes and drops
//! connections (a TCP fault proxy in front of ClickHouse and of the EMR API), and the
//! scheduler itself is SIGKILLed at random moments and started again.
//!
//! Then the checker: every interval processed and validated (`sluice audit` clean), the
//! batch layer's counts equal to the events produced, no EMR step submitted twice for one
//! attempt, no run or task instance left running or queued, the scheduler's memory and
//! file descriptors bounded.
//!
//! Size: SLUICE_CHAOS_INTERVALS (default 8), SLUICE_CHAOS_KILLS (at least this many
//! SIGKILLs; default 5), SLUICE_CHAOS_KILL_GAP_MIN/MAX (seconds between kills; default
//! 10–40), SLUICE_CHAOS_SEED (default: from the clock; printed). The full size recorded in
//! docs/reliability.md is 48 intervals and 24 kills.
//!
//! Needs what scripts/test provides: the ClickHouse and broker builds (started here on
//! ports of this test's own), local Spark (SPARK_HOME), the EMR test server.

use sluice_tests as support;

mod faults;
mod platform;
mod process;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sluice_core::RunStatus;
use sluice_demo::services::clickhouse_text;
use sluice_store::{AttemptResult, Store};

use platform::{Error, Platform};
use support::fault_proxy::FaultProxy;

const DAGS: [&str; 3] = [
    "events_aggregation_15m",
    "cross_layer_validation",
    "emr_steps",
];
/// Bounds the scheduler must stay under, whatever happens.
const MAX_RSS_MIB: u64 = 768;
const MAX_FDS: u64 = 512;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_pipeline_loses_nothing_through_random_faults_and_scheduler_kills() -> Result<(), Error> {
    let intervals = u32::try_from(setting("SLUICE_CHAOS_INTERVALS", 8))?;
    let target_kills = setting("SLUICE_CHAOS_KILLS", 5);
    let seed = setting(
        "SLUICE_CHAOS_SEED",
        u64::try_from(Utc::now().timestamp_micros()).unwrap_or(1),
    );
    println!("chaos: {intervals} intervals, at least {target_kills} kills, seed {seed}");
    let began = Instant::now();
    let from: DateTime<Utc> = "2025-09-01T00:00:00Z".parse()?;
    let platform = Platform::start(from, intervals)?;
    let hours = intervals / 4;

    let clickhouse_address = platform
        .clickhouse
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let warehouse_proxy = Arc::new(FaultProxy::start(clickhouse_address)?);
    let emr_address = support::emr::endpoint()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()?;
    let emr_proxy = Arc::new(FaultProxy::start(emr_address)?);
    let cluster = support::emr::cluster().map_err(|e| e.to_string())?;
    let emr = serde_json::json!({
        "type": "emr", "cluster_id": cluster, "region": "us-east-1",
        "endpoint_url": format!("http://{}", emr_proxy.address()),
        "poll_initial_seconds": 0.2, "poll_max_seconds": 1.0, "api_attempts": 4
    });
    let listen = format!("127.0.0.1:{}", 18900 + std::process::id() % 90);
    let api = format!("http://{listen}");
    let _leftovers = KillLeftovers;
    let mut scheduler = process::Scheduler::new(
        &platform.dags,
        &platform.state,
        &platform.plugins,
        &listen,
        platform.environment(
            &format!("http://{}", warehouse_proxy.address()),
            &emr.to_string(),
        ),
        platform.root.join("scheduler.log"),
    );
    scheduler.start()?;

    let done = Arc::new(AtomicBool::new(false));
    let injector = faults::inject(
        faults::Targets {
            clickhouse: Arc::clone(&platform.clickhouse),
            broker: Arc::clone(&platform.broker),
            warehouse_proxy: Arc::clone(&warehouse_proxy),
            emr_proxy: Arc::clone(&emr_proxy),
        },
        seed,
        (5_000, 20_000),
        Arc::clone(&done),
    );

    // Kill at random moments until the target is reached, then let the work finish.
    let expected = [intervals, hours, intervals];
    let mut random = faults::Random::new(seed);
    // Milliseconds between kills: long enough for some work to finish between two.
    let kill_gap = (
        1000 * setting("SLUICE_CHAOS_KILL_GAP_MIN", 10),
        1000 * setting("SLUICE_CHAOS_KILL_GAP_MAX", 40),
    );
    let mut kills = 0;
    let limit = Duration::from_secs(60 * setting("SLUICE_CHAOS_LIMIT_MINUTES", 40));
    let outcome = loop {
        let next_kill = Instant::now() + random.millis(kill_gap.0, kill_gap.1);
        let mut finished = None;
        while Instant::now() < next_kill || kills >= target_kills {
            std::thread::sleep(Duration::from_secs(1));
            if let Some(status) = scheduler.exited() {
                finished = Some(Err(format!("the scheduler exited on its own: {status}")));
                break;
            }
            let progress = progress(&api);
            if let Some((succeeded, failed)) = &progress {
                if succeeded
                    .iter()
                    .zip(expected)
                    .all(|(s, e)| *s >= e as usize)
                {
                    finished = Some(Ok(()));
                    break;
                }
                if failed.iter().any(|f| *f > 0) {
                    finished = Some(Err(format!("runs failed: {failed:?} of {DAGS:?}")));
                    break;
                }
            }
            if began.elapsed() > limit {
                finished = Some(Err(format!("not done after {limit:?}: {progress:?}")));
                break;
            }
        }
        if let Some(outcome) = finished {
            break outcome;
        }
        scheduler.kill()?;
        kills += 1;
        eprintln!("chaos: scheduler SIGKILLed ({kills})");
        std::thread::sleep(random.millis(0, 3_000));
        scheduler.start()?;
    };
    done.store(true, Ordering::Relaxed);
    let injected = injector.join().map_err(|_| "the fault injector panicked")?;
    let stopped = scheduler.stop()?;
    if let Err(why) = outcome {
        let log = std::fs::read_to_string(platform.root.join("scheduler.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        return Err(format!("{why}\nscheduler log (end):\n{}", tail.join("\n")).into());
    }
    assert_eq!(stopped, Some(0), "the scheduler's graceful stop");

    let checked = check(&platform, &cluster)?;
    let peak_rss_mib = scheduler.peaks.rss_kib.load(Ordering::Relaxed) / 1024;
    let peak_fds = scheduler.peaks.fds.load(Ordering::Relaxed);
    let incarnations = scheduler
        .peaks
        .incarnations
        .lock()
        .map(|v| v.clone())
        .unwrap_or_default();
    println!("chaos run, seed {seed}, {:.0?}:", began.elapsed());
    println!(
        "  intervals processed: {} of {intervals} (+ {hours} hourly reconciliations, {intervals} EMR steps)",
        checked.processed
    );
    println!(
        "  events produced: {}, in the batch layer: {}, lost: {}",
        checked.produced, checked.loaded, checked.lost
    );
    println!(
        "  scheduler SIGKILLs survived: {kills} ({} starts)",
        scheduler.starts
    );
    println!(
        "  faults injected: {}",
        injected
            .iter()
            .map(|(k, n)| format!("{k:?} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  attempts: {} in all, {} failed by crash, {} failed otherwise and retried",
        checked.attempts, checked.crashed, checked.failed
    );
    println!(
        "  EMR steps: {} submitted, {} attempts with more than one step",
        checked.steps, checked.duplicate_steps
    );
    println!("  scheduler peak RSS {peak_rss_mib} MiB, peak open fds {peak_fds}");
    println!(
        "  per incarnation (RSS MiB / fds): {}",
        incarnations
            .iter()
            .map(|(rss, fds)| format!("{}/{fds}", rss / 1024))
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert!(kills >= target_kills, "only {kills} kills");
    assert_eq!(checked.lost, 0, "events lost");
    assert_eq!(checked.duplicate_steps, 0, "EMR steps submitted twice");
    assert!(peak_rss_mib <= MAX_RSS_MIB, "peak RSS {peak_rss_mib} MiB");
    assert!(peak_fds <= MAX_FDS, "peak fds {peak_fds}");
    Ok(())
}

/// Runs in success and failed per DAG, from the API (None while the scheduler is down).
fn progress(api: &str) -> Option<(Vec<usize>, Vec<usize>)> {
    let count = |dag: &str, state: &str| -> Option<usize> {
        let (status, body) = support::http(
            api,
            "GET",
            &format!("/api/v1/dags/{dag}/runs?state={state}&limit=1"),
            "",
        )
        .ok()?;
        if status != 200 {
            return None;
        }
        let page: serde_json::Value = serde_json::from_str(&body).ok()?;
        page["total"].as_u64().and_then(|n| usize::try_from(n).ok())
    };
    let succeeded = DAGS
        .iter()
        .map(|d| count(d, "success"))
        .collect::<Option<Vec<_>>>()?;
    let failed = DAGS
        .iter()
        .map(|d| count(d, "failed"))
        .collect::<Option<Vec<_>>>()?;
    Some((succeeded, failed))
}

#[derive(Debug, Default)]
struct Checked {
    processed: usize,
    produced: u64,
    loaded: u64,
    lost: u64,
    attempts: usize,
    crashed: usize,
    failed: usize,
    steps: usize,
    duplicate_steps: usize,
}

/// Everything the run must have achieved, read from the state, the warehouse and the EMR
/// server once the scheduler has stopped.
fn check(platform: &Platform, cluster: &str) -> Result<Checked, Error> {
    let mut checked = Checked::default();
    for dag in DAGS {
        // Every DAG's intervals are the range's (the reconciliation's hours hold its windows);
        // a reconciliation that read a window written again since is a gap too.
        let (from, to) = (platform.from, platform.to);
        let audit = sluice_command(
            platform,
            &[
                "audit",
                dag,
                "--from",
                &from.to_rfc3339(),
                "--to",
                &to.to_rfc3339(),
            ],
        );
        println!("{}", audit.1.trim_end());
        assert_eq!(audit.0, 0, "audit of {dag}: {}", audit.1);
    }

    let store = Store::open(&platform.state)?;
    assert!(store.active_runs()?.is_empty(), "runs left active");
    for dag in DAGS {
        for run in store.runs_of(dag) {
            let run = run?;
            assert_eq!(
                run.state.status,
                RunStatus::Success,
                "{dag} {}",
                run.state.run_id
            );
            for task in &run.state.tasks {
                assert!(
                    !task.state.holds_slot(),
                    "{dag} {}: a task left {:?}",
                    run.state.run_id,
                    task.state
                );
            }
            for attempt in store.attempts_of_run(dag, run.state.logical_date)? {
                checked.attempts += 1;
                match attempt.result {
                    Some(AttemptResult::FailedByCrash) => checked.crashed += 1,
                    Some(AttemptResult::Failed) => checked.failed += 1,
                    Some(_) => {}
                    None => panic!(
                        "{dag} {}: attempt {} never ended",
                        run.state.run_id, attempt.idempotency_key
                    ),
                }
            }
        }
    }

    // The batch layer holds exactly the events produced, window by window, validated.
    let batch: BTreeMap<String, u64> = clickhouse_text(
        &platform.warehouse(),
        "SELECT toString(window_start), sum(event_count) FROM agg_15m WHERE rollup_level = 0 GROUP BY window_start",
    )?
    .lines()
    .filter_map(|l| l.split_once('\t'))
    .filter_map(|(w, n)| Some((w.to_owned(), n.parse().ok()?)))
    .collect();
    for (start, produced) in &platform.produced {
        let loaded = batch
            .get(&start.format("%Y-%m-%d %H:%M:%S").to_string())
            .copied()
            .unwrap_or(0);
        checked.produced += produced;
        checked.loaded += loaded;
        checked.lost += produced.saturating_sub(loaded);
        assert_eq!(loaded, *produced, "batch layer, interval {start}");
        let report = store
            .output("events_aggregation_15m", *start, "validate")?
            .ok_or("no validation report")?;
        assert_eq!(report["passed"], true, "{start}: {report}");
        checked.processed += 1;
    }

    // One EMR step per attempt: the step name is the attempt's key.
    let steps = support::emr::steps(cluster).map_err(|e| e.to_string())?;
    let mut per_attempt: BTreeMap<&str, usize> = BTreeMap::new();
    for step in &steps {
        *per_attempt.entry(step.name.as_str()).or_default() += 1;
    }
    checked.steps = steps.len();
    checked.duplicate_steps = per_attempt.values().filter(|n| **n > 1).count();
    for (name, n) in per_attempt.iter().filter(|(_, n)| **n > 1) {
        eprintln!("step {name} submitted {n} times");
    }
    Ok(checked)
}

/// `sluice` on the platform's folders, in this process: (exit code, stdout + stderr).
fn sluice_command(platform: &Platform, args: &[&str]) -> (i32, String) {
    let mut argv: Vec<std::ffi::OsString> = vec![
        "sluice".into(),
        "--dags".into(),
        platform.dags.clone().into(),
        "--state".into(),
        platform.state.clone().into(),
    ];
    argv.extend(args.iter().map(std::ffi::OsString::from));
    let mut out = Vec::new();
    let mut err = Vec::new();
    let code = sluice::cli::run(
        argv,
        &mut sluice::cli::Streams {
            out: &mut out,
            err: &mut err,
            color: false,
            remote: None,
        },
    );
    out.extend(err);
    (code, String::from_utf8_lossy(&out).into_owned())
}

/// Kills whatever the test's schedulers started (Spark drivers, their workers) when the
/// test ends, passed or not: they carry the test's EMR connection in their environment.
struct KillLeftovers;

impl Drop for KillLeftovers {
    fn drop(&mut self) {
        let killed = sluice_runtime::executor::orphans::kill_where(|entry| {
            entry.starts_with(b"SLUICE_CONN_CHAOS_EMR=")
        });
        if !killed.is_empty() {
            eprintln!("chaos: killed {} leftover process(es)", killed.len());
        }
    }
}
