//! `Documents<T>`: a program's documents on this peer — put, get, delete, count — each change a
//! signed entry committed with the document row and its index rows in **one** store batch.
//!
//! An entry of the program's log (log id = the program's address) carries: group = the
//! document's group ([`DocId::group`]), `next` = the document's previous version (its chain),
//! meta = op ‖ id key, payload = the codec's bytes (empty for a delete). The document row (key:
//! program ‖ id key) holds the current version: its entry hash, its clock and whether it is
//! live or deleted; index rows (program ‖ field name key ‖ value key ‖ id key → the head's
//! hash, so a scan reads documents without their document rows) are derived from the
//! live version. Document logs keep their heads in document rows, not in the log's heads
//! (with 100,000 documents those would be 100,000).
//!
//! Replicated entries are verified and applied here too ([`Documents::apply_many_at`]);
//! concurrent versions resolve by (clock, writer, hash) on every peer. Moving entries between
//! peers is [`super::replica`]'s.

mod apply;
mod encrypted;
mod search;
mod write;

pub(crate) use search::{Candidate, Reader};

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use starling_net::crypto::{CryptoError, Opener, Receivers, Sealer};
use starling_net::entry::FLAG_ENCRYPTED;
use starling_net::entry::{
    Entry, EntryError, EntryHash, EntrySigner, EntryVerifier, LogId, session, unix_time_us,
};
use starling_net::identity::Keypair;
use starling_store::{Store, StoreError, Table};

use super::access::{Access, AccessRule, Operation};
use super::codec::{Codec, CodecError, DocId, Postcard};
use super::index::{IndexSpec, IndexVisibility};
use super::keys::{self, IndexValue, KeyError, encode_published};
use super::query::Query;
use crate::log::HybridClock;
use crate::program::ProgramAddress;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const LIVE: u8 = 1;
const DELETED: u8 = 0;
/// Document row value: head hash, clock key, state.
const ROW_LEN: usize = 32 + 44 + 1;
/// The layout of document and index rows; a store written by another rebuilds on open.
const INDEX_FORMAT: u8 = 5;
/// The key suffix (after the program) of the format row: below every id key's tag.
const FORMAT_ROW: u8 = 0x00;

/// What can go wrong with documents.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// Encoding or decoding a document.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Signing or reading an entry failed.
    #[error("entry: {0}")]
    Entry(#[from] EntryError),
    /// A stored row is not what this version writes.
    #[error("corrupt document row: {0}")]
    Corrupt(String),
    /// An id whose key does not fit in an entry's meta.
    #[error("document id of {0} key bytes is too long")]
    IdTooLong(usize),
    /// The store is immutable and the document exists.
    #[error("document {0} exists and the store is immutable")]
    Immutable(DocId),
    /// The access rule refuses this writer this operation.
    #[error("the access rule refuses {op:?} on document {id}")]
    Denied {
        /// The document.
        id: DocId,
        /// The operation.
        op: Operation,
    },
    /// More indexed fields than 255.
    #[error("at most 255 indexed fields")]
    TooManyFields,
    /// A replicated entry of another log.
    #[error("entry of another program's log")]
    WrongLog,
    /// A replicated entry whose meta is not `op ‖ id key`.
    #[error("entry meta is not a document operation")]
    BadMeta,
    /// A replicated entry whose group is not its document's.
    #[error("entry group is not its document's")]
    WrongGroup,
    /// A replicated entry's clock is too far ahead (see `HybridClock::check`).
    #[error(transparent)]
    Clock(#[from] crate::log::LogError),
    /// No replicator of the program is known (to ask, or to hold a write).
    #[error("no replicator of this program is known")]
    NoReplicator,
    /// No answer in time.
    #[error("no answer in time")]
    Timeout,
    /// Too many requests waiting for answers.
    #[error("too many requests waiting for answers")]
    TooManyRequests,
    /// The replicator asked does not hold that part of the ring (its view of the ring
    /// differs: ask another).
    #[error("the replicator asked does not hold that part of the ring")]
    NotHeld,
    /// A shard answered with a document outside the part of the ring it was asked for.
    #[error("a shard answered with a document outside its part of the ring")]
    OutsideSpans,
    /// A span of the ring holds more entries than a caller reads at once.
    #[error("more than {limit} entries held in one span")]
    TooManyHeld {
        /// What the caller reads at once.
        limit: usize,
    },
    /// Parts of the ring did not answer a search in time (the fraction of the ring missing).
    #[error("{missing:.4} of the ring did not answer in time")]
    Incomplete {
        /// The fraction of the ring whose holders did not answer.
        missing: f64,
    },
    /// An answer larger than `replica::MAX_ANSWER_BYTES`.
    #[error("the answer is larger than this replica collects")]
    AnswerTooLarge,
    /// The replica or its peer stopped.
    #[error("the replica stopped")]
    Closed,
    /// The store batch this entry was staged in did not commit.
    #[error("the batch failed to commit: {0}")]
    BatchFailed(String),
    /// An encrypted document this key cannot read: not a receiver, or its envelope does not
    /// open (tampered or malformed; the entry is validly signed, so it is kept all the same).
    #[error("document version {hash} is encrypted and not readable here: {why}")]
    Unreadable {
        /// The entry holding it.
        hash: EntryHash,
        /// Why it does not open.
        why: CryptoError,
    },
    /// The store's writers are a trust graph's and this peer has not caught up with it: the
    /// entry is not stored now (reconciliation offers it again).
    #[error("the trust graph is still catching up")]
    TrustCatchingUp,
    /// Sealing a document for its receivers failed (too many receivers).
    #[error("encryption: {0}")]
    Crypto(CryptoError),
}

/// What [`Documents::apply`] did with an entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// It is the document's newest version now.
    Current,
    /// Stored as history: a newer version is current.
    Older,
    /// Already here.
    Duplicate,
}

