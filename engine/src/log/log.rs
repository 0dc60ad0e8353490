//! A signed log stored in a [`Store`]: append, join, heads, iteration, trimming.

use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use starling_net::crypto::{Receivers, SealBuf, Sealer};
use starling_net::entry::{
    EntryFields, EntrySigner, EntryVerifier, FLAG_ENCRYPTED, FLAG_LZ4, MAX_BATCH, MAX_PAYLOAD_LEN,
    next_hashes,
};
use starling_net::entry::{session, unix_time_us};
use starling_net::identity::Keypair;
use starling_store::{ClockKey, ClockRow, NewEntry, Store};

use super::{Clock, Compression, Entry, EntryHash, HybridClock, LogError};

pub use starling_net::entry::LogId;

/// The owner's rule for who may write: checked on append and on join, after signatures verify.
pub type AccessCheck = Arc<dyn Fn(&Entry) -> bool + Send + Sync>;

/// A draft's payload: bytes as they are, or a buffer written behind room for an envelope
/// ([`Log::payload_buf`]), which an encrypted log seals where it lies instead of copying.
#[derive(Clone, Debug)]
pub enum Payload {
    /// Bytes (an encrypted log copies them into the envelope it seals).
    Bytes(Bytes),
    /// A buffer with room for the envelope.
    Buf(SealBuf),
}

impl Payload {
    /// The payload's bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Payload::Bytes(b) => b,
            Payload::Buf(b) => b.payload(),
        }
    }

    /// Its length.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload as bytes (no copy).
    pub fn into_bytes(self) -> Bytes {
        match self {
            Payload::Bytes(b) => b,
            Payload::Buf(b) => b.into_payload(),
        }
    }
}

impl Default for Payload {
    /// No bytes.
    fn default() -> Payload {
        Payload::Bytes(Bytes::new())
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Payload {
        Payload::Bytes(b)
    }
}

impl From<SealBuf> for Payload {
    fn from(b: SealBuf) -> Payload {
        Payload::Buf(b)
    }
}

/// One entry to append: its payload and the program's signed meta fields (≤ 255 bytes).
#[derive(Clone, Debug)]
pub struct Draft<'a> {
    /// The application's payload (stored as given unless the log compresses).
    pub payload: Payload,
    /// Program fields signed with the entry (a stream's keyframe flag and media time).
    pub meta: &'a [u8],
    /// With encryption on ([`Log::encrypt_to`]): wrap the content key for every receiver in
    /// this entry, so a reader can start here (a stream's keyframes). Otherwise only an
    /// entry under a new key carries it and the rest name it.
    pub wrap_key: bool,
}

impl Draft<'_> {
    /// A payload with no meta, readable on its own when encrypted.
    pub fn new(payload: impl Into<Payload>) -> Draft<'static> {
        Draft {
            payload: payload.into(),
            meta: &[],
            wrap_key: true,
        }
    }
}

/// What a log keeps. Trimming removes the oldest entries (clock order) with all their index rows.
#[derive(Clone, Debug, Default)]
pub struct Retention {
    /// Keep at most this many entries.
    pub keep_last: Option<u64>,
    /// Keep at most this many bytes (headers + stored payloads).
    pub keep_bytes: Option<u64>,
    /// Drop entries whose clock is older than this.
    pub max_age: Option<Duration>,
}

/// Settings of a [`Log`].
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// Per-entry LZ4; `None` stores every payload as given. Default: on (512 B, ratio 0.9).
    pub compression: Option<Compression>,
    /// Remote clocks further ahead of now are refused. Default 60 s.
    pub max_clock_drift: Duration,
    /// The window kept on disk. Default: everything.
    pub retention: Retention,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            compression: Some(Compression::default()),
            max_clock_drift: Duration::from_secs(60),
            retention: Retention::default(),
        }
    }
}

/// Iteration direction in clock order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Forward,
    /// Newest first.
    Backward,
}

