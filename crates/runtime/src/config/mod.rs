//! `sluice.toml`: the one configuration file of a deployment, and the settings resolved from
//! it, the `SLUICE_*` environment and the command line (flags > environment > file >
//! defaults). Paths in the file are relative to the file's folder; on the command line and in
//! the environment, to the working directory.
//!
//! `sluice config check` reports every problem with its file:line:col; secrets are resolved
//! at load time and never printed (`secret.rs`).

pub mod file;
pub mod secret;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use file::{ConfigFile, LogFormat, load_file};
pub use secret::{Secret, SecretSource};

use sluice_model::spec::diagnostic::FileReport;

/// The file looked for when neither `--config` nor `SLUICE_CONFIG` names one.
pub const DEFAULT_FILE: &str = "sluice.toml";
/// Where the API and web UI listen unless told otherwise (Airflow's and Dagu's port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A webhook that SLA warnings and breaches are posted to.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub name: String,
    pub url: String,
    /// Sent as `Authorization: Bearer …` when set.
    pub token: Option<Secret>,
    /// Tries per notification, with exponential backoff between them.
    pub attempts: u32,
}

/// Everything a command needs to know, resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file read, if any.
    pub file: Option<PathBuf>,
    pub dags: PathBuf,
    pub state: PathBuf,
    pub plugins: Option<PathBuf>,
    /// `None`: the API and UI are off (`listen = "off"`).
    pub listen: Option<SocketAddr>,
    pub log_format: LogFormat,
    pub api_token: Option<Secret>,
    /// `api.token_for_reads` of older files: reads always need a configured token.
    pub token_for_reads: bool,
    /// Reads without a token on an address other than loopback.
    pub allow_anonymous_reads: bool,
    /// `/metrics` without the token.
    pub public_metrics: bool,
    /// Host names the API answers to besides IP addresses and `localhost`.
    pub allowed_hosts: Vec<String>,
    pub shutdown_grace: std::time::Duration,
    pub reload_every: std::time::Duration,
    pub not_before: Option<DateTime<Utc>>,
    pub retention: Option<sluice_model::spec::Duration>,
    /// Most intervals one backfill may cover.
    pub max_backfill_intervals: usize,
    /// Environment names (or `PREFIX*`) tasks inherit besides the base allowlist.
    pub task_env: Vec<String>,
    /// What DAGs may grant their plugins.
    pub plugin_grants: crate::executor::wasm::GrantPolicy,
    /// A group that may use the control socket besides the scheduler's user.
    pub socket_group: Option<String>,
    pub pools: BTreeMap<String, usize>,
    /// Connections by name, as JSON objects with a `type` (the `SLUICE_CONN_*` form).
    pub connections: BTreeMap<String, serde_json::Value>,
    pub webhooks: Vec<Webhook>,
    /// `[ha]`: a standby-capable scheduler (docs/ha.md).
    pub ha: Option<crate::ha::HaSettings>,
}

/// What the command line and environment said (each `None` when not given).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub dags: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub plugins: Option<PathBuf>,
    pub listen: Option<String>,
    pub api_token: Option<String>,
    pub log_format: Option<LogFormat>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file has problems; the report holds each with its location.
    #[error("{} has {} problem(s)", .0.source.path().display(), .0.diagnostics.len())]
    Invalid(Box<FileReport>),
    #[error("{name} = `{value}` is not valid: {reason}")]
    Override {
        name: &'static str,
        value: String,
        reason: String,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::Read { .. } => Some(
                "create it (docs/configuration.md shows every key) or point --config/SLUICE_CONFIG elsewhere"
                    .into(),
            ),
            ConfigError::Invalid(_) => Some("`sluice config check` lists every problem".into()),
            ConfigError::Override { name, .. } if *name == "SLUICE_LISTEN" => {
                Some("write HOST:PORT such as 127.0.0.1:8080, or `off`".into())
            }
            ConfigError::Override { .. } => None,
        }
    }
}

/// The `[ha]` section as settings (its values were checked when the file was read).
fn resolve_ha(
    ha: &file::HaSection,
    base: &Path,
    listen: Option<SocketAddr>,
) -> Option<crate::ha::HaSettings> {
    Some(crate::ha::HaSettings {
        etcd: ha.etcd.get_ref().clone(),
        deployment: ha.deployment.get_ref().clone(),
        instance: ha
            .instance
            .as_ref()
            .map(|i| i.get_ref().clone())
            .unwrap_or_else(crate::ha::host_name),
        advertise: ha
            .advertise
            .as_ref()
            .map(|a| a.get_ref().clone())
            .or_else(|| listen.map(|l| format!("http://{l}"))),
        ship_to: crate::ha::ShipTarget::parse(ha.ship_to.get_ref(), base).ok()?,
        s3: crate::ha::s3::S3Location {
            region: ha.s3_region.clone(),
            endpoint: ha.s3_endpoint.as_ref().map(|e| e.get_ref().clone()),
        },
        lease_ttl: ha.lease_ttl.get_ref().as_std(),
        ship_every: ha.ship_every.get_ref().as_std(),
        snapshot_every: ha.snapshot_every.get_ref().as_std(),
        keep_snapshots: *ha.keep_snapshots.get_ref(),
    })
}

/// Parses a listen address: `HOST:PORT`, or `off` for no API and UI.
pub fn parse_listen(text: &str) -> Result<Option<SocketAddr>, String> {
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    text.parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| "expected HOST:PORT (for example 127.0.0.1:8080) or `off`".to_owned())
}

