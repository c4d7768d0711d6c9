//! Which task fields are templates. One list, used both to check templates when a DAG is
//! validated and to render them for a run.

use super::fields::join;
use super::model::{CommandLine, TaskKind};

impl TaskKind {
    /// Calls `visit` with the path (relative to the task) and text of each templated field.
    pub fn visit_templates_mut(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
        match self {
            TaskKind::Noop => {}
            TaskKind::Command(c) => {
                match &mut c.command {
                    CommandLine::Shell(line) => visit("command", line),
                    CommandLine::Argv(argv) => visit_list("command", argv, visit),
                }
                for (key, value) in c.env.iter_mut() {
                    visit(&join("env", key), value);
                }
                if let Some(dir) = &mut c.working_dir {
                    visit("working_dir", dir);
                }
            }
            TaskKind::Spark(s) => {
                visit("application", &mut s.application);
                visit_list("args", &mut s.args, visit);
                // Keys are Spark property names; only values are templated.
                for (key, value) in s.conf.iter_mut() {
                    visit(&join("conf", key), value);
                }
            }
            TaskKind::Clickhouse(c) => visit("sql", &mut c.sql),
            TaskKind::Wasm(w) => visit_json("config", &mut w.config, visit),
            TaskKind::Backfill(b) => {
                visit("target", &mut b.target);
                visit("from", &mut b.from);
                visit("to", &mut b.to);
                visit("enabled", &mut b.enabled);
            }
        }
    }
}

fn visit_list(path: &str, items: &mut [String], visit: &mut dyn FnMut(&str, &mut String)) {
    for (i, item) in items.iter_mut().enumerate() {
        visit(&format!("{path}[{i}]"), item);
    }
}

fn visit_json(path: &str, value: &mut serde_json::Value, visit: &mut dyn FnMut(&str, &mut String)) {
    match value {
        serde_json::Value::String(text) => visit(path, text),
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                visit_json(&format!("{path}[{i}]"), item, visit);
            }
        }
        serde_json::Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                visit_json(&join(path, key), item, visit);
            }
        }
        _ => {}
    }
}
