//! TLS as libp2p specifies it for QUIC: self-signed certificates carrying the host key's
//! signature over the TLS key (extension 1.3.6.1.4.1.53594.1.1), ALPN `libp2p`, TLS 1.3 only,
//! client certificates required, each side learning the other's PeerId from the certificate.
//!
//! Certificates are made and parsed by rust-libp2p's own `libp2p-tls`
//! (`certificate::generate` / `certificate::parse`, which checks the extension and its
//! signature). The verifier is written here, not taken from `libp2p_tls::make_*_config`, for one
//! measured reason: those configs put ChaCha20-Poly1305 first, and on AES-NI machines AES-GCM
//! costs far less per byte (ChaCha20 seal+open was a quarter of all CPU in the link benchmark).
//! Offering AES-128-GCM first is still libp2p-compatible: every libp2p peer supports it.

use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::crypto::ring::cipher_suite::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme,
};

use super::TransportError;
use crate::identity::{Keypair, PeerId};

/// ALPN of libp2p's QUIC transport.
const ALPN: &[u8] = b"libp2p";

/// The ring provider, passed explicitly, with AES-GCM preferred.
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider.cipher_suites = vec![
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
    ];
    Arc::new(provider)
}

fn tls_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::Tls(e.to_string())
}

/// Our libp2p certificate and its key. Presented through a resolver rather than
/// `with_single_cert`, which would run webpki's checks and refuse the critical libp2p extension.
#[derive(Debug)]
struct OwnCertificate(Arc<CertifiedKey>);

impl OwnCertificate {
    fn new(key: &Keypair, provider: &CryptoProvider) -> Result<Arc<Self>, TransportError> {
        let (cert, private) =
            libp2p_tls::certificate::generate(&key.to_libp2p()).map_err(tls_err)?;
        let signing = provider
            .key_provider
            .load_private_key(private)
            .map_err(tls_err)?;
        Ok(Arc::new(OwnCertificate(Arc::new(CertifiedKey::new(
            vec![cert],
            signing,
        )))))
    }
}

impl ResolvesServerCert for OwnCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

impl ResolvesClientCert for OwnCertificate {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

pub(super) fn server_config(
    key: &Keypair,
    transport: Arc<quinn::TransportConfig>,
) -> Result<quinn::ServerConfig, TransportError> {
    let provider = provider();
    let own = OwnCertificate::new(key, &provider)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .with_client_cert_verifier(Arc::new(Libp2pVerifier))
        .with_cert_resolver(own);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicServerConfig::try_from(tls).map_err(tls_err)?;
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
    let provider = provider();
    let own = OwnCertificate::new(key, &provider)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls_err)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Libp2pVerifier))
        .with_client_cert_resolver(own);
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let quic = QuicClientConfig::try_from(tls).map_err(tls_err)?;
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
        .downcast::<Vec<CertificateDer<'static>>>()
        .map_err(|_| TransportError::BadCertificate("unexpected identity type".into()))?;
    let cert = certs
        .first()
        .ok_or_else(|| TransportError::BadCertificate("empty certificate chain".into()))?;
    let parsed = libp2p_tls::certificate::parse(cert)
        .map_err(|e| TransportError::BadCertificate(e.to_string()))?;
    Ok(parsed.peer_id())
}

/// libp2p's certificate rules, for both sides: exactly one certificate, a valid libp2p
/// extension (checked by `libp2p_tls::certificate::parse`), and the TLS 1.3 handshake signed by
/// the certificate's key.
#[derive(Debug)]
struct Libp2pVerifier;

fn bad_cert(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

fn verify_presented(
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> Result<(), rustls::Error> {
    if !intermediates.is_empty() {
        return Err(rustls::Error::General(
            "libp2p TLS requires exactly one certificate".into(),
        ));
    }
    libp2p_tls::certificate::parse(end_entity).map_err(bad_cert)?;
    Ok(())
}

fn verify_handshake(
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    libp2p_tls::certificate::parse(cert)
        .map_err(bad_cert)?
        .verify_signature(dss.scheme, message, dss.signature())
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadSignature))?;
    Ok(HandshakeSignatureValid::assertion())
}

/// The schemes libp2p certificates may be signed with (libp2p-tls generates ECDSA P-256).
fn schemes() -> Vec<SignatureScheme> {
    vec![
        SignatureScheme::ECDSA_NISTP256_SHA256,
        SignatureScheme::ECDSA_NISTP384_SHA384,
        SignatureScheme::ED25519,
        SignatureScheme::RSA_PSS_SHA256,
        SignatureScheme::RSA_PSS_SHA384,
        SignatureScheme::RSA_PSS_SHA512,
    ]
}

impl ServerCertVerifier for Libp2pVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        verify_presented(end_entity, intermediates)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("libp2p TLS is TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}

impl ClientCertVerifier for Libp2pVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        verify_presented(end_entity, intermediates)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("libp2p TLS is TLS 1.3 only".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        schemes()
    }
}
