//! The catch-up server: answers late joiners' requests from the windows of the streams this
//! peer publishes, and routes replies to this peer's subscriptions.
//!
//! Answering makes this peer send far more than it received (a 60-byte request buys up to
//! `MAX_CATCHUP_FRAMES` frames), and identities are free: so besides a per-requester limit
//! (`CATCHUPS_PER_S`, in a bounded table) every reply draws on one node-wide byte budget
//! (`catch_up_bytes_per_s`), whatever number of identities asks. A request over either limit
//! is dropped; its subscriber's catch-up times out and it starts at the next keyframe.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use starling_net::PeerId;
use starling_net::overlay::{OverlayNode, TokenBucket};
use tokio::sync::mpsc;

use super::publisher::Windows;
use super::record::{CatchUp, MAX_CATCHUP_FRAMES, Sequenced};
use super::subscription::CatchUpRoutes;
use crate::router::Routed;

/// Catch-up requests answered per requester per second: a late joiner needs one; a peer asking
/// in a loop would otherwise make this peer copy and send its window without end.
const CATCHUPS_PER_S: u32 = 4;
/// Requesters remembered by the limiter.
const LIMITER_PEERS: usize = 4096;
/// Largest catch-up reply message (several are sent for a larger catch-up).
const CATCHUP_REPLY_BYTES: usize = 1 << 20;

/// Who may be answered: per requester (a fixed one-second window each, in a bounded table)
/// and node-wide (a byte budget).
#[derive(Debug)]
pub(crate) struct CatchUpLimiter {
    seen: HashMap<PeerId, (Instant, u32)>,
    bytes: TokenBucket,
    start: Instant,
}

impl CatchUpLimiter {
    /// A limiter that lets `bytes_per_s` of replies out (and as much in one burst).
    pub(crate) fn new(bytes_per_s: u64, now: Instant) -> Self {
        CatchUpLimiter {
            seen: HashMap::new(),
            bytes: TokenBucket::new(bytes_per_s, bytes_per_s),
            start: now,
        }
    }

    /// Whether `peer` may be answered now. A full table first forgets requesters whose window
    /// is over; if every one is still within its second, the newcomer waits (the table never
    /// starts over: that would hand every requester a fresh budget).
    pub(crate) fn admit(&mut self, peer: PeerId, now: Instant) -> bool {
        let window = Duration::from_secs(1);
        if self.seen.len() >= LIMITER_PEERS && !self.seen.contains_key(&peer) {
            self.seen
                .retain(|_, (start, _)| now.duration_since(*start) < window);
            if self.seen.len() >= LIMITER_PEERS {
                return false;
            }
        }
        let (start, count) = self.seen.entry(peer).or_insert((now, 0));
        if now.duration_since(*start) >= window {
            (*start, *count) = (now, 0);
        }
        *count += 1;
        *count <= CATCHUPS_PER_S
    }

    /// Takes `bytes` of the node-wide budget if there are that many (a partial catch-up is
    /// no use to a subscriber: all or nothing).
    pub(crate) fn spend(&mut self, bytes: u64, now: Instant) -> bool {
        let now_us = now.duration_since(self.start).as_micros() as u64;
        self.bytes.try_take(bytes, now_us)
    }
}

/// Serves catch-up requests from the windows of streams we publish, and routes catch-up
/// replies to our subscriptions (the messages the router hands the catch-up protocol).
pub(crate) async fn serve(
    mut direct: mpsc::Receiver<Routed>,
    node: OverlayNode,
    windows: Windows,
    routes: Arc<CatchUpRoutes>,
    bytes_per_s: u64,
) {
    let mut limiter = CatchUpLimiter::new(bytes_per_s, Instant::now());
    while let Some(msg) = direct.recv().await {
        match CatchUp::decode(&msg.body) {
            Ok(CatchUp::Request { topic, from, to }) => {
                let now = Instant::now();
                if !limiter.admit(msg.origin, now) {
                    tracing::debug!(origin = %msg.origin, "catch-up request over the rate limit");
                    continue;
                }
                let window = windows
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .get(&topic)
                    .cloned();
                let Some(window) = window else { continue };
                let to = to.min(from.saturating_add(MAX_CATCHUP_FRAMES - 1));
                let records: Vec<Sequenced> = window
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .range(from, to)
                    .iter()
                    .map(|e| Sequenced {
                        seq: e.seq(),
                        published_us: e.wall_us(),
                        record: e.to_bytes(),
                    })
                    .collect();
                let bytes = records.iter().map(|r| r.record.len() as u64).sum();
                if !limiter.spend(bytes, now) {
                    tracing::debug!(origin = %msg.origin, bytes, "catch-up over the node's budget");
                    continue;
                }
                tracing::debug!(origin = %msg.origin, from, to, n = records.len(), "catch-up");
                for reply in CatchUp::replies(&topic, &records, CATCHUP_REPLY_BYTES) {
                    node.send(msg.origin, reply);
                }
            }
            Ok(CatchUp::Reply { topic, records }) => {
                // Only the stream's owner may answer: the records travel in a direct message
                // signed by its origin, so an answer from anyone else is not the owner's data.
                match routes.route(&topic, &msg.origin) {
                    Some(tx) => {
                        let _ = tx.try_send(records);
                    }
                    None => tracing::debug!(origin = %msg.origin, "catch-up reply refused"),
                }
            }
            Err(e) => tracing::debug!(origin = %msg.origin, "bad catch-up message: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_net::{KeyType, Keypair};

    fn someone() -> PeerId {
        Keypair::generate(KeyType::Ed25519).peer_id()
    }

    #[test]
    fn catch_up_requests_are_rate_limited_per_requester() {
        let t0 = Instant::now();
        let mut l = CatchUpLimiter::new(1 << 30, t0);
        let (a, b) = (someone(), someone());
        let allowed = (0..10).filter(|_| l.admit(a, t0)).count();
        assert_eq!(allowed, CATCHUPS_PER_S as usize);
        assert!(l.admit(b, t0), "another requester has its own budget");
        assert!(l.admit(a, t0 + Duration::from_secs(1)), "the window resets");
    }

    /// Identities are free: 10,000 of them each asking once get no more than the node-wide
    /// budget, and a full table neither grows nor starts over.
    #[test]
    fn many_identities_share_one_budget_and_a_bounded_table() {
        let t0 = Instant::now();
        let mut l = CatchUpLimiter::new(1_000_000, t0);
        let mut served = 0u64;
        let mut admitted = 0;
        for _ in 0..10_000 {
            if l.admit(someone(), t0) {
                admitted += 1;
                if l.spend(100_000, t0) {
                    served += 100_000;
                }
            }
        }
        assert_eq!(served, 1_000_000, "one second's budget, in one burst");
        assert_eq!(admitted, LIMITER_PEERS);
        assert!(l.seen.len() <= LIMITER_PEERS);
        // A requester already in the table keeps its (spent) window: no fresh start.
        let first = *l.seen.keys().next().expect("someone");
        for _ in 0..CATCHUPS_PER_S {
            l.admit(first, t0);
        }
        assert!(!l.admit(first, t0));
        // A second later the table makes room and the budget has refilled.
        let t1 = t0 + Duration::from_secs(1);
        assert!(l.admit(someone(), t1));
        assert!(l.spend(1_000_000, t1));
        assert!(!l.spend(1, t1));
    }
}
