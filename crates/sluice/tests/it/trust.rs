//! Trust boundaries attacked against the real binary (docs/security.md): what a client of
//! the control socket, a caller of the API, a DAG folder or a run's conf can make the
//! scheduler do. Each test is an attack that worked before its boundary existed.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sluice_tests::TempDir;
use sluice_tests::commands::{sluice_on, text};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) -> Result {
    let started = Instant::now();
    while !check() {
        if started.elapsed() > limit {
            return Err(format!("timed out waiting for {what}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A test's folder, with the `dags/` and `state/` in it.
struct Folders {
    root: TempDir,
    dags: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl Folders {
    fn new(name: &str) -> Result<Folders> {
        let root = TempDir::new(name)?;
        let (dags, state) = (root.path().join("dags"), root.path().join("state"));
        Ok(Folders { root, dags, state })
    }
}

/// A scheduler that is stopped with SIGTERM and waited for when dropped.
struct Scheduler(Child);

impl Drop for Scheduler {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = self.0.wait();
    }
}

fn start_scheduler(dags: &Path, state: &Path, config: &Path) -> Result<Scheduler> {
    let child = sluice_on(dags, state)
        .arg("--config")
        .arg(config)
        .args(["scheduler", "--grace", "1", "--listen", "off"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let scheduler = Scheduler(child);
    wait_for("the control socket", Duration::from_secs(30), || {
        state.join("control.sock").exists()
    })?;
    Ok(scheduler)
}

/// The newest run of `dag`, (run id, state), as `sluice runs list` shows it.
fn latest_run(dags: &Path, state: &Path, dag: &str) -> Option<(String, String)> {
    let out = sluice_on(dags, state)
        .args(["--output", "json", "runs", "list", dag])
        .output()
        .ok()?;
    let runs: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    let run = runs.get(0)?;
    Some((
        run["run_id"].as_str()?.to_owned(),
        run["state"].as_str()?.to_owned(),
    ))
}

/// Whether the newest run of `dag` succeeded.
fn succeeded(dags: &Path, state: &Path, dag: &str) -> bool {
    latest_run(dags, state, dag).is_some_and(|(_, s)| s == "success")
}

/// One raw request on the control socket, as any process that can reach it could send.
/// One request on the socket; its answer lines joined into one: standard error streamed as
/// it was written, then the line with the exit code.
fn raw_request(state: &Path, args: &[&str]) -> Result<serde_json::Value> {
    let mut socket = UnixStream::connect(state.join("control.sock"))?;
    writeln!(socket, "{}", serde_json::json!({ "args": args }))?;
    let mut answers = BufReader::new(&socket);
    let mut streamed = String::new();
    loop {
        let mut line = String::new();
        if answers.read_line(&mut line)? == 0 {
            return Err("the socket closed before its last answer".into());
        }
        let mut answer: serde_json::Value = serde_json::from_str(&line)?;
        streamed.push_str(answer["stderr"].as_str().unwrap_or_default());
        if !answer["code"].is_null() {
            answer["stderr"] = streamed.into();
            return Ok(answer);
        }
    }
}

/// Before: a forwarded command ran `load_settings()` inside the scheduler and replaced its
/// process-wide connections with the client's (none, from another folder; or its own
/// `--config`): every ClickHouse and EMR task failed with "no connection" until a restart.
#[test]
fn a_forwarded_command_never_changes_the_schedulers_connections() -> Result {
    let Folders { root, dags, state } = Folders::new("trust-connections")?;
    root.write(
        "dags/ch.yaml",
        "dag: ch\ntasks:\n  q: { type: clickhouse, connection: wh, sql: \"SELECT 1\", retries: 0 }\n",
    )?;
    // Nothing listens on the discard port: the task fails, but it finds its connection.
    let config = root.write(
        "sluice.toml",
        "[connections.wh]\ntype = \"clickhouse\"\nurl = \"http://127.0.0.1:9\"\n",
    )?;
    let client_config = root.write("client.toml", "[scheduler]\nshutdown_grace = \"2s\"\n")?;
    let _scheduler = start_scheduler(&dags, &state, &config)?;

    // Clients from another folder, one with a configuration of its own that has no `wh`.
    let elsewhere = TempDir::new("trust-elsewhere")?;
    let listed = sluice_on(&dags, &state)
        .current_dir(elsewhere.path())
        .args(["runs", "list", "ch"])
        .output()?;
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));
    let listed = sluice_on(&dags, &state)
        .current_dir(elsewhere.path())
        .arg("--config")
        .arg(&client_config)
        .args(["runs", "list", "ch"])
        .output()?;
    assert_eq!(listed.status.code(), Some(0), "{}", text(&listed));

    let triggered = sluice_on(&dags, &state)
        .current_dir(elsewhere.path())
        .args(["--output", "json", "dags", "trigger", "ch"])
        .output()?;
    assert_eq!(triggered.status.code(), Some(0), "{}", text(&triggered));
    let run_state = || latest_run(&dags, &state, "ch");
    wait_for("the run to end", Duration::from_secs(60), || {
        run_state().is_some_and(|(_, s)| s == "success" || s == "failed")
    })?;
    let (run_id, _) = run_state().ok_or("no run")?;
    let shown = sluice_on(&dags, &state)
        .args(["--output", "json", "runs", "show", "ch", &run_id])
        .output()?;
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout)?;
    let error = shown["attempts"][0]["error"]
        .as_str()
        .ok_or_else(|| format!("no attempt error in {shown}"))?;
    assert!(
        !error.contains("no connection `wh`"),
        "the scheduler lost its connections to a client's command: {error}"
    );
    Ok(())
}

/// Before: anyone reaching the socket ran any command inside the scheduler (a `dags test`
/// of their own DAG folder ran as the scheduler's user).
#[test]
fn the_control_socket_runs_only_commands_on_the_schedulers_state() -> Result {
    let Folders { root, dags, state } = Folders::new("trust-socket-commands")?;
    root.write(
        "dags/d.yaml",
        "dag: d\ntasks:\n  a: { type: command, command: \"touch ran\" }\n",
    )?;
    let config = root.write("sluice.toml", "")?;
    let _scheduler = start_scheduler(&dags, &state, &config)?;
    let theirs = TempDir::new("trust-socket-theirs")?;
    let marker = theirs.path().join("PWNED");
    theirs.write(
        "dags/x.yaml",
        format!(
            "dag: x\ntasks:\n  a: {{ type: command, command: \"touch {}\" }}\n",
            marker.display()
        ),
    )?;
    let their_dags = theirs.path().join("dags");
    let their_dags = their_dags.to_str().ok_or("path")?;
    for args in [
        &[
            "sluice",
            "--dags",
            their_dags,
            "dags",
            "test",
            "x",
            "--logical-date",
            "2025-01-01T00:00:00Z",
        ][..],
        &["sluice", "config", "check"],
        &["sluice", "scheduler", "--listen", "off"],
    ] {
        let answer = raw_request(&state, args)?;
        assert_eq!(answer["code"], 2, "{args:?} → {answer}");
        assert!(
            answer["stderr"]
                .as_str()
                .is_some_and(|e| e.contains("only commands on the scheduler's state")),
            "{args:?} → {answer}"
        );
    }
    assert!(!marker.exists(), "a forwarded `dags test` ran a task");
    // A command on the state still answers.
    let answer = raw_request(&state, &["sluice", "runs", "list", "d"])?;
    assert_eq!(answer["code"], 0, "{answer}");
    Ok(())
}

/// A scheduler serving its API on a free port with `token`; its base URL.
fn start_scheduler_with_api(dags: &Path, state: &Path, token: &str) -> Result<(Scheduler, String)> {
    let child = sluice_on(dags, state)
        .args(["scheduler", "--grace", "1", "--listen", "127.0.0.1:0"])
        .env("SLUICE_API_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let scheduler = Scheduler(child);
    let address = state.join("api.json");
    wait_for("the API address", Duration::from_secs(30), || {
        address.exists()
    })?;
    let address: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(address)?)?;
    let url = address["url"]
        .as_str()
        .ok_or("api.json has no url")?
        .to_owned();
    Ok((scheduler, url))
}

/// The resident memory of a process, in KiB.
fn rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| "no VmRSS".into())
}

/// Before: a backfill of 0001 → 9999 collected every interval and grew the scheduler to
/// 6 GB in 12 s before it aborted.
#[test]
fn a_backfill_of_ten_thousand_years_is_refused_at_once() -> Result {
    let Folders { root, dags, state } = Folders::new("trust-backfill")?;
    root.write(
        "dags/q.yaml",
        "dag: q\nschedule: \"*/15 * * * *\"\nstart: 2025-01-01T00:00:00Z\ncatchup: false\ntasks:\n  a: { type: noop }\n",
    )?;
    let (scheduler, url) = start_scheduler_with_api(&dags, &state, "t0ken")?;
    let before = rss_kib(scheduler.0.id())?;
    let http = reqwest::blocking::Client::new();
    let started = Instant::now();
    let answer = http
        .post(format!("{url}/api/v1/dags/q/backfills"))
        .bearer_auth("t0ken")
        .json(&serde_json::json!({"from": "0001-01-01T00:00:00Z", "to": "9999-01-01T00:00:00Z"}))
        .send()?;
    let took = started.elapsed();
    let status = answer.status();
    let body: serde_json::Value = answer.json()?;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("more than 100000 intervals")),
        "{body}"
    );
    // A bound, not a speed goal: the old code took 12 s and 6 GB to fail.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let after = rss_kib(scheduler.0.id())?;
    assert!(
        after < before + 64 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    eprintln!("refused in {took:?}; RSS {before} KiB → {after} KiB");

    // The CLI, through the socket (no token), and its dry run, are refused the same way.
    for args in [
        &[
            "backfill",
            "q",
            "--from",
            "0001-01-01T00:00:00Z",
            "--to",
            "9999-01-01T00:00:00Z",
        ][..],
        &[
            "backfill",
            "q",
            "--from",
            "0001-01-01T00:00:00Z",
            "--to",
            "9999-01-01T00:00:00Z",
            "--dry-run",
        ],
    ] {
        let out = sluice_on(&dags, &state).args(args).output()?;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("more than 100000 intervals"),
            "{}",
            text(&out)
        );
    }
    // A range inside the DAG's life still runs; one reaching before its start is clamped.
    let out = sluice_on(&dags, &state)
        .args([
            "backfill",
            "q",
            "--from",
            "1999-01-01T00:00:00Z",
            "--to",
            "2025-01-01T01:00:00Z",
        ])
        .output()?;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("4 interval(s), 4 succeeded"),
        "{}",
        text(&out)
    );
    Ok(())
}

