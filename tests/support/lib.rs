//! The one home of what Sluice's integration tests share: the repository's folders, temp
//! folders, the `sluice` binary's command lines, plain HTTP, and the services `scripts/test`
//! starts (ClickHouse, the EMR emulator, the Kafka-protocol broker) with a TCP fault proxy
//! to put in front of them. It links no layer crate above the model, so every crate's tests
//! can use it.

pub mod clickhouse;
pub mod commands;
pub mod emr;
pub mod fault_proxy;
pub mod ha;
mod http;
pub mod kafka;

use std::path::{Path, PathBuf};

pub use http::{exchange, http};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    repo_root().join("tests").join("fixtures").join(name)
}

/// A fresh, empty directory for one test, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "sluice-test-{name}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&path)?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> std::io::Result<PathBuf> {
        let path = self.0.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, contents)?;
        Ok(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
