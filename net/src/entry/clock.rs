//! The clock an entry carries: (wall µs, logical, writer), ordered in that order.

/// Now, in microseconds since the Unix epoch: the unit of entry clocks. 0 if the system clock
/// is before 1970.
pub fn unix_time_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Bytes of [`Clock::to_key`].
pub const CLOCK_KEY_LEN: usize = 44;

/// A point in a log's total order: (wall µs, logical, writer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Clock {
    /// Wall time in µs since the Unix epoch, as the writer saw it (or later).
    pub wall_us: u64,
    /// Breaks ties between events in the same µs, and carries causality past clock skew.
    pub logical: u32,
    /// The writer (BLAKE3 of its raw public key), the final tie-breaker. Not on the wire in v2:
    /// derived from the signer key the header carries.
    pub writer: [u8; 32],
}

impl Clock {
    /// Sortable byte form (big-endian), as the store indexes it.
    pub fn to_key(&self) -> [u8; CLOCK_KEY_LEN] {
        let mut k = [0u8; CLOCK_KEY_LEN];
        k[..8].copy_from_slice(&self.wall_us.to_be_bytes());
        k[8..12].copy_from_slice(&self.logical.to_be_bytes());
        k[12..].copy_from_slice(&self.writer);
        k
    }

    /// Parses [`Clock::to_key`].
    pub fn from_key(k: &[u8; CLOCK_KEY_LEN]) -> Clock {
        let mut wall = [0u8; 8];
        wall.copy_from_slice(&k[..8]);
        let mut logical = [0u8; 4];
        logical.copy_from_slice(&k[8..12]);
        let mut writer = [0u8; 32];
        writer.copy_from_slice(&k[12..]);
        Clock {
            wall_us: u64::from_be_bytes(wall),
            logical: u32::from_be_bytes(logical),
            writer,
        }
    }
}

/// The writer id of a raw public key: its BLAKE3.
pub fn writer_id(raw_key: &[u8]) -> [u8; 32] {
    *blake3::hash(raw_key).as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_clock_order() {
        let a = Clock {
            wall_us: 1,
            logical: 9,
            writer: [9; 32],
        };
        let b = Clock {
            wall_us: 2,
            logical: 0,
            writer: [0; 32],
        };
        assert!(a < b && a.to_key() < b.to_key());
        assert_eq!(Clock::from_key(&a.to_key()), a);
    }
}
