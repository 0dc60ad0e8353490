//! # starling-net
//!
//! Who a peer is and how bytes move between peers.
//!
//! - [`crypto`]: end-to-end envelopes for chosen receivers (X25519 / secp256k1 agreement,
//!   XChaCha20-Poly1305).
//! - [`entry`]: the signed envelope (format v2, batch signatures with Merkle proofs, verifier
//!   with a bounded cache of verified roots) that every layer moves.
//! - [`identity`]: Ed25519 and secp256k1 key pairs, signatures (with batch verification),
//!   libp2p-compatible [`PeerId`]s and key files.
//! - [`transport`]: QUIC endpoints and links authenticated as libp2p PeerIds, with lanes and
//!   bounded in-flight bytes.
//! - [`overlay`]: direct-sub, a sans-IO core (tree per topic, routed direct messages) that
//!   builds without the `quic` feature.
//! - [`wire`]: the frame codec (length-prefixed, versioned fixed layouts, zero-copy on `Bytes`).

pub mod crypto;
pub mod entry;
pub mod identity;
pub mod overlay;
#[cfg(feature = "quic")]
pub mod transport;
pub mod wire;

pub use identity::{
    IdentityError, KeyType, Keypair, PeerId, PublicKey, Signature, parse_peer_id, verify_batch,
};
#[cfg(feature = "quic")]
pub use transport::{Connection, Endpoint, TransportConfig, TransportError};
