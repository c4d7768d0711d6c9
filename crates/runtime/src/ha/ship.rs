//! Shipping the active instance's state, after Litestream: a snapshot, then the changes
//! since, in objects a standby can replay (docs/ha.md has the layout and the figures).
//!
//! Each term writes under its own *generation*, named by its fencing token, so a deposed
//! instance's late uploads can never mix with its successor's:
//!
//! ```text
//! gen/<token:020>/parent.json                      where this term's state came from
//! gen/<token:020>/log/<first:016x>-<last:016x>.seg the changes of cuts first..=last
//! gen/<token:020>/snap/<cut:016x>.snap             every tree, read after cut `cut` closed
//! gen/<token:020>/snap/<cut:016x>.json             the snapshot's manifest (it is complete)
//! ```
//!
//! A *cut* is the set of changes delivered between two marks the loop makes after its group
//! commits (`CutHandle::cut`), so a cut never splits an iteration's transaction. Cuts are
//! numbered from 1 without gaps; an idle loop makes none. A drainer thread keeps sled's
//! change feed empty (sled blocks writers otherwise) and hands closed cuts, batched every
//! `ship_every`, to an uploader thread, which also takes the snapshots and expires old ones.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_store::Store;
use sluice_store::replication::{Change, Encoder};

use super::target::{Objects, TargetError};

pub fn generation_folder(token: i64) -> String {
    format!("gen/{token:020}")
}

pub fn parse_generation(name: &str) -> Option<i64> {
    name.parse().ok()
}

pub fn segment_key(token: i64, first: u64, last: u64) -> String {
    format!(
        "{}/log/{first:016x}-{last:016x}.seg",
        generation_folder(token)
    )
}

/// `first-last.seg` → (first, last).
pub fn parse_segment(name: &str) -> Option<(u64, u64)> {
    let (first, last) = name.strip_suffix(".seg")?.split_once('-')?;
    Some((
        u64::from_str_radix(first, 16).ok()?,
        u64::from_str_radix(last, 16).ok()?,
    ))
}

pub fn snapshot_key(token: i64, cut: u64, extension: &str) -> String {
    format!("{}/snap/{cut:016x}.{extension}", generation_folder(token))
}

/// Where a generation's state began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    /// The generation restored from, with the last cut replayed; `None`: this term began
    /// from the instance's own local state (the first term of a deployment), which only its
    /// first snapshot holds.
    pub from: Option<(i64, u64)>,
    pub instance: String,
    pub at: DateTime<Utc>,
}

/// A complete snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    pub cut: u64,
    pub records: u64,
    pub bytes: u64,
    pub taken_at: DateTime<Utc>,
    pub seconds: f64,
    pub sluice_version: String,
}

#[derive(Debug, Clone)]
pub struct ShipConfig {
    pub every: Duration,
    pub snapshot_every: Duration,
    pub keep_snapshots: usize,
    /// Where a snapshot is written before it is uploaded (in the state folder).
    pub scratch: PathBuf,
    pub instance: String,
}

/// What shipping has done, for `ha status`, metrics and tests.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ShipStatus {
    pub generation: i64,
    /// The last cut the loop closed, and the last one uploaded.
    pub cut_closed: u64,
    pub cut_shipped: u64,
    pub last_shipped_at: Option<DateTime<Utc>>,
    pub segments: u64,
    pub bytes: u64,
    pub last_snapshot: Option<SnapshotManifest>,
    pub last_error: Option<String>,
}

enum DrainerMessage {
    Cut,
    Finish(mpsc::Sender<()>),
}

enum Upload {
    Segment {
        first: u64,
        last: u64,
        bytes: Vec<u8>,
    },
    Finish(mpsc::Sender<()>),
}

/// The loop's side of shipping: marks a cut after a group commit.
#[derive(Debug, Clone)]
pub struct CutHandle(mpsc::Sender<DrainerMessage>);

