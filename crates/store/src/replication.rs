//! The state as a stream of changes, for shipping it to a standby (docs/ha.md).
//!
//! sled has no write-ahead log to copy, but it tells subscribers every insert and removal
//! of a tree, in the order each key saw them ([`sled::Tree::watch_prefix`]). A [`ChangeFeed`]
//! subscribes to every tree; its changes, replayed in order onto a copy taken before them
//! (a snapshot, [`Store::snapshot_into`]), give the same trees. Changes are absolute (a key
//! set to a value, or removed), so replaying one the snapshot already holds is harmless: a
//! snapshot can be read while the loop keeps writing.
//!
//! The shipped form of changes and snapshots is one format ([`Encoder`], [`Decoder`]): a
//! magic line, records, and an end record with the count and a hash of everything before
//! it, so a truncated or damaged object is refused, never half applied unnoticed.

use std::io::{self, Read, Write};
use std::sync::Arc;

use super::{Result, Store, StoreError};

const MAGIC: &[u8; 8] = b"SLUICER2";
const INSERT: u8 = 1;
const REMOVE: u8 = 2;
const END: u8 = 0xFF;
/// Bounds on what a decoder accepts (a damaged length must not allocate gigabytes).
const MAX_TREE_NAME: usize = 255;
const MAX_KEY: usize = 64 << 10;
/// Above any record the store writes (DAG sources are at most 8 MiB); a damaged length
/// beyond it is refused before it allocates.
const MAX_VALUE: usize = 512 << 20;

/// One write to one tree: a key set to a value, or removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    tree: Arc<str>,
    key: sled::IVec,
    value: Option<sled::IVec>,
}

/// Every tree's changes as they happen. sled blocks a writer once a subscriber holds 1,024
/// undelivered changes, so whoever owns a feed must drain it continuously.
pub struct ChangeFeed {
    subscribers: Vec<(Arc<str>, sled::Subscriber)>,
}

impl ChangeFeed {
    /// Moves every change delivered so far into `out`; returns how many. Never waits for a
    /// write still in progress: its change comes with a later drain.
    pub fn drain_into(&mut self, out: &mut Vec<Change>) -> usize {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        // Polled, not `next_timeout`: sled 0.34's `next_timeout` keeps a reservation whose
        // write turned out a no-op (dropped unfilled) as pending forever, so one no-op write
        // would stop a tree's feed; its `Future` skips such reservations.
        let mut context = Context::from_waker(Waker::noop());
        let before = out.len();
        for (tree, subscriber) in &mut self.subscribers {
            while let Poll::Ready(Some(event)) =
                std::pin::Pin::new(&mut *subscriber).poll(&mut context)
            {
                out.push(match event {
                    sled::Event::Insert { key, value } => Change {
                        tree: tree.clone(),
                        key,
                        value: Some(value),
                    },
                    sled::Event::Remove { key } => Change {
                        tree: tree.clone(),
                        key,
                        value: None,
                    },
                });
            }
        }
        out.len() - before
    }
}

/// Writes records in the shipped format.
pub struct Encoder<W: Write> {
    out: W,
    hash: Checksum,
    count: u64,
}

impl<W: Write> Encoder<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        let mut hash = Checksum::default();
        hash.update(MAGIC);
        Ok(Encoder {
            out,
            hash,
            count: 0,
        })
    }

    pub fn push(&mut self, change: &Change) -> io::Result<()> {
        self.record(&change.tree, &change.key, change.value.as_deref())
    }

    fn record(&mut self, tree: &str, key: &[u8], value: Option<&[u8]>) -> io::Result<()> {
        let mut head = Vec::with_capacity(16 + tree.len());
        head.push(if value.is_some() { INSERT } else { REMOVE });
        // Tree names are ours (short, ASCII); a longer one would not decode.
        head.push(tree.len().min(MAX_TREE_NAME) as u8);
        head.extend_from_slice(&tree.as_bytes()[..tree.len().min(MAX_TREE_NAME)]);
        head.extend_from_slice(&(key.len() as u32).to_be_bytes());
        self.write(&head)?;
        self.write(key)?;
        if let Some(value) = value {
            self.write(&(value.len() as u32).to_be_bytes())?;
            self.write(value)?;
        }
        self.count += 1;
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.out.write_all(bytes)
    }

    /// Writes the end record; returns the writer and the number of records.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        let mut end = vec![END];
        end.extend_from_slice(&self.count.to_be_bytes());
        self.hash.update(&end);
        end.extend_from_slice(&self.hash.value().to_be_bytes());
        self.out.write_all(&end)?;
        self.out.flush()?;
        Ok((self.out, self.count))
    }
}

