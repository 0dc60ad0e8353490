use std::net::SocketAddr;

use super::AddrError;
use crate::identity::PeerId;

/// Errors of endpoints and connections.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The multiaddr cannot be used.
    #[error(transparent)]
    Addr(#[from] AddrError),
    /// The UDP socket could not be set up.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Building the TLS configuration failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// quinn refused to start the connection.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The connection failed or was closed (handshake failure, timeout, peer closed).
    #[error("connection to {addr} failed: {source}")]
    Connection {
        /// Where.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: quinn::ConnectionError,
    },
    /// No answer within the connect timeout.
    #[error("no answer from {0} (timed out)")]
    Timeout(SocketAddr),
    /// The remote authenticated as another peer than the multiaddr named.
    #[error("peer id mismatch: dialed {expected} but the remote is {actual}")]
    PeerIdMismatch {
        /// The PeerId in the multiaddr (boxed: PeerIds are 80 bytes and errors should be small).
        expected: Box<PeerId>,
        /// The PeerId the remote proved.
        actual: Box<PeerId>,
    },
    /// The remote's certificate is missing or is not a valid libp2p certificate.
    #[error("remote certificate rejected: {0}")]
    BadCertificate(String),
    /// A ping got no pong in time.
    #[error("ping timed out")]
    PingTimeout,
    /// The link is closed.
    #[error("link closed")]
    Closed,
    /// No address of the peer is known and no neighbour knew one, or dialing it failed.
    #[error("peer {0} is unreachable")]
    Unreachable(PeerId),
    /// An inbound connection attempt over the endpoint's limits, refused before its handshake.
    #[error("connection from {addr} refused: {reason}")]
    Refused {
        /// Where it came from.
        addr: SocketAddr,
        /// Which limit (`max_inbound_connections` or `max_inbound_per_network`).
        reason: &'static str,
    },
}

/// Why a frame could not be queued on a link.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The link's in-flight byte budget is used up (only from `try_send`).
    #[error("link is full")]
    Full,
    /// The link is closed.
    #[error("link closed")]
    Closed,
    /// The frame is larger than the frame or in-flight limit and could never be sent.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The frame's length on the wire.
        len: usize,
        /// The limit it exceeds.
        max: usize,
    },
}