impl Settings {
    /// Resolves the settings: the file named by `overrides.config` (which must exist), else
    /// `./sluice.toml` if there is one, else defaults; then the overrides on top.
    pub fn load(overrides: &Overrides) -> Result<Settings, ConfigError> {
        let path = match &overrides.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_FILE)).filter(|p| p.is_file()),
        };
        let file = match &path {
            Some(path) => {
                let (file, report) = load_file(path)?;
                if report.has_errors() {
                    return Err(ConfigError::Invalid(Box::new(report)));
                }
                file
            }
            None => None,
        };
        let base = path
            .as_deref()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Settings::resolve(path.clone(), file.unwrap_or_default(), &base, overrides)
    }

    fn resolve(
        path: Option<PathBuf>,
        file: ConfigFile,
        base: &Path,
        overrides: &Overrides,
    ) -> Result<Settings, ConfigError> {
        let relative = |p: Option<PathBuf>| p.map(|p| base.join(p));
        let listen = match (&overrides.listen, &file.listen) {
            (Some(text), _) => parse_listen(text).map_err(|reason| ConfigError::Override {
                name: "SLUICE_LISTEN",
                value: text.clone(),
                reason,
            })?,
            // Checked when the file was read.
            (None, Some(text)) => parse_listen(text.get_ref()).ok().flatten(),
            (None, None) => parse_listen(DEFAULT_LISTEN).ok().flatten(),
        };
        let api_token = match &overrides.api_token {
            Some(token) if !token.is_empty() => Some(Secret::new(token.clone())),
            _ => file
                .api
                .token
                .as_ref()
                .and_then(|s| s.get_ref().resolve(base).ok()),
        };
        let webhooks = file
            .notifications
            .webhooks
            .iter()
            .map(|w| Webhook {
                name: w.name.clone(),
                url: w.url.get_ref().clone(),
                token: w
                    .token
                    .as_ref()
                    .and_then(|s| s.get_ref().resolve(base).ok()),
                attempts: w.attempts,
            })
            .collect();
        Ok(Settings {
            file: path,
            dags: overrides
                .dags
                .clone()
                .or_else(|| relative(file.dags.clone()))
                .unwrap_or_else(|| PathBuf::from("./dags")),
            state: overrides
                .state
                .clone()
                .or_else(|| relative(file.state.clone()))
                .unwrap_or_else(|| PathBuf::from("./.sluice")),
            plugins: overrides
                .plugins
                .clone()
                .or_else(|| relative(file.plugins.clone())),
            listen,
            log_format: overrides.log_format.or(file.log_format).unwrap_or_default(),
            api_token,
            token_for_reads: file.api.token_for_reads,
            allow_anonymous_reads: file.api.allow_anonymous_reads,
            public_metrics: file.api.public_metrics,
            allowed_hosts: file.api.allowed_hosts.clone(),
            shutdown_grace: file.scheduler.shutdown_grace.as_std(),
            reload_every: file.scheduler.reload_every.as_std(),
            not_before: file.scheduler.not_before.map(|t| *t.get_ref()),
            retention: file.scheduler.retention,
            max_backfill_intervals: file.scheduler.max_backfill_intervals,
            task_env: file.scheduler.task_env.clone(),
            socket_group: file.scheduler.socket_group.clone(),
            plugin_grants: crate::executor::wasm::GrantPolicy {
                dirs: file
                    .plugin_grants
                    .dirs
                    .iter()
                    .map(|d| base.join(d))
                    .collect(),
                env: file.plugin_grants.env.clone(),
            },
            pools: file
                .pools
                .iter()
                .map(|(name, size)| (name.clone(), *size.get_ref()))
                .collect(),
            connections: file
                .connections
                .iter()
                .map(|(name, table)| (name.clone(), file::table_to_json(table.get_ref())))
                .collect(),
            webhooks,
            ha: file.ha.as_ref().and_then(|ha| resolve_ha(ha, base, listen)),
        })
    }

    /// What would expose the scheduler to callers it cannot tell apart, each with what to
    /// do: an API on an address other than loopback with no token (anyone who reaches it
    /// reads DAGs, run conf and logs) unless `api.allow_anonymous_reads` says so, and
    /// `token_for_reads` with no token. The scheduler refuses to start with any, and
    /// `sluice config check` reports them.
    pub fn insecure(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(address) = self.listen
            && !address.ip().is_loopback()
            && self.api_token.is_none()
            && !self.allow_anonymous_reads
        {
            problems.push(format!(
                "the API would listen on {address} with no token, so anyone who reaches it \
                 would read the DAGs, run conf and task logs: set api.token (or \
                 SLUICE_API_TOKEN), listen on 127.0.0.1, or set api.allow_anonymous_reads"
            ));
        }
        if self.token_for_reads && self.api_token.is_none() {
            problems.push(
                "api.token_for_reads is set but no token is (api.token or SLUICE_API_TOKEN): \
                 reads would be open; set a token (reads then always need it)"
                    .to_owned(),
            );
        }
        problems
    }

    /// The settings with nothing configured (tests, commands without a file).
    pub fn defaults() -> Settings {
        Settings::resolve(
            None,
            ConfigFile::default(),
            Path::new(""),
            &Overrides::default(),
        )
        .unwrap_or_else(|_| unreachable!("defaults are valid"))
    }
}
