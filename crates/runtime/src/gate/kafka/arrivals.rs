//! Late data without reading the events: the raw-zone sink (the job that writes the raw
//! zone from Kafka, whose consumer group the gate waits for) reports, with every flush and
//! before it commits, how many events it wrote per event-time minute, one report per source
//! partition, to a small topic of its own. A look reads the reports appended since the
//! previous one: their number grows with the sink's flushes and the partitions, never with
//! the event rate, and their counts are exact (every event the sink wrote is in one).
//!
//! The reports also carry the newest event time written from each partition: with them, a
//! gate's watermark is the raw zone's (what Spark will read), and a look fetches no message
//! of the events topic at all.
//!
//! A report, JSON (the contract for any sink, documented in docs/dag-spec.md):
//! `{"partition": 3, "from_offset": 1200, "to_offset": 1450, "minutes": [[1756720800, 240], [1756720860, 10]], "newest_event_ms": 1756720871250}`
//! — the source partition, the offsets `[from, to)` written, (minute start in Unix
//! seconds, events) pairs, and the newest event time written (optional: without it, the
//! start of the newest minute, which is earlier and so safe). A report whose range was
//! already counted (the sink crashed after reporting and before committing, and wrote the
//! same range again) is not counted again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::client::{KafkaLink, PayloadLimits};

/// Most reports read per partition of the arrivals topic in one look; the rest are read by
/// the next looks (none is skipped).
pub const REPORTS_PER_LOOK: i64 = 20_000;

/// What a look may read of the reports: one report is at most 64 KiB (a flush's minutes
/// of about two days of event time; a larger one is unreadable, counted nowhere and shown
/// to operators), and a look reads at most 16 MiB of them (the rest: the next looks).
pub const LIMITS: PayloadLimits = PayloadLimits {
    per_message: 64 << 10,
    per_read: 16 << 20,
};

/// One flush of the sink for one source partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalReport {
    pub partition: i32,
    pub from_offset: i64,
    pub to_offset: i64,
    /// (minute start, Unix seconds; events written of that minute).
    pub minutes: Vec<(i64, u64)>,
    /// The newest event time written from the partition in this flush, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_event_ms: Option<i64>,
}

impl ArrivalReport {
    /// The newest event time the report vouches for: its own figure, else the start of its
    /// newest minute (earlier than any event of that minute: never ahead of the data).
    pub fn newest_ms(&self) -> Option<i64> {
        self.newest_event_ms
            .or_else(|| self.minutes.iter().map(|(m, _)| m * 1000).max())
    }
}

/// Where the reports were read to, and which source offsets they had counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrivalsMemory {
    /// Per partition of the arrivals topic: the next report to read.
    pub read_to: BTreeMap<i32, i64>,
    /// Per source partition: the end of the highest range counted.
    pub counted_to: BTreeMap<i32, i64>,
    /// Reports that could not be read as one (counted nowhere; shown to operators).
    pub unreadable: u64,
}

/// What one look read of the reports.
#[derive(Debug, Default)]
pub struct Read {
    /// Events per event-time minute (Unix seconds of its start).
    pub per_minute: BTreeMap<i64, u64>,
    /// The newest event time written, per source partition (milliseconds).
    pub newest: BTreeMap<i32, i64>,
    pub reports: u64,
}

/// Reads the reports appended since the previous look. The first look reads only the last
/// [`REPORTS_PER_LOOK`] reports, for the newest event times, and counts none: what was
/// written before watching began is not late for anything watched.
pub fn read(
    link: &mut KafkaLink,
    topic: &str,
    memory: &mut ArrivalsMemory,
) -> Result<Read, String> {
    read_within(link, topic, memory, LIMITS)
}

