//! Key agreement with Starling identities.
//!
//! - Ed25519 identities agree over X25519: the public key's Edwards point is mapped to its
//!   Montgomery form and the secret is SHA-512(seed)[..32], clamped — exactly libsodium's
//!   `crypto_sign_ed25519_{pk,sk}_to_curve25519`, so keys interoperate with libsodium users.
//!   A shared secret from a low-order point is refused ([`CryptoError::WeakKey`]).
//! - secp256k1 identities agree by ECDH on secp256k1 (`k256`): the shared point's x.
//!
//! Either way the 32-byte shared secret is never used directly: `kek` derives a key bound
//! to both public halves with BLAKE3's key derivation.

use rand::rngs::OsRng;
use zeroize::Zeroizing;

use super::CryptoError;
use crate::identity::keys::SecretKeyRef;
use crate::identity::{KeyType, Keypair, PublicKey};

/// Context string of the key-encryption-key derivation (BLAKE3 `derive_key`).
const KEK_CONTEXT: &str = "starling envelope v1 key wrap";

/// The agreement half of an identity's secret key (derived once; zeroed on drop).
#[derive(Clone)]
pub struct AgreementSecret {
    inner: Secret,
}

#[derive(Clone)]
enum Secret {
    X25519(x25519_dalek::StaticSecret),
    Secp256k1(k256::NonZeroScalar),
}

impl std::fmt::Debug for AgreementSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AgreementSecret(..)")
    }
}

impl AgreementSecret {
    /// The agreement secret of `key` (libsodium's conversion for Ed25519).
    pub fn of(key: &Keypair) -> AgreementSecret {
        let inner = match key.secret_key() {
            SecretKeyRef::Ed25519(k) => {
                Secret::X25519(x25519_dalek::StaticSecret::from(k.to_scalar_bytes()))
            }
            SecretKeyRef::Secp256k1(k) => Secret::Secp256k1(*k.as_nonzero_scalar()),
        };
        AgreementSecret { inner }
    }

    /// A fresh random secret of `key_type` (an envelope's ephemeral key).
    pub(crate) fn ephemeral(key_type: KeyType) -> AgreementSecret {
        let inner = match key_type {
            KeyType::Ed25519 => Secret::X25519(x25519_dalek::StaticSecret::random_from_rng(OsRng)),
            KeyType::Secp256k1 => Secret::Secp256k1(k256::NonZeroScalar::random(&mut OsRng)),
        };
        AgreementSecret { inner }
    }

    /// The public half as the envelope carries it: 32 bytes (X25519) or 33 (SEC1 compressed).
    pub(crate) fn public_bytes(&self) -> Vec<u8> {
        match &self.inner {
            Secret::X25519(s) => x25519_dalek::PublicKey::from(s).as_bytes().to_vec(),
            Secret::Secp256k1(s) => {
                use k256::elliptic_curve::sec1::ToEncodedPoint;
                k256::PublicKey::from_secret_scalar(s)
                    .to_encoded_point(true)
                    .as_bytes()
                    .to_vec()
            }
        }
    }

    /// The shared secret with an identity key (the receiver's, when wrapping).
    pub(crate) fn agree_with_identity(
        &self,
        other: &PublicKey,
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        match (&self.inner, other) {
            (Secret::X25519(s), PublicKey::Ed25519(k)) => x25519(
                s,
                x25519_dalek::PublicKey::from(k.to_montgomery().to_bytes()),
            ),
            (Secret::Secp256k1(s), PublicKey::Secp256k1(k)) => {
                Ok(ecdh(s, &k256::PublicKey::from(k)))
            }
            _ => Err(CryptoError::BadKey(other.key_type())),
        }
    }

