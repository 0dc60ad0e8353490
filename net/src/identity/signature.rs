//! Fixed-size signatures and batch verification.

use super::{IdentityError, KeyType, PublicKey};

/// Length of every Starling signature on the wire: Ed25519 `R‖s`, secp256k1 compact `r‖s`.
pub const SIGNATURE_LEN: usize = 64;

/// A signature of either key type, always 64 bytes on the wire so that headers keep a fixed
/// layout (libp2p's DER form for secp256k1 is available through [`Signature::to_libp2p_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signature {
    /// Ed25519.
    Ed25519(ed25519_dalek::Signature),
    /// secp256k1 ECDSA (low S).
    Secp256k1(k256::ecdsa::Signature),
}

impl Signature {
    /// Which key type made this signature.
    pub fn key_type(&self) -> KeyType {
        match self {
            Signature::Ed25519(_) => KeyType::Ed25519,
            Signature::Secp256k1(_) => KeyType::Secp256k1,
        }
    }

    /// The fixed 64-byte wire form.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_LEN] {
        match self {
            Signature::Ed25519(s) => s.to_bytes(),
            Signature::Secp256k1(s) => s.to_bytes().into(),
        }
    }

    /// Decodes the 64-byte wire form of a signature of `key_type`.
    pub fn from_bytes(key_type: KeyType, bytes: &[u8]) -> Result<Self, IdentityError> {
        let arr: &[u8; SIGNATURE_LEN] =
            bytes.try_into().map_err(|_| IdentityError::InvalidLength {
                what: "a signature",
                expected: SIGNATURE_LEN,
                actual: bytes.len(),
            })?;
        match key_type {
            KeyType::Ed25519 => Ok(Signature::Ed25519(ed25519_dalek::Signature::from_bytes(
                arr,
            ))),
            KeyType::Secp256k1 => k256::ecdsa::Signature::from_slice(arr)
                .map(Signature::Secp256k1)
                .map_err(|_| IdentityError::MalformedSignature(key_type)),
        }
    }

    /// libp2p's form: raw for Ed25519, DER for secp256k1.
    pub fn to_libp2p_bytes(&self) -> Vec<u8> {
        match self {
            Signature::Ed25519(s) => s.to_bytes().to_vec(),
            Signature::Secp256k1(s) => s.to_der().as_bytes().to_vec(),
        }
    }

    /// Decodes libp2p's form (raw Ed25519, DER secp256k1).
    pub fn from_libp2p_bytes(key_type: KeyType, bytes: &[u8]) -> Result<Self, IdentityError> {
        match key_type {
            KeyType::Ed25519 => Self::from_bytes(key_type, bytes),
            KeyType::Secp256k1 => k256::ecdsa::Signature::from_der(bytes)
                .map(Signature::Secp256k1)
                .map_err(|_| IdentityError::MalformedSignature(key_type)),
        }
    }
}

/// One (key, message, signature) triple of a batch.
#[derive(Clone, Copy, Debug)]
pub struct VerifyItem<'a> {
    /// The signer's key.
    pub key: &'a PublicKey,
    /// The signed bytes.
    pub message: &'a [u8],
    /// The signature to check.
    pub signature: &'a Signature,
}

/// Verifies many signatures at once: Ed25519 items with one multi-scalar batch check (about
/// twice the throughput of checking them one by one), secp256k1 items one by one.
///
/// On failure it names the first item that fails on its own, so the caller can drop exactly
/// that one. Weak (small-order) Ed25519 keys are refused up front so that the batch accepts
/// exactly what [`PublicKey::verify`] accepts.
pub fn verify_batch(items: &[VerifyItem<'_>]) -> Result<(), IdentityError> {
    let mut messages = Vec::with_capacity(items.len());
    let mut signatures = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match (item.key, item.signature) {
            (PublicKey::Ed25519(k), Signature::Ed25519(s)) => {
                if k.is_weak() {
                    return Err(IdentityError::BatchFailed { index });
                }
                messages.push(item.message);
                signatures.push(*s);
                keys.push(*k);
            }
            _ => {
                if item.key.verify(item.message, item.signature).is_err() {
                    return Err(IdentityError::BatchFailed { index });
                }
            }
        }
    }
    let batch_ok = match keys.len() {
        0 => true,
        1 => keys[0].verify_strict(messages[0], &signatures[0]).is_ok(),
        _ => ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok(),
    };
    if batch_ok {
        return Ok(());
    }
    let index = items
        .iter()
        .position(|item| item.key.verify(item.message, item.signature).is_err())
        // The batch equation can reject what single checks accept only for adversarial
        // small-order components; report the first Ed25519 item then.
        .unwrap_or(0);
    Err(IdentityError::BatchFailed { index })
}
