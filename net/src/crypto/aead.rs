//! The AEADs of an envelope, on ring.
//!
//! - Content, [`Suite::XChaCha20Poly1305`] (draft-irtf-cfrg-xchacha): an HChaCha20 subkey
//!   from the key and the nonce's first 16 bytes (RustCrypto's `chacha20::hchacha`), then
//!   ring's ChaCha20-Poly1305 under it with the nonce `0⁴ ‖ nonce[16..24]`. Byte for byte
//!   what RustCrypto's `XChaCha20Poly1305` produces (tested against it); ring's assembly does
//!   the pass at 1,777 MB/s on 64 KiB here, RustCrypto's at 1,123 MB/s.
//! - Content, [`Suite::Aes256Gcm`]: ring's AES-256-GCM with a random 96-bit nonce (a content
//!   key seals at most `Sealer`'s 4,096 payloads, far below the 2^32 random nonces GCM
//!   allows). 7,706 MB/s here with AES-NI: [`Suite::preferred`] where the CPU has it.
//! - Key wrap: ChaCha20-Poly1305 with a zero nonce (each key-encryption key seals once).

use chacha20::cipher::consts::U10;
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroizing;

use super::CryptoError;

/// Bytes of an XChaCha20 nonce.
pub(crate) const XNONCE_LEN: usize = 24;
/// Bytes of an AES-GCM nonce.
pub(crate) const GCM_NONCE_LEN: usize = 12;

/// The cipher of an envelope's content; every reader opens both.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Suite {
    /// XChaCha20-Poly1305: fast everywhere in constant time, no hardware needed.
    XChaCha20Poly1305,
    /// AES-256-GCM: ~4× XChaCha20's speed where the CPU has AES and carry-less multiply.
    Aes256Gcm,
}

impl Suite {
    /// AES-256-GCM when this CPU has AES instructions (as the QUIC links prefer AES-GCM, see
    /// ARCHITECTURE.md), else XChaCha20-Poly1305.
    pub fn preferred() -> Suite {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("aes")
                && std::arch::is_x86_feature_detected!("pclmulqdq")
            {
                return Suite::Aes256Gcm;
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if std::arch::is_aarch64_feature_detected!("aes")
                && std::arch::is_aarch64_feature_detected!("pmull")
            {
                return Suite::Aes256Gcm;
            }
        }
        Suite::XChaCha20Poly1305
    }

    /// Its byte in the envelope.
    pub(crate) fn code(self) -> u8 {
        match self {
            Suite::XChaCha20Poly1305 => 1,
            Suite::Aes256Gcm => 2,
        }
    }

    /// The suite of a byte.
    pub(crate) fn of(code: u8) -> Result<Suite, CryptoError> {
        match code {
            1 => Ok(Suite::XChaCha20Poly1305),
            2 => Ok(Suite::Aes256Gcm),
            other => Err(CryptoError::UnknownSuite(other)),
        }
    }

    /// Bytes of its nonce.
    pub(crate) fn nonce_len(self) -> usize {
        match self {
            Suite::XChaCha20Poly1305 => XNONCE_LEN,
            Suite::Aes256Gcm => GCM_NONCE_LEN,
        }
    }

    /// The key and 96-bit nonce the AEAD runs with.
    fn keyed(self, key: &[u8; 32], nonce: &[u8]) -> Result<(LessSafeKey, Nonce), CryptoError> {
        match self {
            Suite::XChaCha20Poly1305 => {
                let nonce: &[u8; XNONCE_LEN] =
                    nonce.try_into().map_err(|_| bad_nonce(self, nonce))?;
                Ok(xchacha(key, nonce))
            }
            Suite::Aes256Gcm => {
                let nonce: [u8; GCM_NONCE_LEN] =
                    nonce.try_into().map_err(|_| bad_nonce(self, nonce))?;
                let key = UnboundKey::new(&AES_256_GCM, key).map_err(|_| CryptoError::Tampered)?;
                Ok((LessSafeKey::new(key), Nonce::assume_unique_for_key(nonce)))
            }
        }
    }

    /// Encrypts `buf` in place; returns the tag.
    pub(crate) fn seal(
        self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let (k, n) = self.keyed(key, nonce)?;
        let tag = k
            .seal_in_place_separate_tag(n, Aad::from(aad), buf)
            .map_err(|_| CryptoError::TooLarge(buf.len()))?;
        tag_bytes(&tag)
    }

    /// Decrypts `buf` in place if `tag` authenticates it with `aad`.
    pub(crate) fn open(
        self,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        buf: &mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<(), CryptoError> {
        let (k, n) = self.keyed(key, nonce)?;
        k.open_in_place_separate_tag(n, Aad::from(aad), Tag::from(*tag), buf, 0..)
            .map(|_| ())
            .map_err(|_| CryptoError::Tampered)
    }
}

fn bad_nonce(suite: Suite, nonce: &[u8]) -> CryptoError {
    CryptoError::Truncated {
        need: suite.nonce_len(),
        have: nonce.len(),
    }
}
/// Bytes of a Poly1305 tag.
pub(crate) const TAG_LEN: usize = 16;

fn chacha_key(key: &[u8; 32]) -> LessSafeKey {
    // ChaCha20-Poly1305 takes any 32 bytes: `new` fails only on a wrong length.
    LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).unwrap_or_else(|_| unreachable!()))
}

