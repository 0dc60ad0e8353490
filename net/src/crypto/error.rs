use crate::identity::KeyType;

/// What can be wrong when sealing or opening an envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoError {
    /// Fewer bytes than the layout needs.
    #[error("envelope truncated: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes the layout needs so far.
        need: usize,
        /// Bytes there are.
        have: usize,
    },
    /// An envelope version this build does not read.
    #[error("unsupported envelope version {0}")]
    UnsupportedVersion(u8),
    /// A content cipher this build does not know.
    #[error("unknown cipher suite {0}")]
    UnknownSuite(u8),
    /// Neither a wrapped nor a keyed envelope.
    #[error("unknown envelope kind {0}")]
    UnknownKind(u8),
    /// Ephemeral-key flags naming no key or unknown keys.
    #[error("bad ephemeral key flags {0:#04x}")]
    BadEphemerals(u8),
    /// No receivers, or more than [`super::MAX_RECEIVERS`].
    #[error("{0} receivers (1..={max})", max = super::MAX_RECEIVERS)]
    ReceiverCount(usize),
    /// A receiver or ephemeral key that is not a valid key.
    #[error("invalid {0} key in the envelope")]
    BadKey(KeyType),
    /// An unknown key type byte.
    #[error("unknown key type {0}")]
    UnknownKeyType(u8),
    /// Receivers not listed in strictly ascending order (the canonical form).
    #[error("receivers are not in canonical order")]
    NotCanonical,
    /// A receiver of a key type whose ephemeral key the envelope lacks.
    #[error("no ephemeral key for a {0} receiver")]
    MissingEphemeral(KeyType),
    /// This key is not among the receivers.
    #[error("not a receiver of this envelope")]
    NotAReceiver,
    /// A keyed envelope whose content key this reader never learnt.
    #[error("content key {0} is not known here")]
    UnknownKey(String),
    /// Agreement with a low-order point (the shared secret would be predictable).
    #[error("key agreement with a weak key")]
    WeakKey,
    /// The wrapped key or the content does not authenticate: tampered, or the wrong key.
    #[error("authentication failed: tampered ciphertext or the wrong key")]
    Tampered,
    /// An unwrapped key whose id is not the one the envelope names.
    #[error("the wrapped key is not the key the envelope names")]
    WrongKeyId,
    /// A payload larger than an envelope carries.
    #[error("payload of {0} bytes is too large to seal")]
    TooLarge(usize),
    /// A public section that is empty or longer than
    /// [`MAX_PUBLIC`](super::envelope::MAX_PUBLIC) (omit it instead of sending it empty).
    #[error("public section of {0} bytes: 1 to 1 MiB")]
    PublicTooLarge(usize),
}
