//! Backups of the state: a copy of every tree into a fresh sled database in a folder of its
//! own, with a manifest. Taken by the process that holds the state — the scheduler takes it
//! inside its loop (between iterations), so the loop's trees are one consistent moment —
//! and restored into a state folder no process holds, which must have no database yet.
//! Attempt logs and the plugin cache are not part of it (the logs are diagnostics; the cache
//! is rebuilt).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Result, SCHEMA_VERSION, Store, StoreError};

const MANIFEST: &str = "backup.json";

/// What a backup holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupManifest {
    pub created_at: DateTime<Utc>,
    pub sluice_version: String,
    pub schema_version: u32,
    /// Trees copied and their record counts.
    pub trees: Vec<(String, usize)>,
}

impl BackupManifest {
    pub fn runs(&self) -> usize {
        self.trees
            .iter()
            .find(|(name, _)| name == "runs")
            .map_or(0, |(_, n)| *n)
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn refuse(what: &'static str, detail: String) -> StoreError {
    StoreError::Corrupt { what, detail }
}

/// Copies every tree of `from` into `to` (a fresh database); returns the trees and counts.
fn copy(from: &sled::Db, to: &sled::Db) -> Result<Vec<(String, usize)>> {
    let mut trees = Vec::new();
    for name in from.tree_names() {
        let source = Store::tree_named(from, &name)?;
        let target = Store::tree_named(to, &name)?;
        let mut count = 0;
        for entry in source.iter() {
            let (key, value) = entry?;
            target.insert(key, value)?;
            count += 1;
        }
        trees.push((String::from_utf8_lossy(&name).into_owned(), count));
    }
    to.flush()?;
    Ok(trees)
}

fn empty_folder(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut entries| entries.next().is_none())
}

impl Store {
    /// Writes a backup into `folder`, which must not exist or be empty.
    pub fn backup_to(&self, folder: &Path) -> Result<BackupManifest> {
        if !empty_folder(folder) {
            return Err(refuse(
                "backup folder",
                format!("{} exists and is not empty", folder.display()),
            ));
        }
        std::fs::create_dir_all(folder).map_err(io(folder))?;
        crate::private(folder)?;
        let db_dir = folder.join("db");
        let target = sled::Config::new().path(&db_dir).open()?;
        let trees = copy(&self.db, &target)?;
        drop(target);
        let manifest = BackupManifest {
            created_at: Utc::now(),
            sluice_version: env!("CARGO_PKG_VERSION").to_owned(),
            schema_version: SCHEMA_VERSION,
            trees,
        };
        let path = folder.join(MANIFEST);
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| refuse("backup manifest", e.to_string()))?;
        std::fs::write(&path, text).map_err(io(&path))?;
        Ok(manifest)
    }

    /// Restores a backup into the state folder `state`, which no process may hold and which
    /// must have no database yet. Returns the backup's manifest.
    pub fn restore_from(backup: &Path, state: &Path) -> Result<BackupManifest> {
        let manifest_path = backup.join(MANIFEST);
        let text = std::fs::read_to_string(&manifest_path).map_err(io(&manifest_path))?;
        let manifest: BackupManifest = serde_json::from_str(&text).map_err(|e| {
            refuse(
                "backup manifest",
                format!("{}: {e}", manifest_path.display()),
            )
        })?;
        if manifest.schema_version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                found: manifest.schema_version,
                supported: SCHEMA_VERSION,
            });
        }
        let db_dir: PathBuf = state.join("db");
        if !empty_folder(&db_dir) {
            return Err(refuse(
                "state folder",
                format!(
                    "{} already has a database; restore into a new state folder (or move it away first)",
                    state.display()
                ),
            ));
        }
        let source = sled::Config::new().path(backup.join("db")).open()?;
        // Opening takes the state's lock: a running scheduler on `state` makes this fail.
        let store = Store::open(state)?;
        copy(&source, &store.db)?;
        store.flush()?;
        Ok(manifest)
    }
}