/// What a [`Log::join`] did.
#[derive(Debug, Default)]
pub struct JoinReport {
    /// Entries stored, in the order given.
    pub added: Vec<EntryHash>,
    /// Entries already present (joins are idempotent).
    pub duplicates: usize,
    /// Entries refused, with why. Nothing refused is stored.
    pub rejected: Vec<(EntryHash, LogError)>,
}

/// Entries signed by [`Log::sign_batch_at`], not stored yet.
#[derive(Debug)]
pub struct SignedBatch {
    entries: Vec<Entry>,
    clocks: Vec<Clock>,
    /// The heads they follow (superseded in the store when they are stored).
    prior: Vec<[u8; 32]>,
}

impl SignedBatch {
    /// The entries, in chain order.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The entries, in chain order.
    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// One signed, append-only log. Not `Sync`-shared by itself: wrap it in a lock to share.
pub struct Log {
    id: LogId,
    store: Store,
    signer: EntrySigner,
    clock: HybridClock,
    /// The next entry's seq. Each open starts a new session (`starling_net::entry::session`),
    /// above every seq this writer signed before — stored, lost or never stored.
    next_seq: u64,
    heads: BTreeSet<EntryHash>,
    config: LogConfig,
    access: Option<AccessCheck>,
    len: u64,
    bytes: u64,
    verifier: EntryVerifier,
    /// Receivers and the sealer of an encrypted log ([`Log::encrypt_to`]).
    encryption: Option<(Receivers, Sealer)>,
    /// Clock of the newest trimmed entry: trimming scans from here, not from the start, so it
    /// does not walk the tombstones of everything trimmed before (which made it O(n) per append).
    trim_floor: Option<ClockKey>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("id", &self.id)
            .field("len", &self.len)
            .field("heads", &self.heads.len())
            .finish_non_exhaustive()
    }
}

impl Log {
    /// The id of the log `name` owned by `owner`: BLAKE3 over a domain tag, the owner's
    /// protobuf public key and the name, so two owners never share a log id by accident.
    pub fn derive_id(owner: &starling_net::PublicKey, name: &str) -> LogId {
        let mut h = blake3::Hasher::new();
        h.update(b"starling-log-v1\0");
        h.update(&owner.encode_protobuf());
        h.update(name.as_bytes());
        LogId(*h.finalize().as_bytes())
    }

    /// Opens log `id` in `store`, restoring heads, size and clock from disk.
    pub fn open(store: Store, id: LogId, key: Keypair, config: LogConfig) -> Result<Log, LogError> {
        Self::open_at(store, id, key, config, unix_time_us())
    }

    /// [`open`](Self::open) at Unix time `now_us` (which gives the session it starts).
    pub fn open_at(
        store: Store,
        id: LogId,
        key: Keypair,
        config: LogConfig,
        now_us: u64,
    ) -> Result<Log, LogError> {
        let heads = store
            .heads(id.as_bytes())?
            .into_iter()
            .map(EntryHash)
            .collect::<BTreeSet<_>>();
        let signer = EntrySigner::new(key);
        let mut clock = HybridClock::new(signer.writer_id(), config.max_clock_drift);
        // Every open starts a new session (`entry::session`): whatever a failed or lost write
        // left behind, no seq signed before is signed again. Above the stored heads in any
        // case, should the clock have gone back.
        let mut next_seq = session::first_seq(session::session_at(now_us));
        for head in &heads {
            if let Some((header, payload)) = store.entry(&head.0)? {
                let e = Entry::decode_stored(*head, header, payload)?;
                next_seq = next_seq.max(e.seq().saturating_add(1));
            }
        }
        let (mut len, mut bytes, mut last) = (0u64, 0u64, None);
        for row in store.clock_rows(id.as_bytes(), None, false) {
            let row = row?;
            len += 1;
            bytes += row.size;
            last = Some(row.clock);
        }
        if let Some(last) = last {
            let last = Clock::from_key(&last);
            clock.observe(&last, last.wall_us)?;
        }
        Ok(Log {
            id,
            store,
            signer,
            clock,
            next_seq,
            heads,
            config,
            access: None,
            len,
            bytes,
            verifier: EntryVerifier::default(),
            trim_floor: None,
            encryption: None,
        })
    }

