//! Identities: key pairs, signatures and libp2p-compatible peer ids.
//!
//! `libp2p-identity` owns the encodings (protobuf keys, `PeerId`), so ids match libp2p byte for
//! byte. Signing and verification on the hot path go straight to `ed25519-dalek` (batch
//! verification) and `k256`, wrapped here in Starling's small [`Keypair`] / [`PublicKey`] API.

mod error;
mod key_cache;
mod keyfile;
pub(crate) mod keys;
mod peer_id;
mod signature;
#[cfg(test)]
mod tests;

pub use error::IdentityError;
pub use key_cache::KeyCache;
pub use keyfile::{load_key_file, save_key_file};
pub use keys::{KeyType, Keypair, PublicKey};
pub use libp2p_identity::PeerId;
pub use peer_id::{parse_peer_id, peer_id_from_bytes, peer_id_to_cid};
pub use signature::{SIGNATURE_LEN, Signature, VerifyItem, verify_batch};
