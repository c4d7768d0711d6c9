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
//! A *cut* is the set of changes delivered between two of the loop's group commits: the loop
//! closes it itself, on its own thread, right after a commit (`CutHandle::cut`), so a cut
//! never holds part of an iteration's transaction. Cuts are numbered from 1 without gaps;
//! an idle loop makes none. Snapshots are written by the loop at a cut too (between two
//! iterations: the loop's trees at one moment; other threads' single-key writes during it
//! land in later cuts and replay over it). A drainer thread keeps sled's change feed empty
//! between cuts (sled blocks writers otherwise) and hands closed cuts, batched every
//! `ship_every`, to an uploader thread, which uploads segments and snapshots in order and
//! expires old ones, each only while the term's fence holds.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_store::Store;
use sluice_store::replication::{Change, Encoder};

use super::lease::Fence;
use super::target::{Objects, TargetError};

pub fn generation_folder(token: i64) -> String {
    format!("gen/{token:020}")
}

/// Where a generation says which state it began from (`Parent`).
pub fn parent_key(token: i64) -> String {
    format!("{}/parent.json", generation_folder(token))
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
}

/// What the uploader is handed, in the order it must land.
enum Upload {
    Segment {
        first: u64,
        last: u64,
        bytes: Vec<u8>,
    },
    /// A snapshot file written by the loop between two iterations.
    Snapshot(SnapshotFile),
    Finish(mpsc::Sender<()>),
}

struct SnapshotFile {
    cut: u64,
    records: u64,
    bytes: u64,
    seconds: f64,
}

/// The change feed and what was drained from it, shared by the loop (which closes cuts)
/// and the drainer thread (which keeps sled's subscriber buffers empty).
struct Feed {
    feed: sluice_store::replication::ChangeFeed,
    /// Changes since the last cut.
    pending: Vec<Change>,
    /// Changes of closed cuts `closed_first..=last_cut` the drainer has not encoded yet
    /// (encoding is the drainer's work, off the loop's thread).
    closed: Vec<Change>,
    closed_first: u64,
    last_cut: u64,
}

impl Feed {
    /// Moves what sled delivered so far into `pending` (its buffers must not fill up).
    fn drain(&mut self) {
        self.feed.drain_into(&mut self.pending);
    }

    /// Closes a cut of everything delivered so far (nothing when nothing changed).
    fn close_cut(&mut self, status: &Mutex<ShipStatus>) -> u64 {
        self.drain();
        if !self.pending.is_empty() {
            self.last_cut += 1;
            if self.closed.is_empty() {
                self.closed_first = self.last_cut;
            }
            self.closed.append(&mut self.pending);
            lock(status).cut_closed = self.last_cut;
        }
        self.last_cut
    }
}

struct Shared {
    feed: Mutex<Feed>,
    uploads: Mutex<mpsc::Sender<Upload>>,
    status: Arc<Mutex<ShipStatus>>,
    /// Set by the uploader when a snapshot is due; the loop takes it at its next cut.
    snapshot_due: AtomicBool,
    stopped: AtomicBool,
    every: Duration,
    scratch: PathBuf,
}

fn lock_feed(shared: &Shared) -> std::sync::MutexGuard<'_, Feed> {
    shared.feed.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn upload(&self, upload: Upload) {
        if let Ok(sender) = self.uploads.lock() {
            let _ = sender.send(upload);
        }
    }
}

/// The loop's side of shipping: after each group commit it closes a cut (on its own
/// thread, so the cut holds exactly the iterations committed so far) and, when one is due,
/// writes a snapshot then and there (between two iterations: a consistent moment of the
/// loop's trees).
#[derive(Clone)]
pub struct CutHandle(Arc<Shared>);

impl std::fmt::Debug for CutHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CutHandle")
    }
}