    /// Installs the owner's access rule (e.g. "only these signers").
    pub fn with_access(mut self, check: AccessCheck) -> Self {
        self.access = Some(check);
        self
    }

    /// Seals every payload appended from now on for `receivers` (`None`: plain again).
    /// The content key is reused for one set (see `Sealer`); a different set starts a new
    /// key, so a receiver left out cannot read what follows. The writer's key must be one.
    pub fn encrypt_to(&mut self, receivers: Option<Receivers>) {
        self.encryption = receivers.map(|r| (r, Sealer::default()));
    }

    /// [`Log::encrypt_to`] with a sealer of one's own (another suite or key lifetime).
    pub fn encrypt_with(&mut self, receivers: Receivers, sealer: Sealer) {
        self.encryption = Some((receivers, sealer));
    }

    /// This log's id.
    pub fn id(&self) -> &LogId {
        &self.id
    }

    /// Entries stored.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes stored (headers + stored payloads).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The current heads, in hash order.
    pub fn heads(&self) -> Vec<EntryHash> {
        self.heads.iter().copied().collect()
    }

    /// The seq the next appended entry gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Appends `payload` as a new entry following the current heads, signed alone.
    pub fn append(&mut self, payload: Bytes) -> Result<Entry, LogError> {
        self.append_at(payload, unix_time_us())
    }

    /// [`Log::append`] with the time given (µs since the epoch).
    pub fn append_at(&mut self, payload: Bytes, now_us: u64) -> Result<Entry, LogError> {
        let mut out = self.append_batch_at(vec![Draft::new(payload)], now_us)?;
        out.pop().ok_or(LogError::EmptyBatch)
    }

    /// Appends 1..=[`MAX_BATCH`] entries as a chain (each follows the one before) under one
    /// batch signature, stored in one write batch. Each entry still verifies on its own.
    pub fn append_batch(&mut self, drafts: Vec<Draft<'_>>) -> Result<Vec<Entry>, LogError> {
        self.append_batch_at(drafts, unix_time_us())
    }

    /// [`Log::append_batch`] with the time given.
    pub fn append_batch_at(
        &mut self,
        drafts: Vec<Draft<'_>>,
        now_us: u64,
    ) -> Result<Vec<Entry>, LogError> {
        let batch = self.sign_batch_at(drafts, now_us)?;
        self.store_batch_at(&batch, now_us)?;
        Ok(batch.entries)
    }

    /// Signs 1..=[`MAX_BATCH`] entries as a chain under one signature and makes them the log's
    /// heads in memory, without storing them: [`Log::store_batch_at`] stores them. A writer
    /// whose store is only a cache (a stream's window) publishes what it signed whether or not
    /// the store took it. Their seqs are spent from here on, whatever happens next: a seq is
    /// never signed twice.
    pub fn sign_batch_at(
        &mut self,
        drafts: Vec<Draft<'_>>,
        now_us: u64,
    ) -> Result<SignedBatch, LogError> {
        if drafts.is_empty() || drafts.len() > MAX_BATCH {
            return Err(LogError::EmptyBatch);
        }
        if let Some(d) = drafts
            .iter()
            .find(|d| d.payload.len() as u64 > MAX_PAYLOAD_LEN)
        {
            return Err(LogError::PayloadTooLarge(d.payload.len()));
        }
        let first_seq = self.next_seq;
        self.next_seq = first_seq.saturating_add(drafts.len() as u64);
        let mut sealed = Vec::with_capacity(drafts.len());
        let mut next: Vec<EntryHash> = self.heads.iter().copied().collect();
        let mut clocks = Vec::with_capacity(drafts.len());
        let shapes: Vec<(&[u8], u32)> = drafts
            .iter()
            .map(|d| (d.meta, d.payload.len() as u32))
            .collect();
        let prepared = self.prepare_payloads(drafts)?;
        for (i, ((meta, raw_len), (stored, flags))) in shapes.into_iter().zip(prepared).enumerate()
        {
            let clock = self.clock.tick(now_us);
            let u = self.signer.seal(&EntryFields {
                log_id: self.id,
                seq: first_seq + i as u64,
                wall_us: clock.wall_us,
                logical: clock.logical,
                group: [0; 32],
                replicas: 0,
                meta,
                next: &next,
                payload: stored,
                raw_len,
                flags,
            })?;
            next = vec![u.hash()];
            clocks.push(clock);
            sealed.push(u);
        }
        let entries = self.signer.sign(sealed)?;
        if let Some(e) = entries
            .iter()
            .find(|e| self.access.as_ref().is_some_and(|check| !check(e)))
        {
            return Err(LogError::AccessDenied(e.hash()));
        }
        let prior: Vec<[u8; 32]> = self.heads.iter().map(|h| h.0).collect();
        self.heads.clear();
        self.heads.extend(entries.last().map(Entry::hash));
        Ok(SignedBatch {
            entries,
            clocks,
            prior,
        })
    }

