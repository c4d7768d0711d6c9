//! `sluice.toml` through the real binary: `sluice config check` reports every problem with
//! file:line:col, resolves flags > environment > file > defaults, never prints a secret; the
//! scheduler refuses to start on a bad file and listens where the settings say.

use sluice_tests as support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::commands::text;

fn scratch(name: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sluice-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn sluice(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command.current_dir(dir).args(args);
    for var in [
        "SLUICE_DAGS",
        "SLUICE_STATE",
        "SLUICE_LISTEN",
        "SLUICE_API_TOKEN",
        "SLUICE_CONFIG",
    ] {
        command.env_remove(var);
    }
    command
}

const GOOD: &str = r#"dags = "pipelines"
state = "/var/tmp/sluice-state"
listen = "127.0.0.1:9191"
log_format = "json"

[scheduler]
shutdown_grace = "2m"
not_before = 2025-09-01T00:00:00Z

[api]
token = { env = "OPS_TOKEN" }

[pools]
spark = 4

[connections.warehouse]
type = "clickhouse"
url = "http://127.0.0.1:8123"

[[notifications.webhooks]]
name = "ops"
url = "http://127.0.0.1:9999/hook"
token = { file = "hook-token" }
"#;

#[test]
fn a_good_file_resolves_with_secrets_redacted_and_paths_beside_it() {
    let root = scratch("good");
    std::fs::create_dir_all(root.join("conf")).unwrap();
    std::fs::write(root.join("conf/sluice.toml"), GOOD).unwrap();
    std::fs::write(root.join("conf/hook-token"), "hook-s3cret\n").unwrap();
    let output = sluice(&root, &["--output", "json", "config", "check"])
        .env("SLUICE_CONFIG", "conf/sluice.toml")
        .env("OPS_TOKEN", "ops-s3cret")
        .output()
        .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(!all.contains("s3cret"), "a secret was printed: {all}");
    let settings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // Relative to the file's folder.
    assert_eq!(settings["dags"], "conf/pipelines");
    assert_eq!(settings["state"], "/var/tmp/sluice-state");
    assert_eq!(settings["listen"], "127.0.0.1:9191");
    assert_eq!(settings["log_format"], "json");
    assert_eq!(settings["api_token"], "set");
    assert_eq!(settings["shutdown_grace_seconds"], 120.0);
    assert_eq!(settings["not_before"], "2025-09-01T00:00:00Z");
    assert_eq!(settings["pools"]["spark"], 4);
    assert_eq!(settings["connections"], serde_json::json!(["warehouse"]));
    assert_eq!(settings["webhooks"][0]["token"], "set");

    // Environment over file, flags over environment.
    let output = sluice(
        &root,
        &["--output", "json", "--dags", "flagged", "config", "check"],
    )
    .env("SLUICE_CONFIG", "conf/sluice.toml")
    .env("OPS_TOKEN", "x")
    .env("SLUICE_DAGS", "from-env")
    .env("SLUICE_STATE", "state-from-env")
    .env("SLUICE_LISTEN", "off")
    .output()
    .unwrap();
    let settings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(settings["dags"], "flagged");
    assert_eq!(settings["state"], "state-from-env");
    assert_eq!(settings["listen"], "off");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn every_problem_is_reported_with_its_line_and_column() {
    let root = scratch("bad");
    let file = "listen = \"localhost\"\n\n[pools]\nspark = 0\n\n[api]\ntoken = { env = \"SLUICE_TEST_UNSET_TOKEN\" }\n\n[connections.wh]\ntype = \"clickhouse\"\nurll = \"http://x\"\n\n[[notifications.webhooks]]\nname = \"ops\"\nurl = \"ftp://nope\"\n";
    std::fs::write(root.join("sluice.toml"), file).unwrap();
    let output = sluice(&root, &["config", "check"]).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    for expected in [
        "sluice.toml:1:10",
        "`localhost` is not an address",
        "sluice.toml:4:9",
        "pool `spark` has no slots",
        "sluice.toml:7:9",
        "SLUICE_TEST_UNSET_TOKEN is not set",
        "connection `wh`",
        "urll",
        "sluice.toml:15:7",
        "`ftp://nope` is not an http(s) URL",
        "5 problem(s)",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }

    // A shape error (unknown key) is located too, and stops every other command.
    std::fs::write(
        root.join("sluice.toml"),
        "dags = \"d\"\n[scheduler]\ngrace = \"5s\"\n",
    )
    .unwrap();
    let output = sluice(&root, &["config", "check"]).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains("sluice.toml:3:1") && all.contains("unknown field `grace`"),
        "{all}"
    );
    let output = sluice(&root, &["dags", "list"]).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("unknown field `grace`"), "{all}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn bad_ha_values_are_located_and_good_ones_resolved() {
    let root = scratch("ha");
    let file = "[ha]\netcd = [\"etcd-1:2379\"]\ndeployment = \"a b\"\nship_to = \"gs://bucket/x\"\nlease_ttl = \"500ms\"\nship_every = \"20m\"\nkeep_snapshots = 0\n";
    std::fs::write(root.join("sluice.toml"), file).unwrap();
    let output = sluice(&root, &["config", "check"]).output().unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    for expected in [
        "sluice.toml:2:8",
        "`etcd-1:2379` is not an http(s) URL",
        "sluice.toml:3:14",
        "`a b` is not a name",
        "sluice.toml:4:11",
        "only s3:// URLs and folders",
        "sluice.toml:5:13",
        "ha.lease_ttl must be whole seconds between 1s and 10m",
        "ha.ship_every must be between 100ms and 10m",
        "ha.keep_snapshots must be between 1 and 100",
        "6 problem(s)",
    ] {
        assert!(all.contains(expected), "missing `{expected}` in:\n{all}");
    }
    // Unknown keys in [ha] are shape errors, like anywhere else.
    std::fs::write(
        root.join("sluice.toml"),
        "[ha]\netcd = [\"http://e:2379\"]\nship_to = \"ship\"\nleader_ttl = \"5s\"\n",
    )
    .unwrap();
    let all = text(&sluice(&root, &["config", "check"]).output().unwrap());
    assert!(all.contains("unknown field `leader_ttl`"), "{all}");

    std::fs::write(
        root.join("sluice.toml"),
        "[ha]\netcd = [\"http://e:2379\"]\ndeployment = \"analytics\"\ninstance = \"sched-a\"\nship_to = \"s3://state-bucket/prod/\"\nlease_ttl = \"15s\"\n",
    )
    .unwrap();
    let output = sluice(&root, &["--output", "json", "config", "check"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let settings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let ha = &settings["ha"];
    assert_eq!(ha["deployment"], "analytics");
    assert_eq!(ha["instance"], "sched-a");
    assert_eq!(ha["ship_to"], "s3://state-bucket/prod");
    assert_eq!(ha["lease_ttl_seconds"], 15.0);
    assert_eq!(ha["ship_every_seconds"], 1.0);
    assert_eq!(ha["advertise"], "http://127.0.0.1:8080");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_named_file_must_exist_and_no_file_means_defaults() {
    let root = scratch("none");
    let output = sluice(&root, &["--config", "missing.toml", "config", "check"])
        .output()
        .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("missing.toml"), "{all}");
    let output = sluice(&root, &["config", "check"]).output().unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    assert!(all.contains("no configuration file"), "{all}");
    assert!(all.contains("127.0.0.1:8080"), "{all}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_scheduler_says_where_it_listens_and_refuses_a_taken_port() {
    let root = scratch("listen");
    std::fs::create_dir_all(root.join("dags")).unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = sluice(
        &root,
        &["scheduler", "--listen", &format!("127.0.0.1:{port}")],
    )
    .output()
    .unwrap();
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(
        all.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{all}"
    );
    assert!(all.contains("SLUICE_LISTEN"), "{all}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn the_example_configuration_is_valid() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/sluice.toml");
    let output = sluice(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["--output", "json", "config", "check"],
    )
    .env("SLUICE_CONFIG", &example)
    .output()
    .unwrap();
    let all = text(&output);
    assert!(output.status.success(), "{all}");
    let settings: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        settings["connections"],
        serde_json::json!(["analytics_emr", "events_kafka", "warehouse"])
    );
}