/// The subkey and 96-bit nonce XChaCha20 derives from a key and a 192-bit nonce.
fn xchacha(key: &[u8; 32], nonce: &[u8; XNONCE_LEN]) -> (LessSafeKey, Nonce) {
    let mut head = [0u8; 16];
    head.copy_from_slice(&nonce[..16]);
    let sub = Zeroizing::new(<[u8; 32]>::from(chacha20::hchacha::<U10>(
        key.into(),
        &head.into(),
    )));
    let mut short = [0u8; 12];
    short[4..].copy_from_slice(&nonce[16..]);
    (chacha_key(&sub), Nonce::assume_unique_for_key(short))
}

/// Seals a 32-byte key under a key-encryption key used once (zero nonce).
pub(crate) fn wrap(
    kek: &[u8; 32],
    aad: &[u8],
    key: &mut [u8; 32],
) -> Result<[u8; TAG_LEN], CryptoError> {
    let tag = chacha_key(kek)
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key([0; 12]), Aad::from(aad), key)
        .map_err(|_| CryptoError::TooLarge(32))?;
    tag_bytes(&tag)
}

/// Opens what [`wrap`] sealed.
pub(crate) fn unwrap(
    kek: &[u8; 32],
    aad: &[u8],
    key: &mut [u8; 32],
    tag: &[u8; TAG_LEN],
) -> Result<(), CryptoError> {
    chacha_key(kek)
        .open_in_place_separate_tag(
            Nonce::assume_unique_for_key([0; 12]),
            Aad::from(aad),
            Tag::from(*tag),
            key,
            0..,
        )
        .map(|_| ())
        .map_err(|_| CryptoError::Tampered)
}

fn tag_bytes(tag: &Tag) -> Result<[u8; TAG_LEN], CryptoError> {
    tag.as_ref().try_into().map_err(|_| CryptoError::Tampered)
}

#[cfg(test)]
mod tests {
    use chacha20poly1305::aead::AeadInPlace;
    use chacha20poly1305::{ChaCha20Poly1305, KeyInit, XChaCha20Poly1305};
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// The same bytes as RustCrypto's XChaCha20-Poly1305, both ways.
        #[test]
        fn xchacha_matches_rustcrypto(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 24]>(),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
            plain in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut ours = plain.clone();
            let x = Suite::XChaCha20Poly1305;
            let tag = x.seal(&key, &nonce, &aad, &mut ours).unwrap();
            let mut theirs = plain.clone();
            let their_tag = XChaCha20Poly1305::new(&key.into())
                .encrypt_in_place_detached(&nonce.into(), &aad, &mut theirs)
                .unwrap();
            prop_assert_eq!(&ours, &theirs);
            prop_assert_eq!(&tag[..], &their_tag[..]);
            x.open(&key, &nonce, &aad, &mut ours, &tag).unwrap();
            prop_assert_eq!(ours, plain);
        }

        #[test]
        fn aes_gcm_opens_what_it_sealed(
            key in any::<[u8; 32]>(),
            nonce in any::<[u8; 12]>(),
            plain in proptest::collection::vec(any::<u8>(), 0..2048),
        ) {
            let mut buf = plain.clone();
            let tag = Suite::Aes256Gcm.seal(&key, &nonce, b"aad", &mut buf).unwrap();
            prop_assert!(plain.len() < 16 || buf != plain);
            Suite::Aes256Gcm.open(&key, &nonce, b"aad", &mut buf, &tag).unwrap();
            prop_assert_eq!(buf, plain);
        }

        #[test]
        fn wrap_matches_rustcrypto(kek in any::<[u8; 32]>(), key in any::<[u8; 32]>()) {
            let mut ours = key;
            let tag = wrap(&kek, b"id", &mut ours).unwrap();
            let mut theirs = key.to_vec();
            let their_tag = ChaCha20Poly1305::new(&kek.into())
                .encrypt_in_place_detached(&Default::default(), b"id", &mut theirs)
                .unwrap();
            prop_assert_eq!(&ours[..], &theirs[..]);
            prop_assert_eq!(&tag[..], &their_tag[..]);
            unwrap(&kek, b"id", &mut ours, &tag).unwrap();
            prop_assert_eq!(ours, key);
        }
    }

    #[test]
    fn a_wrong_tag_aad_key_or_nonce_fails() {
        for suite in [Suite::XChaCha20Poly1305, Suite::Aes256Gcm] {
            let key = [1u8; 32];
            let nonce = vec![2u8; suite.nonce_len()];
            let mut buf = b"hello".to_vec();
            let tag = suite.seal(&key, &nonce, b"aad", &mut buf).unwrap();
            let mut bad_tag = tag;
            bad_tag[0] ^= 1;
            let mut bad_nonce = nonce.clone();
            bad_nonce[0] ^= 1;
            for (k, n, a, t) in [
                ([9u8; 32], &nonce, &b"aad"[..], tag),
                (key, &nonce, &b"AAD"[..], tag),
                (key, &nonce, &b"aad"[..], bad_tag),
                (key, &bad_nonce, &b"aad"[..], tag),
            ] {
                let mut copy = buf.clone();
                assert_eq!(
                    suite.open(&k, n, a, &mut copy, &t),
                    Err(CryptoError::Tampered)
                );
            }
            assert!(matches!(
                suite.open(&key, &nonce[1..], b"aad", &mut buf, &tag),
                Err(CryptoError::Truncated { .. })
            ));
        }
    }
}
