//! `sluice sla report DAG [--from --to]`: the processing-latency distribution of the DAG's
//! scheduled runs and the SLA events raised, with their notifications' delivery.

use chrono::{TimeDelta, Utc};

use super::runs::{open_store, time_arg};
use super::{Cli, CliError, OutputFormat, Streams};
use sluice_model::spec::instant::format_instant;

fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds else {
        return "-".into();
    };
    let whole = seconds.round() as i64;
    let (h, m, s) = (whole / 3600, whole % 3600 / 60, whole % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s:02}s"),
        _ => format!("{h}h{m:02}m{s:02}s"),
    }
}

pub fn report(
    cli: &Cli,
    dag: &str,
    from: Option<&str>,
    to: Option<&str>,
    streams: &mut Streams<'_>,
) -> Result<i32, CliError> {
    let to = to
        .map(|t| time_arg("--to", t))
        .transpose()?
        .unwrap_or_else(Utc::now);
    let from = from
        .map(|t| time_arg("--from", t))
        .transpose()?
        .unwrap_or(to - TimeDelta::days(1));
    if from >= to {
        return Err(CliError::Invalid {
            message: "--from must be before --to".into(),
            hint: None,
        });
    }
    let store = open_store(cli, streams)?;
    if store.dag(dag)?.is_none() {
        return Err(CliError::Invalid {
            message: format!("the scheduler has never loaded DAG `{dag}`"),
            hint: Some("`sluice dags list` shows the DAGs".into()),
        });
    }
    let report = sluice_store::reports::sla_report(&store, dag, from, to)?;
    match cli.output {
        OutputFormat::Json => streams.json(&report)?,
        OutputFormat::Table => {
            writeln!(
                streams.out,
                "SLA of {dag}, runs {} → {}\n  processing latency over {} successful scheduled run(s): p50 {}, p95 {}, max {}\n  {} warning(s), {} breach(es)",
                format_instant(from),
                format_instant(to),
                report.latency.runs,
                duration(report.latency.p50_seconds),
                duration(report.latency.p95_seconds),
                duration(report.latency.max_seconds),
                report.warnings,
                report.breaches
            )?;
            if !report.misses.is_empty() {
                let rows: Vec<Vec<String>> = report
                    .misses
                    .iter()
                    .map(|m| {
                        vec![
                            m.run_id.clone(),
                            m.kind.clone(),
                            super::output::table_time(m.raised_at),
                            m.deliveries
                                .iter()
                                .map(|(k, v)| format!("{k}: {}", v.as_str().unwrap_or_default()))
                                .collect::<Vec<_>>()
                                .join(", "),
                            m.reason.clone(),
                        ]
                    })
                    .collect();
                writeln!(streams.out)?;
                streams.table(&["RUN", "KIND", "RAISED", "NOTIFIED", "REASON"], &rows)?;
            }
        }
    }
    Ok(0)
}