/// One raw HTTP/1.1 GET with the given `Host`, as a browser fooled by DNS rebinding sends it.
fn get_with_host(url: &str, path: &str, host: &str) -> Result<u16> {
    use std::io::Read;
    let address = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0))
}

/// Before: with a token configured, the DAG definition, run conf and task logs answered 200
/// without it, and to `Host: evil.example`.
#[test]
fn the_real_api_wants_the_token_for_reads_and_its_own_host_name() -> Result {
    let Folders { root, dags, state } = Folders::new("trust-reads")?;
    root.write("dags/d.yaml", "dag: d\ntasks:\n  a: { type: noop }\n")?;
    let (_scheduler, url) = start_scheduler_with_api(&dags, &state, "t0ken")?;
    let http = reqwest::blocking::Client::new();
    for path in ["/api/v1/dags/d", "/api/v1/dags/d/runs", "/metrics", "/"] {
        let anonymous = http.get(format!("{url}{path}")).send()?.status();
        assert_eq!(anonymous, reqwest::StatusCode::UNAUTHORIZED, "{path}");
        let signed = http
            .get(format!("{url}{path}"))
            .bearer_auth("t0ken")
            .send()?
            .status();
        assert_eq!(signed, reqwest::StatusCode::OK, "{path}");
    }
    assert_eq!(
        http.get(format!("{url}/healthz")).send()?.status(),
        reqwest::StatusCode::OK
    );
    assert_eq!(
        http.get(format!("{url}/readyz")).send()?.status(),
        reqwest::StatusCode::OK
    );
    assert_eq!(get_with_host(&url, "/healthz", "evil.example")?, 421);
    assert_eq!(get_with_host(&url, "/healthz", "localhost:1")?, 200);
    Ok(())
}

