//! High availability (docs/ha.md): one active scheduler per deployment and standbys ready
//! to take over. The active holds a leader lease on etcd (`lease`, through `etcd`), whose
//! revision fences every commit and dispatch, and ships its state (`ship`) to a directory or
//! an S3 bucket (`target`, `s3`); a standby that wins the lease rebuilds the state from
//! there (`restore`) and schedules on after the usual crash recovery.

pub mod etcd;
pub mod lease;
pub mod restore;
pub mod s3;
pub mod ship;
pub mod target;

use std::time::Duration;

pub use lease::{Active, Deposed, Elector, Fence, Holder, SideEffects, Term};
pub use ship::{CutHandle, ShipConfig, ShipStatus, Shipper};
pub use target::ShipTarget;

/// A deployment or instance name: it becomes part of etcd keys and object keys.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != ".."
}

/// This machine's host name, the default instance name.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|n| n.trim().to_owned())
        .filter(|n| valid_name(n))
        .unwrap_or_else(|| "sluice".to_owned())
}

/// The `[ha]` section, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaSettings {
    /// etcd client URLs.
    pub etcd: Vec<String>,
    /// Names the lease and the shipped state: one active scheduler per deployment.
    pub deployment: String,
    /// This scheduler's name (default: the host name).
    pub instance: String,
    /// The API URL standbys point callers at (default: from `listen`).
    pub advertise: Option<String>,
    pub ship_to: ShipTarget,
    pub s3: s3::S3Location,
    pub lease_ttl: Duration,
    pub ship_every: Duration,
    pub snapshot_every: Duration,
    pub keep_snapshots: usize,
}

impl HaSettings {
    /// An etcd client whose calls give up well within a lease.
    pub fn etcd_client(&self) -> Result<etcd::Etcd, etcd::EtcdError> {
        etcd::Etcd::new(
            self.etcd.clone(),
            (self.lease_ttl / 4).max(Duration::from_millis(200)),
        )
    }

    pub fn elector(&self, api: Option<String>) -> Result<Elector, etcd::EtcdError> {
        Ok(Elector::new(
            self.etcd_client()?,
            &self.deployment,
            self.instance.clone(),
            self.advertise.clone().or(api),
            self.lease_ttl,
        ))
    }
}

/// What the loop needs of HA while active: the fence it checks before each commit and
/// dispatch, and the shipper's cut marks after each commit.
#[derive(Debug, Clone)]
pub struct Leadership {
    pub fence: Fence,
    pub cuts: Option<CutHandle>,
    pub shipping: Option<ship::StatusHandle>,
    /// How long the takeover took (restore and open), for the metrics.
    pub takeover: Duration,
}
