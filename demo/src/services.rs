//! The real services of the demo and the tests, as code: a broker and a ClickHouse server
//! of one's own (through `scripts/services/kafka` and `scripts/services/clickhouse`), topics,
//! and ClickHouse queries answered as text.

use std::path::{Path, PathBuf};
use std::time::Duration;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// A tansu broker on its own port, started fresh and stopped when dropped.
pub struct OwnBroker {
    script: PathBuf,
    port: String,
    /// `127.0.0.1:PORT`.
    pub bootstrap: String,
}

impl OwnBroker {
    /// Starts an empty broker on `port` with the project's script (which builds tansu on
    /// first use).
    pub fn start(port: u16) -> Result<OwnBroker, Error> {
        let mut broker = OwnBroker {
            script: repo_root().join("scripts/services/kafka"),
            port: port.to_string(),
            bootstrap: String::new(),
        };
        broker.bootstrap = broker.script("start")?;
        Ok(broker)
    }

    /// Runs `scripts/services/kafka ACTION` for this broker (`stop`, `restart`).
    pub fn script(&self, action: &str) -> Result<String, Error> {
        run_script(&self.script, "SLUICE_KAFKA_PORT", &self.port, action)
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = self.script("stop");
    }
}

/// A ClickHouse server on its own ports and data folder, stopped when dropped: a test can
/// take it down and bring it back (its data persists) without touching anyone else's.
pub struct OwnClickHouse {
    script: PathBuf,
    port: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The folder its `file()` table function reads from.
    pub user_files: PathBuf,
}

impl OwnClickHouse {
    /// Starts the server on HTTP `port` (native TCP on `port + 1`) with the project's script
    /// (which installs the server on first use); its earlier data, if any, is kept.
    pub fn start(port: u16) -> Result<OwnClickHouse, Error> {
        let mut server = OwnClickHouse {
            script: repo_root().join("scripts/services/clickhouse"),
            port: port.to_string(),
            url: String::new(),
            user_files: PathBuf::new(),
        };
        server.url = server.script("start")?;
        server.user_files = PathBuf::from(server.script("user-files")?);
        Ok(server)
    }

    /// Runs `scripts/services/clickhouse ACTION` for this server (`stop`, `start`).
    pub fn script(&self, action: &str) -> Result<String, Error> {
        run_script(&self.script, "SLUICE_CLICKHOUSE_PORT", &self.port, action)
    }
}

impl Drop for OwnClickHouse {
    /// Stops the server and removes its folder (data, logs, user files): an instance of
    /// one's own leaves nothing behind.
    fn drop(&mut self) {
        let _ = self.script("stop");
        let home = self.user_files.parent();
        if let Some(home) = home.filter(|h| h.ends_with(format!("clickhouse-{}", self.port))) {
            let _ = std::fs::remove_dir_all(home);
        }
    }
}

/// Runs a `scripts/services/<name> ACTION` for the instance on `port` (told through
/// `port_variable`); what it printed, trimmed (an address, a folder).
fn run_script(
    script: &Path,
    port_variable: &str,
    port: &str,
    action: &str,
) -> Result<String, Error> {
    let out = std::process::Command::new(script)
        .arg(action)
        .env(port_variable, port)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "{} {action}: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The repository root (this crate lives in `demo/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A member of `group` subscribed to `topic`, from the earliest offset when the group has
/// none, committing by hand after its output is written (the sink and the stream layer).
pub fn group_consumer(
    bootstrap: &str,
    group: &str,
    topic: &str,
) -> Result<rdkafka::consumer::BaseConsumer, rdkafka::error::KafkaError> {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::config::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&[topic])?;
    Ok(consumer)
}

/// Creates a topic (topics are not created on first use by the broker).
pub fn create_topic(bootstrap: &str, name: &str, partitions: i32) -> Result<(), Error> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .create()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for result in runtime.block_on(admin.create_topics(
        &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))? {
        result.map_err(|(t, e)| format!("creating topic {t}: {e}"))?;
    }
    Ok(())
}

/// Runs a statement; its answer as TSV text.
pub fn clickhouse_text(client: &clickhouse::Client, sql: &str) -> Result<String, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bytes = runtime.block_on(async {
        let mut cursor = client.query_raw(sql).fetch_bytes("TSV")?;
        let mut bytes = Vec::new();
        while let Some(chunk) = cursor.next().await? {
            bytes.extend_from_slice(&chunk);
        }
        Ok::<_, clickhouse::error::Error>(bytes)
    })?;
    Ok(String::from_utf8(bytes)?)
}
