//! Rebuilding the state from what was shipped: the newest generation's newest complete
//! snapshot, then its segments in order; a generation without a snapshot yet is its
//! parent's state (up to the cut it was taken at) plus its own segments.

use std::path::Path;

use serde::Serialize;
use sluice_store::Store;
use sluice_store::replication::Decoder;

use super::ship::{
    Parent, SnapshotManifest, generation_folder, parse_generation, parse_segment, snapshot_key,
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
            && objects
                .get(&format!("{}/parent.json", generation_folder(token)))?
                .is_some()
        {
            found.push(token);
        }
    }
    found.sort_unstable();
    Ok(found)
}

/// The complete snapshots of a generation, oldest first.
pub fn snapshots(objects: &dyn Objects, token: i64) -> Result<Vec<SnapshotManifest>, TargetError> {
    let mut found = Vec::new();
    for name in objects.list(&format!("{}/snap", generation_folder(token)))? {
        let Some(cut) = name.strip_suffix(".json") else {
            continue;
        };
        let Ok(cut) = u64::from_str_radix(cut, 16) else {
            continue;
        };
        if let Some(bytes) = objects.get(&snapshot_key(token, cut, "json"))?
            && let Ok(manifest) = serde_json::from_slice::<SnapshotManifest>(&bytes)
        {
            found.push(manifest);
        }
    }
    found.sort_by_key(|m| m.cut);
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
            let key = format!("{}/parent.json", generation_folder(token));
            let parent: Parent = objects
                .get(&key)?
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .ok_or_else(|| unusable(key.clone(), "no parent record"))?;
            match parent.from {
                Some((parent_token, parent_cut)) => {
                    replay(objects, store, parent_token, Some(parent_cut), restored)?
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
