//! Connections to external systems, by name: a `[connections.<name>]` table of
//! `sluice.toml`, or (overriding it) the environment variable `SLUICE_CONN_<NAME>` (the name
//! upper-cased, `-` and `.` as `_`) holding a JSON object with a `type`, as Airflow's
//! `AIRFLOW_CONN_<NAME>` JSON form:
//!
//! ```text
//! SLUICE_CONN_ANALYTICS_EMR='{"type": "emr", "cluster_id": "j-1ABC", "region": "eu-west-1"}'
//! ```
//!
//! Credentials are never part of a connection: AWS ones come from the standard chain
//! (environment, profile, instance role).

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConnectionError {
    #[error(
        "no connection `{name}`: add [connections.{name}] to sluice.toml or set {var} to a JSON object, e.g. {example}"
    )]
    Missing {
        name: String,
        var: String,
        example: &'static str,
    },
    #[error("connection `{name}` ({var}) is not valid: {detail}")]
    Invalid {
        name: String,
        var: String,
        detail: String,
    },
}

/// An EMR cluster (or the account and region to create transient ones in).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmrConnection {
    /// A running cluster's id (`j-…`); not needed for transient clusters.
    #[serde(default)]
    pub cluster_id: Option<String>,
    pub region: String,
    /// Another endpoint than AWS's (an emulator, a VPC endpoint).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Where relative `application` and `py_files` paths live on this cluster's side, e.g.
    /// `s3://analytics-jobs/`: the DAG says `jobs/aggregate_15m.py` and runs the same file
    /// from the DAG folder locally and from this prefix on EMR.
    #[serde(default)]
    pub jobs_uri: Option<String>,
    /// Runtime role for steps (ExecutionRoleArn); for EMR Serverless, the job runs' role
    /// (required there).
    #[serde(default)]
    pub execution_role_arn: Option<String>,
    /// An EMR Serverless application's id, for `backend: emr_serverless`.
    #[serde(default)]
    pub application_id: Option<String>,
    /// Managed scaling of the long-running cluster `cluster_id`: applied and read back
    /// when a scheduler or backfill process starts (docs/configuration.md).
    #[serde(default)]
    pub managed_scaling: Option<ClusterScaling>,
    /// Seconds without a step after which EMR terminates the cluster `cluster_id`
    /// (auto-termination), applied and read back at start; none: it runs until stopped.
    #[serde(default)]
    pub idle_timeout_seconds: Option<u64>,
    /// First wait between DescribeStep polls, in seconds; it grows to `poll_max_seconds`.
    #[serde(default = "defaults::poll_initial")]
    pub poll_initial_seconds: f64,
    #[serde(default = "defaults::poll_max")]
    pub poll_max_seconds: f64,
    /// Attempts per API call, counting throttled and 5xx answers (the SDK's standard retry).
    #[serde(default = "defaults::api_attempts")]
    pub api_attempts: u32,
    /// Instance profile of transient clusters' nodes (RunJobFlow's JobFlowRole).
    #[serde(default = "defaults::job_flow_role")]
    pub job_flow_role: String,
    /// Service role of transient clusters (RunJobFlow's ServiceRole).
    #[serde(default = "defaults::service_role")]
    pub service_role: String,
}

/// Managed scaling limits of a cluster (EMR's ComputeLimits).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterScaling {
    pub min_units: u32,
    pub max_units: u32,
    /// What a unit is: `instances` (default), `instance_fleet_units` or `vcpu`.
    #[serde(default)]
    pub unit_type: ScalingUnit,
    /// Most units of on-demand capacity (the rest spot); default: all may be on demand.
    #[serde(default)]
    pub max_on_demand_units: Option<u32>,
    /// Most units of core nodes (the rest task nodes).
    #[serde(default)]
    pub max_core_units: Option<u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScalingUnit {
    #[default]
    Instances,
    InstanceFleetUnits,
    Vcpu,
}

mod defaults {
    pub fn poll_initial() -> f64 {
        5.0
    }
    pub fn poll_max() -> f64 {
        60.0
    }
    pub fn api_attempts() -> u32 {
        8
    }
    pub fn job_flow_role() -> String {
        "EMR_EC2_DefaultRole".into()
    }
    pub fn service_role() -> String {
        "EMR_DefaultRole".into()
    }
    pub fn validation() -> bool {
        true
    }
}

/// A ClickHouse server over HTTP.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClickhouseConnection {
    /// `http://host:8123`.
    pub url: String,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the password (the password itself never appears
    /// in a connection).
    #[serde(default)]
    pub password_env: Option<String>,
    /// The client's schema validation; off for servers older than it (before 24.10).
    #[serde(default = "defaults::validation")]
    pub validation: bool,
    /// Plugins may query it (read-only, time-limited) when their DAG grants it
    /// (`capabilities: { clickhouse: NAME }`). Off: no DAG can hand it to a plugin.
    #[serde(default)]
    pub plugins: bool,
}