/// Before: bound to 0.0.0.0 with no token, the scheduler started and served everything;
/// `token_for_reads = true` with no token passed `config check`.
#[test]
fn an_exposed_api_without_a_token_is_refused_before_it_starts() -> Result {
    let Folders { root, dags, state } = Folders::new("trust-exposed")?;
    root.write("dags/d.yaml", "dag: d\ntasks:\n  a: { type: noop }\n")?;
    let refused = sluice_on(&dags, &state)
        .args(["scheduler", "--listen", "0.0.0.0:0"])
        .output()?;
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(
        text(&refused).contains("refusing to start") && text(&refused).contains("with no token"),
        "{}",
        text(&refused)
    );
    assert!(!state.join("api.json").exists());
    for (name, body, problem) in [
        (
            "exposed.toml",
            "listen = \"0.0.0.0:8080\"\n",
            "with no token",
        ),
        (
            "reads.toml",
            "[api]\ntoken_for_reads = true\n",
            "token_for_reads",
        ),
    ] {
        let file = root.write(name, body)?;
        let checked = sluice_on(&dags, &state)
            .arg("--config")
            .arg(&file)
            .args(["config", "check"])
            .output()?;
        assert_eq!(checked.status.code(), Some(1), "{name}: {}", text(&checked));
        assert!(
            text(&checked).contains(problem),
            "{name}: {}",
            text(&checked)
        );
    }
    // Said out loud, anonymous reads on any address are the operator's choice.
    let open = root.write(
        "open.toml",
        "listen = \"0.0.0.0:0\"\n[api]\nallow_anonymous_reads = true\n",
    )?;
    let checked = sluice_on(&dags, &state)
        .arg("--config")
        .arg(&open)
        .args(["config", "check"])
        .output()?;
    assert_eq!(checked.status.code(), Some(0), "{}", text(&checked));
    Ok(())
}

