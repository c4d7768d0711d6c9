//! Structured logs (tracing): one readable line per event by default, one JSON object per
//! line with `--log-format json` (`SLUICE_LOG_FORMAT`, `log_format`). Lines about a task
//! carry `dag`, `run`, `task` and `try` as fields; about a run, `dag` and `run`. Installed
//! by the long-running commands (the scheduler); elsewhere the events go nowhere.

use crate::config::LogFormat;

/// Installs the process's subscriber on stderr (once; later calls do nothing).
pub fn init(format: LogFormat, color: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_max_level(tracing::Level::INFO);
    let _ = match format {
        LogFormat::Human => builder.with_ansi(color).try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
