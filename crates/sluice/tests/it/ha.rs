//! High availability (docs/ha.md) with the real pieces: two `sluice scheduler` processes of
//! one deployment, each with its own state folder, a leader lease on etcd, and the state
//! shipped to moto's S3 server or a folder.
//!
//! - A lost machine: the active is SIGKILLed and its state folder deleted while a backfill
//!   (with EMR steps) and catch-up scheduled runs are in flight; the standby takes over
//!   within the lease TTL plus its restore, and everything ends processed exactly once.
//! - A partition: the active is cut off from etcd (the fault proxy blackholes its etcd
//!   connection); it stops dispatching within the TTL, the standby takes over, and after
//!   the heal the old active is a standby holding no state.
//!
//! Every task appends `start`/`end` lines with its scheduler's pid (`$PPID`) and the time, so
//! the tests see who ran what when: no (interval, task) ran in two schedulers at once.

use sluice_tests as support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::fault_proxy::{Fault, FaultProxy};

type Error = Box<dyn std::error::Error>;

const LEASE_TTL: Duration = Duration::from_secs(2);
const BACKFILL_FROM: &str = "2025-01-01T00:00:00Z";
const BACKFILL_TO: &str = "2025-01-01T08:00:00Z";
const BACKFILL_INTERVALS: usize = 32;

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn wait_for(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Result<Duration, Error> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if done() {
            return Ok(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("timed out after {limit:?} waiting for {what}").into())
}

/// A deployment's folder: DAGs, the effects file, the shipping folder, each instance's
/// configuration and state.
struct Deployment {
    root: PathBuf,
    name: String,
    ship_to: String,
    s3: bool,
    connection: String,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::env::var_os("SLUICE_TEST_KEEP").is_some() {
            return;
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One `sluice scheduler` of the deployment.
struct Instance {
    name: String,
    config: PathBuf,
    state: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    connection: String,
    /// The API token the scheduler is given, if any.
    token: Option<String>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A task command that records its start and end (or its interruption) with its
/// scheduler's pid, as a YAML single-quoted string's content.
fn recording(effects: &Path, sleep: &str) -> String {
    record_command(effects, sleep).replace('\'', "''")
}

fn record_command(effects: &Path, sleep: &str) -> String {
    let file = effects.display();
    let id = "$SLUICE_DAG_ID $SLUICE_LOGICAL_DATE $SLUICE_TASK_ID $PPID";
    format!(
        "echo \"start {id} $(date +%s%N)\" >> {file}; \
         trap 'echo \"stop {id} $(date +%s%N)\" >> {file}; exit 1' TERM; \
         sleep {sleep} & wait; echo \"end {id} $(date +%s%N)\" >> {file}"
    )
}

impl Deployment {
    fn new(test: &str, s3: bool, cluster: &str) -> Result<Deployment, Error> {
        let name = format!("{test}-{}-{}", std::process::id(), now_ns() % 1_000_000);
        let root = std::env::temp_dir().join(format!("sluice-ha-{name}"));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dags"))?;
        let effects = root.join("effects.txt");
        let ship_to = if s3 {
            let bucket = format!("sluice-ha-{}", now_ns() % 1_000_000_000);
            support::ha::create_bucket(&bucket)?;
            format!("s3://{bucket}/{name}")
        } else {
            root.join("ship").display().to_string()
        };
        // Catch-up scheduled runs: three hours of minutes, three at a time.
        let start = chrono::Utc::now() - chrono::TimeDelta::hours(3);
        std::fs::write(
            root.join("dags/ha_sched.yaml"),
            format!(
                "dag: ha_sched\nschedule: \"* * * * *\"\nstart: {}\ncatchup: true\nmax_active_runs: 3\n\
                 defaults: {{ retries: 5, retry_delay: 0s }}\ntasks:\n\
                 \x20 tick: {{ type: command, command: '{}' }}\n",
                start.format("%Y-%m-%dT%H:%M:00Z"),
                recording(&effects, "0.3")
            ),
        )?;
        if !cluster.is_empty() {
            std::fs::write(
                root.join("dags/ha_backfill.yaml"),
                format!(
                    "dag: ha_backfill\nschedule: \"*/15 * * * *\"\nstart: {BACKFILL_FROM}\n\
                     paused_on_creation: true\nmax_active_runs: 6\n\
                     defaults: {{ retries: 5, retry_delay: 0s }}\ntasks:\n\
                     \x20 extract: {{ type: command, command: '{}' }}\n\
                     \x20 aggregate:\n    type: spark\n    backend: emr\n    connection: test_emr\n\
                     \x20   depends_on: [extract]\n    application: s3://jobs/aggregate_15m.py\n\
                     \x20   args: [--start, \"{{{{ data_interval_start }}}}\"]\n\
                     \x20 check: {{ type: command, depends_on: [aggregate], command: '{}' }}\n",
                    recording(&effects, "0.1"),
                    recording(&effects, "0.1")
                ),
            )?;
        }
        let connection = serde_json::json!({
            "type": "emr", "cluster_id": cluster, "region": "us-east-1",
            "endpoint_url": if cluster.is_empty() { String::new() } else { support::emr::endpoint() },
            "poll_initial_seconds": 0.1, "poll_max_seconds": 0.4, "api_attempts": 4
        })
        .to_string();
        Ok(Deployment {
            root,
            name,
            ship_to,
            s3,
            connection,
        })
    }

    /// An instance whose etcd is at `etcd` (the real one, or a proxy in front of it).
    fn instance(&self, name: &str, etcd: &str) -> Result<Instance, Error> {
        self.instance_listening(name, etcd, None, None)
    }

    /// An instance with its API on `port` (and a token), or none.
    fn instance_listening(
        &self,
        name: &str,
        etcd: &str,
        port: Option<u16>,
        token: Option<&str>,
    ) -> Result<Instance, Error> {
        let listen = port.map_or("off".to_owned(), |p| format!("127.0.0.1:{p}"));
        let s3 = if self.s3 {
            format!(
                "s3_region = \"us-east-1\"\ns3_endpoint = \"{}\"\n",
                support::ha::s3_endpoint()
            )
        } else {
            String::new()
        };
        let config = self.root.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "dags = \"dags\"\nstate = \"state-{name}\"\nlisten = \"{listen}\"\n\
                 [scheduler]\nshutdown_grace = \"5s\"\nreload_every = \"1s\"\n\
                 [ha]\netcd = [\"{etcd}\"]\ndeployment = \"{}\"\ninstance = \"{name}\"\n\
                 ship_to = \"{}\"\n{s3}lease_ttl = \"{}s\"\nship_every = \"200ms\"\n\
                 snapshot_every = \"3s\"\n",
                self.name,
                self.ship_to,
                LEASE_TTL.as_secs()
            ),
        )?;
        Ok(Instance {
            name: name.to_owned(),
            config,
            state: self.root.join(format!("state-{name}")),
            log: self.root.join(format!("{name}.log")),
            child: None,
            connection: self.connection.clone(),
            token: token.map(str::to_owned),
        })
    }

    /// The effects file as attempts: (dag, date, task) → [(pid, start, end)].
    fn attempts(&self) -> Result<Attempts, Error> {
        let text = std::fs::read_to_string(self.root.join("effects.txt")).unwrap_or_default();
        let mut open: BTreeMap<(String, String, String, u32), u128> = BTreeMap::new();
        let mut attempts: Attempts = BTreeMap::new();
        for line in text.lines() {
            let parts: Vec<&str> = line.split(' ').collect();
            if parts.len() != 6 {
                return Err(format!("garbled effects line {line:?}").into());
            }
            let key = (
                parts[1].to_owned(),
                parts[2].to_owned(),
                parts[3].to_owned(),
            );
            let pid: u32 = parts[4].parse()?;
            let at: u128 = parts[5].parse()?;
            let slot = (key.0.clone(), key.1.clone(), key.2.clone(), pid);
            match parts[0] {
                "start" => {
                    open.insert(slot, at);
                }
                "end" | "stop" => {
                    let start = open
                        .remove(&slot)
                        .ok_or(format!("an end without a start: {line}"))?;
                    attempts.entry(key).or_default().push(Attempt {
                        pid,
                        start,
                        end: Some(at),
                        finished: parts[0] == "end",
                    });
                }
                _ => return Err(format!("garbled effects line {line:?}").into()),
            }
        }
        // Still open: killed without a chance to say so (or still running).
        for ((dag, date, task, pid), start) in open {
            attempts
                .entry((dag, date, task))
                .or_default()
                .push(Attempt {
                    pid,
                    start,
                    end: None,
                    finished: false,
                });
        }
        Ok(attempts)
    }
}

/// (dag, logical date, task) → its attempts.
type Attempts = BTreeMap<(String, String, String), Vec<Attempt>>;

#[derive(Debug, Clone)]
struct Attempt {
    pid: u32,
    start: u128,
    end: Option<u128>,
    finished: bool,
}

impl Instance {
    fn sluice(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .arg("--config")
            .arg(&self.config)
            .env("SLUICE_CONN_TEST_EMR", &self.connection)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env_remove("AWS_PROFILE")
            .env_remove("SLUICE_API_TOKEN")
            .env_remove("SLUICE_CONFIG")
            .env_remove("SLUICE_LISTEN");
        if let Some(token) = &self.token {
            command.env("SLUICE_API_TOKEN", token);
        }
        command
    }

    fn start(&mut self) -> Result<(), Error> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        self.child = Some(
            self.sluice()
                .arg("scheduler")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()?,
        );
        Ok(())
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn count(&self, text: &str) -> usize {
        self.log_text().matches(text).count()
    }

    /// Waits until the log says `text` more than `before` times.
    fn wait_log(&self, text: &str, before: usize, limit: Duration) -> Result<Duration, Error> {
        wait_for(&format!("`{text}` in {}'s log", self.name), limit, || {
            self.count(text) > before
        })
        .map_err(|e| format!("{e}\n--- {} log:\n{}", self.name, self.log_text()).into())
    }

    fn kill9(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// SIGTERM, and the exit status after a graceful stop.
    fn stop(&mut self) -> Result<std::process::ExitStatus, Error> {
        let mut child = self.child.take().ok_or("not running")?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )?;
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > Duration::from_secs(60) {
                child.kill()?;
                return Err(format!("{} did not stop\n{}", self.name, self.log_text()).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self, args: &[&str]) -> Result<std::process::Output, Error> {
        Ok(self.sluice().args(args).output()?)
    }

    /// `audit` as JSON (the state must be free: no scheduler on it).
    fn audit(&self, dag: &str, from: &str, to: &str) -> Result<serde_json::Value, Error> {
        let out = self.output(&["--output", "json", "audit", dag, "--from", from, "--to", to])?;
        let report: serde_json::Value = serde_json::from_slice(&out.stdout)
            .map_err(|e| format!("audit: {e}: {}", support::commands::text(&out)))?;
        Ok(report)
    }
}

/// The seconds the log's "state ready in X s" line gives.
fn restore_seconds(log: &str) -> f64 {
    log.rsplit("state ready in ")
        .next()
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every interval in the report succeeded exactly once; no gap.
fn assert_exactly_once(report: &serde_json::Value, intervals: usize, what: &str) {
    assert_eq!(report["gaps"], 0, "{what}: gaps\n{report:#}");
    let entries = report["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), intervals, "{what}: intervals\n{report:#}");
    assert!(
        entries.iter().all(|e| e["successes"] == 1),
        "{what}: an interval succeeded other than once in the ledger\n{report:#}"
    );
}

/// No (interval, task) ran in two schedulers at once.
fn assert_never_concurrent(attempts: &Attempts) {
    for (key, list) in attempts {
        for (i, a) in list.iter().enumerate() {
            for b in &list[i + 1..] {
                if a.pid == b.pid {
                    continue;
                }
                let (first, second) = if a.start <= b.start { (a, b) } else { (b, a) };
                let first_end = first.end.unwrap_or(u128::MAX);
                assert!(
                    first_end <= second.start,
                    "{key:?} ran in two schedulers at once: {first:?} and {second:?}"
                );
            }
        }
    }
}

fn floor_minute(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:00Z").to_string()
}

fn minutes_between(from: &str, to: &str) -> Result<usize, Error> {
    let from = chrono::DateTime::parse_from_rfc3339(from)?;
    let to = chrono::DateTime::parse_from_rfc3339(to)?;
    Ok(((to - from).num_minutes()).max(0) as usize)
}

fn sched_start(deployment: &Deployment) -> Result<String, Error> {
    let text = std::fs::read_to_string(deployment.root.join("dags/ha_sched.yaml"))?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix("start: "))
        .ok_or("no start")?
        .to_owned())
}

#[test]
fn a_standby_takes_over_a_lost_active_during_a_backfill_and_scheduled_runs() -> Result<(), Error> {
    let cluster = support::emr::cluster_named("sluice-ha-failover")?;
    let deployment = Deployment::new("failover", true, &cluster)?;
    let etcd = support::ha::etcd_url();
    let mut a = deployment.instance("a", &etcd)?;
    let mut b = deployment.instance("b", &etcd)?;
    a.start()?;
    a.wait_log("scheduling", 0, Duration::from_secs(30))?;
    b.start()?;
    b.wait_log("standby; active: `a`", 0, Duration::from_secs(30))?;

    let out = a.output(&[
        "backfill",
        "ha_backfill",
        "--from",
        BACKFILL_FROM,
        "--to",
        BACKFILL_TO,
    ])?;
    assert!(out.status.success(), "{}", support::commands::text(&out));
    // Some of the backfill is done, more is in flight (EMR steps take about 2 s).
    wait_for("backfill progress", Duration::from_secs(60), || {
        deployment.attempts().is_ok_and(|attempts| {
            attempts
                .iter()
                .filter(|((dag, _, task), list)| {
                    dag == "ha_backfill" && task == "check" && list.iter().any(|a| a.finished)
                })
                .count()
                >= 6
        })
    })?;

    // The machine is lost: the process and its disk.
    let a_pid = a.pid();
    let killed_at = Instant::now();
    let killed_ns = now_ns();
    a.kill9()?;
    std::fs::remove_dir_all(&a.state)?;
    let sched_until = floor_minute(chrono::Utc::now());

    b.wait_log("state ready in", 0, Duration::from_secs(30))?;
    let takeover = killed_at.elapsed();
    let restore = restore_seconds(&b.log_text());
    let ready_ns = now_ns();
    println!(
        "failover: standby ready {:.3} s after the SIGKILL (lease TTL {} s, restore {restore:.3} s)",
        takeover.as_secs_f64(),
        LEASE_TTL.as_secs()
    );
    // The lease runs out at most a TTL after the kill; the standby tries every quarter TTL.
    let bound =
        LEASE_TTL + LEASE_TTL / 4 + Duration::from_secs_f64(restore) + Duration::from_secs(1);
    assert!(
        takeover <= bound,
        "takeover took {takeover:?}, more than the lease TTL plus restore ({bound:?})"
    );
    let status = b.output(&["--output", "json", "ha", "status"])?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    assert_eq!(status["active"]["holder"]["instance"], "b", "{status:#}");
    assert!(
        status["shipped"]["parent"].is_array(),
        "b's generation names a's as its parent: {status:#}"
    );

    // b finishes the backfill and the catch-up.
    let sched_from = sched_start(&deployment)?;
    wait_for(
        "the backfill and the catch-up",
        Duration::from_secs(240),
        || {
            deployment.attempts().is_ok_and(|attempts| {
                let checks = attempts
                    .iter()
                    .filter(|((dag, _, task), l)| {
                        dag == "ha_backfill" && task == "check" && l.iter().any(|a| a.finished)
                    })
                    .count();
                let ticks = attempts
                    .iter()
                    .filter(|((dag, date, _), l)| {
                        dag == "ha_sched" && **date < *sched_until && l.iter().any(|a| a.finished)
                    })
                    .count();
                checks == BACKFILL_INTERVALS
                    && ticks >= minutes_between(&sched_from, &sched_until).unwrap_or(usize::MAX)
            })
        },
    )?;
    assert!(b.stop()?.success(), "{}", b.log_text());

    assert_exactly_once(
        &b.audit("ha_backfill", BACKFILL_FROM, BACKFILL_TO)?,
        BACKFILL_INTERVALS,
        "backfill",
    );
    assert_exactly_once(
        &b.audit("ha_sched", &sched_from, &sched_until)?,
        minutes_between(&sched_from, &sched_until)?,
        "scheduled runs",
    );
    let store = sluice_store::Store::open(&b.state)?;
    assert_eq!(
        store.check()?,
        Vec::<String>::new(),
        "the store is inconsistent"
    );
    drop(store);

    // One EMR step per interval: b adopted a's steps by name rather than adding them again.
    let steps = support::emr::steps(&cluster)?;
    let names: Vec<&str> = steps.iter().map(|s| s.name.as_str()).collect();
    let unique: HashSet<&str> = names.iter().copied().collect();
    assert_eq!(
        names.len(),
        unique.len(),
        "an EMR step was added twice: {names:?}"
    );
    let intervals: HashSet<String> = steps
        .iter()
        .filter_map(|s| s.name.split('/').nth(1).map(str::to_owned))
        .collect();
    assert_eq!(intervals.len(), BACKFILL_INTERVALS, "steps: {names:?}");

    // a's attempts that wrote no end were killed: left behind by the SIGKILL on this one
    // host (a lost machine takes them along), b's recovery kills them before it dispatches.
    let attempts = ended_by(deployment.attempts()?, a_pid, ready_ns);
    assert_never_concurrent(&attempts);
    let b_pid = b_pid_of(&attempts, a_pid);
    let mut lost_work_ms: u128 = 0;
    for list in attempts.values() {
        for attempt in list {
            if attempt.pid == a_pid {
                // A shell a forked just before the kill writes its start line a moment
                // after (a loaded machine starts shells slowly): a bound, not the instant.
                assert!(
                    attempt.start < killed_ns + LEASE_TTL.as_nanos(),
                    "a started work after its SIGKILL: {attempt:?}"
                );
            } else if Some(attempt.pid) == b_pid {
                assert!(attempt.start >= killed_ns, "b started work while standby");
            }
        }
        // Finished by a but run again by b: work the shipped state had not caught up with.
        let redone = list.iter().any(|x| Some(x.pid) == b_pid && x.finished);
        if let Some(last_a) = list
            .iter()
            .filter(|x| x.pid == a_pid && x.finished)
            .filter_map(|x| x.end)
            .max()
            && redone
        {
            lost_work_ms = lost_work_ms.max(killed_ns.saturating_sub(last_a) / 1_000_000);
        }
    }
    println!(
        "failover: RPO: the oldest work a finished that b ran again ended {lost_work_ms} ms before the SIGKILL (0: none); ready {} ms after it",
        (ready_ns - killed_ns) / 1_000_000
    );
    assert!(
        lost_work_ms <= 2_000,
        "work finished {lost_work_ms} ms before the loss was not shipped"
    );
    Ok(())
}

/// The attempts, those of `pid` that wrote no end counted as ending at `at` (killed then).
fn ended_by(mut attempts: Attempts, pid: u32, at: u128) -> Attempts {
    for attempt in attempts.values_mut().flatten() {
        if attempt.pid == pid && attempt.end.is_none() {
            assert!(
                attempt.start < at,
                "{attempt:?} started after it was killed"
            );
            attempt.end = Some(at);
        }
    }
    attempts
}

/// The pid that ran work other than `a`'s.
fn b_pid_of(attempts: &Attempts, a_pid: u32) -> Option<u32> {
    attempts
        .values()
        .flatten()
        .map(|x| x.pid)
        .find(|pid| *pid != a_pid)
}

#[test]
fn an_active_cut_off_from_etcd_stops_and_comes_back_as_a_standby() -> Result<(), Error> {
    let deployment = Deployment::new("partition", false, "")?;
    let etcd = support::ha::etcd_url();
    let upstream: std::net::SocketAddr = etcd.trim_start_matches("http://").parse()?;
    let proxy = FaultProxy::start(upstream)?;
    let mut a = deployment.instance("a", &format!("http://{}", proxy.address()))?;
    let mut b = deployment.instance("b", &etcd)?;
    a.start()?;
    a.wait_log("scheduling", 0, Duration::from_secs(30))?;
    b.start()?;
    b.wait_log("standby; active: `a`", 0, Duration::from_secs(30))?;
    wait_for("a's first ticks", Duration::from_secs(60), || {
        deployment
            .attempts()
            .is_ok_and(|a| a.values().flatten().filter(|x| x.finished).count() >= 8)
    })?;

    let a_pid = a.pid();
    let cut_at = Instant::now();
    let cut_ns = now_ns();
    proxy.set(Fault::Blackhole);
    proxy.drop_connections();
    let stopped = a.wait_log("no longer the active one", 0, Duration::from_secs(10))?;
    // a kills its attempts' processes before it says so (SIGKILL: they write no line).
    let deposed_ns = now_ns();
    println!(
        "partition: a stopped {:.3} s after the cut (lease TTL {} s)",
        stopped.as_secs_f64(),
        LEASE_TTL.as_secs()
    );
    assert!(
        stopped <= LEASE_TTL + Duration::from_millis(500),
        "a went on for {stopped:?}"
    );
    b.wait_log("state ready in", 0, Duration::from_secs(30))?;
    println!(
        "partition: b ready {:.3} s after the cut",
        cut_at.elapsed().as_secs_f64()
    );
    let sched_until = floor_minute(chrono::Utc::now());

    // Healed: a finds b active and stays standby, holding no state of its own.
    proxy.set(Fault::None);
    a.wait_log("standby; active: `b`", 0, Duration::from_secs(30))?;
    assert!(
        !a.state.join("db").exists(),
        "the deposed instance kept a live database"
    );
    let set_aside = std::fs::read_dir(&a.state)?
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().starts_with("db.deposed-"));
    assert!(set_aside, "its old state is set aside");

    let sched_from = sched_start(&deployment)?;
    let expected = minutes_between(&sched_from, &sched_until)?;
    wait_for("the catch-up", Duration::from_secs(240), || {
        deployment.attempts().is_ok_and(|attempts| {
            attempts
                .iter()
                .filter(|((_, date, _), l)| **date < *sched_until && l.iter().any(|x| x.finished))
                .count()
                >= expected
        })
    })?;
    let b_stopping_ns = now_ns();
    let a_terms = a.count("state ready in");
    assert!(b.stop()?.success(), "{}", b.log_text());
    // a takes over again from b's shipped state (b handed the lease back); then it stops too.
    let handed_over = a.wait_log("state ready in", a_terms, Duration::from_secs(30))?;
    println!(
        "partition: after b's graceful stop, a was active again in {:.3} s",
        handed_over.as_secs_f64()
    );
    assert!(a.stop()?.success(), "{}", a.log_text());
    assert_exactly_once(
        &a.audit("ha_sched", &sched_from, &sched_until)?,
        expected,
        "scheduled runs",
    );

    let attempts = ended_by(deployment.attempts()?, a_pid, deposed_ns);
    assert_never_concurrent(&attempts);
    // From the lease's end until b handed it back, a started nothing.
    let fence_ns = cut_ns + LEASE_TTL.as_nanos();
    let cut_off: Vec<_> = attempts
        .iter()
        .flat_map(|(key, list)| list.iter().map(move |x| (key, x)))
        .filter(|(_, x)| x.pid == a_pid && x.start > fence_ns && x.start < b_stopping_ns)
        .collect();
    assert!(
        cut_off.is_empty(),
        "a dispatched while cut off: {cut_off:?}"
    );
    Ok(())
}

/// A free port on 127.0.0.1.
fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One GET with an optional token: status, head, body.
fn get(port: u16, path: &str, token: Option<&str>) -> Result<(u16, String, String), Error> {
    support::exchange(&format!("http://127.0.0.1:{port}"), "GET", path, "", token)
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

#[test]
fn a_standby_points_callers_at_the_active_and_a_step_down_hands_over() -> Result<(), Error> {
    let deployment = Deployment::new("handover", false, "")?;
    let etcd = support::ha::etcd_url();
    let token = "ha-test-token";
    let (port_a, port_b) = (free_port()?, free_port()?);
    let mut a = deployment.instance_listening("a", &etcd, Some(port_a), Some(token))?;
    let mut b = deployment.instance_listening("b", &etcd, Some(port_b), Some(token))?;
    a.start()?;
    a.wait_log("scheduling", 0, Duration::from_secs(30))?;
    b.start()?;
    b.wait_log("standby; active: `a`", 0, Duration::from_secs(30))?;
    wait_for("a's API", Duration::from_secs(10), || {
        get(port_a, "/readyz", None).is_ok_and(|(status, _, _)| status == 200)
    })?;

    // The standby is not ready (a load balancer sends callers to the active) and says who is.
    let (status, _, body) = get(port_b, "/readyz", None)?;
    assert_eq!(status, 503, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(ready["status"], "standby", "{body}");
    assert_eq!(ready["active"]["instance"], "a", "{body}");
    // Everything else needs the token, as on the active, then goes to the active.
    let (status, _, _) = get(port_b, "/api/v1/dags", None)?;
    assert_eq!(status, 401);
    let (status, head, body) = get(port_b, "/api/v1/dags?limit=5", Some(token))?;
    assert_eq!(status, 307, "{head}\n{body}");
    assert_eq!(
        header(&head, "location"),
        Some(format!("http://127.0.0.1:{port_a}/api/v1/dags?limit=5").as_str())
    );
    let (status, _, metrics) = get(port_b, "/metrics", Some(token))?;
    assert_eq!(status, 200);
    assert!(metrics.contains("sluice_ha_active 0"), "{metrics}");
    wait_for("a's HA gauges", Duration::from_secs(10), || {
        get(port_a, "/metrics", Some(token)).is_ok_and(|(_, _, m)| {
            m.contains("sluice_ha_active 1") && m.contains("sluice_ha_lease_revision")
        })
    })?;

    // A planned hand-over: a ships its last changes and gives the lease to b at once.
    wait_for("a's first ticks", Duration::from_secs(60), || {
        deployment
            .attempts()
            .is_ok_and(|x| x.values().flatten().filter(|t| t.finished).count() >= 5)
    })?;
    let asked = Instant::now();
    let out = a.output(&["ha", "step-down"])?;
    assert!(out.status.success(), "{}", support::commands::text(&out));
    let b_ready = b.wait_log("state ready in", 0, Duration::from_secs(60))?;
    println!(
        "hand-over: b active {:.3} s after `ha step-down`",
        asked.elapsed().as_secs_f64()
    );
    assert!(b_ready < Duration::from_secs(30));
    a.wait_log("standby; active: `b`", 0, Duration::from_secs(30))?;
    assert!(
        b.log_text().contains("restored generation"),
        "b restored what a shipped"
    );
    assert!(
        !b.log_text().contains("left running by a previous process"),
        "a planned hand-over leaves no attempt behind:\n{}",
        b.log_text()
    );
    wait_for(
        "the roles swapped on the probes",
        Duration::from_secs(30),
        || {
            get(port_b, "/readyz", None).is_ok_and(|(s, _, _)| s == 200)
                && get(port_a, "/readyz", None)
                    .is_ok_and(|(s, _, body)| s == 503 && body.contains("\"instance\":\"b\""))
        },
    )?;
    let status = a.output(&["--output", "json", "ha", "status"])?;
    let status: serde_json::Value = serde_json::from_slice(&status.stdout)?;
    assert_eq!(status["active"]["holder"]["instance"], "b", "{status:#}");
    assert!(b.stop()?.success());
    assert!(a.stop()?.success());
    Ok(())
}

#[test]
fn a_takeover_that_cannot_restore_keeps_the_local_state_and_gives_the_lease_back()
-> Result<(), Error> {
    let deployment = Deployment::new("unrestorable", false, "")?;
    let etcd = support::ha::etcd_url();
    let mut a = deployment.instance("a", &etcd)?;
    // A local state with something in it.
    let store = sluice_store::Store::open(&a.state)?;
    store.kv().put("marker", "key", b"local")?;
    store.flush()?;
    drop(store);
    // What was shipped cannot be restored: a deployment's first generation whose first
    // snapshot never completed.
    let generation = Path::new(&deployment.ship_to).join("gen/00000000000000000001");
    std::fs::create_dir_all(&generation)?;
    std::fs::write(
        generation.join("parent.json"),
        r#"{"from": null, "instance": "lost", "at": "2026-01-01T00:00:00Z"}"#,
    )?;

    a.start()?;
    a.wait_log("giving the lease back", 0, Duration::from_secs(30))?;
    // It tries again after a lease TTL, and gives up again: no half-restored state in between.
    a.wait_log("giving the lease back", 1, Duration::from_secs(30))?;
    assert!(
        a.log_text().contains("no complete snapshot yet"),
        "{}",
        a.log_text()
    );
    assert!(a.stop()?.success(), "{}", a.log_text());
    assert!(
        !a.state.join("restoring").exists(),
        "a half restore was left"
    );
    let store = sluice_store::Store::open(&a.state)?;
    assert_eq!(
        store.kv().get("marker", "key")?.as_deref(),
        Some(&b"local"[..]),
        "the local state was replaced by a failed restore"
    );
    Ok(())
}
