//! A random schedule of faults in every dependency, from a seed (printed, so that a failing
//! schedule can be replayed with SLUICE_CHAOS_SEED): ClickHouse and the broker stopped
//! and started again, latency spikes, blackholed and dropped connections, the EMR API
//! refusing connections.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use sluice_demo::services::{OwnBroker, OwnClickHouse};

use sluice_tests::fault_proxy::{Fault, FaultProxy};

/// SplitMix64: small, seedable, good enough to pick faults.
pub struct Random(u64);

impl Random {
    pub fn new(seed: u64) -> Random {
        Random(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A duration in [low, high) milliseconds.
    pub fn millis(&mut self, low: u64, high: u64) -> Duration {
        Duration::from_millis(low + self.next() % (high - low).max(1))
    }
}

/// What can go wrong, and for how long each one lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ClickHouseStopped,
    BrokerStopped,
    ClickHouseLatency,
    ClickHouseBlackholed,
    ClickHouseConnectionsDropped,
    EmrRefused,
    EmrLatency,
}

const KINDS: [Kind; 7] = [
    Kind::ClickHouseStopped,
    Kind::BrokerStopped,
    Kind::ClickHouseLatency,
    Kind::ClickHouseBlackholed,
    Kind::ClickHouseConnectionsDropped,
    Kind::EmrRefused,
    Kind::EmrLatency,
];

pub struct Targets {
    pub clickhouse: Arc<OwnClickHouse>,
    pub broker: Arc<OwnBroker>,
    pub warehouse_proxy: Arc<FaultProxy>,
    pub emr_proxy: Arc<FaultProxy>,
}

/// Injects faults one after the other, with quiet gaps of `gap` between them, until
/// `done`; answers how many of each kind were injected.
pub fn inject(
    targets: Targets,
    seed: u64,
    gap: (u64, u64),
    done: Arc<AtomicBool>,
) -> JoinHandle<BTreeMap<Kind, u32>> {
    std::thread::spawn(move || {
        let mut random = Random::new(seed ^ 0x5eed);
        let mut injected = BTreeMap::new();
        let wait = |d: Duration, done: &AtomicBool| {
            let end = std::time::Instant::now() + d;
            while std::time::Instant::now() < end && !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
            }
        };
        loop {
            wait(random.millis(gap.0, gap.1), &done);
            if done.load(Ordering::Relaxed) {
                break;
            }
            let kind = KINDS[(random.next() % KINDS.len() as u64) as usize];
            let lasts = random.millis(3_000, 15_000);
            eprintln!("chaos: {kind:?} for {lasts:.1?}");
            match kind {
                Kind::ClickHouseStopped => {
                    if let Err(e) = targets.clickhouse.script("stop") {
                        eprintln!("chaos: stopping ClickHouse failed: {e}");
                        continue;
                    }
                    wait(lasts, &AtomicBool::new(false));
                    restart("ClickHouse", || {
                        targets.clickhouse.script("start").map(drop)
                    });
                }
                Kind::BrokerStopped => {
                    if let Err(e) = targets.broker.script("stop") {
                        eprintln!("chaos: stopping the broker failed: {e}");
                        continue;
                    }
                    wait(lasts, &AtomicBool::new(false));
                    // `restart` keeps the topics and the committed offsets (`start` would wipe them).
                    restart("the broker", || targets.broker.script("restart").map(drop));
                }
                Kind::ClickHouseLatency => {
                    let delay = random.millis(200, 1_500);
                    targets.warehouse_proxy.set(Fault::Latency(delay));
                    wait(lasts, &AtomicBool::new(false));
                    targets.warehouse_proxy.set(Fault::None);
                }
                Kind::ClickHouseBlackholed => {
                    targets.warehouse_proxy.set(Fault::Blackhole);
                    wait(lasts, &AtomicBool::new(false));
                    // The partition heals as they do: the stalled connections are reset.
                    targets.warehouse_proxy.set(Fault::None);
                    targets.warehouse_proxy.drop_connections();
                }
                Kind::ClickHouseConnectionsDropped => targets.warehouse_proxy.drop_connections(),
                Kind::EmrRefused => {
                    targets.emr_proxy.set(Fault::Refuse);
                    wait(lasts, &AtomicBool::new(false));
                    targets.emr_proxy.set(Fault::None);
                }
                Kind::EmrLatency => {
                    let delay = random.millis(200, 2_000);
                    targets.emr_proxy.set(Fault::Latency(delay));
                    wait(lasts, &AtomicBool::new(false));
                    targets.emr_proxy.set(Fault::None);
                }
            }
            *injected.entry(kind).or_insert(0) += 1;
        }
        injected
    })
}

/// Starts a stopped service again, trying for a while: a server that does not come back
/// would fail the test for the wrong reason.
fn restart(what: &str, start: impl Fn() -> Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    for _ in 0..10 {
        match start() {
            Ok(()) => return,
            Err(e) => eprintln!("chaos: starting {what} again failed: {e}"),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!("{what} did not start again");
}