/// [`read`] within other limits (tests of the limits).
pub fn read_within(
    link: &mut KafkaLink,
    topic: &str,
    memory: &mut ArrivalsMemory,
    limits: PayloadLimits,
) -> Result<Read, String> {
    let ids = link.partitions(topic)?;
    let offsets = link.offsets(topic, &ids)?;
    let mut ranges = BTreeMap::new();
    for (p, o) in &offsets {
        let (from, counting) = match memory.read_to.get(p) {
            Some(at) if *at >= o.low && *at <= o.high => (*at, true),
            // Reports removed by retention before they were read are lost to counting:
            // read on from the oldest kept.
            Some(_) => (o.low, true),
            None => ((o.high - REPORTS_PER_LOOK).max(o.low), false),
        };
        memory.read_to.insert(*p, from);
        if from < o.high {
            ranges.insert(*p, ((from, o.high.min(from + REPORTS_PER_LOOK)), counting));
        }
    }
    // Where a first look's partitions end: whatever of them this look does not get to
    // (the byte budget) was written before watching began, and must not count later.
    let first_look_ends: BTreeMap<i32, i64> = offsets
        .iter()
        .filter(|(p, _)| ranges.get(p).is_some_and(|(_, counting)| !*counting))
        .map(|(p, o)| (*p, o.high))
        .collect();
    let mut read = Read::default();
    let fetch = ranges.iter().map(|(p, (range, _))| (*p, *range)).collect();
    for (p, messages) in link.read_payloads(topic, &fetch, limits)? {
        let counting = ranges.get(&p).is_some_and(|(_, counting)| *counting);
        for (offset, payload) in messages {
            read.reports += 1;
            memory.read_to.insert(p, offset + 1);
            let report = (payload.len() <= limits.per_message)
                .then(|| serde_json::from_slice::<ArrivalReport>(&payload).ok())
                .flatten();
            let Some(report) = report else {
                memory.unreadable += u64::from(counting);
                continue;
            };
            if let Some(ms) = report.newest_ms() {
                let newest = read.newest.entry(report.partition).or_insert(ms);
                *newest = (*newest).max(ms);
            }
            // The first look's reports are not counted, but remembered as seen: a range
            // sent again later counts once.
            if newly_covered(&report, memory) && counting {
                add(report, &mut read.per_minute);
            }
        }
    }
    memory.read_to.extend(first_look_ends);
    Ok(read)
}

/// Adds one report's counts, unless its range was counted already.
pub fn count(
    report: ArrivalReport,
    memory: &mut ArrivalsMemory,
    per_minute: &mut BTreeMap<i64, u64>,
) {
    if newly_covered(&report, memory) {
        add(report, per_minute);
    }
}

/// Whether the report goes past what its partition's reports covered so far (a range
/// sent again does not); it is covered from now on.
fn newly_covered(report: &ArrivalReport, memory: &mut ArrivalsMemory) -> bool {
    let covered = memory.counted_to.entry(report.partition).or_insert(0);
    if report.to_offset <= *covered {
        return false;
    }
    *covered = report.to_offset;
    true
}

fn add(report: ArrivalReport, per_minute: &mut BTreeMap<i64, u64>) {
    for (minute, events) in report.minutes {
        *per_minute.entry(minute).or_insert(0) += events;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(partition: i32, from: i64, to: i64, minutes: &[(i64, u64)]) -> ArrivalReport {
        ArrivalReport {
            partition,
            from_offset: from,
            to_offset: to,
            minutes: minutes.to_vec(),
            newest_event_ms: None,
        }
    }

    #[test]
    fn reports_add_up_and_a_range_sent_again_counts_once() {
        let mut memory = ArrivalsMemory::default();
        let mut per_minute = BTreeMap::new();
        count(
            report(0, 0, 10, &[(60, 7), (120, 3)]),
            &mut memory,
            &mut per_minute,
        );
        count(report(1, 0, 5, &[(60, 5)]), &mut memory, &mut per_minute);
        // The sink crashed after reporting [0, 10) of partition 0 and wrote it again.
        count(
            report(0, 0, 10, &[(60, 7), (120, 3)]),
            &mut memory,
            &mut per_minute,
        );
        count(report(0, 10, 12, &[(120, 2)]), &mut memory, &mut per_minute);
        assert_eq!(per_minute, BTreeMap::from([(60, 12), (120, 5)]));
        assert_eq!(memory.counted_to, BTreeMap::from([(0, 12), (1, 5)]));
    }

    #[test]
    fn the_newest_event_time_is_the_reports_own_or_its_newest_minutes_start() {
        let mut r = report(0, 0, 10, &[(60, 7), (120, 3)]);
        assert_eq!(r.newest_ms(), Some(120_000));
        r.newest_event_ms = Some(150_500);
        assert_eq!(r.newest_ms(), Some(150_500));
        assert_eq!(report(0, 0, 0, &[]).newest_ms(), None);
    }
}