impl From<KeyError> for DocumentError {
    fn from(e: KeyError) -> Self {
        DocumentError::Corrupt(e.to_string())
    }
}

/// Settings of a [`Documents`] store.
#[derive(Clone, Debug, Default)]
pub struct DocumentsOptions {
    /// The first version of a document wins: later puts of an existing id are refused.
    pub immutable: bool,
    /// Who may write.
    pub access: AccessRule,
    /// Sharded: each document kept by this many replicators chosen by the ring
    /// ([`crate::shard`]; `None`: every replicator keeps everything). A sharded store keeps a
    /// row per entry by its ring point, so what a replicator holds in a span is a range scan
    /// (`super::held`).
    pub replicas: Option<u8>,
}

/// The current version of a document, as its row holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Current {
    head: EntryHash,
    clock: [u8; 44],
    live: bool,
}

impl Current {
    fn encode(&self) -> Bytes {
        let mut v = BytesMut::with_capacity(ROW_LEN);
        v.extend_from_slice(&self.head.0);
        v.extend_from_slice(&self.clock);
        v.extend_from_slice(&[if self.live { LIVE } else { DELETED }]);
        v.freeze()
    }

    fn decode(v: &[u8]) -> Result<Current, DocumentError> {
        if v.len() != ROW_LEN {
            return Err(DocumentError::Corrupt(format!("row of {} bytes", v.len())));
        }
        let mut head = [0u8; 32];
        head.copy_from_slice(&v[..32]);
        let mut clock = [0u8; 44];
        clock.copy_from_slice(&v[32..76]);
        Ok(Current {
            head: EntryHash(head),
            clock,
            live: v[76] == LIVE,
        })
    }
}

/// A document's indexed values: (field, value) pairs.
type Values = Vec<(String, IndexValue)>;

/// One change to sign.
struct Change {
    id: DocId,
    op: u8,
    /// As stored: the codec's bytes, or an envelope around them.
    payload: Bytes,
    /// The codec's bytes' length.
    raw_len: u32,
    /// Entry flags (`FLAG_ENCRYPTED` for a sealed payload).
    flags: u8,
    /// The indexed values (none for a delete).
    values: Option<Values>,
}

/// An index row's value: the head's hash, then 1 when its stored payload is the codec's bytes
/// as they are (neither compressed nor encrypted), so a scan reads the document in one read.
fn index_row_value(entry: &Entry) -> Bytes {
    let mut v = Vec::with_capacity(33);
    v.extend_from_slice(&entry.hash().0);
    v.push(u8::from(!entry.is_compressed() && !entry.is_encrypted()));
    Bytes::from(v)
}

