//! QUIC transport: endpoints authenticated by PeerId (libp2p's TLS scheme), and links that carry
//! frames on prioritised lanes with bounded in-flight bytes.

mod addr;
mod config;
mod connection;
mod endpoint;
mod error;
mod limits;
mod tls;
mod windows;

pub use addr::{AddrError, parse_quic_multiaddr, quic_multiaddr};
pub use config::{DEFAULT_PROCESS_INCOMING_BYTES, IncomingBudget, TransportConfig};
pub use connection::{Connection, Credit, Direction, LinkCounters, Received};
pub use endpoint::{ConnectionEvent, Endpoint, Incoming, SocketBuffers, raw_quinn_endpoint};
pub use error::{SendError, TransportError};
pub use multiaddr::Multiaddr;
