//! The file's model and its checks. serde (with `deny_unknown_fields`) reads the shape and
//! stops at the first problem; the checks here then look at every value it could read and
//! report each problem found, located by the spans toml keeps.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;
use super::secret::{SecretError, SecretSource};
use sluice_model::spec::diagnostic::{Diagnostic, FileReport, SourceText};
use sluice_model::spec::duration::Duration;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// One readable line per event.
    #[default]
    Human,
    /// One JSON object per line, for log shippers.
    Json,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Folder of DAG files.
    pub dags: Option<PathBuf>,
    /// Folder of the scheduler's state.
    pub state: Option<PathBuf>,
    /// Folder of built plugins.
    pub plugins: Option<PathBuf>,
    /// Address of the API and web UI, or `off`.
    pub listen: Option<Spanned<String>>,
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub scheduler: SchedulerSection,
    #[serde(default)]
    pub api: ApiSection,
    /// Pool name → slots.
    #[serde(default)]
    pub pools: BTreeMap<String, Spanned<usize>>,
    /// Connection name → its fields (with `type`), as `SLUICE_CONN_<NAME>` JSON.
    #[serde(default)]
    pub connections: BTreeMap<String, Spanned<toml::Table>>,
    #[serde(default)]
    pub notifications: NotificationsSection,
    #[serde(default)]
    pub plugin_grants: PluginGrantsSection,
}

/// What DAGs may grant their plugins; default: nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginGrantsSection {
    /// Host folders (relative to this file) a granted folder must be inside.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Environment variables a DAG may pass to its plugin: names, or prefixes ending in `*`.
    #[serde(default)]
    pub env: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerSection {
    /// How long a shutdown waits for running attempts.
    #[serde(default = "defaults::shutdown_grace")]
    pub shutdown_grace: Duration,
    /// How often the DAG folder is looked at for changes.
    #[serde(default = "defaults::reload_every")]
    pub reload_every: Duration,
    /// No scheduled run for intervals starting before this instant.
    #[serde(default, deserialize_with = "defaults::instant")]
    pub not_before: Option<Spanned<chrono::DateTime<chrono::Utc>>>,
    /// Runs (with their attempts, outputs and logs) that ended longer ago than this are
    /// compacted away; the interval ledger is kept. None: keep everything.
    #[serde(default)]
    pub retention: Option<Duration>,
    /// Most intervals one backfill may cover: a request for more is refused.
    #[serde(default = "defaults::max_backfill_intervals")]
    pub max_backfill_intervals: usize,
    /// Environment variables tasks inherit from the scheduler besides the base allowlist
    /// (PATH, HOME, LANG, JAVA_HOME, SPARK_HOME, …): names, or prefixes ending in `*`.
    #[serde(default)]
    pub task_env: Vec<String>,
    /// A group whose members (by their effective gid) may use the control socket besides
    /// the scheduler's user: the state folder becomes 0710 and the socket 0660 for it.
    #[serde(default)]
    pub socket_group: Option<String>,
}

