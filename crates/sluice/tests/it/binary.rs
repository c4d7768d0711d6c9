//! The real `sluice` process: exit codes and where output goes.

use std::path::Path;
use std::process::Command;

fn repo(relative: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative)
        .display()
        .to_string()
}

#[test]
fn validate_exits_0_for_valid_dags_and_1_with_located_errors() -> std::io::Result<()> {
    let sluice = env!("CARGO_BIN_EXE_sluice");
    let good = Command::new(sluice)
        .args(["dags", "validate", &repo("dags"), &repo("examples")])
        .output()?;
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );

    let bad = Command::new(sluice)
        .args([
            "dags",
            "validate",
            &repo("tests/fixtures/invalid/self_dependency.yaml"),
        ])
        .env("NO_COLOR", "1")
        .output()?;
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("self_dependency.yaml:5:18"), "{stderr}");
    Ok(())
}

#[test]
fn the_dags_folder_comes_from_sluice_dags() -> std::io::Result<()> {
    let listed = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["dags", "list"])
        .env("SLUICE_DAGS", repo("examples/quickstart"))
        .output()?;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(stdout.contains("hello_pipeline"), "{stdout}");
    Ok(())
}