impl std::fmt::Debug for DrainerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DrainerMessage::Cut => "Cut",
            DrainerMessage::Finish(_) => "Finish",
        })
    }
}

impl CutHandle {
    pub fn cut(&self) {
        let _ = self.0.send(DrainerMessage::Cut);
    }
}

/// A read-only view of a shipper's status (metrics, `ha status`).
#[derive(Debug, Clone)]
pub struct StatusHandle(Arc<Mutex<ShipStatus>>);

impl StatusHandle {
    pub fn get(&self) -> ShipStatus {
        lock(&self.0).clone()
    }
}

/// Ships one term's state until stopped.
pub struct Shipper {
    drainer_tx: mpsc::Sender<DrainerMessage>,
    status: Arc<Mutex<ShipStatus>>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn lock(status: &Mutex<ShipStatus>) -> std::sync::MutexGuard<'_, ShipStatus> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shipper {
    /// Starts a generation: writes its parent record, subscribes to the store's changes,
    /// and takes the first snapshot at once (in the background).
    pub fn start(
        store: Store,
        objects: Arc<dyn Objects>,
        generation: i64,
        parent: Parent,
        config: ShipConfig,
    ) -> Result<Shipper, TargetError> {
        let parent_key = format!("{}/parent.json", generation_folder(generation));
        objects.put(
            &parent_key,
            &serde_json::to_vec_pretty(&parent).unwrap_or_default(),
        )?;
        let feed = store.change_feed();
        let status = Arc::new(Mutex::new(ShipStatus {
            generation,
            ..ShipStatus::default()
        }));
        let closed = Arc::new(AtomicU64::new(0));
        let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (drainer_tx, drainer_rx) = mpsc::channel();
        let (upload_tx, upload_rx) = mpsc::channel();
        let drainer = {
            let (closed, status, every) = (closed.clone(), status.clone(), config.every);
            std::thread::Builder::new()
                .name("sluice-ship-drain".into())
                .spawn(move || drain(feed, drainer_rx, upload_tx, closed, status, every))
        };
        let uploader = {
            let (status, abandoned) = (status.clone(), abandoned.clone());
            std::thread::Builder::new()
                .name("sluice-ship-upload".into())
                .spawn(move || {
                    Uploader {
                        store,
                        objects,
                        generation,
                        config,
                        closed,
                        status,
                        abandoned,
                    }
                    .run(upload_rx)
                })
        };
        let io = |e: std::io::Error| TargetError::Io {
            key: "shipping threads".into(),
            source: e,
        };
        Ok(Shipper {
            drainer_tx,
            status,
            abandoned,
            threads: vec![drainer.map_err(io)?, uploader.map_err(io)?],
        })
    }

    pub fn handle(&self) -> CutHandle {
        CutHandle(self.drainer_tx.clone())
    }

    pub fn status(&self) -> ShipStatus {
        lock(&self.status).clone()
    }

    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle(self.status.clone())
    }

    /// A graceful end (a planned hand-over, a shutdown): the last cut and every pending
    /// segment are uploaded before this returns.
    pub fn finish(mut self) -> ShipStatus {
        let (tx, rx) = mpsc::channel();
        if self.drainer_tx.send(DrainerMessage::Finish(tx)).is_ok() {
            let _ = rx.recv();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
        self.status()
    }

    /// A deposed term: nothing more is uploaded (a successor owns the state now).
    pub fn abandon(mut self) -> ShipStatus {
        self.abandoned.store(true, Ordering::Release);
        self.finish_threads();
        self.status()
    }

    fn finish_threads(&mut self) {
        let (tx, _rx) = mpsc::channel();
        let _ = self.drainer_tx.send(DrainerMessage::Finish(tx));
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.abandoned.store(true, Ordering::Release);
            self.finish_threads();
        }
    }
}

