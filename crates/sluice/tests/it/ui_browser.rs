//! The web UI in a real browser: the `sluice scheduler` process serves the fixture DAGs
//! (a succeeded, a failed and a running interval), and `tests/browser/ui.mjs` drives
//! Debian's headless Chromium through playwright-core: the grid's colours and counts, a
//! failed task's log, a running task's log following, the Gantt chart, a refused button
//! without the token, clear and trigger through the buttons, the DAG list's search and
//! filters, grid marks, auto-refresh, the run list and the interval calendar. Its screenshots
//! are `docs/ui/*.png`, the images of docs/ui.md (scripts/install-browser installs the browser).

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

/// Starts the scheduler on a free port; returns it with the UI's address.
fn start_scheduler() -> (Scheduler, String) {
    let root = std::env::temp_dir().join(format!("sluice-ui-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags).unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ui");
    for name in ["pipeline.yaml", "playground.yaml"] {
        std::fs::copy(fixtures.join(name), dags.join(name)).unwrap();
    }
    // A paused DAG with a tag and an owner, for the DAG list's filters.
    std::fs::write(
        dags.join("pausable.yaml"),
        "dag: pausable\nowner: data-team\ntags: [demo]\npaused_on_creation: true\ntasks:\n  a: { type: noop }\n",
    )
    .unwrap();
    // A file that does not load: the banner names it.
    std::fs::write(
        dags.join("broken.yaml"),
        "dag: broken\ntasks:\n  a: { type: nope }\n",
    )
    .unwrap();
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
    (Scheduler { child, root }, url)
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
