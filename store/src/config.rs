//! Store settings.

use std::time::Duration;

/// When writes reach the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `fdatasync` after every write batch: an acknowledged append survives a power cut. The
    /// default, because a database that loses acknowledged writes surprises everyone.
    SyncEachWrite,
    /// Writes reach OS buffers at once (they survive a process crash) and a background thread
    /// syncs every interval (a power cut loses at most that window).
    Periodic(Duration),
    /// Writes reach OS buffers only: they survive a killed process, not a power cut. Fastest.
    Buffered,
}

/// Settings of a [`Store`](crate::Store).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    /// Durability of writes. Default [`Durability::SyncEachWrite`].
    pub durability: Durability,
    /// Block cache size in bytes. Default 64 MiB.
    pub cache_bytes: u64,
    /// Payloads at least this large are stored in blob files (key-value separation), so that
    /// compaction does not rewrite media. Default 4 KiB.
    pub blob_threshold: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::SyncEachWrite,
            cache_bytes: 64 << 20,
            blob_threshold: 4096,
        }
    }
}