impl CutHandle {
    pub fn cut(&self, store: &Store) {
        let shared = &self.0;
        if shared.stopped.load(Ordering::Acquire) {
            return;
        }
        let cut = lock_feed(shared).close_cut(&shared.status);
        if shared.snapshot_due.swap(false, Ordering::AcqRel) {
            let started = Instant::now();
            match write_snapshot(store, &shared.scratch) {
                Ok((records, bytes)) => shared.upload(Upload::Snapshot(SnapshotFile {
                    cut,
                    records,
                    bytes,
                    seconds: started.elapsed().as_secs_f64(),
                })),
                Err(e) => {
                    tracing::warn!("ha: snapshot failed (taken again later): {e}");
                    shared.snapshot_due.store(true, Ordering::Release);
                }
            }
        }
    }
}

fn write_snapshot(store: &Store, scratch: &std::path::Path) -> Result<(u64, u64), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(scratch)
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    let (writer, records) = store
        .snapshot_into(std::io::BufWriter::new(file))
        .map_err(|e| e.to_string())?;
    drop(writer);
    let bytes = std::fs::metadata(scratch).map_or(0, |m| m.len());
    Ok((records, bytes))
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
    shared: Arc<Shared>,
    abandoned: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn lock(status: &Mutex<ShipStatus>) -> std::sync::MutexGuard<'_, ShipStatus> {
    status.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a graceful end waits for the last uploads before giving up on them.
const FINISH_WITHIN: Duration = Duration::from_secs(60);

impl Shipper {
    /// Starts a generation: writes its parent record and subscribes to the store's
    /// changes. The generation's first snapshot is taken at the loop's first cut. Every
    /// upload and deletion first asks `fence`: a deposed term touches nothing more.
    pub fn start(
        store: Store,
        objects: Arc<dyn Objects>,
        generation: i64,
        parent: Parent,
        config: ShipConfig,
        fence: Fence,
    ) -> Result<Shipper, TargetError> {
        let parent_key = parent_key(generation);
        fence.check().map_err(|d| TargetError::Remote {
            key: parent_key.clone(),
            reason: d.to_string(),
        })?;
        objects.put(
            &parent_key,
            &serde_json::to_vec_pretty(&parent).unwrap_or_default(),
        )?;
        let status = Arc::new(Mutex::new(ShipStatus {
            generation,
            ..ShipStatus::default()
        }));
        let (upload_tx, upload_rx) = mpsc::channel();
        let shared = Arc::new(Shared {
            feed: Mutex::new(Feed {
                feed: store.change_feed(),
                pending: Vec::new(),
                closed: Vec::new(),
                closed_first: 0,
                last_cut: 0,
            }),
            uploads: Mutex::new(upload_tx),
            status: status.clone(),
            snapshot_due: AtomicBool::new(true),
            stopped: AtomicBool::new(false),
            every: config.every,
            scratch: config.scratch.clone(),
        });
        let abandoned = Arc::new(AtomicBool::new(false));
        let io = |e: std::io::Error| TargetError::Io {
            key: "shipping threads".into(),
            source: e,
        };
        let drainer = {
            let (shared, abandoned) = (shared.clone(), abandoned.clone());
            std::thread::Builder::new()
                .name("sluice-ship-drain".into())
                .spawn(move || drain(&shared, &abandoned))
                .map_err(io)?
        };
        let uploader = {
            let (shared, abandoned) = (shared.clone(), abandoned.clone());
            std::thread::Builder::new()
                .name("sluice-ship-upload".into())
                .spawn(move || {
                    Uploader {
                        objects,
                        generation,
                        config,
                        shared,
                        abandoned,
                        fence,
                    }
                    .run(upload_rx)
                })
        };
        let uploader = match uploader {
            Ok(thread) => thread,
            Err(e) => {
                shared.stopped.store(true, Ordering::Release);
                let _ = drainer.join();
                return Err(io(e));
            }
        };
        Ok(Shipper {
            shared,
            abandoned,
            threads: vec![drainer, uploader],
        })
    }

