//! `sluice state backup|restore|compact`: a consistent copy of the state while the
//! scheduler runs, a restore into a fresh state folder (docs/operations.md, "Recovering a
//! lost disk"), and the retention setting applied by hand.

use std::path::Path;

use super::runs::ask;
use super::{Cli, CliError, Streams};
use sluice_runtime::scheduler::Input;
use sluice_store::Store;

fn absolute(path: &Path) -> Result<std::path::PathBuf, CliError> {
    std::path::absolute(path).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })
}

pub fn backup(cli: &Cli, to: &Path, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let to = absolute(to)?;
    let message = match &streams.remote {
        // Inside the scheduler: taken by its loop between two iterations.
        Some(remote) => ask(remote, |reply| Input::Backup {
            to: to.clone(),
            reply,
        })?,
        None => {
            let args = [
                "sluice".to_owned(),
                "state".to_owned(),
                "backup".to_owned(),
                "--to".to_owned(),
                to.display().to_string(),
            ];
            if let Some(scheduler) = super::client::Socket::connect(cli.state()) {
                return scheduler.forward(&args, streams);
            }
            let manifest = super::runs::open_existing(cli.state())?.backup_to(&to)?;
            format!(
                "backup of {} run(s) written to {} (no scheduler was running)",
                manifest.runs(),
                to.display()
            )
        }
    };
    streams.done(cli.output, &message)
}

pub fn compact(cli: &Cli, older_than: &str, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let keep: sluice_model::spec::Duration = older_than.parse().map_err(|e| CliError::Invalid {
        message: format!("--older-than `{older_than}`: {e}"),
        hint: Some("a duration such as `90d` or `36h`".into()),
    })?;
    let cutoff = chrono::Utc::now() - keep.as_chrono();
    let compacted = super::runs::open_existing(cli.state())?.compact(cutoff)?;
    streams.done(
        cli.output,
        &format!(
            "compacted the history that ended before {}: {compacted}; the interval ledger is kept",
            sluice_model::spec::instant::format_instant(cutoff)
        ),
    )
}

pub fn restore(cli: &Cli, from: &Path, streams: &mut Streams<'_>) -> Result<i32, CliError> {
    let manifest = Store::restore_from(from, cli.state())?;
    let problems = super::runs::open_existing(cli.state())?.check()?;
    streams.done(
        cli.output,
        &format!(
            "restored {} run(s) from the backup of {} into {}; state check: {} problem(s){}",
            manifest.runs(),
            sluice_model::spec::instant::format_instant(manifest.created_at),
            cli.state().display(),
            problems.len(),
            if problems.is_empty() {
                ". Start the scheduler: runs in flight at the backup are recovered and retried, EMR steps adopted by name, intervals since the backup re-run idempotently."
            } else {
                ""
            }
        ),
    )?;
    for problem in &problems {
        writeln!(streams.err, "{problem}")?;
    }
    Ok(if problems.is_empty() {
        0
    } else {
        super::EXIT_FAILURE
    })
}
