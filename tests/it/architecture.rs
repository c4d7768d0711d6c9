//! The layering of ARCHITECTURE.md, held by the compiler's own dependency graph: each layer
//! crate may depend only on the layers inside it, and the inner layers on none of the heavy
//! I/O libraries. `cargo metadata` says what every workspace crate depends on; a crate that
//! gains an outward dependency fails here with the edge named.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

/// The layers, innermost first. A crate may depend on the crates before it, never after.
const LAYERS: &[&str] = &[
    "sluice-model",
    "sluice-core",
    "sluice-store",
    "sluice-runtime",
    "sluice-server",
    "sluice",
];

/// Workspace crates outside the layers: they may use any layer, and no layer uses them...
const OUTSIDE: &[&str] = &["sluice-demo", "sluice-fuzz", "sluice-tests"];

/// ...but for what tests use (the test support library, the demo's event generator and
/// services): a layer's tests may use them as long as what they link is inside that layer.
const TEST_SUPPORT: &[&str] = &["sluice-tests", "sluice-demo"];

/// Libraries that do I/O or run a runtime: the pure layers never link them, and the store
/// links none but sled.
const IO_LIBRARIES: &[&str] = &[
    "aws-config",
    "aws-sdk-emr",
    "aws-sdk-emrserverless",
    "axum",
    "clickhouse",
    "nix",
    "rdkafka",
    "reqwest",
    "sled",
    "tokio",
    "tracing-subscriber",
    "wasmtime",
    "wasmtime-wasi",
];

/// What each layer may not link, besides the layers outside it.
fn forbidden_libraries(layer: &str) -> Vec<&'static str> {
    match layer {
        "sluice-model" | "sluice-core" => IO_LIBRARIES.to_vec(),
        "sluice-store" => IO_LIBRARIES
            .iter()
            .copied()
            .filter(|l| *l != "sled")
            .collect(),
        _ => Vec::new(),
    }
}

/// Every broken rule in a `cargo metadata` document, one line each.
fn violations(metadata: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let members: BTreeMap<&str, &Value> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["name"].as_str()?, p)))
        .collect();
    for name in members.keys() {
        if !LAYERS.contains(name) && !OUTSIDE.contains(name) {
            found.push(format!(
                "`{name}` is in no layer: add it to LAYERS or OUTSIDE here and to ARCHITECTURE.md"
            ));
        }
    }
    for (rank, layer) in LAYERS.iter().enumerate() {
        let Some(package) = members.get(layer) else {
            found.push(format!("layer `{layer}` is not a workspace member"));
            continue;
        };
        let outer = &LAYERS[rank + 1..];
        let forbidden = forbidden_libraries(layer);
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let Some(dep_name) = dep["name"].as_str() else {
                continue;
            };
            let kind = dep["kind"].as_str().unwrap_or("normal");
            if TEST_SUPPORT.contains(&dep_name) && kind == "dev" {
                for linked in linked_layers(&members, dep_name) {
                    if !LAYERS[..rank].contains(&linked) {
                        found.push(format!(
                            "`{layer}`'s tests use `{dep_name}`, which links `{linked}`, a layer not inside `{layer}`"
                        ));
                    }
                }
                continue;
            }
            if outer.contains(&dep_name) || OUTSIDE.contains(&dep_name) {
                found.push(format!(
                    "`{layer}` depends on `{dep_name}` ({kind}), which is not inside it: dependencies point inward ({})",
                    LAYERS.join(" ← ")
                ));
            } else if forbidden.contains(&dep_name) {
                found.push(format!(
                    "`{layer}` depends on `{dep_name}` ({kind}): this layer does no I/O of that kind (ARCHITECTURE.md, invariants)"
                ));
            }
        }
    }
    found
}

/// The layers a workspace crate links through its normal dependencies, directly or through
/// other workspace crates.
fn linked_layers<'a>(members: &BTreeMap<&'a str, &'a Value>, name: &str) -> Vec<&'a str> {
    let mut seen: Vec<&str> = Vec::new();
    let mut todo = vec![name.to_owned()];
    while let Some(next) = todo.pop() {
        let Some(package) = members.get(next.as_str()) else {
            continue;
        };
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            let is_normal = dep["kind"].is_null() || dep["kind"] == "normal";
            let Some((&dep_name, _)) = dep["name"].as_str().and_then(|n| members.get_key_value(n))
            else {
                continue;
            };
            if is_normal && !seen.contains(&dep_name) {
                seen.push(dep_name);
                todo.push(dep_name.to_owned());
            }
        }
    }
    seen.retain(|n| LAYERS.contains(n));
    seen
}

fn workspace_metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .args(["--manifest-path", manifest])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

#[test]
fn every_layer_depends_only_inward() {
    let metadata = workspace_metadata();
    let found = violations(&metadata);
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
    // The check saw the real graph: the binary links every layer.
    let layers_of_sluice: Vec<&str> = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"] == "sluice")
        .flat_map(|p| p["dependencies"].as_array().into_iter().flatten())
        .filter_map(|d| d["name"].as_str())
        .filter(|d| LAYERS.contains(d))
        .collect();
    assert_eq!(
        layers_of_sluice.len(),
        LAYERS.len() - 1,
        "{layers_of_sluice:?}"
    );
}

/// The workspace's metadata with one more dependency edge.
fn with_dependency(metadata: &Value, from: &str, to: &str, kind: Option<&str>) -> Value {
    let mut changed = metadata.clone();
    for package in changed["packages"].as_array_mut().into_iter().flatten() {
        if package["name"] == from {
            let deps = package["dependencies"].as_array_mut().expect("a list");
            deps.push(serde_json::json!({ "name": to, "kind": kind }));
        }
    }
    changed
}

#[test]
fn an_outward_dependency_is_refused_with_the_edge_named() {
    let metadata = workspace_metadata();
    let outward = violations(&with_dependency(
        &metadata,
        "sluice-core",
        "sluice-runtime",
        None,
    ));
    assert_eq!(outward.len(), 1, "{outward:?}");
    assert!(
        outward[0].starts_with("`sluice-core` depends on `sluice-runtime` (normal)"),
        "{outward:?}"
    );
    let test_only = violations(&with_dependency(
        &metadata,
        "sluice-store",
        "sluice-server",
        Some("dev"),
    ));
    assert_eq!(test_only.len(), 1, "{test_only:?}");
    let io = violations(&with_dependency(&metadata, "sluice-model", "tokio", None));
    assert_eq!(io.len(), 1, "{io:?}");
    assert!(io[0].contains("does no I/O"), "{io:?}");
    // The demo is for tests: a layer's code may not link it.
    let demo = violations(&with_dependency(
        &metadata,
        "sluice-runtime",
        "sluice-demo",
        None,
    ));
    assert_eq!(demo.len(), 1, "{demo:?}");
    // Inward edges are fine.
    assert!(
        violations(&with_dependency(
            &metadata,
            "sluice-server",
            "sluice-model",
            None
        ))
        .is_empty()
    );
}
