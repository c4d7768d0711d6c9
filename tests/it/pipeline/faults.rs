//! Faults injected into the pipeline from outside, as they happen in production: a Spark
//! driver lost mid-job, the warehouse going down for a while.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sluice_demo::services::OwnClickHouse;

/// How often the injectors look.
const POLL: Duration = Duration::from_millis(100);

/// The processes whose command line contains `marker`: (pid, the whole command line).
fn processes_naming(marker: &str) -> Vec<(u32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            args.iter()
                .any(|a| a.contains(marker))
                .then(|| (pid, args.join(" ")))
        })
        .collect()
}

/// Kills, once, the driver JVM of the Spark application whose command line names `marker`
/// (SIGKILL, a few seconds into the job: the driver is lost, as when its host goes).
/// Answers whether it did.
pub fn kill_spark_once(marker: String, done: Arc<AtomicBool>) -> JoinHandle<bool> {
    std::thread::spawn(move || {
        while !done.load(Ordering::Relaxed) {
            // `spark-submit` first runs a short-lived launcher JVM, then execs the driver's.
            let driver = processes_naming(&marker).into_iter().find(|(_, args)| {
                args.contains("org.apache.spark.deploy.SparkSubmit")
                    && !args.contains("org.apache.spark.launcher.Main")
            });
            if let Some((pid, _)) = driver {
                std::thread::sleep(Duration::from_secs(3));
                let killed = std::process::Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                eprintln!("fault: killed Spark driver {pid} ({marker}): {killed}");
                return killed;
            }
            std::thread::sleep(POLL);
        }
        false
    })
}

/// Whether a Spark driver whose command line holds `marker` starts within `limit`.
pub fn spark_started(marker: &str, limit: Duration) -> bool {
    let began = Instant::now();
    while began.elapsed() < limit {
        if !processes_naming(marker).is_empty() {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}

/// When `trigger` appears (an interval's Spark output: its load comes next), stops the
/// warehouse for `outage`, then starts it again with its data. Answers how long it was
/// down, or `None` if the trigger never appeared.
pub fn warehouse_outage(
    server: Arc<OwnClickHouse>,
    trigger: PathBuf,
    outage: Duration,
    done: Arc<AtomicBool>,
) -> JoinHandle<Option<Duration>> {
    std::thread::spawn(move || {
        while !trigger.exists() {
            if done.load(Ordering::Relaxed) {
                return None;
            }
            std::thread::sleep(POLL);
        }
        let down = Instant::now();
        if let Err(e) = server.script("stop") {
            eprintln!("fault: stopping ClickHouse failed: {e}");
            return None;
        }
        eprintln!("fault: ClickHouse stopped ({} appeared)", trigger.display());
        std::thread::sleep(outage);
        // Back whatever happens: the rest of the test needs it.
        for _ in 0..30 {
            match server.script("start") {
                Ok(_) => break,
                Err(e) => eprintln!("fault: starting ClickHouse again failed: {e}; retrying"),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        eprintln!("fault: ClickHouse back after {:.1?}", down.elapsed());
        Some(down.elapsed())
    })
}
