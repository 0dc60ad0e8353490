//! Key pairs and public keys, bridging libp2p's encodings and the dalek/k256 signers.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::Signer as _;
use libp2p_identity as libp2p;
use rand::rngs::OsRng;

use super::{IdentityError, PeerId, Signature};

/// The two key types Starling accepts (libp2p protobuf `KeyType` 1 and 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// Ed25519: the default, and the only type with batch verification.
    Ed25519,
    /// secp256k1 ECDSA over SHA-256, as libp2p signs with it.
    Secp256k1,
}

impl KeyType {
    /// The libp2p protobuf `KeyType` number.
    pub const fn protobuf_number(self) -> u64 {
        match self {
            KeyType::Ed25519 => 1,
            KeyType::Secp256k1 => 2,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KeyType::Ed25519 => "ed25519",
            KeyType::Secp256k1 => "secp256k1",
        })
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" => Ok(KeyType::Ed25519),
            "secp256k1" => Ok(KeyType::Secp256k1),
            other => Err(format!(
                "unknown key type {other:?} (expected ed25519 or secp256k1)"
            )),
        }
    }
}

/// A peer's public key: what its [`PeerId`] is derived from and what its signatures verify with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PublicKey {
    /// An Ed25519 verifying key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// A secp256k1 verifying key.
    Secp256k1(k256::ecdsa::VerifyingKey),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.key_type(), self.peer_id())
    }
}

impl PublicKey {
    /// Which kind of key this is.
    pub fn key_type(&self) -> KeyType {
        match self {
            PublicKey::Ed25519(_) => KeyType::Ed25519,
            PublicKey::Secp256k1(_) => KeyType::Secp256k1,
        }
    }

    /// Raw key bytes: 32 for Ed25519, 33 (SEC1 compressed) for secp256k1.
    pub fn to_raw_bytes(&self) -> Vec<u8> {
        match self {
            PublicKey::Ed25519(k) => k.to_bytes().to_vec(),
            PublicKey::Secp256k1(k) => k.to_encoded_point(true).as_bytes().to_vec(),
        }
    }

    /// Decodes raw key bytes of the given type, rejecting points not on the curve.
    pub fn from_raw_bytes(key_type: KeyType, bytes: &[u8]) -> Result<Self, IdentityError> {
        match key_type {
            KeyType::Ed25519 => {
                let arr: &[u8; 32] =
                    bytes.try_into().map_err(|_| IdentityError::InvalidLength {
                        what: "an ed25519 public key",
                        expected: 32,
                        actual: bytes.len(),
                    })?;
                ed25519_dalek::VerifyingKey::from_bytes(arr)
                    .map(PublicKey::Ed25519)
                    .map_err(|_| IdentityError::InvalidPublicKey(key_type))
            }
            KeyType::Secp256k1 => {
                if bytes.len() != 33 {
                    return Err(IdentityError::InvalidLength {
                        what: "a compressed secp256k1 public key",
                        expected: 33,
                        actual: bytes.len(),
                    });
                }
                k256::ecdsa::VerifyingKey::from_sec1_bytes(bytes)
                    .map(PublicKey::Secp256k1)
                    .map_err(|_| IdentityError::InvalidPublicKey(key_type))
            }
        }
    }

    /// The libp2p form of this key.
    pub fn to_libp2p(&self) -> libp2p::PublicKey {
        match self {
            PublicKey::Ed25519(k) => libp2p::ed25519::PublicKey::try_from_bytes(&k.to_bytes())
                .map(libp2p::PublicKey::from)
                .expect("a valid dalek key is a valid libp2p ed25519 key"),
            PublicKey::Secp256k1(k) => {
                libp2p::secp256k1::PublicKey::try_from_bytes(k.to_encoded_point(true).as_bytes())
                    .map(libp2p::PublicKey::from)
                    .expect("a valid k256 key is a valid libp2p secp256k1 key")
            }
        }
    }

    /// Converts a libp2p public key; RSA and ECDSA keys are refused.
    pub fn from_libp2p(key: &libp2p::PublicKey) -> Result<Self, IdentityError> {
        match key.key_type() {
            libp2p::KeyType::Ed25519 => {
                let k = key.clone().try_into_ed25519().map_err(other_variant)?;
                Self::from_raw_bytes(KeyType::Ed25519, &k.to_bytes())
            }
            libp2p::KeyType::Secp256k1 => {
                let k = key.clone().try_into_secp256k1().map_err(other_variant)?;
                Self::from_raw_bytes(KeyType::Secp256k1, &k.to_bytes())
            }
            libp2p::KeyType::RSA => Err(IdentityError::UnsupportedKeyType(0)),
            libp2p::KeyType::Ecdsa => Err(IdentityError::UnsupportedKeyType(3)),
        }
    }

