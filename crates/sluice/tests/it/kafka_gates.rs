//! Kafka readiness gates against a real Kafka-protocol broker (tansu, started by
//! scripts/test through scripts/services/kafka; address in SLUICE_TEST_KAFKA_BOOTSTRAP):
//! watermark and lag of a multi-partition topic, a gate opening exactly at interval end +
//! lateness, an idle partition, a gate timing out, and the broker stopped and restarted
//! under a running scheduler.

use sluice_tests as support;

use std::collections::HashMap;

use sluice_core::gate::{GateDecision, GateRule, decide, watermark};
use sluice_core::lag::LagStatus;
use sluice_demo::services::OwnBroker;
use sluice_runtime::connections::Connections;
use sluice_runtime::gate::kafka::GateSource;
use sluice_runtime::gate::kafka::monitor::look;
use sluice_runtime::gate::kafka::observer::SourceMemory;
use support::kafka::{bootstrap, commit, connection, create_topic, ms, produce, producer};

type Error = Box<dyn std::error::Error + Send + Sync>;

fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

#[test]
fn watermark_and_lag_of_a_multi_partition_topic_with_a_lagging_group() -> Result<(), Error> {
    let b = bootstrap();
    let topic = unique("lagging");
    let group = unique("aggregator");
    create_topic(&b, &topic, 4)?;
    let p = producer(&b)?;
    // Partition 0: ten events 10:00..10:09; 1: five up to 10:20; 2: three up to 10:05;
    // 3: nothing. Out of order in partition 1: its newest message is not its latest time.
    produce(
        &p,
        &topic,
        0,
        &(0..10)
            .map(|m| ms("2025-09-01T10:00:00Z") + m * 60_000)
            .collect::<Vec<_>>(),
    )?;
    produce(
        &p,
        &topic,
        1,
        &[
            ms("2025-09-01T10:01:00Z"),
            ms("2025-09-01T10:20:00Z"),
            ms("2025-09-01T10:02:00Z"),
            ms("2025-09-01T10:19:00Z"),
            ms("2025-09-01T10:20:30Z"),
        ],
    )?;
    produce(
        &p,
        &topic,
        2,
        &[
            ms("2025-09-01T10:03:00Z"),
            ms("2025-09-01T10:04:00Z"),
            ms("2025-09-01T10:05:00Z"),
        ],
    )?;
    // The group consumed partition 0 entirely, two of partition 1, nothing of 2 and 3.
    commit(&b, &group, &topic, &[(0, 10), (1, 2)])?;

    // SAFETY of the environment: this test binary reads connections from the environment.
    unsafe { std::env::set_var("SLUICE_CONN_TEST_BROKER", connection(&b)) };
    let source = GateSource {
        connection: "test_broker".into(),
        topic: topic.clone(),
        group: group.clone(),
        arrivals_topic: None,
        lag_only: false,
    };
    let mut links = HashMap::new();
    let mut memory = SourceMemory::default();
    let view = look(&Connections::default(), &mut links, &source, &mut memory)?.view;
    let first_look_at = view.at;
    let by_id: HashMap<i32, _> = view.partitions.iter().map(|p| (p.partition, p)).collect();
    assert_eq!(view.partitions.len(), 4);
    assert_eq!(
        (
            by_id[&0].high_watermark,
            by_id[&0].committed,
            by_id[&0].lag()
        ),
        (10, Some(10), 0)
    );
    assert_eq!(
        (
            by_id[&1].high_watermark,
            by_id[&1].committed,
            by_id[&1].lag()
        ),
        (5, Some(2), 3)
    );
    assert_eq!(
        (
            by_id[&2].high_watermark,
            by_id[&2].committed,
            by_id[&2].lag()
        ),
        (3, None, 3)
    );
    assert_eq!((by_id[&3].high_watermark, by_id[&3].lag()), (0, 0));
    let at =
        |s: &str| chrono::DateTime::parse_from_rfc3339(s).map(|d| d.with_timezone(&chrono::Utc));
    assert_eq!(by_id[&0].event_time, Some(at("2025-09-01T10:09:00Z")?));
    assert_eq!(by_id[&1].event_time, Some(at("2025-09-01T10:20:30Z")?));
    assert_eq!(by_id[&2].event_time, Some(at("2025-09-01T10:05:00Z")?));
    assert_eq!(by_id[&3].event_time, None);
    // The empty partition holds the watermark back until it counts as idle.
    assert_eq!(watermark(&view, None, view.at).0, None);
    let later = view.at + chrono::TimeDelta::minutes(3);
    assert_eq!(
        watermark(&view, Some(chrono::TimeDelta::minutes(2)), later),
        (Some(at("2025-09-01T10:20:30Z")?), vec![0, 1, 2, 3])
    );

    // Partition 3 gets data and partition 1 gets an older event: its watermark stays.
    produce(&p, &topic, 3, &[ms("2025-09-01T10:07:00Z")])?;
    produce(&p, &topic, 1, &[ms("2025-09-01T10:00:00Z")])?;
    let seen = look(&Connections::default(), &mut links, &source, &mut memory)?;
    // The look read the newest message of each partition with news, nothing else; no
    // arrival reports are watched, so no late data is counted.
    assert_eq!(seen.messages_read, 2);
    assert!(seen.arrivals.is_empty());
    let view = seen.view;
    assert_eq!(
        watermark(&view, None, view.at).0,
        Some(at("2025-09-01T10:05:00Z")?)
    );
    let rule = GateRule {
        lateness: chrono::TimeDelta::minutes(5),
        max_lag: Some(5),
        max_lag_time: None,
        timeout: None,
        idle_after: None,
    };
    match decide(
        &rule,
        at("2025-09-01T10:00:00Z")?,
        view.at,
        Ok(&view),
        &[],
        view.at,
    ) {
        GateDecision::Closed {
            reason,
            figures: Some(f),
        } => {
            assert!(reason.contains("consumer lag 8 > max_lag 5"), "{reason}");
            assert_eq!((f.lag, f.partitions), (8, 4));
        }
        other => panic!("the gate should be closed by lag: {other:?}"),
    }
    // Lag over the window: partition 1's consumer is not moving while lag stays: no new
    // commit is seen, so it is stopped (Burrow's rules over polled offsets).
    let view = look(&Connections::default(), &mut links, &source, &mut memory)?.view;
    let p1 = view
        .partitions
        .iter()
        .find(|p| p.partition == 1)
        .ok_or("no partition 1")?;
    assert_eq!(p1.lag_status, LagStatus::Stop);
    let p0 = view
        .partitions
        .iter()
        .find(|p| p.partition == 0)
        .ok_or("no partition 0")?;
    assert_eq!(p0.lag_status, LagStatus::Ok);
    // Lag in time, read off the looks: partition 3's unconsumed message was appended
    // between the first look and the second, and partition 0 is caught up.
    let p3 = view
        .partitions
        .iter()
        .find(|p| p.partition == 3)
        .ok_or("no partition 3")?;
    assert_eq!(p0.time_lag_ms, 0);
    assert!(
        p3.time_lag_ms > 0 && p3.time_lag_ms <= (view.at - first_look_at).num_milliseconds(),
        "{p3:?}"
    );
    let by_time = |max: chrono::TimeDelta| {
        let rule = GateRule {
            max_lag: None,
            max_lag_time: Some(max),
            ..rule
        };
        decide(
            &rule,
            at("2025-09-01T10:00:00Z").unwrap_or_default(),
            view.at,
            Ok(&view),
            &[],
            view.at,
        )
    };
    assert!(matches!(
        by_time(chrono::TimeDelta::hours(1)),
        GateDecision::Open(_)
    ));
    match by_time(chrono::TimeDelta::milliseconds(1)) {
        GateDecision::Closed {
            reason,
            figures: Some(f),
        } => {
            assert!(reason.contains("behind > max_lag_time 1ms"), "{reason}");
            assert!(f.time_lag_ms >= p3.time_lag_ms, "{f:?}");
        }
        other => panic!("the gate should be closed by time behind: {other:?}"),
    }

    // A restarted scheduler starts from what was remembered (as the monitor stores it in
    // sled): new clients, the same window — the stop is still seen on its first look,
    // and nothing already read counts as arrived again.
    let remembered = serde_json::to_vec(&memory)?;
    let mut memory: SourceMemory = serde_json::from_slice(&remembered)?;
    let mut links = HashMap::new();
    let seen = look(&Connections::default(), &mut links, &source, &mut memory)?;
    assert!(seen.arrivals.is_empty(), "{:?}", seen.arrivals);
    let p1 = seen
        .view
        .partitions
        .iter()
        .find(|p| p.partition == 1)
        .ok_or("no partition 1")?;
    assert_eq!(p1.lag_status, LagStatus::Stop);
    assert_eq!(memory.partitions[&1].window.len(), 4);
    Ok(())
}

