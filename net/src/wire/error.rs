use crate::entry::EntryError;
use crate::identity::IdentityError;

/// A protocol violation by the remote peer, or a stream that ended badly.
///
/// Each closes the stream it happened on; none panics or allocates past the frame limit.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A length prefix larger than the configured maximum frame size.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// The announced length.
        len: u64,
        /// The configured limit.
        max: usize,
    },
    /// A length prefix longer than 5 bytes or one that does not end.
    #[error("malformed frame length prefix")]
    MalformedLength,
    /// A frame of length zero (it has no kind byte).
    #[error("empty frame")]
    Empty,
    /// A kind byte this version does not know.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// A body version this build does not speak.
    #[error("unsupported {kind} frame version {version}")]
    UnsupportedVersion {
        /// The frame kind.
        kind: &'static str,
        /// The version byte that arrived.
        version: u8,
    },
    /// A body shorter (or, for fixed bodies, longer) than its layout.
    #[error("{kind} frame body is {actual} bytes, expected {expected}")]
    BadBodyLength {
        /// The frame kind.
        kind: &'static str,
        /// Bytes required.
        expected: usize,
        /// Bytes present.
        actual: usize,
    },
    /// The stream finished in the middle of a frame.
    #[error("stream ended in the middle of a frame")]
    Truncated,
    /// The peer reset the stream (possibly in the middle of a frame).
    #[error("stream reset by the peer (code {0})")]
    Reset(u64),
    /// The first frame of a stream was not a Starling stream header.
    #[error("stream does not start with a Starling stream header")]
    MissingHeader,
    /// The stream header names another protocol or version.
    #[error("unsupported protocol {0:?}")]
    UnsupportedProtocol(String),
    /// The stream header names a lane that does not exist.
    #[error("unknown lane {0}")]
    UnknownLane(u8),
    /// A key type byte that is neither Ed25519 (1) nor secp256k1 (2).
    #[error("unknown key type {0} in frame")]
    UnknownKeyType(u8),
    /// The payload does not hash to the signed payload hash.
    #[error("payload does not match its signed BLAKE3 hash")]
    PayloadHashMismatch,
    /// A bad key or signature.
    #[error("frame signature: {0}")]
    Signature(#[from] IdentityError),
    /// An entry frame whose entry does not decode.
    #[error("entry frame: {0}")]
    Entry(#[from] EntryError),
    /// A frame arrived in the wrong place (e.g. a second stream header).
    #[error("unexpected {0} frame")]
    Unexpected(&'static str),
    /// Reading from QUIC failed (connection lost, stopped).
    #[error("read failed: {0}")]
    Read(String),
}

impl WireError {
    /// The QUIC application error code a stream is stopped with for this error.
    pub fn code(&self) -> u32 {
        match self {
            WireError::Oversized { .. } => 0x11,
            WireError::MalformedLength | WireError::Empty | WireError::Truncated => 0x12,
            WireError::UnknownKind(_) => 0x13,
            WireError::UnsupportedVersion { .. } | WireError::UnsupportedProtocol(_) => 0x14,
            WireError::PayloadHashMismatch | WireError::Signature(_) | WireError::Entry(_) => 0x15,
            _ => 0x10,
        }
    }
}