/// A Kafka cluster.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConnection {
    /// `host:port[,host:port…]`.
    pub bootstrap_servers: String,
    /// Further client settings (librdkafka's names: `security.protocol`, `sasl.mechanism`,
    /// `sasl.username`, …).
    #[serde(default)]
    pub properties: std::collections::BTreeMap<String, String>,
    /// The environment variable holding `sasl.password`, if the cluster needs one.
    #[serde(default)]
    pub sasl_password_env: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Connection {
    Emr(EmrConnection),
    Clickhouse(ClickhouseConnection),
    Kafka(KafkaConnection),
}

/// The environment variable of a connection.
pub fn variable(name: &str) -> String {
    format!(
        "SLUICE_CONN_{}",
        name.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// The connections one scheduler (or one command) uses: those of its own configuration
/// file, by name, with `SLUICE_CONN_<NAME>` in its environment overriding them. A value the
/// engine is configured with and hands to its executors and gates, never a process-wide
/// table: nothing a client sends can change them.
#[derive(Debug, Clone, Default)]
pub struct Connections {
    configured: std::sync::Arc<BTreeMap<String, serde_json::Value>>,
}

impl Connections {
    pub fn new(configured: BTreeMap<String, serde_json::Value>) -> Connections {
        Connections {
            configured: std::sync::Arc::new(configured),
        }
    }

    pub fn emr(&self, name: &str) -> Result<EmrConnection, ConnectionError> {
        match self.read(
            name,
            r#"{"type": "emr", "cluster_id": "j-…", "region": "us-east-1"}"#,
        )? {
            (_, Connection::Emr(emr)) => Ok(emr),
            (var, _) => Err(wrong_type(name, var, "emr")),
        }
    }

    pub fn clickhouse(&self, name: &str) -> Result<ClickhouseConnection, ConnectionError> {
        match self.read(
            name,
            r#"{"type": "clickhouse", "url": "http://127.0.0.1:8123"}"#,
        )? {
            (_, Connection::Clickhouse(c)) => Ok(c),
            (var, _) => Err(wrong_type(name, var, "clickhouse")),
        }
    }

    pub fn kafka(&self, name: &str) -> Result<KafkaConnection, ConnectionError> {
        match self.read(
            name,
            r#"{"type": "kafka", "bootstrap_servers": "127.0.0.1:9092"}"#,
        )? {
            (_, Connection::Kafka(c)) => Ok(c),
            (var, _) => Err(wrong_type(name, var, "kafka")),
        }
    }

    fn read(
        &self,
        name: &str,
        example: &'static str,
    ) -> Result<(String, Connection), ConnectionError> {
        let var = variable(name);
        let invalid = |var: String, e: serde_json::Error| ConnectionError::Invalid {
            name: name.to_owned(),
            var,
            detail: e.to_string(),
        };
        if let Ok(text) = std::env::var(&var) {
            return serde_json::from_str::<Connection>(&text)
                .map(|c| (var.clone(), c))
                .map_err(|e| invalid(var, e));
        }
        match self.configured.get(name) {
            Some(value) => {
                let place = format!("[connections.{name}] in the configuration file");
                Connection::deserialize(value)
                    .map(|c| (place.clone(), c))
                    .map_err(|e| invalid(place, e))
            }
            None => Err(ConnectionError::Missing {
                name: name.to_owned(),
                var,
                example,
            }),
        }
    }
}

/// Whether a connection's fields are valid for its type (for `sluice config check`).
pub fn check_value(value: &serde_json::Value) -> Result<(), String> {
    Connection::deserialize(value)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn wrong_type(name: &str, var: String, wanted: &str) -> ConnectionError {
    ConnectionError::Invalid {
        name: name.to_owned(),
        var,
        detail: format!("it is not a `{wanted}` connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_follow_airflow() {
        assert_eq!(variable("analytics-emr"), "SLUICE_CONN_ANALYTICS_EMR");
        assert_eq!(variable("emr.eu"), "SLUICE_CONN_EMR_EU");
    }

    #[test]
    fn a_connection_from_the_configuration_file_is_found_and_checked() {
        let connections = Connections::new(BTreeMap::from([
            (
                "file_wh".to_owned(),
                serde_json::json!({"type": "clickhouse", "url": "http://127.0.0.1:8123"}),
            ),
            (
                "file_broken".to_owned(),
                serde_json::json!({"type": "kafka", "bootstrap": "x"}),
            ),
        ]));
        assert_eq!(
            connections.clickhouse("file_wh").map(|c| c.url),
            Ok("http://127.0.0.1:8123".to_owned())
        );
        let err = connections
            .kafka("file_broken")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("[connections.file_broken]") && err.contains("bootstrap"),
            "{err}"
        );
        assert!(check_value(&serde_json::json!({"type": "emr"})).is_err());
        // Another command's table is its own: it changes nothing here.
        let other = Connections::new(BTreeMap::new());
        assert!(other.clickhouse("file_wh").is_err());
        assert!(connections.clickhouse("file_wh").is_ok());
    }

    #[test]
    fn a_missing_connection_says_which_variable_to_set() {
        let err = Connections::default()
            .emr("no_such_connection_for_sure")
            .err();
        assert!(
            matches!(&err, Some(ConnectionError::Missing { var, .. }) if var == "SLUICE_CONN_NO_SUCH_CONNECTION_FOR_SURE")
        );
    }
}