/// The version an index row indexes, and whether its payload is stored as it is.
fn index_row_head(v: &[u8]) -> Result<(EntryHash, bool), DocumentError> {
    let bad = || DocumentError::Corrupt(format!("index row value of {} bytes", v.len()));
    let head: [u8; 32] = v.get(..32).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
    Ok((EntryHash(head), v.get(32) == Some(&1)))
}

/// The first key past every key that starts with `prefix` (`None`: there is none).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xFF {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// What one change did, as [`Documents::changes`] reports it: documents that got a new
/// version, documents deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DocumentChange {
    /// Documents put (new or a new version), with the entry that did it.
    pub added: Vec<(DocId, EntryHash)>,
    /// Documents deleted, with the entry that did it.
    pub removed: Vec<(DocId, EntryHash)>,
}

/// [`Documents::count`] has not counted yet.
const UNCOUNTED: u64 = u64::MAX;

/// Batch roots a store remembers as verified.
const VERIFIED_ROOTS: usize = 4096;

impl DocumentChange {
    fn note(&mut self, id: DocId, hash: EntryHash, op: u8) {
        if op == OP_PUT {
            self.added.push((id, hash));
        } else {
            self.removed.push((id, hash));
        }
    }
}

/// Changes buffered per listener; a listener further behind misses the oldest (and is told
/// how many: `broadcast::error::RecvError::Lagged`).
pub const CHANGE_BUFFER: usize = 1024;

/// A query's answer, taken page by page.
#[derive(Debug)]
pub struct Pages<T> {
    rest: std::collections::VecDeque<(DocId, T)>,
}

impl<T> Pages<T> {
    /// The next `n` documents (fewer at the end, none after it).
    pub fn next(&mut self, n: usize) -> Vec<(DocId, T)> {
        let n = n.min(self.rest.len());
        self.rest.drain(..n).collect()
    }

    /// Documents not taken yet.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }
}

/// A program's documents on this peer (see the module docs).
pub struct Documents<T, C = Postcard> {
    program: ProgramAddress,
    store: Store,
    signer: EntrySigner,
    /// Checks replicated entries; remembers verified batch roots, so the entries of one
    /// `put_many` cost one signature check between them.
    verifier: EntryVerifier,
    /// Bumped by every commit: a reconciliation snapshot of [`Documents::items`] is current
    /// while this has not moved.
    generation: u64,
    /// Live documents, once counted ([`UNCOUNTED`] before).
    live: AtomicU64,
    clock: HybridClock,
    next_seq: u64,
    codec: C,
    index: IndexSpec<T>,
    options: DocumentsOptions,
    changes: tokio::sync::broadcast::Sender<DocumentChange>,
    /// Opens documents encrypted to this store's key.
    opener: Opener,
    /// Seals documents put encrypted (one wrapped key per receiver set, reused).
    sealer: Sealer,
    _doc: PhantomData<fn() -> T>,
}

impl<T, C> std::fmt::Debug for Documents<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Documents")
            .field("program", &self.program)
            .field("index", &self.index)
            .finish_non_exhaustive()
    }
}

impl<T, C: Codec<T>> Documents<T, C> {
    /// Opens `program`'s documents in `store`, writing as `key`. Its seqs start a new session
    /// (`entry::session`), as every log's do.
    pub fn open(
        program: ProgramAddress,
        store: Store,
        key: Keypair,
        codec: C,
        index: IndexSpec<T>,
        options: DocumentsOptions,
    ) -> Result<Self, DocumentError> {
        if index.fields.len() > usize::from(u8::MAX) {
            return Err(DocumentError::TooManyFields);
        }
        let opener = Opener::new(&key);
        let signer = EntrySigner::new(key);
        let clock = HybridClock::new(signer.writer_id(), Duration::from_secs(60));
        let now = unix_time_us();
        let docs = Documents {
            program,
            store,
            signer,
            verifier: EntryVerifier::new(VERIFIED_ROOTS),
            generation: 0,
            live: AtomicU64::new(UNCOUNTED),
            clock,
            next_seq: session::first_seq(session::session_at(now)),
            codec,
            index,
            options,
            changes: tokio::sync::broadcast::channel(CHANGE_BUFFER).0,
            opener,
            sealer: Sealer::default(),
            _doc: PhantomData,
        };
        if docs.store.row(Table::Documents, &docs.format_key())? != Some(docs.format()) {
            docs.rebuild_index()?;
        }
        Ok(docs)
    }

