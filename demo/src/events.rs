//! Events and a seeded generator of event-time traffic, emitted in arrival order.
//!
//! Every event-time second of `[from, to)` gets `rate` events (`rate × burst_factor` during
//! a burst). Each event arrives some time after it happened: most within `jitter`, a share
//! `out_of_order` up to `max_disorder` later (so arrivals interleave event times), and a
//! share `late` after `late_by` (past the interval's end plus lateness: late data). The
//! generator yields events in arrival order with a bounded buffer (events are held only as
//! long as the longest delay), so hours of traffic stream in constant memory.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// One analytics event, as the platform's producers write it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    /// RFC 3339 with milliseconds, UTC.
    pub event_time: String,
    pub user_id: String,
    pub country: String,
    pub device: String,
    pub event_type: String,
    pub value: f64,
    pub latency_ms: f64,
}

/// An event with when it happened and when it reaches Kafka.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    pub happened: DateTime<Utc>,
    pub arrives: DateTime<Utc>,
    /// Kafka partition (by user id, as a keyed producer would).
    pub partition: i32,
    pub event: Event,
    /// Arrives after `late_by`: for the interval it belongs to, it is late data.
    pub late: bool,
}

pub const COUNTRIES: [&str; 6] = ["DE", "FR", "PL", "SE", "US", "BR"];
pub const DEVICES: [&str; 3] = ["web", "ios", "android"];
pub const EVENT_TYPES: [&str; 4] = ["view", "click", "purchase", "search"];

/// What traffic to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub seed: u64,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Events per event-time second outside bursts.
    pub rate: u32,
    /// A burst starts every `burst_every` (from `from`) and lasts `burst_length`.
    pub burst_every: Option<TimeDelta>,
    pub burst_length: TimeDelta,
    pub burst_factor: u32,
    pub partitions: i32,
    /// Usual delay between an event and its arrival: up to this.
    pub jitter: TimeDelta,
    /// Share of events arriving out of order, up to `max_disorder` late.
    pub out_of_order: f64,
    pub max_disorder: TimeDelta,
    /// Share of events arriving `late_by` (plus up to `jitter`) after they happened.
    pub late: f64,
    pub late_by: TimeDelta,
}

impl Plan {
    /// A plan with the demo's defaults over `[from, to)`.
    pub fn new(seed: u64, from: DateTime<Utc>, to: DateTime<Utc>) -> Plan {
        Plan {
            seed,
            from,
            to,
            rate: 20,
            burst_every: Some(TimeDelta::minutes(15)),
            burst_length: TimeDelta::minutes(1),
            burst_factor: 5,
            partitions: 4,
            jitter: TimeDelta::milliseconds(500),
            out_of_order: 0.05,
            max_disorder: TimeDelta::seconds(30),
            late: 0.0,
            late_by: TimeDelta::minutes(30),
        }
    }

    fn in_burst(&self, second: DateTime<Utc>) -> bool {
        self.burst_every.is_some_and(|every| {
            let every = every.num_milliseconds().max(1);
            (second - self.from).num_milliseconds().rem_euclid(every)
                < self.burst_length.num_milliseconds()
        })
    }
}

/// SplitMix64: small, seeded, the same sequence on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn millis(&mut self, up_to: TimeDelta) -> TimeDelta {
        TimeDelta::milliseconds(
            i64::try_from(self.below(u64::try_from(up_to.num_milliseconds().max(1)).unwrap_or(1)))
                .unwrap_or(0),
        )
    }
}

/// FNV-1a of a key, for partitioning by user as a keyed producer does.
pub fn partition_of(key: &str, partitions: i32) -> i32 {
    let h = sluice_model::hash::fnv1a(sluice_model::hash::FNV_OFFSET, key.as_bytes());
    i32::try_from(h % u64::try_from(partitions.max(1)).unwrap_or(1)).unwrap_or(0)
}

/// Heap entry ordered by arrival, then by sequence (a stable order for equal arrivals).
#[derive(Debug, PartialEq)]
struct Pending(DateTime<Utc>, u64, Arrival);

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.0, self.1).cmp(&(other.0, other.1))
    }
}

/// The plan's events in arrival order.
pub struct Generator {
    plan: Plan,
    rng: Rng,
    /// The next event-time second to generate.
    second: DateTime<Utc>,
    sequence: u64,
    pending: BinaryHeap<Reverse<Pending>>,
}