/// Before: `POST /runs {"conf": {"n": "a; touch PWNED"}}` on a DAG whose command is
/// `echo {{ params.n }} > out.txt` created `PWNED`, and undeclared keys were accepted.
#[test]
fn a_run_conf_is_refused_unless_declared_and_reaches_the_shell_quoted() -> Result {
    let Folders { root, dags, state } = Folders::new("trust-conf")?;
    let work = root.path().join("work");
    std::fs::create_dir_all(&work)?;
    root.write(
        "dags/typed.yaml",
        format!(
            "dag: typed\nparams:\n  n: {{ default: 1, type: integer, maximum: 100 }}\ntasks:\n  \
             a: {{ type: command, working_dir: {w}, command: 'echo {{{{ params.n }}}} > out.txt' }}\n",
            w = work.display()
        ),
    )?;
    root.write(
        "dags/quoted.yaml",
        format!(
            "dag: quoted\nparams:\n  title: hello\ntasks:\n  \
             a: {{ type: command, working_dir: {w}, command: 'echo {{{{ params.title | shell_quote }}}} > title.txt' }}\n",
            w = work.display()
        ),
    )?;
    let (_scheduler, url) = start_scheduler_with_api(&dags, &state, "t0ken")?;
    let http = reqwest::blocking::Client::new();
    let trigger = |dag: &str, conf: serde_json::Value| -> Result<(u16, serde_json::Value)> {
        let answer = http
            .post(format!("{url}/api/v1/dags/{dag}/runs"))
            .bearer_auth("t0ken")
            .json(&serde_json::json!({ "conf": conf }))
            .send()?;
        let status = answer.status().as_u16();
        Ok((status, answer.json()?))
    };
    for (dag, conf, rule) in [
        (
            "typed",
            serde_json::json!({"n": "a; touch PWNED"}),
            "conf `n`: must be an integer",
        ),
        (
            "typed",
            serde_json::json!({"n": 1000}),
            "conf `n`: must be at most 100",
        ),
        (
            "typed",
            serde_json::json!({"m": 1}),
            "conf `m`: not a param of this DAG",
        ),
        (
            "quoted",
            serde_json::json!({"title": ["a"]}),
            "must be a string",
        ),
    ] {
        let (status, body) = trigger(dag, conf)?;
        assert_eq!(status, 400, "{body}");
        assert!(
            body["error"].as_str().is_some_and(|e| e.contains(rule)),
            "{body}"
        );
    }
    // A declared string, quoted, is one word whatever it holds.
    let payload = "a; touch PWNED; echo $(touch PWNED2) 'x'";
    let (status, body) = trigger("quoted", serde_json::json!({"title": payload}))?;
    assert_eq!(status, 201, "{body}");
    let written = work.join("title.txt");
    wait_for("the quoted run to succeed", Duration::from_secs(30), || {
        succeeded(&dags, &state, "quoted")
    })?;
    assert_eq!(std::fs::read_to_string(&written)?.trim_end(), payload);
    assert!(!work.join("PWNED").exists() && !work.join("PWNED2").exists());

    // `dags validate` warns where a free-form param reaches a shell unquoted.
    let unsafe_dags = TempDir::new("trust-conf-unquoted")?;
    unsafe_dags.write(
        "u.yaml",
        "dag: u\nparams:\n  n: x\ntasks:\n  a: { type: command, command: 'echo {{ params.n }} > out.txt' }\n",
    )?;
    let validated = sluice_on(unsafe_dags.path(), &state)
        .args(["dags", "validate"])
        .arg(unsafe_dags.path())
        .output()?;
    assert!(
        text(&validated).contains("spec::unquoted-param")
            && text(&validated).contains("`params.n` reaches"),
        "{}",
        text(&validated)
    );
    assert!(
        text(&validated).contains("u.yaml:5:"),
        "{}",
        text(&validated)
    );
    Ok(())
}

