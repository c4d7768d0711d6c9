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
/// Most keys one DAG's plugins may keep: with the value bound, at most 10 GiB per DAG, in
/// practice far less (plugins keep watermarks and checkpoints, not data).
pub const MAX_KEYS_PER_DAG: usize = 10_000;

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
        let scoped_key = scoped(dag, key);
        if !self.tree.contains_key(&scoped_key)? && self.keys_of(dag)? >= MAX_KEYS_PER_DAG {
            return Err(StoreError::TooLarge {
                what: "the DAG's kv store",
                detail: format!(
                    "it holds {MAX_KEYS_PER_DAG} keys, the most a DAG may keep; \
                     overwrite keys instead of adding new ones"
                ),
            });
        }
        if self.tree.insert(scoped_key, value)?.is_none() {
            self.tree.update_and_fetch(count_key(dag), |count| {
                Some(encode(count.map_or(0, decode).saturating_add(1)).to_vec())
            })?;
        }
        Ok(())
    }

    /// How many keys the DAG holds: its counter, made once by counting (stores from before
    /// the counter), bounded by the quota.
    fn keys_of(&self, dag: &str) -> Result<usize> {
        if let Some(count) = self.tree.get(count_key(dag))? {
            return Ok(decode(&count));
        }
        let counted = self
            .tree
            .scan_prefix(scoped(dag, ""))
            .take(MAX_KEYS_PER_DAG)
            .count();
        self.tree.insert(count_key(dag), &encode(counted))?;
        Ok(counted)
    }
}

/// `0x01 <dag>`: a DAG's key count. No DAG id starts with 0x01, so no entry collides.
fn count_key(dag: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(dag.len() + 1);
    k.push(1);
    k.extend_from_slice(dag.as_bytes());
    k
}

fn encode(count: usize) -> [u8; 8] {
    (count as u64).to_be_bytes()
}

fn decode(bytes: &[u8]) -> usize {
    bytes
        .try_into()
        .map(u64::from_be_bytes)
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// `<dag> NUL <key>`: DAG ids cannot hold NUL, so no DAG can reach another's keys.
fn scoped(dag: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(dag.len() + 1 + key.len());
    k.extend_from_slice(dag.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dag_keeps_at_most_its_quota_of_keys_and_may_overwrite_them() -> Result<()> {
        let db = sled::Config::new().temporary(true).open()?;
        let kv = KvStore::new(db.open_tree("kv")?);
        for i in 0..MAX_KEYS_PER_DAG {
            kv.put("d", &format!("k{i}"), b"v")?;
        }
        let refused = kv.put("d", "one-more", b"v").err().map(|e| e.to_string());
        assert!(
            refused
                .as_deref()
                .is_some_and(|e| e.contains("the most a DAG may keep")),
            "{refused:?}"
        );
        // Overwriting is fine, and another DAG has its own quota.
        kv.put("d", "k0", b"w")?;
        assert_eq!(kv.get("d", "k0")?, Some(b"w".to_vec()));
        kv.put("e", "k0", b"v")?;
        Ok(())
    }
}
