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
    /// High availability: a leader lease on etcd and the state shipped (docs/ha.md).
    pub ha: Option<HaSection>,
}

/// `[ha]`: one active scheduler per deployment, standbys that take over.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaSection {
    /// etcd client URLs (`http://host:2379`).
    pub etcd: Spanned<Vec<String>>,
    /// Names the lease and the shipped state; every scheduler of one deployment has the same.
    #[serde(default = "defaults::deployment")]
    pub deployment: Spanned<String>,
    /// This scheduler's name among them [default: the host name].
    pub instance: Option<Spanned<String>>,
    /// The API URL standbys point callers at [default: http://<listen>].
    pub advertise: Option<Spanned<String>>,
    /// `s3://bucket/prefix` or a folder (relative to this file).
    pub ship_to: Spanned<String>,
    /// The bucket's region and endpoint (an S3-compatible store) [default: the SDK's].
    pub s3_region: Option<String>,
    pub s3_endpoint: Option<Spanned<String>>,
    /// How long the active's lease lives without renewal: a standby takes over this long
    /// after the active is lost.
    #[serde(default = "defaults::lease_ttl")]
    pub lease_ttl: Spanned<Duration>,
    /// How often the changes since the last upload are shipped (the recovery point).
    #[serde(default = "defaults::ship_every")]
    pub ship_every: Spanned<Duration>,
    /// How often a whole snapshot is shipped (restores replay the changes since).
    #[serde(default = "defaults::snapshot_every")]
    pub snapshot_every: Spanned<Duration>,
    /// Snapshots kept; older ones and the changes before them are deleted.
    #[serde(default = "defaults::keep_snapshots")]
    pub keep_snapshots: Spanned<usize>,
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
    pub fn deployment() -> Spanned<String> {
        Spanned::new(0..0, "sluice".to_owned())
    }
    pub fn lease_ttl() -> Spanned<Duration> {
        Spanned::new(0..0, Duration::from_secs(10))
    }
    pub fn ship_every() -> Spanned<Duration> {
        Spanned::new(0..0, Duration::from_secs(1))
    }
    pub fn snapshot_every() -> Spanned<Duration> {
        Spanned::new(0..0, Duration::from_secs(3600))
    }
    pub fn keep_snapshots() -> Spanned<usize> {
        Spanned::new(0..0, 2)
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
    if let Some(ha) = &file.ha {
        problems.extend(check_ha(ha, base, &at));
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

/// The `[ha]` section's values, each problem located.
fn check_ha(
    ha: &HaSection,
    base: &Path,
    at: &dyn Fn(std::ops::Range<usize>) -> sluice_model::spec::diagnostic::Location,
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut problem = |span: std::ops::Range<usize>, message: String, help: &str| {
        problems.push(
            Diagnostic::error("config.ha", message)
                .at(at(span), "here")
                .help(help.to_owned()),
        );
    };
    if ha.etcd.get_ref().is_empty() || ha.etcd.get_ref().len() > 16 {
        problem(
            ha.etcd.span(),
            "ha.etcd needs 1 to 16 etcd client URLs".into(),
            "e.g. etcd = [\"http://etcd-1:2379\", \"http://etcd-2:2379\"]",
        );
    }
    for url in ha.etcd.get_ref() {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            problem(
                ha.etcd.span(),
                format!("`{url}` is not an http(s) URL"),
                "name each etcd member's client URL, e.g. http://etcd-1:2379",
            );
        }
    }
    let names = [Some(&ha.deployment), ha.instance.as_ref()];
    for name in names.into_iter().flatten() {
        if !crate::ha::valid_name(name.get_ref()) {
            problem(
                name.span(),
                format!("`{}` is not a name", name.get_ref()),
                "1 to 64 letters, digits, `-`, `_` or `.`",
            );
        }
    }
    if let Err(reason) = crate::ha::ShipTarget::parse(ha.ship_to.get_ref(), base) {
        problem(
            ha.ship_to.span(),
            format!("ha.ship_to: {reason}"),
            "a folder (a mounted volume) or s3://bucket/prefix",
        );
    }
    if let Some(endpoint) = &ha.s3_endpoint
        && !(endpoint.get_ref().starts_with("http://")
            || endpoint.get_ref().starts_with("https://"))
    {
        problem(
            endpoint.span(),
            format!("`{}` is not an http(s) URL", endpoint.get_ref()),
            "the S3-compatible store's endpoint, e.g. https://minio.internal:9000",
        );
    }
    let ttl = ha.lease_ttl.get_ref().as_std();
    if ttl < std::time::Duration::from_secs(1)
        || ttl > std::time::Duration::from_secs(600)
        || ttl.subsec_nanos() != 0
    {
        problem(
            ha.lease_ttl.span(),
            "ha.lease_ttl must be whole seconds between 1s and 10m".into(),
            "etcd grants whole seconds; a standby takes over this long after a loss (10s is usual)",
        );
    }
    let every = ha.ship_every.get_ref().as_std();
    if every < std::time::Duration::from_millis(100) || every > std::time::Duration::from_secs(600)
    {
        problem(
            ha.ship_every.span(),
            "ha.ship_every must be between 100ms and 10m".into(),
            "it bounds how much a lost machine's last changes can be behind (1s is usual)",
        );
    }
    let snapshot = ha.snapshot_every.get_ref().as_std();
    if snapshot < std::time::Duration::from_secs(1)
        || snapshot > std::time::Duration::from_secs(7 * 86_400)
    {
        problem(
            ha.snapshot_every.span(),
            "ha.snapshot_every must be between 1s and 7d".into(),
            "a restore replays the changes since the last snapshot (1h is usual)",
        );
    }
    if !(1..=100).contains(ha.keep_snapshots.get_ref()) {
        problem(
            ha.keep_snapshots.span(),
            "ha.keep_snapshots must be between 1 and 100".into(),
            "older snapshots and the changes before them are deleted",
        );
    }
    problems
}

/// A TOML table as the JSON object a connection is read from.
pub fn table_to_json(table: &toml::Table) -> serde_json::Value {
    serde_json::to_value(table).unwrap_or(serde_json::Value::Null)
}