impl Default for SchedulerSection {
    fn default() -> Self {
        SchedulerSection {
            shutdown_grace: defaults::shutdown_grace(),
            reload_every: defaults::reload_every(),
            not_before: None,
            retention: None,
            max_backfill_intervals: defaults::max_backfill_intervals(),
            task_env: Vec::new(),
            socket_group: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiSection {
    /// Bearer token every API call and UI page needs (the probes `/healthz` and `/readyz`
    /// excepted).
    pub token: Option<Spanned<SecretSource>>,
    /// Kept for older files: with a token, reads always need it now. `true` with no token
    /// at all is refused (it would leave reads open while promising otherwise).
    #[serde(default)]
    pub token_for_reads: bool,
    /// Serve reads without a token on an address other than loopback (off: such a
    /// scheduler refuses to start without a token).
    #[serde(default)]
    pub allow_anonymous_reads: bool,
    /// `/metrics` answers without the token (for scrapers that cannot send one).
    #[serde(default)]
    pub public_metrics: bool,
    /// Host names the API answers to besides IP addresses and `localhost` (the names a
    /// reverse proxy or DNS gives it); any other `Host` header is refused, so a web page
    /// cannot reach a local API by rebinding its own name.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsSection {
    #[serde(default)]
    pub webhooks: Vec<WebhookSection>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSection {
    pub name: String,
    pub url: Spanned<String>,
    pub token: Option<Spanned<SecretSource>>,
    #[serde(default = "defaults::webhook_attempts")]
    pub attempts: u32,
}

mod defaults {
    use serde::Deserialize;

    pub fn max_backfill_intervals() -> usize {
        crate::scheduler::MAX_BACKFILL_INTERVALS
    }
    use toml::Spanned;

    use sluice_model::spec::duration::Duration;

    pub fn shutdown_grace() -> Duration {
        Duration::from_secs(30)
    }
    pub fn reload_every() -> Duration {
        Duration::from_secs(5)
    }
    pub fn webhook_attempts() -> u32 {
        5
    }
    /// An RFC 3339 instant (a TOML date-time or a string).
    pub fn instant<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Spanned<chrono::DateTime<chrono::Utc>>>, D::Error> {
        let text = Spanned::<toml::Value>::deserialize(d)?;
        let span = text.span();
        let written = match text.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Datetime(t) => t.to_string(),
            _ => return Err(serde::de::Error::custom("expected an RFC 3339 instant")),
        };
        sluice_model::spec::instant::parse_instant(&written, chrono_tz::UTC)
            .map(|t| Some(Spanned::new(span, t)))
            .map_err(|e| serde::de::Error::custom(format!("`{written}`: {e}")))
    }
}

/// Reads and checks a configuration file: the model if its shape is right, and the report
/// of every problem found.
pub fn load_file(path: &Path) -> Result<(Option<ConfigFile>, FileReport), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_text(path, text))
}

/// Checks configuration text already in memory; `path` names it in diagnostics and its
/// folder is where relative secret files are looked up.
pub fn parse_text(path: &Path, text: String) -> (Option<ConfigFile>, FileReport) {
    let source = Arc::new(SourceText::new(path, text));
    let base = path.parent().unwrap_or(Path::new(""));
    let (file, diagnostics) = match toml::from_str::<ConfigFile>(source.text()) {
        Ok(file) => {
            let diagnostics = check(&file, &source, base);
            (Some(file), diagnostics)
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let diagnostic = Diagnostic::error("config", e.message().to_owned())
                .at(source.location(span.start, span.len()), "here")
                .help("docs/configuration.md lists every key and its type");
            (None, vec![diagnostic])
        }
    };
    (
        file,
        FileReport {
            source,
            diagnostics,
        },
    )
}

/// The problems serde cannot see: addresses, sizes, connection fields, secrets, URLs.
fn check(file: &ConfigFile, source: &SourceText, base: &Path) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let at = |span: std::ops::Range<usize>| source.location(span.start, span.len());
    if let Some(listen) = &file.listen
        && let Err(reason) = super::parse_listen(listen.get_ref())
    {
        problems.push(
            Diagnostic::error(
                "config.listen",
                format!("`{}` is not an address", listen.get_ref()),
            )
            .at(at(listen.span()), reason),
        );
    }
    for (name, size) in &file.pools {
        if *size.get_ref() == 0 {
            problems.push(
                Diagnostic::error("config.pool", format!("pool `{name}` has no slots"))
                    .at(at(size.span()), "0")
                    .help("a pool needs at least 1 slot; remove it to leave its tasks unlimited"),
            );
        }
    }
    for (name, table) in &file.connections {
        if let Err(detail) = crate::connections::check_value(&table_to_json(table.get_ref())) {
            problems.push(
                Diagnostic::error("config.connection", format!("connection `{name}`: {detail}"))
                    .at(at(table.span()), "this connection")
                    .help("a connection has a `type` (emr, clickhouse, kafka) and that type's fields; docs/configuration.md"),
            );
        }
    }
    let mut secrets: Vec<(&str, &Spanned<SecretSource>)> = Vec::new();
    if let Some(token) = &file.api.token {
        secrets.push(("api.token", token));
    }
    for hook in &file.notifications.webhooks {
        let url = hook.url.get_ref();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problems.push(
                Diagnostic::error(
                    "config.webhook",
                    format!("webhook `{}`: `{url}` is not an http(s) URL", hook.name),
                )
                .at(at(hook.url.span()), "here"),
            );
        }
        if hook.attempts == 0 {
            problems.push(Diagnostic::error(
                "config.webhook",
                format!(
                    "webhook `{}` has `attempts = 0`: it would never be sent",
                    hook.name
                ),
            ));
        }
        if let Some(token) = &hook.token {
            secrets.push(("webhook token", token));
        }
    }
    for (what, secret) in secrets {
        match secret.get_ref().resolve(base) {
            Ok(_) => {}
            Err(e) => {
                let help = match &e {
                    SecretError::MissingEnv(var) => format!("export {var} before starting sluice"),
                    SecretError::File { .. } => {
                        "check the path (relative to this file) and its permissions".into()
                    }
                    SecretError::Empty => "an empty secret would let anyone in".into(),
                };
                problems.push(
                    Diagnostic::error("config.secret", format!("{what}: {e}"))
                        .at(at(secret.span()), "this secret")
                        .help(help),
                );
            }
        }
    }
    problems
}

/// A TOML table as the JSON object a connection is read from.
pub fn table_to_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}
