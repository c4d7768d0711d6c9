//! What a task lets its plugin reach: the WASI context (directories, environment variables)
//! and the optional host functions. Everything not granted is denied.

use std::path::PathBuf;

use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use sluice_model::spec::{Capabilities, DirMode};

/// A task's grants. Relative host directories are relative to the scheduler's working
/// directory, as a command task's `cwd` is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub kv: bool,
    /// The ClickHouse connection `clickhouse_query` may use.
    pub clickhouse: Option<String>,
    pub dirs: Vec<Dir>,
    /// Names of host environment variables passed through (those set).
    pub env: Vec<String>,
}

/// What the operator lets DAGs grant their plugins (`[plugin_grants]` in sluice.toml):
/// host folders (a granted folder must be inside one) and environment variables (names, or
/// prefixes ending in `*`). Default: none. ClickHouse connections are opened to plugins on
/// the connection itself (`plugins = true`); the key-value store is the DAG's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantPolicy {
    pub dirs: Vec<PathBuf>,
    pub env: Vec<String>,
}

impl GrantPolicy {
    /// Whether a DAG's grants stay inside the policy; the first that does not, said.
    pub fn check(&self, grants: &Grants) -> Result<(), String> {
        for dir in &grants.dirs {
            let inside = std::fs::canonicalize(&dir.host).is_ok_and(|host| {
                self.dirs.iter().any(|allowed| {
                    std::fs::canonicalize(allowed).is_ok_and(|allowed| host.starts_with(allowed))
                })
            });
            if !inside {
                return Err(format!(
                    "the DAG grants its plugin the host folder {}, which the operator does not \
                     allow: add a folder containing it to `plugin_grants.dirs` in sluice.toml",
                    dir.host.display()
                ));
            }
        }
        for name in &grants.env {
            if !crate::executor::task_env::any_matches(&self.env, name) {
                return Err(format!(
                    "the DAG grants its plugin the environment variable {name}, which the \
                     operator does not allow: add it to `plugin_grants.env` in sluice.toml"
                ));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    pub host: PathBuf,
    pub guest: String,
    pub writable: bool,
}

impl Grants {
    pub fn from_capabilities(capabilities: &Capabilities) -> Grants {
        Grants {
            kv: capabilities.kv,
            clickhouse: capabilities.clickhouse.clone(),
            dirs: capabilities
                .dirs
                .iter()
                .map(|d| Dir {
                    host: PathBuf::from(&d.host),
                    guest: d.guest.clone(),
                    writable: d.mode == DirMode::ReadWrite,
                })
                .collect(),
            env: capabilities.env.clone(),
        }
    }

    /// Parses `sluice plugins run --grant` values: `kv`, `clickhouse=CONN`,
    /// `dir=HOST:GUEST` (read-only), `dir=HOST:GUEST:rw`, `env=NAME`.
    pub fn parse(items: &[String]) -> Result<Grants, String> {
        let mut grants = Grants::default();
        for item in items {
            let (kind, value) = item.split_once('=').unwrap_or((item.as_str(), ""));
            match (kind, value) {
                ("kv", "") => grants.kv = true,
                ("clickhouse", conn) if !conn.is_empty() => grants.clickhouse = Some(conn.into()),
                ("env", name) if !name.is_empty() => grants.env.push(name.into()),
                ("dir", spec) => {
                    let parts: Vec<&str> = spec.split(':').collect();
                    let (host, guest, writable) = match parts.as_slice() {
                        [host, guest] => (host, guest, false),
                        [host, guest, "rw"] => (host, guest, true),
                        [host, guest, "ro"] => (host, guest, false),
                        _ => return Err(format!("--grant `{item}`: expected dir=HOST:GUEST[:rw]")),
                    };
                    grants.dirs.push(Dir {
                        host: PathBuf::from(host),
                        guest: (*guest).to_owned(),
                        writable,
                    });
                }
                _ => {
                    return Err(format!(
                        "--grant `{item}`: expected kv, clickhouse=CONN, dir=HOST:GUEST[:rw] or env=NAME"
                    ));
                }
            }
        }
        Ok(grants)
    }

    /// The WASI context: the pipes, granted directories and variables, nothing else (no
    /// arguments, no sockets, no inherited environment).
    pub fn wasi(
        &self,
        stdin: Vec<u8>,
        stdout: &MemoryOutputPipe,
        stderr: &MemoryOutputPipe,
    ) -> Result<WasiP1Ctx, String> {
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdin(MemoryInputPipe::new(stdin))
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        for dir in &self.dirs {
            let perms = if dir.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            builder
                .preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|e| {
                    format!(
                        "cannot grant directory {} as {}: {e}",
                        dir.host.display(),
                        dir.guest
                    )
                })?;
        }
        for name in &self.env {
            if let Ok(value) = std::env::var(name) {
                builder.env(name, value);
            }
        }
        Ok(builder.build_p1())
    }
}