    /// Each draft's payload as stored, with its flags: compressed (when it pays), then sealed
    /// when the log is encrypted — ciphertext does not compress. (Sealing a batch on two
    /// threads was tried: no faster on this 2-core machine, see the README's `crypto`.)
    fn prepare_payloads(&mut self, drafts: Vec<Draft<'_>>) -> Result<Vec<(Bytes, u8)>, LogError> {
        let compression = self.config.compression;
        drafts
            .into_iter()
            .map(|d| {
                let packed = compression.and_then(|c| c.compress(d.payload.as_slice()));
                Ok(match (&mut self.encryption, packed) {
                    (Some((to, sealer)), Some(packed)) => (
                        sealer.seal_as(to, &packed, d.wrap_key)?,
                        FLAG_LZ4 | FLAG_ENCRYPTED,
                    ),
                    (Some((to, sealer)), None) => {
                        let sealed = match d.payload {
                            Payload::Buf(buf) => sealer.seal_buf(to, buf, d.wrap_key)?,
                            Payload::Bytes(b) => sealer.seal_as(to, &b, d.wrap_key)?,
                        };
                        (sealed, FLAG_ENCRYPTED)
                    }
                    (None, Some(packed)) => (packed, FLAG_LZ4),
                    (None, None) => (d.payload.into_bytes(), 0),
                })
            })
            .collect()
    }

    /// A buffer to write a payload of about `capacity` bytes into, with room for this log's
    /// envelope in front when it is encrypted: sealed where it lies ([`Payload::Buf`]).
    pub fn payload_buf(&self, capacity: usize) -> SealBuf {
        let room = self
            .encryption
            .as_ref()
            .map_or(0, |(to, _)| to.envelope_room());
        SealBuf::with_room(room, capacity)
    }

    /// Stores a batch [`Log::sign_batch_at`] made, with its index rows, in one write batch,
    /// then trims. On a storage error nothing of it counts as stored (though a failed write may
    /// still be durable after reopening: see `StoreError::Failed`).
    pub fn store_batch_at(&mut self, batch: &SignedBatch, now_us: u64) -> Result<(), LogError> {
        let entries = &batch.entries;
        let nexts: Vec<Vec<[u8; 32]>> = entries
            .iter()
            .map(|e| e.next().map(|h| h.0).collect())
            .collect();
        let last = entries.len() - 1;
        let rows: Vec<NewEntry<'_>> = entries
            .iter()
            .zip(&nexts)
            .zip(&batch.clocks)
            .enumerate()
            .map(|(i, ((e, next), clock))| NewEntry {
                hash: e.hash().0,
                header: e.header(),
                payload: e.stored_payload().clone(),
                clock: clock.to_key(),
                next,
                is_head: i == last,
            })
            .collect();
        self.store
            .write_entries(self.id.as_bytes(), &rows, &batch.prior)?;
        self.len += entries.len() as u64;
        self.bytes += entries.iter().map(|e| e.size() as u64).sum::<u64>();
        self.trim_at(now_us)?;
        Ok(())
    }

