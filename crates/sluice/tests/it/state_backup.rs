//! Backup and restore of the state through the real binary: a backup taken while the
//! scheduler runs a backfill, the scheduler killed, the backup restored into a fresh state
//! folder, and the backfill finishing from the restored state with a clean audit and a
//! clean `state check`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use sluice_tests as support;

use support::commands::{sluice_on as sluice, text};

/// A child process killed when the test ends, passing or not (no stray scheduler).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_backup_taken_during_a_backfill_restores_and_the_backfill_finishes()
-> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-backup-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (dags, state, fresh, backup) = (
        root.join("dags"),
        root.join("state"),
        root.join("restored"),
        root.join("backup"),
    );
    std::fs::create_dir_all(&dags)?;
    let effects = root.join("effects.txt");
    // `start` in the future: only the backfill runs. Each interval takes a little while so
    // that the backup falls in the middle of the range; attempts in flight at the backup are
    // failed by the crash on restore and retried, as production tasks are.
    std::fs::write(
        dags.join("d.yaml"),
        format!(
            "dag: hourly\nschedule: \"@hourly\"\nstart: 2030-01-01T00:00:00Z\ntasks:\n  \
             work: {{ type: command, retries: 2, retry_delay: 1s, command: 'sleep 0.3; echo {{{{ ts }}}} >> {}' }}\n",
            effects.display()
        ),
    )?;
    let lines = || {
        std::fs::read_to_string(&effects)
            .map(|t| t.lines().count())
            .unwrap_or(0)
    };
    let scheduler = Killed(
        sluice(&dags, &state)
            .args(["scheduler", "--grace", "1", "--listen", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for("the control socket", Duration::from_secs(30), || {
        state.join("control.sock").exists()
    });
    // 24 intervals, two at a time, handed to the scheduler (the command follows it).
    let backfill = Killed(
        sluice(&dags, &state)
            .args([
                "backfill",
                "hourly",
                "--from",
                "2030-01-01T00:00:00Z",
                "--to",
                "2030-01-02T00:00:00Z",
                "--max-active-runs",
                "2",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    wait_for("a third of the backfill", Duration::from_secs(60), || {
        lines() >= 8
    });
    let taken = sluice(&dags, &state)
        .args(["state", "backup", "--to"])
        .arg(&backup)
        .output()?;
    assert!(taken.status.success(), "{}", text(&taken));
    assert!(text(&taken).contains("backup of"), "{}", text(&taken));
    let at_backup = lines();
    assert!(
        at_backup < 24,
        "the backup fell in the middle of the backfill"
    );

    // The disk is lost: the scheduler dies with the backfill in flight.
    drop(scheduler);
    drop(backfill);

    // A restore refuses a folder that has a database, and fills a fresh one.
    let refused = sluice(&dags, &state)
        .args(["state", "restore", "--from"])
        .arg(&backup)
        .output()?;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("already has a database"),
        "{}",
        text(&refused)
    );
    let restored = sluice(&dags, &fresh)
        .args(["state", "restore", "--from"])
        .arg(&backup)
        .output()?;
    assert!(restored.status.success(), "{}", text(&restored));
    assert!(
        text(&restored).contains("state check: 0 problem(s)"),
        "{}",
        text(&restored)
    );

    // The scheduler on the restored state resumes the backfill and finishes it.
    let scheduler = Killed(
        sluice(&dags, &fresh)
            .args(["scheduler", "--grace", "1", "--listen", "off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?,
    );
    // Until it holds the state, an audit would open the state itself (no scheduler answers
    // on the socket) and, holding sled's lock at the wrong moment, keep the scheduler from
    // starting.
    wait_for(
        "the restored scheduler's socket",
        Duration::from_secs(30),
        || fresh.join("control.sock").exists(),
    );
    let audit = || {
        sluice(&dags, &fresh)
            .args([
                "audit",
                "hourly",
                "--from",
                "2030-01-01T00:00:00Z",
                "--to",
                "2030-01-02T00:00:00Z",
            ])
            .output()
    };
    wait_for("a clean audit", Duration::from_secs(90), || {
        audit().is_ok_and(|o| o.status.success())
    });
    let report = audit()?;
    assert!(
        text(&report).contains("24 interval(s), 24 processed, 0 gap(s)"),
        "{}",
        text(&report)
    );
    let check = sluice(&dags, &fresh).args(["state", "check"]).output()?;
    assert!(check.status.success(), "{}", text(&check));
    drop(scheduler);

    // The check finds a ledger that disagrees with a run (written here by hand).
    {
        let store = sluice_store::Store::open(&fresh)?;
        let run = store.runs_of("hourly").next().ok_or("a run")??;
        let mut writes = store.writes();
        writes.put_ledger(
            "hourly",
            run.state.interval.start,
            &sluice_store::LedgerEntry {
                interval_end: run.state.interval.end,
                run_id: run.state.run_id.clone(),
                status: sluice_core::RunStatus::Failed,
                successes: 0,
                updated_at: chrono::Utc::now(),
            },
        );
        store.apply(writes)?;
        store.flush()?;
    }
    let check = sluice(&dags, &fresh).args(["state", "check"]).output()?;
    assert_eq!(check.status.code(), Some(1), "{}", text(&check));
    assert!(
        text(&check).contains("is success but the ledger says failed"),
        "{}",
        text(&check)
    );

    // Every interval ran; those after the backup ran again (idempotent work allows it).
    let written = std::fs::read_to_string(&effects)?;
    for hour in 0..24 {
        let ts = format!("2030-01-01T{hour:02}:00:00");
        assert!(written.contains(&ts), "interval {ts} never ran");
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Retention: compaction removes finished runs with their attempts and logs, keeps the
/// newest run of the DAG and the whole ledger (the audit stays clean), and leaves history
/// younger than the cutoff alone.
#[test]
fn compaction_removes_old_runs_and_their_logs_and_keeps_the_ledger()
-> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::temp_dir().join(format!("sluice-retention-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let (dags, state) = (root.join("dags"), root.join("state"));
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("kept.yaml"),
        "dag: kept\nschedule: \"@hourly\"\nstart: 2025-01-01T00:00:00Z\ntasks:\n  say:\n    type: command\n    command: echo hello\n",
    )?;
    let range = [
        "--from",
        "2025-01-01T00:00:00Z",
        "--to",
        "2025-01-01T05:00:00Z",
    ];
    let backfill = sluice(&dags, &state)
        .args(["backfill", "kept"])
        .args(range)
        .output()?;
    assert!(backfill.status.success(), "{}", text(&backfill));
    let logs = state.join("logs").join("kept");
    assert_eq!(std::fs::read_dir(&logs)?.count(), 5);

    let young = sluice(&dags, &state)
        .args(["state", "compact", "--older-than", "1h"])
        .output()?;
    assert!(young.status.success(), "{}", text(&young));
    assert!(text(&young).contains(": 0 run(s)"), "{}", text(&young));
    assert_eq!(std::fs::read_dir(&logs)?.count(), 5);

    let all = sluice(&dags, &state)
        .args(["state", "compact", "--older-than", "0s"])
        .output()?;
    assert!(all.status.success(), "{}", text(&all));
    assert!(
        text(&all).contains(": 4 run(s), 4 attempt(s)"),
        "{}",
        text(&all)
    );
    assert_eq!(
        std::fs::read_dir(&logs)?.count(),
        1,
        "the newest run's logs stay"
    );
    let audit = sluice(&dags, &state)
        .args(["audit", "kept"])
        .args(range)
        .output()?;
    assert!(audit.status.success(), "{}", text(&audit));
    assert!(
        text(&audit).contains("5 interval(s), 5 processed, 0 gap(s)"),
        "{}",
        text(&audit)
    );
    let check = sluice(&dags, &state).args(["state", "check"]).output()?;
    assert!(check.status.success(), "{}", text(&check));

    let bad = sluice(&dags, &state)
        .args(["state", "compact", "--older-than", "soon"])
        .output()?;
    assert_eq!(bad.status.code(), Some(1), "{}", text(&bad));
    assert!(
        text(&bad).contains("--older-than `soon`") && text(&bad).contains("help: a duration"),
        "{}",
        text(&bad)
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
