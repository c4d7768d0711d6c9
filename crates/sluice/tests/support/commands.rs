//! Running the `sluice` binary under test and reading what it said.
#![allow(dead_code)] // each test binary uses its own share of the helpers

use std::path::Path;
use std::process::{Command, Output};

/// The `sluice` binary on a DAG folder and a state folder, with no configuration file or
/// API token taken from the environment.
pub fn sluice_on(dags: &Path, state: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .arg("--dags")
        .arg(dags)
        .arg("--state")
        .arg(state)
        .env_remove("SLUICE_API_TOKEN")
        .env_remove("SLUICE_CONFIG");
    command
}

/// A finished command's stdout, then its stderr: what assertion messages show.
pub fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
