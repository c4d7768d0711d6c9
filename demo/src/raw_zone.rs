//! The raw zone as a Kafka-to-S3 sink writes it, on local disk: one JSON line per event in
//! `<root>/event_date=YYYY-MM-DD/event_hour=HH/part-<partition>.jsonl`, by event time. A late
//! event lands in its (old) hour folder, where reprocessing that interval finds it.

use std::collections::HashMap;
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