    /// libp2p's protobuf encoding (`PublicKey { Type, Data }`), the input of the PeerId.
    ///
    /// Written here rather than through [`PublicKey::to_libp2p`]: that conversion decompresses
    /// an Ed25519 point (~5 µs), and trust verdicts and access checks encode keys on every
    /// entry. The bytes are libp2p's, byte for byte (tested).
    pub fn encode_protobuf(&self) -> Vec<u8> {
        let (key_type, raw) = match self {
            PublicKey::Ed25519(k) => (1, k.to_bytes().to_vec()),
            PublicKey::Secp256k1(k) => (2, k.to_encoded_point(true).as_bytes().to_vec()),
        };
        // Field 1 (varint): the key type; field 2 (bytes): the key. Both keys are < 128 bytes.
        let mut out = Vec::with_capacity(4 + raw.len());
        out.extend_from_slice(&[0x08, key_type, 0x12, raw.len() as u8]);
        out.extend_from_slice(&raw);
        out
    }

    /// Decodes libp2p's protobuf encoding, naming an unsupported key type precisely.
    pub fn decode_protobuf(bytes: &[u8]) -> Result<Self, IdentityError> {
        check_protobuf_key_type(bytes)?;
        let key = libp2p::PublicKey::try_decode_protobuf(bytes)
            .map_err(|e| IdentityError::MalformedKey(e.to_string()))?;
        Self::from_libp2p(&key)
    }

    /// Recovers the public key inlined in an identity-multihash PeerId (all Ed25519 and
    /// secp256k1 ids are: their protobuf keys are at most 42 bytes).
    pub fn from_peer_id(peer_id: &PeerId) -> Result<Self, IdentityError> {
        let bytes = peer_id.to_bytes();
        let (code, rest) = unsigned_varint::decode::u64(&bytes)
            .map_err(|e| IdentityError::MalformedPeerId(e.to_string()))?;
        if code != 0x00 {
            return Err(IdentityError::PeerIdWithoutKey(peer_id.to_base58()));
        }
        let (len, digest) = unsigned_varint::decode::usize(rest)
            .map_err(|e| IdentityError::MalformedPeerId(e.to_string()))?;
        if len != digest.len() {
            return Err(IdentityError::MalformedPeerId(
                "multihash length mismatch".into(),
            ));
        }
        Self::decode_protobuf(digest)
    }

    /// The libp2p PeerId of this key: the identity multihash of its protobuf encoding (keys
    /// of at most 42 bytes are inlined, as libp2p does), built without the libp2p conversion.
    pub fn peer_id(&self) -> PeerId {
        let key = self.encode_protobuf();
        let mut bytes = Vec::with_capacity(2 + key.len());
        bytes.extend_from_slice(&[0x00, key.len() as u8]);
        bytes.extend_from_slice(&key);
        PeerId::from_bytes(&bytes).unwrap_or_else(|_| self.to_libp2p().to_peer_id())
    }

    /// Verifies one signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> Result<(), IdentityError> {
        match (self, signature) {
            (PublicKey::Ed25519(k), Signature::Ed25519(s)) => k
                .verify_strict(message, s)
                .map_err(|_| IdentityError::BadSignature),
            (PublicKey::Secp256k1(k), Signature::Secp256k1(s)) => {
                use k256::ecdsa::signature::Verifier as _;
                k.verify(message, s)
                    .map_err(|_| IdentityError::BadSignature)
            }
            (k, s) => Err(IdentityError::KeyTypeMismatch {
                key: k.key_type(),
                signature: s.key_type(),
            }),
        }
    }
}

fn other_variant(e: libp2p::OtherVariantError) -> IdentityError {
    IdentityError::MalformedKey(e.to_string())
}

/// Reads field 1 (`Type`) of a protobuf key so that RSA/ECDSA/unknown types get their own error
/// instead of libp2p's generic decoding failure.
fn check_protobuf_key_type(bytes: &[u8]) -> Result<(), IdentityError> {
    match bytes {
        [0x08, rest @ ..] => {
            let (n, _) = unsigned_varint::decode::u64(rest)
                .map_err(|e| IdentityError::MalformedKey(format!("key type: {e}")))?;
            if n == KeyType::Ed25519.protobuf_number() || n == KeyType::Secp256k1.protobuf_number()
            {
                Ok(())
            } else {
                Err(IdentityError::UnsupportedKeyType(n))
            }
        }
        _ => Err(IdentityError::MalformedKey(
            "protobuf key must start with its type field".into(),
        )),
    }
}

/// A borrowed secret key, for the crate's own key agreement.
pub(crate) enum SecretKeyRef<'a> {
    Ed25519(&'a ed25519_dalek::SigningKey),
    Secp256k1(&'a k256::ecdsa::SigningKey),
}

#[derive(Clone)]
enum Secret {
    Ed25519(ed25519_dalek::SigningKey),
    Secp256k1(k256::ecdsa::SigningKey),
}

/// A peer's secret key with its public key and PeerId (computed once).
#[derive(Clone)]
pub struct Keypair {
    secret: Secret,
    public: PublicKey,
    peer_id: PeerId,
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keypair")
            .field("type", &self.key_type())
            .field("peer_id", &self.peer_id)
            .finish_non_exhaustive()
    }
}

