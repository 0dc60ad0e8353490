//! What can go wrong with streams and peers.

use starling_net::TransportError;
use starling_store::StoreError;

use crate::log::{EntryError, LogError};

/// Errors of stream addresses, records and programs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The text is not a stream address.
    #[error("bad stream address {text:?}: {reason}")]
    BadAddress {
        /// What was given.
        text: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A record or catch-up message ended early.
    #[error("truncated stream message: need {need} bytes, have {have}")]
    Truncated {
        /// Bytes needed.
        need: usize,
        /// Bytes available.
        have: usize,
    },
    /// A record or message of a version this build does not know.
    #[error("unsupported stream message version {0}")]
    UnsupportedVersion(u8),
    /// A catch-up message of an unknown kind.
    #[error("unknown stream message kind {0}")]
    UnknownKind(u8),
    /// A catch-up message asking for or carrying more than the limit.
    #[error("catch-up of {0} frames exceeds the limit")]
    CatchUpTooLarge(u64),
    /// The record's entry failed to decode.
    #[error("entry: {0}")]
    Entry(#[from] EntryError),
    /// The record's entry belongs to another log.
    #[error("the entry belongs to another log")]
    WrongLog,
    /// A catch-up entry filed under another seq than its own.
    #[error("catch-up entry has seq {actual}, filed under {expected}")]
    CatchUpSeqMismatch {
        /// The seq the reply gave.
        expected: u64,
        /// The entry's own.
        actual: u64,
    },
    /// Signing or storing earlier frames failed (the frames were dropped).
    #[error("stream frames were not logged: {0}")]
    Signing(String),
    /// A media frame larger than the stream accepts.
    #[error("frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The node is behind on sending this peer's frames; this one was not published.
    #[error("the node is behind on publishing; frame not sent")]
    Congested,
    /// The peer was closed; nothing more can be published.
    #[error("the peer is closed")]
    Closed,
    /// Publishing to a stream this peer does not own.
    #[error("this peer does not own stream {0}")]
    NotOwner(String),
    /// A trust graph given for a stream is rooted at another key than the stream's owner.
    #[error("trust graph {graph} is not rooted at the owner of stream {stream}")]
    WrongTrustRoot {
        /// The stream.
        stream: String,
        /// The graph's address.
        graph: String,
    },
    /// A publisher other than the owner was named without the owner's trust graph to check it.
    #[error("stream {0}: a publisher other than its owner needs the owner's trust graph")]
    PublisherNeedsTrust(String),
    /// This peer's key is not (or not yet known to be) trusted by the owner's graph.
    #[error("this peer is not a delegate of the owner of stream {stream}: {verdict}")]
    NotDelegated {
        /// The stream.
        stream: String,
        /// What the graph says ("not trusted", "still catching up").
        verdict: &'static str,
    },
    /// A bitrate that does not parse.
    #[error("bad bitrate {text:?}: {reason}")]
    BadBitrate {
        /// What was given.
        text: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The stream's log refused an operation.
    #[error("log: {0}")]
    Log(#[from] LogError),
}

/// Errors of a [`Peer`](crate::Peer).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Binding, dialing or a connection failed.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The data directory could not be opened.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A stream operation failed.
    #[error("stream: {0}")]
    Stream(#[from] StreamError),
    /// A log operation failed.
    #[error("log: {0}")]
    Log(#[from] LogError),
    /// A temporary data directory could not be created.
    #[error("data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The peer was closed.
    #[error("the peer is closed")]
    Closed,
    /// No neighbour answered with the definition of this address in time.
    #[error("no definition found for program {0}")]
    DefinitionNotFound(crate::program::ProgramAddress),
    /// Too many definition fetches are waiting already.
    #[error("too many definition fetches under way")]
    TooManyFetches,
    /// A document store failed to open.
    #[error("documents: {0}")]
    Documents(#[from] crate::documents::DocumentError),
    /// The program is open on this peer already.
    #[error("program {0} is open on this peer already")]
    AlreadyOpen(crate::program::ProgramAddress),
    /// A definition of another kind than asked for, or whose parameters do not parse.
    #[error("program definition: {0}")]
    Definition(#[from] crate::program::ProgramError),
}