    pub fn handle(&self) -> CutHandle {
        CutHandle(self.shared.clone())
    }

    pub fn status(&self) -> ShipStatus {
        lock(&self.shared.status).clone()
    }

    pub fn status_handle(&self) -> StatusHandle {
        StatusHandle(self.shared.status.clone())
    }

    /// A graceful end (a planned hand-over, a shutdown): the last changes are uploaded
    /// before this returns, or `FINISH_WITHIN` passes (the target is down) and they are
    /// given up, so a failing target never keeps the lease held.
    pub fn finish(mut self) -> ShipStatus {
        self.stop(false);
        self.status()
    }

    /// A deposed term: nothing more is uploaded (a successor owns the state now).
    pub fn abandon(mut self) -> ShipStatus {
        self.stop(true);
        self.status()
    }

    fn stop(&mut self, abandon: bool) {
        if self.threads.is_empty() {
            return;
        }
        if abandon {
            self.abandoned.store(true, Ordering::Release);
        }
        // The drainer closes a last cut (what changed after the loop's last one: a shutdown
        // writes as it ends), hands everything over and ends; then the uploader gets the end.
        self.shared.stopped.store(true, Ordering::Release);
        let mut threads = self.threads.drain(..);
        if let Some(drainer) = threads.next() {
            let _ = drainer.join();
        }
        let (reply, done) = mpsc::channel();
        self.shared.upload(Upload::Finish(reply));
        if done.recv_timeout(FINISH_WITHIN).is_err() {
            tracing::warn!(
                "ha: the last changes were not shipped within {} s; giving up on them",
                FINISH_WITHIN.as_secs()
            );
            self.abandoned.store(true, Ordering::Release);
        }
        for thread in threads {
            let _ = thread.join();
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// Keeps sled's subscriber buffers empty between the loop's cuts, encodes the closed cuts
/// and hands them to the uploader every `every`.
fn drain(shared: &Shared, abandoned: &AtomicBool) {
    let mut batch: Option<Encoder<Vec<u8>>> = None;
    let (mut first, mut last) = (0u64, 0u64);
    let mut last_sent = Instant::now();
    loop {
        let stopping = shared.stopped.load(Ordering::Acquire);
        let (closed, closed_first, closed_last) = {
            let mut feed = lock_feed(shared);
            if stopping && !abandoned.load(Ordering::Acquire) {
                feed.close_cut(&shared.status);
            } else {
                feed.drain();
            }
            (
                std::mem::take(&mut feed.closed),
                feed.closed_first,
                feed.last_cut,
            )
        };
        if !closed.is_empty() {
            if batch.is_none() {
                first = closed_first;
                batch = Encoder::new(Vec::new()).ok();
            }
            if let Some(encoder) = batch.as_mut() {
                for change in &closed {
                    // Writing into a Vec cannot fail.
                    let _ = encoder.push(change);
                }
            }
            last = closed_last;
        }
        drop(closed);
        if batch.is_some() && (stopping || last_sent.elapsed() >= shared.every) {
            if let Some(encoder) = batch.take()
                && let Ok((bytes, _)) = encoder.finish()
                && !abandoned.load(Ordering::Acquire)
            {
                shared.upload(Upload::Segment { first, last, bytes });
            }
            last_sent = Instant::now();
        }
        if stopping {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

struct Uploader {
    objects: Arc<dyn Objects>,
    generation: i64,
    config: ShipConfig,
    shared: Arc<Shared>,
    abandoned: Arc<AtomicBool>,
    fence: Fence,
}

impl Uploader {
    fn status(&self) -> std::sync::MutexGuard<'_, ShipStatus> {
        lock(&self.shared.status)
    }

    /// Whether this term may still write to the target.
    fn may_write(&self) -> bool {
        !self.abandoned.load(Ordering::Acquire) && self.fence.check().is_ok()
    }

    fn run(self, uploads: mpsc::Receiver<Upload>) {
        let mut next_snapshot: Option<Instant> = None;
        loop {
            if let Some(at) = next_snapshot
                && Instant::now() >= at
            {
                self.shared.snapshot_due.store(true, Ordering::Release);
                next_snapshot = None;
            }
            let wait = next_snapshot
                .map_or(Duration::from_millis(200), |at| {
                    at.saturating_duration_since(Instant::now())
                })
                .max(Duration::from_millis(1));
            match uploads.recv_timeout(wait) {
                Ok(Upload::Segment { first, last, bytes }) => {
                    self.upload_segment(first, last, &bytes)
                }
                Ok(Upload::Snapshot(file)) => {
                    match self.upload_snapshot(&file) {
                        Ok(manifest) => {
                            let mut status = self.status();
                            status.last_shipped_at = Some(manifest.taken_at);
                            status.last_snapshot = Some(manifest);
                            drop(status);
                            self.expire();
                        }
                        Err(e) => {
                            tracing::warn!("ha: shipping a snapshot failed (taken again): {e}");
                        }
                    }
                    let _ = std::fs::remove_file(&self.config.scratch);
                    next_snapshot = Some(Instant::now() + self.config.snapshot_every);
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
        while self.may_write() {
            match self.objects.put(&key, bytes) {
                Ok(()) => {
                    let mut status = self.status();
                    status.cut_shipped = last;
                    status.last_shipped_at = Some(Utc::now());
                    status.segments += 1;
                    status.bytes += bytes.len() as u64;
                    return;
                }
                Err(e) => {
                    tracing::warn!("ha: shipping {key} failed (retried): {e}");
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    fn upload_snapshot(&self, file: &SnapshotFile) -> Result<SnapshotManifest, TargetError> {
        let refused = |key: String| TargetError::Remote {
            key,
            reason: "this instance is no longer the active one".into(),
        };
        let data = snapshot_key(self.generation, file.cut, "snap");
        if !self.may_write() {
            return Err(refused(data));
        }
        self.objects.put_file(&data, &self.config.scratch)?;
        let manifest = SnapshotManifest {
            cut: file.cut,
            records: file.records,
            bytes: file.bytes,
            taken_at: Utc::now(),
            seconds: file.seconds,
            sluice_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let key = snapshot_key(self.generation, file.cut, "json");
        if !self.may_write() {
            return Err(refused(key));
        }
        self.objects.put(
            &key,
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
        let snaps = super::restore::snapshot_cuts(self.objects.as_ref(), self.generation)?;
        let keep = self.config.keep_snapshots.max(1);
        let delete = |key: String| -> Result<(), TargetError> {
            if self.may_write() {
                self.objects.delete(&key)
            } else {
                Ok(())
            }
        };
        if snaps.len() > keep {
            for cut in &snaps[..snaps.len() - keep] {
                // The manifest first: a snapshot without one is never used.
                delete(snapshot_key(self.generation, *cut, "json"))?;
                delete(snapshot_key(self.generation, *cut, "snap"))?;
            }
        }
        let oldest_kept = snaps[snaps.len().saturating_sub(keep)..]
            .first()
            .copied()
            .unwrap_or(0);
        for (first, last) in super::restore::segments(self.objects.as_ref(), self.generation)? {
            if last <= oldest_kept {
                delete(segment_key(self.generation, first, last))?;
            }
        }
        let generations: Vec<i64> = self
            .objects
            .list("gen")?
            .iter()
            .filter_map(|name| parse_generation(name))
            .collect();
        // A newer generation exists: a successor took over, and its restore may still need
        // the older ones. Delete nothing of theirs.
        if generations.iter().any(|g| *g > self.generation) {
            return Ok(());
        }
        for token in generations {
            if token < self.generation && self.may_write() {
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
    objects.delete(&parent_key(token))
}
