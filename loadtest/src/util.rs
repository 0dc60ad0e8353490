//! Small helpers shared by the scenarios.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (frames carry their publish time in this unit).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Megabytes (10^6) per second.
pub(crate) fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}