/// Before: a FIFO named `x.yaml` hung `dags validate` and kept the scheduler from opening its
/// API (the stuck loop ignored SIGTERM); a symlink to `/dev/zero` was read to gigabytes; a
/// 1 MB file of one 512 KiB anchor and 120k aliases aborted on allocation.
#[test]
fn hostile_files_in_the_dag_folder_are_reported_and_the_rest_runs() -> Result {
    use std::io::Read;
    let Folders { root, dags, state } = Folders::new("trust-folder")?;
    let start = chrono::Utc::now() - chrono::TimeDelta::minutes(4);
    root.write(
        "dags/good.yaml",
        format!(
            "dag: good\nschedule: \"* * * * *\"\nstart: {}\ncatchup: true\ntasks:\n  a: {{ type: noop }}\n",
            start.format("%Y-%m-%dT%H:%M:00Z")
        ),
    )?;
    let fifo = dags.join("x.yaml");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status()?;
    assert!(made.success(), "mkfifo failed");
    std::os::unix::fs::symlink("/dev/zero", dags.join("zero.yaml"))?;
    let anchor = "x".repeat(512 << 10);
    let aliases = vec!["*a"; 120_000].join(", ");
    let bomb = root.write(
        "dags/bomb.yaml",
        format!("dag: bomb\nbig: &a \"{anchor}\"\nrepeat: [{aliases}]\ntasks: {{}}\n"),
    )?;
    assert!(
        std::fs::metadata(&bomb)?.len() < 1 << 20,
        "the bomb is under the file size bound"
    );

    // An id of dots would name the logs folder itself (`logs/..`).
    root.write("dags/dots.yaml", "dag: ..\ntasks:\n  a: { type: noop }\n")?;

    // `dags validate` answers at once, naming each file.
    let started = Instant::now();
    let validated = sluice_on(&dags, &state)
        .args(["dags", "validate"])
        .output()?;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "validate took {:?}",
        started.elapsed()
    );
    assert_eq!(validated.status.code(), Some(1), "{}", text(&validated));
    let validated = sluice_on(&dags, &state)
        .args(["--output", "json", "dags", "validate"])
        .output()?;
    let report: serde_json::Value = serde_json::from_slice(&validated.stdout)?;
    let problem_of = |file: &str| -> Option<String> {
        report["diagnostics"]
            .as_array()?
            .iter()
            .find(|d| {
                d["file"]
                    .as_str()
                    .is_some_and(|f| f.ends_with(&format!("/{file}")))
            })
            .and_then(|d| d["code"].as_str().map(str::to_owned))
    };
    for (file, code) in [
        ("x.yaml", "file::not-regular"),
        ("zero.yaml", "file::not-regular"),
        ("bomb.yaml", "yaml::too-large"),
        ("dots.yaml", "spec::bad-id"),
    ] {
        assert_eq!(problem_of(file).as_deref(), Some(code), "{file}: {report}");
    }

    // The scheduler: its API answers, the good DAG runs, and SIGTERM stops it.
    let mut child = sluice_on(&dags, &state)
        .args(["scheduler", "--grace", "1", "--listen", "127.0.0.1:0"])
        .env("SLUICE_API_TOKEN", "t0ken")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = child.stderr.take().ok_or("stderr")?;
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let scheduler = Scheduler(child);
    let address = state.join("api.json");
    wait_for("the API", Duration::from_secs(30), || address.exists())?;
    let address: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&address)?)?;
    let url = address["url"].as_str().ok_or("url")?.to_owned();
    let ready = reqwest::blocking::get(format!("{url}/readyz"))?.status();
    assert_eq!(ready, reqwest::StatusCode::OK);
    let http = reqwest::blocking::Client::new();
    wait_for("the good DAG's runs", Duration::from_secs(30), || {
        http.get(format!("{url}/api/v1/dags/good/runs?state=success"))
            .bearer_auth("t0ken")
            .send()
            .and_then(|r| r.json::<serde_json::Value>())
            .is_ok_and(|page| page["total"].as_u64().unwrap_or(0) >= 3)
    })?;
    // A FIFO appearing while it runs changes the folder: the reload (every 5 s) meets it
    // and keeps going.
    let late = dags.join("late.yaml");
    let made = std::process::Command::new("mkfifo").arg(&late).status()?;
    assert!(made.success(), "mkfifo failed");
    std::thread::sleep(Duration::from_secs(7));
    assert_eq!(
        reqwest::blocking::get(format!("{url}/readyz"))?.status(),
        reqwest::StatusCode::OK
    );
    let stopping = Instant::now();
    drop(scheduler);
    assert!(
        stopping.elapsed() < Duration::from_secs(15),
        "stop took {:?}",
        stopping.elapsed()
    );
    let log = reader.join().map_err(|_| "stderr reader")?;
    for file in ["x.yaml", "zero.yaml", "bomb.yaml", "late.yaml"] {
        assert!(log.contains(file), "{file} not reported:\n{log}");
    }
    Ok(())
}