/// Keeps the change feed drained; closes a cut at each mark; sends batches to upload.
fn drain(
    mut feed: sluice_store::replication::ChangeFeed,
    marks: mpsc::Receiver<DrainerMessage>,
    uploads: mpsc::Sender<Upload>,
    closed: Arc<AtomicU64>,
    status: Arc<Mutex<ShipStatus>>,
    every: Duration,
) {
    let mut pending: Vec<Change> = Vec::new();
    let mut batch: Vec<Change> = Vec::new();
    let mut batch_first = 0u64;
    let mut last_cut = 0u64;
    let mut last_sent = Instant::now();
    let send_batch = |batch: &mut Vec<Change>, first: u64, last: u64| -> bool {
        let Ok(mut encoder) = Encoder::new(Vec::new()) else {
            return false;
        };
        for change in batch.iter() {
            if encoder.push(change).is_err() {
                return false;
            }
        }
        batch.clear();
        match encoder.finish() {
            Ok((bytes, _)) => uploads.send(Upload::Segment { first, last, bytes }).is_ok(),
            Err(_) => false,
        }
    };
    loop {
        let message = marks.recv_timeout(Duration::from_millis(2));
        feed.drain_into(&mut pending);
        let finish = match message {
            Ok(DrainerMessage::Cut) => None,
            Ok(DrainerMessage::Finish(reply)) => Some(reply),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !batch.is_empty() && last_sent.elapsed() >= every {
                    send_batch(&mut batch, batch_first, last_cut);
                    last_sent = Instant::now();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => None,
        };
        if !pending.is_empty() {
            last_cut += 1;
            if batch.is_empty() {
                batch_first = last_cut;
            }
            batch.append(&mut pending);
            closed.store(last_cut, Ordering::Release);
            lock(&status).cut_closed = last_cut;
        }
        if let Some(reply) = finish {
            if !batch.is_empty() {
                send_batch(&mut batch, batch_first, last_cut);
            }
            let _ = uploads.send(Upload::Finish(reply));
            return;
        }
        if !batch.is_empty() && last_sent.elapsed() >= every {
            send_batch(&mut batch, batch_first, last_cut);
            last_sent = Instant::now();
        }
    }
}

struct Uploader {
    store: Store,
    objects: Arc<dyn Objects>,
    generation: i64,
    config: ShipConfig,
    closed: Arc<AtomicU64>,
    status: Arc<Mutex<ShipStatus>>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
}

impl Uploader {
    fn run(self, uploads: mpsc::Receiver<Upload>) {
        // The generation's first snapshot at once: until it exists, a restore needs the
        // parent generation too.
        let mut next_snapshot = Instant::now();
        loop {
            if self.abandoned.load(Ordering::Acquire) {
                return;
            }
            if Instant::now() >= next_snapshot {
                match self.snapshot() {
                    Ok(manifest) => {
                        let mut status = lock(&self.status);
                        status.last_shipped_at = Some(manifest.taken_at);
                        status.last_snapshot = Some(manifest);
                        drop(status);
                        self.expire();
                        next_snapshot = Instant::now() + self.config.snapshot_every;
                    }
                    Err(e) => {
                        tracing::warn!("ha: snapshot failed (retried): {e}");
                        lock(&self.status).last_error = Some(e.to_string());
                        next_snapshot =
                            Instant::now() + self.config.every.max(Duration::from_secs(1));
                    }
                }
            }
            let wait = next_snapshot.saturating_duration_since(Instant::now());
            match uploads.recv_timeout(wait.max(Duration::from_millis(1))) {
                Ok(Upload::Segment { first, last, bytes }) => {
                    self.upload_segment(first, last, &bytes)
                }
                Ok(Upload::Finish(reply)) => {
                    let _ = reply.send(());
                    return;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// Uploads one segment, retrying until it lands: the log must stay contiguous.
    fn upload_segment(&self, first: u64, last: u64, bytes: &[u8]) {
        let key = segment_key(self.generation, first, last);
        let mut pause = Duration::from_millis(100);
        loop {
            if self.abandoned.load(Ordering::Acquire) {
                return;
            }
            match self.objects.put(&key, bytes) {
                Ok(()) => {
                    let mut status = lock(&self.status);
                    status.cut_shipped = last;
                    status.last_shipped_at = Some(Utc::now());
                    status.segments += 1;
                    status.bytes += bytes.len() as u64;
                    status.last_error = None;
                    return;
                }
                Err(e) => {
                    tracing::warn!("ha: shipping {key} failed (retried): {e}");
                    lock(&self.status).last_error = Some(e.to_string());
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn snapshot(&self) -> Result<SnapshotManifest, TargetError> {
        let started = Instant::now();
        // Every change in a cut up to here was applied before it was delivered: the copy
        // holds them; later ones are in later cuts (replayed over it).
        let cut = self.closed.load(Ordering::Acquire);
        let scratch = &self.config.scratch;
        let io = |source| TargetError::Io {
            key: scratch.display().to_string(),
            source,
        };
        let file = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(scratch)
                .map_err(io)?
        };
        let (file, records) = self
            .store
            .snapshot_into(std::io::BufWriter::new(file))
            .map_err(|e| TargetError::Remote {
                key: scratch.display().to_string(),
                reason: e.to_string(),
            })?;
        drop(file);
        let bytes = std::fs::metadata(scratch).map_err(io)?.len();
        self.objects
            .put_file(&snapshot_key(self.generation, cut, "snap"), scratch)?;
        let _ = std::fs::remove_file(scratch);
        let manifest = SnapshotManifest {
            cut,
            records,
            bytes,
            taken_at: Utc::now(),
            seconds: started.elapsed().as_secs_f64(),
            sluice_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        self.objects.put(
            &snapshot_key(self.generation, cut, "json"),
            &serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
        )?;
        Ok(manifest)
    }

    /// Keeps the newest `keep_snapshots` snapshots of this generation, the segments after
    /// the oldest of them, and no older generation (this one now restores on its own).
    fn expire(&self) {
        if let Err(e) = self.try_expire() {
            tracing::warn!("ha: expiring old shipped state failed (retried later): {e}");
        }
    }

    fn try_expire(&self) -> Result<(), TargetError> {
        let folder = generation_folder(self.generation);
        let snaps: Vec<u64> = self
            .objects
            .list(&format!("{folder}/snap"))?
            .iter()
            .filter_map(|name| name.strip_suffix(".json"))
            .filter_map(|cut| u64::from_str_radix(cut, 16).ok())
            .collect();
        let keep = self.config.keep_snapshots.max(1);
        if snaps.len() > keep {
            for cut in &snaps[..snaps.len() - keep] {
                // The manifest first: a snapshot without one is never used.
                self.objects
                    .delete(&snapshot_key(self.generation, *cut, "json"))?;
                self.objects
                    .delete(&snapshot_key(self.generation, *cut, "snap"))?;
            }
        }
        let oldest_kept = snaps[snaps.len().saturating_sub(keep)..]
            .first()
            .copied()
            .unwrap_or(0);
        for name in self.objects.list(&format!("{folder}/log"))? {
            if let Some((_, last)) = parse_segment(&name)
                && last <= oldest_kept
            {
                self.objects.delete(&format!("{folder}/log/{name}"))?;
            }
        }
        for name in self.objects.list("gen")? {
            if let Some(token) = parse_generation(&name)
                && token < self.generation
            {
                delete_generation(self.objects.as_ref(), token)?;
            }
        }
        Ok(())
    }
}

fn delete_generation(objects: &dyn Objects, token: i64) -> Result<(), TargetError> {
    let folder = generation_folder(token);
    for part in ["snap", "log"] {
        for name in objects.list(&format!("{folder}/{part}"))? {
            objects.delete(&format!("{folder}/{part}/{name}"))?;
        }
    }
    objects.delete(&format!("{folder}/parent.json"))
}
