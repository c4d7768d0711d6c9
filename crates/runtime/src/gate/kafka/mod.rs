//! Kafka readiness gates: consumer lag and event-time watermarks of a topic, watched by one
//! monitor thread ([`monitor`]) through one link per connection ([`client`]), each look
//! turned into a view for the gate rules ([`observer`]).
//!
//! A connection is `SLUICE_CONN_<NAME>` = `{"type": "kafka", "bootstrap_servers":
//! "host:port", "properties": {…}, "sasl_password_env": "VAR"}` (see `crate::connections`).

pub mod arrivals;
pub mod client;
pub mod monitor;
pub mod observer;

pub use monitor::{GateMonitor, GateView, ViewSink, Watch, Watchlist};

/// A watched topic and consumer group on a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GateSource {
    pub connection: String,
    pub topic: String,
    pub group: String,
    /// The raw-zone sink's arrival reports, read for late data.
    pub arrivals_topic: Option<String>,
}

impl GateSource {
    pub fn of(gate: &sluice_model::spec::KafkaGate) -> Self {
        GateSource {
            connection: gate.connection.clone(),
            topic: gate.topic.clone(),
            group: gate.group.clone(),
            arrivals_topic: gate.arrivals_topic.clone(),
        }
    }

    pub(crate) fn key(&self) -> [&str; 3] {
        [&self.connection, &self.topic, &self.group]
    }
}

impl std::fmt::Display for GateSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kafka {}/{} (group {})",
            self.connection, self.topic, self.group
        )
    }
}
