//! [`Replica`]: a documents program open on a [`crate::Peer`], kept in step with the other
//! peers that have it open.
//!
//! How entries move (every replicator holds everything; sharding comes later):
//! - **Discovery**: a replica greets every connected peer with [`wire::Wire::Hello`] (its role and
//!   up to 16 replicators it knows, with addresses); every greeting is answered (a restarted
//!   peer is met again), and a replicator that learns of another tells everyone it knows. So a
//!   writer that reaches one replicator learns the others, now and later, and links to them.
//! - **Writes**: a put is signed and committed locally, then pushed straight to every known
//!   replicator over its app link (reliable, flow-controlled; many entries per message). Not
//!   through a tree: a store has many writers and, once sharded, each entry goes to the few
//!   replicas of its ring point — direct pushes are that shape already. Replicators check the
//!   signature and the access rule before storing, and acknowledge what they hold
//!   ([`Replica::wait_for_replicas`]). An observer sends again what no replicator acknowledged
//!   (every 2 s), and a replicator it meets gets the writes it has not acknowledged.
//! - **Reconciliation**: replicators run [`crate::reconcile`] with each other replicator on
//!   meeting it and every [`ReplicaOptions::reconcile_every`], over the program's entry hashes:
//!   a replicator that was offline or joins late gets exactly what it lacks, and pushes what
//!   the other lacks (the lower id of the two starts). Pushes that could not be queued (a slow
//!   link) are left to it. A message's entries are stored in one batch.
//! - **Observers** hold what they write and read from replicators ([`Replica::query_remote`],
//!   [`Replica::get_remote`]): every answer is verified (signature, program, access rule) and
//!   the query is run again over it, so a replicator can withhold documents but not forge or
//!   mis-select them.
//!
//! Bounds: remotes per program [`MAX_REMOTES`]; queued pushes per remote
//! [`ReplicaOptions::push_queue`] entries (then dropped and left to reconciliation); hashes
//! queued for a remote by reconciliation [`MAX_BACKLOG`]; reconciliation turns answered per
//! second per program [`RECONCILE_PER_S`]; an answer being collected [`MAX_ANSWER_BYTES`].

mod driver;
mod outbox;
pub(crate) mod programs;
mod sharded;
pub mod wire;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use starling_net::PeerId;
use starling_net::entry::{Entry, EntryHash};
use tokio::sync::{Notify, mpsc, oneshot};

use super::codec::{Codec, DocId, Postcard};
use super::collection::{DocumentChange, DocumentError, Documents};
use super::index::IndexVisibility;
use super::query::Query;
use crate::program::ProgramAddress;
use crate::router::Routed;
use crate::shard::Span;
pub use wire::Role;

/// Peers a replica keeps state for (replicators first: an observer is forgotten to make room).
pub const MAX_REMOTES: usize = 256;
/// Entry hashes queued for one remote by reconciliation or its requests.
pub const MAX_BACKLOG: usize = 1 << 20;
/// Reconciliation turns a replica answers per second (each reads the program's entry list).
pub const RECONCILE_PER_S: u64 = 64;
/// Bytes of one answer a replica collects before giving up on it.
pub const MAX_ANSWER_BYTES: usize = 256 << 20;
/// Rounds of a search across shards (a part not answered is asked of another holder).
const SEARCH_ROUNDS: usize = 3;
/// Own entries whose acknowledgements a replica remembers (the most recent).
pub const ACK_MEMORY: usize = 1 << 16;

/// How a replica takes part.
#[derive(Clone, Debug)]
pub struct ReplicaOptions {
    /// Replicator (holds everything) or observer. Default replicator.
    pub role: Role,
    /// How often a replicator reconciles with each other replicator. Default 2 s.
    pub reconcile_every: Duration,
    /// Entries queued per remote before pushes to it are dropped (and left to
    /// reconciliation). Default 16,384 (16 MiB of 1 KiB documents).
    pub push_queue: usize,
    /// A sharded store's ranges for this replicator (at most
    /// [`crate::shard::MAX_RANGES_PER_PEER`]). Default `None`: it listens for the others for
    /// two seconds, then takes the second half of the widest stretch of the ring.
    pub ranges: Option<Vec<crate::shard::Range>>,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        ReplicaOptions {
            role: Role::Replicator,
            reconcile_every: Duration::from_secs(2),
            push_queue: 16_384,
            ranges: None,
        }
    }
}

