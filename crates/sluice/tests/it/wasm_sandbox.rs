//! WASM plugins through the real executor: C plugins compiled here with clang and
//! wasi-libc (scripts/test installs them), run by wasmtime with Sluice's limits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_core::{Outcome, RunStatus, TaskState};
use sluice_runtime::executor::wasm::{
    Grants, Invocation, Limits, LinkSet, Plugin, Prepared, RunResult, RunnerConfig, WasmRunner,
};
use sluice_runtime::scheduler::{Control, Engine, EngineConfig, Mode};
use sluice_store::Store;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Compiles `tests/plugins/c/<name>.c` to a WASI preview 1 module.
fn build(name: &str) -> PathBuf {
    let out =
        std::env::temp_dir().join(format!("sluice-plugin-{}-{name}.wasm", std::process::id()));
    let status = Command::new("clang-14")
        .args(["--target=wasm32-wasi", "--sysroot=/usr", "-O2", "-o"])
        .arg(&out)
        .arg(repo().join("tests/plugins/c").join(format!("{name}.c")))
        .status();
    match status {
        Ok(s) if s.success() => out,
        other => panic!(
            "cannot build the {name} plugin ({other:?}): scripts/test installs clang-14, lld-14, wasi-libc and libclang-rt-14-dev-wasm32"
        ),
    }
}