impl Keypair {
    fn from_secret(secret: Secret) -> Self {
        let public = match &secret {
            Secret::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            Secret::Secp256k1(k) => PublicKey::Secp256k1(*k.verifying_key()),
        };
        let peer_id = public.peer_id();
        Keypair {
            secret,
            public,
            peer_id,
        }
    }

    /// A fresh random key from the OS RNG.
    pub fn generate(key_type: KeyType) -> Self {
        Self::from_secret(match key_type {
            KeyType::Ed25519 => Secret::Ed25519(ed25519_dalek::SigningKey::generate(&mut OsRng)),
            KeyType::Secp256k1 => Secret::Secp256k1(k256::ecdsa::SigningKey::random(&mut OsRng)),
        })
    }

    /// A key from its raw 32-byte secret (Ed25519 seed or secp256k1 scalar).
    pub fn from_secret_bytes(key_type: KeyType, bytes: &[u8]) -> Result<Self, IdentityError> {
        let arr: &[u8; 32] = bytes.try_into().map_err(|_| IdentityError::InvalidLength {
            what: "a secret key",
            expected: 32,
            actual: bytes.len(),
        })?;
        let secret = match key_type {
            KeyType::Ed25519 => Secret::Ed25519(ed25519_dalek::SigningKey::from_bytes(arr)),
            KeyType::Secp256k1 => Secret::Secp256k1(
                k256::ecdsa::SigningKey::from_slice(arr)
                    .map_err(|_| IdentityError::InvalidSecretKey(key_type))?,
            ),
        };
        Ok(Self::from_secret(secret))
    }

    /// The secret key itself (for key agreement, `crate::crypto`).
    pub(crate) fn secret_key(&self) -> SecretKeyRef<'_> {
        match &self.secret {
            Secret::Ed25519(k) => SecretKeyRef::Ed25519(k),
            Secret::Secp256k1(k) => SecretKeyRef::Secp256k1(k),
        }
    }

    /// The raw 32-byte secret.
    pub fn secret_bytes(&self) -> [u8; 32] {
        match &self.secret {
            Secret::Ed25519(k) => k.to_bytes(),
            Secret::Secp256k1(k) => k.to_bytes().into(),
        }
    }

    /// Which kind of key this is.
    pub fn key_type(&self) -> KeyType {
        self.public.key_type()
    }

    /// The public half.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// This key's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Signs `message` (secp256k1: ECDSA over SHA-256 with low S, as libp2p does).
    pub fn sign(&self, message: &[u8]) -> Signature {
        match &self.secret {
            Secret::Ed25519(k) => Signature::Ed25519(k.sign(message)),
            Secret::Secp256k1(k) => Signature::Secp256k1(k.sign(message)),
        }
    }

    /// The libp2p form of this key pair (used for TLS certificates).
    pub fn to_libp2p(&self) -> libp2p::Keypair {
        let bytes = self.secret_bytes();
        match self.key_type() {
            KeyType::Ed25519 => libp2p::ed25519::SecretKey::try_from_bytes(bytes)
                .map(|s| libp2p::Keypair::from(libp2p::ed25519::Keypair::from(s))),
            KeyType::Secp256k1 => libp2p::secp256k1::SecretKey::try_from_bytes(bytes)
                .map(|s| libp2p::Keypair::from(libp2p::secp256k1::Keypair::from(s))),
        }
        .expect("a valid secret key is a valid libp2p secret key")
    }

    /// Converts a libp2p key pair; RSA and ECDSA keys are refused.
    pub fn from_libp2p(key: &libp2p::Keypair) -> Result<Self, IdentityError> {
        match key.key_type() {
            libp2p::KeyType::Ed25519 => {
                let k = key.clone().try_into_ed25519().map_err(other_variant)?;
                Self::from_secret_bytes(KeyType::Ed25519, k.secret().as_ref())
            }
            libp2p::KeyType::Secp256k1 => {
                let k = key.clone().try_into_secp256k1().map_err(other_variant)?;
                Self::from_secret_bytes(KeyType::Secp256k1, &k.secret().to_bytes())
            }
            libp2p::KeyType::RSA => Err(IdentityError::UnsupportedKeyType(0)),
            libp2p::KeyType::Ecdsa => Err(IdentityError::UnsupportedKeyType(3)),
        }
    }

    /// libp2p's protobuf private-key encoding (what key files hold).
    pub fn to_protobuf(&self) -> Vec<u8> {
        self.to_libp2p()
            .to_protobuf_encoding()
            .expect("ed25519 and secp256k1 keys always encode")
    }

    /// Decodes libp2p's protobuf private-key encoding.
    pub fn from_protobuf(bytes: &[u8]) -> Result<Self, IdentityError> {
        check_protobuf_key_type(bytes)?;
        let key = libp2p::Keypair::from_protobuf_encoding(bytes)
            .map_err(|e| IdentityError::MalformedKey(e.to_string()))?;
        Self::from_libp2p(&key)
    }
}
