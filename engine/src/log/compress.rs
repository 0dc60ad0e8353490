//! Per-entry LZ4 (lz4_flex) when it pays; already-compressed media passes through untouched.

use bytes::Bytes;

/// When to compress a payload.
#[derive(Clone, Copy, Debug)]
pub struct Compression {
    /// Payloads shorter than this are stored as they are. Default 512 bytes.
    pub min_len: usize,
    /// Compressed output is kept only if at most this fraction of the input. Default 0.9.
    pub max_ratio: f64,
}

impl Default for Compression {
    fn default() -> Self {
        Compression {
            min_len: 512,
            max_ratio: 0.9,
        }
    }
}

/// Bytes of a large payload compressed first as a probe: media (already compressed) is
/// recognised after 4 KiB instead of after compressing all of it.
const PROBE: usize = 4096;

impl Compression {
    /// The payload LZ4-compressed, when that pays (else it is stored as it is).
    pub fn compress(&self, payload: &[u8]) -> Option<Bytes> {
        if payload.len() < self.min_len {
            return None;
        }
        let limit = |n: usize| (n as f64 * self.max_ratio) as usize;
        if payload.len() > 2 * PROBE {
            let probe = lz4_flex::block::compress(&payload[..PROBE]);
            if probe.len() > limit(PROBE) {
                return None;
            }
        }
        let packed = lz4_flex::block::compress(payload);
        (packed.len() <= limit(payload.len())).then(|| Bytes::from(packed))
    }
}