/// Runs a plugin; the time returned excludes compiling the module (a warm-up run compiles
/// it and caches it, as the scheduler does after the first attempt).
fn run(name: &str, limits: Limits) -> (RunResult, Duration) {
    let wasm = std::fs::read(build(name)).unwrap_or_default();
    let runner = match WasmRunner::new() {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let warm_up = Limits {
        timeout: Some(Duration::from_millis(10)),
        ..limits
    };
    let _ = runner.run(&wasm, b"{}".to_vec(), warm_up);
    let started = Instant::now();
    let result = runner.run(
        &wasm,
        br#"{"task": "t", "config": {"a": 1}}"#.to_vec(),
        limits,
    );
    (result, started.elapsed())
}

fn reason(result: &RunResult) -> (bool, String) {
    match &result.outcome {
        Outcome::Success => panic!("expected a failure, got success: {result:?}"),
        Outcome::Failed { retryable, reason } => (*retryable, reason.clone()),
    }
}

#[test]
fn a_plugin_reads_its_context_and_returns_json() {
    let (result, _) = run("echo_context", Limits::default());
    assert_eq!(result.outcome, Outcome::Success);
    assert_eq!(
        result.output,
        Some(serde_json::json!({"task": "t", "config": {"a": 1}}))
    );
    assert!(result.stderr.contains("bytes of context"));
}

#[test]
fn an_infinite_loop_is_stopped_by_the_timeout_as_a_retryable_failure() {
    let limits = Limits {
        timeout: Some(Duration::from_millis(500)),
        ..Limits::default()
    };
    let (result, elapsed) = run("spin", limits);
    let (retryable, why) = reason(&result);
    assert!(retryable && why.contains("timed out"), "{why}");
    assert!(
        elapsed < Duration::from_secs(1),
        "stopped after {elapsed:?}, more than 2x the limit"
    );
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let limits = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let (result, _) = run("memory_bomb", limits);
    let (retryable, why) = reason(&result);
    assert!(
        retryable && why.contains("memory limit of 32 MiB exceeded"),
        "{why}"
    );
}

#[test]
fn files_that_are_not_granted_cannot_be_read() {
    let (result, _) = run("read_passwd", Limits::default());
    let (retryable, why) = reason(&result);
    assert!(!retryable && why.contains("code 3"), "{why}");
    assert!(result.stderr.contains("denied"), "{}", result.stderr);
}

#[test]
fn a_stdout_flood_is_bounded_and_reported() {
    let (result, _) = run("flood", Limits::default());
    let (_, why) = reason(&result);
    assert!(why.contains("over the 1024 KiB limit"), "{why}");
    assert_eq!(result.output, None);
}

#[test]
fn exit_75_is_retryable_and_a_trap_is_fatal_with_its_message_in_the_log() {
    let (result, _) = run("exit75", Limits::default());
    let (retryable, _) = reason(&result);
    assert!(retryable);
    let (result, _) = run("trap", Limits::default());
    let (retryable, why) = reason(&result);
    assert!(!retryable && why.contains("trap"), "{why}");
    assert!(
        result.stderr.contains("panicked at 'index out of bounds'"),
        "{}",
        result.stderr
    );
}

#[test]
fn importing_an_ungranted_host_function_fails_at_instantiation() {
    let (result, _) = run("ungranted_import", Limits::default());
    let (retryable, why) = reason(&result);
    assert!(!retryable, "{why}");
    assert!(
        why.contains("sluice::clickhouse_query") && why.contains("capability"),
        "{why}"
    );
}

#[test]
fn hostile_host_call_arguments_fail_the_plugin_with_the_reason() {
    let (result, _) = run("bad_host_pointer", Limits::default());
    let (retryable, why) = reason(&result);
    assert!(!retryable, "{why}");
    assert!(why.contains("outside the plugin's memory"), "{why}");
    let (result, _) = run("bad_host_text", Limits::default());
    let (retryable, why) = reason(&result);
    assert!(!retryable, "{why}");
    assert!(why.contains("not UTF-8"), "{why}");
}

#[test]
fn a_wasm_task_runs_inside_a_dag_run_and_its_output_reaches_downstream()
-> Result<(), Box<dyn std::error::Error>> {
    let plugin = build("echo_context");
    let root = std::env::temp_dir().join(format!("sluice-wasm-dag-{}", std::process::id()));
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("w.yaml"),
        format!(
            "dag: w\nschedule: \"@hourly\"\nstart: 2025-01-01T00:00:00Z\nparams: {{ table: events }}\ntasks:\n  \
             check:\n    type: wasm\n    plugin: {}\n    config: {{ table: \"{{{{ params.table }}}}\", at: \"{{{{ ds }}}}\" }}\n    timeout: 30s\n  \
             report:\n    type: command\n    depends_on: [check]\n    command: \"echo {{{{ outputs.check.config.table }}}} {{{{ outputs.check.data_interval.end }}}}\"\n",
            plugin.display()
        ),
    )?;
    let mut engine = Engine::new(
        Store::temporary(&root)?,
        EngineConfig::new(dags, Mode::Test { dag: "w".into() }),
    )?;
    engine.control(Control::Trigger {
        dag: "w".into(),
        logical_date: Some(chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")?.into()),
        conf: serde_json::Value::Null,
    })?;
    engine.run()?;
    let run = engine.store().runs_of("w").next().ok_or("no run")??;
    assert_eq!(
        run.state.status,
        RunStatus::Success,
        "{:?}",
        run.state.tasks
    );
    assert!(
        run.state
            .tasks
            .iter()
            .all(|t| t.state == TaskState::Success)
    );
    let output = engine
        .store()
        .output("w", run.state.logical_date, "check")?
        .ok_or("no output")?;
    assert_eq!(
        output["config"],
        serde_json::json!({"table": "events", "at": "2025-01-01"})
    );
    assert_eq!(output["task"], "check");
    let attempts = engine
        .store()
        .attempts_of_run("w", run.state.logical_date)?;
    let check = attempts
        .iter()
        .find(|a| a.task == "check")
        .ok_or("no check attempt")?;
    let hash = sluice_runtime::executor::wasm::sha256_hex(&std::fs::read(&plugin)?);
    assert_eq!(check.handle, Some(format!("sha256 {hash}")));
    let report = attempts
        .iter()
        .find(|a| a.task == "report")
        .ok_or("no report attempt")?;
    let log = std::fs::read_to_string(&report.log)?;
    assert!(
        log.lines().any(|l| l == "events 2025-01-01T01:00:00Z"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

#[test]
fn inspect_lists_imports_exports_and_the_capabilities_a_plugin_needs()
-> Result<(), Box<dyn std::error::Error>> {
    let bytes = std::fs::read(build("ungranted_import"))?;
    let info = sluice_runtime::executor::wasm::inspect(&bytes)?;
    assert!(info.command);
    assert_eq!(info.capabilities, vec!["clickhouse".to_owned()]);
    assert!(
        info.imports
            .contains(&"sluice::clickhouse_query".to_owned()),
        "{:?}",
        info.imports
    );
    assert!(info.exports.contains(&"_start".to_owned()));
    assert_eq!(info.sha256.len(), 64);
    assert!(sluice_runtime::executor::wasm::inspect(b"not wasm").is_err());
    Ok(())
}

#[test]
fn sockets_are_denied() {
    let (result, _) = run("sockets", Limits::default());
    assert_eq!(result.outcome, Outcome::Success, "{}", result.stderr);
    assert_eq!(
        result.output,
        Some(serde_json::json!({"sockets_reached": 0}))
    );
    let (result, _) = run("sock_open", Limits::default());
    let (retryable, why) = reason(&result);
    assert!(
        !retryable
            && why.contains("wasi_snapshot_preview1::sock_open")
            && why.contains("does not provide"),
        "{why}"
    );
}

/// Runs `dirs_and_env` with grants over fresh `in`/`out` folders.
fn run_with_grants(grants: &[&str]) -> Result<(RunResult, PathBuf), Box<dyn std::error::Error>> {
    let wasm = std::fs::read(build("dirs_and_env"))?;
    let root = std::env::temp_dir().join(format!(
        "sluice-grants-{}-{}",
        std::process::id(),
        grants.join("_").replace(['/', ':', '='], "-")
    ));
    std::fs::create_dir_all(root.join("in"))?;
    std::fs::create_dir_all(root.join("out"))?;
    std::fs::write(root.join("in/input.txt"), "interval 42\n")?;
    let grants: Vec<String> = grants
        .iter()
        .map(|g| g.replace("ROOT", &root.display().to_string()))
        .collect();
    let invocation = Invocation {
        stdin: b"{}".to_vec(),
        grants: Grants::parse(&grants)?,
        ..Invocation::default()
    };
    let result = WasmRunner::new()?.invoke(&Plugin::new(wasm), invocation);
    Ok((result, root))
}

#[test]
fn granted_directories_and_variables_are_visible_and_nothing_else()
-> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: set before any plugin reads it; tests that read it only compare to this value.
    unsafe { std::env::set_var("GREETING", "hello") };
    let (nothing, root) = run_with_grants(&[])?;
    assert_eq!(
        nothing.output,
        Some(serde_json::json!({"read": "", "wrote": false, "greeting": "", "home": null}))
    );
    let _ = std::fs::remove_dir_all(root);

    let (read_only, root) =
        run_with_grants(&["dir=ROOT/in:/in", "dir=ROOT/out:/out", "env=GREETING"])?;
    assert_eq!(
        read_only.output,
        Some(
            serde_json::json!({"read": "interval 42", "wrote": false, "greeting": "hello", "home": null})
        )
    );
    assert!(!root.join("out/result.txt").exists());
    let _ = std::fs::remove_dir_all(root);

    let (read_write, root) = run_with_grants(&["dir=ROOT/in:/in", "dir=ROOT/out:/out:rw"])?;
    assert_eq!(
        read_write.output,
        Some(
            serde_json::json!({"read": "interval 42", "wrote": true, "greeting": "", "home": null})
        )
    );
    assert_eq!(
        std::fs::read_to_string(root.join("out/result.txt"))?,
        "seen: interval 42\n"
    );
    let _ = std::fs::remove_dir_all(root);
    Ok(())
}

#[test]
fn compiled_modules_are_cached_on_disk_and_a_bad_cache_file_is_recompiled()
-> Result<(), Box<dyn std::error::Error>> {
    let plugin = Plugin::new(std::fs::read(build("echo_context"))?);
    let dir = std::env::temp_dir().join(format!("sluice-module-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let services = || RunnerConfig {
        cache_dir: Some(dir.clone()),
        ..RunnerConfig::default()
    };
    let set = LinkSet {
        kv: false,
        clickhouse: false,
    };
    let first = WasmRunner::with_config(services())?;
    assert_eq!(first.prepare(&plugin, set)?, Prepared::Compiled);
    assert_eq!(first.prepare(&plugin, set)?, Prepared::Memory);
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    assert_eq!(files.len(), 1, "one file, no temporary left: {files:?}");
    let name = files[0]
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    assert!(
        name.starts_with(&plugin.sha256) && name.ends_with(".cwasm"),
        "{name}"
    );

    // A restarted process finds it on disk.
    assert_eq!(
        WasmRunner::with_config(services())?.prepare(&plugin, set)?,
        Prepared::Disk
    );

    // A damaged file is discarded and the module compiled again.
    std::fs::write(&files[0], b"garbage")?;
    let restarted = WasmRunner::with_config(services())?;
    assert_eq!(restarted.prepare(&plugin, set)?, Prepared::Compiled);
    let result = restarted.run(
        &plugin.wasm,
        br#"{"task": "t"}"#.to_vec(),
        Limits::default(),
    );
    assert_eq!(result.output, Some(serde_json::json!({"task": "t"})));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn in_a_dag_run_retryable_plugin_failures_are_retried_and_a_runaway_plugin_does_not_stop_the_scheduler()
-> Result<(), Box<dyn std::error::Error>> {
    let (spin, exit75) = (build("spin"), build("exit75"));
    let root = std::env::temp_dir().join(format!("sluice-wasm-retries-{}", std::process::id()));
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::write(
        dags.join("r.yaml"),
        format!(
            "dag: r\nschedule: \"@hourly\"\nstart: 2025-01-01T00:00:00Z\ntasks:\n  \
             runaway:\n    type: wasm\n    plugin: {}\n    timeout: 500ms\n    retries: 1\n    retry_delay: 0s\n  \
             flaky:\n    type: wasm\n    plugin: {}\n    retries: 2\n    retry_delay: 0s\n  \
             steady:\n    type: noop\n",
            spin.display(),
            exit75.display()
        ),
    )?;
    let mut engine = Engine::new(
        Store::temporary(&root)?,
        EngineConfig::new(dags, Mode::Test { dag: "r".into() }),
    )?;
    engine.control(Control::Trigger {
        dag: "r".into(),
        logical_date: Some(chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")?.into()),
        conf: serde_json::Value::Null,
    })?;
    let started = Instant::now();
    engine.run()?;
    let elapsed = started.elapsed();
    let run = engine.store().runs_of("r").next().ok_or("no run")??;
    assert_eq!(run.state.status, RunStatus::Failed);
    let attempts = engine
        .store()
        .attempts_of_run("r", run.state.logical_date)?;
    let tries = |task: &str| attempts.iter().filter(|a| a.task == task).count();
    assert_eq!(
        (tries("runaway"), tries("flaky"), tries("steady")),
        (2, 3, 1)
    );
    let count = |wanted: TaskState| run.state.tasks.iter().filter(|t| t.state == wanted).count();
    assert_eq!(
        (count(TaskState::Success), count(TaskState::Failed)),
        (1, 2)
    );
    // Two 500 ms timeouts, one after the other, plus compiling: well under 2x.
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Before: grants came only from the DAG file, so a DAG could hand its plugin `/` read-write
/// or the variable holding the API token. Now the operator's `[plugin_grants]` bounds them.
#[test]
fn a_dag_grants_its_plugin_only_what_the_operator_allows() -> Result<(), Box<dyn std::error::Error>>
{
    use sluice_runtime::executor::wasm::GrantPolicy;
    let plugin = build("dirs_and_env");
    let root = std::env::temp_dir().join(format!("sluice-wasm-policy-{}", std::process::id()));
    let dags = root.join("dags");
    std::fs::create_dir_all(&dags)?;
    std::fs::create_dir_all(root.join("data/in"))?;
    std::fs::create_dir_all(root.join("data/out"))?;
    std::fs::write(root.join("data/in/input.txt"), "interval 7\n")?;
    let dag = |grants: &str| {
        format!(
            "dag: g\ntasks:\n  read:\n    type: wasm\n    plugin: {}\n    timeout: 30s\n    capabilities: {grants}\n",
            plugin.display()
        )
    };
    let attempt = |grants: &str,
                   policy: GrantPolicy,
                   name: &str|
     -> Result<(RunStatus, String), Box<dyn std::error::Error>> {
        std::fs::write(dags.join("g.yaml"), dag(grants))?;
        let mut config = EngineConfig::new(dags.clone(), Mode::Test { dag: "g".into() });
        config.plugin_grants = policy;
        let mut engine = Engine::new(Store::temporary(&root.join(name))?, config)?;
        engine.control(Control::Trigger {
            dag: "g".into(),
            logical_date: Some(
                chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z")?.into(),
            ),
            conf: serde_json::Value::Null,
        })?;
        engine.run()?;
        let run = engine.store().runs_of("g").next().ok_or("no run")??;
        let attempts = engine
            .store()
            .attempts_of_run("g", run.state.logical_date)?;
        let error = attempts
            .first()
            .and_then(|a| a.error.clone())
            .unwrap_or_default();
        Ok((run.state.status, error))
    };
    let data = root.join("data");
    let whole_disk = "{ dirs: [{ host: /, guest: /host, mode: read_write }] }";
    let inside = format!(
        "{{ dirs: [{{ host: {}, guest: /in }}], env: [GREETING] }}",
        data.join("in").display()
    );
    // No policy: nothing may be granted.
    let (status, error) = attempt(&inside, GrantPolicy::default(), "none")?;
    assert_eq!(status, RunStatus::Failed);
    assert!(error.contains("plugin_grants.dirs"), "{error}");
    // A policy for `data/` and GREETING: that grant runs, `/` is still refused.
    let policy = GrantPolicy {
        dirs: vec![data.clone()],
        env: vec!["GREETING".into()],
    };
    let (status, error) = attempt(&inside, policy.clone(), "allowed")?;
    assert_eq!(status, RunStatus::Success, "{error}");
    let (status, error) = attempt(whole_disk, policy.clone(), "disk")?;
    assert_eq!(status, RunStatus::Failed);
    assert!(error.contains("host folder /,"), "{error}");
    let (status, error) = attempt("{ env: [SLUICE_API_TOKEN] }", policy, "token")?;
    assert_eq!(status, RunStatus::Failed);
    assert!(
        error.contains("SLUICE_API_TOKEN") && error.contains("plugin_grants.env"),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// Before: the memory limit bounded each memory alone, and multi-memory was on: a module
/// with many memories could take the limit many times over.
#[test]
fn a_module_with_two_memories_is_refused() -> Result<(), Box<dyn std::error::Error>> {
    // `(module (memory 1) (memory 1))`, by hand: the header, then a memory section of two.
    let two_memories: Vec<u8> = vec![
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x05, 0x02, 0x00, 0x01, 0x00, 0x01,
    ];
    // The same module with one memory parses (and fails later, for want of `_start`).
    let one_memory: Vec<u8> = vec![
        0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01,
    ];
    let runner = WasmRunner::new()?;
    let (retryable, why) = reason(&runner.run(&two_memories, b"{}".to_vec(), Limits::default()));
    assert!(!retryable);
    assert!(why.contains("not a valid WebAssembly module"), "{why}");
    let (_, why) = reason(&runner.run(&one_memory, b"{}".to_vec(), Limits::default()));
    assert!(!why.contains("not a valid WebAssembly module"), "{why}");
    Ok(())
}