/// Before: a command task's `env` showed `SLUICE_API_TOKEN`, `*_PASSWORD` variables and
/// cloud keys, and what a task printed of them stayed in logs anyone could read.
#[test]
fn tasks_get_an_allowlisted_environment_and_secrets_are_masked_in_logs() -> Result {
    let Folders { root, dags, state } = Folders::new("trust-env")?;
    let work = root.path().join("work");
    std::fs::create_dir_all(&work)?;
    root.write(
        "dags/e.yaml",
        format!(
            "dag: e\ntasks:\n  a:\n    type: command\n    working_dir: {}\n    command: 'env > env.txt; echo \"leak pw-secret-123 done\"'\n",
            work.display()
        ),
    )?;
    let config = root.write("sluice.toml", "[scheduler]\ntask_env = [\"FOO_*\"]\n")?;
    let child = sluice_on(&dags, &state)
        .arg("--config")
        .arg(&config)
        .args(["scheduler", "--grace", "1", "--listen", "127.0.0.1:0"])
        .env("SLUICE_API_TOKEN", "t0ken-secret-value")
        .env("WAREHOUSE_PASSWORD", "pw-secret-123")
        .env("AWS_SECRET_ACCESS_KEY", "aws-secret-456")
        .env("FOO_PLAIN", "visible")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _scheduler = Scheduler(child);
    let address = state.join("api.json");
    wait_for("the API", Duration::from_secs(30), || address.exists())?;
    let triggered = sluice_on(&dags, &state)
        .args(["dags", "trigger", "e"])
        .output()?;
    assert_eq!(triggered.status.code(), Some(0), "{}", text(&triggered));
    let env_file = work.join("env.txt");
    wait_for("the task", Duration::from_secs(30), || env_file.exists())?;
    std::thread::sleep(Duration::from_millis(300));
    let env = std::fs::read_to_string(&env_file)?;
    for hidden in [
        "SLUICE_API_TOKEN",
        "WAREHOUSE_PASSWORD",
        "AWS_SECRET_ACCESS_KEY",
        "t0ken-secret-value",
    ] {
        assert!(!env.contains(hidden), "{hidden} reached the task:\n{env}");
    }
    for passed in ["PATH=", "FOO_PLAIN=visible", "SLUICE_DAG_ID=e"] {
        assert!(env.contains(passed), "{passed} missing:\n{env}");
    }
    let (run_id, _) = latest_run(&dags, &state, "e").ok_or("no run")?;
    let log = || {
        sluice_on(&dags, &state)
            .args(["tasks", "logs", "e", &run_id, "a"])
            .output()
            .map(|o| text(&o))
            .unwrap_or_default()
    };
    wait_for("the run to succeed", Duration::from_secs(30), || {
        succeeded(&dags, &state, "e")
    })?;
    let log = log();
    // Masked twice: in the rendered command Sluice logs, and in what the process printed.
    assert_eq!(log.matches("leak *** done").count(), 2, "{log}");
    assert!(!log.contains("pw-secret-123"), "{log}");
    Ok(())
}

