//! The web UI in a real browser: the `sluice scheduler` process serves the fixture DAGs
//! (a succeeded, a failed and a running interval), and `tests/browser/ui.mjs` drives
//! Debian's headless Chromium through playwright-core: the grid's colours and counts, a
//! failed task's log, a running task's log following, the Gantt chart, a refused button
//! without the token, clear and trigger through the buttons, the DAG list's search and
//! filters, grid marks, auto-refresh, the run list and the interval calendar.
//! `tests/browser/new_user.mjs` walks the README's first hour on the quickstart, and
//! `tests/browser/operate.mjs` an operator's pages over DAGs with history (paging, a date
//! range, the calendar in a DAG's zone, code and rendered fields, the Gantt axis, backfill
//! history, SLA misses, a DAG that keeps its last good version). Their screenshots are
//! `docs/ui/*.png`, the images of docs/ui.md (scripts/install-browser installs the browser).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "ui-test-token";

struct Scheduler {
    child: Child,
    root: PathBuf,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Starts the scheduler on a free port over the fixture DAGs (a succeeded, a failed and a
/// running interval; a paused DAG; a broken file); returns it with the UI's address.
fn start_scheduler() -> (Scheduler, String) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ui");
    let read = |name: &str| std::fs::read_to_string(fixtures.join(name)).unwrap();
    let (scheduler, url, _) = start_scheduler_with(
        "ui",
        &[
            ("pipeline.yaml", read("pipeline.yaml")),
            ("playground.yaml", read("playground.yaml")),
            // A paused DAG with a tag and an owner, for the DAG list's filters.
            (
                "pausable.yaml",
                "dag: pausable\nowner: data-team\ntags: [demo]\npaused_on_creation: true\ntasks:\n  a: { type: noop }\n".into(),
            ),
            // A file that does not load: the banner names it.
            (
                "broken.yaml",
                "dag: broken\ntasks:\n  a: { type: nope }\n".into(),
            ),
        ],
    );
    (scheduler, url)
}

/// Starts the scheduler on a free port over `files` (name, text) in a fresh DAG folder;
/// returns it with the UI's address and the folder.
fn start_scheduler_with(name: &str, files: &[(&str, String)]) -> (Scheduler, String, PathBuf) {
    let root = std::env::temp_dir().join(format!("sluice-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    for (file, text) in files {
        std::fs::write(dags.join(file), text).unwrap();
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--dags")
        .arg(&dags)
        .arg("--state")
        .arg(root.join("state"))
        .args(["scheduler", "--grace", "1", "--listen", "127.0.0.1:0"])
        .env("SLUICE_API_TOKEN", TOKEN)
        .env_remove("SLUICE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (address, found) = std::sync::mpsc::channel();
    follow_stderr(child.stderr.take().unwrap(), address);
    let (_, url) = found
        .recv_timeout(Duration::from_secs(30))
        .expect("the scheduler says where its UI is");
    (Scheduler { child, root }, url, dags)
}

/// Echoes the scheduler's standard error and sends `("url", address)` once it says where
/// its UI is.
fn follow_stderr(
    stderr: std::process::ChildStderr,
    found: std::sync::mpsc::Sender<(&'static str, String)>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("API and web UI on ").nth(1) {
                let url = rest.split_whitespace().next().unwrap_or_default();
                let _ = found.send(("url", url.trim_end_matches('/').to_owned()));
            }
            eprintln!("scheduler: {line}");
        }
    });
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a browser script under `tests/browser` with `args`; fails the test with its output
/// unless it passed, and checks that it wrote the screenshots `shots` into `docs/ui`.
fn run_browser_script(script: &str, args: &[&std::ffi::OsStr], shots: &[&str]) {
    let repo = repo();
    assert!(
        repo.join("tests/browser/node_modules/playwright-core")
            .is_dir()
            && Path::new("/usr/bin/chromium").exists(),
        "the browser test needs Chromium and playwright-core: run scripts/install-browser (scripts/test does)"
    );
    let output = Command::new("node")
        .arg(repo.join("tests/browser").join(script))
        .args(args)
        .output()
        .expect("node runs");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{said}");
    assert!(output.status.success(), "{said}");
    for name in shots {
        assert!(
            repo.join(format!("docs/ui/{name}.png")).is_file(),
            "screenshot {name}"
        );
    }
}

/// Waits until the pipeline's three intervals have their outcomes (through the API).
fn wait_for_outcomes(url: &str) {
    let started = Instant::now();
    loop {
        let states = Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import json, urllib.request; r = json.load(urllib.request.urlopen(urllib.request.Request('{url}/api/v1/dags/pipeline/runs?run_type=scheduled', headers={{'Authorization': 'Bearer {TOKEN}'}}))); \
                 print(','.join(x['state'] for x in r['runs']))"
            ))
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default();
        if states == "running,failed,success" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the fixture runs did not settle: {states}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_ui_shows_the_grid_logs_and_gantt_and_its_buttons_act_through_the_api() {
    let (_scheduler, url) = start_scheduler();
    wait_for_outcomes(&url);
    // The screenshots are docs/ui.md's images: each run of this test renews them.
    let shots = repo().join("docs/ui");
    run_browser_script(
        "ui.mjs",
        &[url.as_ref(), TOKEN.as_ref(), shots.as_os_str()],
        &[
            "1-dags",
            "2-grid",
            "3-failed-task-log",
            "4-run-gantt",
            "6-triggered-run",
            "7-dags-filtered",
            "8-runs",
            "9-calendar",
        ],
    );
}

/// `scripts/run` as the README's new user starts it (the quickstart DAGs, embedded state, the
/// token it prints), with this test's build instead of a release build and a free port.
fn start_quickstart() -> (Scheduler, String, String, PathBuf) {
    let repo = repo();
    let root = std::env::temp_dir().join(format!("sluice-new-user-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    for entry in std::fs::read_dir(repo.join("examples/quickstart")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            std::fs::copy(&path, dags.join(path.file_name().unwrap())).unwrap();
        }
    }
    let mut child = Command::new(repo.join("scripts/run"))
        .env("SLUICE_BIN", env!("CARGO_BIN_EXE_sluice"))
        .env("SLUICE_DAGS", &dags)
        .env("SLUICE_STATE", root.join("state"))
        .env("SLUICE_LISTEN", "127.0.0.1:0")
        .env_remove("SLUICE_API_TOKEN")
        .env_remove("SLUICE_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (found, heard) = std::sync::mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let token_found = found.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(token) = line.split("(this run only): ").nth(1) {
                let _ = token_found.send(("token", token.trim().to_owned()));
            }
            println!("scripts/run: {line}");
        }
    });
    follow_stderr(stderr, found);
    let (mut url, mut token) = (None, None);
    while url.is_none() || token.is_none() {
        let (what, value) = heard
            .recv_timeout(Duration::from_secs(30))
            .expect("scripts/run prints the token and the scheduler its address");
        match what {
            "url" => url = Some(value),
            _ => token = Some(value),
        }
    }
    (
        Scheduler {
            child,
            root: root.clone(),
        },
        url.unwrap_or_default(),
        token.unwrap_or_default(),
        dags,
    )
}

