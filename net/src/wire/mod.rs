//! The wire: length-prefixed frames on QUIC streams, decoded without copying payloads.
//!
//! `frame := varint(len) kind:u8 body[len-1]`. Every body starts with a version byte and has a
//! fixed layout. [`FrameDecoder`] is sans-IO: feed it the `Bytes` chunks quinn hands out and it
//! returns whole frames, slicing them out of the chunk when a frame arrived in one piece.

mod decoder;
mod error;
mod frame;
#[cfg(test)]
mod tests;

pub use decoder::FrameDecoder;
pub use error::WireError;
pub use frame::{
    Frame, FrameKind, Lane, PROTOCOL_NAME, StreamHeader, app_parts, encode_frame, put_varint,
    varint_len,
};

/// Bytes of a topic id.
pub const TOPIC_LEN: usize = 32;

/// Default upper bound on one frame (length prefix excluded): 4 MiB.
pub const DEFAULT_MAX_FRAME_LEN: usize = 4 << 20;
