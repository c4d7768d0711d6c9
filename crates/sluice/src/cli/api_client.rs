//! The CLI's changes through a running scheduler's REST API. The scheduler writes its
//! address to `<state>/api.json`; a command that changes state (trigger, pause, unpause,
//! clear, mark, backfill) finds it there and, with the API token of the configuration or
//! `SLUICE_API_TOKEN`, calls the API as any other client would: the same auth, the same
//! checks, the same answers. Without a token (or an API) the command goes through the
//! control socket, which only someone with access to the state folder can reach.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::runs::time_arg;
use super::{CliError, OutputFormat, Streams};
use sluice_runtime::config::Secret;
use sluice_runtime::scheduler::Control;

const FILE: &str = "api.json";

pub fn address_file(state: &Path) -> PathBuf {
    state.join(FILE)
}

/// Written by the scheduler once it listens; removed when it stops.
pub struct AddressGuard(PathBuf);

impl AddressGuard {
    pub fn write(state: &Path, url: &str) -> std::io::Result<AddressGuard> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let path = address_file(state);
        // Only this user may read where the API is, or rewrite it to catch the CLI's token.
        let _ = std::fs::remove_file(&path);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?
            .write_all(
                json!({ "url": url, "pid": std::process::id() })
                    .to_string()
                    .as_bytes(),
            )?;
        Ok(AddressGuard(path))
    }
}

impl Drop for AddressGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub struct ApiClient {
    url: String,
    token: Secret,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    /// The running scheduler's API, if one answers and there is a token to call it with.
    pub fn discover(state: &Path, token: Option<&Secret>) -> Option<ApiClient> {
        let token = token?.clone();
        let text = std::fs::read_to_string(address_file(state)).ok()?;
        let url = serde_json::from_str::<Value>(&text).ok()?["url"]
            .as_str()?
            .trim_end_matches('/')
            .to_owned();
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .ok()?;
        // A file left by a killed scheduler names nobody.
        http.get(format!("{url}/healthz"))
            .timeout(Duration::from_secs(2))
            .send()
            .ok()
            .filter(|r| r.status().is_success())?;
        Some(ApiClient { url, token, http })
    }

    fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, CliError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().map_err(|e| CliError::Invalid {
            message: format!("the scheduler's API at {} did not answer: {}", self.url, e.without_url()),
            hint: Some("is the scheduler still running? `sluice` falls back to the state folder once it stopped".into()),
        })?;
        let status = response.status();
        let value: Value = response.json().unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(CliError::Invalid {
            message: value["error"]
                .as_str()
                .map_or_else(|| format!("the API answered {status}"), str::to_owned),
            hint: value["hint"].as_str().map(str::to_owned),
        })
    }
}

fn seg(text: &str) -> String {
    // Ids are letters, digits, `_`, `-`, `.`, `:` and `+` (run ids): only `+` needs escaping.
    text.replace('%', "%25")
        .replace('+', "%2B")
        .replace('/', "%2F")
}

impl ApiClient {
    /// A change, as the REST call that makes it; what was done.
    pub fn control(&self, control: &Control) -> Result<String, CliError> {
        use reqwest::Method;
        match control {
            Control::Trigger {
                dag,
                logical_date,
                conf,
            } => {
                let mut body = json!({});
                if let Some(date) = logical_date {
                    body["logical_date"] = json!(date);
                }
                if !conf.is_null() {
                    body["conf"] = conf.clone();
                }
                let answer = self.call(
                    Method::POST,
                    &format!("/api/v1/dags/{}/runs", seg(dag)),
                    Some(body),
                )?;
                Ok(answer["message"].as_str().unwrap_or_default().to_owned())
            }
            Control::Pause { dag, paused } => self
                .call(
                    Method::PATCH,
                    &format!("/api/v1/dags/{}", seg(dag)),
                    Some(json!({ "is_paused": paused })),
                )
                .map(|_| format!("DAG `{dag}` {}", if *paused { "paused" } else { "unpaused" })),
            Control::Clear {
                dag,
                run_id,
                tasks,
                downstream,
                failed_only,
            } => self
                .call(
                    Method::POST,
                    &format!("/api/v1/dags/{}/runs/{}/clear", seg(dag), seg(run_id)),
                    Some(
                        json!({ "tasks": tasks, "downstream": downstream, "failed_only": failed_only }),
                    ),
                )
                .map(|_| format!("cleared {run_id} of `{dag}`")),
            Control::Mark {
                dag,
                run_id,
                task,
                state,
            } => {
                let state = state.name();
                self.call(
                    Method::POST,
                    &format!(
                        "/api/v1/dags/{}/runs/{}/tasks/{}/mark",
                        seg(dag),
                        seg(run_id),
                        seg(task)
                    ),
                    Some(json!({ "state": state })),
                )
                .map(|_| format!("{task} of {run_id} marked {state}"))
            }
            Control::Backfill { dag, action } => self
                .call(
                    Method::POST,
                    &format!("/api/v1/dags/{}/backfills/{}", seg(dag), action.name()),
                    None,
                )
                .map(|answer| answer["message"].as_str().unwrap_or_default().to_owned()),
        }
    }
}