/// The README's first hour in the browser: `scripts/run`, sign in with the printed token,
/// trigger hello_pipeline from its params form with a conf value and a date, watch it
/// finish and find the value in its log, pause and unpause, clear a task with its
/// downstream after the preview and see them run again, and find a broken DAG file in the
/// banner.
#[test]
fn a_new_user_runs_the_quickstart_in_the_browser() {
    let (_scheduler, url, token, dags) = start_quickstart();
    let shots = repo().join("docs/ui");
    run_browser_script(
        "new_user.mjs",
        &[
            url.as_ref(),
            token.as_ref(),
            shots.as_os_str(),
            dags.as_os_str(),
        ],
        &["10-trigger-form", "11-hello-finished", "12-clear-preview"],
    );
}

/// An operator's pages on DAGs with history: `hourly` (Europe/Berlin, 60 hourly intervals
/// caught up, a templated command) pages its grid (25 a page) and run list (50), narrows the
/// grid to a date range, draws its calendar in Berlin time, shows its file and compiled tasks
/// and a task's rendered command, a Gantt axis with round ticks, and its backfill history;
/// `slow` misses its SLA and the SLA page lists it; `kept` breaks after loading and the
/// banner links to the version it keeps.
#[test]
fn an_operator_pages_through_history_code_sla_misses_and_backfills() {
    use chrono::{DurationRound, TimeDelta, Utc};
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let start = hour - TimeDelta::hours(60);
    let stamp = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let hourly = format!(
        "# Hourly in Berlin: {n} intervals caught up at start.\n\
         dag: hourly\n\
         description: Hourly extract and load, in Berlin time\n\
         timezone: Europe/Berlin\n\
         schedule: \"0 * * * *\"\n\
         start: {start}\n\
         end: {end}\n\
         catchup: true\n\
         max_active_runs: 16\n\
         params:\n  region: eu\n\
         tasks:\n\
         \x20 extract:\n\
         \x20   type: command\n\
         \x20   command: \"echo extracting {{{{ ds }}}} for {{{{ params.region | shell_quote }}}}\"\n\
         \x20 load: {{ type: noop, depends_on: [extract] }}\n",
        n = 60,
        start = stamp(start),
        // No 61st interval should the test cross the hour.
        end = stamp(hour),
    );
    let slow = format!(
        "dag: slow\nschedule: \"* * * * *\"\nstart: {}\ncatchup: false\n\
         sla: {{ warn_after: 1s, deadline: 2s }}\ntasks:\n  wait: {{ type: command, command: \"sleep 3\" }}\n",
        stamp(hour - TimeDelta::hours(1)),
    );
    let (_scheduler, url, dags) = start_scheduler_with(
        "operate",
        &[
            ("hourly.yaml", hourly),
            ("slow.yaml", slow),
            (
                "kept.yaml",
                "dag: kept\ntasks:\n  a: { type: noop }\n".into(),
            ),
        ],
    );
    let shots = repo().join("docs/ui");
    run_browser_script(
        "operate.mjs",
        &[
            url.as_ref(),
            TOKEN.as_ref(),
            shots.as_os_str(),
            dags.as_os_str(),
            stamp(start).as_ref(),
        ],
        &[
            "13-grid-paged",
            "14-code",
            "15-rendered-fields",
            "16-gantt-axis",
            "17-sla-misses",
            "18-backfills",
            "19-calendar-berlin",
            "20-kept-banner",
        ],
    );
}

