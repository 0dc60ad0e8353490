//! The driver's part for a sharded store: it runs the sans-IO core of [`crate::shard`] —
//! membership from announcements and heartbeats, the two placements, this replicator's
//! duties — and does what they say over the app links: announces its ranges, routes writes to
//! the keepers of each entry's ring point, reconciles each span with the peers that keep it
//! too, fetches a newcomer's spans until their digests match a settled holder's, and prunes
//! what it no longer keeps once every target holder confirmed holding it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use starling_net::PeerId;
use starling_net::entry::{Entry, EntryHash};
use tokio::time::Instant;

use super::Driver;
use crate::documents::Codec;
use crate::documents::held::point_of_key;
use crate::documents::replica::wire::Wire;
use crate::documents::replica::{Counters, Role, ShardStatus};
use crate::reconcile::{self, Bound};
use crate::shard::{
    Announcement, Duty, Membership, Point, Range, Readiness, Ring, Span, Views, duties, partners,
    point_of,
};

/// How often a replicator announces itself (a heartbeat).
pub(super) const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// A replicator not heard for this long is taken for dead.
pub(super) const DEAD_AFTER: Duration = Duration::from_secs(3);
/// How long a replicator choosing its own ranges listens for the others first.
const JOIN_WAIT: Duration = Duration::from_secs(2);
/// How often a newcomer compares its spans with settled holders'.
const DIGEST_EVERY: Duration = Duration::from_secs(1);
/// How often a replicator looks for entries to prune.
pub(super) const PRUNE_EVERY: Duration = Duration::from_secs(2);
/// Entries a replicator reads from one span to answer a reconciliation turn, at most (76
/// bytes each: 40 MiB); a turn over more is refused.
pub(super) const SPAN_ITEMS: usize = 1 << 19;
/// Entries one reconciliation exchange covers: a longer span is cut into parts this size.
const CHUNK_ITEMS: usize = 1 << 16;
/// A partner that sent entries this recently is not reconciled with yet.
const BUSY: Duration = Duration::from_millis(500);
/// Requests (digests, holds) waiting for an answer before they are forgotten.
pub(super) const ASK_TTL: Duration = Duration::from_secs(10);

/// A sharded store's state in the driver.
pub(super) struct Sharding {
    pub(super) membership: Membership<PeerId>,
    pub(super) views: Arc<Views<PeerId>>,
    pub(super) duties: Vec<Duty<PeerId>>,
    pub(super) readiness: Readiness,
    /// Ranges chosen (given by the options, or picked after [`JOIN_WAIT`]).
    pub(super) chosen: bool,
    /// The options gave the ranges.
    pub(super) fixed: bool,
    pub(super) started: Instant,
    pub(super) next_announce: Instant,
    pub(super) next_digest: Instant,
    pub(super) next_prune: Instant,
    pub(super) next_reconcile: HashMap<PeerId, Instant>,
    /// Digest requests out: the span asked about.
    pub(super) digests: HashMap<u64, (Span, Instant)>,
    pub(super) prune: Option<super::prune::PruneRound>,
    /// Replicators that announced no ranges (left, or never chose): not waited for.
    pub(super) without_ranges: std::collections::HashSet<PeerId>,
}

impl Sharding {
    pub(super) fn new(me: PeerId, role: Role, replicas: u8, ranges: Option<Vec<Range>>) -> Self {
        let now = Instant::now();
        let fixed = ranges.is_some();
        let mine = Announcement {
            ranges: if role == Role::Replicator {
                ranges.unwrap_or_default()
            } else {
                Vec::new()
            },
            ready: false,
            leaving: false,
        };
        let mut membership = Membership::new(
            me,
            mine,
            usize::from(replicas),
            DEAD_AFTER.as_micros() as u64,
            super::MAX_REMOTES,
        );
        let views = membership.views();
        Sharding {
            membership,
            views,
            duties: Vec::new(),
            readiness: Readiness::default(),
            chosen: fixed || role == Role::Observer,
            fixed,
            started: now,
            next_announce: now,
            next_digest: now,
            next_prune: now + PRUNE_EVERY,
            next_reconcile: HashMap::new(),
            digests: HashMap::new(),
            prune: None,
            without_ranges: Default::default(),
        }
    }