/// What a replica did, counted since it opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaStats {
    /// Replicators known (other than itself).
    pub replicators: u64,
    /// Entries received from others and stored (new here).
    pub applied: u64,
    /// Entries received that were here already.
    pub duplicates: u64,
    /// Entries received and refused (bad signature, access rule, malformed).
    pub rejected: u64,
    /// Messages that did not decode.
    pub malformed: u64,
    /// Entries pushed to replicators (own writes).
    pub pushed: u64,
    /// Pushes dropped because a remote's queue was full.
    pub push_dropped: u64,
    /// Entries sent because reconciliation or a request asked for them.
    pub served: u64,
    /// Reconciliation bytes sent and received (protocol only, not the entries).
    pub reconcile_bytes: u64,
    /// Reconciliation exchanges started.
    pub reconciliations: u64,
    /// Reconciliation messages received from replicators.
    pub reconcile_received: u64,
    /// Of those, messages that ended an exchange with nothing left for this replica to fetch:
    /// it held everything that replicator did (a trust graph counts itself caught up then).
    pub reconcile_settled: u64,
    /// Bytes of the entries counted in `served`.
    pub served_bytes: u64,
    /// Entries deleted because their holders confirmed holding them (sharded stores).
    pub pruned: u64,
}

/// What a search across a sharded store's replicators found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SearchAnswer<T> {
    /// The documents, in the query's order, at most its limit.
    pub documents: Vec<(DocId, T)>,
    /// Spans of the ring that did not answer in time, or that no replicator holds.
    pub unanswered: Vec<Span>,
    /// The fraction of the ring they make.
    pub missing: f64,
}

/// Where a sharded store's replica stands.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ShardStatus {
    /// It holds the data of its ranges (a newcomer is not ready until it does).
    pub ready: bool,
    /// It is handing its entries off before it goes.
    pub leaving: bool,
    /// Its ranges (none until chosen).
    pub ranges: Vec<crate::shard::Range>,
    /// Other replicators known.
    pub members: usize,
    /// The fraction of the ring whose entries have `min` ready holders, as this replica
    /// knows the membership.
    pub coverage: f64,
    /// The fraction of the ring with at least one ready holder (what a search can reach).
    pub reachable: f64,
    /// Replicators heard of that have not announced their ranges yet (until they do, the
    /// placements may be missing them).
    pub unannounced: usize,
}

#[derive(Debug, Default)]
struct Counters {
    replicators: AtomicU64,
    applied: AtomicU64,
    duplicates: AtomicU64,
    rejected: AtomicU64,
    malformed: AtomicU64,
    pushed: AtomicU64,
    push_dropped: AtomicU64,
    served: AtomicU64,
    reconcile_bytes: AtomicU64,
    reconciliations: AtomicU64,
    reconcile_received: AtomicU64,
    reconcile_settled: AtomicU64,
    served_bytes: AtomicU64,
    pruned: AtomicU64,
}

impl Counters {
    fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn snapshot(&self) -> ReplicaStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ReplicaStats {
            replicators: g(&self.replicators),
            applied: g(&self.applied),
            duplicates: g(&self.duplicates),
            rejected: g(&self.rejected),
            malformed: g(&self.malformed),
            pushed: g(&self.pushed),
            push_dropped: g(&self.push_dropped),
            served: g(&self.served),
            reconcile_bytes: g(&self.reconcile_bytes),
            reconciliations: g(&self.reconciliations),
            reconcile_received: g(&self.reconcile_received),
            reconcile_settled: g(&self.reconcile_settled),
            served_bytes: g(&self.served_bytes),
            pruned: g(&self.pruned),
        }
    }
}

/// Which replicators acknowledged the replica's recent own entries.
#[derive(Debug, Default)]
struct AckBook {
    held_by: HashMap<EntryHash, Vec<PeerId>>,
    order: VecDeque<EntryHash>,
    /// Unheld entries seen by the last resend round (sent again if still unheld next round,
    /// so a write gets at least one round to be acknowledged first).
    unheld_last_round: std::collections::HashSet<EntryHash>,
}

impl AckBook {
    fn expect(&mut self, hash: EntryHash) {
        if self.held_by.insert(hash, Vec::new()).is_none() {
            self.order.push_back(hash);
        }
        while self.order.len() > ACK_MEMORY {
            if let Some(old) = self.order.pop_front() {
                self.held_by.remove(&old);
            }
        }
    }

    fn acked(&mut self, hash: &EntryHash, by: PeerId) {
        if let Some(holders) = self.held_by.get_mut(hash)
            && !holders.contains(&by)
        {
            holders.push(by);
        }
    }

