//! `type: command`: a local process in its own process group, output to the attempt's log.
//!
//! Exit 0 succeeds; any other code is a retryable failure (Airflow's rule: `retries`
//! means what it says) unless `fatal_exit_codes` lists it, or `retryable_exit_codes` is
//! given without it; death by a signal (the OOM killer, an operator) is retryable. On timeout the group gets SIGTERM, then SIGKILL after
//! `kill_grace`, and the attempt is a retryable failure.

use std::collections::HashMap;
use std::io::Write;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use super::{Attempt, Executor, Report, Reporter};
use sluice_core::Outcome;
use sluice_model::spec::{CommandLine, CommandTask, Duration, TaskKind};

/// Grace between SIGTERM and SIGKILL when the task sets none.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(10);

pub struct CommandExecutor {
    runtime: tokio::runtime::Handle,
    /// Process group of each running attempt, by idempotency key.
    running: Arc<Mutex<HashMap<String, i32>>>,
    /// What a task's process inherits from the scheduler's environment.
    task_env: super::task_env::TaskEnv,
}

impl CommandExecutor {
    pub fn new(runtime: tokio::runtime::Handle, task_env: super::task_env::TaskEnv) -> Self {
        CommandExecutor {
            runtime,
            running: Arc::default(),
            task_env,
        }
    }
}

impl Executor for CommandExecutor {
    fn name(&self) -> &'static str {
        "command"
    }

    fn start(&self, attempt: Attempt, reporter: Reporter) {
        let running = Arc::clone(&self.running);
        let task_env = self.task_env.clone();
        self.runtime.spawn(async move {
            let outcome = run(&attempt, &reporter, &running, &task_env).await;
            if let Ok(mut map) = running.lock() {
                map.remove(&attempt.idempotency_key);
            }
            let (outcome, output) = match outcome {
                Ok((outcome, code)) => (outcome, Some(serde_json::json!({ "exit_code": code }))),
                Err(reason) => (
                    Outcome::Failed {
                        retryable: true,
                        reason,
                    },
                    None,
                ),
            };
            reporter.send(Report::Finished { outcome, output });
        });
    }

    fn cancel(&self, idempotency_key: &str) {
        let pgid = self
            .running
            .lock()
            .ok()
            .and_then(|map| map.get(idempotency_key).copied());
        if let Some(pgid) = pgid {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
            let running = Arc::clone(&self.running);
            let key = idempotency_key.to_owned();
            self.runtime.spawn(async move {
                tokio::time::sleep(DEFAULT_KILL_GRACE.as_std()).await;
                let still = running.lock().ok().and_then(|m| m.get(&key).copied());
                if still == Some(pgid) {
                    let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
                }
            });
        }
    }
}

fn log_line(log: &mut std::fs::File, text: &str) {
    let _ = writeln!(
        log,
        "[sluice {}] {}",
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        crate::masking::mask(text)
    );
}

