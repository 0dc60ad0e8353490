//! The replica's task: greets peers, handles the documents protocol's messages, pushes own
//! writes, starts reconciliations, and keeps the remotes table (see the parent module).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use starling_net::PeerId;
use starling_net::entry::{Entry, unix_time_us};
use starling_net::overlay::{OverlayNode, TokenBucket};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

mod prune;
mod sharded;

use super::outbox::Outbox;
use super::wire::{ENTRIES_BYTES, MAX_HELLO_PEERS, Role, Wire};
use super::{
    AskKind, Cmd, Counters, MAX_ANSWER_BYTES, MAX_REMOTES, RECONCILE_PER_S, ReplicaOptions, Shared,
};
use crate::documents::collection::{Applied, DocumentError, Reader};
use crate::documents::{Codec, Query};
use crate::reconcile::{self, Item};
use crate::router::Routed;

/// How often the driver looks for new neighbours and due reconciliations.
const TICK: Duration = Duration::from_millis(250);
/// Queries and gets answered per second per program.
const QUERIES_PER_S: u64 = 256;
/// Requests of this replica waiting for an answer, at most.
const MAX_REQUESTS: usize = 1024;
/// How long a request waits for its answer before it is forgotten.
const REQUEST_TTL: Duration = Duration::from_secs(60);
/// How often an observer sends again its own writes no replicator has acknowledged.
const RESEND_EVERY: Duration = Duration::from_secs(2);

