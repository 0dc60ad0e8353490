//! Inbound connections a node accepts: in total and per source network. Identities are free
//! and every link costs memory (see `TransportConfig`), so without a cap one host could open
//! quinn's ~65k connections. A source network is an IPv4 address or an IPv6 /64 (what one
//! host is typically given). Checked before the handshake: a refused attempt costs no crypto.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

/// Live inbound connections, counted against the limits.
#[derive(Debug)]
pub(super) struct ConnectionLimits {
    max_total: usize,
    max_per_network: usize,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    /// At most `max_total` entries: each holds at least one live connection.
    per_network: HashMap<IpAddr, usize>,
}

/// One inbound connection's place; dropping it gives the place back.
#[derive(Debug)]
pub(super) struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    network: IpAddr,
}

/// Why an inbound connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Refusal {
    Total,
    Network,
}

impl ConnectionLimits {
    pub(super) fn new(max_total: usize, max_per_network: usize) -> Self {
        ConnectionLimits {
            max_total,
            max_per_network,
            counts: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Each change is one increment or decrement: a poisoned table is still whole.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A place for a connection from `ip`, if the limits allow one.
    pub(super) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Refusal> {
        let network = network_of(ip);
        let mut counts = self.lock();
        if counts.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let n = counts.per_network.entry(network).or_insert(0);
        if *n >= self.max_per_network {
            if *n == 0 {
                counts.per_network.remove(&network);
            }
            return Err(Refusal::Network);
        }
        *n += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            limits: self.clone(),
            network,
        })
    }

    /// Live inbound connections.
    pub(super) fn total(&self) -> usize {
        self.lock().total
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.limits.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_network.get_mut(&self.network) {
            *n -= 1;
            if *n == 0 {
                counts.per_network.remove(&self.network);
            }
        }
    }
}

/// The source network an address counts against: itself for IPv4 (and IPv4-mapped IPv6),
/// its /64 for IPv6.
fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn places_per_network_and_in_total_come_back_when_dropped() {
        let limits = Arc::new(ConnectionLimits::new(4, 2));
        let a1 = limits.admit(ip("10.0.0.1")).unwrap();
        let _a2 = limits.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.1")).unwrap_err(), Refusal::Network);
        let _b1 = limits.admit(ip("10.0.0.2")).unwrap();
        let _b2 = limits.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(limits.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        drop(a1);
        assert_eq!(limits.total(), 3);
        assert!(limits.admit(ip("10.0.0.1")).is_ok());
    }

    #[test]
    fn an_ipv6_host_counts_as_its_slash_64() {
        let limits = Arc::new(ConnectionLimits::new(100, 1));
        let _a = limits.admit(ip("2001:db8:1:2::1")).unwrap();
        assert_eq!(
            limits.admit(ip("2001:db8:1:2:ffff::9")).unwrap_err(),
            Refusal::Network,
            "same /64"
        );
        assert!(limits.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _m = limits.admit(ip("::ffff:10.0.0.1")).unwrap();
        assert_eq!(
            limits.admit(ip("10.0.0.1")).unwrap_err(),
            Refusal::Network,
            "mapped IPv4 is IPv4"
        );
    }
}
