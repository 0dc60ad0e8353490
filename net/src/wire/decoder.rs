//! Sans-IO frame splitting over the `Bytes` chunks a QUIC stream yields.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};

use super::WireError;
use super::frame::decode_varint;

/// Splits a stream of chunks into whole frames (each returned with its length prefix).
///
/// A frame that lies inside one chunk is returned as a slice of that chunk: no copy. A frame that
/// spans chunks is assembled into one buffer sized from its length prefix, which is checked
/// against `max_frame_len` before anything is allocated.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_len: usize,
    queue: VecDeque<Bytes>,
    /// The frame being assembled across chunks.
    partial: BytesMut,
    /// Total bytes of the partial frame once its prefix is known; 0 while the prefix is split.
    partial_need: usize,
    assembling: bool,
}

impl FrameDecoder {
    /// A decoder refusing frames longer than `max_frame_len` (length prefix excluded).
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder {
            max_frame_len,
            queue: VecDeque::new(),
            partial: BytesMut::new(),
            partial_need: 0,
            assembling: false,
        }
    }

    /// Queues a chunk read from the stream.
    pub fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.queue.push_back(chunk);
        }
    }

    /// Bytes received but not yet returned as frames.
    pub fn buffered(&self) -> usize {
        self.partial.len() + self.queue.iter().map(Bytes::len).sum::<usize>()
    }

    /// The next whole frame, `Ok(None)` if more chunks are needed.
    pub fn next_frame(&mut self) -> Result<Option<Bytes>, WireError> {
        let max = self.max_frame_len;
        loop {
            let Some(cur) = self.queue.front_mut() else {
                return Ok(None);
            };
            if cur.is_empty() {
                self.queue.pop_front();
                continue;
            }
            if self.assembling {
                if self.partial_need == 0 {
                    // The length prefix itself is split: take it a byte at a time.
                    self.partial.extend_from_slice(&cur[..1]);
                    cur.advance(1);
                    if let Some((len, n)) = decode_varint(&self.partial)? {
                        self.partial_need = n + check_len(len, max)?;
                        self.partial.reserve(self.partial_need - self.partial.len());
                    }
                    continue;
                }
                let take = (self.partial_need - self.partial.len()).min(cur.len());
                self.partial.extend_from_slice(&cur[..take]);
                cur.advance(take);
                if self.partial.len() == self.partial_need {
                    self.assembling = false;
                    self.partial_need = 0;
                    return Ok(Some(self.partial.split().freeze()));
                }
                continue;
            }
            match decode_varint(cur)? {
                Some((len, n)) => {
                    let total = n + check_len(len, max)?;
                    if cur.len() >= total {
                        return Ok(Some(cur.split_to(total)));
                    }
                    self.partial = BytesMut::with_capacity(total);
                    self.partial_need = total;
                    self.assembling = true;
                }
                None => {
                    self.partial = BytesMut::with_capacity(8);
                    self.partial_need = 0;
                    self.assembling = true;
                }
            }
        }
    }

    /// The stream has ended: an error if it ended inside a frame.
    pub fn finish(&self) -> Result<(), WireError> {
        if self.assembling || self.queue.iter().any(|c| !c.is_empty()) {
            Err(WireError::Truncated)
        } else {
            Ok(())
        }
    }
}

fn check_len(len: u64, max: usize) -> Result<usize, WireError> {
    if len == 0 {
        return Err(WireError::Empty);
    }
    if len > max as u64 {
        return Err(WireError::Oversized { len, max });
    }
    Ok(len as usize)
}
