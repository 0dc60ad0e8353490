//! The QUIC endpoint: one UDP socket, libp2p-authenticated connections in and out.

use std::net::SocketAddr;
use std::sync::Arc;

use multiaddr::Multiaddr;
use tokio::sync::broadcast;

use super::addr::split_quic_multiaddr;
use super::connection::{Connection, Direction};
use super::limits::{ConnectionLimits, ConnectionSlot, Refusal};
use super::{TransportConfig, TransportError, tls};
use crate::identity::{Keypair, PeerId};

/// Socket buffer sizes the kernel granted (Linux reports twice the usable size).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketBuffers {
    /// SO_SNDBUF.
    pub send: usize,
    /// SO_RCVBUF.
    pub recv: usize,
}

/// What happened to a connection.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// A handshake completed and the remote proved its PeerId.
    Connected {
        /// Who.
        peer: PeerId,
        /// From where.
        remote: SocketAddr,
        /// Who dialed.
        direction: Direction,
    },
    /// A connection ended.
    Disconnected {
        /// Who.
        peer: PeerId,
        /// Why (closed by us, by them, timed out, protocol error).
        reason: String,
    },
}

/// A QUIC endpoint bound to one UDP socket, dialing and accepting as one PeerId.
#[derive(Clone, Debug)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    quinn: quinn::Endpoint,
    key: Keypair,
    config: Arc<TransportConfig>,
    local: SocketAddr,
    buffers: SocketBuffers,
    events: broadcast::Sender<ConnectionEvent>,
    limits: Arc<ConnectionLimits>,
}

/// A UDP socket with buffers raised to `buffer_bytes` (socket2, before quinn takes it).
pub(super) fn udp_socket(
    addr: SocketAddr,
    buffer_bytes: usize,
) -> std::io::Result<(std::net::UdpSocket, SocketBuffers)> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel silently caps at net.core.{w,r}mem_max; we report what it granted.
    let _ = socket.set_send_buffer_size(buffer_bytes);
    let _ = socket.set_recv_buffer_size(buffer_bytes);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    let buffers = SocketBuffers {
        send: socket.send_buffer_size()?,
        recv: socket.recv_buffer_size()?,
    };
    Ok((socket.into(), buffers))
}

/// A plain quinn endpoint with exactly Starling's socket, TLS and transport settings: what
/// [`Endpoint`] runs on, and the fair raw-quinn baseline of the load tests. Its connection
/// windows are fixed at `receive_window` (an [`Endpoint`] shares its budget out instead).
pub fn raw_quinn_endpoint(
    key: &Keypair,
    listen: SocketAddr,
    config: &TransportConfig,
) -> Result<(quinn::Endpoint, SocketBuffers), TransportError> {
    quinn_endpoint(key, listen, config, config.receive_window)
}

/// A quinn endpoint whose connections start with a receive window of `window`.
fn quinn_endpoint(
    key: &Keypair,
    listen: SocketAddr,
    config: &TransportConfig,
    window: u32,
) -> Result<(quinn::Endpoint, SocketBuffers), TransportError> {
    let transport = config.quinn_transport_with_window(window);
    let server = tls::server_config(key, transport.clone())?;
    let client = tls::client_config(key, transport)?;
    let bind_err = |source| TransportError::Bind {
        addr: listen,
        source,
    };
    let (socket, buffers) = udp_socket(listen, config.socket_buffer_bytes).map_err(bind_err)?;
    let runtime = quinn::default_runtime().ok_or_else(|| {
        bind_err(std::io::Error::other(
            "no async runtime (call from inside tokio)",
        ))
    })?;
    let mut quinn = quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(server),
        socket,
        runtime,
    )
    .map_err(bind_err)?;
    quinn.set_default_client_config(client);
    Ok((quinn, buffers))
}

impl Endpoint {
    /// Listens on `listen` (port 0 picks a free port). Must run inside a tokio runtime.
    pub fn bind(
        key: Keypair,
        listen: SocketAddr,
        config: TransportConfig,
    ) -> Result<Endpoint, TransportError> {
        // Links start small and are raised to their share of the budget once registered.
        let (quinn, buffers) = quinn_endpoint(&key, listen, &config, config.min_receive_window)?;
        let local = quinn.local_addr().map_err(|source| TransportError::Bind {
            addr: listen,
            source,
        })?;
        let (events, _) = broadcast::channel(256);
        tracing::debug!(%local, ?buffers, peer = %key.peer_id(), "endpoint listening");
        Ok(Endpoint {
            inner: Arc::new(Inner {
                quinn,
                key,
                limits: Arc::new(ConnectionLimits::new(
                    config.max_inbound_connections,
                    config.max_inbound_per_network,
                )),
                config: Arc::new(config),
                local,
                buffers,
                events,
            }),
        })
    }

    /// Listens on a multiaddr such as `/ip4/127.0.0.1/udp/0/quic-v1`.
    pub fn bind_multiaddr(
        key: Keypair,
        listen: &Multiaddr,
        config: TransportConfig,
    ) -> Result<Endpoint, TransportError> {
        let (addr, _) = split_quic_multiaddr(listen)?;
        Self::bind(key, addr, config)
    }