/// `sluice scheduler` on a DAG folder, its stderr (verbose transitions) collected as it runs.
struct Scheduler {
    root: std::path::PathBuf,
    child: std::process::Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Scheduler {
    fn start(name: &str, dag: &str, bootstrap: &str) -> Result<Scheduler, Error> {
        Scheduler::start_with(name, &[("dag.yaml", dag)], bootstrap)
    }

    fn start_with(name: &str, dags: &[(&str, &str)], bootstrap: &str) -> Result<Scheduler, Error> {
        let root = std::env::temp_dir().join(format!("sluice-gates-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dags"))?;
        for (file, dag) in dags {
            std::fs::write(root.join("dags").join(file), dag)?;
        }
        Scheduler::resume(root, bootstrap)
    }

    /// A scheduler on the DAGs and state a stopped one left under `root`.
    fn resume(root: std::path::PathBuf, bootstrap: &str) -> Result<Scheduler, Error> {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--dags")
            .arg(root.join("dags"))
            .arg("--state")
            .arg(root.join("state"))
            .args(["scheduler", "--grace", "5", "--listen", "off"])
            .env("SLUICE_CONN_TEST_BROKER", connection(bootstrap))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stderr = child.stderr.take().ok_or("no stderr")?;
        let sink = std::sync::Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(mut l) = sink.lock() {
                    l.push(line);
                }
            }
        });
        Ok(Scheduler { root, child, lines })
    }

    /// `sluice runs show` of the gated run (answered by the running scheduler).
    fn show(&self) -> Result<String, Error> {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--dags")
            .arg(self.root.join("dags"))
            .arg("--state")
            .arg(self.root.join("state"))
            .args(["runs", "show", "gated", "scheduled__2025-09-01T10:00:00Z"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn output(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    fn count(&self, text: &str) -> usize {
        self.lines
            .lock()
            .map(|l| l.iter().filter(|line| line.contains(text)).count())
            .unwrap_or(0)
    }

    fn saw(&self, text: &str) -> bool {
        self.lines
            .lock()
            .is_ok_and(|l| l.iter().any(|line| line.contains(text)))
    }

    fn wait_for(&mut self, text: &str, limit: std::time::Duration) -> Result<(), Error> {
        let started = std::time::Instant::now();
        while !self.saw(text) {
            if let Some(status) = self.child.try_wait()? {
                return Err(format!(
                    "the scheduler exited ({status}) before `{text}`:\n{}",
                    self.output()
                )
                .into());
            }
            if started.elapsed() > limit {
                return Err(format!("no `{text}` within {limit:?}:\n{}", self.output()).into());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGTERM, then the store once the process let go of it.
    fn stop(mut self) -> Result<(sluice_store::Store, std::path::PathBuf), Error> {
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let status = self.child.wait()?;
        assert!(status.success(), "{status}:\n{}", self.output());
        let store = sluice_store::Store::open(&self.root.join("state"))?;
        Ok((store, self.root.clone()))
    }
}

fn gated_dag(topic: &str, group: &str, gate_extra: &str) -> String {
    format!(
        r#"dag: gated
schedule: "*/15 * * * *"
start: 2025-09-01T10:00:00Z
end: 2025-09-01T10:15:00Z
catchup: true
gate:
  kafka:
    connection: test_broker
    topic: {topic}
    group: {group}
    poll_interval: 200ms
{gate_extra}
tasks:
  work: {{ type: command, command: "true" }}
"#
    )
}

const RUN: &str = "gated scheduled__2025-09-01T10:00:00Z";

/// The one run of the `gated` DAG.
fn gated_run(store: &sluice_store::Store) -> Result<sluice_store::RunRecord, Error> {
    Ok(store
        .run("gated", "2025-09-01T10:00:00Z".parse()?)?
        .ok_or("no run of `gated`")?)
}

#[test]
fn the_gate_opens_exactly_when_the_watermark_passes_interval_end_plus_lateness() -> Result<(), Error>
{
    let b = bootstrap();
    let (topic, group) = (unique("exact"), unique("exact-group"));
    create_topic(&b, &topic, 2)?;
    let p = producer(&b)?;
    let just_before = ms("2025-09-01T10:19:59.999Z");
    produce(&p, &topic, 0, &[just_before])?;
    produce(&p, &topic, 1, &[just_before])?;
    let mut scheduler = Scheduler::start(
        "exact",
        &gated_dag(&topic, &group, "    watermark_lateness: 5m"),
        &b,
    )?;
    let second = std::time::Duration::from_secs(1);
    scheduler.wait_for(&format!("{RUN} waiting on its gate"), 20 * second)?;
    // Five looks later it is still closed: 1 ms short of interval end + lateness.
    std::thread::sleep(second);
    // One partition reaches the mark; the other still holds the watermark back.
    produce(&p, &topic, 0, &[ms("2025-09-01T10:20:00Z")])?;
    std::thread::sleep(second);
    assert!(!scheduler.saw("gate open"), "{}", scheduler.output());
    produce(&p, &topic, 1, &[ms("2025-09-01T10:20:00Z")])?;
    scheduler.wait_for(&format!("{RUN} gate open"), 20 * second)?;
    scheduler.wait_for(&format!("{RUN} success"), 20 * second)?;
    let shown = scheduler.show()?;
    let (store, root) = scheduler.stop()?;
    assert!(shown.contains("gate open"), "{shown}");
    assert!(
        shown.contains("watermark 2025-09-01T10:20:00Z (needs 2025-09-01T10:20:00Z)"),
        "{shown}"
    );
    let run = gated_run(&store)?;
    let gate = run.gate.ok_or("no gate record")?;
    assert_eq!(gate.status, sluice_store::GateStatus::Open);
    let figures = gate.figures.ok_or("no figures")?;
    assert_eq!(
        figures.watermark,
        Some("2025-09-01T10:20:00Z".parse::<chrono::DateTime<chrono::Utc>>()?)
    );
    assert_eq!(
        figures.required_watermark,
        "2025-09-01T10:20:00Z".parse::<chrono::DateTime<chrono::Utc>>()?
    );
    assert_eq!(figures.partitions, 2);
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn an_idle_partition_stops_holding_the_watermark_back() -> Result<(), Error> {
    let b = bootstrap();
    let (topic, group) = (unique("idle"), unique("idle-group"));
    create_topic(&b, &topic, 3)?;
    let p = producer(&b)?;
    produce(&p, &topic, 0, &[ms("2025-09-01T10:15:00Z")])?;
    produce(&p, &topic, 1, &[ms("2025-09-01T10:16:00Z")])?;
    // Partition 2 never gets a message.
    let mut scheduler = Scheduler::start(
        "idle",
        &gated_dag(&topic, &group, "    idle_partition_timeout: 2s"),
        &b,
    )?;
    let second = std::time::Duration::from_secs(1);
    scheduler.wait_for(&format!("{RUN} waiting on its gate"), 20 * second)?;
    // Seen while partition 2 is not idle yet: it holds the watermark back.
    let started = std::time::Instant::now();
    let mut shown = scheduler.show()?;
    while !shown.contains("behind [2]") && started.elapsed() < 2 * second {
        shown = scheduler.show()?;
    }
    assert!(shown.contains("behind [2]"), "{shown}");
    assert!(shown.contains("gate closed (tasks deferred)"), "{shown}");
    scheduler.wait_for(&format!("{RUN} gate open"), 20 * second)?;
    scheduler.wait_for(&format!("{RUN} success"), 20 * second)?;
    let (store, root) = scheduler.stop()?;
    let run = gated_run(&store)?;
    let figures = run.gate.and_then(|g| g.figures).ok_or("no figures")?;
    assert!(figures.idle_partitions.contains(&2), "{figures:?}");
    assert!(figures.behind_partitions.is_empty(), "{figures:?}");
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn a_gate_still_closed_after_its_timeout_fails_the_run_with_the_reason() -> Result<(), Error> {
    let b = bootstrap();
    let (topic, group) = (unique("timeout"), unique("timeout-group"));
    create_topic(&b, &topic, 2)?;
    let p = producer(&b)?;
    produce(&p, &topic, 0, &[ms("2025-09-01T10:30:00Z")])?;
    let mut scheduler =
        Scheduler::start("timeout", &gated_dag(&topic, &group, "    timeout: 2s"), &b)?;
    let second = std::time::Duration::from_secs(1);
    scheduler.wait_for(&format!("{RUN} gate timed out"), 20 * second)?;
    scheduler.wait_for(&format!("{RUN} failed"), 20 * second)?;
    let (store, root) = scheduler.stop()?;
    let run = gated_run(&store)?;
    assert_eq!(run.state.status, sluice_core::RunStatus::Failed);
    let task = &run.state.tasks[0];
    assert_eq!(task.state, sluice_core::TaskState::Failed);
    assert_eq!(task.try_number, 0, "nothing ran");
    let reason = task.reason.clone().unwrap_or_default();
    assert!(
        reason.contains("the gate was still closed after 2s")
            && reason.contains("partitions behind: [1]"),
        "{reason}"
    );
    assert_eq!(
        run.gate.map(|g| g.status),
        Some(sluice_store::GateStatus::TimedOut)
    );
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn the_broker_going_down_and_up_keeps_gates_closed_and_the_scheduler_up() -> Result<(), Error> {
    // A broker of this test's own (the others share one), stopped when the test ends.
    let broker = OwnBroker::start(19100 + u16::try_from(std::process::id() % 800)?)?;
    let b = broker.bootstrap.clone();
    let (topic, group) = (unique("restart"), unique("restart-group"));
    create_topic(&b, &topic, 1)?;
    produce(&producer(&b)?, &topic, 0, &[ms("2025-09-01T10:14:00Z")])?;
    let mut scheduler = Scheduler::start("restart", &gated_dag(&topic, &group, ""), &b)?;
    let second = std::time::Duration::from_secs(1);
    scheduler.wait_for(&format!("{RUN} waiting on its gate"), 20 * second)?;
    broker.script("stop")?;
    scheduler.wait_for("cannot see the topic", 30 * second)?;
    std::thread::sleep(2 * second);
    assert!(!scheduler.saw("gate open"), "{}", scheduler.output());
    broker.script("restart")?;
    scheduler.wait_for("the topic is visible again", 60 * second)?;
    produce(&producer(&b)?, &topic, 0, &[ms("2025-09-01T10:15:00Z")])?;
    scheduler.wait_for(&format!("{RUN} gate open"), 30 * second)?;
    scheduler.wait_for(&format!("{RUN} success"), 20 * second)?;
    let (_, root) = scheduler.stop()?;
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn late_events_are_counted_per_interval_and_reprocessed_when_the_dag_opts_in() -> Result<(), Error>
{
    let b = bootstrap();
    let (topic, group) = (unique("late"), unique("late-group"));
    let arrivals = format!("{topic}.arrivals");
    create_topic(&b, &topic, 2)?;
    create_topic(&b, &arrivals, 1)?;
    let p = producer(&b)?;
    produce(&p, &topic, 0, &[ms("2025-09-01T10:15:00Z")])?;
    produce(&p, &topic, 1, &[ms("2025-09-01T10:15:00Z")])?;
    let root = std::env::temp_dir().join(format!("sluice-gates-late-runs-{}", std::process::id()));
    std::fs::create_dir_all(&root)?;
    let dag = |name: &str, reprocess: bool| {
        gated_dag(
            &topic,
            &group,
            &format!("    arrivals_topic: {arrivals}\n    reprocess_late_data: {reprocess}"),
        )
        .replace("dag: gated", &format!("dag: {name}"))
        .replace(
            "command: \"true\"",
            &format!("command: \"echo ran >> {}/{name}.txt\"", root.display()),
        )
    };
    // What the raw-zone sink reported of the first two events: the gates' watermark.
    let minute = |t: &str| ms(t) / 60_000 * 60;
    for partition in [0, 1] {
        let report = serde_json::json!({"partition": partition, "from_offset": 0, "to_offset": 1,
            "minutes": [[minute("2025-09-01T10:15:00Z"), 1]], "newest_event_ms": ms("2025-09-01T10:15:00Z")});
        produce_payload(&p, &arrivals, 0, &report.to_string())?;
    }
    let (reprocessing, counting) = (dag("reprocessing", true), dag("counting", false));
    let mut scheduler = Scheduler::start_with(
        "late",
        &[
            ("reprocessing.yaml", &reprocessing),
            ("counting.yaml", &counting),
        ],
        &b,
    )?;
    let second = std::time::Duration::from_secs(1);
    let first = "scheduled__2025-09-01T10:00:00Z";
    scheduler.wait_for(&format!("reprocessing {first} success"), 20 * second)?;
    scheduler.wait_for(&format!("counting {first} success"), 20 * second)?;
    // Three events of 10:00–10:15 are written after that interval succeeded; one of
    // 10:16 belongs to an interval without a run. The raw-zone sink reports them, one
    // report per partition flushed (the format of docs/dag-spec.md).
    let reports = [
        serde_json::json!({"partition": 0, "from_offset": 1, "to_offset": 3,
            "minutes": [[minute("2025-09-01T10:05:00Z"), 1], [minute("2025-09-01T10:14:59Z"), 1]]}),
        serde_json::json!({"partition": 1, "from_offset": 1, "to_offset": 3,
            "minutes": [[minute("2025-09-01T10:01:00Z"), 1], [minute("2025-09-01T10:16:00Z"), 1]]}),
        // Partition 0's range again (a sink that crashed before committing): counted once.
        serde_json::json!({"partition": 0, "from_offset": 1, "to_offset": 3,
            "minutes": [[minute("2025-09-01T10:05:00Z"), 1], [minute("2025-09-01T10:14:59Z"), 1]]}),
    ];
    for report in reports {
        produce_payload(&p, &arrivals, 0, &report.to_string())?;
    }
    // The four may land in two looks: one rerun per look that saw late events (or one
    // more if they came while a rerun ran), the last with all three counted.
    scheduler.wait_for(
        ", 3 late event(s) arrived after its gate opened",
        20 * second,
    )?;
    let reruns = scheduler.count("late event(s) arrived after its gate opened");
    let started = std::time::Instant::now();
    while scheduler.count(&format!("reprocessing {first} success")) < 1 + reruns {
        assert!(started.elapsed() < 20 * second, "{}", scheduler.output());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // A few more looks: nothing else is late, nothing reruns again.
    std::thread::sleep(second);
    let output = scheduler.output();
    let (store, state_root) = scheduler.stop()?;
    let runs = |name: &str| {
        std::fs::read_to_string(root.join(format!("{name}.txt"))).map(|t| t.lines().count())
    };
    assert!((1..=2).contains(&reruns), "{output}");
    assert_eq!(runs("reprocessing")?, 1 + reruns, "{output}");
    assert_eq!(runs("counting")?, 1, "{output}");
    for name in ["reprocessing", "counting"] {
        let run = store
            .run(name, "2025-09-01T10:00:00Z".parse()?)?
            .ok_or("no run")?;
        assert_eq!(run.state.status, sluice_core::RunStatus::Success);
        let gate = run.gate.ok_or("no gate")?;
        assert_eq!(gate.late_events, 3, "{name}");
        assert!(!gate.late_pending, "{name}");
    }
    assert!(
        !output.contains("counting scheduled__2025-09-01T10:00:00Z: reprocessing"),
        "{output}"
    );
    let _ = std::fs::remove_dir_all(state_root);
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

/// A run that succeeded with late data pending is cleared in the next iteration from a list
/// kept in memory: a scheduler stopped in between (the state below: the success and the
/// pending mark durable, no clear yet) still reprocesses it after its restart.
#[test]
fn late_data_pending_when_the_scheduler_stopped_is_reprocessed_after_the_restart()
-> Result<(), Error> {
    let b = bootstrap();
    let (topic, group) = (unique("late-stop"), unique("late-stop-group"));
    let arrivals = format!("{topic}.arrivals");
    create_topic(&b, &topic, 1)?;
    create_topic(&b, &arrivals, 1)?;
    let p = producer(&b)?;
    produce(&p, &topic, 0, &[ms("2025-09-01T10:15:00Z")])?;
    let report = serde_json::json!({"partition": 0, "from_offset": 0, "to_offset": 1,
        "minutes": [[ms("2025-09-01T10:15:00Z") / 60_000 * 60, 1]], "newest_event_ms": ms("2025-09-01T10:15:00Z")});
    produce_payload(&p, &arrivals, 0, &report.to_string())?;
    let ran = std::env::temp_dir().join(format!("sluice-late-stop-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&ran);
    let dag = gated_dag(
        &topic,
        &group,
        &format!("    arrivals_topic: {arrivals}\n    reprocess_late_data: true"),
    )
    .replace(
        "command: \"true\"",
        &format!("command: \"echo ran >> {}\"", ran.display()),
    );
    let second = std::time::Duration::from_secs(1);
    let mut scheduler = Scheduler::start("late-stop", &dag, &b)?;
    scheduler.wait_for(&format!("{RUN} success"), 20 * second)?;
    let (store, root) = scheduler.stop()?;
    let mut run = gated_run(&store)?;
    run.gate.as_mut().ok_or("no gate")?.late_pending = true;
    let mut writes = store.writes();
    writes.put_run(&run);
    store.apply(writes)?;
    store.flush()?;
    drop(store);
    let mut scheduler = Scheduler::resume(root, &b)?;
    scheduler.wait_for(
        "late data was pending when the scheduler stopped: reprocessing",
        20 * second,
    )?;
    scheduler.wait_for(&format!("{RUN}: reprocessing (1 of at most"), 20 * second)?;
    let started = std::time::Instant::now();
    while scheduler.count(&format!("{RUN} success")) < 1 {
        assert!(started.elapsed() < 20 * second, "{}", scheduler.output());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let output = scheduler.output();
    let (store, root) = scheduler.stop()?;
    assert_eq!(
        std::fs::read_to_string(&ran)?.lines().count(),
        2,
        "{output}"
    );
    let gate = gated_run(&store)?.gate.ok_or("no gate")?;
    assert!(!gate.late_pending && gate.late_reprocessed == 1, "{gate:?}");
    let _ = std::fs::remove_dir_all(root);
    let _ = std::fs::remove_file(ran);
    Ok(())
}

/// Hostile event times — far in the future, not positive, near the epoch — never move a
/// partition's watermark (a gate would open on data that is not there) and are counted.
#[test]
fn hostile_timestamps_do_not_move_the_watermark_and_are_counted() -> Result<(), Error> {
    let b = bootstrap();
    let topic = unique("hostile-times");
    create_topic(&b, &topic, 1)?;
    let p = producer(&b)?;
    produce(&p, &topic, 0, &[ms("2025-09-01T10:00:00Z")])?;
    // SAFETY of the environment: this test binary reads connections from the environment.
    unsafe { std::env::set_var("SLUICE_CONN_TEST_BROKER", connection(&b)) };
    let source = GateSource {
        connection: "test_broker".into(),
        topic: topic.clone(),
        group: unique("hostile-group"),
        arrivals_topic: None,
        lag_only: false,
    };
    let mut links = HashMap::new();
    let mut memory = SourceMemory::default();
    look(&Connections::default(), &mut links, &source, &mut memory)?;

    let ten_years_ahead = chrono::Utc::now().timestamp_millis() + 10 * 365 * 86_400_000;
    let first = chrono::DateTime::parse_from_rfc3339("2025-09-01T10:00:00Z")?.to_utc();
    // Each hostile time as the partition's newest message, the one a look reads.
    for hostile in [ten_years_ahead, 1, i64::MAX / 2] {
        produce(&p, &topic, 0, &[hostile])?;
        let view = look(&Connections::default(), &mut links, &source, &mut memory)?.view;
        assert_eq!(view.partitions[0].event_time, Some(first), "{hostile}");
    }
    produce(&p, &topic, 0, &[ms("2025-09-01T10:05:00Z")])?;
    let view = look(&Connections::default(), &mut links, &source, &mut memory)?.view;
    let at = chrono::DateTime::parse_from_rfc3339("2025-09-01T10:05:00Z")?.to_utc();
    assert_eq!(view.partitions[0].high_watermark, 5);
    assert_eq!(view.partitions[0].event_time, Some(at));
    assert_eq!(watermark(&view, None, view.at).0, Some(at));
    let rejected = memory.partitions[&0].rejected_timestamps;
    assert_eq!(
        rejected, 2,
        "the two far-future timestamps are not believed"
    );
    Ok(())
}

/// Produces one message with the given payload (an arrival report).
fn produce_payload(
    producer: &rdkafka::producer::BaseProducer,
    topic: &str,
    partition: i32,
    payload: &str,
) -> Result<(), Error> {
    producer
        .send(
            rdkafka::producer::BaseRecord::to(topic)
                .partition(partition)
                .key("report")
                .payload(payload),
        )
        .map_err(|(e, _)| e)?;
    rdkafka::producer::Producer::flush(producer, std::time::Duration::from_secs(10))?;
    Ok(())
}

/// Late data counted exactly without reading the events: generated traffic with bursts
/// of late events (a fifth of them 20 minutes late) goes through Kafka to the raw-zone sink
/// (`sluice-raw-sink`, in process), which writes the raw zone and reports its writes; the
/// gate's reader of those reports adds up to exactly the events of every interval, as many
/// as the generator made and the sink wrote, in a handful of reports per flush.
#[test]
fn arrival_reports_count_every_event_of_every_interval_exactly() -> Result<(), Error> {
    use clap::Parser;
    use sluice_runtime::gate::kafka::arrivals::{self, ArrivalsMemory};
    use sluice_runtime::gate::kafka::client::KafkaLink;

    let b = bootstrap();
    let (topic, reports) = (unique("sink"), unique("sink-arrivals"));
    create_topic(&b, &topic, 4)?;
    create_topic(&b, &reports, 1)?;
    let mut link = KafkaLink::new(sluice_runtime::connections::KafkaConnection {
        bootstrap_servers: b.clone(),
        properties: Default::default(),
        sasl_password_env: None,
    })?;
    // The gate's first look at the reports: everything after it counts.
    let mut memory = ArrivalsMemory::default();
    let first = arrivals::read(&mut link, &reports, &mut memory)?;
    assert_eq!(first.reports, 0);

    let raw = std::env::temp_dir().join(format!("sluice-sink-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&raw);
    let manifest = sluice_demo::eventgen::run(&sluice_demo::eventgen::Args::parse_from([
        "sluice-eventgen",
        "--bootstrap",
        &b,
        "--topic",
        &topic,
        "--partitions",
        "4",
        "--from",
        "2025-09-01T10:00:00Z",
        "--to",
        "2025-09-01T10:45:00Z",
        "--rate",
        "10",
        "--late",
        "0.2",
        "--late-minutes",
        "20",
    ]))?;
    let written = sluice_demo::raw_sink::run(&sluice_demo::raw_sink::Args::parse_from([
        "sluice-raw-sink",
        "--bootstrap",
        &b,
        "--topic",
        &topic,
        "--group",
        &unique("sink-group"),
        "--raw-zone",
        &raw.display().to_string(),
        "--arrivals-topic",
        &reports,
        "--batch",
        "2000",
        // Long enough for a broker slow to hand out the next batch under load (CI).
        "--idle-exit-seconds",
        "10",
    ]))?;
    assert_eq!(written, manifest.total());

    let mut per_minute = std::collections::BTreeMap::new();
    let mut newest = std::collections::BTreeMap::new();
    let mut read_reports = 0;
    loop {
        let read = arrivals::read(&mut link, &reports, &mut memory)?;
        if read.reports == 0 {
            break;
        }
        read_reports += read.reports;
        for (p, ms) in read.newest {
            let at = newest.entry(p).or_insert(ms);
            *at = (*at).max(ms);
        }
        for (minute, n) in read.per_minute {
            *per_minute.entry(minute).or_insert(0u64) += n;
        }
    }
    let mut per_interval = std::collections::BTreeMap::new();
    for (minute, n) in per_minute {
        let start = chrono::DateTime::from_timestamp(minute / 900 * 900, 0).ok_or("time")?;
        *per_interval.entry(start).or_insert(0u64) += n;
    }
    let expected: std::collections::BTreeMap<_, _> = manifest
        .intervals
        .iter()
        .map(|(start, counts)| (*start, counts.events))
        .collect();
    let late: u64 = manifest.intervals.values().map(|c| c.late).sum();
    println!(
        "{} events ({late} late) in {read_reports} reports: {per_interval:?}",
        manifest.total()
    );
    assert!(
        late > manifest.total() / 10,
        "bursts of late events: {late}"
    );
    assert_eq!(per_interval, expected);
    // The watermark the reports give: each partition's newest event written, the last
    // minute of traffic (late events are older, never newer).
    assert_eq!(newest.len(), 4, "{newest:?}");
    for ms_written in newest.values() {
        assert!(
            (ms("2025-09-01T10:44:00Z")..ms("2025-09-01T10:45:00Z")).contains(ms_written),
            "{newest:?}"
        );
    }
    // A few reports per flush and partition, however many events they count.
    assert!(
        read_reports <= 4 * (written / 2000 + 10),
        "{read_reports} reports"
    );
    assert_eq!(memory.unreadable, 0);
    let _ = std::fs::remove_dir_all(&raw);
    Ok(())
}

/// Hostile arrival reports cannot make a look read without bound: a report over the size
/// limit is unreadable (counted nowhere, shown), and a look stops at its byte budget,
/// leaving the rest, whole, to the next looks: every valid report counts once. A first
/// look cut by the budget leaves what was written before watching uncounted for good.
#[test]
fn arrival_reports_are_read_within_their_limits() -> Result<(), Error> {
    use sluice_runtime::gate::kafka::arrivals::{self, ArrivalsMemory};
    use sluice_runtime::gate::kafka::client::{KafkaLink, PayloadLimits};

    let b = bootstrap();
    let reports = unique("bounded-arrivals");
    create_topic(&b, &reports, 1)?;
    let mut link = KafkaLink::new(sluice_runtime::connections::KafkaConnection {
        bootstrap_servers: b.clone(),
        properties: Default::default(),
        sasl_password_env: None,
    })?;
    let limits = PayloadLimits {
        per_message: 2048,
        per_read: 8 * 1024,
    };
    let p = producer(&b)?;
    let report_of = |partition: i32, i: i64| {
        let minutes: Vec<(i64, u64)> = (0..40).map(|m| (1_756_720_800 + m * 60, 1)).collect();
        serde_json::json!({"partition": partition, "from_offset": i * 40, "to_offset": (i + 1) * 40, "minutes": minutes})
            .to_string()
    };
    // Written before watching began, more than one look's budget: the first look reads
    // some for the newest event times, and none of them may ever count.
    for i in 0..15 {
        produce_payload(&p, &reports, 0, &report_of(1, i))?;
    }
    let mut memory = ArrivalsMemory::default();
    let first = arrivals::read_within(&mut link, &reports, &mut memory, limits)?;
    assert!(
        first.reports > 0 && first.reports < 15,
        "the first look is cut by the budget: {}",
        first.reports
    );
    assert!(first.per_minute.is_empty(), "the first look counts nothing");

    // 40 valid reports of ~700 bytes (28 KB: several looks' budget), one of 100 KB
    // between them, and one that is not a report.
    let valid = |i: i64| report_of(0, i);
    for i in 0..20 {
        produce_payload(&p, &reports, 0, &valid(i))?;
    }
    let huge: Vec<(i64, u64)> = (0..8000).map(|m| (1_756_720_800 + m * 60, 1)).collect();
    let huge =
        serde_json::json!({"partition": 0, "from_offset": 800, "to_offset": 900, "minutes": huge});
    assert!(huge.to_string().len() > 100_000);
    produce_payload(&p, &reports, 0, &huge.to_string())?;
    produce_payload(&p, &reports, 0, "not a report")?;
    for i in 0..20 {
        // Ranges after the huge one's: they count (it did not).
        produce_payload(&p, &reports, 0, &valid(i + 25))?;
    }

    let mut looks = Vec::new();
    let mut events = 0u64;
    loop {
        let read = arrivals::read_within(&mut link, &reports, &mut memory, limits)?;
        if read.reports == 0 {
            break;
        }
        looks.push(read.reports);
        events += read.per_minute.values().sum::<u64>();
        assert!(looks.len() < 100, "the reads never end: {looks:?}");
    }
    println!("reports read per look: {looks:?}");
    assert!(
        looks.len() >= 4,
        "the byte budget splits the reports: {looks:?}"
    );
    assert!(looks.iter().all(|n| *n <= 13), "{looks:?}");
    assert_eq!(
        looks.iter().sum::<u64>(),
        42,
        "none of the reports from before watching"
    );
    assert_eq!(
        events,
        40 * 40,
        "every valid report counted once, and no other"
    );
    assert_eq!(memory.unreadable, 2, "the huge report and the garbage");
    Ok(())
}

/// A gate on several groups waits for every required one and only shows the others: the
/// stream layer's group falling behind never holds the batch layer back.
#[test]
fn the_gate_waits_for_every_required_group_and_only_shows_the_others() -> Result<(), Error> {
    let b = bootstrap();
    let topic = unique("groups");
    // Named so that the sink's group sorts first: it is the primary one.
    let (sink, slow, stream) = (unique("a-sink"), unique("b-slow"), unique("c-stream"));
    create_topic(&b, &topic, 1)?;
    let p = producer(&b)?;
    produce(&p, &topic, 0, &[ms("2025-09-01T10:15:00Z")])?;
    commit(&b, &sink, &topic, &[(0, 1)])?;
    let dag = gated_dag(&topic, "unused", "")
        .replace(
            "    group: unused\n",
            &format!(
                "    groups:\n      {sink}: {{ max_lag: 0 }}\n      {slow}: {{ max_lag: 0 }}\n      {stream}: {{ max_lag: 0, required: false }}\n"
            ),
        );
    let mut scheduler = Scheduler::start("groups", &dag, &b)?;
    let second = std::time::Duration::from_secs(1);
    scheduler.wait_for(&format!("{RUN} waiting on its gate"), 20 * second)?;
    // The reason shown names the required group that is behind.
    let started = std::time::Instant::now();
    let mut shown = scheduler.show()?;
    while !shown.contains(&format!("group {slow}: consumer lag 1 > max_lag 0")) {
        assert!(started.elapsed() < 20 * second, "{shown}");
        std::thread::sleep(std::time::Duration::from_millis(200));
        shown = scheduler.show()?;
    }
    assert!(!scheduler.saw("gate open"), "{}", scheduler.output());
    // The required group catches up; the stream layer's never does.
    commit(&b, &slow, &topic, &[(0, 1)])?;
    scheduler.wait_for(&format!("{RUN} gate open"), 20 * second)?;
    scheduler.wait_for(&format!("{RUN} success"), 20 * second)?;
    let shown = scheduler.show()?;
    let (store, root) = scheduler.stop()?;
    assert!(
        shown.contains(&format!(
            "group {stream} (watched, not waited for): lag 1 of at most 0"
        )) && shown.contains("over its rule"),
        "{shown}"
    );
    let figures = gated_run(&store)?
        .gate
        .and_then(|g| g.figures)
        .ok_or("no figures")?;
    let by_name: HashMap<_, _> = figures
        .groups
        .iter()
        .map(|g| (g.group.clone(), g))
        .collect();
    assert_eq!(figures.groups.len(), 2, "{figures:?}");
    assert!(by_name[&slow].ok && by_name[&slow].required);
    assert!(!by_name[&stream].ok && !by_name[&stream].required);
    assert_eq!(by_name[&stream].lag, Some(1));
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}