/// Data assets: the asset graph and an asset's writes (`tests/browser/assets.mjs`), a
/// rewrite shown as a rerun of one reader and a stale mark on the other, the token guard.
#[test]
fn an_operator_follows_data_from_its_producers_to_its_readers() {
    let producer = "dag: agg\nschedule: \"*/15 * * * *\"\nstart: 2025-09-01T00:00:00Z\n\
        end: 2025-09-01T02:00:00Z\ncatchup: true\ntasks:\n  load:\n    type: noop\n\
        \x20   produces: [warehouse.agg_15m]\n";
    let reader = |dag: &str, policy: &str| {
        format!(
            "dag: {dag}\nschedule: \"@hourly\"\nstart: 2025-09-01T00:00:00Z\nend: 2025-09-01T02:00:00Z\n\
             catchup: true\nconsumes:\n  warehouse.agg_15m: {{ intervals: within, on_upstream_change: {policy} }}\n\
             tasks:\n  check: {{ type: command, command: \"true\" }}\n"
        )
    };
    let (_scheduler, url, _) = start_scheduler_with(
        "assets",
        &[
            ("agg.yaml", producer.to_owned()),
            ("validation.yaml", reader("validation", "rerun")),
            ("report.yaml", reader("report", "mark_stale")),
            // A third hour whose windows nobody writes: its run waits, saying for what.
            (
                "waiting.yaml",
                reader("waiting", "rerun")
                    .replace("end: 2025-09-01T02:00:00Z", "end: 2025-09-01T03:00:00Z"),
            ),
        ],
    );
    let shots = repo().join("docs/ui");
    run_browser_script(
        "assets.mjs",
        &[url.as_ref(), TOKEN.as_ref(), shots.as_os_str()],
        &["21-asset-graph", "22-asset-history"],
    );
}
