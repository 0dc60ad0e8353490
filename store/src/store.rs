//! The fjall database and its keyspaces.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use bytes::Bytes;
use fjall::{
    CompressionType, Database, Keyspace, KeyspaceCreateOptions, KvSeparationOptions, PersistMode,
};

use crate::batch::{Table, WriteBatch};
use crate::{Durability, StoreConfig, StoreError};

/// Bytes of an entry hash (BLAKE3).
pub const HASH_LEN: usize = 32;
/// An entry hash.
pub type Hash = [u8; HASH_LEN];
/// Bytes of a clock key: wall time µs (u64 BE), logical counter (u32 BE), writer (32 bytes) —
/// big-endian so that byte order is clock order.
pub const CLOCK_KEY_LEN: usize = 44;
/// A clock in its sortable byte form.
pub type ClockKey = [u8; CLOCK_KEY_LEN];

/// One entry to write: what a log append or join stores, all in one batch.
#[derive(Clone, Debug)]
pub struct NewEntry<'a> {
    /// Its hash.
    pub hash: Hash,
    /// The encoded header (signatures included).
    pub header: Bytes,
    /// The payload as stored.
    pub payload: Bytes,
    /// Its clock.
    pub clock: ClockKey,
    /// The entries it follows.
    pub next: &'a [Hash],
    /// Whether it becomes a head of its log.
    pub is_head: bool,
}

/// A row of the clock index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockRow {
    /// The entry's clock.
    pub clock: ClockKey,
    /// The entry's hash.
    pub hash: Hash,
    /// Header plus payload bytes.
    pub size: u64,
}

/// Durable storage for logs. Cheap to clone; clones share the database.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) db: Database,
    pub(crate) entries: Keyspace,
    pub(crate) payloads: Keyspace,
    pub(crate) heads: Keyspace,
    pub(crate) clock: Keyspace,
    pub(crate) links: Keyspace,
    /// Rows derived from logs, by table (`Table`): documents, index entries.
    pub(crate) documents: Keyspace,
    pub(crate) index: Keyspace,
    pub(crate) programs: Keyspace,
    pub(crate) points: Keyspace,
    pub(crate) persist: Option<PersistMode>,
    syncer: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    /// Holds the directory's lock while the store is open.
    _lock: std::fs::File,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("persist", &self.persist)
            .finish_non_exhaustive()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some((stop, thread)) = self.syncer.take() {
            stop.store(true, Ordering::Release);
            thread.thread().unpark();
            let _ = thread.join();
        }
        // Whatever the durability mode, a clean shutdown leaves everything on disk.
        let _ = self.db.persist(PersistMode::SyncAll);
    }
}

impl Inner {
    pub(crate) fn table(&self, table: Table) -> &Keyspace {
        match table {
            Table::Documents => &self.documents,
            Table::Index => &self.index,
            Table::Programs => &self.programs,
            Table::Points => &self.points,
        }
    }
}

pub(crate) fn key2(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(a.len() + b.len());
    k.extend_from_slice(a);
    k.extend_from_slice(b);
    k
}

/// A `links` row: in `log`, `child` names `parent` in its `next`.
pub(crate) fn link_key(log: &[u8; 32], parent: &Hash, child: &Hash) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + 2 * HASH_LEN);
    k.extend_from_slice(log);
    k.extend_from_slice(parent);
    k.extend_from_slice(child);
    k
}

pub(crate) fn clock_row_key(log: &[u8; 32], clock: &ClockKey, hash: &Hash) -> Vec<u8> {
    let mut k = Vec::with_capacity(32 + CLOCK_KEY_LEN + HASH_LEN);
    k.extend_from_slice(log);
    k.extend_from_slice(clock);
    k.extend_from_slice(hash);
    k
}

/// A table scan's rows as (key, value), in key order or reversed.
fn key_value_rows<'a, I>(
    iter: I,
    reverse: bool,
) -> Box<dyn Iterator<Item = Result<(Bytes, Bytes), StoreError>> + 'a>
where
    I: DoubleEndedIterator<Item = fjall::Guard> + 'a,
{
    let pair = |g: fjall::Guard| -> Result<(Bytes, Bytes), StoreError> {
        let (k, v) = g.into_inner()?;
        Ok((k.into(), v.into()))
    };
    if reverse {
        Box::new(iter.rev().map(pair))
    } else {
        Box::new(iter.map(pair))
    }
}