    fn status(&mut self, pending: usize) -> ShardStatus {
        let replicas = self.membership.replicas();
        let coverage = self
            .membership
            .views()
            .settled
            .segments()
            .filter(|(_, holders)| holders.len() >= replicas)
            .map(|(span, _)| span.fraction())
            .sum();
        let reachable = self
            .membership
            .views()
            .settled
            .segments()
            .filter(|(_, holders)| !holders.is_empty())
            .map(|(span, _)| span.fraction())
            .sum();
        let mine = self.membership.mine();
        ShardStatus {
            ready: mine.ready,
            leaving: mine.leaving,
            ranges: mine.ranges.clone(),
            members: self.membership.len(),
            coverage,
            reachable,
            unannounced: pending,
        }
    }
}

impl<T, C> Driver<T, C>
where
    T: Send + 'static,
    C: Codec<T> + Send + 'static,
{
    fn sharding(&mut self) -> Option<&mut Sharding> {
        self.sharding.as_mut()
    }

    fn clock_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    /// Any message from `peer` says it is alive.
    pub(super) fn shard_heard(&mut self, peer: &PeerId) {
        let now = self.clock_us();
        if let Some(s) = self.sharding() {
            s.membership.heard(peer, now);
        }
    }

    pub(super) fn on_announce(&mut self, from: PeerId, announced: Announcement) {
        let now = self.clock_us();
        let replicator = !announced.ranges.is_empty();
        let Some(s) = self.sharding() else {
            return;
        };
        if announced.ranges.is_empty() {
            // Nothing to hold (gone, or never chose): not a member.
            s.membership.remove(&from);
            if s.without_ranges.len() < super::MAX_REMOTES {
                s.without_ranges.insert(from);
            }
        } else {
            s.without_ranges.remove(&from);
            if let Err(e) = s.membership.announce(from, announced, now) {
                tracing::debug!(%from, "documents: announcement not taken: {e}");
            }
        }
        if replicator {
            self.set_replicator(from);
        }
    }

    /// Whether this replicator is a settled holder of every point of `spans` (it has their
    /// data, as its own view of the ring says); a store that is not sharded: yes. Empty
    /// spans ask for everything it holds: yes.
    pub(super) fn shard_holds_settled(&mut self, spans: &[Span]) -> bool {
        let me = self.me;
        let Some(s) = self.sharding.as_mut() else {
            return true;
        };
        if spans.is_empty() {
            return true;
        }
        // A leaver is deleting what it handed off: ask the others.
        if s.membership.mine().leaving {
            return false;
        }
        // The membership as it is now (the tick's duties may be a tick old).
        let views = s.membership.views();
        let mine: Vec<Span> = crate::shard::placement::merge(
            views
                .settled
                .segments()
                .filter(|(_, holders)| holders.contains(&me))
                .map(|(span, _)| span),
        );
        spans.iter().all(|asked| {
            // Covered when the parts of `mine` inside it add up to all of it.
            let inside: f64 = mine
                .iter()
                .filter_map(|m| m.intersect(asked))
                .map(|p| p.fraction())
                .sum();
            (inside - asked.fraction()).abs() < 1e-12
        })
    }

    /// This replicator's announcement, once it has chosen its ranges.
    pub(super) fn shard_announcement(&self) -> Option<Wire> {
        let s = self.sharding.as_ref()?;
        (self.shared.role == Role::Replicator && s.chosen)
            .then(|| Wire::Announce(s.membership.mine().clone()))
    }

    /// The sharded part of a tick.
    pub(super) fn shard_tick(&mut self) {
        let now = Instant::now();
        let clock = self.clock_us();
        let me = self.me;
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        s.membership.expire(clock);
        if !s.chosen && now.duration_since(s.started) >= JOIN_WAIT {
            let ring = Ring::new(
                s.membership
                    .members()
                    .filter(|(_, a)| !a.leaving)
                    .flat_map(|(p, a)| a.ranges.iter().map(move |r| (*p, *r))),
            );
            let mut mine = s.membership.mine().clone();
            mine.ranges = ring.join_ranges(1);
            s.membership.set_mine(mine);
            s.chosen = true;
            s.next_announce = now;
        }
        // Two replicators that picked the same stretch at once (each before hearing of the
        // other): the higher id picks again.
        if s.chosen && !s.fixed {
            let clash = s.membership.members().any(|(p, a)| {
                *p < me
                    && a.ranges.iter().any(|r| {
                        s.membership
                            .mine()
                            .ranges
                            .iter()
                            .any(|m| m.offset == r.offset)
                    })
            });
            if clash {
                s.chosen = false;
                s.started = now;
                s.readiness = Readiness::default();
                let mut mine = s.membership.mine().clone();
                mine.ranges.clear();
                mine.ready = false;
                s.membership.set_mine(mine);
            }
        }
        let views = s.membership.views();
        if !Arc::ptr_eq(&views, &s.views) {
            s.views = views.clone();
            s.duties = duties(&views, &me);
            // New duties: reconcile with every partner now.
            s.next_reconcile.clear();
        }
        if self.shared.role != Role::Replicator || !s.chosen {
            self.publish_status();
            return;
        }
        if now >= s.next_announce {
            s.next_announce = now + ANNOUNCE_EVERY;
            let announce = Wire::Announce(s.membership.mine().clone());
            self.send_to_greeted(&announce);
        }
        self.shard_readiness(now);
        self.shard_reconcile(now);
        self.shard_prune(now);
        self.publish_status();
    }

    fn publish_status(&mut self) {
        // Replicators heard of lately (a hello said so, or named them) that have not
        // announced, and did not announce that they hold nothing.
        let now = Instant::now();
        let pending =
            self.remotes
                .iter()
                .filter(|(p, r)| {
                    let replicator =
                        r.role == Some(Role::Replicator) || (r.role.is_none() && r.addr.is_some());
                    let lately = r
                        .seen_at
                        .is_some_and(|t| now.duration_since(t) < DEAD_AFTER);
                    let unknown = self.sharding.as_ref().is_some_and(|s| {
                        !s.membership.contains(p) && !s.without_ranges.contains(p)
                    });
                    replicator && lately && unknown
                })
                .count();
        if let Some(s) = self.sharding.as_mut() {
            let status = s.status(pending);
            *self
                .shared
                .shard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(status);
        }
    }

    /// A newcomer asks a settled holder of each span it must fetch for its digest; equal to
    /// its own, the span is fetched. All fetched: it is ready, and says so.
    fn shard_readiness(&mut self, now: Instant) {
        let me = self.me;
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        if s.membership.mine().ready || now < s.next_digest {
            return;
        }
        s.next_digest = now + DIGEST_EVERY;
        s.digests
            .retain(|_, (_, at)| now.duration_since(*at) < ASK_TTL);
        let pending = s.readiness.pending(&s.duties, &me);
        // Nothing to fetch counts only once it has listened for the others (a replicator that
        // has not heard of any holder yet would find nothing pending).
        if pending.is_empty() && now.duration_since(s.started) >= JOIN_WAIT {
            let mut mine = s.membership.mine().clone();
            mine.ready = true;
            s.membership.set_mine(mine);
            s.next_announce = now;
            tracing::debug!(%me, "documents: shard ready");
            return;
        }
        let mut asks = Vec::new();
        for (span, settled) in pending {
            if s.digests.values().any(|(sp, _)| *sp == span) {
                continue;
            }
            // The first settled holder still a member.
            if let Some(holder) = settled.iter().find(|p| s.membership.contains(p)) {
                asks.push((*holder, span));
            }
        }
        for (holder, span) in asks {
            let request = self.next_request;
            self.next_request += 1;
            if let Some(s) = self.sharding.as_mut() {
                s.digests.insert(request, (span, now));
            }
            self.send(holder, &Wire::Digest { request, span });
        }
    }

    pub(super) fn on_digest(&mut self, from: PeerId, request: u64, span: Span) {
        if !self.query_budget.try_take(1, self.now_us()) {
            return;
        }
        let digest = self.shared.docs().held_digest(span);
        let (count, fingerprint) = match digest {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("documents: digest of a span: {e}");
                return;
            }
        };
        self.send(
            from,
            &Wire::DigestIs {
                request,
                count,
                fingerprint,
            },
        );
    }

    pub(super) fn on_digest_is(&mut self, request: u64, count: u64, fingerprint: [u8; 8]) {
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        let Some((span, _)) = s.digests.remove(&request) else {
            return;
        };
        let mine = match self.shared.docs().held_digest(span) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!("documents: digest of a span: {e}");
                return;
            }
        };
        if mine == (count, fingerprint)
            && let Some(s) = self.sharding.as_mut()
        {
            s.readiness.matched(span);
            s.next_digest = Instant::now();
        }
    }

    /// Starts an exchange over each shared span with every partner that is due: one side of
    /// each pair starts (a newcomer; else, of two ready replicators, the lower id), so a span
    /// is not moved twice.
    fn shard_reconcile(&mut self, now: Instant) {
        let me = self.me;
        let every = self.options.reconcile_every;
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        let ready = s.membership.mine().ready;
        // A leaver hands off by its prune rounds; it fetches nothing, and nobody sends it
        // what it already handed off.
        if s.membership.mine().leaving {
            return;
        }
        // A newcomer fetches each span from one settled holder (the one its digest will be
        // compared with), not from every keeper at once; once ready it reconciles as all do.
        let pairs: Vec<(PeerId, Vec<Span>)> = if ready {
            partners(&s.duties, &me).into_iter().collect()
        } else {
            let mut by: std::collections::BTreeMap<PeerId, Vec<Span>> = Default::default();
            for (span, settled) in s.readiness.pending(&s.duties, &me) {
                if let Some(p) = settled.iter().find(|p| s.membership.contains(p)) {
                    by.entry(*p).or_default().push(span);
                }
            }
            by.into_iter().collect()
        };
        let mut due: Vec<(PeerId, Vec<Span>)> = Vec::new();
        for (peer, spans) in pairs {
            let Some(theirs) = s.membership.announced(&peer) else {
                continue;
            };
            if theirs.leaving {
                continue;
            }
            let i_start = !ready || (theirs.ready && me < peer);
            // Entries still flowing either way: the next exchange waits for them.
            let busy = self.remotes.get(&peer).is_some_and(|r| {
                r.entries_at.is_some_and(|t| now.duration_since(t) < BUSY)
                    || r.outbox.as_ref().is_some_and(|o| o.backlog() > 0)
            });
            if !i_start || busy {
                continue;
            }
            let next = s.next_reconcile.entry(peer).or_insert(now);
            if *next <= now {
                *next = now + every;
                due.push((peer, spans));
            }
        }
        for (peer, spans) in due {
            for span in spans {
                self.reconcile_span(peer, span);
            }
        }
    }

    /// Exchanges over `span` with `peer`, one per part of at most [`CHUNK_ITEMS`] held
    /// entries (so neither side reads more than a part at once).
    fn reconcile_span(&mut self, peer: PeerId, span: Span) {
        let chunks = self.shared.docs().held_chunks(span, CHUNK_ITEMS);
        let chunks = match chunks {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("documents: reading a span to reconcile: {e}");
                return;
            }
        };
        for part in chunks {
            let items = self.shared.docs().held_items(part, SPAN_ITEMS);
            let items = match items {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!("documents: reading a span to reconcile: {e}");
                    return;
                }
            };
            let from = if part.start == 0 {
                Vec::new()
            } else {
                part.start.to_be_bytes().to_vec()
            };
            let to = match part.end {
                Some(e) => Bound::Key(e.to_be_bytes().to_vec()),
                None => Bound::Infinity,
            };
            let salt = rand::random();
            if let Some(r) = self.remotes.get_mut(&peer) {
                r.started_salt = Some(salt);
            }
            let first = reconcile::initiate_within(salt, &items, &from, to).encode();
            let c = &self.shared.counters;
            Counters::add(&c.reconciliations, 1);
            Counters::add(&c.reconcile_bytes, first.len() as u64);
            self.send(peer, &Wire::Reconcile(first));
        }
    }

    /// The items a reconciliation message needs from this replicator: its held entries in
    /// the message's extent.
    pub(super) fn shard_items(
        &self,
        message: &reconcile::Message,
    ) -> Result<Vec<reconcile::Item>, String> {
        let Some((lower, upper)) = message.extent() else {
            return Ok(Vec::new());
        };
        let span = Span {
            start: point_of_key(&lower),
            end: match upper {
                Bound::Key(k) => point_of_key(&k).checked_add(1),
                Bound::Infinity => None,
            },
        };
        self.shared
            .docs()
            .held_items(span, SPAN_ITEMS)
            .map_err(|e| e.to_string())
    }

    /// Own writes go to the keepers of each entry's point.
    pub(super) fn shard_push(&mut self, entries: Vec<Entry>) {
        let me = self.me;
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        let views = s.membership.views();
        let mut by_peer: HashMap<PeerId, Vec<Entry>> = HashMap::new();
        for e in entries {
            for k in views.keepers(point_of(&e.group())) {
                if k != me {
                    by_peer.entry(k).or_default().push(e.clone());
                }
            }
        }
        for (peer, entries) in by_peer {
            let Some(out) = self.outbox(peer) else {
                continue;
            };
            let dropped = entries.into_iter().filter(|e| !out.push(e.clone())).count();
            if dropped > 0 {
                Counters::add(&self.shared.counters.push_dropped, dropped as u64);
            }
        }
    }

    /// Own unacknowledged writes sent again, each to its keepers (an observer's resend).
    pub(super) fn shard_serve_to_keepers(&mut self, hashes: Vec<EntryHash>) {
        let me = self.me;
        let mut by_peer: HashMap<PeerId, Vec<EntryHash>> = HashMap::new();
        {
            let Some(s) = self.sharding.as_mut() else {
                return;
            };
            let views = s.membership.views();
            let docs = self.shared.docs();
            for h in hashes {
                let Ok(Some(e)) = docs.entry(&h) else {
                    continue;
                };
                for k in views.keepers(point_of(&e.group())) {
                    if k != me {
                        by_peer.entry(k).or_default().push(h);
                    }
                }
            }
        }
        for (peer, hashes) in by_peer {
            if let Some(out) = self.outbox(peer) {
                out.serve(hashes);
            }
        }
    }

    /// The settled holders of `point` that are members (else its target holders): whom to
    /// ask for one document.
    pub(super) fn shard_holders(&mut self, point: Point) -> Vec<PeerId> {
        let Some(s) = self.sharding.as_mut() else {
            return Vec::new();
        };
        let views = s.membership.views();
        let settled = views.settled.holders(point);
        if settled.is_empty() {
            views.target.holders(point).to_vec()
        } else {
            settled.to_vec()
        }
    }

    /// Which peers to ask, each for which spans, so that together they cover the ring:
    /// settled holders (they have the data; a newcomer is asked once it is ready), this
    /// replicator first for what it holds, then whoever covers most of what is left. Spans
    /// nobody holds are returned apart.
    pub(super) fn shard_cover(
        &mut self,
        within: &[Span],
        exclude: &[PeerId],
    ) -> (Vec<(PeerId, Vec<Span>)>, Vec<Span>) {
        let me = self.me;
        let i_replicate = self.shared.role == Role::Replicator;
        let Some(s) = self.sharding.as_mut() else {
            return (Vec::new(), vec![Span::ALL]);
        };
        let views = s.membership.views();
        let mut left: Vec<(Span, Vec<PeerId>)> = Vec::new();
        for (segment, holders) in views.settled.segments() {
            let mut holders: Vec<PeerId> = holders
                .iter()
                .filter(|p| !exclude.contains(p))
                .copied()
                .collect();
            // Leavers are asked last: they delete what they handed off.
            let leaving = |p: &PeerId| s.membership.announced(p).is_some_and(|a| a.leaving);
            if holders.iter().any(|p| !leaving(p)) {
                holders.retain(|p| !leaving(p));
            }
            for w in within {
                if let Some(part) = segment.intersect(w) {
                    left.push((part, holders.clone()));
                }
            }
        }
        left.sort_by_key(|(s, _)| *s);
        let mut out: Vec<(PeerId, Vec<Span>)> = Vec::new();
        let mut take = |peer: PeerId, left: &mut Vec<(Span, Vec<PeerId>)>| {
            let (mine, rest): (Vec<_>, Vec<_>) =
                left.drain(..).partition(|(_, h)| h.contains(&peer));
            *left = rest;
            if !mine.is_empty() {
                out.push((
                    peer,
                    crate::shard::placement::merge(mine.into_iter().map(|(s, _)| s)),
                ));
            }
        };
        if i_replicate && s.membership.mine().ready && !exclude.contains(&me) {
            take(me, &mut left);
        }
        loop {
            let mut weight: HashMap<PeerId, f64> = HashMap::new();
            for (span, holders) in &left {
                for h in holders {
                    *weight.entry(*h).or_default() += span.fraction();
                }
            }
            let Some((best, _)) = weight
                .into_iter()
                .max_by(|a, b| a.1.total_cmp(&b.1).then_with(|| b.0.cmp(&a.0)))
            else {
                break;
            };
            take(best, &mut left);
        }
        (out, left.into_iter().map(|(s, _)| s).collect())
    }
}
