//! The driver's links: accepting connections (handshakes in parallel, bounded), dialing,
//! locating peers whose address is unknown, and feeding each link's measurements to the core.

use std::net::IpAddr;
use std::time::Instant;

use tokio::sync::mpsc;

use super::{AppLink, DirectMessage, Driver, Internal, LOCATE_TIMEOUT};
use crate::identity::PeerId;
use crate::overlay::Event;
use crate::overlay::control;
use crate::transport::{Connection, Endpoint};
use crate::wire::{Frame, Lane};

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
        let remote = conn.remote_addr();
        self.book.verified(peer, remote);
        let reader = conn.clone();
        let internal = self.internal_tx.clone();
        let app = self.app_tx.clone();
        let id = conn_id(&conn);
        tokio::spawn(async move {
            while let Some(item) = reader.recv().await {
                match item {
                    Ok(received) if matches!(received.frame, Frame::App(_)) => {
                        let (frame, credit) = received.into_parts();
                        let Frame::App(payload) = frame else { continue };
                        // Waits when the programs are behind: this link stops being read.
                        let _ = app
                            .send(DirectMessage {
                                origin: peer,
                                payload,
                                credit: Some(std::sync::Arc::new(credit)),
                            })
                            .await;
                    }
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
        if let Some(network) = source_network(remote.ip()) {
            self.feed(Event::LinkNetwork { peer, network });
        }
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
        if let Some(waiting) = self.links_wanted.remove(&peer) {
            self.pin(peer);
            let conn = &self.conns[&peer];
            for tx in waiting {
                let _ = tx.send(Ok(AppLink { conn: conn.clone() }));
            }
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

/// The source network an address counts against for the children cap: its IPv4 /24 or IPv6
/// /48 (one site), as a number; none for loopback (peers on this very host, as in a local
/// swarm).
fn source_network(ip: IpAddr) -> Option<u64> {
    if ip.is_loopback() {
        return None;
    }
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let prefix: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets()[..3].to_vec(),
        IpAddr::V6(v6) => v6.octets()[..6].to_vec(),
    };
    let hash = blake3::hash(&prefix);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.as_bytes()[..8]);
    Some(u64::from_le_bytes(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_network_is_a_slash_24_or_a_slash_48_and_loopback_is_none() {
        let n = |s: &str| source_network(s.parse().unwrap());
        assert_eq!(n("203.0.113.7"), n("203.0.113.200"));
        assert_ne!(n("203.0.113.7"), n("203.0.114.7"));
        assert_eq!(
            n("::ffff:203.0.113.9"),
            n("203.0.113.7"),
            "mapped IPv4 is IPv4"
        );
        assert_eq!(n("2001:db8:1:2::1"), n("2001:db8:1:ffff::9"));
        assert_ne!(n("2001:db8:1::1"), n("2001:db8:2::1"));
        assert_eq!(n("127.0.0.2"), None);
        assert_eq!(n("::1"), None);
        assert!(n("10.0.0.1").is_some());
    }
}