/// Why shipped bytes were refused.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a Sluice state object (bad magic)")]
    Magic,
    #[error("truncated after {0} record(s)")]
    Truncated(u64),
    #[error("damaged: {0}")]
    Damaged(String),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads records in the shipped format, checking the end record.
pub struct Decoder<R: Read> {
    input: R,
    hash: Checksum,
    count: u64,
    ended: bool,
}

impl<R: Read> Decoder<R> {
    pub fn new(mut input: R) -> std::result::Result<Self, DecodeError> {
        let mut magic = [0u8; 8];
        input
            .read_exact(&mut magic)
            .map_err(|_| DecodeError::Magic)?;
        if &magic != MAGIC {
            return Err(DecodeError::Magic);
        }
        let mut hash = Checksum::default();
        hash.update(&magic);
        Ok(Decoder {
            input,
            hash,
            count: 0,
            ended: false,
        })
    }

    fn read(&mut self, len: usize) -> std::result::Result<Vec<u8>, DecodeError> {
        let mut buf = vec![0u8; len];
        self.input
            .read_exact(&mut buf)
            .map_err(|_| DecodeError::Truncated(self.count))?;
        self.hash.update(&buf);
        Ok(buf)
    }

    fn read_len(&mut self, limit: usize, what: &str) -> std::result::Result<usize, DecodeError> {
        let bytes = self.read(4)?;
        let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
        if len > limit {
            return Err(DecodeError::Damaged(format!(
                "a {what} of {len} bytes (at most {limit})"
            )));
        }
        Ok(len)
    }

    /// The next change; `None` after a verified end record.
    pub fn next_change(&mut self) -> std::result::Result<Option<Change>, DecodeError> {
        if self.ended {
            return Ok(None);
        }
        let tag = self.read(1)?[0];
        match tag {
            INSERT | REMOVE => {
                let name_len = self.read(1)?[0] as usize;
                let name = String::from_utf8(self.read(name_len)?)
                    .map_err(|_| DecodeError::Damaged("a tree name is not UTF-8".into()))?;
                let key_len = self.read_len(MAX_KEY, "key")?;
                let key = self.read(key_len)?;
                let value = if tag == INSERT {
                    let len = self.read_len(MAX_VALUE, "value")?;
                    Some(self.read(len)?.into())
                } else {
                    None
                };
                self.count += 1;
                Ok(Some(Change {
                    tree: name.into(),
                    key: key.into(),
                    value,
                }))
            }
            END => {
                let count = self.read(8)?;
                let expected = u64::from_be_bytes(count.as_slice().try_into().unwrap_or_default());
                let mut hash = [0u8; 8];
                self.input
                    .read_exact(&mut hash)
                    .map_err(|_| DecodeError::Truncated(self.count))?;
                if expected != self.count || u64::from_be_bytes(hash) != self.hash.value() {
                    return Err(DecodeError::Damaged(format!(
                        "the end record says {expected} record(s) and another hash; read {}",
                        self.count
                    )));
                }
                self.ended = true;
                Ok(None)
            }
            other => Err(DecodeError::Damaged(format!("unknown record tag {other}"))),
        }
    }
}

/// CRC-32 over a stream (SIMD where the CPU has it: shipping hashes every byte it ships).
#[derive(Default)]
struct Checksum(crc32fast::Hasher);

impl Checksum {
    fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn value(&self) -> u64 {
        u64::from(self.0.clone().finalize())
    }
}

impl Store {
    /// Subscribes to every tree. Changes made before this call are not in the feed: take a
    /// snapshot after it.
    pub fn change_feed(&self) -> ChangeFeed {
        let subscribers = self
            .db
            .tree_names()
            .into_iter()
            .filter_map(|name| {
                let tree = Store::tree_named(&self.db, &name).ok()?;
                let name: Arc<str> = String::from_utf8_lossy(&name).into();
                Some((name, tree.watch_prefix(Vec::<u8>::new())))
            })
            .collect();
        ChangeFeed { subscribers }
    }

    /// Writes every record of every tree as a change; returns how many. Reads while others
    /// write: each key is read once, at some moment of the copy (see the module's note).
    pub fn snapshot_into<W: Write>(&self, out: W) -> Result<(W, u64)> {
        let io = |source| StoreError::Io {
            path: self.root.join("snapshot"),
            source,
        };
        let mut encoder = Encoder::new(out).map_err(io)?;
        for name in self.db.tree_names() {
            let tree = Store::tree_named(&self.db, &name)?;
            let tree_name = String::from_utf8_lossy(&name).into_owned();
            for entry in tree.iter() {
                let (key, value) = entry?;
                encoder.record(&tree_name, &key, Some(&value)).map_err(io)?;
            }
        }
        encoder.finish().map_err(io)
    }

