//! One logical change, written atomically: a log's entries with their rows, and the rows of
//! the tables derived from them (a document and its index entries) — one fjall batch, so after
//! a crash the derived tables are exactly as consistent with the log as before it.

use std::sync::Arc;

use bytes::Bytes;

use crate::StoreError;
use crate::store::{ClockKey, Hash, Inner, NewEntry, clock_row_key, key2, link_key};

/// A table of rows derived from logs. Keys are the caller's (ordered byte strings: a program's
/// address, then its own key layout); the store keeps them in byte order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Table {
    /// Current documents, by program and document id.
    Documents,
    /// Index entries (an ordered encoding of field values, then the document id).
    Index,
    /// Program definitions by address (kept so a program opens again without asking peers).
    Programs,
    /// Sharded stores' entries by ring point (program, point, entry hash): what a replicator
    /// holds in a span of the ring, for reconciliation and pruning.
    Points,
}

/// A batch being built (see the module docs). Nothing is written until [`WriteBatch::commit`];
/// dropping it writes nothing.
pub struct WriteBatch {
    inner: Arc<Inner>,
    batch: fjall::OwnedWriteBatch,
}

impl std::fmt::Debug for WriteBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteBatch").finish_non_exhaustive()
    }
}

impl WriteBatch {
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        let batch = inner.db.batch().durability(inner.persist);
        WriteBatch { inner, batch }
    }

    /// Adds entries of `log` with their index rows (clock order, reverse links, heads), and
    /// drops the heads they supersede.
    pub fn entries(&mut self, log: &[u8; 32], entries: &[NewEntry<'_>], drop_heads: &[Hash]) {
        let s = &*self.inner;
        for h in drop_heads {
            self.batch.remove(&s.heads, key2(log, h));
        }
        for e in entries {
            let size = (e.header.len() + e.payload.len()) as u64;
            self.batch
                .insert(&s.entries, e.hash.to_vec(), e.header.clone());
            self.batch
                .insert(&s.payloads, e.hash.to_vec(), e.payload.clone());
            self.batch.insert(
                &s.clock,
                clock_row_key(log, &e.clock, &e.hash),
                size.to_be_bytes().to_vec(),
            );
            for parent in e.next {
                self.batch
                    .insert(&s.links, link_key(log, parent, &e.hash), Vec::new());
            }
            if e.is_head {
                self.batch.insert(&s.heads, key2(log, &e.hash), Vec::new());
            }
        }
    }

    /// Removes a stored entry of `log` with its own rows (header, payload, clock row, head row,
    /// the links it and its children made): pruning an entry held elsewhere. The derived rows
    /// are the caller's to remove in the same batch.
    pub fn remove_entry(
        &mut self,
        log: &[u8; 32],
        clock: &ClockKey,
        hash: &Hash,
        next: &[Hash],
    ) -> Result<(), StoreError> {
        let s = &*self.inner;
        self.batch.remove(&s.entries, hash.to_vec());
        self.batch.remove(&s.payloads, hash.to_vec());
        self.batch.remove(&s.clock, clock_row_key(log, clock, hash));
        self.batch.remove(&s.heads, key2(log, hash));
        for parent in next {
            self.batch.remove(&s.links, link_key(log, parent, hash));
        }
        for child in s.links.prefix(key2(log, hash)) {
            self.batch.remove(&s.links, child.key()?.to_vec());
        }
        Ok(())
    }

    /// Sets the row at `key` in `table`.
    pub fn put(&mut self, table: Table, key: &[u8], value: Bytes) {
        self.batch
            .insert(self.inner.table(table), key.to_vec(), value);
    }

    /// Removes the row at `key` in `table` (nothing if there is none).
    pub fn delete(&mut self, table: Table, key: &[u8]) {
        self.batch.remove(self.inner.table(table), key.to_vec());
    }

    /// Writes everything added, atomically (durable per the store's `Durability`).
    pub fn commit(self) -> Result<(), StoreError> {
        self.batch.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CLOCK_KEY_LEN, Durability, Store, StoreConfig};

    fn open(dir: &std::path::Path) -> Store {
        Store::open(
            dir,
            StoreConfig {
                durability: Durability::Buffered,
                ..StoreConfig::default()
            },
        )
        .unwrap()
    }

    fn keys(rows: impl Iterator<Item = Result<(Bytes, Bytes), StoreError>>) -> Vec<Vec<u8>> {
        rows.map(|r| r.unwrap().0.to_vec()).collect()
    }

    /// An entry, its document row and its index rows land together, or (batch dropped) not at
    /// all; reopening keeps them.
    #[test]
    fn an_entry_and_its_derived_rows_commit_together() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let log = [3u8; 32];
        let entry = NewEntry {
            hash: [9; 32],
            header: Bytes::from_static(b"h"),
            payload: Bytes::from_static(b"p"),
            clock: [1; CLOCK_KEY_LEN],
            next: &[],
            is_head: true,
        };
        let mut dropped = store.batch();
        dropped.entries(&log, std::slice::from_ref(&entry), &[]);
        dropped.put(Table::Documents, b"p/doc-1", Bytes::from_static(b"v1"));
        drop(dropped);
        assert!(!store.contains(&[9; 32]).unwrap());
        assert_eq!(store.row(Table::Documents, b"p/doc-1").unwrap(), None);

        let mut batch = store.batch();
        batch.entries(&log, std::slice::from_ref(&entry), &[]);
        batch.put(Table::Documents, b"p/doc-1", Bytes::from_static(b"v1"));
        batch.put(Table::Index, b"p/title/apple/doc-1", Bytes::new());
        batch.commit().unwrap();
        drop(store);
        let store = open(dir.path());
        assert!(store.contains(&[9; 32]).unwrap());
        assert_eq!(
            store.row(Table::Documents, b"p/doc-1").unwrap().as_deref(),
            Some(&b"v1"[..])
        );
        let mut change = store.batch();
        change.delete(Table::Index, b"p/title/apple/doc-1");
        change.put(Table::Index, b"p/title/pear/doc-1", Bytes::new());
        change.commit().unwrap();
        assert_eq!(
            keys(store.rows(Table::Index, b"p/", false)),
            [b"p/title/pear/doc-1".to_vec()]
        );
    }

    #[test]
    fn rows_come_in_key_order_both_ways_and_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path());
        let mut batch = store.batch();
        for k in [&b"a/3"[..], b"a/1", b"b/1", b"a/2", b"a/20"] {
            batch.put(Table::Index, k, Bytes::new());
        }
        batch.commit().unwrap();
        let a = |v: &[&[u8]]| v.iter().map(|k| k.to_vec()).collect::<Vec<_>>();
        assert_eq!(
            keys(store.rows(Table::Index, b"a/", false)),
            a(&[b"a/1", b"a/2", b"a/20", b"a/3"])
        );
        assert_eq!(
            keys(store.rows(Table::Index, b"a/", true)),
            a(&[b"a/3", b"a/20", b"a/2", b"a/1"])
        );
        assert_eq!(
            keys(store.rows_between(Table::Index, b"a/2", Some(b"a/3"), false)),
            a(&[b"a/2", b"a/20"])
        );
        assert_eq!(
            keys(store.rows_between(Table::Index, b"a/20", None, true)),
            a(&[b"b/1", b"a/3", b"a/20"])
        );
        assert!(store.rows(Table::Documents, b"a/", false).next().is_none());
    }
}