    /// Own entries no replicator has acknowledged that were unacknowledged at the last round
    /// too, oldest first.
    fn unheld_since_last_round(&mut self) -> Vec<EntryHash> {
        let unheld: Vec<EntryHash> = self
            .order
            .iter()
            .filter(|h| self.held_by.get(h).is_some_and(Vec::is_empty))
            .copied()
            .collect();
        let due = unheld
            .iter()
            .filter(|h| self.unheld_last_round.contains(h))
            .copied()
            .collect();
        self.unheld_last_round = unheld.into_iter().collect();
        due
    }

    /// Own entries held by fewer than `n` replicators.
    fn held_by_fewer_than(&self, n: usize) -> usize {
        self.held_by.values().filter(|by| by.len() < n).count()
    }

    /// Own entries remembered that `peer` has not acknowledged, oldest first.
    fn not_held_by(&self, peer: &PeerId) -> Vec<EntryHash> {
        self.order
            .iter()
            .filter(|h| self.held_by.get(h).is_some_and(|by| !by.contains(peer)))
            .copied()
            .collect()
    }

    fn holders(&self, hash: &EntryHash) -> usize {
        self.held_by.get(hash).map_or(0, Vec::len)
    }
}

/// A request from the handle to the driver.
#[derive(Debug)]
enum Cmd {
    /// Own entries to push to every replicator.
    Push(Vec<Entry>),
    /// Ask a replicator (`to`, else the first known); the entries answering it come back.
    Ask {
        wire: AskKind,
        to: Option<PeerId>,
        answer: oneshot::Sender<Result<Vec<Entry>, DocumentError>>,
    },
    /// Which replicators (not in `exclude`) to ask for which spans to cover `within` of a
    /// sharded store's ring, and the spans nobody left holds.
    Cover {
        within: Vec<Span>,
        exclude: Vec<PeerId>,
        answer: oneshot::Sender<Cover>,
    },
    /// Leave a sharded store: hand every entry off, then hold nothing.
    Leave,
    /// The settled holders of a ring point (else its target holders).
    Holders(crate::shard::Point, oneshot::Sender<Vec<PeerId>>),
}

type Cover = (Vec<(PeerId, Vec<Span>)>, Vec<Span>);

#[derive(Debug)]
enum AskKind {
    Query(Query, Vec<Span>),
    Get(DocId),
}

/// What the handle and the driver share.
struct Shared<T, C> {
    docs: Mutex<Documents<T, C>>,
    me: PeerId,
    sharded: bool,
    program: ProgramAddress,
    role: Role,
    counters: Counters,
    acks: Mutex<AckBook>,
    /// Wakes waiters when acknowledgements or replicators arrive.
    news: Notify,
    /// Replicators known now.
    replicators: Mutex<Vec<PeerId>>,
    /// A sharded store's standing, as of the driver's last tick.
    shard: Mutex<Option<ShardStatus>>,
}

impl<T, C> Shared<T, C> {
    fn docs(&self) -> std::sync::MutexGuard<'_, Documents<T, C>> {
        self.docs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A documents program open on a peer (see the module docs). Cheap to clone; the replica
/// stops when the last clone is dropped.
pub struct Replica<T, C = Postcard> {
    shared: Arc<Shared<T, C>>,
    cmds: mpsc::UnboundedSender<Cmd>,
    _driver: Arc<driver::Stop>,
}

/// See [`Replica::watch`].
pub(crate) struct ReplicaWatch<T, C> {
    shared: std::sync::Weak<Shared<T, C>>,
    /// The driver's command queue: closed once the driver stopped (the last handle went).
    cmds: mpsc::UnboundedSender<Cmd>,
}

impl<T, C> ReplicaWatch<T, C> {
    /// Resolves when the replica closed.
    pub(crate) async fn closed(&self) {
        self.cmds.closed().await;
    }

    /// `f` on the documents, or `None` when the replica closed.
    pub(crate) fn with_documents<R>(&self, f: impl FnOnce(&mut Documents<T, C>) -> R) -> Option<R> {
        if self.cmds.is_closed() {
            return None;
        }
        let shared = self.shared.upgrade()?;
        let out = f(&mut shared.docs());
        Some(out)
    }
}

impl<T, C> Clone for Replica<T, C> {
    fn clone(&self) -> Self {
        Replica {
            shared: self.shared.clone(),
            cmds: self.cmds.clone(),
            _driver: self._driver.clone(),
        }
    }
}

impl<T, C> std::fmt::Debug for Replica<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica")
            .field("program", &self.shared.program)
            .field("role", &self.shared.role)
            .finish_non_exhaustive()
    }
}