    /// The shared secret with an ephemeral public key as the envelope carries it.
    pub(crate) fn agree_with_ephemeral(
        &self,
        public: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
        match &self.inner {
            Secret::X25519(s) => {
                let bytes: [u8; 32] = public
                    .try_into()
                    .map_err(|_| CryptoError::BadKey(KeyType::Ed25519))?;
                x25519(s, x25519_dalek::PublicKey::from(bytes))
            }
            Secret::Secp256k1(s) => {
                let point = k256::PublicKey::from_sec1_bytes(public)
                    .map_err(|_| CryptoError::BadKey(KeyType::Secp256k1))?;
                Ok(ecdh(s, &point))
            }
        }
    }
}

fn x25519(
    secret: &x25519_dalek::StaticSecret,
    public: x25519_dalek::PublicKey,
) -> Result<Zeroizing<[u8; 32]>, CryptoError> {
    let shared = secret.diffie_hellman(&public);
    if !shared.was_contributory() {
        return Err(CryptoError::WeakKey);
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

fn ecdh(secret: &k256::NonZeroScalar, public: &k256::PublicKey) -> Zeroizing<[u8; 32]> {
    let shared = k256::ecdh::diffie_hellman(secret, public.as_affine());
    let mut out = Zeroizing::new([0u8; 32]);
    out.copy_from_slice(shared.raw_secret_bytes());
    out
}

/// The key that wraps a content key for one receiver: BLAKE3 `derive_key` over the shared
/// secret, the ephemeral public key and the receiver's key, so a wrapped key is bound to both.
pub(crate) fn kek(shared: &[u8; 32], ephemeral: &[u8], receiver: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut h = blake3::Hasher::new_derive_key(KEK_CONTEXT);
    h.update(shared);
    h.update(ephemeral);
    h.update(receiver);
    Zeroizing::new(*h.finalize().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_for_each_key_type() {
        for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
            let receiver = Keypair::generate(kt);
            let eph = AgreementSecret::ephemeral(kt);
            let a = eph.agree_with_identity(receiver.public()).unwrap();
            let b = AgreementSecret::of(&receiver)
                .agree_with_ephemeral(&eph.public_bytes())
                .unwrap();
            assert_eq!(*a, *b, "{kt}");
            let other = AgreementSecret::of(&Keypair::generate(kt))
                .agree_with_ephemeral(&eph.public_bytes())
                .unwrap();
            assert_ne!(*a, *other, "{kt}");
        }
    }

    /// libsodium's conversion, checked by its defining property: the X25519 public key of
    /// the converted secret is the converted public key.
    #[test]
    fn ed25519_conversion_matches_the_montgomery_map() {
        for _ in 0..8 {
            let k = Keypair::generate(KeyType::Ed25519);
            let AgreementSecret {
                inner: Secret::X25519(s),
            } = AgreementSecret::of(&k)
            else {
                panic!("not x25519")
            };
            let PublicKey::Ed25519(v) = k.public() else {
                panic!("not ed25519")
            };
            assert_eq!(
                x25519_dalek::PublicKey::from(&s).to_bytes(),
                v.to_montgomery().to_bytes()
            );
        }
    }

    #[test]
    fn low_order_points_are_refused() {
        let s = AgreementSecret::ephemeral(KeyType::Ed25519);
        assert_eq!(
            s.agree_with_ephemeral(&[0u8; 32]).unwrap_err(),
            CryptoError::WeakKey
        );
        let s = AgreementSecret::ephemeral(KeyType::Secp256k1);
        assert_eq!(
            s.agree_with_ephemeral(&[2u8; 33][..5]).unwrap_err(),
            CryptoError::BadKey(KeyType::Secp256k1)
        );
    }

    #[test]
    fn mismatched_key_types_are_typed_errors() {
        let eph = AgreementSecret::ephemeral(KeyType::Ed25519);
        let k = Keypair::generate(KeyType::Secp256k1);
        assert_eq!(
            eph.agree_with_identity(k.public()).unwrap_err(),
            CryptoError::BadKey(KeyType::Secp256k1)
        );
    }
}
