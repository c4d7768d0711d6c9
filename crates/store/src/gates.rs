//! What the Kafka gate monitor remembers of each watched topic and group (the lag window,
//! each partition's event time and last append), in the `gate_memory` tree, so that a
//! restarted scheduler is not blind: Burrow's rules need a window of history, and an idle
//! partition must stay idle across a restart.
//!
//! Written by the scheduler loop with what each look sends back (the monitor thread holds
//! no store); made durable by the loop's next flush.

use super::Result;

/// Handle to the tree; cheap to clone and safe to share between threads.
#[derive(Clone)]
pub struct GateMemoryStore {
    tree: sled::Tree,
}

impl GateMemoryStore {
    pub(super) fn new(tree: sled::Tree) -> Self {
        GateMemoryStore { tree }
    }

    /// The memory of a source (`connection`, `topic`, `group`), as the monitor saved it.
    pub fn get(&self, source: &[&str; 3]) -> Result<Option<Vec<u8>>> {
        Ok(self.tree.get(key(source))?.map(|v| v.to_vec()))
    }

    pub fn put(&self, source: &[&str; 3], memory: &[u8]) -> Result<()> {
        self.tree.insert(key(source), memory)?;
        Ok(())
    }
}

/// Parts joined by NUL, which none of them can hold.
fn key(source: &[&str; 3]) -> Vec<u8> {
    source.join("\0").into_bytes()
}
