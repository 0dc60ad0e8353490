//! Pruning in a sharded store: what a replicator no longer keeps (a leaver: everything) is
//! asked about at every target holder (`Holds`), sent to those that lack it, and deleted only
//! once all of them confirmed holding it — never on a guess.

use std::collections::HashMap;

use starling_net::PeerId;
use starling_net::entry::EntryHash;
use tokio::time::Instant;

use super::Driver;
use super::sharded::{ASK_TTL, PRUNE_EVERY};
use crate::documents::Codec;
use crate::documents::held::item_hash;
use crate::documents::replica::Counters;
use crate::documents::replica::wire::{MAX_HOLDS, Wire};
use crate::shard::{Span, handoff, prunable};

/// Entries this replicator no longer keeps, waiting for their target holders' confirmations.
pub(super) struct PruneRound {
    hashes: Vec<EntryHash>,
    /// Confirmations per entry.
    confirmed: Vec<u8>,
    /// Confirmations each entry needs (its target holders).
    needed: Vec<u8>,
    /// Requests out, with the entry indexes each asked about.
    waiting: HashMap<u64, (PeerId, Vec<usize>)>,
    asked: Instant,
}

impl<T, C> Driver<T, C>
where
    T: Send + 'static,
    C: Codec<T> + Send + 'static,
{
    /// Starts leaving (see `Replica::leave`): announced at once, pruning looked at now.
    pub(super) fn shard_leave(&mut self) {
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        let mut mine = s.membership.mine().clone();
        mine.leaving = true;
        s.membership.set_mine(mine);
        let now = Instant::now();
        s.next_announce = now;
        s.next_prune = now;
    }

    /// What this replicator no longer keeps (a leaver: everything) goes once all its target
    /// holders confirm holding it; what they lack is sent to them first.
    pub(super) fn shard_prune(&mut self, now: Instant) {
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        if let Some(round) = &s.prune {
            if now.duration_since(round.asked) < ASK_TTL && !round.waiting.is_empty() {
                return;
            }
            s.prune = None;
        }
        if now < s.next_prune || !s.membership.mine().ready {
            return;
        }
        s.next_prune = now + PRUNE_EVERY;
        let spans = if s.membership.mine().leaving {
            handoff(&s.duties)
        } else {
            prunable(&s.duties)
        };
        // Up to MAX_HOLDS entries, from the first spans that hold any.
        let mut hashes: Vec<(EntryHash, Vec<PeerId>)> = Vec::new();
        for (span, holders) in spans {
            let room = MAX_HOLDS - hashes.len();
            if room == 0 {
                break;
            }
            let items = match self.shared.docs().held_first(span, room) {
                Ok(items) => items,
                Err(e) => {
                    tracing::warn!("documents: reading a span to prune: {e}");
                    continue;
                }
            };
            for it in items.iter().take(room) {
                hashes.push((item_hash(it), holders.clone()));
            }
        }
        if hashes.is_empty() {
            // A leaver that handed everything off is gone: it says so (no ranges).
            if let Some(s) = self.sharding.as_mut()
                && s.membership.mine().leaving
                && !s.membership.mine().ranges.is_empty()
            {
                let held = self.shared.docs().held_first(Span::ALL, 1);
                if matches!(held, Ok(v) if v.is_empty()) {
                    let mut mine = s.membership.mine().clone();
                    mine.ranges.clear();
                    s.membership.set_mine(mine);
                    s.next_announce = now;
                }
            }
            return;
        }
        let mut by_peer: HashMap<PeerId, Vec<usize>> = HashMap::new();
        for (i, (_, holders)) in hashes.iter().enumerate() {
            for h in holders {
                by_peer.entry(*h).or_default().push(i);
            }
        }
        let mut round = PruneRound {
            confirmed: vec![0; hashes.len()],
            needed: hashes.iter().map(|(_, h)| h.len() as u8).collect(),
            hashes: hashes.into_iter().map(|(h, _)| h).collect(),
            waiting: HashMap::new(),
            asked: now,
        };
        let mut asks = Vec::new();
        for (peer, idx) in by_peer {
            let request = self.next_request;
            self.next_request += 1;
            let hashes: Vec<EntryHash> = idx.iter().map(|&i| round.hashes[i]).collect();
            round.waiting.insert(request, (peer, idx));
            asks.push((peer, Wire::Holds { request, hashes }));
        }
        if let Some(s) = self.sharding.as_mut() {
            s.prune = Some(round);
        }
        for (peer, wire) in asks {
            self.send(peer, &wire);
        }
    }

    pub(super) fn on_holds(&mut self, from: PeerId, request: u64, hashes: Vec<EntryHash>) {
        if !self.query_budget.try_take(1, self.now_us()) {
            return;
        }
        let held = self.shared.docs().holds(&hashes);
        match held {
            Ok(held) => self.send(from, &Wire::Held { request, held }),
            Err(e) => tracing::warn!("documents: answering holds: {e}"),
        }
    }

    pub(super) fn on_held(&mut self, from: PeerId, request: u64, held: Vec<bool>) {
        let Some(s) = self.sharding.as_mut() else {
            return;
        };
        let Some(round) = s.prune.as_mut() else {
            return;
        };
        match round.waiting.get(&request) {
            Some((peer, _)) if *peer == from => {}
            _ => return,
        }
        let Some((_, idx)) = round.waiting.remove(&request) else {
            return;
        };
        let mut lacking = Vec::new();
        for (k, &i) in idx.iter().enumerate() {
            if held.get(k).copied().unwrap_or(false) {
                round.confirmed[i] += 1;
            } else {
                lacking.push(round.hashes[i]);
            }
        }
        let finished = round.waiting.is_empty();
        // What a holder lacks it gets now; it is confirmed next round.
        if !lacking.is_empty()
            && let Some(out) = self.outbox(from)
        {
            out.serve(lacking);
        }
        if !finished {
            return;
        }
        let Some(round) = self.sharding.as_mut().and_then(|s| s.prune.take()) else {
            return;
        };
        let gone: Vec<EntryHash> = round
            .hashes
            .iter()
            .zip(round.confirmed.iter().zip(&round.needed))
            .filter(|(_, (c, n))| **n > 0 && c >= n)
            .map(|(h, _)| *h)
            .collect();
        if gone.is_empty() {
            return;
        }
        match self.shared.docs().prune(&gone) {
            Ok(n) => {
                Counters::add(&self.shared.counters.pruned, n as u64);
                // More may be waiting: look again soon.
                if let Some(s) = self.sharding.as_mut() {
                    s.next_prune = Instant::now();
                }
            }
            Err(e) => tracing::warn!("documents: pruning: {e}"),
        }
    }
}
