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
    /// Only the group's offsets are looked at (a gate's further group): no event time, no
    /// arrival report, nothing kept in the state folder.
    pub lag_only: bool,
}

impl GateSource {
    /// The gate's primary source: its first required group, the topic's event times and
    /// its arrival reports.
    pub fn of(gate: &sluice_model::spec::KafkaGate) -> Self {
        GateSource {
            connection: gate.connection.clone(),
            topic: gate.topic.clone(),
            group: gate.primary().0.to_owned(),
            arrivals_topic: gate.arrivals_topic.clone(),
            lag_only: false,
        }
    }

    /// The gate's further groups, each a lag-only source, with the rule it is checked by.
    pub fn others_of(
        gate: &sluice_model::spec::KafkaGate,
    ) -> Vec<(GateSource, sluice_core::gate::GroupCheck)> {
        let (primary, _) = gate.primary();
        gate.watched_groups()
            .into_iter()
            .filter(|(name, _)| *name != primary)
            .map(|(name, rule)| {
                let source = GateSource {
                    connection: gate.connection.clone(),
                    topic: gate.topic.clone(),
                    group: name.clone(),
                    arrivals_topic: None,
                    lag_only: true,
                };
                let check = sluice_core::gate::GroupCheck {
                    group: name,
                    max_lag: rule.max_lag,
                    max_lag_time: rule.max_lag_time.map(|t| t.as_chrono()),
                    required: rule.required,
                };
                (source, check)
            })
            .collect()
    }

    /// Whether a gate looks at this source (as its primary or a further group): the same
    /// test as comparing with [`GateSource::of`] and [`GateSource::others_of`], without
    /// building them (it runs for every active run on every look).
    pub fn serves(&self, gate: &sluice_model::spec::KafkaGate) -> bool {
        if self.connection != gate.connection || self.topic != gate.topic {
            return false;
        }
        let (primary, _) = gate.primary();
        if self.lag_only {
            self.arrivals_topic.is_none()
                && self.group != primary
                && gate.groups.contains_key(&self.group)
        } else {
            self.group == primary && self.arrivals_topic == gate.arrivals_topic
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
