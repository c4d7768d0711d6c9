//! `sluice config check`: every problem of the configuration file with its location, then
//! the settings it resolves to (secrets shown only as set or not).

use super::{Cli, CliError, EXIT_FAILURE, OutputFormat, Streams};
use sluice_runtime::config::ConfigError;

/// Prints a configuration error (with each located problem) and returns the exit code.
pub fn report_error(error: &ConfigError, streams: &mut Streams<'_>) -> i32 {
    match error {
        ConfigError::Invalid(report) => {
            let _ = streams
                .err
                .write_all(report.render(streams.color).as_bytes());
        }
        other => {
            let _ = writeln!(streams.err, "error: {other}");
        }
    }
    if let Some(hint) = error.hint() {
        let _ = writeln!(streams.err, "  help: {hint}");
    }
    EXIT_FAILURE
}

/// `sluice config check`, before the settings are loaded: every problem of the file, not
/// only the first one loading stops at; `None` when it has none.
pub fn file_problems(cli: &Cli, streams: &mut Streams<'_>) -> Option<i32> {
    let path = cli.config.clone().or_else(|| {
        Some(std::path::PathBuf::from(
            sluice_runtime::config::DEFAULT_FILE,
        ))
        .filter(|p| p.is_file())
    });
    if let Some(path) = &path {
        // Report every problem, not only the first `load` stops at.
        match sluice_runtime::config::load_file(path) {
            Ok((_, report)) if report.has_errors() => {
                let _ = streams
                    .err
                    .write_all(report.render(streams.color).as_bytes());
                let _ = writeln!(
                    streams.err,
                    "{}: {} problem(s)",
                    path.display(),
                    report.diagnostics.len()
                );
                return Some(EXIT_FAILURE);
            }
            Ok(_) => {}
            Err(e) => return Some(report_error(&e, streams)),
        }
    }
    None
}

/// `sluice config check`, once the settings loaded: what they resolve to, then what would
/// expose the scheduler (exit 1: it would refuse to start).
pub fn show(cli: &Cli, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let code = print_settings(cli, streams)?;
    let insecure = cli.settings.insecure();
    for problem in &insecure {
        writeln!(streams.err, "error: insecure: {problem}")?;
    }
    Ok(if insecure.is_empty() {
        code
    } else {
        EXIT_FAILURE
    })
}

fn print_settings(cli: &Cli, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let s = &cli.settings;
    let summary = serde_json::json!({
        "file": s.file.as_ref().map(|p| p.display().to_string()),
        "dags": s.dags.display().to_string(),
        "state": s.state.display().to_string(),
        "plugins": s.plugins.as_ref().map(|p| p.display().to_string()),
        "listen": s.listen.map_or("off".to_owned(), |a| a.to_string()),
        "log_format": format!("{:?}", s.log_format).to_lowercase(),
        "api_token": if s.api_token.is_some() { "set" } else { "not set" },
        "allow_anonymous_reads": s.allow_anonymous_reads,
        "public_metrics": s.public_metrics,
        "allowed_hosts": s.allowed_hosts,
        "shutdown_grace_seconds": s.shutdown_grace.as_secs_f64(),
        "reload_every_seconds": s.reload_every.as_secs_f64(),
        "not_before": s.not_before,
        "pools": s.pools,
        "connections": s.connections.keys().collect::<Vec<_>>(),
        "webhooks": s.webhooks.iter().map(|w| serde_json::json!({
            "name": w.name, "url": w.url, "token": if w.token.is_some() { "set" } else { "not set" },
            "attempts": w.attempts,
        })).collect::<Vec<_>>(),
        "ha": s.ha.as_ref().map(|ha| serde_json::json!({
            "etcd": ha.etcd, "deployment": ha.deployment, "instance": ha.instance,
            "advertise": ha.advertise, "ship_to": ha.ship_to.to_string(),
            "s3_region": ha.s3.region, "s3_endpoint": ha.s3.endpoint,
            "lease_ttl_seconds": ha.lease_ttl.as_secs_f64(),
            "ship_every_seconds": ha.ship_every.as_secs_f64(),
            "snapshot_every_seconds": ha.snapshot_every.as_secs_f64(),
            "keep_snapshots": ha.keep_snapshots,
        })),
    });
    let printed = match cli.output {
        OutputFormat::Json => streams.json(&summary),
        OutputFormat::Table => {
            let origin = s.file.as_ref().map_or_else(
                || "no configuration file: defaults and SLUICE_* environment".to_owned(),
                |p| format!("{}: ok", p.display()),
            );
            let rows: Vec<Vec<String>> = summary
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(key, _)| *key != "file")
                .map(|(key, value)| {
                    let text = match value {
                        serde_json::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    vec![key.clone(), text]
                })
                .collect();
            writeln!(streams.out, "{origin}")?;
            streams.table(&["SETTING", "VALUE"], &rows)
        }
    };
    printed.map(|()| 0)
}
