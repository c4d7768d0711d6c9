//! `type: command`: a local process, a shell line or an argv list.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{FieldProblem, Kind};
use crate::spec::duration::Duration;
use crate::spec::fields::join;
use crate::spec::fields::{Decoder, Fields};
use crate::spec::yaml::NodeKind;

/// `type: command` — a local process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// No `deny_unknown_fields`: flattened into `Task`, it would refuse the task's other
// fields when a stored DAG version is read back (YAML is checked by the decoder, not serde).
pub struct CommandTask {
    /// A string runs through `sh -c`; a list is the program and its arguments. Templated.
    pub command: CommandLine,
    /// Environment variables for the process. Values are templated.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory. Templated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Only these exit codes mean "try again" (the others fail for good). Unset: every
    /// non-zero exit is retried while retries last (Airflow's rule), but `fatal_exit_codes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable_exit_codes: Option<Vec<i32>>,
    /// Exit codes that fail for good, retries or not (a usage error, bad input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fatal_exit_codes: Vec<i32>,
    /// Time between SIGTERM and SIGKILL on timeout. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_grace: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

impl Kind for CommandTask {
    const TYPE: &'static str = "command";
    const DESCRIPTION: &'static str = "A local process.";

    fn decode(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Self> {
        let command = f.read_required(d, "command", |d, n, p| match &n.kind {
            NodeKind::Seq(_) => d.string_list(n, p).map(CommandLine::Argv),
            _ => d.string(n, p).map(CommandLine::Shell),
        });
        let task = CommandTask {
            env: f.read(d, "env", Decoder::string_map).unwrap_or_default(),
            working_dir: f.read(d, "working_dir", Decoder::string),
            retryable_exit_codes: f.read(d, "retryable_exit_codes", Decoder::integer_list),
            fatal_exit_codes: f
                .read(d, "fatal_exit_codes", Decoder::integer_list)
                .unwrap_or_default(),
            kill_grace: f.read(d, "kill_grace", Decoder::duration),
            command: command?,
        };
        Some(task)
    }

    fn visit_templates(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
        match &mut self.command {
            CommandLine::Shell(line) => visit("command", line),
            CommandLine::Argv(argv) => super::visit_list("command", argv, visit),
        }
        for (key, value) in self.env.iter_mut() {
            visit(&join("env", key), value);
        }
        if let Some(dir) = &mut self.working_dir {
            visit("working_dir", dir);
        }
    }

    /// A string command is a shell line; so is the script of an argv `sh -c SCRIPT`.
    fn interpreter_of(&self, field: &str) -> Option<super::Interpreter> {
        match &self.command {
            CommandLine::Shell(_) => (field == "command").then_some(super::Interpreter::Shell),
            CommandLine::Argv(argv) => {
                let shell = argv.first().is_some_and(|program| {
                    let name = program.rsplit('/').next().unwrap_or(program);
                    matches!(name, "sh" | "bash" | "dash" | "zsh" | "ksh")
                });
                let script = argv.iter().position(|a| a == "-c").map(|i| i + 1);
                (shell && script.is_some_and(|i| field == format!("command[{i}]")))
                    .then_some(super::Interpreter::Shell)
            }
        }
    }

    fn check(&self, task: &str, problems: &mut Vec<FieldProblem>) {
        let empty = match &self.command {
            CommandLine::Shell(s) => s.trim().is_empty(),
            CommandLine::Argv(v) => v.is_empty(),
        };
        if let Some(retryable) = &self.retryable_exit_codes
            && let Some(code) = retryable.iter().find(|c| self.fatal_exit_codes.contains(c))
        {
            problems.push(FieldProblem::new(
                "spec::exit-code-conflict",
                format!("task `{task}` lists exit code {code} both as retryable and as fatal"),
                "fatal_exit_codes",
                "keep it in one of `retryable_exit_codes` and `fatal_exit_codes`",
            ));
        }
        if empty {
            problems.push(FieldProblem::new(
                "spec::empty-command",
                format!("task `{task}` has an empty `command`"),
                "command",
                "nothing to run",
            ));
        }
    }
    fn schema(generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
        Some(CommandTask::json_schema(generator))
    }
}
