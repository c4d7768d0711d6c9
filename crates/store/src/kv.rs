//! The plugins' key-value store: one namespace per DAG, in the `kv` tree.
//!
//! Plugins write from executor threads, outside the scheduler's group commit; sled keeps the
//! write in memory until the next flush, and the scheduler flushes before it records the
//! attempt's outcome. So a `kv_put` is durable no later than the attempt that made it.

use super::{Result, StoreError};

/// Largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest value, in bytes.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Handle to the key-value tree; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct KvStore {
    tree: sled::Tree,
}

impl KvStore {
    pub(super) fn new(tree: sled::Tree) -> KvStore {
        KvStore { tree }
    }

    pub fn get(&self, dag: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(scoped(dag, key))?.map(|v| v.to_vec()))
    }

    pub fn put(&self, dag: &str, key: &str, value: &[u8]) -> Result<()> {
        if key.len() > MAX_KEY_BYTES || value.len() > MAX_VALUE_BYTES {
            return Err(StoreError::TooLarge {
                what: "a kv entry",
                detail: format!(
                    "key of {} bytes and value of {} bytes; the limits are {MAX_KEY_BYTES} and {MAX_VALUE_BYTES}",
                    key.len(),
                    value.len()
                ),
            });
        }
        self.tree.insert(scoped(dag, key), value)?;
        Ok(())
    }
}

/// `<dag> NUL <key>`: DAG ids cannot hold NUL, so no DAG can reach another's keys.
fn scoped(dag: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(dag.len() + 1 + key.len());
    k.extend_from_slice(dag.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}