/// Before: the HTTP server had no request timeouts, no connection cap and no body limit:
/// a few hundred idle connections, or one huge body, held it.
#[test]
fn the_http_server_bounds_connections_headers_and_bodies() -> Result {
    use std::io::Read;
    let Folders { root, dags, state } = Folders::new("trust-http")?;
    root.write("dags/d.yaml", "dag: d\ntasks:\n  a: { type: noop }\n")?;
    let (_scheduler, url) = start_scheduler_with_api(&dags, &state, "t0ken")?;
    let address = url.trim_start_matches("http://").to_owned();
    // A body over 1 MiB is refused, not read.
    {
        let mut stream = std::net::TcpStream::connect(&address)?;
        write!(
            stream,
            "POST /api/v1/dags/d/runs HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer t0ken\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{{\"conf\": {{\"x\": \"",
            2 << 20
        )?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer)?;
        let answer = String::from_utf8_lossy(&answer[..n]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    }
    // Slow clients: as many as the cap, each sending half a request line.
    let mut slow = Vec::new();
    for _ in 0..sluice_server::MAX_CONNECTIONS {
        let mut stream = std::net::TcpStream::connect(&address)?;
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHo")?;
        slow.push(stream);
    }
    std::thread::sleep(Duration::from_millis(300));
    // One more is closed at once.
    let mut extra = std::net::TcpStream::connect(&address)?;
    extra.set_read_timeout(Some(Duration::from_secs(5)))?;
    let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut answer = Vec::new();
    let _ = extra.read_to_end(&mut answer);
    assert!(
        answer.is_empty(),
        "served over the cap: {}",
        String::from_utf8_lossy(&answer)
    );
    // The slow ones are dropped after the header timeout, and the server answers again.
    let started = Instant::now();
    let mut first = slow.remove(0);
    first.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut rest = Vec::new();
    let _ = first.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(
        waited < sluice_server::HEADER_READ_TIMEOUT + Duration::from_secs(5),
        "a slow client was kept {waited:?}"
    );
    drop(slow);
    wait_for(
        "the server to answer again",
        Duration::from_secs(15),
        || reqwest::blocking::get(format!("{url}/healthz")).is_ok_and(|r| r.status().is_success()),
    )?;
    Ok(())
}

