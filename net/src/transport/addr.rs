//! QUIC multiaddrs: `/ip4/1.2.3.4/udp/4001/quic-v1[/p2p/<PeerId>]` and the `/ip6/` form.

use std::net::{IpAddr, SocketAddr};

use multiaddr::{Multiaddr, Protocol};

use crate::identity::PeerId;

/// A multiaddr Starling cannot dial or listen on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// Not a multiaddr at all.
    #[error("invalid multiaddr {text:?}: {reason}")]
    Parse {
        /// The input.
        text: String,
        /// What the parser said.
        reason: String,
    },
    /// A valid multiaddr, but not `/ip4|ip6/…/udp/…/quic-v1[/p2p/…]`.
    #[error(
        "unsupported multiaddr {0}: expected /ip4/<addr>/udp/<port>/quic-v1[/p2p/<peer-id>] (or /ip6/)"
    )]
    Unsupported(String),
}

/// Parses a multiaddr text into a UDP socket address and the PeerId it names, if any.
pub fn parse_quic_multiaddr(text: &str) -> Result<(SocketAddr, Option<PeerId>), AddrError> {
    let addr: Multiaddr = text
        .parse()
        .map_err(|e: multiaddr::Error| AddrError::Parse {
            text: text.to_string(),
            reason: e.to_string(),
        })?;
    split_quic_multiaddr(&addr)
}

/// Splits a parsed multiaddr (see [`parse_quic_multiaddr`]).
pub(crate) fn split_quic_multiaddr(
    addr: &Multiaddr,
) -> Result<(SocketAddr, Option<PeerId>), AddrError> {
    let unsupported = || AddrError::Unsupported(addr.to_string());
    let mut it = addr.iter();
    let ip: IpAddr = match it.next() {
        Some(Protocol::Ip4(ip)) => ip.into(),
        Some(Protocol::Ip6(ip)) => ip.into(),
        _ => return Err(unsupported()),
    };
    let port = match it.next() {
        Some(Protocol::Udp(port)) => port,
        _ => return Err(unsupported()),
    };
    if !matches!(it.next(), Some(Protocol::QuicV1)) {
        return Err(unsupported());
    }
    let peer = match it.next() {
        None => None,
        Some(Protocol::P2p(peer)) => Some(peer),
        Some(_) => return Err(unsupported()),
    };
    if it.next().is_some() {
        return Err(unsupported());
    }
    Ok((SocketAddr::new(ip, port), peer))
}

/// Formats a socket address (and PeerId) as a QUIC multiaddr.
pub fn quic_multiaddr(addr: SocketAddr, peer: Option<PeerId>) -> Multiaddr {
    let mut m = Multiaddr::empty();
    m.push(match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    });
    m.push(Protocol::Udp(addr.port()));
    m.push(Protocol::QuicV1);
    if let Some(peer) = peer {
        m.push(Protocol::P2p(peer));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{KeyType, Keypair};

    #[test]
    fn round_trips_ip4_and_ip6() {
        let peer = Keypair::generate(KeyType::Ed25519).peer_id();
        for sock in ["127.0.0.1:4001", "[::1]:9"] {
            let sock: SocketAddr = sock.parse().unwrap();
            let text = quic_multiaddr(sock, Some(peer)).to_string();
            assert_eq!(parse_quic_multiaddr(&text).unwrap(), (sock, Some(peer)));
            let bare = quic_multiaddr(sock, None);
            assert_eq!(split_quic_multiaddr(&bare).unwrap(), (sock, None));
            // Binary form round-trips too.
            let bin = Multiaddr::try_from(bare.to_vec()).unwrap();
            assert_eq!(bin, bare);
        }
    }

    #[test]
    fn bad_addresses_are_typed() {
        for bad in [
            "not-a-multiaddr",
            "/ip4/1.2.3.4/udp/x/quic-v1",
            "/ip4/999.1.1.1/udp/1/quic-v1",
        ] {
            assert!(
                matches!(parse_quic_multiaddr(bad), Err(AddrError::Parse { .. })),
                "{bad}"
            );
        }
        for unsupported in [
            "",
            "/ip4/1.2.3.4/tcp/1",
            "/ip4/1.2.3.4/udp/1",
            "/ip4/1.2.3.4/udp/1/quic",
            "/dns/example.com/udp/1/quic-v1",
            "/ip4/1.2.3.4/udp/1/quic-v1/webtransport",
        ] {
            assert!(
                matches!(
                    parse_quic_multiaddr(unsupported),
                    Err(AddrError::Unsupported(_))
                ),
                "{unsupported}"
            );
        }
    }
}
