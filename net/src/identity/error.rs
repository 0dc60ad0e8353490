use std::path::PathBuf;

use super::KeyType;

/// Everything that can be wrong with a key, a signature, a peer id or a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// A protobuf key names a type Starling does not accept (RSA, ECDSA P-256, unknown numbers).
    #[error("unsupported key type {0} (Starling accepts ed25519 and secp256k1)")]
    UnsupportedKeyType(u64),
    /// A key or signature has the wrong number of bytes.
    #[error("{what} must be {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being decoded.
        what: &'static str,
        /// The length the format requires.
        expected: usize,
        /// The length that arrived.
        actual: usize,
    },
    /// Public key bytes that are not a point on the curve (or not canonically encoded).
    #[error("invalid {0} public key: not a valid curve point")]
    InvalidPublicKey(KeyType),
    /// Secret key bytes outside the valid scalar range (secp256k1: zero or >= n).
    #[error("invalid {0} secret key: out of range")]
    InvalidSecretKey(KeyType),
    /// A protobuf key encoding that does not decode.
    #[error("malformed key encoding: {0}")]
    MalformedKey(String),
    /// Signature bytes that cannot be a signature of this type (e.g. secp256k1 r or s out of range).
    #[error("malformed {0} signature")]
    MalformedSignature(KeyType),
    /// A well-formed signature that does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// A signature checked against a key of the other type.
    #[error("a {signature} signature cannot be checked with a {key} key")]
    KeyTypeMismatch {
        /// The key's type.
        key: KeyType,
        /// The signature's type.
        signature: KeyType,
    },
    /// Batch verification failed; `index` is the first item that fails on its own.
    #[error("batch verification failed: item {index} has a bad signature")]
    BatchFailed {
        /// Index into the batch of the first bad item.
        index: usize,
    },
    /// Text that is not base58btc.
    #[error("peer id is not valid base58: {0}")]
    InvalidBase58(String),
    /// A multihash whose code is neither identity (0x00) nor sha2-256 (0x12).
    #[error("peer id multihash code 0x{0:x} is neither identity (0x00) nor sha2-256 (0x12)")]
    UnsupportedMultihash(u64),
    /// Bytes that do not form a multihash.
    #[error("malformed peer id: {0}")]
    MalformedPeerId(String),
    /// A CIDv1 peer id that does not decode or has the wrong version/codec.
    #[error("invalid CID peer id: {0}")]
    InvalidCid(String),
    /// A sha2-256 peer id: the public key is not inside it, so it must be learned elsewhere.
    #[error("peer id {0} does not embed its public key")]
    PeerIdWithoutKey(String),
    /// The key file could not be read or written.
    #[error("key file {path}: {source}")]
    KeyFileIo {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The key file can be read by users other than its owner.
    #[error("key file {path} is readable by other users (mode {mode:03o}); run `chmod 600 {path}`")]
    KeyFileTooOpen {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file exists but does not hold a libp2p protobuf private key.
    #[error("key file {path} does not hold a libp2p private key ({reason})")]
    KeyFileMalformed {
        /// The key file.
        path: PathBuf,
        /// Why it was rejected.
        reason: String,
    },
}
