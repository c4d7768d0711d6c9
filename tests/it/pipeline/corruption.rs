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