impl ApiClient {
    /// Starts the backfill through the API and follows it to its end, then reports the
    /// range's intervals from the audit.
    pub fn backfill(
        &self,
        dag: &str,
        (from, to): (&String, &String),
        reprocess: super::runs::ReprocessArg,
        max_active_runs: Option<usize>,
        output: OutputFormat,
        streams: &mut Streams<'_>,
    ) -> Result<i32, CliError> {
        use reqwest::Method;
        let (from, to) = (time_arg("--from", from)?, time_arg("--to", to)?);
        let reprocess = match reprocess {
            super::runs::ReprocessArg::None => "none",
            super::runs::ReprocessArg::Failed => "failed",
            super::runs::ReprocessArg::Completed => "completed",
        };
        let mut body = json!({ "from": from, "to": to, "reprocess": reprocess });
        if let Some(n) = max_active_runs {
            body["max_active_runs"] = json!(n);
        }
        let started = self.call(
            Method::POST,
            &format!("/api/v1/dags/{}/backfills", seg(dag)),
            Some(body),
        )?;
        let total = started["total"].as_u64().unwrap_or(0);
        writeln!(
            streams.err,
            "backfill of `{dag}`: {total} interval(s), handed to the running scheduler through its API"
        )?;
        let mut shown = String::new();
        let state = loop {
            let list = self.call(Method::GET, "/api/v1/backfills", None)?;
            let backfill = list["backfills"]
                .as_array()
                .and_then(|all| all.iter().find(|b| b["dag_id"] == dag));
            let state = backfill
                .and_then(|b| b["state"].as_str())
                .unwrap_or("done")
                .to_owned();
            // A line each time the count moves, so a long backfill is seen advancing.
            if let Some(p) = backfill.map(|b| &b["progress"]) {
                let line = format!(
                    "backfill {dag}: {}/{} interval(s) done: {} succeeded, {} failed",
                    p["done"], p["total"], p["succeeded"], p["failed"]
                );
                if line != shown {
                    writeln!(streams.err, "{line}")?;
                    shown = line;
                }
            }
            if state != "running" && state != "paused" {
                break state;
            }
            std::thread::sleep(Duration::from_millis(250));
        };
        let audit = self.call(
            Method::GET,
            &format!(
                "/api/v1/dags/{}/audit?from={}&to={}",
                seg(dag),
                seg(&sluice_model::spec::instant::format_instant(from)),
                seg(&sluice_model::spec::instant::format_instant(to))
            ),
            None,
        )?;
        let entries = audit["entries"].as_array().cloned().unwrap_or_default();
        let count = |status: &str| entries.iter().filter(|e| e["status"] == status).count();
        let (succeeded, failed) = (count("success"), count("failed"));
        match output {
            OutputFormat::Json => streams.json(&json!({
                "dag": dag, "from": from, "to": to, "intervals": total,
                "succeeded": succeeded, "failed": failed, "state": state,
            }))?,
            OutputFormat::Table => writeln!(
                streams.out,
                "backfill {dag}: {total} interval(s), {succeeded} succeeded, {failed} failed{}",
                if state == "cancelled" {
                    " (cancelled)"
                } else {
                    ""
                }
            )?,
        }
        Ok(if succeeded as u64 == total {
            0
        } else {
            super::EXIT_FAILURE
        })
    }
}
