//! The driver's links: accepting connections (handshakes in parallel, bounded), dialing,
//! locating peers whose address is unknown, and feeding each link's measurements to the core.

use std::time::Instant;

use tokio::sync::mpsc;

use super::{Driver, Internal, LOCATE_TIMEOUT};
use crate::identity::PeerId;
use crate::overlay::Event;
use crate::overlay::control;
use crate::transport::{Connection, Endpoint};
use crate::wire::Lane;

/// Handshakes run at once per node. Each is its own task, so a client that stalls its
/// handshake holds up only its own slot (until the transport's connect timeout), not every
/// other dialer; a flash crowd of joiners is admitted in parallel rather than one by one.
const MAX_HANDSHAKES: usize = 64;

/// Accepts connections, finishing up to [`MAX_HANDSHAKES`] handshakes at a time.
pub(super) async fn accept_loop(endpoint: Endpoint, internal_tx: mpsc::UnboundedSender<Internal>) {
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    let mut handshakes = tokio::task::JoinSet::new();
    while let Some(incoming) = endpoint.incoming().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // Reap finished handshakes (the set would otherwise hold their results).
        while handshakes.try_join_next().is_some() {}
        let tx = internal_tx.clone();
        handshakes.spawn(async move {
            let _slot = slot;
            match incoming.finish().await {
                Ok(conn) => {
                    let _ = tx.send(Internal::Up(conn));
                }
                Err(e) => tracing::debug!("incoming connection failed: {e}"),
            }
        });
    }
}

pub(super) fn conn_id(c: &Connection) -> usize {
    c.dangerous_quinn_connection().stable_id()
}

impl Driver {
    pub(super) fn register(&mut self, conn: Connection) {
        let peer = conn.peer_id();
        self.dialing.remove(&peer);
        self.book.verified(peer, conn.remote_addr());
        let reader = conn.clone();
        let internal = self.internal_tx.clone();
        let id = conn_id(&conn);
        tokio::spawn(async move {
            while let Some(item) = reader.recv().await {
                match item {
                    Ok(received) => {
                        if internal.send(Internal::Frame(peer, received)).is_err() {
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(%peer, "stream error: {e}"),
                }
            }
            let _ = internal.send(Internal::Down(peer, id));
        });
        // The handshake just measured the RTT (our own sample): a join arriving over this
        // connection is placed by it, not by what the joiner claims.
        let handshake_rtt = conn.rtt().as_micros() as u64;
        if let Some(old) = self.conns.insert(peer, conn) {
            // Both sides dialed at once: keep the newer connection, close the older one.
            old.close("duplicate connection");
        }
        self.feed(Event::LinkUp(peer));
        self.feed(Event::LinkMeasured {
            peer,
            rtt_us: Some(handshake_rtt),
            queued_bytes: 0,
            delivery_rate: 0.0,
            lost: 0,
        });
        for message in self.pending.remove(&peer).unwrap_or_default() {
            self.transmit(peer, message);
        }
    }

    pub(super) fn dial(&mut self, peer: PeerId) {
        if self.conns.contains_key(&peer) || !self.dialing.insert(peer) {
            return;
        }
        let Some(addr) = self.book.get(&peer) else {
            self.dialing.remove(&peer);
            self.locate(peer);
            return;
        };
        let endpoint = self.endpoint.clone();
        let internal = self.internal_tx.clone();
        tokio::spawn(async move {
            let event = match endpoint.dial_addr(addr, Some(peer)).await {
                Ok(conn) => Internal::Up(conn),
                Err(e) => {
                    tracing::debug!(%peer, "dial failed: {e}");
                    Internal::DialFailed(peer)
                }
            };
            let _ = internal.send(event);
        });
    }

    /// Asks every neighbour where `peer` is; without neighbours (or an answer in time) the dial
    /// fails, which the core treats like a lost link.
    fn locate(&mut self, peer: PeerId) {
        if self.locating.contains_key(&peer) {
            return;
        }
        if self.conns.is_empty() {
            let _ = self.internal_tx.send(Internal::DialFailed(peer));
            return;
        }
        let ask = control::encode_lookup(false, &peer, |p| self.book.peek(p));
        let neighbours: Vec<PeerId> = self.conns.keys().copied().collect();
        for n in neighbours {
            self.write(n, Lane::Control, &ask);
        }
        self.locating.insert(peer, Instant::now() + LOCATE_TIMEOUT);
    }

    pub(super) fn expire_lookups(&mut self) {
        let now = Instant::now();
        let expired: Vec<PeerId> = self
            .locating
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.locating.remove(&peer);
            tracing::debug!(%peer, "no neighbour knows where this peer is");
            let _ = self.internal_tx.send(Internal::DialFailed(peer));
        }
    }

    /// quinn's RTT, queued bytes (link credit plus shaper queue) and, when shaped, the shaped
    /// rate as the delivery rate.
    pub(super) fn measure(&mut self) {
        let shaped_rate = self.shaper.as_ref().map(|s| s.rate() as f64).unwrap_or(0.0);
        let links: Vec<(PeerId, u64, u64, u64)> = self
            .conns
            .iter()
            .map(|(p, c)| {
                let shaped = self.shaper.as_ref().map_or(0, |s| s.queued_for(p));
                (
                    *p,
                    c.rtt().as_micros() as u64,
                    (c.queued_bytes() + shaped) as u64,
                    c.quinn_stats().path.lost_packets,
                )
            })
            .collect();
        for (peer, rtt, queued_bytes, lost) in links {
            self.feed(Event::LinkMeasured {
                peer,
                rtt_us: Some(rtt),
                queued_bytes,
                delivery_rate: shaped_rate,
                lost,
            });
        }
    }
}
