//! One interval's raw data damaged on purpose, as a faulty sink or a bad manual copy would
//! leave it, and repaired from a copy (as a re-export from Kafka would).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sluice_demo::events::Event;

pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// What was damaged, with the original files to put back.
pub struct Damage {
    /// Events of the interval no longer readable from the raw zone.
    pub lost_events: u64,
    originals: Vec<(PathBuf, Vec<u8>)>,
}

impl Damage {
    /// Puts the original files back.
    pub fn repair(self) -> Result<(), Error> {
        for (path, bytes) in self.originals {
            std::fs::write(path, bytes)?;
        }
        Ok(())
    }
}

/// In every raw-zone file of the hour holding `[from, to)`, drops every seventh event of
/// that interval and cuts the first remaining one in half (a line no JSON reader can
/// take). Events of other intervals are untouched.
pub fn damage_interval(
    raw_zone: &Path,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Damage, Error> {
    let hour = raw_zone
        .join(format!("event_date={}", from.format("%Y-%m-%d")))
        .join(format!("event_hour={}", from.format("%H")));
    let mut damage = Damage {
        lost_events: 0,
        originals: Vec::new(),
    };
    for entry in std::fs::read_dir(&hour)? {
        let path = entry?.path();
        let original = std::fs::read(&path)?;
        let mut kept = String::new();
        let mut seen = 0u64;
        for line in String::from_utf8(original.clone())?.lines() {
            let event: Event = serde_json::from_str(line)?;
            let happened: DateTime<Utc> = event.event_time.parse()?;
            if happened < from || happened >= to {
                kept.push_str(line);
            } else {
                seen += 1;
                if seen.is_multiple_of(7) {
                    damage.lost_events += 1;
                    continue;
                }
                if seen == 1 {
                    damage.lost_events += 1;
                    kept.push_str(&line[..line.len() / 2]);
                } else {
                    kept.push_str(line);
                }
            }
            kept.push('\n');
        }
        std::fs::write(&path, kept)?;
        damage.originals.push((path, original));
    }
    Ok(damage)
}

/// A lossy load of `window` made current, as a load that lost part of its file would leave
/// the batch layer: the window's current rows but the finest cells of one country (the
/// first by name), under a new load numbered after every earlier one. Returns the country
/// and the events its cells held.
pub fn lossy_load(
    warehouse: &clickhouse::Client,
    window: DateTime<Utc>,
) -> Result<(String, u64), Error> {
    use sluice_demo::services::clickhouse_text as query;
    let at = format!(
        "toDateTime('{}', 'UTC')",
        window.format("%Y-%m-%d %H:%M:%S")
    );
    let finest = format!("window_start = {at} AND rollup_level = 0");
    let answer = query(
        warehouse,
        &format!(
            "SELECT country, sum(event_count) FROM agg_15m WHERE {finest} \
             GROUP BY country ORDER BY country LIMIT 1"
        ),
    )?;
    let (country, lost) = answer
        .trim()
        .split_once('\t')
        .ok_or_else(|| format!("no cells in {window}: `{answer}`"))?;
    let load = "lossy-load-of-the-test";
    let seq = format!("(SELECT max(seq) FROM agg_15m_loads WHERE window_start = {at}) + 1");
    query(
        warehouse,
        &format!(
            "INSERT INTO agg_15m_loads (window_start, load_id, seq, attempt, state) \
             SELECT {at}, '{load}', {seq}, 'test', 'begun'"
        ),
    )?;
    query(
        warehouse,
        &format!(
            "INSERT INTO agg_15m_versions SELECT window_start, window_end, country, device, \
             event_type, rollup_level, event_count, distinct_users, value_sum, latency_p50, \
             latency_p95, '{load}' FROM agg_15m \
             WHERE window_start = {at} AND NOT (rollup_level = 0 AND country = '{country}')"
        ),
    )?;
    query(
        warehouse,
        &format!(
            "INSERT INTO agg_15m_loads (window_start, load_id, seq, attempt, state) \
             SELECT {at}, '{load}', max(seq), 'test', 'current' FROM agg_15m_loads \
             WHERE window_start = {at}"
        ),
    )?;
    Ok((country.to_owned(), lost.parse()?))
}
