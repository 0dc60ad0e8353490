//! TLS as libp2p specifies it for QUIC, using rust-libp2p's own `libp2p-tls`: self-signed
//! certificates carrying the host key's signature over the TLS key (extension
//! 1.3.6.1.4.1.53594.1.1), ALPN `libp2p`, TLS 1.3, client certificates required. Both configs
//! are built with the `ring` provider passed explicitly by `libp2p-tls`.

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use super::TransportError;
use crate::identity::{Keypair, PeerId};

pub(super) fn server_config(
    key: &Keypair,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TransportError> {
    let tls = libp2p_tls::make_server_config(&key.to_libp2p())
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let quic = QuicServerConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// A client config that accepts any valid libp2p certificate; the expected PeerId is checked
/// after the handshake so that a mismatch can name both ids.
pub(super) fn client_config(
    key: &Keypair,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ClientConfig, TransportError> {
    let tls = libp2p_tls::make_client_config(&key.to_libp2p(), None)
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let quic = QuicClientConfig::try_from(tls).map_err(|e| TransportError::Tls(e.to_string()))?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport);
    Ok(config)
}

/// The PeerId the remote proved in the handshake.
pub(super) fn remote_peer_id(conn: &quinn::Connection) -> Result<PeerId, TransportError> {
    let identity = conn
        .peer_identity()
        .ok_or_else(|| TransportError::BadCertificate("no certificate presented".into()))?;
    let certs = identity
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .map_err(|_| TransportError::BadCertificate("unexpected identity type".into()))?;
    let cert = certs
        .first()
        .ok_or_else(|| TransportError::BadCertificate("empty certificate chain".into()))?;
    let parsed = libp2p_tls::certificate::parse(cert)
        .map_err(|e| TransportError::BadCertificate(e.to_string()))?;
    Ok(parsed.peer_id())
}