    /// Merges entries from another peer: each must belong to this log, verify (one batch
    /// verification for all), pass the access check and have a clock within the drift bound.
    /// Entries may arrive in any order; heads stay right because a reverse-`next` index tells
    /// whether a stored entry already follows a newcomer. Idempotent, commutative, associative.
    pub fn join(&mut self, entries: Vec<Entry>) -> Result<JoinReport, LogError> {
        self.join_at(entries, unix_time_us())
    }

    /// [`Log::join`] with the time given.
    pub fn join_at(&mut self, entries: Vec<Entry>, now_us: u64) -> Result<JoinReport, LogError> {
        let mut report = JoinReport::default();
        let mut seen = HashSet::with_capacity(entries.len());
        let mut candidates = Vec::with_capacity(entries.len());
        for e in entries {
            if self.store.contains(&e.hash().0)? {
                report.duplicates += 1;
                continue;
            }
            if e.log_id() != self.id {
                report.rejected.push((e.hash(), LogError::WrongLog));
                continue;
            }
            if let Err(err) = self.clock.check(e.clock(), now_us) {
                report.rejected.push((e.hash(), err));
                continue;
            }
            candidates.push(e);
        }
        // One signature check per batch root (many roots in one batch equation; one by one only
        // if that fails, so a peer sending many bad entries costs linear, not quadratic, work).
        let results = self.verifier.verify_many(&candidates);
        let mut verified = Vec::with_capacity(candidates.len());
        for (e, r) in candidates.into_iter().zip(results) {
            match r {
                // Deduplicated only once verified: an entry's hash covers its signed part, not
                // its signature, so a forged copy must not shadow the real one.
                Ok(_) if !seen.insert(e.hash()) => report.duplicates += 1,
                Ok(_) => verified.push(e),
                Err(err) => report.rejected.push((e.hash(), err.into())),
            }
        }
        let mut accepted = Vec::with_capacity(verified.len());
        for e in verified {
            match &self.access {
                Some(check) if !check(&e) => {
                    report
                        .rejected
                        .push((e.hash(), LogError::AccessDenied(e.hash())));
                }
                _ => accepted.push(e),
            }
        }
        if accepted.is_empty() {
            return Ok(report);
        }
        let referenced: HashSet<EntryHash> = accepted.iter().flat_map(|e| e.next()).collect();
        let nexts: Vec<Vec<[u8; 32]>> = accepted
            .iter()
            .map(|e| e.next().map(|h| h.0).collect())
            .collect();
        let mut rows = Vec::with_capacity(accepted.len());
        for (e, next) in accepted.iter().zip(&nexts) {
            let is_head = !referenced.contains(&e.hash())
                && !self.store.has_children(self.id.as_bytes(), &e.hash().0)?;
            rows.push(NewEntry {
                hash: e.hash().0,
                header: e.header(),
                payload: e.stored_payload().clone(),
                clock: e.clock().to_key(),
                next,
                is_head,
            });
        }
        let dropped: Vec<[u8; 32]> = self
            .heads
            .iter()
            .filter(|h| referenced.contains(h))
            .map(|h| h.0)
            .collect();
        self.store
            .write_entries(self.id.as_bytes(), &rows, &dropped)?;
        if rows
            .iter()
            .any(|r| self.trim_floor.is_some_and(|f| r.clock < f))
        {
            // Older than what was trimmed: the next trim starts from the beginning again.
            self.trim_floor = None;
        }
        for h in &dropped {
            self.heads.remove(&EntryHash(*h));
        }
        for (e, row) in accepted.iter().zip(&rows) {
            if row.is_head {
                self.heads.insert(e.hash());
            }
            self.clock.observe(e.clock(), now_us)?;
            self.next_seq = self.next_seq.max(e.seq().saturating_add(1));
            self.len += 1;
            self.bytes += e.size() as u64;
            report.added.push(e.hash());
        }
        self.trim_at(now_us)?;
        Ok(report)
    }

    /// Reads an entry back, checking its hash and payload hash (a flipped byte is an error).
    pub fn get(&self, hash: &EntryHash) -> Result<Option<Entry>, LogError> {
        match self.store.entry(&hash.0)? {
            Some((header, payload)) => Ok(Some(Entry::decode_stored(*hash, header, payload)?)),
            None => Ok(None),
        }
    }