    /// Applies shipped changes in order (a snapshot's, then the log's), without flushing.
    pub fn apply_changes<R: Read>(
        &self,
        decoder: &mut Decoder<R>,
    ) -> std::result::Result<u64, ReplayError> {
        let mut applied = 0;
        let mut tree: Option<(Arc<str>, sled::Tree)> = None;
        while let Some(change) = decoder.next_change()? {
            let same = tree.as_ref().is_some_and(|(name, _)| *name == change.tree);
            if !same {
                let opened = Store::tree_named(&self.db, change.tree.as_bytes())?;
                tree = Some((change.tree.clone(), opened));
            }
            if let Some((_, target)) = &tree {
                match change.value {
                    Some(value) => target.insert(change.key, value)?,
                    None => target.remove(change.key)?,
                };
            }
            applied += 1;
        }
        Ok(applied)
    }
}

/// Why a replay stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for ReplayError {
    fn from(error: sled::Error) -> Self {
        ReplayError::Store(StoreError::Sled(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(store: &Store) -> Vec<u8> {
        let (bytes, _) = store.snapshot_into(Vec::new()).unwrap();
        bytes
    }

    #[test]
    fn a_snapshot_plus_the_changes_after_it_rebuild_the_trees() {
        let dir = std::env::temp_dir().join(format!("sluice-repl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let source = Store::open(&dir.join("a")).unwrap();
        let mut feed = source.change_feed();
        source.kv().put("p", "k1", b"one").unwrap();
        let snapshot = roundtrip(&source);
        source.kv().put("p", "k1", b"two").unwrap();
        source.db.insert("k2", b"x".as_slice()).unwrap();
        source.db.remove("k2").unwrap();
        let mut changes = Vec::new();
        feed.drain_into(&mut changes);
        // The feed began before the snapshot: replaying its first change again is harmless.
        assert!(changes.len() >= 4, "{changes:?}");
        let mut log = Encoder::new(Vec::new()).unwrap();
        for change in &changes {
            log.push(change).unwrap();
        }
        let (log, _) = log.finish().unwrap();

        let target = Store::open(&dir.join("b")).unwrap();
        target
            .apply_changes(&mut Decoder::new(snapshot.as_slice()).unwrap())
            .unwrap();
        target
            .apply_changes(&mut Decoder::new(log.as_slice()).unwrap())
            .unwrap();
        assert_eq!(
            target.kv().get("p", "k1").unwrap().as_deref(),
            Some(&b"two"[..])
        );
        assert_eq!(target.db.get("k2").unwrap(), None);
        assert!(target.db.get("schema_version").unwrap().is_some());
        assert_eq!(roundtrip(&source), roundtrip(&target));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_write_that_changes_nothing_does_not_stop_the_feed() {
        let dir = std::env::temp_dir().join(format!("sluice-repl-n-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Store::open(&dir).unwrap();
        let mut feed = store.change_feed();
        store.db.insert("k", b"same".as_slice()).unwrap();
        // The same value again: sled drops the subscriber's reservation unfilled.
        store.db.insert("k", b"same".as_slice()).unwrap();
        store.db.insert("after", b"x".as_slice()).unwrap();
        let mut changes = Vec::new();
        feed.drain_into(&mut changes);
        let keys: Vec<&[u8]> = changes.iter().map(|c| c.key.as_ref()).collect();
        assert_eq!(keys, vec![&b"k"[..], &b"after"[..]]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn damaged_or_truncated_objects_are_refused() {
        let dir = std::env::temp_dir().join(format!("sluice-repl-d-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let source = Store::open(&dir).unwrap();
        source.kv().put("p", "k", b"value").unwrap();
        let bytes = roundtrip(&source);
        let drain = |bytes: &[u8]| -> std::result::Result<u64, DecodeError> {
            let mut decoder = Decoder::new(bytes)?;
            let mut n = 0;
            while decoder.next_change()?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        assert!(drain(&bytes).unwrap() > 0);
        assert!(matches!(
            drain(&bytes[..bytes.len() - 3]),
            Err(DecodeError::Truncated(_))
        ));
        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 0x40;
        assert!(drain(&flipped).is_err());
        assert!(matches!(drain(b"garbage!"), Err(DecodeError::Magic)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
