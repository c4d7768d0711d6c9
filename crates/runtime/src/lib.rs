//! Sluice's runtime: the scheduler shell around the pure core (`scheduler`), the executors
//! that run attempts (`executor`, one module per task kind), readiness gates' outside world
//! (`gate`), connections and clients (`connections`, `clickhouse`), the configuration
//! (`config`), metrics, notifications and logging.

pub mod clickhouse;
pub mod config;
pub mod connections;
pub mod executor;
pub mod gate;
pub mod ha;
pub mod logging;
pub mod masking;
pub mod metrics;
pub mod notify;
pub mod scheduler;