fn corrupt(keyspace: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptRow {
        keyspace,
        reason: reason.into(),
    }
}

impl Store {
    /// Opens (or creates) the store in `dir`, recovering after a crash: fjall replays its
    /// journal and drops a torn tail, so a batch is either wholly present or absent.
    ///
    /// The directory is locked (an exclusive lock on `dir/LOCK`, released when the last
    /// handle is dropped or the process dies): a second open fails with
    /// [`StoreError::Locked`] rather than two writers sharing one database.
    pub fn open(dir: &Path, config: StoreConfig) -> Result<Store, StoreError> {
        let io = |source| StoreError::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked(dir.to_path_buf()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // No LZ4 in the journal or the blob files: payloads are media (incompressible) or were
        // compressed by the log's own per-entry probe, and fjall's LZ4 was a third of all CPU
        // in a 1 → 8 fan-out of 64 KiB documents (profile in the issue 14 note).
        let db = Database::builder(dir)
            .cache_size(config.cache_bytes)
            .journal_compression(CompressionType::None)
            .open()?;
        let small = KeyspaceCreateOptions::default;
        let entries = db.keyspace("entries", small)?;
        let payloads = db.keyspace("payloads", || {
            KeyspaceCreateOptions::default().with_kv_separation(Some(
                KvSeparationOptions::default()
                    .separation_threshold(config.blob_threshold)
                    .compression(CompressionType::None),
            ))
        })?;
        let heads = db.keyspace("heads", small)?;
        let clock = db.keyspace("clock", small)?;
        let links = db.keyspace("links", small)?;
        let documents = db.keyspace("documents", small)?;
        let index = db.keyspace("index", small)?;
        let programs = db.keyspace("programs", small)?;
        let points = db.keyspace("points", small)?;
        let (persist, syncer) = match config.durability {
            Durability::SyncEachWrite => (Some(PersistMode::SyncData), None),
            // fjall keeps its journal in a userspace buffer until told to flush: each batch
            // is flushed to the OS, so a killed process loses nothing written (found by a
            // three-process test that killed a replicator right after it applied a write).
            Durability::Buffered => (Some(PersistMode::Buffer), None),
            Durability::Periodic(every) => {
                let stop = Arc::new(AtomicBool::new(false));
                let (flag, db2) = (stop.clone(), db.clone());
                let thread = std::thread::Builder::new()
                    .name("starling-store-sync".into())
                    .spawn(move || {
                        let mut failing = false;
                        while !flag.load(Ordering::Acquire) {
                            std::thread::park_timeout(every);
                            match db2.persist(PersistMode::SyncData) {
                                // Said once, not every period: the writers report it too.
                                Err(e) if !failing => {
                                    failing = true;
                                    tracing::error!("periodic sync failed: {e}");
                                }
                                Err(_) => {}
                                Ok(()) => failing = false,
                            }
                        }
                    })
                    .map_err(|e| StoreError::Fjall(fjall::Error::Io(e)))?;
                (Some(PersistMode::Buffer), Some((stop, thread)))
            }
        };
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                entries,
                payloads,
                heads,
                clock,
                links,
                documents,
                index,
                programs,
                points,
                persist,
                syncer,
                _lock: lock,
            }),
        })
    }

    /// Writes entries and their index rows, and drops heads they supersede, as one atomic
    /// batch (durable per the configured [`Durability`] when this returns).
    pub fn write_entries(
        &self,
        log: &[u8; 32],
        entries: &[NewEntry<'_>],
        drop_heads: &[Hash],
    ) -> Result<(), StoreError> {
        let mut batch = self.batch();
        batch.entries(log, entries, drop_heads);
        batch.commit()
    }

    /// A batch for one logical change: entries and the table rows derived from them, written
    /// atomically by [`WriteBatch::commit`].
    pub fn batch(&self) -> WriteBatch {
        WriteBatch::new(self.inner.clone())
    }

    /// The row at `key` in `table`.
    pub fn row(&self, table: Table, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        Ok(self.inner.table(table).get(key)?.map(Into::into))
    }

    /// The rows of `table` whose keys start with `prefix`, in key order (or reversed).
    pub fn rows(
        &self,
        table: Table,
        prefix: &[u8],
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_> {
        key_value_rows(self.inner.table(table).prefix(prefix), reverse)
    }

    /// The rows of `table` with keys in `from..to` (`to` exclusive, `None`: to the end), in key
    /// order (or reversed): what an index range scan reads.
    pub fn rows_between(
        &self,
        table: Table,
        from: &[u8],
        to: Option<&[u8]>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_> {
        use std::ops::Bound;
        let hi = to.map_or(Bound::Unbounded, |t| Bound::Excluded(t.to_vec()));
        let iter = self
            .inner
            .table(table)
            .range::<Vec<u8>, _>((Bound::Included(from.to_vec()), hi));
        key_value_rows(iter, reverse)
    }

    /// Removes entries with all their rows (trimming), as one batch.
    pub fn remove_entries(
        &self,
        log: &[u8; 32],
        rows: &[(ClockRow, Vec<Hash>)],
    ) -> Result<(), StoreError> {
        let s = &self.inner;
        let mut batch = s.db.batch().durability(s.persist);
        for (row, next) in rows {
            batch.remove(&s.entries, row.hash.to_vec());
            batch.remove(&s.payloads, row.hash.to_vec());
            batch.remove(&s.clock, clock_row_key(log, &row.clock, &row.hash));
            batch.remove(&s.heads, key2(log, &row.hash));
            for parent in next {
                batch.remove(&s.links, link_key(log, parent, &row.hash));
            }
            for child in s.links.prefix(key2(log, &row.hash)) {
                batch.remove(&s.links, child.key()?.to_vec());
            }
        }
        batch.commit()?;
        Ok(())
    }

    /// An entry's stored header alone (no payload read: trimming needs only its links).
    pub fn header(&self, hash: &Hash) -> Result<Option<Bytes>, StoreError> {
        Ok(self.inner.entries.get(hash)?.map(Into::into))
    }

    /// An entry's header and stored payload.
    pub fn entry(&self, hash: &Hash) -> Result<Option<(Bytes, Bytes)>, StoreError> {
        let Some(header) = self.inner.entries.get(hash)? else {
            return Ok(None);
        };
        let payload = self
            .inner
            .payloads
            .get(hash)?
            .ok_or_else(|| corrupt("payloads", "entry without payload"))?;
        Ok(Some((header.into(), payload.into())))
    }

    /// Hashes of stored entries that start with `prefix`, at most `limit` of them (what a
    /// peer asking for entries by hash prefix names).
    pub fn hashes_with_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<Hash>, StoreError> {
        let mut out = Vec::new();
        for g in self.inner.entries.prefix(prefix).take(limit) {
            let key = g.key()?;
            if let Ok(h) = Hash::try_from(&key[..]) {
                out.push(h);
            }
        }
        Ok(out)
    }

    /// An entry's stored payload alone (one read: for a caller that knows how it is stored).
    pub fn payload(&self, hash: &Hash) -> Result<Option<Bytes>, StoreError> {
        Ok(self.inner.payloads.get(hash)?.map(Into::into))
    }

    /// Whether an entry is stored.
    pub fn contains(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.inner.entries.contains_key(hash)?)
    }

    /// The heads of a log, in hash order.
    pub fn heads(&self, log: &[u8; 32]) -> Result<Vec<Hash>, StoreError> {
        self.inner
            .heads
            .prefix(log)
            .map(|g| {
                let key = g.key()?;
                key.get(32..)
                    .and_then(|h| Hash::try_from(h).ok())
                    .ok_or_else(|| corrupt("heads", "bad key length"))
            })
            .collect()
    }

    /// Whether any stored entry of `log` names `hash` in its `next`. Per log: an entry of
    /// another log naming it (any writer may) must not make it stop being a head here.
    pub fn has_children(&self, log: &[u8; 32], hash: &Hash) -> Result<bool, StoreError> {
        match self.inner.links.prefix(key2(log, hash)).next() {
            Some(g) => g.key().map(|_| true).map_err(StoreError::from),
            None => Ok(false),
        }
    }

    /// The clock index of a log, oldest first (or newest first with `reverse`), starting at
    /// `from` (inclusive) when given.
    pub fn clock_rows(
        &self,
        log: &[u8; 32],
        from: Option<&ClockKey>,
        reverse: bool,
    ) -> Box<dyn Iterator<Item = Result<ClockRow, StoreError>> + '_> {
        let lo = key2(log, from.filter(|_| !reverse).map_or(&[][..], |c| &c[..]));
        let mut hi = log.to_vec();
        match from.filter(|_| reverse) {
            Some(c) => {
                hi.extend_from_slice(c);
                hi.extend_from_slice(&[0xff; HASH_LEN]);
            }
            None => hi.extend_from_slice(&[0xff; CLOCK_KEY_LEN + HASH_LEN]),
        }
        let iter = self.inner.clock.range(lo..=hi);
        let parse = |g: fjall::Guard| -> Result<ClockRow, StoreError> {
            let (k, v) = g.into_inner()?;
            let bad = || corrupt("clock", "bad row layout");
            let clock = ClockKey::try_from(k.get(32..32 + CLOCK_KEY_LEN).ok_or_else(bad)?)
                .map_err(|_| bad())?;
            let hash =
                Hash::try_from(k.get(32 + CLOCK_KEY_LEN..).ok_or_else(bad)?).map_err(|_| bad())?;
            let size = u64::from_be_bytes(<[u8; 8]>::try_from(&v[..]).map_err(|_| bad())?);
            Ok(ClockRow { clock, hash, size })
        };
        if reverse {
            Box::new(iter.rev().map(parse))
        } else {
            Box::new(iter.map(parse))
        }
    }

    /// Forces everything written so far to disk.
    pub fn sync(&self) -> Result<(), StoreError> {
        Ok(self.inner.db.persist(PersistMode::SyncData)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Durability, StoreConfig};

    fn entry<'a>(hash: u8, next: &'a [Hash]) -> NewEntry<'a> {
        NewEntry {
            hash: [hash; 32],
            header: Bytes::from_static(b"h"),
            payload: Bytes::from_static(b"p"),
            clock: [hash; CLOCK_KEY_LEN],
            next,
            is_head: true,
        }
    }

    /// Links are per log: an entry of log B naming log A's entry (any writer may name any
    /// hash) does not make it a non-head of A; trimming B removes B's rows only.
    #[test]
    fn another_logs_entry_naming_ours_does_not_give_it_children() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            StoreConfig {
                durability: Durability::Buffered,
                ..StoreConfig::default()
            },
        )
        .unwrap();
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let ours = [10u8; 32];
        store.write_entries(&a, &[entry(10, &[])], &[]).unwrap();
        let names_ours = [ours];
        store
            .write_entries(&b, &[entry(20, &names_ours)], &[])
            .unwrap();
        assert!(!store.has_children(&a, &ours).unwrap(), "not in log A");
        assert!(store.has_children(&b, &ours).unwrap(), "log B's own link");
        let mine = [ours];
        store
            .write_entries(&a, &[entry(11, &mine)], &[ours])
            .unwrap();
        assert!(store.has_children(&a, &ours).unwrap());
        let row = store.clock_rows(&b, None, false).next().unwrap().unwrap();
        store.remove_entries(&b, &[(row, vec![ours])]).unwrap();
        assert!(!store.has_children(&b, &ours).unwrap());
        assert!(store.has_children(&a, &ours).unwrap(), "A's link stays");
    }

    /// One directory, one open store: a second open is refused while the first lives, and
    /// succeeds once it is gone. Hash-prefix lookups find the entries that start with it.
    #[test]
    fn a_directory_is_locked_while_open_and_prefixes_find_entries() {
        let dir = tempfile::tempdir().unwrap();
        let config = || StoreConfig {
            durability: Durability::Buffered,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config()).unwrap();
        assert!(matches!(
            Store::open(dir.path(), config()),
            Err(StoreError::Locked(p)) if p == dir.path()
        ));
        store
            .write_entries(&[1; 32], &[entry(0xab, &[]), entry(0xac, &[])], &[])
            .unwrap();
        assert_eq!(
            store.hashes_with_prefix(&[0xab, 0xab], 10).unwrap(),
            [[0xab; 32]]
        );
        assert_eq!(store.hashes_with_prefix(&[0xad], 10).unwrap().len(), 0);
        drop(store);
        let store = Store::open(dir.path(), config()).unwrap();
        assert!(store.contains(&[0xac; 32]).unwrap());
    }
}
