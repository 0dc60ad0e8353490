//! State the tree and the routing plane share: who we are, the links we measured, the
//! verifier, randomness and counters.

use std::collections::HashMap;
use std::hash::Hash;

use super::OverlayConfig;
use super::event::OverlayStats;
use super::link::LinkMetrics;
use super::util::SplitMix64;

/// Probe-only connections tracked at once (more are left to the transport's idle timeout).
const MAX_PROBE_ONLY: usize = 64;

/// State shared by the tree and routing logic.
pub(super) struct Shared<P, V> {
    pub(super) me: P,
    pub(super) config: OverlayConfig,
    pub(super) links: HashMap<P, LinkMetrics>,
    pub(super) verifier: V,
    pub(super) rng: SplitMix64,
    /// The source network of each link that reported one (removed with the link).
    pub(super) networks: HashMap<P, u64>,
    /// Probe nonces (their own stream, so that probing draws nothing from `rng`).
    nonces: SplitMix64,
    pub(super) stats: OverlayStats,
    uplink: Uplink,
    /// How late our own ticks run (µs), the recent worst, decaying.
    own_lag_us: u64,
    /// Peers connected only to be measured as join candidates, and since when: unless they
    /// come to matter (parent, child, route), their connections are closed again.
    pub(super) probe_only: Vec<(P, u64)>,
}

impl<P: Eq + Hash, V> Shared<P, V> {
    pub(super) fn new(me: P, config: OverlayConfig, verifier: V, seed: u64) -> Self {
        Shared {
            me,
            config,
            links: HashMap::new(),
            verifier,
            rng: SplitMix64::new(seed),
            networks: HashMap::new(),
            nonces: SplitMix64::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            stats: OverlayStats::default(),
            uplink: Uplink::default(),
            own_lag_us: 0,
            probe_only: Vec::new(),
        }
    }

    pub(super) fn cost(&self, peer: &P) -> u64 {
        self.links.get(peer).map_or(u64::MAX / 4, LinkMetrics::cost)
    }

    /// The upload rate the transport measures (the slowest link), if it measures one.
    pub(super) fn measured_upload(&self) -> Option<f64> {
        self.uplink.measured_upload
    }

    /// Bytes waiting in this node's own send queues: when large, RTT inflation is ours, not the
    /// parent's.
    pub(super) fn own_backlog(&self) -> u64 {
        self.uplink.backlog
    }

    /// Notes how late a tick ran (µs after it was due). Our event loop's lateness is the one
    /// delay we measure ourselves: every probe we time waits that long for us to read its
    /// answer. On two cores with 1,000 nodes, every RTT grew by tens of milliseconds and
    /// members kept leaving parents no worse than themselves (3,354 of 3,840 re-attaches while
    /// the swarm formed). Kept as the recent worst, decaying by 1/16 per tick (half-life ~11
    /// ticks), so one late tick excuses a burst but not the rest of the run.
    pub(super) fn note_tick_lateness(&mut self, late_us: u64) {
        self.own_lag_us = late_us.max(self.own_lag_us - self.own_lag_us / 16);
    }

    /// How late our own event loop runs (µs), as the recent worst tick showed.
    pub(super) fn own_lag_us(&self) -> u64 {
        self.own_lag_us
    }

    /// A probe for `peer` sent at `now`: its nonce, remembered on the link (made if new).
    pub(super) fn new_probe(&mut self, peer: P, now: u64) -> u64 {
        let nonce = self.nonces.next_u64() | 1;
        self.links.entry(peer).or_default().note_probe(nonce, now);
        nonce
    }

    /// Remembers that `peer` is being connected only to measure it (if it is not a link yet).
    pub(super) fn note_probe_only(&mut self, peer: P, now: u64) {
        if !self.links.contains_key(&peer) && self.probe_only.len() < MAX_PROBE_ONLY {
            self.probe_only.push((peer, now));
        }
    }

    /// Folds a link's new figures into the uplink summary. A node may know thousands of links
    /// (a root hears from every joiner), so the summary is kept up to date incrementally and
    /// rebuilt only when the link that set an extreme changes for the better.
    pub(super) fn note_link(&mut self, peer: &P) {
        let Some(link) = self.links.get(peer) else {
            self.uplink.stale = true;
            return;
        };
        let u = &mut self.uplink;
        if link.delivery_rate > 0.0 && u.measured_upload.is_none_or(|m| link.delivery_rate < m) {
            u.measured_upload = Some(link.delivery_rate);
        } else if u.measured_upload.is_some() {
            u.stale = true;
        }
        if link.queued_bytes > u.backlog {
            u.backlog = link.queued_bytes;
        } else if u.backlog > 0 {
            u.stale = true;
        }
    }

    /// Rebuilds the uplink summary if it may be out of date (once per tick at most).
    pub(super) fn refresh_uplink(&mut self) {
        if !self.uplink.stale {
            return;
        }
        self.uplink = Uplink {
            measured_upload: self
                .links
                .values()
                .map(|l| l.delivery_rate)
                .filter(|r| *r > 0.0)
                .reduce(f64::min),
            backlog: self
                .links
                .values()
                .map(|l| l.queued_bytes)
                .max()
                .unwrap_or(0),
            stale: false,
        };
    }
}

/// The slowest measured link and the longest send queue, over all links.
#[derive(Clone, Copy, Debug, Default)]
struct Uplink {
    measured_upload: Option<f64>,
    backlog: u64,
    stale: bool,
}