/// Before: the state folder, logs, `api.json` and the database followed the umask (644:
/// any local user read run conf and logs), and any local user reaching `control.sock` ran
/// commands inside the scheduler.
#[test]
fn the_state_is_private_and_the_socket_answers_only_the_schedulers_user() -> Result {
    use std::os::unix::fs::PermissionsExt;
    let Folders { root, dags, state } = Folders::new("trust-files")?;
    root.write(
        "dags/d.yaml",
        "dag: d\ntasks:\n  a: { type: command, command: 'echo hi' }\n",
    )?;
    // A state folder made loose beforehand, as an older version or a hand would.
    std::fs::create_dir_all(&state)?;
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755))?;
    let (_scheduler, _url) = start_scheduler_with_api(&dags, &state, "t0ken")?;
    let triggered = sluice_on(&dags, &state)
        .args(["dags", "trigger", "d"])
        .output()?;
    assert_eq!(triggered.status.code(), Some(0), "{}", text(&triggered));
    let logs = state.join("logs").join("d");
    wait_for("a log", Duration::from_secs(30), || logs.exists())?;
    std::thread::sleep(Duration::from_millis(500));
    let mode = |path: &Path| -> Result<u32> {
        Ok(std::fs::symlink_metadata(path)?.permissions().mode() & 0o777)
    };
    assert_eq!(mode(&state)?, 0o700, "the state folder");
    assert_eq!(mode(&state.join("control.sock"))? & 0o077, 0, "the socket");
    assert_eq!(mode(&state.join("api.json"))? & 0o077, 0, "api.json");
    let backup = root.path().join("backup");
    let backed = sluice_on(&dags, &state)
        .args(["state", "backup", "--to"])
        .arg(&backup)
        .output()?;
    assert_eq!(backed.status.code(), Some(0), "{}", text(&backed));
    assert_eq!(mode(&backup)?, 0o700, "the backup folder");
    // Loosen the folder and the socket by hand: the peer check still turns away another
    // user (uid 65534) when run as root here; otherwise the folder's mode already did.
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(
            state.join("control.sock"),
            std::fs::Permissions::from_mode(0o666),
        )?;
        let script = format!(
            "import socket,json; s=socket.socket(socket.AF_UNIX); s.connect({:?}); \
             s.sendall(json.dumps({{'args': ['sluice','runs','list','d']}}).encode()+b'\\n'); \
             print(s.makefile().readline())",
            state.join("control.sock").display().to_string()
        );
        let other = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                &script,
            ])
            .output()?;
        let answer = String::from_utf8_lossy(&other.stdout);
        assert!(
            answer.contains("answers only its scheduler's user"),
            "{answer}{}",
            String::from_utf8_lossy(&other.stderr)
        );
    }
    Ok(())
}

/// With `scheduler.socket_group`, members of that group (by effective gid) may use the
/// socket too, and no one else; the state folder lets them reach it, not read it.
#[test]
fn a_socket_group_lets_its_members_in_and_no_one_else() -> Result {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !nix::unistd::geteuid().is_root() {
        return Err("this test switches users with setpriv: run it as root, as CI does".into());
    }
    let Folders { root, dags, state } = Folders::new("trust-socket-group")?;
    root.write("dags/d.yaml", "dag: d\ntasks:\n  a: { type: noop }\n")?;
    // `nogroup` (65534) is on every Debian; the test runs as root and switches to it.
    let config = root.write("sluice.toml", "[scheduler]\nsocket_group = \"nogroup\"\n")?;
    let _scheduler = start_scheduler(&dags, &state, &config)?;
    let meta = std::fs::metadata(&state)?;
    assert_eq!(meta.permissions().mode() & 0o777, 0o710);
    assert_eq!(meta.gid(), 65534);
    let socket = std::fs::metadata(state.join("control.sock"))?;
    assert_eq!(socket.permissions().mode() & 0o777, 0o660);
    let ask_as = |gid: u32| -> Result<String> {
        let script = format!(
            "import socket,json; s=socket.socket(socket.AF_UNIX); s.connect({:?}); \
             s.sendall(json.dumps({{'args': ['sluice','runs','list','d']}}).encode()+b'\\n'); \
             print(s.makefile().readline())",
            state.join("control.sock").display().to_string()
        );
        let out = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                &format!("--regid={gid}"),
                "--clear-groups",
                "/usr/bin/python3",
                "-c",
                &script,
            ])
            .output()?;
        Ok(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    };
    let member = ask_as(65534)?;
    assert!(member.contains("\"code\":0"), "{member}");
    // Another group reaches neither the folder nor, were it open, the socket.
    let stranger = ask_as(1)?;
    assert!(!stranger.contains("\"code\":0"), "{stranger}");
    Ok(())
}