impl Generator {
    pub fn new(plan: Plan) -> Generator {
        Generator {
            rng: Rng::new(plan.seed),
            second: plan.from,
            sequence: 0,
            pending: BinaryHeap::new(),
            plan,
        }
    }

    fn generate_second(&mut self) {
        let plan = &self.plan;
        let count = if plan.in_burst(self.second) {
            plan.rate.saturating_mul(plan.burst_factor)
        } else {
            plan.rate
        };
        for _ in 0..count {
            let rng = &mut self.rng;
            let happened = self.second + rng.millis(TimeDelta::seconds(1));
            let roll = rng.unit();
            let late = roll < plan.late;
            let delay = if late {
                plan.late_by + rng.millis(plan.jitter)
            } else if roll < plan.late + plan.out_of_order {
                rng.millis(plan.max_disorder)
            } else {
                rng.millis(plan.jitter)
            };
            let user_id = format!("u{}", rng.below(5000));
            let event = Event {
                event_id: format!("{:x}-{}", plan.seed, self.sequence),
                event_time: happened.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                user_id: user_id.clone(),
                country: rng.pick(&COUNTRIES).to_owned(),
                device: rng.pick(&DEVICES).to_owned(),
                event_type: rng.pick(&EVENT_TYPES).to_owned(),
                value: (rng.below(10_000) as f64) / 100.0,
                latency_ms: (rng.below(2_000) as f64) / 10.0,
            };
            let arrival = Arrival {
                happened,
                arrives: happened + delay,
                partition: partition_of(&user_id, plan.partitions),
                event,
                late,
            };
            self.pending
                .push(Reverse(Pending(arrival.arrives, self.sequence, arrival)));
            self.sequence += 1;
        }
        self.second += TimeDelta::seconds(1);
    }
}

impl Iterator for Generator {
    type Item = Arrival;

    fn next(&mut self) -> Option<Arrival> {
        loop {
            // Everything arriving before the earliest possible arrival of the seconds not
            // generated yet is final: emit it.
            let settled = self.second >= self.plan.to
                || self
                    .pending
                    .peek()
                    .is_some_and(|Reverse(p)| p.0 < self.second);
            if settled {
                return self.pending.pop().map(|Reverse(p)| p.2);
            }
            if self.second < self.plan.to {
                self.generate_second();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_756_720_800 + minutes * 60, 0).unwrap_or_default()
    }

    #[test]
    fn the_same_seed_gives_the_same_events() {
        let plan = Plan::new(3, at(0), at(2));
        let a: Vec<Arrival> = Generator::new(plan.clone()).collect();
        let b: Vec<Arrival> = Generator::new(plan).collect();
        assert_eq!(a, b);
        // 120 s × 20/s, plus the first minute's burst at 5×: 60 × 100 + 60 × 20.
        assert_eq!(a.len(), 60 * 100 + 60 * 20);
    }

    proptest! {
        /// Arrival order, every event once, delays as planned, late ones truly late.
        #[test]
        fn arrivals_are_ordered_complete_and_delayed_as_planned(
            seed in any::<u64>(),
            rate in 1u32..20,
            out_of_order in 0.0f64..0.5,
            late in 0.0f64..0.2,
        ) {
            let mut plan = Plan::new(seed, at(0), at(3));
            plan.rate = rate;
            plan.burst_every = None;
            plan.out_of_order = out_of_order;
            plan.late = late;
            plan.late_by = TimeDelta::minutes(1);
            let arrivals: Vec<Arrival> = Generator::new(plan.clone()).collect();
            prop_assert_eq!(arrivals.len() as u64, 180 * u64::from(rate));
            let mut ids = std::collections::HashSet::new();
            for pair in arrivals.windows(2) {
                prop_assert!(pair[0].arrives <= pair[1].arrives);
            }
            for a in &arrivals {
                prop_assert!(ids.insert(a.event.event_id.clone()));
                prop_assert!(a.happened >= plan.from && a.happened < plan.to);
                prop_assert!(a.arrives >= a.happened);
                if a.late {
                    prop_assert!(a.arrives - a.happened >= plan.late_by);
                } else {
                    prop_assert!(a.arrives - a.happened < plan.max_disorder.max(plan.jitter));
                }
                prop_assert!((0..plan.partitions).contains(&a.partition));
            }
        }
    }
}
