use std::io::{Read, Write};

use serde::Serialize;

use crate::{TaskContext, TaskError};

/// Exit code of a retryable failure (EX_TEMPFAIL).
pub const RETRYABLE_EXIT: i32 = 75;
/// Exit code of a fatal failure.
pub const FATAL_EXIT: i32 = 1;

/// What a task came to: the exit code and what goes to stdout and stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

/// Runs a task with the context read from stdin, writes its output and exits with the
/// code Sluice reads. Call it from `main`.
pub fn run<O, F>(task: F) -> !
where
    O: Serialize,
    F: FnOnce(&TaskContext) -> Result<O, TaskError>,
{
    let mut input = Vec::new();
    let completion = match std::io::stdin().read_to_end(&mut input) {
        Ok(_) => execute(&input, task),
        Err(e) => failed(&TaskError::retryable(format!(
            "cannot read the task context: {e}"
        ))),
    };
    let _ = std::io::stderr().write_all(completion.stderr.as_bytes());
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(&completion.stdout);
    let _ = stdout.flush();
    std::process::exit(completion.exit_code)
}

/// Runs a task on a context document without touching stdin, stdout or the process: what
/// [`run`] does, for tests.
pub fn execute<O, F>(input: &[u8], task: F) -> Completion
where
    O: Serialize,
    F: FnOnce(&TaskContext) -> Result<O, TaskError>,
{
    let context = match TaskContext::from_json(input) {
        Ok(context) => context,
        Err(e) => return failed(&e),
    };
    match task(&context).and_then(|output| serde_json::to_vec(&output).map_err(TaskError::from)) {
        Ok(stdout) => Completion {
            exit_code: 0,
            stdout,
            stderr: String::new(),
        },
        Err(e) => failed(&e),
    }
}

fn failed(error: &TaskError) -> Completion {
    let mut stderr = format!("{error}\n");
    if let Some(details) = &error.details {
        let text = serde_json::to_string_pretty(details).unwrap_or_default();
        stderr.push_str(&text);
        stderr.push('\n');
    }
    Completion {
        exit_code: if error.retryable {
            RETRYABLE_EXIT
        } else {
            FATAL_EXIT
        },
        stdout: Vec::new(),
        stderr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = r#"{
        "dag": "events", "run_id": "scheduled__2025-09-01T10:15:00Z", "task": "check",
        "try_number": 2, "logical_date": "2025-09-01T10:15:00Z",
        "data_interval": {"start": "2025-09-01T10:15:00Z", "end": "2025-09-01T10:30:00Z"},
        "params": {"region": "eu"}, "outputs": {"load": {"rows": 42}},
        "config": {"min_rows": 10}
    }"#;

    #[derive(serde::Deserialize)]
    struct Config {
        min_rows: u64,
    }

    #[test]
    fn a_task_sees_the_typed_context_and_its_output_is_json() {
        let done = execute(CONTEXT.as_bytes(), |ctx| {
            let config: Config = ctx.config()?;
            Ok(serde_json::json!({
                "try": ctx.try_number,
                "end": ctx.data_interval.end,
                "region": ctx.param("region"),
                "rows": ctx.output("load").and_then(|o| o["rows"].as_u64()),
                "min": config.min_rows,
            }))
        });
        assert_eq!(done.exit_code, 0);
        let output: serde_json::Value = serde_json::from_slice(&done.stdout).unwrap_or_default();
        assert_eq!(
            output,
            serde_json::json!({"try": 2, "end": "2025-09-01T10:30:00Z", "region": "eu", "rows": 42, "min": 10})
        );
    }

    #[test]
    fn errors_map_to_exit_codes_and_details_go_to_the_log() {
        let retry = execute(CONTEXT.as_bytes(), |_| -> Result<(), TaskError> {
            Err(TaskError::retryable("warehouse busy"))
        });
        assert_eq!(
            (retry.exit_code, retry.stderr.as_str()),
            (75, "retryable: warehouse busy\n")
        );
        let fatal = execute(CONTEXT.as_bytes(), |_| -> Result<(), TaskError> {
            Err(TaskError::fatal("2 checks failed").with_details(serde_json::json!({"failed": 2})))
        });
        assert_eq!(fatal.exit_code, 1);
        assert!(fatal.stderr.starts_with("fatal: 2 checks failed\n"));
        assert!(fatal.stderr.contains("\"failed\": 2"));
        assert!(fatal.stdout.is_empty());
    }

    #[test]
    fn a_config_of_the_wrong_shape_is_fatal_and_names_the_field() {
        let input = CONTEXT.replace("\"min_rows\": 10", "\"min_rows\": \"ten\"");
        let done = execute(input.as_bytes(), |ctx| ctx.config::<Config>().map(|_| ()));
        assert_eq!(done.exit_code, 1);
        assert!(
            done.stderr.contains("invalid `config` for task check"),
            "{}",
            done.stderr
        );
    }

    #[test]
    fn a_broken_context_is_fatal() {
        let done = execute(b"{not json", |_| Ok(()));
        assert_eq!(done.exit_code, 1);
        assert!(done.stderr.contains("the task context is not valid"));
    }
}