    /// Rebuilds the document rows and index rows from the program's log: every stored
    /// version, the greatest by (clock, writer, hash) current. Runs on open when the stored
    /// rows were written by another index format or field list; a crash part-way leaves no
    /// format row, so the next open rebuilds again. Holds one small record per document in
    /// memory while it runs. Returns the live documents.
    pub fn rebuild_index(&self) -> Result<u64, DocumentError> {
        const CHUNK: usize = 1024;
        // Forget every derived row, the format row first.
        let mut stale: Vec<(Table, Vec<u8>)> = vec![(Table::Documents, self.format_key())];
        for table in [Table::Documents, Table::Index, Table::Points] {
            for row in self.store.rows(table, &self.program.0, false) {
                stale.push((table, row?.0.to_vec()));
            }
        }
        for chunk in stale.chunks(CHUNK * 4) {
            let mut batch = self.store.batch();
            for (table, key) in chunk {
                batch.delete(*table, key);
            }
            batch.commit()?;
        }
        // The greatest version of each document.
        let mut winners: std::collections::BTreeMap<Vec<u8>, (Current, u8)> = Default::default();
        let mut points = self.store.batch();
        let mut pending_points = 0;
        for row in self.store.clock_rows(&self.log_id().0, None, false) {
            let row = row?;
            let head = EntryHash(row.hash);
            let (header, payload) = self.store.entry(&row.hash)?.ok_or_else(|| {
                DocumentError::Corrupt(format!("clock row names missing entry {head}"))
            })?;
            let entry = Entry::decode_stored(head, header, payload)?;
            if self.options.replicas.is_some() {
                points.put(Table::Points, &self.point_key(&entry), Bytes::new());
                pending_points += 1;
                if pending_points >= CHUNK * 4 {
                    std::mem::replace(&mut points, self.store.batch()).commit()?;
                    pending_points = 0;
                }
            }
            let Some((&op, id_key)) = entry.meta().split_first() else {
                continue;
            };
            let version = Current {
                head,
                clock: row.clock,
                live: op == OP_PUT,
            };
            let newer = |(c, _): &(Current, u8)| (version.clock, head) > (c.clock, c.head);
            if winners.get(id_key).is_none_or(newer) {
                winners.insert(id_key.to_vec(), (version, op));
            }
        }
        points.commit()?;
        let mut live = 0;
        let winners: Vec<_> = winners.into_iter().collect();
        for chunk in winners.chunks(CHUNK) {
            let mut batch = self.store.batch();
            for (id_key, (current, _)) in chunk {
                let (id, _) = DocId::decode_key(id_key)?;
                if current.live {
                    let values = self.indexed_values(&current.head)?;
                    let value = match self.entry(&current.head)? {
                        Some(e) => index_row_value(&e),
                        None => Bytes::copy_from_slice(&current.head.0),
                    };
                    for k in self.index_keys(&id, &values) {
                        batch.put(Table::Index, &k, value.clone());
                    }
                    live += 1;
                }
                batch.put(Table::Documents, &self.doc_key(&id), current.encode());
            }
            batch.commit()?;
        }
        let mut batch = self.store.batch();
        batch.put(Table::Documents, &self.format_key(), self.format());
        batch.commit()?;
        self.live.store(live, Ordering::Relaxed);
        Ok(live)
    }

    /// Where the format of the derived rows is kept: below every document row.
    fn format_key(&self) -> Vec<u8> {
        let mut k = self.program.0.to_vec();
        k.push(FORMAT_ROW);
        k
    }

    /// The derived rows' format: this build's layout and the indexed fields' names.
    fn format(&self) -> Bytes {
        let mut v = vec![INDEX_FORMAT];
        v.extend_from_slice(&self.index.digest());
        v.push(u8::from(self.options.replicas.is_some()));
        Bytes::from(v)
    }