    /// This endpoint's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.inner.key.peer_id()
    }

    /// This endpoint's key.
    pub fn keypair(&self) -> &Keypair {
        &self.inner.key
    }

    /// The bound socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// The full multiaddr others dial: `/ip4/…/udp/…/quic-v1/p2p/<PeerId>`.
    pub fn local_multiaddr(&self) -> Multiaddr {
        super::quic_multiaddr(self.inner.local, Some(self.peer_id()))
    }

    /// Socket buffers the kernel granted.
    pub fn socket_buffers(&self) -> SocketBuffers {
        self.inner.buffers
    }

    /// The limits in force.
    pub fn config(&self) -> &TransportConfig {
        &self.inner.config
    }

    /// Inbound connections open now (counted against `max_inbound_connections`).
    pub fn inbound_connections(&self) -> usize {
        self.inner.limits.total()
    }

    /// Connection events from now on.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.events.subscribe()
    }

    /// Dials a multiaddr; if it ends in `/p2p/<PeerId>`, the remote must prove that id.
    pub async fn dial(&self, addr: &Multiaddr) -> Result<Connection, TransportError> {
        let (sock, expected) = split_quic_multiaddr(addr)?;
        self.dial_addr(sock, expected).await
    }

    /// Dials a socket address, optionally requiring a PeerId.
    pub async fn dial_addr(
        &self,
        addr: SocketAddr,
        expected: Option<PeerId>,
    ) -> Result<Connection, TransportError> {
        // libp2p's QUIC transport uses the fixed server name "l"; identity is the certificate.
        let connecting =
            self.inner
                .quinn
                .connect(addr, "l")
                .map_err(|e| TransportError::Connect {
                    addr,
                    reason: e.to_string(),
                })?;
        let conn = tokio::time::timeout(self.inner.config.connect_timeout, connecting)
            .await
            .map_err(|_| TransportError::Timeout(addr))?
            .map_err(|source| TransportError::Connection { addr, source })?;
        let actual = tls::remote_peer_id(&conn)?;
        if let Some(expected) = expected.filter(|e| *e != actual) {
            conn.close(quinn::VarInt::from_u32(0x20), b"peer id mismatch");
            return Err(TransportError::PeerIdMismatch {
                expected: Box::new(expected),
                actual: Box::new(actual),
            });
        }
        Ok(self.established(conn, actual, Direction::Outbound, None))
    }

    /// The next incoming connection, handshake done; `None` once the endpoint is closed. Not
    /// cancel-safe once a connection has arrived (it awaits that connection's handshake), and
    /// one handshake at a time: a server that must not let one slow client hold up the others
    /// takes [`Endpoint::incoming`] and finishes each [`Incoming`] in its own task.
    pub async fn accept(&self) -> Option<Result<Connection, TransportError>> {
        Some(self.incoming().await?.finish().await)
    }

    /// The next connection attempt, before its handshake; `None` once the endpoint is closed.
    /// Cancel-safe.
    pub async fn incoming(&self) -> Option<Incoming> {
        let incoming = self.inner.quinn.accept().await?;
        Some(Incoming {
            incoming,
            endpoint: self.clone(),
        })
    }

    fn established(
        &self,
        conn: quinn::Connection,
        peer: PeerId,
        dir: Direction,
        slot: Option<ConnectionSlot>,
    ) -> Connection {
        let _ = self.inner.events.send(ConnectionEvent::Connected {
            peer,
            remote: conn.remote_address(),
            direction: dir,
        });
        tracing::debug!(%peer, remote = %conn.remote_address(), ?dir, "connected");
        Connection::start(
            conn,
            peer,
            dir,
            self.inner.config.clone(),
            self.inner.events.clone(),
            slot,
        )
    }

    /// Closes every connection gracefully and waits (briefly) for the peers to be told.
    pub async fn close(&self) {
        self.inner
            .quinn
            .close(quinn::VarInt::from_u32(0), b"endpoint closed");
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            self.inner.quinn.wait_idle(),
        )
        .await;
    }
}

/// A connection attempt from a remote: finish its handshake (bounded by
/// [`TransportConfig::connect_timeout`]) to get the authenticated [`Connection`].
#[derive(Debug)]
pub struct Incoming {
    incoming: quinn::Incoming,
    endpoint: Endpoint,
}

impl Incoming {
    /// Where the attempt comes from.
    pub fn remote_address(&self) -> SocketAddr {
        self.incoming.remote_address()
    }

    /// Runs the handshake and authenticates the remote's PeerId — unless the endpoint's
    /// inbound limits are reached, in which case the attempt is refused before any crypto.
    pub async fn finish(self) -> Result<Connection, TransportError> {
        let addr = self.incoming.remote_address();
        let slot = match self.endpoint.inner.limits.admit(addr.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                self.incoming.refuse();
                let reason = match refusal {
                    Refusal::Total => "max_inbound_connections",
                    Refusal::Network => "max_inbound_per_network",
                };
                tracing::debug!(%addr, reason, "inbound connection refused");
                return Err(TransportError::Refused { addr, reason });
            }
        };
        let limit = self.endpoint.inner.config.connect_timeout;
        let conn = tokio::time::timeout(limit, self.incoming)
            .await
            .map_err(|_| TransportError::Timeout(addr))?
            .map_err(|source| TransportError::Connection { addr, source })?;
        let peer = tls::remote_peer_id(&conn)?;
        Ok(self
            .endpoint
            .established(conn, peer, Direction::Inbound, Some(slot)))
    }
}
