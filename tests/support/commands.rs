//! Running the `sluice` binary under test and reading what it said.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `sluice` binary cargo built beside the running test binary (`target/<profile>/sluice`,
/// the test being `target/<profile>/deps/<name>`), or `SLUICE_BIN`. `cargo test` builds the
/// package's binaries before its tests run.
pub fn sluice_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_BIN") {
        return PathBuf::from(path);
    }
    std::env::current_exe()
        .ok()
        .and_then(|test| Some(test.parent()?.parent()?.join("sluice")))
        .unwrap_or_else(|| PathBuf::from("sluice"))
}

/// The `sluice` binary on a DAG folder and a state folder, with no configuration file or
/// API token taken from the environment.
pub fn sluice_on(dags: &Path, state: &Path) -> Command {
    let mut command = Command::new(sluice_binary());
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