    /// The document rows (past the format row), in id order.
    fn doc_rows(&self) -> impl Iterator<Item = Result<(Bytes, Bytes), StoreError>> + '_ {
        let mut from = self.program.0.to_vec();
        from.push(FORMAT_ROW + 1);
        let mut to = self.program.0.to_vec();
        to.push(0xFF);
        self.store
            .rows_between(Table::Documents, &from, Some(&to), false)
    }

    /// Every change from now on, once committed (local ones today; replicated ones will come
    /// the same way).
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<DocumentChange> {
        self.changes.subscribe()
    }

    /// The program's log id: its address.
    pub fn log_id(&self) -> LogId {
        LogId(self.program.0)
    }

    /// Replicas per document when sharded (see [`DocumentsOptions::replicas`]).
    pub fn sharded(&self) -> Option<u8> {
        self.options.replicas
    }

    /// The program's address.
    pub fn program(&self) -> ProgramAddress {
        self.program
    }

    /// Moves with every commit (see [`Documents::items`]).
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Every stored entry of the program as reconciliation names it (clock key ‖ hash), in
    /// order: one row read per entry.
    pub fn items(&self) -> Result<Vec<crate::reconcile::Item>, DocumentError> {
        let mut out = Vec::new();
        for row in self.store.clock_rows(&self.log_id().0, None, false) {
            let row = row?;
            let mut item = [0u8; crate::reconcile::ITEM_LEN];
            item[..row.clock.len()].copy_from_slice(&row.clock);
            item[row.clock.len()..].copy_from_slice(&row.hash);
            out.push(item);
        }
        Ok(out)
    }

    /// A stored entry of this program.
    pub fn entry(&self, hash: &EntryHash) -> Result<Option<Entry>, DocumentError> {
        let Some((header, payload)) = self.store.entry(&hash.0)? else {
            return Ok(None);
        };
        let entry = Entry::decode_stored(*hash, header, payload)?;
        Ok((entry.log_id() == self.log_id()).then_some(entry))
    }

    /// Hashes of this program's stored entries whose hash starts with `id` (an id list's
    /// prefix; almost always one).
    pub fn hashes_by_id(&self, id: &[u8]) -> Result<Vec<EntryHash>, DocumentError> {
        let mut out = Vec::new();
        for h in self.store.hashes_with_prefix(id, 4)? {
            let hash = EntryHash(h);
            if self.entry(&hash)?.is_some() {
                out.push(hash);
            }
        }
        Ok(out)
    }

    /// The entry holding `id`'s current version, if it is live.
    pub(crate) fn live_entry(&self, id: &DocId) -> Result<Option<Entry>, DocumentError> {
        match self.current(id)? {
            Some(c) if c.live => self.entry(&c.head),
            _ => Ok(None),
        }
    }

    /// The entry holding `id`'s current version (live or deleted).
    pub fn head_entry(&self, id: &DocId) -> Result<Option<Entry>, DocumentError> {
        match self.current(id)? {
            Some(c) => self.entry(&c.head),
            None => Ok(None),
        }
    }

    /// Puts `doc` under `id`: a new version following the current one (if any).
    pub fn put(&mut self, id: impl Into<DocId>, doc: &T) -> Result<EntryHash, DocumentError> {
        self.put_at(id.into(), doc, unix_time_us())
    }

    /// [`Documents::put`] at Unix time `now_us`.
    pub fn put_at(&mut self, id: DocId, doc: &T, now_us: u64) -> Result<EntryHash, DocumentError> {
        let entries = self.put_entries(std::iter::once((id, doc)), now_us, None)?;
        Ok(entries[0].hash())
    }

    /// Puts many documents: signed together (one signature per [`MAX_BATCH`](starling_net::entry::MAX_BATCH) entries, each
    /// entry still verifiable alone) and committed in one store batch, so either all of them
    /// are stored or none. A later document of one id follows an earlier one.
    pub fn put_many<'a>(
        &mut self,
        docs: impl IntoIterator<Item = (DocId, &'a T)>,
    ) -> Result<Vec<EntryHash>, DocumentError>
    where
        T: 'a,
    {
        let entries = self.put_entries(docs, unix_time_us(), None)?;
        Ok(entries.iter().map(Entry::hash).collect())
    }

    /// [`Documents::put_many`], returning the signed entries (for replication); sealed for
    /// `to` when given.
    pub(crate) fn put_entries<'a>(
        &mut self,
        docs: impl IntoIterator<Item = (DocId, &'a T)>,
        now_us: u64,
        to: Option<(&Receivers, IndexVisibility)>,
    ) -> Result<Vec<Entry>, DocumentError>
    where
        T: 'a,
    {
        let mut changes = Vec::new();
        for (id, doc) in docs {
            self.check_access(&id, Operation::Put, now_us)?;
            let plain = self.codec.encode(doc)?;
            let raw_len = plain.len() as u32;
            let values = self.index.values(doc);
            let (payload, flags) = match to {
                Some((to, visibility)) => {
                    let public = match visibility {
                        IndexVisibility::Public => encode_published(&values),
                        IndexVisibility::Sealed => Vec::new(),
                    };
                    let sealed = self
                        .sealer
                        .seal_with_public(to, &plain, true, &public)
                        .map_err(DocumentError::Crypto)?;
                    (sealed, FLAG_ENCRYPTED)
                }
                None => (plain, 0),
            };
            changes.push(Change {
                id,
                op: OP_PUT,
                payload,
                raw_len,
                flags,
                values: Some(values),
            });
        }
        self.write(changes, now_us)
    }
    /// Deletes `id` (a signed entry too); whether it was there.
    pub fn delete(&mut self, id: impl Into<DocId>) -> Result<bool, DocumentError> {
        let id = id.into();
        self.delete_entry(id, unix_time_us()).map(|e| e.is_some())
    }

    /// [`Documents::delete`], returning the signed entry when there was something to delete.
    pub(crate) fn delete_entry(
        &mut self,
        id: DocId,
        now_us: u64,
    ) -> Result<Option<Entry>, DocumentError> {
        self.check_access(&id, Operation::Delete, now_us)?;
        if !self.current(&id)?.is_some_and(|c| c.live) {
            return Ok(None);
        }
        let change = Change {
            id,
            op: OP_DELETE,
            payload: Bytes::new(),
            raw_len: 0,
            flags: 0,
            values: None,
        };
        let mut e = self.write(vec![change], now_us)?;
        Ok(e.pop())
    }

    /// The current version of `id`, if it is live.
    pub fn get(&self, id: impl Into<DocId>) -> Result<Option<T>, DocumentError> {
        let id = id.into();
        match self.current(&id)? {
            Some(c) if c.live => self.load(&c.head).map(Some),
            _ => Ok(None),
        }
    }

    /// Live documents.
    /// (Counted once, then kept up to date by every commit.)
    pub fn count(&self) -> Result<u64, DocumentError> {
        let known = self.live.load(Ordering::Relaxed);
        if known != UNCOUNTED {
            return Ok(known);
        }
        let mut n = 0;
        for row in self.doc_rows() {
            let (_, v) = row?;
            n += u64::from(Current::decode(&v)?.live);
        }
        self.live.store(n, Ordering::Relaxed);
        Ok(n)
    }

    fn count_changed(&self, delta: i64) {
        let known = self.live.load(Ordering::Relaxed);
        if known != UNCOUNTED {
            self.live
                .store(known.saturating_add_signed(delta), Ordering::Relaxed);
        }
    }

    /// Ids of live documents whose `field` equals `value`, in id order (an index scan).
    pub fn ids_where(&self, field: &str, value: &IndexValue) -> Result<Vec<DocId>, DocumentError> {
        if !self.index.is_indexed(field) {
            return Ok(Vec::new());
        }
        let mut prefix = self.index_prefix(field);
        keys::encode(value, &mut prefix);
        let mut ids = Vec::new();
        for row in self.store.rows(Table::Index, &prefix, false) {
            let (k, _) = row?;
            let (id, rest) = DocId::decode_key(&k[prefix.len()..])?;
            if !rest.is_empty() {
                return Err(DocumentError::Corrupt(
                    "bytes after an index row's id".into(),
                ));
            }
            ids.push(id);
        }
        Ok(ids)
    }

    fn check_access(&self, id: &DocId, op: Operation, now_us: u64) -> Result<(), DocumentError> {
        let me = self.signer.keypair().public();
        match self.options.access.allows(me, id, op, now_us) {
            Access::Allowed => Ok(()),
            Access::Denied => Err(DocumentError::Denied { id: id.clone(), op }),
            Access::CatchingUp => Err(DocumentError::TrustCatchingUp),
        }
    }

    /// `query`'s answer to page through with [`Pages::next`].
    pub fn pages(&self, query: &Query) -> Result<Pages<T>, DocumentError> {
        Ok(Pages {
            rest: self.query(query)?.into(),
        })
    }

    /// The store the documents live in.
    pub(super) fn store(&self) -> &Store {
        &self.store
    }

    /// `id`'s current version: its entry and whether it is live.
    pub(super) fn current_version(
        &self,
        id: &DocId,
    ) -> Result<Option<(EntryHash, bool)>, DocumentError> {
        Ok(self.current(id)?.map(|c| (c.head, c.live)))
    }

    /// The index rows of the version `head` of `id` (none when it is encrypted to others).
    pub(super) fn index_rows(
        &self,
        id: &DocId,
        head: &EntryHash,
    ) -> Result<Vec<Vec<u8>>, DocumentError> {
        Ok(self.index_keys(id, &self.indexed_values(head)?))
    }

    /// The key of `id`'s document row.
    pub(super) fn document_row(&self, id: &DocId) -> Vec<u8> {
        self.doc_key(id)
    }

    /// A batch written outside the put and apply paths committed: live documents changed by
    /// `live_delta`.
    pub(super) fn committed(&mut self, live_delta: i64) {
        self.generation += 1;
        self.count_changed(live_delta);
    }

    fn doc_key(&self, id: &DocId) -> Vec<u8> {
        let mut k = self.program.0.to_vec();
        id.encode_key(&mut k);
        k
    }

    /// Where `field`'s index rows start: program ‖ the field's name as an index key.
    fn index_prefix(&self, field: &str) -> Vec<u8> {
        let mut k = self.program.0.to_vec();
        keys::encode(&IndexValue::Str(field.to_owned()), &mut k);
        k
    }

    fn index_keys(&self, id: &DocId, values: &[(String, IndexValue)]) -> Vec<Vec<u8>> {
        let mut out: Vec<Vec<u8>> = values
            .iter()
            .map(|(field, v)| {
                let mut k = self.index_prefix(field);
                keys::encode(v, &mut k);
                id.encode_key(&mut k);
                k
            })
            .collect();
        // An array with one value twice has one row for it.
        out.sort_unstable();
        out.dedup();
        out
    }

    fn current(&self, id: &DocId) -> Result<Option<Current>, DocumentError> {
        self.store
            .row(Table::Documents, &self.doc_key(id))?
            .map(|v| Current::decode(&v))
            .transpose()
    }

    /// The document an index row names: its payload alone when stored as it is (one read).
    fn load_indexed(&self, head: &EntryHash, raw: bool) -> Result<T, DocumentError> {
        if !raw {
            return self.load(head);
        }
        let payload = self.store.payload(&head.0)?.ok_or_else(|| {
            DocumentError::Corrupt(format!("index row names missing entry {head}"))
        })?;
        Ok(self.codec.decode(&payload)?)
    }

    fn load(&self, head: &EntryHash) -> Result<T, DocumentError> {
        let entry = self.stored(head)?;
        if entry.is_encrypted() {
            let opened = entry.open_payload(&self.opener).map_err(|e| match e {
                EntryError::Crypto(why) => DocumentError::Unreadable { hash: *head, why },
                other => other.into(),
            })?;
            return Ok(self.codec.decode(&opened)?);
        }
        Ok(self.codec.decode(&entry.payload()?)?)
    }

    fn stored(&self, head: &EntryHash) -> Result<Entry, DocumentError> {
        let (header, payload) = self
            .store
            .entry(&head.0)?
            .ok_or_else(|| DocumentError::Corrupt(format!("row names missing entry {head}")))?;
        Ok(Entry::decode_stored(*head, header, payload)?)
    }
}
