//! End-to-end envelopes: a payload only chosen receivers can read.
//!
//! A random [`ContentKey`] encrypts the payload with XChaCha20-Poly1305 (`aead.rs`: ring's
//! ChaCha20-Poly1305 under an HChaCha20 subkey; a random 24-byte
//! nonce per envelope, so one key may seal many payloads); the key is *wrapped* for each
//! receiver with a key agreed between a fresh ephemeral key and the receiver's identity key
//! ([`agreement`]: X25519 for Ed25519 identities, converted as libsodium does; ECDH on
//! secp256k1 for secp256k1 identities) and ChaCha20-Poly1305. Receivers are listed by public
//! key, so a reader knows at once whether it can read ([`CryptoError::NotAReceiver`]).
//!
//! - [`envelope`]: the byte layout, [`Receivers`], [`seal`] / [`Sealer`] (which reuses one
//!   wrapped key for a receiver set) and [`Opener`] (a receiver's key and the content keys
//!   it learnt).
//! - A *keyed* envelope names a content key by id instead of wrapping it: a stream wraps its
//!   group key in some frames and only names it in the rest (`engine::stream`).
//!
//! Everything a reader parses is length-checked before use and every failure is a typed
//! [`CryptoError`]; `fuzz/fuzz_targets/envelope_decoder.rs` feeds it arbitrary bytes.

mod aead;
pub mod agreement;
pub mod envelope;
mod error;

pub use aead::Suite;
pub use agreement::AgreementSecret;
pub use envelope::{
    ContentKey, Envelope, KEY_ID_LEN, MAX_PUBLIC, MAX_RECEIVERS, Opener, Receivers, SealBuf,
    Sealer, seal, seal_buf_under, seal_keyed, seal_under, with_public, wrapped_header,
};
pub use error::CryptoError;