    /// Entries in clock order, starting at `from` (inclusive) if given.
    pub fn iter(
        &self,
        order: Order,
        from: Option<&Clock>,
    ) -> impl Iterator<Item = Result<Entry, LogError>> + '_ {
        let from = from.map(Clock::to_key);
        self.store
            .clock_rows(self.id.as_bytes(), from.as_ref(), order == Order::Backward)
            .map(move |row| {
                let row = row?;
                self.get(&EntryHash(row.hash))?.ok_or_else(|| {
                    LogError::Store(starling_store::StoreError::CorruptRow {
                        keyspace: "clock",
                        reason: "indexed entry is missing".into(),
                    })
                })
            })
    }

    /// All entries in causal order: every entry after the entries it follows, ties broken by
    /// clock. (Holds the whole log in memory; for bounded windows and tests.)
    pub fn causal(&self) -> Result<Vec<Entry>, LogError> {
        let all: Vec<Entry> = self.iter(Order::Forward, None).collect::<Result<_, _>>()?;
        let index: HashMap<EntryHash, usize> =
            all.iter().enumerate().map(|(i, e)| (e.hash(), i)).collect();
        let mut waiting = vec![0usize; all.len()];
        let mut children = vec![Vec::new(); all.len()];
        for (i, e) in all.iter().enumerate() {
            for p in e.next() {
                let p = &p;
                if let Some(&pi) = index.get(p) {
                    waiting[i] += 1;
                    children[pi].push(i);
                }
            }
        }
        // Min-heap on clock order (indices are clock-sorted).
        let mut ready: BinaryHeap<std::cmp::Reverse<usize>> = (0..all.len())
            .filter(|&i| waiting[i] == 0)
            .map(std::cmp::Reverse)
            .collect();
        let mut order = Vec::with_capacity(all.len());
        while let Some(std::cmp::Reverse(i)) = ready.pop() {
            order.push(i);
            for &c in &children[i] {
                waiting[c] -= 1;
                if waiting[c] == 0 {
                    ready.push(std::cmp::Reverse(c));
                }
            }
        }
        let mut slots: Vec<Option<Entry>> = all.into_iter().map(Some).collect();
        Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
    }

    /// Applies the retention policy now.
    pub fn trim(&mut self) -> Result<usize, LogError> {
        self.trim_at(unix_time_us())
    }

    fn trim_at(&mut self, now_us: u64) -> Result<usize, LogError> {
        let r = &self.config.retention;
        if r.keep_last.is_none() && r.keep_bytes.is_none() && r.max_age.is_none() {
            return Ok(0);
        }
        let cutoff = r
            .max_age
            .map(|a| now_us.saturating_sub(a.as_micros() as u64));
        let (mut len, mut bytes) = (self.len, self.bytes);
        let mut doomed: Vec<(ClockRow, Vec<[u8; 32]>)> = Vec::new();
        for row in self
            .store
            .clock_rows(self.id.as_bytes(), self.trim_floor.as_ref(), false)
        {
            let row = row?;
            let wall = Clock::from_key(&row.clock).wall_us;
            let over = r.keep_last.is_some_and(|n| len > n)
                || r.keep_bytes.is_some_and(|b| bytes > b)
                || cutoff.is_some_and(|c| wall < c);
            if !over {
                break;
            }
            let next = self
                .store
                .header(&row.hash)?
                .map(|h| next_hashes(&h))
                .unwrap_or_default();
            len -= 1;
            bytes = bytes.saturating_sub(row.size);
            doomed.push((row, next));
        }
        if doomed.is_empty() {
            return Ok(0);
        }
        self.store.remove_entries(self.id.as_bytes(), &doomed)?;
        self.trim_floor = doomed.last().map(|(row, _)| row.clock);
        for (row, _) in &doomed {
            self.heads.remove(&EntryHash(row.hash));
        }
        self.len = len;
        self.bytes = bytes;
        Ok(doomed.len())
    }
}
