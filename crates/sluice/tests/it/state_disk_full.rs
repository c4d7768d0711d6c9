//! The state folder's disk filling up under a running scheduler (a 24 MiB tmpfs, filled to
//! the last byte): the scheduler stops with the error (fail-stop: it never acts on a
//! transition it could not record), the state it leaves checks clean, and once space is
//! freed a restart recovers and finishes every interval — the audit is clean.
//!
//! Mounting the tmpfs needs root (CI runs as root); elsewhere the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Timelike, Utc};
use support::commands::{sluice_on as sluice, text};

use sluice_tests as support;

/// A small tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("a mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .expect("mount runs");
        assert!(
            mounted.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&mounted.stderr)
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `folder` to the last byte.
fn fill(folder: &Path) {
    use std::io::Write;
    let mut filler = std::fs::File::create(folder.join("filler")).expect("a filler file");
    let block = vec![0u8; 64 << 10];
    while filler.write_all(&block).is_ok() {}
    let _ = filler.write_all(&block[..1]);
}

#[test]
fn a_full_state_disk_stops_the_scheduler_cleanly_and_a_restart_finishes_the_work() {
    let root = std::env::temp_dir().join(format!("sluice-disk-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (dags, state) = (root.join("dags"), root.join("state"));
    std::fs::create_dir_all(&dags).expect("a DAG folder");
    let disk = Tmpfs::mount(&state, "24m");
    let now = Utc::now()
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or_default();
    let (start, end) = (now - TimeDelta::minutes(300), now);
    let dag = |name: &str| {
        format!(
            "dag: {name}\nschedule: \"* * * * *\"\nstart: {}\nend: {}\ncatchup: true\nmax_active_runs: 4\ndefaults: {{ retries: 2, retry_delay: 1s }}\ntasks:\n  say:\n    type: command\n    command: \"head -c 20000 /dev/urandom | base64\"\n",
            start.to_rfc3339(),
            end.to_rfc3339()
        )
    };
    std::fs::write(dags.join("first.yaml"), dag("first")).expect("a DAG file");
    let log = root.join("scheduler.log");
    let start_scheduler = || {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("a log file");
        sluice(&dags, &state)
            .args(["scheduler", "--listen", "off"])
            .stdout(log.try_clone().expect("a log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("the scheduler starts")
    };

    // Running, the disk fills up, and a second DAG brings more work.
    let mut scheduler = start_scheduler();
    std::thread::sleep(Duration::from_secs(3));
    fill(&state);
    std::fs::write(dags.join("second.yaml"), dag("second")).expect("a DAG file");
    let began = Instant::now();
    let status = loop {
        if let Some(status) = scheduler.try_wait().expect("wait") {
            break status;
        }
        if began.elapsed() > Duration::from_secs(120) {
            let _ = scheduler.kill();
            panic!(
                "the scheduler kept running on a full disk: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let said = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(status.code(), Some(1), "{said}");
    assert!(said.contains("No space left on device"), "{said}");

    // Space freed (the filler goes): the state checks clean, a restart finishes the work.
    std::fs::remove_file(state.join("filler")).expect("the filler goes");
    let check = sluice(&dags, &state)
        .args(["state", "check"])
        .output()
        .expect("check");
    assert!(check.status.success(), "{}", text(&check));
    let mut scheduler = start_scheduler();
    // Until it holds the state, an audit would open the state itself (no scheduler answers
    // on the socket) and, holding sled's lock at the wrong moment, keep the scheduler from
    // starting: wait for its second start line in the shared log.
    let held = Instant::now();
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("sluice scheduler: DAGs from")
        .count()
        < 2
    {
        if let Some(status) = scheduler.try_wait().expect("wait") {
            panic!(
                "the restarted scheduler stopped ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        assert!(
            held.elapsed() < Duration::from_secs(60),
            "the restarted scheduler did not start: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (from, to) = (start.to_rfc3339(), end.to_rfc3339());
    let audit = |dag: &str| {
        sluice(&dags, &state)
            .args(["audit", dag, "--from", &from, "--to", &to])
            .output()
            .expect("audit")
    };
    // The audit is forwarded to the running scheduler (its control socket) until every
    // interval is there.
    let began = Instant::now();
    while !["first", "second"]
        .iter()
        .all(|dag| audit(dag).status.success())
    {
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "not done after {:?}: {}",
            began.elapsed(),
            text(&audit("second"))
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(scheduler.id()).unwrap_or(0)),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM");
    assert!(scheduler.wait().expect("wait").success());
    for dag in ["first", "second"] {
        let audit = audit(dag);
        assert!(
            text(&audit).contains("300 interval(s), 300 processed, 0 gap(s)"),
            "{}",
            text(&audit)
        );
    }
    let check = sluice(&dags, &state)
        .args(["state", "check"])
        .output()
        .expect("check");
    assert!(check.status.success(), "{}", text(&check));
    drop(disk);
    let _ = std::fs::remove_dir_all(&root);
}