/// Stops the driver when dropped (the last handle went away).
#[derive(Debug)]
pub(super) struct Stop(tokio::task::JoinHandle<()>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub(super) fn spawn<T, C>(
    shared: Arc<Shared<T, C>>,
    node: OverlayNode,
    inbox: mpsc::Receiver<Routed>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    options: ReplicaOptions,
) -> Stop
where
    T: Send + 'static,
    C: Codec<T> + Send + 'static,
{
    let driver = Driver {
        me: node.peer_id(),
        my_addr: node.local_addr(),
        shared,
        node,
        options,
        remotes: HashMap::new(),
        requests: HashMap::new(),
        next_request: 1,
        snapshot: None,
        reconcile_budget: TokenBucket::new(RECONCILE_PER_S, RECONCILE_PER_S),
        query_budget: TokenBucket::new(QUERIES_PER_S, QUERIES_PER_S),
        start: Instant::now(),
        next_resend: Instant::now() + RESEND_EVERY,
        announce: false,
        sharding: None,
    };
    let mut driver = driver;
    let replicas = driver.shared.docs().sharded();
    driver.sharding = replicas.map(|r| {
        sharded::Sharding::new(
            driver.me,
            driver.shared.role,
            r,
            driver.options.ranges.clone(),
        )
    });
    Stop(tokio::spawn(driver.run(inbox, cmds)))
}

/// What a replica knows of one peer.
#[derive(Debug, Default)]
struct Remote {
    /// As its hello said (`None` before one arrived).
    role: Option<Role>,
    /// Where to dial it, as a hello named it.
    addr: Option<SocketAddr>,
    /// We sent it our hello.
    greeted: bool,
    outbox: Option<Outbox>,
    /// When to reconcile with it next (replicators).
    next_reconcile: Option<Instant>,
    /// When it last sent entries (a sharded replica does not reconcile with a peer whose
    /// entries are still arriving: the exchange would ask for them again).
    entries_at: Option<Instant>,
    /// When it was last heard from, or named by another (a sharded store's searcher waits
    /// for the replicators it heard of recently to announce; not for long-gone ones).
    seen_at: Option<Instant>,
    /// The salt of the exchange this replica last started with it: a closing turn counts as
    /// settled only when it names that exchange (an unsolicited one is ignored).
    started_salt: Option<u64>,
}

struct Request {
    peer: PeerId,
    answer: oneshot::Sender<Result<Vec<Entry>, DocumentError>>,
    got: Vec<Entry>,
    bytes: usize,
    asked: Instant,
}

struct Driver<T, C> {
    me: PeerId,
    my_addr: SocketAddr,
    shared: Arc<Shared<T, C>>,
    node: OverlayNode,
    options: ReplicaOptions,
    remotes: HashMap<PeerId, Remote>,
    requests: HashMap<u64, Request>,
    next_request: u64,
    /// The program's items at a documents generation (reconciliation reads it each turn).
    snapshot: Option<(u64, Arc<Vec<Item>>)>,
    reconcile_budget: TokenBucket,
    query_budget: TokenBucket,
    start: Instant,
    /// When an observer next sends unacknowledged writes again.
    next_resend: Instant,
    /// A replicator was learned of since the last tick: tell every remote.
    announce: bool,
    /// A sharded store's state (`None`: every replicator holds everything).
    sharding: Option<sharded::Sharding>,
}

impl<T, C> Driver<T, C>
where
    T: Send + 'static,
    C: Codec<T> + Send + 'static,
{
    async fn run(
        mut self,
        mut inbox: mpsc::Receiver<Routed>,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                msg = inbox.recv() => match msg {
                    Some(m) => self.on_message(m),
                    None => return,
                },
                cmd = cmds.recv() => match cmd {
                    Some(c) => self.on_cmd(c),
                    None => return,
                },
                _ = tick.tick() => self.on_tick().await,
            }
        }
    }

    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// The remotes that said they replicate, in id order (the first is the one asked).
    fn replicator_peers(&self) -> Vec<PeerId> {
        let mut out: Vec<PeerId> = self
            .remotes
            .iter()
            .filter(|(_, r)| r.role == Some(Role::Replicator))
            .map(|(p, _)| *p)
            .collect();
        out.sort();
        out
    }

    fn is_replicator(&self) -> bool {
        self.shared.role == Role::Replicator
    }

    /// The remote's entry, made if there is room (an observer gives way to a replicator).
    fn remote(&mut self, peer: PeerId, replicator: bool) -> Option<&mut Remote> {
        if peer == self.me {
            return None;
        }
        if !self.remotes.contains_key(&peer) && self.remotes.len() >= MAX_REMOTES {
            let observer = replicator
                .then(|| {
                    self.remotes
                        .iter()
                        .find(|(_, r)| r.role != Some(Role::Replicator))
                        .map(|(p, _)| *p)
                })
                .flatten()?;
            self.remotes.remove(&observer);
        }
        Some(self.remotes.entry(peer).or_default())
    }

    fn outbox(&mut self, peer: PeerId) -> Option<&Outbox> {
        let (node, shared, queue) = (
            self.node.clone(),
            self.shared.clone(),
            self.options.push_queue,
        );
        let remote = self.remote(peer, false)?;
        Some(
            remote
                .outbox
                .get_or_insert_with(|| Outbox::start(peer, node, shared, queue)),
        )
    }

    /// Sends `wire` to every remote this replica has greeted.
    fn send_to_greeted(&mut self, wire: &Wire) {
        let greeted: Vec<PeerId> = self
            .remotes
            .iter()
            .filter(|(_, r)| r.greeted)
            .map(|(p, _)| *p)
            .collect();
        for peer in greeted {
            self.send(peer, wire);
        }
    }

    fn send(&mut self, peer: PeerId, wire: &Wire) {
        let bytes = wire.encode(&self.shared.program);
        if let Some(out) = self.outbox(peer) {
            out.control(bytes);
        }
    }

    fn hello(&self, greeting: bool) -> Wire {
        let mut replicators: Vec<(PeerId, SocketAddr)> = Vec::new();
        if self.is_replicator() && !self.my_addr.ip().is_unspecified() {
            replicators.push((self.me, self.my_addr));
        }
        for (peer, r) in &self.remotes {
            if replicators.len() >= MAX_HELLO_PEERS {
                break;
            }
            if let (Some(Role::Replicator), Some(addr)) = (r.role, r.addr) {
                replicators.push((*peer, addr));
            }
        }
        Wire::Hello {
            role: self.shared.role,
            greeting,
            replicators,
        }
    }

    /// Sends `peer` our hello: a greeting (it answers with its own) or an answer.
    fn greet(&mut self, peer: PeerId, greeting: bool) {
        let hello = self.hello(greeting);
        if let Some(r) = self.remote(peer, false) {
            r.greeted = true;
            self.send(peer, &hello);
            // A sharded store's replicator says what it holds at once (not at the next
            // heartbeat): a writer or searcher that just came needs it first.
            if let Some(announce) = self.shard_announcement() {
                self.send(peer, &announce);
            }
        }
    }

    async fn on_tick(&mut self) {
        for peer in self.node.neighbours().await {
            if !self.remotes.get(&peer).is_some_and(|r| r.greeted) {
                self.greet(peer, true);
            }
        }
        let named: Vec<PeerId> = self
            .remotes
            .iter()
            .filter(|(_, r)| !r.greeted && r.addr.is_some())
            .map(|(p, _)| *p)
            .collect();
        for peer in named {
            self.greet(peer, true);
        }
        if std::mem::take(&mut self.announce) {
            let hello = self.hello(false);
            self.send_to_greeted(&hello);
        }
        let now = Instant::now();
        if self.sharding.is_some() {
            self.shard_tick();
        } else if self.is_replicator() {
            let due: Vec<PeerId> = self
                .remotes
                .iter()
                .filter(|(_, r)| {
                    r.role == Some(Role::Replicator) && r.next_reconcile.is_some_and(|t| t <= now)
                })
                .map(|(p, _)| *p)
                .collect();
            for peer in due {
                self.reconcile_with(peer);
            }
        }
        if !self.is_replicator() && now >= self.next_resend {
            self.next_resend = now + RESEND_EVERY;
            self.resend_unheld();
        }
        let expired: Vec<u64> = self
            .requests
            .iter()
            .filter(|(_, r)| now.duration_since(r.asked) > REQUEST_TTL)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.requests.remove(&id);
        }
    }

    /// Starts an exchange with `peer` (a replicator).
    fn reconcile_with(&mut self, peer: PeerId) {
        let every = self.options.reconcile_every;
        if let Some(r) = self.remotes.get_mut(&peer) {
            r.next_reconcile = Some(Instant::now() + every);
        }
        let items = match self.items() {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!("documents: reading entries to reconcile: {e}");
                return;
            }
        };
        let salt = rand::random();
        if let Some(r) = self.remotes.get_mut(&peer) {
            r.started_salt = Some(salt);
        }
        let first = reconcile::initiate(salt, &items).encode();
        let c = &self.shared.counters;
        Counters::add(&c.reconciliations, 1);
        Counters::add(&c.reconcile_bytes, first.len() as u64);
        self.send(peer, &Wire::Reconcile(first));
    }

    fn items(&mut self) -> Result<Arc<Vec<Item>>, DocumentError> {
        let docs = self.shared.docs();
        let generation = docs.generation();
        if let Some((g, items)) = &self.snapshot
            && *g == generation
        {
            return Ok(items.clone());
        }
        let items = Arc::new(docs.items()?);
        drop(docs);
        self.snapshot = Some((generation, items.clone()));
        Ok(items)
    }

    fn set_replicator(&mut self, peer: PeerId) {
        let mut list = self
            .shared
            .replicators
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !list.contains(&peer) {
            list.push(peer);
            Counters::add(&self.shared.counters.replicators, 1);
            // Everyone we know hears of it (a writer met before it must learn of it too).
            self.announce = true;
        }
        drop(list);
        self.shared.news.notify_waiters();
    }

    fn on_message(&mut self, msg: Routed) {
        let wire = match Wire::program_of(&msg.body).and_then(|(_, rest)| Wire::decode(rest)) {
            Ok(w) => w,
            Err(e) => {
                tracing::debug!(origin = %msg.origin, "bad documents message: {e}");
                Counters::add(&self.shared.counters.malformed, 1);
                return;
            }
        };
        let from = msg.origin;
        self.shard_heard(&from);
        if let Some(r) = self.remotes.get_mut(&from) {
            r.seen_at = Some(Instant::now());
        }
        match wire {
            Wire::Hello {
                role,
                greeting,
                replicators,
            } => self.on_hello(from, role, greeting, replicators),
            Wire::Entries { ack, entries } => self.on_entries(from, ack, entries),
            Wire::Ack(hashes) => {
                let mut acks = self
                    .shared
                    .acks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                for h in &hashes {
                    acks.acked(h, from);
                }
                drop(acks);
                self.shared.news.notify_waiters();
            }
            Wire::Reconcile(body) => self.on_reconcile(from, &body),
            Wire::Want(ids) => {
                let mut hashes = Vec::new();
                {
                    let docs = self.shared.docs();
                    for id in &ids {
                        match docs.hashes_by_id(id) {
                            Ok(h) => hashes.extend(h),
                            Err(e) => tracing::warn!("documents: looking up a wanted id: {e}"),
                        }
                    }
                }
                if let Some(out) = self.outbox(from) {
                    out.serve(hashes);
                }
            }
            Wire::Query {
                request,
                query,
                spans,
            } => self.on_query(from, request, Some((query, spans)), None),
            Wire::Get { request, id } => self.on_query(from, request, None, Some(id)),
            Wire::Announce(a) => self.on_announce(from, a),
            Wire::Digest { request, span } => self.on_digest(from, request, span),
            Wire::DigestIs {
                request,
                count,
                fingerprint,
            } => self.on_digest_is(request, count, fingerprint),
            Wire::Holds { request, hashes } => self.on_holds(from, request, hashes),
            Wire::NotHeld { request } => {
                if self.requests.get(&request).is_some_and(|r| r.peer == from)
                    && let Some(req) = self.requests.remove(&request)
                {
                    let _ = req.answer.send(Err(DocumentError::NotHeld));
                }
            }
            Wire::Held { request, held } => self.on_held(from, request, held),
            Wire::Answer {
                request,
                done,
                entries,
            } => self.on_answer(from, request, done, entries),
        }
    }

    fn on_hello(
        &mut self,
        from: PeerId,
        role: Role,
        greeting: bool,
        named: Vec<(PeerId, SocketAddr)>,
    ) {
        let is_replicator = role == Role::Replicator;
        let i_replicate = self.is_replicator();
        // Of two replicators, the one with the lower id starts their exchanges (one exchange
        // moves entries both ways; two at once would do the work twice).
        let i_start = self.me < from;
        let Some(remote) = self.remote(from, is_replicator) else {
            return;
        };
        // A greeting from a peer we knew: it restarted, or met us again.
        let fresh = remote.role.is_none() || greeting;
        remote.role = Some(role);
        let greeted = remote.greeted;
        if is_replicator && i_replicate && i_start && fresh {
            // Meeting a replicator: reconcile at once.
            remote.next_reconcile = Some(Instant::now());
        }
        for (peer, addr) in named {
            if peer == from {
                if let Some(r) = self.remotes.get_mut(&from) {
                    r.addr = Some(addr);
                }
                continue;
            }
            if peer == self.me || self.remotes.contains_key(&peer) {
                continue;
            }
            // A claim only: the peer is greeted, and counts once it answers itself.
            self.node.heard(peer, addr);
            if let Some(r) = self.remote(peer, false) {
                r.addr = Some(addr);
                r.seen_at = Some(Instant::now());
            }
        }
        if is_replicator {
            self.set_replicator(from);
            // (A replicator's own writes reach others by reconciliation.)
            // (A sharded store's observer resends each write to its keepers instead.)
            if fresh && !i_replicate && self.sharding.is_none() {
                self.send_unacknowledged(from);
            }
        }
        // Answer every greeting (ours may have come before the program was open there, or
        // before the peer restarted); a peer not greeted yet is greeted too.
        if greeting || !greeted {
            self.greet(from, false);
        }
    }

    /// Sends a replicator met just now the own writes it has not acknowledged (those made
    /// before it was known, or pushed while its queue was full), from the store.
    fn send_unacknowledged(&mut self, to: PeerId) {
        let hashes = self
            .shared
            .acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .not_held_by(&to);
        if !hashes.is_empty()
            && let Some(out) = self.outbox(to)
        {
            out.serve(hashes);
        }
    }

    /// An observer's own writes that no replicator acknowledged since the last round (a full
    /// queue dropped them, or the replicator was down), sent again to one replicator: any
    /// holder is enough, replicators reconcile the rest.
    fn resend_unheld(&mut self) {
        let mut acks = self
            .shared
            .acks
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let hashes = acks.unheld_since_last_round();
        drop(acks);
        if hashes.is_empty() {
            return;
        }
        if self.sharding.is_some() {
            self.shard_serve_to_keepers(hashes);
            return;
        }
        if let Some(peer) = self.replicator_peers().first().copied()
            && let Some(out) = self.outbox(peer)
        {
            out.serve(hashes);
        }
    }

    fn on_entries(&mut self, from: PeerId, ack: bool, entries: Vec<Entry>) {
        if !self.is_replicator() {
            Counters::add(&self.shared.counters.rejected, entries.len() as u64);
            return;
        }
        if let Some(r) = self.remotes.get_mut(&from) {
            r.entries_at = Some(Instant::now());
        }
        let results = self
            .shared
            .docs()
            .apply_many_at(entries.clone(), unix_time_us());
        let mut held = Vec::new();
        let c = &self.shared.counters;
        for (entry, result) in entries.iter().zip(results) {
            match result {
                Ok(Applied::Duplicate) => {
                    Counters::add(&c.duplicates, 1);
                    held.push(entry.hash());
                }
                Ok(_) => {
                    Counters::add(&c.applied, 1);
                    held.push(entry.hash());
                }
                Err(e) => {
                    tracing::debug!(%from, "documents: entry refused: {e}");
                    Counters::add(&c.rejected, 1);
                }
            }
        }
        if ack && !held.is_empty() {
            self.send(from, &Wire::Ack(held));
        }
    }

    fn on_reconcile(&mut self, from: PeerId, body: &[u8]) {
        if !self.is_replicator() || !self.reconcile_budget.try_take(1, self.now_us()) {
            return;
        }
        Counters::add(&self.shared.counters.reconcile_bytes, body.len() as u64);
        Counters::add(&self.shared.counters.reconcile_received, 1);
        let mut closing = None;
        // A closing turn for no exchange this replica started (or one since replaced).
        let mut unsolicited = false;
        let outcome = reconcile::Message::decode(body)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                if m.is_settled() {
                    // The other side found the sets equal: settled here too when it closes
                    // the exchange this replica started; never answered.
                    let ours = self.remotes.get(&from).and_then(|r| r.started_salt);
                    unsolicited = ours != Some(m.salt);
                    return Ok(reconcile::Outcome::default());
                }
                closing = Some(m.salt);
                let items = if self.sharding.is_some() {
                    Arc::new(self.shard_items(&m)?)
                } else {
                    self.items().map_err(|e| e.to_string())?
                };
                reconcile::respond(&items, &m).map_err(|e| e.to_string())
            });
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                tracing::debug!(%from, "documents: reconciliation refused: {e}");
                Counters::add(&self.shared.counters.malformed, 1);
                return;
            }
        };
        if !outcome.they_lack.is_empty() {
            let hashes = outcome.they_lack.iter().map(|it| {
                let mut h = [0; 32];
                h.copy_from_slice(&it[starling_net::entry::CLOCK_KEY_LEN..]);
                starling_net::entry::EntryHash(h)
            });
            let hashes: Vec<_> = hashes.collect();
            if let Some(out) = self.outbox(from) {
                out.serve(hashes);
            }
        }
        if !unsolicited && outcome.we_lack.is_empty() && outcome.reply.is_none() {
            Counters::add(&self.shared.counters.reconcile_settled, 1);
            // Equal sets: say so, unless the turn was itself the end. (Not while serving what
            // the other side lacks: it is not in sync until that arrives.)
            if let Some(salt) = closing
                && outcome.they_lack.is_empty()
            {
                let bytes = reconcile::Message::settled(salt).encode();
                Counters::add(&self.shared.counters.reconcile_bytes, bytes.len() as u64);
                self.send(from, &Wire::Reconcile(bytes));
            }
        }
        for ids in outcome.we_lack.chunks(reconcile::MAX_IDS) {
            self.send(from, &Wire::Want(ids.to_vec()));
        }
        if let Some(reply) = outcome.reply {
            let bytes = reply.encode();
            Counters::add(&self.shared.counters.reconcile_bytes, bytes.len() as u64);
            self.send(from, &Wire::Reconcile(bytes));
        }
    }

    fn on_query(
        &mut self,
        from: PeerId,
        request: u64,
        query: Option<(Query, Vec<crate::shard::Span>)>,
        id: Option<crate::documents::DocId>,
    ) {
        if !self.is_replicator() || !self.query_budget.try_take(1, self.now_us()) {
            return;
        }
        // A sharded store's part of a search: answered only by a settled holder of it all.
        if let Some((_, spans)) = &query
            && !self.shard_holds_settled(spans)
        {
            self.send(from, &Wire::NotHeld { request });
            return;
        }
        let answer = (|| -> Result<Vec<Entry>, DocumentError> {
            let docs = self.shared.docs();
            if let Some((q, spans)) = query {
                // The asker's key is in its PeerId: its answer holds the encrypted documents
                // encrypted to it, and no other (every Starling id carries its key).
                let Ok(asker) = starling_net::PublicKey::from_peer_id(&from) else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for (_, head, _) in docs.query_in(&q, &spans, Reader::Peer(&asker))? {
                    out.extend(docs.entry(&head)?);
                }
                return Ok(out);
            }
            match id {
                Some(id) => Ok(docs.live_entry(&id)?.into_iter().collect()),
                None => Ok(Vec::new()),
            }
        })();
        let entries = match answer {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!("documents: answering a query: {e}");
                Vec::new()
            }
        };
        // In parts of ENTRIES_BYTES, the last one marked.
        let mut part = Vec::new();
        let mut bytes = 0;
        let mut parts = Vec::new();
        for e in entries {
            bytes += e.size();
            part.push(e);
            if bytes >= ENTRIES_BYTES {
                parts.push(std::mem::take(&mut part));
                bytes = 0;
            }
        }
        parts.push(part);
        let last = parts.len() - 1;
        for (i, entries) in parts.into_iter().enumerate() {
            self.send(
                from,
                &Wire::Answer {
                    request,
                    done: i == last,
                    entries,
                },
            );
        }
    }

    fn on_answer(&mut self, from: PeerId, request: u64, done: bool, entries: Vec<Entry>) {
        let Some(req) = self.requests.get_mut(&request) else {
            return;
        };
        if req.peer != from {
            return;
        }
        req.bytes += entries.iter().map(Entry::size).sum::<usize>();
        req.got.extend(entries);
        if req.bytes > MAX_ANSWER_BYTES {
            if let Some(req) = self.requests.remove(&request) {
                let _ = req.answer.send(Err(DocumentError::AnswerTooLarge));
            }
            return;
        }
        if done && let Some(req) = self.requests.remove(&request) {
            let _ = req.answer.send(Ok(req.got));
        }
    }

    fn on_cmd(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Push(entries) if self.sharding.is_some() => {
                Counters::add(&self.shared.counters.pushed, entries.len() as u64);
                self.shard_push(entries);
            }
            Cmd::Cover {
                within,
                exclude,
                answer,
            } => {
                let _ = answer.send(self.shard_cover(&within, &exclude));
            }
            Cmd::Leave => self.shard_leave(),
            Cmd::Holders(point, answer) => {
                let _ = answer.send(self.shard_holders(point));
            }
            Cmd::Push(entries) => {
                let replicators = self.replicator_peers();
                let c = &self.shared.counters;
                Counters::add(&c.pushed, entries.len() as u64);
                for peer in replicators {
                    let Some(out) = self.outbox(peer) else {
                        continue;
                    };
                    let mut dropped = 0;
                    for e in &entries {
                        if !out.push(e.clone()) {
                            dropped += 1;
                        }
                    }
                    if dropped > 0 {
                        Counters::add(&self.shared.counters.push_dropped, dropped);
                    }
                }
            }
            Cmd::Ask { wire, to, answer } => {
                let Some(peer) = to.or_else(|| self.replicator_peers().first().copied()) else {
                    let _ = answer.send(Err(DocumentError::NoReplicator));
                    return;
                };
                if self.requests.len() >= MAX_REQUESTS {
                    let _ = answer.send(Err(DocumentError::TooManyRequests));
                    return;
                }
                let request = self.next_request;
                self.next_request += 1;
                let message = match wire {
                    AskKind::Query(query, spans) => Wire::Query {
                        request,
                        query,
                        spans,
                    },
                    AskKind::Get(id) => Wire::Get { request, id },
                };
                self.requests.insert(
                    request,
                    Request {
                        peer,
                        answer,
                        got: Vec::new(),
                        bytes: 0,
                        asked: Instant::now(),
                    },
                );
                self.send(peer, &message);
            }
        }
    }
}
