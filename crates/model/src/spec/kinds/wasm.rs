//! `type: wasm`: a WebAssembly plugin run in a sandbox, with the grants it is given.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Kind;
use crate::spec::diagnostic::Diagnostic;
use crate::spec::fields::{Decoder, Fields};
use crate::spec::size::ByteSize;
use crate::spec::yaml::Node;

/// `type: wasm` — a WebAssembly plugin run in a sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
// Flattened into `Task`: no `deny_unknown_fields` (see `CommandTask`).
pub struct WasmTask {
    /// Plugin name (`plugins/<name>.wasm`) or a path to a `.wasm` file.
    pub plugin: String,
    /// Configuration handed to the plugin; strings inside are templated.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub config: serde_json::Value,
    /// What the plugin may touch; nothing by default.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Memory limit, e.g. `256MiB`. Default from the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit: Option<ByteSize>,
    /// Fuel (instruction budget); unlimited by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fuel: Option<u64>,
}

/// Grants for a plugin; everything not granted is denied.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// ClickHouse connection the plugin may query through `clickhouse_query`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clickhouse: Option<String>,
    /// Key-value store scoped to the DAG (`kv_get`, `kv_put`).
    #[serde(default)]
    pub kv: bool,
    /// Host directories visible to the plugin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dirs: Vec<DirGrant>,
    /// Names of environment variables passed through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirGrant {
    /// Directory on the host.
    pub host: String,
    /// Where the plugin sees it.
    pub guest: String,
    /// Default `read_only`.
    #[serde(default)]
    pub mode: DirMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DirMode {
    #[default]
    ReadOnly,
    ReadWrite,
}

impl Kind for WasmTask {
    const TYPE: &'static str = "wasm";
    const DESCRIPTION: &'static str = "A WebAssembly plugin, sandboxed.";

    fn decode(d: &mut Decoder, f: &mut Fields<'_>) -> Option<Self> {
        let plugin = f.read_required(d, "plugin", Decoder::string);
        let config = f.read(d, "config", Decoder::json);
        let capabilities = f.read(d, "capabilities", read_capabilities);
        let memory_limit = f.read(d, "memory_limit", |d, n, p| {
            let text = d.string(n, p)?;
            match text.parse::<ByteSize>() {
                Ok(size) => Some(size),
                Err(e) => {
                    d.report(
                        Diagnostic::error("spec::bad-size", format!("`{p}`: {e}"))
                            .at(n.location, "not a size"),
                    );
                    None
                }
            }
        });
        let fuel = f.read(d, "fuel", Decoder::unsigned);
        Some(WasmTask {
            plugin: plugin?,
            config: config.unwrap_or_default(),
            capabilities: capabilities.unwrap_or_default(),
            memory_limit,
            fuel,
        })
    }

    fn visit_templates(&mut self, visit: &mut dyn FnMut(&str, &mut String)) {
        super::visit_json("config", &mut self.config, visit);
    }

    fn schema(generator: &mut schemars::SchemaGenerator) -> Option<schemars::Schema> {
        Some(WasmTask::json_schema(generator))
    }
}

fn read_capabilities(d: &mut Decoder, node: &Node, path: &str) -> Option<Capabilities> {
    const MODES: [(&str, DirMode); 2] = [
        ("read_only", DirMode::ReadOnly),
        ("read_write", DirMode::ReadWrite),
    ];
    let mut f = d.fields(node, path, "`capabilities`")?;
    let clickhouse = f.read(d, "clickhouse", Decoder::string);
    let kv = f.read(d, "kv", Decoder::boolean);
    let dirs = f.read(d, "dirs", |d, n, p| {
        d.list(n, p, |d, item, p| {
            let mut g = d.fields(item, p, "a directory grant")?;
            let host = g.read_required(d, "host", Decoder::string);
            let guest = g.read_required(d, "guest", Decoder::string);
            let mode = g.read(d, "mode", |d, n, p| d.choice(n, p, &MODES));
            g.finish(d);
            Some(DirGrant {
                host: host?,
                guest: guest?,
                mode: mode.unwrap_or_default(),
            })
        })
    });
    let env = f.read(d, "env", Decoder::string_list);
    f.finish(d);
    Some(Capabilities {
        clickhouse,
        kv: kv.unwrap_or(false),
        dirs: dirs.unwrap_or_default(),
        env: env.unwrap_or_default(),
    })
}
