//! The raw zone as a Kafka-to-S3 sink writes it, on local disk: one JSON line per event in
//! `<root>/event_date=YYYY-MM-DD/event_hour=HH/part-<partition>.jsonl`, by event time. A late
//! event lands in its (old) hour folder, where reprocessing that interval finds it.
//!
//! Beside the events, the sink's manifests: for each flush, per source partition and per
//! event hour it wrote to, what it wrote (the arrival report of that flush, cut to the
//! hour), in `<root>/_arrivals/event_date=YYYY-MM-DD/event_hour=HH/part-<partition>-<from>-<to>.json`.
//! The batch job reads them to say how many events the ingest path wrote for an interval,
//! so that `validate` compares counts instead of counting raw events (docs/scale.md).

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::events::Arrival;

#[derive(Debug, thiserror::Error)]
pub enum RawZoneError {
    #[error("writing the raw zone file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("an event could not be written as JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Appends events to their files, keeping the files of recent hours open.
pub struct RawZone {
    root: PathBuf,
    open: HashMap<PathBuf, std::io::BufWriter<std::fs::File>>,
}

/// Files kept open at once (a few hours × partitions); older ones are closed first.
const MAX_OPEN: usize = 64;

impl RawZone {
    pub fn new(root: &Path) -> RawZone {
        RawZone {
            root: root.to_owned(),
            open: HashMap::new(),
        }
    }

    /// The file an event of this time and partition goes to.
    pub fn file_of(root: &Path, happened: DateTime<Utc>, partition: i32) -> PathBuf {
        root.join(format!("event_date={}", happened.format("%Y-%m-%d")))
            .join(format!("event_hour={}", happened.format("%H")))
            .join(format!("part-{partition}.jsonl"))
    }

    pub fn append(&mut self, arrival: &Arrival) -> Result<(), RawZoneError> {
        self.append_event(&arrival.event, arrival.happened, arrival.partition)
    }

    /// Appends an event that happened at `happened`, read from Kafka partition `partition`.
    pub fn append_event(
        &mut self,
        event: &crate::events::Event,
        happened: DateTime<Utc>,
        partition: i32,
    ) -> Result<(), RawZoneError> {
        let path = RawZone::file_of(&self.root, happened, partition);
        if !self.open.contains_key(&path) {
            if self.open.len() >= MAX_OPEN {
                self.flush()?;
                self.open.clear();
            }
            let io = |source| RawZoneError::Io {
                path: path.clone(),
                source,
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(io)?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(io)?;
            self.open
                .insert(path.clone(), std::io::BufWriter::new(file));
        }
        let line = serde_json::to_string(event)?;
        if let Some(writer) = self.open.get_mut(&path) {
            writeln!(writer, "{line}").map_err(|source| RawZoneError::Io { path, source })?;
        }
        Ok(())
    }

    /// Writes the manifest of one flush of one source partition: its offsets `[from, to)`
    /// and events per event-time minute (Unix seconds of the minute's start), one file per
    /// event hour. Call after [`RawZone::flush`]: a manifest never names events not yet in
    /// the files. Each file appears whole (written aside, then renamed); a range written
    /// again after a crash replaces its own file.
    pub fn write_manifest(
        &self,
        partition: i32,
        offsets: (i64, i64),
        minutes: &BTreeMap<i64, u64>,
    ) -> Result<(), RawZoneError> {
        let mut by_hour: BTreeMap<i64, Vec<(i64, u64)>> = BTreeMap::new();
        for (minute, events) in minutes {
            by_hour
                .entry(minute.div_euclid(3600) * 3600)
                .or_default()
                .push((*minute, *events));
        }
        for (hour, minutes) in by_hour {
            let Some(start) = DateTime::<Utc>::from_timestamp(hour, 0) else {
                continue;
            };
            let folder = self
                .root
                .join("_arrivals")
                .join(format!("event_date={}", start.format("%Y-%m-%d")))
                .join(format!("event_hour={}", start.format("%H")));
            let name = format!("part-{partition}-{}-{}.json", offsets.0, offsets.1);
            let path = folder.join(&name);
            let io = |source| RawZoneError::Io {
                path: path.clone(),
                source,
            };
            std::fs::create_dir_all(&folder).map_err(io)?;
            let body = serde_json::json!({
                "partition": partition,
                "from_offset": offsets.0,
                "to_offset": offsets.1,
                "minutes": minutes,
            });
            // A leading dot: readers of the folder (Spark, Hadoop) skip it until renamed.
            let staged = folder.join(format!(".{name}.tmp"));
            std::fs::write(&staged, format!("{body}\n")).map_err(io)?;
            std::fs::rename(&staged, &path).map_err(io)?;
        }
        Ok(())
    }

    /// Writes out what is buffered (a sink's commit).
    pub fn flush(&mut self) -> Result<(), RawZoneError> {
        for (path, writer) in &mut self.open {
            writer.flush().map_err(|source| RawZoneError::Io {
                path: path.clone(),
                source,
            })?;
        }
        Ok(())
    }
}