/// Runs the process; `Err` is a failure to start it (retryable: the machine may recover).
async fn run(
    attempt: &Attempt,
    reporter: &Reporter,
    running: &Mutex<HashMap<String, i32>>,
    task_env: &super::task_env::TaskEnv,
) -> Result<(Outcome, Option<i32>), String> {
    let TaskKind::Command(task) = &attempt.kind else {
        return Err(super::wrong_kind("command", &attempt.kind));
    };
    if let Some(parent) = attempt.log_path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create the log folder: {e}"))?;
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&attempt.log_path)
        .map_err(|e| format!("cannot open the log {}: {e}", attempt.log_path.display()))?;
    let mut command = build(task, attempt, task_env)?;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    log_line(
        &mut log,
        &format!(
            "attempt {} starts: {}",
            attempt.idempotency_key,
            describe(&task.command)
        ),
    );
    let mut child = command.spawn().map_err(|e| {
        let reason = format!("cannot start the command: {e}");
        log_line(&mut log, &reason);
        reason
    })?;
    let bounded = Arc::new(Mutex::new(BoundedLog::new(
        log.try_clone().map_err(|e| e.to_string())?,
        MAX_LOG_BYTES,
    )));
    let copiers = [
        child
            .stdout
            .take()
            .map(|out| tokio::spawn(copy_into(out, Arc::clone(&bounded)))),
        child
            .stderr
            .take()
            .map(|err| tokio::spawn(copy_into(err, Arc::clone(&bounded)))),
    ];
    let pid = child.id().and_then(|p| i32::try_from(p).ok());
    if let (Some(pid), Ok(mut map)) = (pid, running.lock()) {
        map.insert(attempt.idempotency_key.clone(), pid);
    }
    reporter.send(Report::Started {
        handle: pid.map(|p| format!("pid {p}")),
    });

    let waited = match attempt.timeout {
        Some(limit) => tokio::time::timeout(limit.as_std(), child.wait())
            .await
            .ok(),
        None => Some(child.wait().await),
    };
    let status = match waited {
        Some(status) => status.map_err(|e| format!("lost the process: {e}"))?,
        None => {
            let grace = task.kill_grace.unwrap_or(DEFAULT_KILL_GRACE);
            let limit = attempt.timeout.unwrap_or_default();
            if let Some(pid) = pid {
                let _ = killpg(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let stopped = tokio::time::timeout(grace.as_std(), child.wait())
                .await
                .is_ok();
            if !stopped {
                if let Some(pid) = pid {
                    let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
                }
                let _ = child.wait().await;
            }
            let reason = format!(
                "timed out after {limit}: sent SIGTERM{}",
                if stopped {
                    String::new()
                } else {
                    format!(", then SIGKILL after {grace}")
                }
            );
            drain(copiers).await;
            log_line(&mut log, &reason);
            return Ok((
                Outcome::Failed {
                    retryable: true,
                    reason,
                },
                None,
            ));
        }
    };
    drain(copiers).await;
    let outcome = match status.code() {
        Some(0) => Outcome::Success,
        Some(code) => exit_outcome(task, code),
        None => {
            use std::os::unix::process::ExitStatusExt;
            Outcome::Failed {
                retryable: true,
                reason: format!("killed by signal {}", status.signal().unwrap_or_default()),
            }
        }
    };
    log_line(&mut log, &format!("attempt ends: {status}"));
    Ok((outcome, status.code()))
}

/// A non-zero exit: retryable unless the task says otherwise (`fatal_exit_codes`, or a
/// `retryable_exit_codes` list without it); the reason says which rule decided.
fn exit_outcome(task: &CommandTask, code: i32) -> Outcome {
    let fatal = if task.fatal_exit_codes.contains(&code) {
        Some("listed in fatal_exit_codes")
    } else if task
        .retryable_exit_codes
        .as_ref()
        .is_some_and(|codes| !codes.contains(&code))
    {
        Some("not in retryable_exit_codes")
    } else {
        None
    };
    match fatal {
        Some(why) => Outcome::Failed {
            retryable: false,
            reason: format!("exit code {code} ({why}: no retry)"),
        },
        None => Outcome::Failed {
            retryable: true,
            reason: format!("exit code {code}"),
        },
    }
}

/// The most an attempt's process may write to its log: past it, the output is read and
/// dropped (the process never blocks on a full pipe) and the log says so once.
pub const MAX_LOG_BYTES: u64 = 64 << 20;

/// How long the output copiers get, once the process has exited, to reach the end of its
/// output (a background child that inherited the pipes would hold them open for ever).
const DRAIN_WITHIN: std::time::Duration = std::time::Duration::from_secs(2);

/// An attempt log with a byte budget shared by the process's stdout and stderr.
struct BoundedLog {
    file: std::fs::File,
    left: u64,
    dropped: u64,
}

impl BoundedLog {
    fn new(file: std::fs::File, limit: u64) -> Self {
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        BoundedLog {
            file,
            left: limit.saturating_sub(written),
            dropped: 0,
        }
    }

    fn write(&mut self, bytes: &[u8]) {
        let bytes = crate::masking::mask_bytes(bytes);
        let bytes = bytes.as_ref();
        let kept = bytes
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if kept > 0 && self.file.write_all(&bytes[..kept]).is_ok() {
            self.left -= kept as u64;
        }
        if kept < bytes.len() {
            if self.dropped == 0 {
                let _ = writeln!(
                    self.file,
                    "\n[sluice] the log reached its {} MiB limit: the rest of the output is dropped",
                    MAX_LOG_BYTES >> 20
                );
            }
            self.dropped += (bytes.len() - kept) as u64;
        }
    }
}

impl Drop for BoundedLog {
    fn drop(&mut self) {
        if self.dropped > 0 {
            let _ = writeln!(
                self.file,
                "[sluice] {} bytes of output dropped",
                self.dropped
            );
        }
    }
}

async fn copy_into(mut from: impl tokio::io::AsyncRead + Unpin, log: Arc<Mutex<BoundedLog>>) {
    use tokio::io::AsyncReadExt;
    let mut buffer = vec![0u8; 64 << 10];
    while let Ok(n) = from.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        if let Ok(mut log) = log.lock() {
            log.write(&buffer[..n]);
        }
    }
}

/// Waits for the output copiers to reach the end of the output, for a while.
async fn drain(copiers: [Option<tokio::task::JoinHandle<()>>; 2]) {
    for copier in copiers.into_iter().flatten() {
        let abort = copier.abort_handle();
        if tokio::time::timeout(DRAIN_WITHIN, copier).await.is_err() {
            abort.abort();
        }
    }
}

fn describe(command: &CommandLine) -> String {
    match command {
        CommandLine::Shell(line) => format!("sh -c {line:?}"),
        CommandLine::Argv(argv) => format!("{argv:?}"),
    }
}

fn build(
    task: &CommandTask,
    attempt: &Attempt,
    task_env: &super::task_env::TaskEnv,
) -> Result<tokio::process::Command, String> {
    let mut command = match &task.command {
        CommandLine::Shell(line) => {
            let mut c = tokio::process::Command::new("sh");
            c.arg("-c").arg(line);
            c
        }
        CommandLine::Argv(argv) => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| "empty command".to_owned())?;
            let mut c = tokio::process::Command::new(program);
            c.args(args);
            c
        }
    };
    let work_dir = task
        .working_dir
        .as_ref()
        .map_or_else(|| attempt.work_dir.clone(), std::path::PathBuf::from);
    std::fs::create_dir_all(&work_dir).map_err(|e| {
        format!(
            "cannot create the working directory {}: {e}",
            work_dir.display()
        )
    })?;
    task_env.apply(&mut command);
    command
        .current_dir(work_dir)
        .envs(&task.env)
        .env("SLUICE_DAG_ID", &attempt.dag_id)
        .env("SLUICE_RUN_ID", &attempt.run_id)
        .env("SLUICE_TASK_ID", &attempt.task_id)
        .env("SLUICE_TRY_NUMBER", attempt.try_number.to_string())
        .env(super::orphans::ATTEMPT_ENV, &attempt.idempotency_key)
        .env(
            "SLUICE_LOGICAL_DATE",
            sluice_model::spec::instant::format_instant(attempt.logical_date),
        );
    Ok(command)
}
