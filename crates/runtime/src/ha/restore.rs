//! Rebuilding the state from what was shipped: the newest generation's newest complete
//! snapshot, then its segments in order; a generation without a snapshot yet is its
//! parent's state (up to the cut it was taken at) plus its own segments.

use std::path::Path;

use serde::Serialize;
use sluice_store::Store;
use sluice_store::replication::Decoder;

use super::ship::{
    Parent, SnapshotManifest, generation_folder, parent_key, parse_generation, parse_segment,
    snapshot_key,
};
use super::target::{Objects, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("shipped state {key} is unusable: {reason}")]
    Unusable { key: String, reason: String },
    #[error(transparent)]
    Store(#[from] sluice_store::StoreError),
}

/// What a restore replayed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Restored {
    pub generation: i64,
    /// The last cut of `generation` replayed (the new generation's parent cut).
    pub cut: u64,
    /// Snapshots and segments replayed, across the generations walked.
    pub snapshots: usize,
    pub segments: usize,
    pub changes: u64,
    /// A segment missing in the middle of the log: what came after it was not replayed.
    pub gap: Option<String>,
}

/// The generations in the target, oldest first (only those with a parent record).
pub fn generations(objects: &dyn Objects) -> Result<Vec<i64>, TargetError> {
    let mut found = Vec::new();
    for name in objects.list("gen")? {
        if let Some(token) = parse_generation(&name)
            && objects.get(&parent_key(token))?.is_some()
        {
            found.push(token);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// Where a generation began, as its parent record says (`None`: no readable record).
pub fn parent(objects: &dyn Objects, token: i64) -> Result<Option<Parent>, TargetError> {
    Ok(objects
        .get(&parent_key(token))?
        .and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// The cuts of a generation's complete snapshots (those with a manifest), oldest first.
pub fn snapshot_cuts(objects: &dyn Objects, token: i64) -> Result<Vec<u64>, TargetError> {
    let mut cuts: Vec<u64> = objects
        .list(&format!("{}/snap", generation_folder(token)))?
        .iter()
        .filter_map(|name| name.strip_suffix(".json"))
        .filter_map(|cut| u64::from_str_radix(cut, 16).ok())
        .collect();
    cuts.sort_unstable();
    Ok(cuts)
}

/// The complete snapshots of a generation, oldest first.
pub fn snapshots(objects: &dyn Objects, token: i64) -> Result<Vec<SnapshotManifest>, TargetError> {
    let mut found = Vec::new();
    for cut in snapshot_cuts(objects, token)? {
        if let Some(bytes) = objects.get(&snapshot_key(token, cut, "json"))?
            && let Ok(manifest) = serde_json::from_slice::<SnapshotManifest>(&bytes)
        {
            found.push(manifest);
        }
    }
    Ok(found)
}

/// The segments of a generation as (first, last), in order.
pub fn segments(objects: &dyn Objects, token: i64) -> Result<Vec<(u64, u64)>, TargetError> {
    let mut found: Vec<(u64, u64)> = objects
        .list(&format!("{}/log", generation_folder(token)))?
        .iter()
        .filter_map(|name| parse_segment(name))
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// Restores the newest generation into `state` (a folder with no database). `Ok(None)`
/// when nothing was ever shipped.
pub fn restore_latest(
    objects: &dyn Objects,
    state: &Path,
) -> Result<Option<Restored>, RestoreError> {
    let Some(&latest) = generations(objects)?.last() else {
        return Ok(None);
    };
    let store = Store::open(state)?;
    let mut restored = Restored::default();
    replay(objects, &store, latest, None, &mut restored)?;
    store.flush()?;
    Ok(Some(restored))
}

fn unusable(key: String, reason: impl ToString) -> RestoreError {
    RestoreError::Unusable {
        key,
        reason: reason.to_string(),
    }
}

fn apply(objects: &dyn Objects, store: &Store, key: String) -> Result<u64, RestoreError> {
    let bytes = objects
        .get(&key)?
        .ok_or_else(|| unusable(key.clone(), "listed but gone"))?;
    let mut decoder = Decoder::new(bytes.as_slice()).map_err(|e| unusable(key.clone(), e))?;
    store
        .apply_changes(&mut decoder)
        .map_err(|e| unusable(key, e))
}

/// Replays generation `token` up to cut `upto` (all of it when `None`).
fn replay(
    objects: &dyn Objects,
    store: &Store,
    token: i64,
    upto: Option<u64>,
    restored: &mut Restored,
) -> Result<(), RestoreError> {
    let snapshot = snapshots(objects, token)?
        .into_iter()
        .rfind(|m| upto.is_none_or(|limit| m.cut <= limit));
    let mut after = 0;
    match snapshot {
        Some(manifest) => {
            restored.changes += apply(objects, store, snapshot_key(token, manifest.cut, "snap"))?;
            restored.snapshots += 1;
            after = manifest.cut;
        }
        None => {
            let key = parent_key(token);
            let record =
                parent(objects, token)?.ok_or_else(|| unusable(key.clone(), "no parent record"))?;
            match record.from {
                Some((parent_token, parent_cut)) => {
                    replay(objects, store, parent_token, Some(parent_cut), restored)?;
                    // This generation's changes apply to the parent's whole state only.
                    if restored.gap.is_some() {
                        return Ok(());
                    }
                }
                None => {
                    return Err(unusable(
                        key,
                        "the deployment's first generation has no complete snapshot yet",
                    ));
                }
            }
        }
    }
    let mut expected = after + 1;
    restored.generation = token;
    restored.cut = after;
    for (first, last) in segments(objects, token)? {
        if last <= after {
            continue;
        }
        if upto.is_some_and(|limit| first > limit) {
            break;
        }
        if first > expected {
            restored.gap = Some(format!(
                "generation {token}: cuts {expected}..{} missing; stopped at cut {}",
                first - 1,
                expected - 1
            ));
            break;
        }
        restored.changes += apply(objects, store, super::ship::segment_key(token, first, last))?;
        restored.segments += 1;
        restored.cut = last;
        expected = last + 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::ship::segment_key;
    use crate::ha::target::DirObjects;
    use sluice_store::replication::Encoder;

    struct Folder(std::path::PathBuf);

    impl Drop for Folder {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn folder(name: &str) -> Folder {
        let path =
            std::env::temp_dir().join(format!("sluice-restore-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Folder(path)
    }

    /// A generation 5 shipped from a store: a snapshot at cut 0 (empty but for the
    /// store's own keys), then one segment per plugin key written.
    fn shipped(root: &Folder, keys: &[&str]) -> DirObjects {
        let objects = DirObjects::new(root.0.join("ship"));
        let source = Store::open(&root.0.join("source")).unwrap();
        let mut feed = source.change_feed();
        let parent = Parent {
            from: None,
            instance: "a".into(),
            at: chrono::Utc::now(),
        };
        objects
            .put(&parent_key(5), &serde_json::to_vec(&parent).unwrap())
            .unwrap();
        let (snapshot, records) = source.snapshot_into(Vec::new()).unwrap();
        objects.put(&snapshot_key(5, 0, "snap"), &snapshot).unwrap();
        let manifest = SnapshotManifest {
            cut: 0,
            records,
            bytes: snapshot.len() as u64,
            taken_at: chrono::Utc::now(),
            seconds: 0.0,
            sluice_version: "test".into(),
        };
        objects
            .put(
                &snapshot_key(5, 0, "json"),
                &serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
        for (cut, key) in keys.iter().enumerate() {
            source.kv().put("p", key, b"v").unwrap();
            let mut changes = Vec::new();
            feed.drain_into(&mut changes);
            let mut encoder = Encoder::new(Vec::new()).unwrap();
            for change in &changes {
                encoder.push(change).unwrap();
            }
            let (bytes, _) = encoder.finish().unwrap();
            let cut = cut as u64 + 1;
            objects.put(&segment_key(5, cut, cut), &bytes).unwrap();
        }
        objects
    }

    #[test]
    fn the_snapshot_and_every_segment_after_it_are_replayed() {
        let root = folder("whole");
        let objects = shipped(&root, &["k1", "k2", "k3"]);
        let restored = restore_latest(&objects, &root.0.join("target"))
            .unwrap()
            .unwrap();
        assert_eq!(
            (restored.generation, restored.cut, restored.segments),
            (5, 3, 3)
        );
        assert!(restored.gap.is_none());
        let store = Store::open(&root.0.join("target")).unwrap();
        for key in ["k1", "k2", "k3"] {
            assert_eq!(
                store.kv().get("p", key).unwrap().as_deref(),
                Some(&b"v"[..])
            );
        }
    }

    #[test]
    fn a_missing_segment_stops_the_replay_there() {
        let root = folder("gap");
        let objects = shipped(&root, &["k1", "k2", "k3"]);
        objects.delete(&segment_key(5, 2, 2)).unwrap();
        let restored = restore_latest(&objects, &root.0.join("target"))
            .unwrap()
            .unwrap();
        assert_eq!(restored.cut, 1);
        assert!(
            restored
                .gap
                .as_deref()
                .is_some_and(|g| g.contains("cuts 2..2 missing"))
        );
        let store = Store::open(&root.0.join("target")).unwrap();
        assert!(store.kv().get("p", "k1").unwrap().is_some());
        assert!(
            store.kv().get("p", "k3").unwrap().is_none(),
            "applied past the gap"
        );
    }

    #[test]
    fn a_damaged_segment_is_refused_not_half_applied() {
        let root = folder("damaged");
        let objects = shipped(&root, &["k1", "k2"]);
        let key = segment_key(5, 2, 2);
        let mut bytes = objects.get(&key).unwrap().unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xFF;
        objects.put(&key, &bytes).unwrap();
        let error = restore_latest(&objects, &root.0.join("target")).unwrap_err();
        assert!(error.to_string().contains("unusable"), "{error}");
    }
}