impl<T, C> Replica<T, C>
where
    T: Send + 'static,
    C: Codec<T> + Send + 'static,
{
    /// Starts replicating `docs` over `node`; its messages arrive on `inbox`.
    pub(crate) fn start(
        docs: Documents<T, C>,
        node: starling_net::overlay::OverlayNode,
        inbox: mpsc::Receiver<Routed>,
        options: ReplicaOptions,
    ) -> Replica<T, C> {
        let program = docs.program();
        let sharded = docs.sharded().is_some();
        let shared = Arc::new(Shared {
            me: node.peer_id(),
            sharded,
            docs: Mutex::new(docs),
            program,
            role: options.role,
            counters: Counters::default(),
            acks: Mutex::default(),
            news: Notify::new(),
            replicators: Mutex::default(),
            shard: Mutex::default(),
        });
        let (cmds, cmd_rx) = mpsc::unbounded_channel();
        let stop = driver::spawn(shared.clone(), node, inbox, cmd_rx, options);
        Replica {
            shared,
            cmds,
            _driver: Arc::new(stop),
        }
    }

    /// The program's address.
    pub fn address(&self) -> ProgramAddress {
        self.shared.program
    }

    /// This replica's role.
    pub fn role(&self) -> Role {
        self.shared.role
    }

    /// Puts `doc` under `id` and pushes it to the replicators.
    pub fn put(&self, id: impl Into<DocId>, doc: &T) -> Result<EntryHash, DocumentError> {
        let hashes = self.put_many([(id.into(), doc)])?;
        Ok(hashes[0])
    }

    /// Puts many documents (one signature per 256, one store batch) and pushes them.
    pub fn put_many<'a>(
        &self,
        docs: impl IntoIterator<Item = (DocId, &'a T)>,
    ) -> Result<Vec<EntryHash>, DocumentError>
    where
        T: 'a,
    {
        let entries =
            self.shared
                .docs()
                .put_entries(docs, starling_net::entry::unix_time_us(), None)?;
        let hashes = entries.iter().map(Entry::hash).collect();
        self.push(entries);
        Ok(hashes)
    }

    /// Puts `doc` encrypted to `receivers` and this peer (see [`Documents::put_encrypted`])
    /// and pushes it: replicators that are not receivers store and serve it unread, and
    /// answer queries on its published index values.
    pub fn put_encrypted(
        &self,
        id: impl Into<DocId>,
        doc: &T,
        receivers: &[starling_net::PublicKey],
    ) -> Result<EntryHash, DocumentError> {
        let hashes =
            self.put_many_encrypted([(id.into(), doc)], receivers, IndexVisibility::Public)?;
        Ok(hashes[0])
    }

    /// [`Replica::put_many`], each document encrypted to `receivers` and this peer, its
    /// index values public or sealed ([`IndexVisibility`]).
    pub fn put_many_encrypted<'a>(
        &self,
        docs: impl IntoIterator<Item = (DocId, &'a T)>,
        receivers: &[starling_net::PublicKey],
        index: IndexVisibility,
    ) -> Result<Vec<EntryHash>, DocumentError>
    where
        T: 'a,
    {
        let entries = {
            let mut store = self.shared.docs();
            let to = store.receivers(receivers)?;
            store.put_entries(
                docs,
                starling_net::entry::unix_time_us(),
                Some((&to, index)),
            )?
        };
        let hashes = entries.iter().map(Entry::hash).collect();
        self.push(entries);
        Ok(hashes)
    }

    /// Deletes `id` (a signed entry, pushed like a put); whether it was there.
    pub fn delete(&self, id: impl Into<DocId>) -> Result<bool, DocumentError> {
        let entry = self
            .shared
            .docs()
            .delete_entry(id.into(), starling_net::entry::unix_time_us())?;
        let deleted = entry.is_some();
        if let Some(e) = entry {
            self.push(vec![e]);
        }
        Ok(deleted)
    }

    fn push(&self, entries: Vec<Entry>) {
        let mut acks = self
            .shared
            .acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for e in &entries {
            acks.expect(e.hash());
        }
        drop(acks);
        let _ = self.cmds.send(Cmd::Push(entries));
    }

    /// The local version of `id`, if live.
    pub fn get(&self, id: impl Into<DocId>) -> Result<Option<T>, DocumentError> {
        self.shared.docs().get(id)
    }

    /// Live documents held here.
    pub fn count(&self) -> Result<u64, DocumentError> {
        self.shared.docs().count()
    }

    /// The documents held here that `query` selects.
    pub fn query(&self, query: &Query) -> Result<Vec<(DocId, T)>, DocumentError> {
        self.shared.docs().query(query)
    }

    /// Every change from now on, local or replicated.
    pub fn changes(&self) -> tokio::sync::broadcast::Receiver<DocumentChange> {
        self.shared.docs().changes()
    }

    /// Counters.
    pub fn stats(&self) -> ReplicaStats {
        self.shared.counters.snapshot()
    }

    /// Runs `f` on the local documents (for what the handle does not wrap).
    pub fn with_documents<R>(&self, f: impl FnOnce(&mut Documents<T, C>) -> R) -> R {
        f(&mut self.shared.docs())
    }

    /// A handle for a background task that must not keep this replica open: it reaches the
    /// documents while the replica is open and learns when it closed.
    pub(crate) fn watch(&self) -> ReplicaWatch<T, C> {
        ReplicaWatch {
            shared: Arc::downgrade(&self.shared),
            cmds: self.cmds.clone(),
        }
    }

    /// The replicators known now (other than this peer).
    pub fn replicators(&self) -> Vec<PeerId> {
        self.shared
            .replicators
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Own recent writes (the last [`ACK_MEMORY`]) held by fewer than `n` replicators, as
    /// their acknowledgements say: a writer that keeps this bounded keeps its queues bounded.
    pub fn unacknowledged(&self, n: usize) -> usize {
        self.shared
            .acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .held_by_fewer_than(n)
    }

    /// Waits until at least `n` replicators other than this peer are known.
    pub async fn wait_for_replicators(&self, n: usize, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let news = self.shared.news.notified();
            if self.replicators().len() >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, news).await.is_err() {
                return self.replicators().len() >= n;
            }
        }
    }

    /// Waits until each of `hashes` (own writes) is held by at least `n` replicators other
    /// than this peer, as their acknowledgements say; false at `timeout`.
    pub async fn wait_for_replicas(
        &self,
        hashes: &[EntryHash],
        n: usize,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let held = || {
            let acks = self
                .shared
                .acks
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            hashes.iter().all(|h| acks.holders(h) >= n)
        };
        loop {
            let news = self.shared.news.notified();
            if held() {
                return true;
            }
            if tokio::time::timeout_at(deadline, news).await.is_err() {
                return held();
            }
        }
    }

    /// Asks a replicator (`to`, else the first known, waiting for one within `timeout`).
    async fn ask(
        &self,
        kind: AskKind,
        to: Option<PeerId>,
        timeout: Duration,
    ) -> Result<Vec<Entry>, DocumentError> {
        let start = tokio::time::Instant::now();
        if to.is_none() && !self.wait_for_replicators(1, timeout).await {
            return Err(DocumentError::NoReplicator);
        }
        let timeout = timeout.saturating_sub(start.elapsed());
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Ask {
                wire: kind,
                to,
                answer: tx,
            })
            .map_err(|_| DocumentError::Closed)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(DocumentError::Closed),
            Err(_) => Err(DocumentError::Timeout),
        }
    }

    /// Runs `query` on a replicator: its answer verified entry by entry (signature, program,
    /// access rule) and selected again here (filter, sort, limit).
    pub async fn query_remote(
        &self,
        query: &Query,
        timeout: Duration,
    ) -> Result<Vec<(DocId, T)>, DocumentError> {
        if self.is_sharded() {
            let answer = self.search(query, timeout).await?;
            if answer.missing > 0.0 {
                return Err(DocumentError::Incomplete {
                    missing: answer.missing,
                });
            }
            return Ok(answer.documents);
        }
        let entries = self
            .ask(AskKind::Query(query.clone(), Vec::new()), None, timeout)
            .await?;
        let mut docs = self.shared.docs();
        let mut found = Vec::with_capacity(entries.len());
        for e in &entries {
            // Encrypted to others: not an answer this key can use.
            match docs.check_answer(e) {
                Ok((id, doc)) => found.push((id, e.hash(), doc)),
                Err(DocumentError::Unreadable { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(docs
            .select(query, found)
            .into_iter()
            .map(|(id, _, doc)| (id, doc))
            .collect())
    }

    /// `id`'s current version on a replicator (verified), if it is live there.
    pub async fn get_remote(
        &self,
        id: impl Into<DocId>,
        timeout: Duration,
    ) -> Result<Option<T>, DocumentError> {
        let id = id.into();
        let to = if self.is_sharded() {
            match self.keepers_of(&id).await?.first() {
                Some(p) => Some(*p),
                None => return Err(DocumentError::NoReplicator),
            }
        } else {
            None
        };
        if to == Some(self.shared.me) {
            return self.get(id);
        }
        let entries = self.ask(AskKind::Get(id.clone()), to, timeout).await?;
        let mut docs = self.shared.docs();
        for e in &entries {
            let (got, doc) = docs.check_answer(e)?;
            if got == id {
                return Ok(Some(doc));
            }
        }
        Ok(None)
    }
}
